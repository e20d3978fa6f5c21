"""kill -9 of a real journal writer process at random moments, many times in a row.

Every third kill also simulates a power loss: what the writer had not yet reported durable is
garbled or cut at random (kill -9 alone keeps the page cache). After each kill the dir is recovered as a restarted replica would: every op the writer reported
durable (reported only after fdatasync) must be there, the hash chain intact, no fault.
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
from net import wire

from .conftest import format_small
from .crash_writer import IN_FLIGHT_OPS

KILLS_PER_BACKEND = 50  # x 2 backends: 100 kills
WRITER = os.path.join(os.path.dirname(__file__), "crash_writer.py")
REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
RUN_SECONDS_MAX = 0.12


def recover_and_check(root: str, reported_durable: int):
    superblock = open_data_dir(root, cluster=CLUSTER_TEST, replica=0)
    superblock.close()
    checkpoint_op = superblock.state.checkpoint_op
    journal, recovery = open_journal(root, superblock.state, IN_FLIGHT_OPS)
    try:
        assert recovery.faults == ()
        assert recovery.op_max >= reported_durable, (recovery, reported_durable)
        parent = None
        for op in range(max(recovery.op_min, checkpoint_op + 1), recovery.op_max + 1):
            header, _ = wire.decode(journal.read(op))
            assert header.op == op
            assert parent is None or header.parent == parent, f"chain broken at op {op}"
            parent = header.checksum
        return recovery
    finally:
        journal.close()


def simulate_power_loss(root: str, durable: int, rng: random.Random) -> bool:
    """Undo, at random, what the killed writer may not have synced: bytes of every op above
    the last op known durable (reported, or kept by the recovery it started from), and (ring)
    the headers of the last durable batch, which only the next sync would have written."""
    superblock = open_data_dir(root, cluster=CLUSTER_TEST, replica=0)
    superblock.close()
    journal, _ = open_journal(root, superblock.state, IN_FLIGHT_OPS, read_only=True)
    changed = False
    try:
        unsynced = range(durable + 1, journal.op_max + 1)
        for op in unsynced:
            location = journal.locate(op)
            if location is not None and rng.random() < 0.5:
                path, offset = location
                with open(path, "r+b") as f:
                    f.seek(offset + rng.randrange(256))
                    f.write(rng.randbytes(64))
                changed = True
        if superblock.state.journal_backend == "ring":
            for op in range(durable - IN_FLIGHT_OPS + 1, journal.op_max + 1):
                if op > 0 and rng.random() < 0.5:
                    with open(journal.path, "r+b") as f:
                        f.seek(journal.header_offset(op) + rng.randrange(200))
                        f.write(rng.randbytes(32))
        elif unsynced and journal.locate(unsynced[0]) is not None and rng.random() < 0.5:
            path, offset = journal.locate(unsynced[0])
            os.truncate(path, offset + rng.randrange(os.path.getsize(path) - offset + 1))
            changed = True
    finally:
        journal.close()
    return changed


@pytest.mark.slow
def test_every_op_reported_durable_survives_kill_9(tmp_path, backend):
    root = str(tmp_path / "data")
    format_small(root, backend)
    rng = random.Random(f"crash-{backend}")
    env = {**os.environ, "PYTHONPATH": REPO_ROOT}
    reported_max = 0
    power_losses = 0
    for kill in range(KILLS_PER_BACKEND):
        writer = subprocess.Popen([sys.executable, WRITER, root, str(rng.randrange(1 << 30))],
                                  stdout=subprocess.PIPE, env=env)
        start = writer.stdout.readline().split()
        assert start and start[0] == b"start", start
        assert int(start[1]) >= reported_max
        recovered_at_start = int(start[1])  # durable too: recovery synced what it kept
        time.sleep(rng.uniform(0, RUN_SECONDS_MAX))
        os.kill(writer.pid, signal.SIGKILL)
        lines = writer.stdout.read().split()
        writer.wait()
        writer.stdout.close()
        if lines:
            reported_max = max(reported_max, int(lines[-1]))
        if kill % 3 == 2:
            power_losses += simulate_power_loss(root, max(reported_max, recovered_at_start), rng)
        recover_and_check(root, reported_max)
    assert reported_max > KILLS_PER_BACKEND  # the writer did make progress between kills
    assert power_losses > 0  # some power losses did hit unsynced bytes
