"""Iggy protocol mechanics against the frames the real apache-iggy wheel sent and accepted."""

from __future__ import annotations

import struct

import pytest
from hypothesis import given, settings, strategies as st

from net import iggy, wire
from net.iggy import EvictionReason, Node, Operation, ProtocolError
from tests.conftest import load_sdk_calls


def _call(method: str) -> dict:
    for call in load_sdk_calls():
        if call["method"] == method:
            return call
    raise AssertionError(f"no vector for {method}")


def _frame(call: dict, index: int = 0) -> tuple[bytes, bytes | None]:
    frame = call["frames"][index]
    reply = frame.get("reply_hex")
    return bytes.fromhex(frame["frame_hex"]), bytes.fromhex(reply) if reply else None


def test_password_login_vector_parses():
    raw, _ = _frame(_call("login_user"))
    header, body = wire.decode_client_frame(raw, body_size_max=4096)
    assert header.operation == Operation.REGISTER and header.request == 0 and header.session == 0
    login = iggy.parse_login(body)
    assert isinstance(login, iggy.PasswordLogin)
    assert (login.username, login.password) == ("iggy", "iggy")
    assert login.sdk_name == "rust-sdk" and login.protocol_version == iggy.PROTOCOL_VERSION
    assert iggy.protocol_version_accepted(login.protocol_version)
    assert "iggy'" not in repr(login).split("username=")[1].split(",", 1)[1]


def test_token_login_vector_parses():
    call = _call("connect[auto_login_pat]")
    raw, _ = _frame(call)
    _, body = wire.decode_client_frame(raw, body_size_max=4096)
    login = iggy.parse_login(body)
    assert isinstance(login, iggy.TokenLogin)
    assert login.token == call["args"]["token"]
    assert call["args"]["token"] not in repr(login)


def test_login_reply_matches_the_accepted_vector_layout():
    _, reply = _frame(_call("login_user"))
    header = wire.decode_header(reply)
    recorded = reply[wire.HEADER_SIZE:]
    user_id, session = struct.unpack_from("<IQ", recorded, 4)
    assert iggy.login_reply_body(user_id, session) == recorded
    assert header.operation == Operation.REGISTER


def test_our_reply_is_what_the_sdk_reads_from_the_vector():
    raw, recorded = _frame(_call("create_stream"))
    request, _ = wire.decode_client_frame(raw, body_size_max=4096)
    payload = recorded[wire.HEADER_SIZE + 4:]
    ours = iggy.reply_frame(request, body=iggy.result_ok(payload))
    ours_header = wire.decode_header(ours)
    theirs_header = wire.decode_header(recorded)
    for field in ("size", "command", "operation", "status", "request", "client"):
        assert getattr(ours_header, field) == getattr(theirs_header, field), field
    assert ours[wire.HEADER_SIZE:] == recorded[wire.HEADER_SIZE:]


def test_parse_reply_of_duplicate_create_is_the_result_section_code():
    raw, recorded = _frame(_call("create_stream[duplicate]"))
    reply = iggy.parse_reply(recorded, Operation.CREATE_STREAM)
    assert reply.status == 1012 and reply.payload == b""


def test_parse_reply_of_status_word_error():
    _, recorded = _frame(_call("get_topics[missing_stream]"))
    assert iggy.parse_reply(recorded, Operation.NON_REPLICATED).status == 1009


def test_wrong_password_vector_is_an_eviction_9():
    _, recorded = _frame(_call("login_user[wrong_password]"))
    reply = iggy.parse_reply(recorded, Operation.REGISTER)
    assert reply.evicted == EvictionReason.INVALID_CREDENTIALS
    header = wire.decode_header(recorded)
    ours = wire.decode_header(iggy.eviction_frame(header.client, EvictionReason.INVALID_CREDENTIALS))
    assert (ours.reason, ours.size, ours.command) == (9, 256, wire.Command.EVICTION)


def test_incompatible_protocol_eviction_carries_the_version_window():
    header = wire.decode_header(iggy.eviction_frame(b"\x01" * 16,
                                                    EvictionReason.INCOMPATIBLE_PROTOCOL))
    assert header.protocol_version == iggy.PROTOCOL_VERSION
    assert 0 < header.protocol_version_min <= header.protocol_version


def test_roster_encoding_matches_the_verified_example():
    body = iggy.cluster_metadata_body("two-node", [
        Node("A", "127.0.0.1", 18101, leader=False),
        Node("B", "127.0.0.1", 18102, leader=True),
    ])
    expected = bytes.fromhex(
        "08000000" "74776f2d6e6f6465" "02000000"
        "01000000" "41" "09000000" "3132372e302e302e31" "b546" "0000" "0000" "0000" "0100"
        "01000000" "42" "09000000" "3132372e302e302e31" "b646" "0000" "0000" "0000" "0000")
    assert body == expected and len(body) == 72


def test_request_frames_we_build_equal_the_sdk_frames_but_for_the_client_id():
    for method in ("create_stream", "get_streams", "logout_user", "ping"):
        call = _call(method)
        raw, _ = _frame(call)
        header, body = wire.decode_client_frame(raw, body_size_max=4096)
        ours = iggy.request_frame(header.client, header.session, header.request,
                                  header.operation, bytes(body), code=header.code)
        assert ours == raw, method


def test_login_bodies_we_send_parse_back():
    login = iggy.parse_login(iggy.login_body("alice", "secret-pw"))
    assert isinstance(login, iggy.PasswordLogin) and login.password == "secret-pw"
    token = iggy.parse_login(iggy.token_login_body("t" * 100))
    assert isinstance(token, iggy.TokenLogin) and token.token == "t" * 100


def test_login_with_trailing_garbage_is_refused():
    with pytest.raises(ProtocolError):
        iggy.parse_login(iggy.login_body("alice", "pw1") + b"\x00")


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300))
def test_login_parser_only_raises_protocol_error(data):
    try:
        iggy.parse_login(data)
    except ProtocolError:
        pass


@settings(max_examples=300, deadline=None)
@given(st.binary(min_size=0, max_size=400), st.sampled_from([1, 2, 3, 128, 141]))
def test_reply_parser_only_raises_protocol_error(data, operation):
    try:
        iggy.parse_reply(data, operation)
    except ProtocolError:
        pass


def test_answer_frames_follow_the_channel_each_operation_uses():
    def header(operation, code=0):
        frame = iggy.request_frame(b"\x07" * 16, 1, 3, operation, b"x", code=code)
        return wire.decode_client_frame(frame, 1024)[0]

    login = iggy.parse_reply(iggy.answer_frame(header(Operation.REGISTER), 0,
                                               struct.pack("<IQ", 5, 9)), Operation.REGISTER)
    assert login.status == 0 and struct.unpack_from("<IQ", login.payload) == (5, 9)
    refused = iggy.parse_reply(iggy.answer_frame(header(Operation.REGISTER), 42, b""),
                               Operation.REGISTER)
    assert refused.evicted == EvictionReason.INVALID_CREDENTIALS
    created = iggy.parse_reply(iggy.answer_frame(header(Operation.CREATE_STREAM), 0, b"obj"),
                               Operation.CREATE_STREAM)
    assert (created.status, created.payload) == (0, b"obj")
    duplicate = iggy.answer_frame(header(Operation.CREATE_STREAM), 1012, b"")
    assert wire.decode_header(duplicate).status == 0
    assert iggy.parse_reply(duplicate, Operation.CREATE_STREAM).status == 1012
    read = iggy.answer_frame(header(Operation.NON_REPLICATED, 201), 0, b"raw")
    assert read[wire.HEADER_SIZE:] == b"raw"
    missing = iggy.answer_frame(header(Operation.NON_REPLICATED, 301), 1009, b"")
    assert wire.decode_header(missing).status == 1009 and len(missing) == wire.HEADER_SIZE
