"""kill -9 of a real journal writer process at random moments, many times in a row.

After each kill the dir is recovered as a restarted replica would: every op the writer reported
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


def recover_and_check(root: str, reported_durable: int) -> int:
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
        return recovery.op_max
    finally:
        journal.close()


@pytest.mark.slow
def test_every_op_reported_durable_survives_kill_9(tmp_path, backend):
    root = str(tmp_path / "data")
    format_small(root, backend)
    rng = random.Random(f"crash-{backend}")
    env = {**os.environ, "PYTHONPATH": REPO_ROOT}
    reported_max = 0
    for kill in range(KILLS_PER_BACKEND):
        writer = subprocess.Popen([sys.executable, WRITER, root, str(rng.randrange(1 << 30))],
                                  stdout=subprocess.PIPE, env=env)
        start = writer.stdout.readline().split()
        assert start and start[0] == b"start", start
        assert int(start[1]) >= reported_max
        time.sleep(rng.uniform(0, RUN_SECONDS_MAX))
        os.kill(writer.pid, signal.SIGKILL)
        lines = writer.stdout.read().split()
        writer.wait()
        writer.stdout.close()
        if lines:
            reported_max = max(reported_max, int(lines[-1]))
        recovered = recover_and_check(root, reported_max)
        assert recovered >= reported_max
    assert reported_max > KILLS_PER_BACKEND  # the writer did make progress between kills
