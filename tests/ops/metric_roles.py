"""Stand-in roles that count into the metrics catalogue's counters, and a supervisor to run them.

Named like the real roles so that the catalogue finds their counters: "replication" commits
an op per beat, "journal" observes an fsync latency per beat.
"""

from __future__ import annotations

import sys
import time

from core.roles import metrics
from core.roles.supervisor import RoleHandle, RoleSpec, Supervisor

BEAT_S = 0.01


def counting(context) -> None:
    handle = RoleHandle(context)
    counters = handle.counters
    handle.ready()
    while not handle.stop_requested():
        handle.beat()
        if context.role == "replication":
            counters.add("replication", "ops_committed")
            counters.set("replication", "commit_op", counters.get("replication", "ops_committed"))
        else:
            metrics.FSYNC_SECONDS.observe(counters, 0.0003)
        time.sleep(BEAT_S)


def run_supervisor(cluster_id: int, metrics_address: str) -> None:
    """Entry for a test subprocess."""
    roles = [RoleSpec(name, "tests.ops.metric_roles:counting") for name in ("replication", "journal")]
    supervisor = Supervisor(cluster_id=cluster_id, replica=0, roles=roles, cpu={},
                            extra_counters=metrics.COUNTER_NAMES, metrics_address=metrics_address)
    sys.exit(supervisor.run())
