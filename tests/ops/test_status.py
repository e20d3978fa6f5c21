"""`metavsr status` against real metrics endpoints serving counters the test sets, and the
`Meter` roles count with (ring occupancy and full-waits read from a real ring)."""

from __future__ import annotations

import random
import socket

import pytest

from core.roles import metrics
from core.roles.metrics_server import MetricsServer
from core.roles.supervisor import ROLE_COUNTERS
from core.roles.wiring import ROLES
from shm import naming
from shm.counters import CounterTable
from shm.ring import Ring, RingFullTimeout, RingProducer
from tools import status


@pytest.fixture
def replicas():
    """Three replicas' counter tables, each served by a real MetricsServer on a free port."""
    cluster_id = random.SystemRandom().getrandbits(63) | 1
    tables, servers = [], []
    for index in range(3):
        naming.remove_stale(cluster_id, index)
        table = CounterTable.create(naming.ring_name(cluster_id, index, "counters"),
                                    ("supervisor",) + ROLES, ROLE_COUNTERS + metrics.COUNTER_NAMES)
        for role in ROLES:
            table.set(role, "ready", 1)
        _replica(table, index, view=4, commit=100, applied=100)
        server = MetricsServer("127.0.0.1:0",
                               lambda table=table: metrics.render(table.snapshot()))
        server.start()
        tables.append(table)
        servers.append(server)
    yield tables, [server.address for server in servers]
    for server in servers:
        server.stop()
    for table in tables:
        table.close()


def _replica(table, index: int, *, view: int, commit: int, applied: int,
             status: str = "normal") -> None:
    for name, value in (("replica", index), ("view", view), ("primary", view % 3),
                        ("view_status", metrics.VIEW_STATUS[status]), ("op", commit),
                        ("commit_op", commit), ("checkpoint_op", 64)):
        table.set("replication", name, value)
    table.set("owner", "applied_op", applied)


def _refused_address() -> tuple[str, int]:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()  # closed again: nothing listens there


def test_a_healthy_cluster_has_one_primary_and_every_figure(replicas):
    _, addresses = replicas
    rows = status.survey(addresses, timeout_s=2.0)
    assert [(r.replica, r.role, r.view, r.health) for r in rows] == [
        (0, "backup", 4, "ok"), (1, "primary", 4, "ok"), (2, "backup", 4, "ok")]
    assert all((r.op, r.commit, r.applied, r.checkpoint, r.lag) == (100, 100, 100, 64, 0)
               for r in rows)
    text = status.render(rows)
    assert text.splitlines()[0].split() == list(status.COLUMNS)
    assert text.splitlines()[-1] == "3/3 up; primary 1; view 4"


def test_health_names_what_is_wrong_first(replicas):
    tables, addresses = replicas
    _replica(tables[0], 0, view=3, commit=90, applied=90)  # missed view 4
    _replica(tables[2], 2, view=4, commit=100, applied=20)  # applies far behind
    rows = status.survey(addresses, timeout_s=2.0, lag_warn=50)
    assert [(r.health, r.lag) for r in rows] == [("old-view", 10), ("ok", 0), ("lagging", 80)]
    _replica(tables[0], 0, view=5, commit=100, applied=100, status="view_change")
    tables[2].set("snapshot", "ready", 0)
    rows = status.survey(addresses, timeout_s=2.0)
    assert [(r.role, r.health) for r in rows] == [("-", "view-change"), ("primary", "ok"),
                                                  ("backup", "starting")]


def test_a_replica_that_does_not_answer_is_down(replicas):
    _, addresses = replicas
    rows = status.survey([addresses[0], _refused_address(), None], timeout_s=2.0)
    assert [r.health for r in rows] == ["ok", "down", "down"]
    assert rows[1].error.startswith("ConnectionRefusedError") and rows[1].view is None
    assert rows[2].error == "no metrics address in cluster.json"
    text = status.render(rows)
    assert "1/3 up; primary none; view 4" in text  # replica 0 is a backup: no primary seen
    assert text.splitlines()[2].split()[-1] == "down"


def test_meter_publishes_ring_occupancy_and_full_waits(cluster_id):
    table = CounterTable.create(naming.ring_name(cluster_id, 0, "counters"),
                                ("supervisor",) + ROLES, ROLE_COUNTERS + metrics.COUNTER_NAMES)
    ring = Ring.create(naming.ring_name(cluster_id, 0, "inbound"), 4096, 1000)
    try:
        producer = RingProducer(ring, None, full_timeout_s=1.0)
        meter = metrics.Meter(table, "net", {"inbound": producer})
        assert table.get("net", "ring_inbound_capacity_bytes") == 4096
        producer.push(bytes(1000))
        meter.rings()
        assert table.get("net", "ring_inbound_used_bytes") == ring.used_bytes() > 1000
        assert table.get("net", "ring_inbound_full_waits") == 0
        for _ in range(3):
            producer.push(bytes(1000))
        with pytest.raises(RingFullTimeout):  # nobody consumes: the fifth push waits, then fails
            producer.push(bytes(1000), timeout_s=0.01)
        meter.rings()
        assert table.get("net", "ring_inbound_full_waits") == 1
        meter.add("bad_frames", 2)
        meter.add("bad_frames")
        assert table.get("net", "bad_frames") == 3
    finally:
        ring.close()
        table.close()


@pytest.fixture
def cluster_id():
    cluster = random.SystemRandom().getrandbits(63) | 1
    yield cluster
    naming.remove_stale(cluster, 0)


def test_meter_observe_counts_like_histogram_observe(cluster_id):
    names = ROLE_COUNTERS + metrics.COUNTER_NAMES
    table = CounterTable.create(naming.ring_name(cluster_id, 0, "counters"),
                                ("supervisor",) + ROLES, names)
    reference = CounterTable.create(naming.ring_name(cluster_id, 0, "reference"),
                                    ("supervisor",) + ROLES, names)
    try:
        meter = metrics.Meter(table, "journal")
        for seconds in (0.00003, 0.00005, 0.0003, 0.004, 2.0, 0.0003):
            meter.observe(metrics.FSYNC_SECONDS, seconds)
            metrics.FSYNC_SECONDS.observe(reference, seconds)
        assert table.snapshot() == reference.snapshot()
        assert table.get("journal", "fsync_sum_us") == 2_004_680
    finally:
        table.close()
        reference.close()
