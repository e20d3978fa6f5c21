"""The peer handshake over real sockets and rings: replicas that share the cluster key talk,
anyone else (wrong key, other cluster, no handshake, a replayed proof) is closed and counted,
and nothing they send reaches replication. Clients cannot send peer commands."""

from __future__ import annotations

import os
import socket
import threading
import time

import pytest

from core import auth
from core.config import ReplicaAddress
from core.roles import records, wiring
from core.roles.net import NetRole
from core.roles.records import Kind
from net import iggy, wire
from net.iggy import Operation
from net.loop import LoopLimits
from net.wire import Command
from shm import naming
from tests.integration.test_cluster import _free_base_port

CLUSTER = 9377
CLUSTER_BYTES = wire.cluster_bytes(CLUSTER)
KEY = bytes.fromhex(auth.new_cluster_key())




class _Replica:
    """A net role in a thread; the test holds its replication ends."""

    def __init__(self, index: int, replicas, key: bytes):
        geometry = wiring.Geometry(CLUSTER, index, 1 << 20, 0)
        naming.remove_stale(CLUSTER, index)
        self.cleanup, event_fd = wiring.create(geometry)
        ends = wiring.attach(geometry, "net", event_fd)
        self.replication = wiring.attach(geometry, "replication", event_fd)
        self.owner = wiring.attach(geometry, "owner", event_fd)
        self.role = NetRole(replica=index, cluster_id=CLUSTER, replicas=replicas,
                            limits=LoopLimits(frame_size_max=1 << 20, handshake_timeout_s=2),
                            requests_in_flight_max=1, producers=ends.producers,
                            consumers=ends.consumers, doorbell=ends.doorbell,
                            clock=time.monotonic, cluster_key=key)
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

    def inbound(self, timeout_s: float) -> list[bytes]:
        """Peer frames that reached the inbound ring within timeout_s."""
        consumer = self.replication.consumers["inbound"]
        got = []
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            for record in consumer.pop(16):
                if records.kind_of(record) == Kind.PEER_FRAME:
                    got.append(bytes(record))
                del record
            consumer.release()
            if got:
                return got
            time.sleep(0.002)
        return got


def _replicas(count: int = 3):
    # Below the ephemeral range (a bind-0 port may be taken by a dial before we listen on it).
    base = _free_base_port()
    return tuple(ReplicaAddress("127.0.0.1", base + i, "127.0.0.1", base + 100 + i)
                 for i in range(count))


@pytest.fixture
def nodes(request):
    replicas = _replicas()
    keys = getattr(request, "param", (KEY, KEY))
    started = [_Replica(i, replicas, key) for i, key in enumerate(keys)]
    yield replicas, started
    for node in started:
        node.stop()


def _wait_for(condition, timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "condition not reached before the deadline"
        time.sleep(0.005)


def _recv_frame(sock: socket.socket) -> bytes:
    data = b""
    while len(data) < wire.HEADER_SIZE:
        chunk = sock.recv(wire.HEADER_SIZE - len(data))
        if not chunk:
            raise ConnectionError("closed")
        data += chunk
    size = wire.frame_size(data)
    while len(data) < size:
        data += sock.recv(size - len(data))
    return data


def _closed(sock: socket.socket) -> bool:
    sock.settimeout(5)
    try:
        while sock.recv(4096):
            pass
        return True
    except ConnectionResetError:
        return True


def _commit(replica: int, cluster: bytes = CLUSTER_BYTES) -> bytes:
    return wire.encode(wire.make_header(Command.COMMIT, cluster=cluster, replica=replica,
                                        commit=7))


def _hello(sock: socket.socket, replica: int, cluster: bytes = CLUSTER_BYTES) -> tuple:
    nonce = os.urandom(32)
    sock.sendall(wire.encode(wire.make_header(Command.PEER_HELLO, cluster=cluster,
                                              replica=replica, release=wire.WIRE_VERSION,
                                              nonce=nonce)))
    challenge, _ = wire.decode(_recv_frame(sock))
    assert challenge.command == Command.PEER_CHALLENGE
    return nonce, challenge


def test_replicas_sharing_the_key_authenticate_and_exchange_frames(nodes):
    _replicas_, (zero, one) = nodes
    _wait_for(lambda: 1 in zero.role.peers_out and 0 in one.role.peers_out)
    zero.replication.producers["outbound"].push(records.send_peer(1, _commit(0)))
    [record] = one.inbound(5.0)
    sender, frame = records.read_replica_frame(memoryview(record))
    assert sender == 0 and bytes(frame) == _commit(0)
    assert zero.role.peer_auth_failures == one.role.peer_auth_failures == 0


@pytest.mark.parametrize("nodes", [(KEY, bytes.fromhex(auth.new_cluster_key()))],
                         indirect=True)
def test_replicas_with_different_keys_never_link_and_count_the_failures(nodes):
    _replicas_, (zero, one) = nodes
    _wait_for(lambda: zero.role.peer_auth_failures >= 2 and one.role.peer_auth_failures >= 2)
    assert 1 not in zero.role.peers_out and 0 not in one.role.peers_out
    zero.replication.producers["outbound"].push(records.send_peer(1, _commit(0)))
    assert one.inbound(0.3) == []


def test_an_impostor_with_a_wrong_key_is_closed_before_any_frame_is_taken(nodes):
    replicas, (zero, _one) = nodes
    sock = socket.create_connection((replicas[0].peer_host, replicas[0].peer_port))
    nonce, challenge = _hello(sock, 2)
    # The acceptor's proof is checkable only with the key; the impostor forges its own.
    forged = auth.peer_proof(b"not the key" * 3, b"dial", CLUSTER_BYTES, challenge.nonce, nonce,
                             2, 0)
    sock.sendall(wire.encode(wire.make_header(Command.PEER_AUTH, cluster=CLUSTER_BYTES,
                                              replica=2, release=wire.WIRE_VERSION,
                                              proof=forged)) + _commit(2))
    assert _closed(sock)
    assert zero.role.peer_auth_failures == 1
    assert zero.inbound(0.3) == []


def test_a_proof_from_an_earlier_handshake_does_not_replay(nodes):
    replicas, (zero, _one) = nodes
    first = socket.create_connection((replicas[0].peer_host, replicas[0].peer_port))
    nonce, challenge = _hello(first, 2)
    good = auth.peer_proof(KEY, b"dial", CLUSTER_BYTES, challenge.nonce, nonce, 2, 0)
    first.sendall(wire.encode(wire.make_header(Command.PEER_AUTH, cluster=CLUSTER_BYTES,
                                               replica=2, release=wire.WIRE_VERSION,
                                               proof=good)))
    first.sendall(_commit(2))
    [record] = zero.inbound(5.0)  # a holder of the key gets in
    assert records.read_replica_frame(memoryview(record))[0] == 2
    # Recorded by an eavesdropper and sent again with the same hello nonce: a new challenge.
    second = socket.create_connection((replicas[0].peer_host, replicas[0].peer_port))
    second.sendall(wire.encode(wire.make_header(Command.PEER_HELLO, cluster=CLUSTER_BYTES,
                                                replica=2, release=wire.WIRE_VERSION,
                                                nonce=nonce)))
    _recv_frame(second)
    second.sendall(wire.encode(wire.make_header(Command.PEER_AUTH, cluster=CLUSTER_BYTES,
                                                replica=2, release=wire.WIRE_VERSION,
                                                proof=good)) + _commit(2))
    assert _closed(second)
    assert zero.role.peer_auth_failures == 1
    first.close()


def test_frames_before_the_handshake_or_of_another_cluster_are_dropped_and_counted(nodes):
    replicas, (zero, _one) = nodes
    address = (replicas[0].peer_host, replicas[0].peer_port)
    before = zero.role.bad_peer_frames
    no_hello = socket.create_connection(address)
    no_hello.sendall(_commit(2))
    assert _closed(no_hello)
    other = socket.create_connection(address)
    other.sendall(wire.encode(wire.make_header(
        Command.PEER_HELLO, cluster=wire.cluster_bytes(CLUSTER + 1), replica=2,
        release=wire.WIRE_VERSION, nonce=os.urandom(32))))
    assert _closed(other)
    hello_then_prepare = socket.create_connection(address)
    _hello(hello_then_prepare, 2)
    hello_then_prepare.sendall(_commit(2))
    assert _closed(hello_then_prepare)
    silent = socket.create_connection(address)  # says nothing: the handshake bound closes it
    assert _closed(silent)
    assert zero.role.bad_peer_frames - before == 3
    assert zero.role.loop.counters.handshake_timeouts >= 1
    assert zero.inbound(0.3) == []
    for sock in (no_hello, other, hello_then_prepare, silent):
        sock.close()


@pytest.mark.parametrize("command", [Command.PEER_HELLO, Command.COMMIT, Command.PREPARE,
                                     Command.FORWARD, Command.START_VIEW])
def test_clients_cannot_send_peer_commands(nodes, command):
    replicas, (zero, _one) = nodes
    sock = socket.create_connection((replicas[0].client_host, replicas[0].client_port))
    sock.sendall(iggy.request_frame(b"\x01" * 16, 0, 1, Operation.NON_REPLICATED, b"",
                                    code=iggy.Code.PING))
    assert wire.decode_header(_recv_frame(sock)).status == 0
    sock.sendall(wire.encode(wire.make_header(command, cluster=CLUSTER_BYTES, replica=1)))
    assert _closed(sock)
    assert zero.role.gateway.counters.protocol_errors == 1
    assert zero.inbound(0.2) == []


def test_strangers_cannot_flood_the_log(nodes, capfd):
    replicas, (zero, _one) = nodes
    address = (replicas[0].peer_host, replicas[0].peer_port)
    capfd.readouterr()
    before = zero.role.bad_peer_frames
    started = time.monotonic()
    for _ in range(30):
        sock = socket.create_connection(address)
        sock.sendall(_commit(2))
        assert _closed(sock)
        sock.close()
    assert zero.role.bad_peer_frames - before == 30  # every one counted
    lines = [line for line in capfd.readouterr().err.splitlines()
             if "peer_connection_closed" in line and '"peer-in"' in line]
    elapsed_s = time.monotonic() - started
    assert 1 <= len(lines) <= 2 + elapsed_s, lines  # at most one a second, not one a stranger
