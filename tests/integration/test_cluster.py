"""A real 3-replica cluster on 127.0.0.1: real processes, sockets, files and fsync.

The test owns the replica processes (one `metavsr serve` each) so it can kill -9 them and
restart them; the cluster's files are created the way `metavsr cluster up` creates them.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time

import orjson
import pytest

from core.roles.state import replay
from net.client import ClientError
from net.iggy import Code
from net.operations import MetadataClient
from tools import cluster as cluster_tool
from tools import cluster_files
from tools.ports import free_ports

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
READY_TIMEOUT_S = 60.0


def _free_base_port() -> int:
    """Client, peer (+100) and metrics (+200) ports of three replicas."""
    return free_ports([offset + i for offset in (0, 100, 200) for i in range(3)])


class Cluster:
    def __init__(self, directory: str):
        self.directory = directory
        args = argparse.Namespace(replicas=3, base_port=_free_base_port(), journal="segmented")
        self.configs = cluster_tool._create_or_resume(directory, args)
        self.addresses = cluster_files.cluster_addresses(directory)
        self.credentials = cluster_files.read_credentials(directory)
        self.processes: list[subprocess.Popen | None] = [None] * 3

    def start(self, index: int) -> None:
        log = open(os.path.join(self.directory, f"replica-{index}.log"), "ab")
        self.processes[index] = subprocess.Popen(
            [sys.executable, "-m", "tools.cli", "serve", "--config", self.configs[index]],
            cwd=ROOT, stdout=log, stderr=log, stdin=subprocess.DEVNULL)

    def kill(self, index: int) -> None:
        process = self.processes[index]
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=10)

    def stop(self) -> None:
        for process in self.processes:
            if process is not None and process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in self.processes:
            if process is not None:
                try:
                    process.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    process.kill()

    def digests(self) -> set[tuple[int, bytes]]:
        """(op, state digest) of every stopped replica at the newest op all of them hold:
        each replica's checkpoint plus its journal replayed (read-only)."""
        with open(os.path.join(self.directory, cluster_files.CLUSTER_FILE), "rb") as source:
            cluster_id = orjson.loads(source.read())["cluster_id"]
        data_dirs = [os.path.join(self.directory, f"replica-{i}") for i in range(3)]
        common = min(replay(d, cluster_id, i)[1] for i, d in enumerate(data_dirs))
        return {(op, mux.digest()) for op, mux in (
            replay(d, cluster_id, i, common)[::-1] for i, d in enumerate(data_dirs))}

    def client(self, **kwargs) -> MetadataClient:
        for index, process in enumerate(self.processes):
            assert process is not None and process.poll() is None, (
                f"replica {index} is not running; see {self.directory}/replica-{index}.log")
        client = MetadataClient(list(self.addresses), **kwargs)
        deadline = time.monotonic() + READY_TIMEOUT_S
        while True:
            try:
                client.login(*self.credentials)
                return client
            except (ClientError, OSError):
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)

    def primary(self, client: MetadataClient) -> int:
        roster = client.read(Code.GET_CLUSTER_METADATA)
        from net.client import _parse_roster
        for node in _parse_roster(roster):
            if node.leader:
                return self.addresses.index((node.ip, node.tcp_port))
        raise AssertionError("no leader in the roster")


def test_every_kind_of_operation_round_trips_with_its_errors(cluster):
    client = cluster.client(timeout_s=2.0, deadline_s=20.0)
    stream = client.create_stream("orders")
    assert stream.name == "orders" and stream.id == 0
    with pytest.raises(ClientError) as duplicate:
        client.create_stream("orders")
    assert duplicate.value.name == "stream_name_already_exists"
    topic = client.create_topic("orders", "events", 3)
    assert topic.partitions_count == 3
    client.create_partitions("orders", "events", 2)
    assert client.get_topic("orders", "events").partitions_count == 5
    group = client.create_consumer_group("orders", "events", "billing")
    client.join_consumer_group("orders", "events", "billing")
    assert client.get_consumer_group("orders", "events", group.id).members_count == 1
    user = client.create_user("alice", "alice-password")
    assert client.get_user("alice").id == user.id
    with pytest.raises(ClientError) as root:
        client.delete_user(0)
    assert root.value.name == "cannot_delete_user"
    assert [s.name for s in client.get_streams(stale=True)] in ([], ["orders"])
    client.delete_stream("orders")
    assert client.get_stream("orders") is None
    alice = cluster.client(timeout_s=2.0, deadline_s=20.0)
    alice.logout()
    alice.login("alice", "alice-password")
    with pytest.raises(ClientError) as denied:
        alice.create_stream("not-allowed")
    assert denied.value.name == "unauthorized"


def test_ctl_creates_a_stream_on_the_local_cluster(cluster):
    cluster.client().close()  # waits until the cluster accepts logins
    out = subprocess.run([sys.executable, "-m", "tools.cli", "ctl", "--dir", cluster.directory,
                          "--json", "create-stream", "from-ctl"], cwd=ROOT, capture_output=True,
                         text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert "from-ctl" in out.stdout


def test_writes_resume_after_kill_9_of_the_primary_and_nothing_acked_is_lost(cluster):
    client = cluster.client(timeout_s=0.5, deadline_s=30.0)
    primary = cluster.primary(client)
    acked = []
    for i in range(20):
        acked.append(client.create_stream(f"before-{i}").name)
    cluster.kill(primary)
    killed_at = time.monotonic()
    client.create_stream("after-kill")
    gap_s = time.monotonic() - killed_at
    acked.append("after-kill")
    assert gap_s < 2.0, f"writes resumed {gap_s:.2f} s after the primary died"
    names = {s.name for s in client.get_streams()}
    assert set(acked) <= names
    cluster.start(primary)
    print(f"failover gap {gap_s:.3f} s")


def test_whole_cluster_kill_9_then_restart_keeps_every_acknowledged_write(cluster):
    client = cluster.client(timeout_s=1.0, deadline_s=30.0)
    acked = [client.create_stream(f"durable-{i}").name for i in range(40)]
    client.create_topic("durable-0", "t", 2)
    for index in range(3):
        cluster.kill(index)
    for index in range(3):
        cluster.start(index)
    client = cluster.client(timeout_s=1.0, deadline_s=30.0)
    names = {s.name for s in client.get_streams()}
    assert set(acked) <= names
    assert client.get_topic("durable-0", "t").partitions_count == 2
    # Every replica applied the same state: each answers a stale read with the same list.
    client.create_stream("marker")
    views = set()
    for host, port in cluster.addresses:
        replica = MetadataClient([(host, port)], timeout_s=1.0, deadline_s=30.0)
        replica.session, replica.client_id, replica.user_id = (
            client.session, client.client_id, client.user_id)
        deadline = time.monotonic() + 20
        while True:
            listed = tuple(sorted(s.name for s in replica.get_streams(stale=True)))
            if "marker" in listed or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        views.add(listed)
        replica.close()
    assert len(views) == 1 and "marker" in next(iter(views))
    # And the replicas' whole states agree, digest for digest, at the newest common op.
    cluster.stop()
    [(op, _)] = cluster.digests()
    assert op >= len(acked) + 2


def _role_pids(process: subprocess.Popen) -> list[int]:
    out = subprocess.run(["pgrep", "-P", str(process.pid)], capture_output=True, text=True)
    return [int(pid) for pid in out.stdout.split()]


def _catches_up(cluster: Cluster, index: int, client: MetadataClient, name: str) -> None:
    replica = MetadataClient([cluster.addresses[index]], timeout_s=1.0, deadline_s=30.0)
    replica.session, replica.client_id, replica.user_id = (
        client.session, client.client_id, client.user_id)
    deadline = time.monotonic() + 30
    while True:
        try:
            if name in {s.name for s in replica.get_streams(stale=True)}:
                break
        except ClientError as error:
            # A replica that has not yet applied this session's Register does not know it.
            assert error.code == 40, error
        assert time.monotonic() < deadline, f"replica {index} never caught up to {name}"
        time.sleep(0.05)
    replica.close()


def test_kill_9_of_any_role_of_a_backup_fails_that_replica_which_recovers_and_catches_up(cluster):
    client = cluster.client(timeout_s=1.0, deadline_s=30.0)
    backup = (cluster.primary(client) + 1) % 3
    for round_number in range(5):
        process = cluster.processes[backup]
        roles = _role_pids(process)
        assert len(roles) == 5
        os.kill(roles[round_number], signal.SIGKILL)
        assert process.wait(timeout=20) == 1  # fail-stop: the whole replica stops
        client.create_stream(f"while-down-{round_number}")
        cluster.start(backup)
        _catches_up(cluster, backup, client, f"while-down-{round_number}")
