"""A journal writer process for the kill -9 tests (run as a script, killed at random).

Opens and recovers the data dir like a restarted replica, then runs the real writer loop
(core.storage.journal_writer) on random batches chained after the recovered log, checkpointing
now and then (superblock first, then the journal prefix release). Prints "start OP" once
recovered, then one line per durable op, written to stdout only AFTER the fdatasync returned.

usage: crash_writer.py DATA_DIR SEED
"""

from __future__ import annotations

import os
import random
import sys

from core.check import check
from core.storage.datadir import open_data_dir, open_journal
from core.storage.journal_writer import Append, TruncatePrefix, run_journal_writer
from core.storage.testing import CLUSTER_TEST, make_chain
from net import wire

IN_FLIGHT_OPS = 8
CHECKPOINT_EVERY_OPS = 24
RETENTION_OPS = 8
FRAME_SIZES_BYTES = (256, 700, 4096)


def main(root: str, seed: int) -> None:
    rng = random.Random(seed)
    superblock = open_data_dir(root, cluster=CLUSTER_TEST, replica=0)
    journal, recovery = open_journal(root, superblock.state, IN_FLIGHT_OPS)
    check(not recovery.faults, f"faults after a crash: {recovery.faults}")
    last = journal.read(journal.op_max) if journal.op_max >= journal.op_min else None
    chain = {"parent": wire.frame_checksum(last) if last else 0, "release": None}
    os.write(1, f"start {journal.op_max}\n".encode())

    def take(frames_max: int):
        commands = []
        if chain["release"] is not None:
            commands.append(TruncatePrefix(chain["release"]))
            chain["release"] = None
        frames = make_chain(journal.op_max + 1, rng.randint(1, frames_max),
                            rng.choice(FRAME_SIZES_BYTES), parent=chain["parent"],
                            fill=rng.randrange(256))
        chain["parent"] = wire.frame_checksum(frames[-1])
        return commands + [Append(frames)]

    def report_durable(op: int) -> None:
        os.write(1, f"{op}\n".encode())
        if op - superblock.state.checkpoint_op >= CHECKPOINT_EVERY_OPS:
            # Checkpoint order: the superblock names the checkpoint before the journal lets go.
            superblock.update(checkpoint_op=op)
            chain["release"] = op - RETENTION_OPS

    run_journal_writer(journal, take, report_durable, IN_FLIGHT_OPS)


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]))
