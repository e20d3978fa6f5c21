"""Stand-in roles for supervisor tests: steady, dying and hanging processes."""

from __future__ import annotations

import os
import sys
import time

from core import log
from core.roles.supervisor import RoleHandle, RoleSpec, Supervisor

STOPPING_S = 0.3  # a steady role takes this long to stop, so the order of stops shows


def steady(context) -> None:
    handle = RoleHandle(context)
    handle.ready()
    while not handle.stop_requested():
        handle.beat()
        time.sleep(0.01)
    log.info("role_stopping")
    time.sleep(STOPPING_S)


def dies_after_ready(context) -> None:
    handle = RoleHandle(context)
    handle.ready()
    time.sleep(float(context.settings.get("die_after_s", 0.3)))
    os._exit(3)


def hangs_after_ready(context) -> None:
    handle = RoleHandle(context)
    handle.ready()
    while not handle.stop_requested():
        time.sleep(0.01)  # never beats: the watchdog must stop


def run_supervisor(cluster_id: int, kinds: str, stall_s: float = 5.0) -> None:
    """Entry for a test subprocess: one role per letter s(teady) d(ies) h(angs)."""
    entries = {"s": "steady", "d": "dies_after_ready", "h": "hangs_after_ready"}
    roles = [RoleSpec(f"r{i}", f"tests.roles.fake_roles:{entries[k]}") for i, k in enumerate(kinds)]
    supervisor = Supervisor(cluster_id=cluster_id, replica=0, roles=roles, cpu={"r0": (0,)},
                            heartbeat_stall_s=stall_s)
    sys.exit(supervisor.run())
