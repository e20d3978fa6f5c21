"""Metrics: the catalogue rendered in Prometheus text format and read back line by line, the
HTTP endpoint's bounds, and a supervisor with stand-in roles scraped over a real socket."""

from __future__ import annotations

import http.client
import os
import signal
import socket
import time

import pytest

from core.roles import metrics
from core.roles.metrics import CATALOGUE, COUNTER_NAMES, FSYNC_SECONDS, Histogram, Metric, render
from core.roles.metrics_server import REQUEST_BYTES_MAX, MetricsServer
from core.roles.supervisor import ROLE_COUNTERS
from core.roles.wiring import RINGS, ROLES
from shm import naming
from shm.counters import CounterTable
from tests.ops.metric_roles import start_supervisor, wait_for_event
from tests.ops.prometheus_text import parse


@pytest.fixture
def table():
    """A replica's counter table as `metavsr serve` will make it: every role, every metric."""
    cluster_id = 9201
    naming.remove_stale(cluster_id, 0)
    counters = CounterTable.create(naming.ring_name(cluster_id, 0, "counters"),
                                   ("supervisor",) + ROLES, ROLE_COUNTERS + COUNTER_NAMES)
    yield counters
    counters.close()


def test_catalogue_is_consistent_with_the_roles_and_the_supervisor():
    assert not set(COUNTER_NAMES) & set(ROLE_COUNTERS)
    for metric in CATALOGUE:
        if metric.writer is None:
            assert metric.counter in ROLE_COUNTERS, metric.name
        else:
            assert metric.writer in ROLES, metric.name
    names = {m.name for m in CATALOGUE}
    for wanted in ("metavsr_ops_committed_total", "metavsr_prepares_in_flight",
                   "metavsr_fsync_duration_seconds", "metavsr_ring_used_bytes",
                   "metavsr_ring_full_waits_total", "metavsr_view", "metavsr_view_changes_total",
                   "metavsr_bad_frames_total", "metavsr_connections", "metavsr_apply_lag_ops",
                   "metavsr_checkpoint_duration_seconds", "metavsr_journal_size_bytes"):
        assert wanted in names


def test_every_metric_renders_and_parses_back_with_its_value(table):
    table.set("replication", "ops_committed", 7)
    table.set("replication", "view", 3)
    table.set("snapshot", "checkpoint_duration_us", 1500)
    table.set("net", "client_connections", 5)
    table.set("net", "peer_connections", 2)
    table.set("journal", "heartbeat", 11)
    table.set("net", "ring_inbound_full_waits", 4)
    families = parse(render(table.snapshot()))

    assert set(families) == {m.name for m in CATALOGUE}
    for metric in CATALOGUE:
        assert families[metric.name].kind == metric.kind
        assert families[metric.name].help == metric.help
    assert families["metavsr_ops_committed_total"].value() == 7
    assert families["metavsr_view"].value() == 3
    assert families["metavsr_checkpoint_duration_seconds"].value() == 0.0015
    assert families["metavsr_connections"].value(kind="client") == 5
    assert families["metavsr_connections"].value(kind="peer") == 2
    assert families["metavsr_role_heartbeats_total"].value(role="journal") == 11
    assert {l["role"] for _, l, _ in families["metavsr_role_ready"].samples} == set(ROLES)
    assert families["metavsr_ring_full_waits_total"].value(ring="inbound") == 4
    assert {l["ring"] for _, l, _ in families["metavsr_ring_used_bytes"].samples} == \
        {spec.name for spec in RINGS}


def test_fsync_histogram_buckets_are_cumulative_with_sum_and_count(table):
    for seconds in (0.00003, 0.00005, 0.0003, 0.004, 2.0):  # 50 us is in the le=5e-05 bucket
        FSYNC_SECONDS.observe(table, seconds)
    family = parse(render(table.snapshot()))[FSYNC_SECONDS.name]
    buckets = {l["le"]: v for name, l, v in family.samples if name.endswith("_bucket")}
    assert len(buckets) == len(FSYNC_SECONDS.bounds_us) + 1
    assert buckets["5e-05"] == 2
    assert buckets["0.00025"] == 2
    assert buckets["0.0005"] == 3
    assert buckets["0.005"] == 4
    assert buckets["1.0"] == 4
    assert buckets["+Inf"] == 5
    total = [v for name, _, v in family.samples if name.endswith("_sum")]
    count = [v for name, _, v in family.samples if name.endswith("_count")]
    assert total == [pytest.approx(2.00438)] and count == [5]


def test_counters_absent_from_the_table_are_left_out_not_invented():
    snapshot = {"supervisor": {"ready": 0, "heartbeat": 0, "stop": 0},
                "r0": {"ready": 1, "heartbeat": 9, "stop": 0}}
    families = parse(render(snapshot))
    assert set(families) == {"metavsr_role_ready", "metavsr_role_heartbeats_total"}
    assert families["metavsr_role_heartbeats_total"].value(role="r0") == 9


def test_help_and_label_values_are_escaped():
    catalogue = (Metric("x_total", "counter", 'a \\ back\nslash "quoted"', "a", "n",
                        (("path", 'C:\\dir\n"x"'),)),
                 Histogram("h_seconds", "h", "a", "h", (10,)))
    snapshot = {"a": {"n": 1, "h_b0": 1, "h_b1": 0, "h_sum_us": 10}}
    families = parse(render(snapshot, catalogue))
    assert families["x_total"].help == 'a \\ back\nslash "quoted"'
    assert families["x_total"].value(path='C:\\dir\n"x"') == 1
    assert families["h_seconds"].samples[0] == ("h_seconds_bucket", {"le": "1e-05"}, 1)


def _get(port: int, path: str) -> tuple[int, dict[str, str], bytes]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    connection.request("GET", path)
    response = connection.getresponse()
    result = response.status, dict(response.getheaders()), response.read()
    connection.close()
    return result


def _raw(port: int, request: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as client:
        client.sendall(request)
        client.shutdown(socket.SHUT_WR)
        reply = b""
        while chunk := client.recv(65536):
            reply += chunk
    return reply


def test_server_answers_metrics_404_and_bounded_requests_and_survives_errors():
    calls = []

    def render_or_fail() -> str:
        calls.append(1)
        if len(calls) == 2:
            raise RuntimeError("a rendering bug")
        return "# HELP up_total u\n# TYPE up_total counter\nup_total 1\n"

    server = MetricsServer("127.0.0.1:0", render_or_fail)
    server.start()
    try:
        port = server.address[1]
        status, headers, body = _get(port, "/metrics")
        assert status == 200 and headers["Content-Type"] == metrics.CONTENT_TYPE
        assert parse(body.decode())["up_total"].value() == 1
        assert _get(port, "/metrics")[0] == 500
        assert _get(port, "/")[0] == 404
        assert _get(port, "/metrics/x")[0] == 404
        # Exactly the bound, with no end of headers: the server has read all of it (so the
        # reply is not lost to a reset) and still needs more, which it refuses.
        start = b"GET /metrics HTTP/1.0\r\nX-Pad: "
        huge = start + b"a" * (REQUEST_BYTES_MAX - len(start) - 2) + b"\r\n"
        assert len(huge) == REQUEST_BYTES_MAX
        assert _raw(port, huge).startswith(b"HTTP/1.0 431")
        assert _raw(port, b"G E T / HTTP/1.0\r\n\r\n").startswith(b"HTTP/1.0 400")
        assert _raw(port, b"POST /metrics HTTP/1.0\r\n\r\n").startswith(b"HTTP/1.0 501")
        assert _raw(port, b"") == b""  # a client that connects and leaves
        assert _get(port, "/metrics?x=1")[0] == 200
    finally:
        server.stop()
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", port), timeout=2)


def test_supervisor_serves_metrics_that_move_between_scrapes(tmp_path):
    cluster_id = 9202
    process, log_path = start_supervisor(tmp_path, cluster_id, "127.0.0.1:0")
    try:
        port = wait_for_event(log_path, "metrics_serving")["port"]
        wait_for_event(log_path, "replica_ready")
        first = parse(_get(port, "/metrics")[2].decode())
        # A bad client in between must not disturb the supervisor or the next scrape.
        _raw(port, b"\xff" * 100)
        time.sleep(0.5)
        second = parse(_get(port, "/metrics")[2].decode())
        assert process.poll() is None

        def moved(name: str, **labels: str) -> bool:
            return second[name].value(**labels) > first[name].value(**labels)

        assert moved("metavsr_ops_committed_total")
        assert moved("metavsr_commit_op")
        assert moved("metavsr_role_heartbeats_total", role="journal")
        fsync_counts = [[v for n, _, v in scrape[FSYNC_SECONDS.name].samples
                         if n.endswith("_count")][0] for scrape in (first, second)]
        assert fsync_counts[1] > fsync_counts[0]
        assert first["metavsr_role_ready"].value(role="replication") == 1
    finally:
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=30) == 0
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", port), timeout=2)
    assert not [n for n in os.listdir("/dev/shm") if f"metavsr-{cluster_id}-" in n]


def test_a_metrics_address_in_use_leaves_the_replica_running(tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        address = "127.0.0.1:%d" % taken.getsockname()[1]
        process, log_path = start_supervisor(tmp_path, 9203, address)
        try:
            assert wait_for_event(log_path, "metrics_unavailable")["address"] == address
            wait_for_event(log_path, "replica_ready")
            assert process.poll() is None
        finally:
            process.send_signal(signal.SIGTERM)
            assert process.wait(timeout=30) == 0
