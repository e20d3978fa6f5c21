"""Stand-in roles that count into the metrics catalogue's counters, and a supervisor to run them
in a test subprocess whose JSON log the test reads.

Named like the real roles so that the catalogue finds their counters: "replication" commits
an op per beat, "journal" observes an fsync latency per beat, the others only beat.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

from core.roles import metrics
from core.roles.supervisor import RoleHandle, RoleSpec, Supervisor

BEAT_S = 0.01
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def counting(context) -> None:
    handle = RoleHandle(context)
    counters = handle.counters
    handle.ready()
    while not handle.stop_requested():
        handle.beat()
        if context.role == "replication":
            counters.add("replication", "ops_committed")
            counters.set("replication", "commit_op", counters.get("replication", "ops_committed"))
        elif context.role == "journal":
            metrics.FSYNC_SECONDS.observe(counters, 0.0003)
        time.sleep(BEAT_S)


def run_supervisor(cluster_id: int, metrics_address: str,
                   roles: tuple[str, ...] = ("replication", "journal"),
                   cpu: dict[str, tuple[int, ...]] | None = None) -> None:
    """Entry for a test subprocess."""
    specs = [RoleSpec(name, "tests.ops.metric_roles:counting") for name in roles]
    supervisor = Supervisor(cluster_id=cluster_id, replica=0, roles=specs, cpu=cpu or {},
                            extra_counters=metrics.COUNTER_NAMES, metrics_address=metrics_address)
    sys.exit(supervisor.run())


def wait_for_event(path, event: str, timeout_s: float = 30.0) -> dict:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        with open(path) as log_file:
            for line in log_file:
                if f'"event":"{event}"' in line:
                    return json.loads(line)
        time.sleep(0.05)
    raise AssertionError(f"no {event} in the supervisor's log: {open(path).read()[-2000:]}")


def start_supervisor(tmp_path, cluster_id: int, metrics_address: str, **options):
    """The supervisor of tests/ops/metric_roles.py in a subprocess, its log in a file."""
    log_path = tmp_path / "supervisor.log"
    code = (f"from tests.ops.metric_roles import run_supervisor; "
            f"run_supervisor({cluster_id}, {metrics_address!r}, **{options!r})")
    with open(log_path, "w") as log_file:
        process = subprocess.Popen([sys.executable, "-c", code], cwd=ROOT, stderr=log_file,
                                   env=dict(os.environ, NOTIFY_SOCKET=""))
    return process, log_path
