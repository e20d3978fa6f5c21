"""The domains' codecs against the frames the real Iggy SDK sent (iggy-vectors/sdk_frames.jsonl):
every metadata request body decodes to the recorded call's arguments, and replaying the whole
recorded session through admission + mux reproduces the recorded replies where their values
are determined (ids, names, timestamps taken from the replies, errors)."""

from __future__ import annotations

import struct

import pytest

from domains import permissions as P
from domains import sessions_wire
from domains import streams_wire as sw
from domains import users_wire as uw
from domains.errors import DomainError
from domains.mux import MuxStateMachine
from tests.conftest import load_sdk_calls
from tests.domains.helpers import admit_sdk, token_hash

FRAME_HEADER = 256


def _frames():
    for call in load_sdk_calls():
        for frame in call["frames"]:
            raw = bytes.fromhex(frame["frame_hex"])
            reply = bytes.fromhex(frame["reply_hex"]) if frame.get("reply_hex") else b""
            yield call, frame, raw, reply


def _ident(value):
    """The SDK sends a decimal-only string as a numeric identifier (protocol section 7)."""
    if isinstance(value, str) and value.isdigit():
        return int(value)
    return value


def test_every_metadata_request_body_decodes_to_the_recorded_arguments():
    seen = set()
    for call, frame, raw, _ in _frames():
        method, args, body = call["method"].split("[")[0], call["args"], raw[FRAME_HEADER:]
        op = frame["operation"]
        if op == 128:
            assert sw.decode_create_stream(body) == (args["name"], {})
        elif op == 129:
            ident, name, options = sw.decode_update_stream(body)
            assert (ident, name) == (_ident(args["stream_id"]), args["name"])
            assert {k: v[1].decode() for k, v in options.items()} == (args.get("options") or {})
        elif op in (130, 131):
            assert sw.decode_ids(body, 1) == (_ident(args["stream_id"]),)
        elif op == 132:
            stream, partitions, name, options = sw.decode_create_topic(body)
            assert (stream, partitions, name) == (_ident(args["stream"]), args["partitions_count"],
                                                  args["name"])
            assert options["durability"][1] == args.get("durability", "replicated").encode()
            if "compression_algorithm" in args:
                assert options["compression_algorithm"][1] == args["compression_algorithm"].encode()
            if "segment_size" in args:
                assert struct.unpack("<Q", options["segment_size"][1])[0] == args["segment_size"]
            for key, value in (args.get("options") or {}).items():
                assert options[key] == (2, value.encode())
        elif op == 133:
            stream, topic, name, options = sw.decode_update_topic(body)
            assert (stream, topic, name) == (_ident(args["stream_id"]), _ident(args["topic_id"]),
                                             args["name"])
            if args.get("message_expiry") == "NeverExpire":
                assert options["message_expiry"] == (12, b"\xff" * 8)
        elif op in (134, 135):
            assert sw.decode_ids(body, 2) == (_ident(args["stream_id"]), _ident(args["topic_id"]))
        elif op in (136, 137):
            assert sw.decode_partitions(body) == (_ident(args["stream_id"]),
                                                  _ident(args["topic_id"]),
                                                  args["partitions_count"])
        elif op == 139:
            assert sw.decode_create_group(body) == (_ident(args["stream_id"]),
                                                    _ident(args["topic_id"]), args["name"])
        elif op in (140, 148, 149):
            assert sw.decode_ids(body, 3) == (_ident(args["stream_id"]), _ident(args["topic_id"]),
                                              _ident(args["group_id"]))
        elif op == 141:
            username, password, status, perms, options = uw.decode_create_user_request(body)
            assert (username, password) == (args["username"], args["password"])
            assert status == (2 if args.get("status") == "Inactive" else 1)
            if args.get("permissions"):
                glob, streams = perms
                assert glob == P.G_READ_STREAMS | P.G_READ_USERS
                assert streams[0][0] == P.S_READ_STREAM | P.S_POLL
                assert streams[0][1] == {0: P.T_READ | P.T_SEND, 1: P.T_MANAGE}
                assert streams[1] == (P.S_MANAGE_STREAM, {})
                assert P.encode(perms) == body[-0x35:]  # canonical encoding is the SDK's
            else:
                assert perms is None
        elif op == 142:
            ident, username, status, options = uw.decode_update_user(body)
            assert ident == _ident(args["user_id"])
            assert username == args.get("username")
            assert status == {"Inactive": 2, "Active": 1}.get(args.get("status"))
        elif op == 143:
            assert uw.decode_user_id(body) == _ident(args["user_id"])
        elif op == 144:
            assert uw.decode_change_password_request(body) == (
                _ident(args["user_id"]), args["current_password"], args["new_password"])
        elif op == 145:
            ident, perms = uw.decode_update_permissions(body)
            assert ident == _ident(args["user_id"])
            if args["permissions"] is None:
                assert perms is None
            else:
                assert perms == (P.G_MANAGE_STREAMS, {})
        elif op == 146:
            assert uw.decode_create_token_request(body) == ("ci-1", 0)
        elif op == 1:
            continue
        else:
            continue
        # Admission's canonical form of an SDK body is the SDK body itself (the SDK already
        # sorts option keys), except where a secret is replaced by its hash.
        if op not in (141, 144, 146):
            assert MuxStateMachine.admit(op, body) == body, method
        seen.add(op)
    assert seen >= set(range(128, 150)) - {138, 147}


def _root_created_at(calls) -> int:
    for call in calls:
        if call["method"] == "get_users":
            reply = bytes.fromhex(call["frames"][0]["reply_hex"])[FRAME_HEADER:]
            return struct.unpack_from("<Q", reply, 4)[0]
    raise AssertionError("no get_users call recorded")


def _partition_created_at(calls) -> int:
    for call in calls:
        if call["method"] == "get_topic[after_partitions]":
            reply = bytes.fromhex(call["frames"][0]["reply_hex"])[FRAME_HEADER:]
            return struct.unpack_from("<Q", reply, len(reply) - 40 + 4)[0]
    raise AssertionError("no get_topic[after_partitions] call recorded")


# Which result payloads embed the creation timestamp at offset 4 (after the u32 id).
TIMESTAMPED = {128, 132, 141}
READS = {31, 32, 41, 200, 201, 300, 301, 600, 601}


def test_replaying_the_recorded_session_reproduces_the_recorded_replies():
    calls = load_sdk_calls()
    mux = MuxStateMachine(root_created_at_us=_root_created_at(calls))
    mux.users.users[0].password_hash = b"root"  # admission's check is out of scope here
    op = 0
    sessions: dict[bytes, tuple[int, int]] = {}  # client -> (session, user)
    compared = 0
    for call, frame, raw, reply in _frames():
        client = raw[128:144]
        operation, request, session = frame["operation"], frame["request"], frame["session"]
        body = raw[FRAME_HEADER:]
        reply_body = reply[FRAME_HEADER:]
        if operation == 1:
            if not reply_body:
                continue  # wrong password: refused by admission (Eviction), never logged
            sdk = body[4 + 1 + body[4]:]
            sdk = sdk[1 + sdk[0]:]
            secret = sdk[1 + sdk[0]:]
            token = secret[1:1 + secret[0]].decode() if len(secret) > 5 else ""
            if len(token) > 50:  # a PAT login: admission looks the token up by its hash
                owner = mux.token_by_locator(token_hash(token))
                assert owner is not None and owner[0] == 0 and owner[2] == token_hash(token)
                log_body = sessions_wire.encode_register(0, token_hash(token))
            else:
                log_body = sessions_wire.encode_register(0)
            op += 1
            status, result = mux.apply(op, 1, client, 0, 0, 0, 1, mux.admit(1, log_body))
            assert status == 0
            assert result == sessions_wire.register_result(0, op)
            assert reply_body[4:8] == result[:4]  # user id 0
            sessions[client] = (op, 0)
            continue
        if operation == 2:
            code = frame["code"]
            if code not in READS:
                continue
            status, result = mux.query(code, body, 0)
            assert status == struct.unpack_from("<I", reply, 216)[0], call["method"]
            assert result == reply_body, call["method"]
            compared += 1
            continue
        mux_session, user_id = sessions[client]
        assert session == mux_session
        timestamp = 1
        if operation in TIMESTAMPED and len(reply_body) > 12 and reply_body[:4] == b"\0" * 4:
            timestamp = struct.unpack_from("<Q", reply_body, 8)[0]
        if operation == 136:
            timestamp = _partition_created_at(calls)
        op += 1
        try:
            log_body = admit_sdk(mux, operation, body, user_id)
        except DomainError as error:
            status, result = error.code, b""  # refused at admission
        else:
            status, result = mux.apply(op, timestamp, client, session, request, user_id,
                                       operation, log_body)
        if operation == 3:
            assert status == 0 and client not in mux.sessions.clients
            continue
        count = struct.unpack_from("<I", reply_body, 0)[0]
        if count:
            assert status == struct.unpack_from("<I", reply_body, 8)[0], call["method"]
        else:
            assert status == 0, call["method"]
            if operation != 146:  # the token itself is added by admission
                assert result == reply_body[4:], call["method"]
        compared += 1
    assert compared > 50


@pytest.mark.parametrize("body, code", [
    (b"", 4),                       # no name
    (b"\x00", 1013),                # empty name
    (b"\x03ab", 4),                 # truncated
    (b"\x02\xff\xfe", 1013),        # not UTF-8
])
def test_create_stream_static_errors(body, code):
    with pytest.raises(DomainError) as caught:
        MuxStateMachine.admit(128, body)
    assert caught.value.code == code
