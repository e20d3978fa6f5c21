"""A journal writer process for the kill -9 tests (run as a script, killed at random).

Opens and recovers the data dir like a restarted replica, then runs the real writer loop
(core.storage.journal_writer) on random groups written the way the VSR core writes: mostly the
next ops, sometimes an op above a gap (the gap filled in a later group), sometimes a new version
of a recent op (supersede). Entries recovery could not return are written again first, as the
core repairs them. Checkpoints now and then (superblock first, then the journal prefix release)
at the highest op below which nothing is missing.

Prints "start" once recovered; "w SEQ OP CHECKSUM" for every frame before it is handed to the
writer; "d SEQ" once every write with a seq <= SEQ is durable (only after the fdatasync).

usage: crash_writer.py DATA_DIR SEED
"""

from __future__ import annotations

import os
import random
import sys

from core.storage.datadir import open_data_dir, open_journal
from core.storage.journal import EntryFault
from core.storage.journal_writer import TruncatePrefix, Write, run_journal_writer
from core.storage.testing import CLUSTER_TEST, make_prepare
from net import wire
from net.wire import HEADER_SIZE

IN_FLIGHT_OPS = 8
CHECKPOINT_EVERY_OPS = 24
RETENTION_OPS = 8
SUPERSEDE_DEPTH_OPS = 12  # how far below the head a new version may land
FRAME_SIZES_BYTES = (256, 700, 4096)


def held(journal, op: int) -> bool:
    try:
        return journal.read(op) is not None
    except EntryFault:
        return False


def main(root: str, seed: int) -> None:
    rng = random.Random(seed)
    superblock = open_data_dir(root, cluster=CLUSTER_TEST, replica=0)
    journal, _ = open_journal(root, superblock.state, IN_FLIGHT_OPS)
    gaps = {op for op in range(superblock.state.checkpoint_op + 1, journal.op_max + 1)
            if not held(journal, op)}
    checksums: dict[int, int] = {}  # op -> checksum of the last version written here
    state = {"seq": 0, "next": journal.op_max + 1, "release": None}
    os.write(1, b"start\n")

    def pick_op(low: int) -> int:
        roll = rng.random()
        if gaps and roll < 0.3:
            op = rng.choice(sorted(gaps))
            gaps.discard(op)
            return op
        bound = journal.op_writable_max()
        if state["next"] - 1 >= low and (roll < 0.45 or state["next"] > bound):
            return rng.randint(max(low, state["next"] - SUPERSEDE_DEPTH_OPS), state["next"] - 1)
        if roll < 0.6 and state["next"] + 1 <= bound:  # above a gap, filled by a later group
            gaps.add(state["next"])
            state["next"] += 1
        state["next"] += 1
        return state["next"] - 1

    def take(frames_max: int):
        commands = []
        low = journal.released_op + 1
        if state["release"] is not None:
            low = max(low, state["release"] + 1)
            commands.append(TruncatePrefix(state["release"]))
            state["release"] = None
        state["seq"] += 1
        size = rng.choice(FRAME_SIZES_BYTES)
        frames = []
        lines = []
        for _ in range(rng.randint(1, frames_max)):
            op = pick_op(low)
            # A unique timestamp makes every version's checksum unique, so the test can tell
            # a version written in this run from an identical older one.
            frame = make_prepare(op, checksums.get(op - 1, 0), size, view=rng.randrange(4),
                                 fill=rng.randrange(256), timestamp=rng.getrandbits(62))
            checksums[op] = wire.frame_checksum(frame)
            frames.append(frame)
            lines.append(f"w {state['seq']} {op} {checksums[op]}\n")
        os.write(1, "".join(lines).encode())
        return commands + [Write(state["seq"], frames)]

    def report_durable(seq: int) -> None:
        os.write(1, f"d {seq}\n".encode())
        prefix = min(gaps, default=state["next"]) - 1
        if prefix - superblock.state.checkpoint_op >= CHECKPOINT_EVERY_OPS:
            # Checkpoint order: the superblock names the checkpoint before the journal lets go.
            superblock.update(checkpoint_op=prefix,
                              checkpoint_header=journal.read(prefix)[:HEADER_SIZE])
            state["release"] = prefix - RETENTION_OPS

    run_journal_writer(journal, take, report_durable, IN_FLIGHT_OPS)


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]))
