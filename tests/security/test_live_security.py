"""Acceptance of the security work through the real client against one real 3-replica cluster
(real processes on 127.0.0.1, created the way `metavsr cluster up` creates it, with tightened
limits): authentication, throttling, permissions checked when an op executes, the peer
handshake, frame/op/connection limits, slow-loris, and a 10,000-frame hostile soak while a
normal client keeps writing."""

from __future__ import annotations

import hashlib
import http.client
import json
import os
import random
import socket
import stat
import threading
import time

import pytest

from core import auth
from net import iggy, wire
from net.client import ClientError
from net.gateway import STATUS_LOGIN_THROTTLED, STATUS_OP_TOO_LARGE
from net.iggy import Code, Operation
from net.operations import MetadataClient
from net.throttle import FREE_FAILURES
from net.wire import Command
from tests.integration.test_cluster import Cluster
from tests.ops.prometheus_text import parse
from tools import cluster as cluster_tool
from tools import cluster_files

CONNECTIONS_MAX = 40
HANDSHAKE_TIMEOUT_S = 1.0
VECTORS = "/work/shared/iggy-vectors/sdk_frames.jsonl"
HOSTILE_FRAMES = 10_000


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    cluster = Cluster(str(tmp_path_factory.mktemp("security") / "cluster"))
    cluster.metrics_ports = [port for _host, port in
                             cluster_files.metrics_addresses(cluster.directory)]
    for config in cluster.configs:
        with open(config, "a") as out:
            out.write(f"[limits]\nconnections_max = {CONNECTIONS_MAX}\n"
                      f"handshake_timeout_s = {HANDSHAKE_TIMEOUT_S}\n")
    for index in range(3):
        cluster.start(index)
    cluster.client(timeout_s=2.0, deadline_s=30.0).close()  # the cluster accepts logins
    yield cluster
    cluster.stop()


@pytest.fixture(scope="module")
def root(cluster):
    client = cluster.client(timeout_s=2.0, deadline_s=30.0)
    yield client
    client.close()


def _client(cluster, root=None) -> MetadataClient:
    """A client that starts at the primary (if root is given to find it): a login reads
    credentials from the local replica's state, which on a backup may not yet hold a user
    created a moment ago."""
    addresses = list(cluster.addresses)
    if root is not None:
        primary = addresses.pop(cluster.primary(root))
        addresses.insert(0, primary)
    return MetadataClient(addresses, timeout_s=2.0, deadline_s=20.0)


def _all_alive(cluster) -> None:
    for index, process in enumerate(cluster.processes):
        assert process.poll() is None, f"replica {index} died; see {cluster.directory}"


def _closed(sock: socket.socket, timeout_s: float = 10.0) -> bool:
    """True once the server closed sock (EOF or reset); what it sent before is skipped."""
    sock.settimeout(timeout_s)
    try:
        while sock.recv(65536):
            pass
    except (ConnectionResetError, BrokenPipeError):
        pass
    except socket.timeout:
        return False
    return True


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


def _security_events(port: int) -> dict[str, float]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    connection.request("GET", "/metrics")
    text = connection.getresponse().read().decode()
    connection.close()
    family = parse(text)["metavsr_security_events_total"]
    return {labels["event"]: value for _name, labels, value in family.samples}


def _wait_counted(cluster, event: str, at_least: int, replicas=range(3)) -> None:
    """Wait until the replicas' metrics count at least `at_least` of event, summed."""
    deadline = time.monotonic() + 10
    while True:
        total = sum(_security_events(cluster.metrics_ports[i]).get(event, 0) for i in replicas)
        if total >= at_least:
            return
        assert time.monotonic() < deadline, f"{event}: {total} counted, {at_least} expected"
        time.sleep(0.1)


def _ping() -> bytes:
    return iggy.request_frame(os.urandom(16), 0, 1, Operation.NON_REPLICATED, b"", code=Code.PING)


# --- credentials --------------------------------------------------------------------------

def test_cluster_up_made_a_private_key_that_every_config_names(cluster):
    path = os.path.join(cluster.directory, cluster_tool.CLUSTER_KEY_FILE)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert len(auth.load_cluster_key(path)) == auth.CLUSTER_KEY_BYTES
    key_text = open(path).read().strip()
    for config in cluster.configs:
        assert f'cluster_key_file = "{cluster_tool.CLUSTER_KEY_FILE}"' in open(config).read()
    for name in os.listdir(cluster.directory):  # the key is in no log
        if name.endswith(".log"):
            assert key_text not in open(os.path.join(cluster.directory, name)).read()


def test_nothing_but_ping_before_login(cluster):
    client = _client(cluster)
    client.ping()
    with pytest.raises(ClientError) as refused:
        client.read(Code.GET_STREAMS)
    assert refused.value.code == iggy.STATUS_UNAUTHENTICATED
    client.close()


def test_wrong_password_is_refused_and_repeated_failures_are_throttled(cluster, root):
    root.create_user("mallory-target", "the-right-password")
    for _ in range(FREE_FAILURES):
        client = _client(cluster, root)
        with pytest.raises(ClientError) as wrong:
            client.login("mallory-target", "a-wrong-guess")
        assert wrong.value.name == "invalid_credentials"
        client.close()
    client = _client(cluster, root)
    with pytest.raises(ClientError) as throttled:  # even the right password, for now
        client.login("mallory-target", "the-right-password")
    assert throttled.value.code == STATUS_LOGIN_THROTTLED
    client.close()
    _wait_counted(cluster, "logins_throttled", 1)
    _wait_counted(cluster, "logins_failed", FREE_FAILURES)
    other = _client(cluster)  # another account is not affected
    other.login(*cluster.credentials)
    other.close()


def test_an_expired_token_is_refused(cluster, root):
    root.create_user("token-user", "token-user-password")
    user = _client(cluster, root)
    user.login("token-user", "token-user-password")
    lasting = user.create_token("lasting")
    short = user.create_token("short", expiry_us=500_000)
    user.close()
    deadline = time.monotonic() + 20
    while True:
        root.create_stream(f"clock-{time.monotonic_ns()}")  # ops carry the primary's clock
        client = _client(cluster, root)
        try:
            client.login_with_token(short)
        except ClientError as error:
            # Expired at the lookup: invalid token; expired between lookup and the Register's
            # apply: the Register fails as a whole, answered as invalid credentials.
            assert error.name in ("invalid_personal_access_token", "invalid_credentials")
            break
        finally:
            client.close()
        assert time.monotonic() < deadline, "the short token never expired"
        time.sleep(0.2)
    client = _client(cluster, root)
    client.login_with_token(lasting)
    client.close()


def test_missing_permission_and_per_stream_permissions(cluster, root):
    from domains.permissions import STREAM_NAMES, bits_of
    root.create_stream("granted")
    root.create_stream("not-granted")
    granted = root.get_stream("granted").id
    root.create_user("limited", "limited-password")
    root.update_permissions("limited", (0, {granted: (bits_of(["manage_topics", "read_stream"],
                                                              STREAM_NAMES), {})}))
    user = _client(cluster, root)
    user.login("limited", "limited-password")
    user.create_topic("granted", "allowed", 1)
    with pytest.raises(ClientError) as denied:
        user.create_topic("not-granted", "refused", 1)
    assert denied.value.name == "unauthorized"
    with pytest.raises(ClientError) as no_global:
        user.create_stream("mine")
    assert no_global.value.name == "unauthorized"
    user.close()


def test_a_permission_revoked_before_the_op_commits_stops_it(cluster, root):
    from domains.permissions import GLOBAL_NAMES, bits_of
    root.create_user("revoked", "revoked-password")
    root.update_permissions("revoked", (bits_of(["manage_streams"], GLOBAL_NAMES), {}))
    user = _client(cluster, root)
    user.login("revoked", "revoked-password")
    user.create_stream("made-while-allowed")
    root.update_permissions("revoked", None)  # same session: no new login, no cache to expire
    with pytest.raises(ClientError) as denied:
        user.create_stream("made-after-revoke")
    assert denied.value.name == "unauthorized"
    assert root.get_stream("made-after-revoke") is None
    root.delete_stream("made-while-allowed")  # and the permissions naming it go in the same op
    user.close()


# --- peers ----------------------------------------------------------------------------------

def test_a_peer_with_a_wrong_key_is_closed_and_the_cluster_carries_on(cluster, root):
    host, port = "127.0.0.1", cluster.addresses[0][1] + cluster_tool.PEER_PORT_OFFSET
    cluster_id = json.load(open(os.path.join(cluster.directory, "cluster.json")))["cluster_id"]
    cluster_bytes = wire.cluster_bytes(cluster_id)
    sock = socket.create_connection((host, port), timeout=10)
    nonce = os.urandom(32)
    sock.sendall(wire.encode(wire.make_header(Command.PEER_HELLO, cluster=cluster_bytes,
                                              replica=2, release=wire.WIRE_VERSION,
                                              nonce=nonce)))
    challenge, _ = wire.decode(_recv_frame(sock))
    assert challenge.command == Command.PEER_CHALLENGE
    forged = auth.peer_proof(os.urandom(32), b"dial", cluster_bytes, challenge.nonce, nonce, 2, 0)
    sock.sendall(wire.encode(wire.make_header(Command.PEER_AUTH, cluster=cluster_bytes,
                                              replica=2, release=wire.WIRE_VERSION,
                                              proof=forged)))
    sock.sendall(wire.encode(wire.make_header(Command.START_VIEW_CHANGE, cluster=cluster_bytes,
                                              replica=2, view=1_000_000)))
    assert _closed(sock)
    sock.close()
    _wait_counted(cluster, "peer_auth_failures", 1, replicas=[0])
    root.create_stream("after-impostor")  # the forged view change did nothing
    _all_alive(cluster)


# --- limits ---------------------------------------------------------------------------------

def test_an_oversize_frame_closes_and_an_oversize_op_is_refused(cluster, root):
    sock = socket.create_connection(cluster.addresses[1], timeout=10)
    header = bytearray(_ping()[:wire.HEADER_SIZE])
    header[48:52] = (8 << 20).to_bytes(4, "little")
    sock.sendall(bytes(header))
    assert _closed(sock)
    sock.close()
    body = iggy.name8("big") + (70_000).to_bytes(4, "little") + b"x" * 70_000
    with pytest.raises(ClientError) as too_large:
        root.call(Operation.CREATE_STREAM, body)
    assert too_large.value.code == STATUS_OP_TOO_LARGE
    _wait_counted(cluster, "refused_op_size", 1)
    root.create_stream("after-oversize")
    _all_alive(cluster)


def test_slow_loris_connections_are_closed_while_clients_work(cluster, root):
    silent = [socket.create_connection(cluster.addresses[i % 3], timeout=10) for i in range(6)]
    tricklers = []
    for index in range(3):
        sock = socket.create_connection(cluster.addresses[index], timeout=10)
        sock.sendall(_ping())
        _recv_frame(sock)  # a good first frame, then one that never ends
        sock.sendall(_ping()[:100])
        tricklers.append(sock)
    started = time.monotonic()
    for step in range(5):  # a byte now and then: never idle, never a whole frame
        for sock in tricklers:
            try:
                sock.sendall(_ping()[100 + step:101 + step])
            except OSError:
                pass
        root.create_stream(f"during-loris-{step}")
        time.sleep(HANDSHAKE_TIMEOUT_S / 2)
    assert all(_closed(sock) for sock in silent + tricklers)
    # Closed by the handshake/frame bound, not by the idle bound (300 s by default).
    assert time.monotonic() - started < 60
    _wait_counted(cluster, "handshake_timeouts", len(silent))
    _wait_counted(cluster, "slow_frames_closed", len(tricklers))
    for sock in silent + tricklers:
        sock.close()


def test_a_flood_of_connections_beyond_the_limit_is_refused_then_service_resumes(cluster, root):
    target = cluster.addresses[2]
    flood = []
    for _ in range(CONNECTIONS_MAX + 30):
        try:
            flood.append(socket.create_connection(target, timeout=10))
        except OSError:
            pass  # the kernel's backlog may refuse too
    answered = refused = 0
    for sock in flood:
        try:
            sock.sendall(_ping())
            _recv_frame(sock)
            answered += 1
        except OSError:
            refused += 1
    assert answered <= CONNECTIONS_MAX and refused >= len(flood) - CONNECTIONS_MAX
    for sock in flood:
        sock.close()
    _wait_counted(cluster, "refused_over_limit", len(flood) - CONNECTIONS_MAX, replicas=[2])
    client = MetadataClient([target], timeout_s=2.0, deadline_s=20.0)
    deadline = time.monotonic() + 20
    while True:  # slots free as the replica sees the closes
        try:
            client.ping()
            break
        except ClientError:
            assert time.monotonic() < deadline
            time.sleep(0.05)
    client.close()
    root.create_stream("after-flood")
    _all_alive(cluster)


# --- hostile soak: last, as it leaves accounts throttled ----------------------------------

def _sdk_frames() -> list[bytes]:
    if not os.path.exists(VECTORS):
        return []
    with open(VECTORS) as source:
        return [bytes.fromhex(frame["frame_hex"]) for line in source
                for frame in json.loads(line).get("frames", []) if "frame_hex" in frame]


def _hostile(rng: random.Random, sdk: list[bytes], cluster_bytes: bytes) -> tuple[bytes, bool]:
    """One hostile frame and whether it goes to a peer port."""
    kind = rng.random()
    if kind < 0.3 and sdk:
        frame = bytearray(rng.choice(sdk))
        for _ in range(rng.randint(1, 6)):
            frame[rng.randrange(len(frame))] = rng.randrange(256)
        if rng.random() < 0.7:
            frame[48:52] = len(frame).to_bytes(4, "little")
        return bytes(frame), False
    if kind < 0.5:
        operation = rng.choice([Operation.NON_REPLICATED, Operation.REGISTER, 0, 1, 200]
                               + list(range(128, 150)))
        return iggy.request_frame(os.urandom(16), rng.choice((0, 1, 2, 1 << 40)),
                                  rng.randrange(5), operation,
                                  os.urandom(rng.randrange(300)), code=rng.randrange(400)), False
    if kind < 0.65:
        size = rng.randint(wire.HEADER_SIZE, 1024)
        frame = bytearray(os.urandom(size))
        frame[48:52] = size.to_bytes(4, "little")
        return bytes(frame), rng.random() < 0.3
    if kind < 0.75:  # truncated: claims more than it sends
        frame = bytearray(_ping())
        frame[48:52] = (wire.HEADER_SIZE + 5000).to_bytes(4, "little")
        return bytes(frame), False
    if kind < 0.85:  # oversize
        frame = bytearray(_ping()[:wire.HEADER_SIZE])
        frame[48:52] = rng.randint(wire.FRAME_SIZE_MAX + 1, 1 << 32 - 1).to_bytes(4, "little")
        return bytes(frame), rng.random() < 0.5
    command = rng.choice([Command.PREPARE, Command.COMMIT, Command.START_VIEW_CHANGE,
                          Command.START_VIEW, Command.PEER_HELLO, Command.PEER_AUTH,
                          Command.FORWARD, Command.REQUEST_START_VIEW])
    frame = wire.encode(wire.make_header(command, cluster=cluster_bytes,
                                         replica=rng.randrange(3)), os.urandom(rng.randrange(64)))
    return frame, rng.random() < 0.5


def test_hostile_soak_loses_no_acknowledged_write_and_replicas_agree(cluster):
    sdk = _sdk_frames()
    cluster_id = json.load(open(os.path.join(cluster.directory, "cluster.json")))["cluster_id"]
    cluster_bytes = wire.cluster_bytes(cluster_id)
    writer = cluster.client(timeout_s=1.0, deadline_s=30.0)
    acked: list[str] = []
    stop = threading.Event()
    errors: list[str] = []

    def write() -> None:
        index = 0
        while not stop.is_set():
            name = f"soak-{index}"
            index += 1
            try:
                writer.create_stream(name)
                acked.append(name)
            except ClientError as error:  # an unknown outcome is allowed, a lost ack is not
                errors.append(str(error))

    thread = threading.Thread(target=write, daemon=True)
    thread.start()
    def attack(seed: int, count: int) -> None:
        # Two frames a connection: most hostile frames close theirs, so longer batches would
        # mostly go unread. Each connection waits for its close, so the limit is never hit.
        local = random.Random(seed)
        for _ in range(count // 2):
            batch = [_hostile(local, sdk, cluster_bytes) for _ in range(2)]
            replica = local.randrange(3)
            for to_peer in (False, True):
                frames = [frame for frame, peer in batch if peer == to_peer]
                if not frames:
                    continue
                host, port = cluster.addresses[replica]
                address = (host, port + cluster_tool.PEER_PORT_OFFSET if to_peer else port)
                try:
                    sock = socket.create_connection(address, timeout=5)
                    sock.sendall(b"".join(frames))
                    sock.shutdown(socket.SHUT_WR)
                    _closed(sock, 5)
                    sock.close()
                except OSError:
                    pass  # closed by the replica mid-send: it read what it needed to refuse

    attackers = [threading.Thread(target=attack, args=(seed, HOSTILE_FRAMES // 4))
                 for seed in range(4)]
    for attacker in attackers:
        attacker.start()
    for attacker in attackers:
        attacker.join(timeout=300)
        assert not attacker.is_alive()
    sent = HOSTILE_FRAMES
    time.sleep(0.5)  # let the writer go on past the hostile traffic
    stop.set()
    thread.join(timeout=60)
    assert not thread.is_alive()
    _all_alive(cluster)
    assert len(acked) >= 10, f"the normal client barely worked: {len(acked)} acks, {errors[:3]}"
    names = {stream.name for stream in writer.get_streams()}
    missing = [name for name in acked if name not in names]
    assert not missing, f"acknowledged writes lost: {missing[:5]}"
    writer.create_stream("soak-marker")
    digests = set()
    for host, port in cluster.addresses:  # each replica's own state, by stale reads
        replica = MetadataClient([(host, port)], timeout_s=1.0, deadline_s=20.0)
        replica.session, replica.client_id, replica.user_id = (
            writer.session, writer.client_id, writer.user_id)
        deadline = time.monotonic() + 20
        while True:
            streams = replica.read(Code.GET_STREAMS, stale=True)
            users = replica.read(Code.GET_USERS, stale=True)
            if b"soak-marker" in streams:
                break
            assert time.monotonic() < deadline, f"replica {port} never applied the marker"
            time.sleep(0.05)
        digests.add(hashlib.sha256(streams + users).hexdigest())
        replica.close()
    assert len(digests) == 1, "replicas disagree on the state after the soak"
    for index in range(3):
        log = open(os.path.join(cluster.directory, f"replica-{index}.log")).read()
        assert "Traceback" not in log, f"replica {index} logged a traceback"
    # Every refusal was counted where operators look (published twice a second).
    totals: dict[str, float] = {}
    deadline = time.monotonic() + 10
    while True:
        totals = {}
        for port in cluster.metrics_ports:
            for event, value in _security_events(port).items():
                totals[event] = totals.get(event, 0) + value
        expected = ("protocol_errors", "logins_failed", "refused_unauthenticated",
                    "bad_peer_frames")
        if all(totals.get(event, 0) > 0 for event in expected):
            break
        assert time.monotonic() < deadline, f"not every refusal was counted: {totals}"
        time.sleep(0.2)
    print(f"hostile frames {sent}, acked writes {len(acked)}, unknown outcomes {len(errors)}, "
          f"security events {totals}")
    writer.close()
