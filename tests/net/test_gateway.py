"""The net role's client protocol handling, step by step, without sockets (it is sans-IO)."""

from __future__ import annotations

import os
import struct

from core import auth
from core.roles import records
from core.roles.records import Kind, Lookup
from domains import sessions_wire, users_wire
from net import iggy, wire
from net.gateway import Close, Gateway, Job, Reply, ToOwner, ToReplication
from net.iggy import Code, EvictionReason, Operation

CLIENT = os.urandom(16)
ROSTER = iggy.cluster_metadata_body("test", [iggy.Node("r0", "127.0.0.1", 3001, leader=True)])


def _gateway(primary: bool = True) -> Gateway:
    gateway = Gateway(body_size_max=1 << 16, requests_in_flight_max=1, roster=lambda: ROSTER,
                      has_primary=lambda: primary)
    gateway.opened(1)
    return gateway


def _request(operation: int, body: bytes = b"", code: int = 0, session: int = 0,
             request: int = 1) -> memoryview:
    return memoryview(iggy.request_frame(CLIENT, session, request, operation, body, code=code))


def _reply_header(action: Reply):
    return wire.decode_header(action.frame)


def _login(gateway: Gateway, password_ok: bool = True) -> list:
    body = iggy.login_body("alice", "alice-password")
    actions = gateway.on_frame(1, _request(Operation.REGISTER, body, request=0))
    assert len(actions) == 1 and isinstance(actions[0], ToOwner)
    conn, by, key = records.read_credentials_query(memoryview(actions[0].record))
    assert (conn, by, key) == (1, Lookup.USERNAME, b"alice")
    stored = auth.hash_secret("alice-password" if password_ok else "other", n_log2=10)
    job = gateway.on_credentials(1, True, 7, True, stored)
    assert len(job) == 1 and isinstance(job[0], Job)
    assert "alice-password" not in repr(job[0])
    return gateway.job_done(1, job[0].fn(*job[0].args))


def _bind_session(gateway: Gateway, session: int = 42) -> None:
    header = wire.decode_client_frame(_request(Operation.REGISTER, b"x", request=0), 1 << 16)[0]
    reply = iggy.reply_frame(header, body=iggy.login_reply_body(7, session))
    assert gateway.on_reply(1, memoryview(reply)) == reply


def test_ping_is_answered_before_login():
    [action] = _gateway().on_frame(1, _request(Operation.NON_REPLICATED, code=Code.PING))
    assert isinstance(action, Reply) and _reply_header(action).status == 0


def test_reads_before_login_get_status_40_and_writes_an_eviction():
    gateway = _gateway()
    # The recorded SDK call get_stats[unauthenticated] got 40, even for a code we do not serve.
    for code in (Code.GET_STATS, 9999):
        [refused] = gateway.on_frame(1, _request(Operation.NON_REPLICATED, code=code))
        assert _reply_header(refused).status == iggy.STATUS_UNAUTHENTICATED
    [read] = gateway.on_frame(1, _request(Operation.NON_REPLICATED, code=Code.GET_STREAMS))
    assert _reply_header(read).status == iggy.STATUS_UNAUTHENTICATED
    [write] = gateway.on_frame(1, _request(Operation.CREATE_STREAM, iggy.name8("s")))
    header = _reply_header(write)
    assert header.command == wire.Command.EVICTION and header.reason == EvictionReason.NO_SESSION


def test_password_login_goes_through_lookup_verify_then_the_log():
    gateway = _gateway()
    [action] = _login(gateway)
    assert isinstance(action, ToReplication)
    conn, _user, frame = records.read_client_request(memoryview(action.record))
    header, body = wire.decode_client_frame(frame, 1 << 16)
    assert conn == 1 and header.operation == Operation.REGISTER
    user, token_hash, password_hash = sessions_wire.decode_register(bytes(body))
    # The stored hash it verified against goes to the log, so apply can refuse it if the
    # password changed meanwhile; the password itself never does.
    assert (user, token_hash) == (7, None) and password_hash.startswith(b"scrypt1")
    assert b"alice-password" not in action.record


def test_wrong_password_and_unknown_user_get_the_same_eviction():
    [wrong] = _login(_gateway(), password_ok=False)
    assert _reply_header(wrong).reason == EvictionReason.INVALID_CREDENTIALS
    gateway = _gateway()
    gateway.on_frame(1, _request(Operation.REGISTER, iggy.login_body("nobody", "pw1"), request=0))
    [unknown] = gateway.on_credentials(1, False, 0, False, b"")
    assert _reply_header(unknown).reason == EvictionReason.INVALID_CREDENTIALS
    assert gateway.counters.logins_failed == 1


def test_malformed_login_and_old_protocol_are_evicted():
    gateway = _gateway()
    [bad] = gateway.on_frame(1, _request(Operation.REGISTER, b"\x01\x02", request=0))
    assert _reply_header(bad).reason == EvictionReason.MALFORMED_LOGIN
    old = struct.pack("<I", 10 << 10) + iggy.login_body("alice", "pw1")[4:]
    [refused] = gateway.on_frame(1, _request(Operation.REGISTER, old, request=0))
    assert _reply_header(refused).reason == EvictionReason.INCOMPATIBLE_PROTOCOL


def test_token_login_looks_up_the_locator_and_verifies_the_secret():
    token, locator, secret = auth.mint_token()
    record = locator + auth.hash_secret(secret, n_log2=10)
    gateway = _gateway()
    [query] = gateway.on_frame(1, _request(Operation.REGISTER, iggy.token_login_body(token),
                                           request=0))
    assert records.read_credentials_query(memoryview(query.record))[1:] == (
        Lookup.TOKEN_LOCATOR, locator)
    [job] = gateway.on_credentials(1, True, 3, True, record)
    [forward] = gateway.job_done(1, job.fn(*job.args))
    _, _, frame = records.read_client_request(memoryview(forward.record))
    assert sessions_wire.decode_register(bytes(frame[wire.HEADER_SIZE:])) == (3, record, None)
    assert secret.encode() not in forward.record


def test_after_login_reads_are_linearizable_through_replication_or_stale_at_the_owner():
    gateway = _gateway()
    _bind_session(gateway)
    [read] = gateway.on_frame(1, _request(Operation.NON_REPLICATED, code=Code.GET_STREAMS,
                                          session=42))
    assert isinstance(read, ToReplication)
    gateway.on_reply(1, memoryview(iggy.reply_frame(
        wire.decode_client_frame(_request(Operation.NON_REPLICATED, code=201), 1 << 16)[0])))
    frame = bytearray(_request(Operation.NON_REPLICATED, code=Code.GET_STREAMS, session=42))
    frame[200] = 1
    [stale] = gateway.on_frame(1, memoryview(bytes(frame)))
    assert isinstance(stale, ToOwner) and records.kind_of(stale.record) == Kind.QUERY


def test_roster_is_answered_by_the_net_role_after_login():
    gateway = _gateway()
    _bind_session(gateway)
    [roster] = gateway.on_frame(1, _request(Operation.NON_REPLICATED,
                                            code=Code.GET_CLUSTER_METADATA, session=42))
    assert roster.frame[wire.HEADER_SIZE:] == ROSTER


def test_create_user_password_is_hashed_before_the_log():
    gateway = _gateway()
    _bind_session(gateway)
    body = (iggy.name8("bob") + iggy.name8("bob-secret-pw") + b"\x01\x00")
    [job] = gateway.on_frame(1, _request(Operation.CREATE_USER, body, session=42))
    [forward] = gateway.job_done(1, auth.hash_secret("bob-secret-pw", n_log2=10))
    assert b"bob-secret-pw" not in forward.record
    _, _, frame = records.read_client_request(memoryview(forward.record))
    username, password_hash, *_ = users_wire.decode_create_user(bytes(frame[wire.HEADER_SIZE:]))
    assert username == "bob" and auth.verify_secret(password_hash, "bob-secret-pw")


def test_created_token_is_returned_to_the_client_but_only_its_hash_is_logged():
    gateway = _gateway()
    _bind_session(gateway)
    body = iggy.name8("ci-token") + struct.pack("<Q", 0)
    [job] = gateway.on_frame(1, _request(Operation.CREATE_PERSONAL_ACCESS_TOKEN, body,
                                         session=42))
    [forward] = gateway.job_done(1, job.fn(*job.args))
    _, _, frame = records.read_client_request(memoryview(forward.record))
    header = wire.decode_client_frame(frame, 1 << 16)[0]
    out = gateway.on_reply(1, memoryview(iggy.reply_frame(header, body=iggy.result_ok())))
    reply = iggy.parse_reply(out, Operation.CREATE_PERSONAL_ACCESS_TOKEN)
    token = reply.payload[1:].decode()
    locator, secret = auth.split_token(token)
    assert secret.encode() not in forward.record and locator in forward.record


def test_message_plane_and_unknown_codes_are_refused_without_the_log():
    gateway = _gateway()
    _bind_session(gateway)
    [poll] = gateway.on_frame(1, _request(Operation.NON_REPLICATED, code=Code.POLL_MESSAGES,
                                          session=42))
    assert _reply_header(poll).status == iggy.STATUS_FEATURE_UNAVAILABLE
    [send] = gateway.on_frame(1, _request(Operation.SEND_MESSAGES, b"x", session=42))
    assert _reply_header(send).status == iggy.STATUS_FEATURE_UNAVAILABLE
    [unknown] = gateway.on_frame(1, _request(Operation.NON_REPLICATED, code=9999, session=42))
    assert _reply_header(unknown).status == iggy.STATUS_INVALID_COMMAND


def test_admission_failure_is_answered_and_uses_no_log_slot():
    gateway = _gateway()
    _bind_session(gateway)
    [refused] = gateway.on_frame(1, _request(Operation.CREATE_STREAM, b"\x00", session=42))
    reply = iggy.parse_reply(refused.frame, Operation.CREATE_STREAM)
    assert reply.status != 0 and gateway.counters.refused_admission == 1


def test_without_a_known_primary_writes_get_transient_not_accepted():
    gateway = _gateway(primary=False)
    _bind_session(gateway)
    [action] = gateway.on_frame(1, _request(Operation.CREATE_STREAM, iggy.name8("s"), session=42))
    assert _reply_header(action).status == iggy.STATUS_TRANSIENT_NOT_ACCEPTED


def test_a_second_request_in_flight_closes_the_connection():
    gateway = _gateway()
    _bind_session(gateway)
    [first] = gateway.on_frame(1, _request(Operation.CREATE_STREAM, iggy.name8("s"), session=42))
    assert isinstance(first, ToReplication)
    [second] = gateway.on_frame(1, _request(Operation.CREATE_STREAM, iggy.name8("t"),
                                            session=42, request=2))
    assert isinstance(second, Close)


def test_bad_frame_closes_the_connection():
    gateway = _gateway()
    frame = bytearray(_request(Operation.CREATE_STREAM, iggy.name8("s")))
    frame[60] = wire.Command.PREPARE
    [action] = gateway.on_frame(1, memoryview(bytes(frame)))
    assert isinstance(action, Close)
