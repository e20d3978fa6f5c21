"""kill -9 of a real journal writer process at random moments, many times in a row.

The writer (crash_writer.py) writes like the VSR core: next ops, ops above gaps, gap fills and
new versions of recent ops. Every third kill also simulates a power loss: what the writer had
not yet reported durable is garbled or cut at random (kill -9 alone keeps the page cache).
After each kill the dir is recovered as a restarted replica would: for every op whose last
written version was reported durable (reported only after fdatasync), recovery must return
exactly that version.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time

import pytest

from core.storage.datadir import open_data_dir, open_journal
from core.storage.testing import CLUSTER_TEST
from core.storage.prepare import verify_frame
from net import wire

from .conftest import format_small
from .crash_writer import IN_FLIGHT_OPS

KILLS_PER_BACKEND = 50  # x 2 backends: 100 kills
WRITER = os.path.join(os.path.dirname(__file__), "crash_writer.py")
REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
RUN_SECONDS_MAX = 0.12


class Model:
    """op -> the last version written and whether it was reported durable."""

    def __init__(self):
        self.versions: dict[int, tuple[int, int, bool]] = {}  # op -> (run, seq, checksum)
        self.durable: dict[int, int] = {}  # op -> checksum, when its last version is durable

    def replay(self, run: int, lines: list[bytes]) -> dict[int, int]:
        """Apply one run's output; returns op -> checksum of the last versions written in it
        that were not reported durable."""
        written: list[tuple[int, int]] = []  # (seq, op) of this run, in order
        for line in lines:
            fields = line.split()
            if fields[0] == b"w":
                seq, op, checksum = int(fields[1]), int(fields[2]), int(fields[3])
                self.versions[op] = (run, seq, checksum)
                self.durable.pop(op, None)
                written.append((seq, op))
            elif fields[0] == b"d":
                reported = int(fields[1])
                for seq, op in written:
                    version = self.versions[op]
                    if seq <= reported and version[:2] == (run, seq):
                        self.durable[op] = version[2]
        return {op: self.versions[op][2] for _, op in written if op not in self.durable}


def recover_and_check(root: str, model: Model) -> int:
    superblock = open_data_dir(root, cluster=CLUSTER_TEST, replica=0)
    superblock.close()
    checkpoint_op = superblock.state.checkpoint_op
    journal, _ = open_journal(root, superblock.state, IN_FLIGHT_OPS)
    checked = 0
    try:
        for op, checksum in model.durable.items():
            if op > checkpoint_op:
                frame = journal.read(op)
                assert frame is not None, f"durable op {op} lost"
                assert wire.frame_checksum(frame) == checksum, f"op {op}: another version"
                checked += 1
        return checked
    finally:
        journal.close()


def simulate_power_loss(root: str, unreported: dict[int, int], rng: random.Random) -> bool:
    """Undo, at random, what the killed writer may not have synced: the entries it wrote but
    never reported durable, and (ring) their redundant headers and those of the last group,
    which only the next sync would have written. Only a record that holds the unreported
    version itself is hit (the kill may have come before it was written, leaving an older,
    durable one in place); bytes after it in its file were written later still, so they are
    unreported too: garbling past its end or cutting the file there is fair."""
    superblock = open_data_dir(root, cluster=CLUSTER_TEST, replica=0)
    superblock.close()
    journal, _ = open_journal(root, superblock.state, IN_FLIGHT_OPS, read_only=True)
    changed = False
    try:
        locations = [location for op, checksum in sorted(unreported.items())
                     if (stored := journal.stored(op)) is not None
                     and (identity := verify_frame(stored)) is not None
                     and identity.checksum == checksum
                     and (location := journal.locate(op)) is not None]
        for path, offset in locations:
            if rng.random() < 0.5:
                with open(path, "r+b") as f:
                    f.seek(offset + rng.randrange(256))
                    f.write(rng.randbytes(64))
                changed = True
        if superblock.state.journal_backend == "ring":
            for op in range(max(1, journal.op_max - 2 * IN_FLIGHT_OPS), journal.op_max + 1):
                if rng.random() < 0.25:
                    with open(journal.path, "r+b") as f:
                        f.seek(journal.header_offset(op) + rng.randrange(200))
                        f.write(rng.randbytes(32))
        elif locations and rng.random() < 0.5:
            path, offset = rng.choice(locations)
            os.truncate(path, offset + rng.randrange(os.path.getsize(path) - offset + 1))
            changed = True
    finally:
        journal.close()
    return changed


@pytest.mark.slow
def test_every_version_reported_durable_survives_kill_9(tmp_path, backend):
    root = str(tmp_path / "data")
    format_small(root, backend)
    rng = random.Random(f"crash-{backend}")
    env = {**os.environ, "PYTHONPATH": REPO_ROOT}
    model = Model()
    power_losses = 0
    checked = 0
    for kill in range(KILLS_PER_BACKEND):
        writer = subprocess.Popen([sys.executable, WRITER, root, str(rng.randrange(1 << 30))],
                                  stdout=subprocess.PIPE, env=env)
        assert writer.stdout.readline() == b"start\n"
        time.sleep(rng.uniform(0, RUN_SECONDS_MAX))
        os.kill(writer.pid, signal.SIGKILL)
        lines = writer.stdout.read().splitlines()
        writer.wait()
        writer.stdout.close()
        unreported = model.replay(kill, lines)
        if kill % 3 == 2:
            power_losses += simulate_power_loss(root, unreported, rng)
        checked += recover_and_check(root, model)
    assert checked > KILLS_PER_BACKEND  # the writer made progress and it was checked
    assert power_losses > 0  # some power losses did hit unsynced bytes
