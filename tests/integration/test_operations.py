"""Operating a real 3-replica cluster: metrics scraped under load with every role pinned as
`metavsr cpu-plan` suggests, readiness told to systemd only once a replica joined the view,
SIGTERM under load, and `metavsr status`.

Real `metavsr serve` processes on 127.0.0.1 (the Cluster helper of test_cluster.py); the
metrics endpoints are the ones `metavsr cluster up` configures (client port + 200).
"""

from __future__ import annotations

import http.client
import os
import signal
import socket
import subprocess
import sys
import threading
import time

import orjson
import pytest

from core.roles.supervisor import STOP_TIMEOUT_S
from net.client import ClientError
from shm import naming
from tests.integration.test_cluster import ROOT, Cluster
from tests.ops.prometheus_text import parse
from tests.ops.test_cpu_plan import _allowed_cpus
from tools import cluster_files, cpu_plan

# The supervisor's own bound on a stop, plus the interpreter's exit; the unit's
# TimeoutStopSec (30 s) is the outer bound systemd enforces.
EXIT_BOUND_S = STOP_TIMEOUT_S + 5.0


def _scrape(address: tuple[str, int]) -> dict:
    connection = http.client.HTTPConnection(*address, timeout=5)
    try:
        connection.request("GET", "/metrics")
        response = connection.getresponse()
        assert response.status == 200
        return parse(response.read().decode())
    finally:
        connection.close()


def _until(predicate, what: str, timeout_s: float = 30.0):
    deadline = time.monotonic() + timeout_s
    while True:
        value = predicate()
        if value:
            return value
        assert time.monotonic() < deadline, f"not within {timeout_s} s: {what}"
        time.sleep(0.05)


class Writer(threading.Thread):
    """Creates streams one after another until stopped; keeps the names acknowledged."""

    def __init__(self, cluster: Cluster, prefix: str):
        super().__init__(daemon=True)
        self.client = cluster.client(timeout_s=1.0, deadline_s=3.0)
        self.prefix = prefix
        self.acked: list[str] = []
        self.failures = 0
        self.stopping = threading.Event()

    def run(self) -> None:
        while not self.stopping.is_set():
            name = f"{self.prefix}-{len(self.acked)}-{self.failures}"
            try:
                self.client.create_stream(name)
            except (ClientError, OSError):
                self.failures += 1  # outcome unknown: not counted as acknowledged
                continue
            self.acked.append(name)

    def stop(self) -> list[str]:
        self.stopping.set()
        self.join(timeout=30)
        assert not self.is_alive()
        self.client.close()
        return self.acked


@pytest.fixture
def pinned_cluster(tmp_path):
    """The cluster, each replica with the [cpu] table `metavsr cpu-plan` suggests here."""
    cluster = Cluster(str(tmp_path / "cluster"))
    tables, _ = cpu_plan.plan(sorted(os.sched_getaffinity(0)), replicas=3)
    for path, table in zip(cluster.configs, tables):
        with open(path, "a") as config:
            config.write("\n[cpu]\n" + "".join(f"{role} = {cpus}\n"
                                                 for role, cpus in table.items()))
    for index in range(3):
        cluster.start(index)
    yield cluster, tables
    cluster.stop()


def _role_pids(cluster: Cluster, index: int) -> dict[str, int]:
    with open(os.path.join(cluster.directory, f"replica-{index}.log")) as log:
        spawned = [orjson.loads(line) for line in log if '"event":"role_spawned"' in line]
    return {event["role_name"]: event["pid"] for event in spawned}


def test_metrics_of_a_live_pinned_cluster_move_under_load(pinned_cluster):
    cluster, tables = pinned_cluster
    addresses = cluster_files.metrics_addresses(cluster.directory)
    writer = Writer(cluster, "load")
    before = [_scrape(address) for address in addresses]
    writer.start()
    _until(lambda: len(writer.acked) >= 50, "50 writes acknowledged")
    during = [_scrape(address) for address in addresses]
    acked = writer.stop()
    for index, (old, new) in enumerate(zip(before, during)):
        assert new["metavsr_ops_committed_total"].value() > old[
            "metavsr_ops_committed_total"].value(), index
        fsyncs = new["metavsr_fsync_duration_seconds"]
        assert [v for name, _, v in fsyncs.samples if name.endswith("_count")][0] > [
            v for name, _, v in old["metavsr_fsync_duration_seconds"].samples
            if name.endswith("_count")][0], index
        # Every replica dials both others and accepts both others' dials.
        assert new["metavsr_connections"].value(kind="peer") == 4, index
        assert new["metavsr_replica"].value() == index
        assert {v for _, _, v in new["metavsr_role_ready"].samples} == {1}
    # The writer's connection (and the test's login client) are counted where they landed.
    assert sum(s["metavsr_connections"].value(kind="client") for s in during) >= 1
    # Once the writes stop, every replica's counters reach the same commit and apply it.
    last = len(acked)

    def settled():
        scraped = [_scrape(address) for address in addresses]
        commits = {s["metavsr_commit_op"].value() for s in scraped}
        applied = {s["metavsr_applied_op"].value() for s in scraped}
        lag = {s["metavsr_apply_lag_ops"].value() for s in scraped}
        # The journal's size is refreshed once a second, so it may trail the writes.
        grown = all(s["metavsr_journal_size_bytes"].value() >
                    old["metavsr_journal_size_bytes"].value() for s, old in zip(scraped, before))
        return len(commits) == 1 and commits == applied and lag == {0} and grown and scraped

    # Every role of the real replica runs on the CPUs of its table (read back from /proc).
    for index, table in enumerate(tables):
        pids = _role_pids(cluster, index)
        assert len(pids) == 5
        for role, pid in pids.items():
            assert _allowed_cpus(pid) == table[role], (index, role)
        assert _allowed_cpus(cluster.processes[index].pid) == table["supervisor"]
    scraped = _until(settled, "every replica committed and applied the same op, "
                              "and its journal grew")
    assert scraped[0]["metavsr_ops_committed_total"].value() >= last
    assert len({s["metavsr_view"].value() for s in scraped}) == 1


def test_ready_only_once_the_replica_joined_the_view(tmp_path, monkeypatch):
    # One replica under a NOTIFY_SOCKET the test owns, its peers down: it recovers from disk
    # but cannot join a view without a quorum, so no READY=1 until they are up.
    cluster = Cluster(str(tmp_path / "cluster"))
    try:
        _ready_after_joining(cluster, tmp_path, monkeypatch)
    finally:
        cluster.stop()


def _ready_after_joining(cluster: Cluster, tmp_path, monkeypatch) -> None:
    address = str(tmp_path / "notify.sock")
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    listener.bind(address)
    listener.settimeout(0.2)
    monkeypatch.setenv("NOTIFY_SOCKET", address)
    cluster.start(0)
    monkeypatch.delenv("NOTIFY_SOCKET")
    seen: list[str] = []

    def receive(until) -> None:
        deadline = time.monotonic() + 30
        while not until():
            assert time.monotonic() < deadline, f"notifications: {seen[-6:]}"
            try:
                seen.extend(listener.recv(4096).decode().split("\n"))
            except socket.timeout:
                pass

    receive(lambda: sum(m.startswith("STATUS=joining the view") for m in seen) >= 3)
    assert "READY=1" not in seen and "WATCHDOG=1" not in seen
    cluster.start(1)
    cluster.start(2)
    receive(lambda: "READY=1" in seen)
    ready = seen.index("READY=1")
    status = seen[ready + 1]
    assert status.startswith("STATUS=view ") and " normal; " in status, status
    listener.close()


def test_sigterm_under_load_exits_0_and_keeps_every_acknowledged_write(cluster):
    writer = Writer(cluster, "term")
    primary = cluster.primary(writer.client)
    writer.start()
    _until(lambda: len(writer.acked) >= 30, "30 writes acknowledged")
    # The primary first, under load: the others go on in a new view.
    cluster.processes[primary].send_signal(signal.SIGTERM)
    assert cluster.processes[primary].wait(timeout=EXIT_BOUND_S) == 0
    count = len(writer.acked)
    _until(lambda: len(writer.acked) >= count + 10, "writes resumed in the next view")
    # The writer's last request may be in flight: it is either acknowledged or not counted.
    writer.stopping.set()
    acked = writer.stop()
    others = [index for index in range(3) if index != primary]
    for index in others:
        cluster.processes[index].send_signal(signal.SIGTERM)
    for index in others:
        assert cluster.processes[index].wait(timeout=EXIT_BOUND_S) == 0
    for index in range(3):
        events = _events(cluster, index, "replica_stopped", "replication_stopped",
                         "owner_stopped")
        assert events["replica_stopped"]["clean"] is True, index
        # Roles stop in reverse start order: the owner applied every op replication handed
        # it before it exited.
        assert events["owner_stopped"]["applied_op"] == events["replication_stopped"][
            "handed_to_apply"], (index, events)
    assert not [n for n in os.listdir("/dev/shm") if n.startswith(_shm_prefix(cluster))]
    for index in range(3):
        cluster.start(index)
    client = cluster.client(timeout_s=1.0, deadline_s=30.0)
    names = {stream.name for stream in client.get_streams()}
    missing = set(acked) - names
    assert not missing, f"{len(missing)} acknowledged writes lost: {sorted(missing)[:5]}"


def _events(cluster: Cluster, index: int, *names: str) -> dict[str, dict]:
    """The latest event of each name in a replica's log."""
    found: dict[str, dict] = {}
    with open(os.path.join(cluster.directory, f"replica-{index}.log")) as log:
        for line in log:
            event = orjson.loads(line) if line.startswith("{") else {}
            if event.get("event") in names:
                found[event["event"]] = event
    assert set(found) == set(names), (index, set(names) - set(found))
    return found


def _shm_prefix(cluster: Cluster) -> str:
    with open(os.path.join(cluster.directory, cluster_files.CLUSTER_FILE), "rb") as source:
        return f"metavsr-{orjson.loads(source.read())['cluster_id']}-"


def _status(cluster: Cluster, *extra: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "tools.cli", "status", "--dir",
                           cluster.directory, *extra], cwd=ROOT, capture_output=True,
                          text=True, timeout=60)


def test_status_shows_one_primary_equal_views_and_a_killed_replica_down(cluster):
    client = cluster.client()
    client.create_stream("seen-by-status")
    primary = cluster.primary(client)
    client.close()

    def all_ok():
        out = _status(cluster, "--json")
        return out.returncode == 0 and orjson.loads(out.stdout)["replicas"]

    rows = _until(all_ok, "status reports every replica ok")
    assert [row["role"] for row in rows].count("primary") == 1
    assert rows[primary]["role"] == "primary"
    assert len({row["view"] for row in rows}) == 1
    assert all(row["commit"] >= 2 and row["lag"] == 0 for row in rows), rows
    backup = (primary + 1) % 3
    cluster.kill(backup)
    naming.remove_stale(int(_shm_prefix(cluster).split("-")[1]), backup)  # no restart follows
    out = _status(cluster)
    assert out.returncode == 1, out.stdout + out.stderr
    lines = out.stdout.splitlines()
    row = lines[1 + backup].split()
    assert row[0] == str(backup) and row[-1] == "down", out.stdout
    assert f"2/3 up; primary {primary}; view " in out.stdout
    healthy = [lines[1 + index].split() for index in range(3) if index != backup]
    assert sorted(r[2] for r in healthy) == ["backup", "primary"]
    assert healthy[0][3] == healthy[1][3]  # equal views
