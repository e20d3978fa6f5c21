"""The net role over real sockets and real rings: peers, clients, login, replies."""

from __future__ import annotations

import socket
import threading
import time

import pytest

from core import auth
from core.config import ReplicaAddress
from core.roles import records, wiring
from core.roles.net import NetRole
from core.roles.records import Kind, Lookup
from net import iggy, wire
from net.iggy import Code, Operation
from net.loop import LoopLimits
from shm import naming

CLUSTER = 9301


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class _Replica:
    """A net role in a thread, with the test holding the replication and owner ends."""

    def __init__(self, index: int, replicas):
        self.geometry = wiring.Geometry(CLUSTER, index, 1 << 20, 0)
        naming.remove_stale(CLUSTER, index)
        self.cleanup, event_fd = wiring.create(self.geometry)
        net_ends = wiring.attach(self.geometry, "net", event_fd)
        self.replication = wiring.attach(self.geometry, "replication", event_fd)
        self.owner = wiring.attach(self.geometry, "owner", event_fd)
        self.role = NetRole(replica=index, cluster_id=CLUSTER, replicas=replicas,
                            limits=LoopLimits(frame_size_max=1 << 20),
                            requests_in_flight_max=1, producers=net_ends.producers,
                            consumers=net_ends.consumers, doorbell=net_ends.doorbell,
                            clock=time.monotonic)
        self.role.start()
        self.running = True
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        while self.running:
            self.role.turn()

    def stop(self):
        self.running = False
        self.thread.join(timeout=5)
        self.role.close()
        self.cleanup()

    def take(self, ring: str, ends, kind: int, timeout_s: float = 5.0) -> bytes:
        consumer = ends.consumers[ring]
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            for record in consumer.pop(16):
                if records.kind_of(record) == kind:
                    data = bytes(record)
                    del record
                    consumer.release()
                    return data
            consumer.release()
            time.sleep(0.001)
        raise AssertionError(f"no record of kind {kind} on {ring} before the deadline")


@pytest.fixture
def cluster():
    replicas = tuple(ReplicaAddress("127.0.0.1", _free_port(), "127.0.0.1", _free_port())
                     for _ in range(3))
    nodes = [_Replica(0, replicas), _Replica(1, replicas)]
    yield replicas, nodes
    for node in nodes:
        node.stop()


def _recv_frame(sock: socket.socket) -> bytes:
    data = b""
    while len(data) < wire.HEADER_SIZE:
        data += sock.recv(wire.HEADER_SIZE - len(data))
    size = wire.frame_size(data)
    while len(data) < size:
        data += sock.recv(size - len(data))
    return data


def test_a_frame_sent_to_a_peer_arrives_on_its_inbound_ring(cluster):
    replicas, (zero, one) = cluster
    frame = wire.encode(wire.make_header(wire.Command.COMMIT, cluster=wire.cluster_bytes(CLUSTER),
                                         replica=0, commit=7))
    deadline = time.monotonic() + 5
    while 1 not in zero.role.peers_out or zero.role.peers_out[1].connecting:
        assert time.monotonic() < deadline
        time.sleep(0.01)
    zero.replication.producers["outbound"].push(records.send_peer(1, frame))
    record = one.take("inbound", one.replication, Kind.PEER_FRAME)
    sender, received = records.read_replica_frame(memoryview(record))
    assert sender == 0 and bytes(received) == frame


def test_a_peer_that_does_not_say_hello_is_closed_and_counted(cluster):
    replicas, (zero, _one) = cluster
    sock = socket.create_connection((replicas[0].peer_host, replicas[0].peer_port))
    frame = wire.encode(wire.make_header(wire.Command.COMMIT, cluster=wire.cluster_bytes(CLUSTER),
                                         replica=2, commit=1))
    sock.sendall(frame)
    assert sock.recv(10) == b""
    assert zero.role.bad_peer_frames == 1
    sock.close()


def test_client_login_goes_owner_then_replication_and_the_reply_comes_back(cluster):
    replicas, (zero, _one) = cluster
    client_id = b"\x05" * 16
    sock = socket.create_connection((replicas[0].client_host, replicas[0].client_port))
    sock.sendall(iggy.request_frame(client_id, 0, 1, Operation.NON_REPLICATED, b"", code=Code.PING))
    assert wire.decode_header(_recv_frame(sock)).status == 0
    sock.sendall(iggy.request_frame(client_id, 0, 0, Operation.REGISTER,
                                    iggy.login_body("iggy", "root-password")))
    query = zero.take("owner_net", zero.owner, Kind.CREDENTIALS_QUERY)
    conn, by, key = records.read_credentials_query(memoryview(query))
    assert (by, key) == (Lookup.USERNAME, b"iggy")
    zero.owner.producers["replies"].push(records.credentials(
        conn, True, 0, True, auth.hash_secret("root-password", n_log2=10)))
    request = zero.take("inbound", zero.replication, Kind.CLIENT_REQUEST)
    conn2, _user, frame = records.read_client_request(memoryview(request))
    header = wire.decode_client_frame(frame, 1 << 16)[0]
    assert conn2 == conn and header.operation == Operation.REGISTER
    reply = iggy.answer_frame(header, 0, (0).to_bytes(4, "little") + (11).to_bytes(8, "little"))
    zero.replication.producers["outbound"].push(records.client_frame(conn, reply))
    login = iggy.parse_reply(_recv_frame(sock), Operation.REGISTER)
    assert login.status == 0 and int.from_bytes(login.payload[4:12], "little") == 11
    sock.sendall(iggy.request_frame(client_id, 11, 1, Operation.NON_REPLICATED, b"",
                                    code=Code.GET_CLUSTER_METADATA))
    roster = _recv_frame(sock)[wire.HEADER_SIZE:]
    assert roster == iggy.cluster_metadata_body("metavsr", [
        iggy.Node(f"replica-{i}", a.client_host, a.client_port, leader=i == 0)
        for i, a in enumerate(replicas)])
    sock.close()
