"""The result decoders on the reply bodies the real Iggy SDK accepted (iggy-vectors): every
recorded success payload decodes, and its fields are the ones the SDK decoded from it."""

from __future__ import annotations

from domains import permissions as P
from domains import streams_wire as sw
from domains import users_wire as uw
from domains.codec import U64_MAX, option_value
from domains.topic_options import COMPRESSIONS
from net import iggy
from tests.client.sdk import HEADER, STATUS, calls, expiry_us, frames, reply_payload, topic_size

KINDS = {"String": 2, "Bool": 3, "UnsignedInt32": 11, "UnsignedInt64": 12}


def _payload(call: dict) -> bytes:
    return reply_payload(call["frames"][0])


def _check_stream(stream: sw.StreamHeader, recorded: dict) -> None:
    for key in ("id", "name", "created_at", "topics_count", "size", "messages_count"):
        assert getattr(stream, key) == recorded[key], key
    assert stream.options == {}


def _check_options(options, recorded: dict) -> None:
    expected = {}
    for key, value in recorded.items():
        name = key.removeprefix('HeaderKey.String("').removesuffix('")')
        expected[name] = (KINDS[value["__type__"]], value["value"])
    assert {k: (kind, option_value(kind, raw)) for k, (kind, raw) in options.items()} == expected


def _check_topic(topic: sw.TopicHeader, recorded: dict) -> None:
    for key in ("id", "name", "created_at", "partitions_count", "size", "messages_count"):
        assert getattr(topic, key) == recorded[key], key
    assert topic.compression == COMPRESSIONS[recorded["compression_algorithm"].encode()]
    expiry = recorded["message_expiry"]
    if isinstance(expiry, dict):
        assert topic.message_expiry == expiry["duration"]["timedelta_s"] * 1_000_000
    else:  # the SDK reads both 0 and u64::MAX as NeverExpire
        assert "NeverExpire" in expiry and topic.message_expiry in (0, U64_MAX)
    size = recorded["max_topic_size"]
    if isinstance(size, dict):
        assert topic.max_topic_size == size["bytes"]
    else:
        assert "ServerDefault" in size and topic.max_topic_size == 0
    _check_options(topic.options, recorded["options"])
    assert topic.derived_options == {} == recorded["derived_options"]


def test_streams():
    checked = 0
    for call in calls("get_stream") + calls("get_streams"):
        if not call["ok"]:
            continue  # refused before login: no frame reached a server
        payload, recorded = _payload(call), call["result"]
        if call["method"].startswith("get_streams"):
            streams = sw.decode_stream_list(payload)
            assert len(streams) == len(recorded)
            for stream, expected in zip(streams, recorded):
                _check_stream(stream, expected)
        elif recorded is None:
            assert payload == b""  # "not found" is an empty body: the client returns None
        else:
            details = sw.decode_stream_details(payload)
            _check_stream(details, recorded)
            assert details.topics == ()
        checked += 1
    for call in calls("create_stream"):
        if call["ok"]:
            details = sw.decode_stream_details(_payload(call))
            assert (details.name, details.topics_count) == (call["args"]["name"], 0)
            checked += 1
    assert checked >= 8


def test_topics():
    checked = 0
    for call in calls("get_topic"):
        payload, recorded = _payload(call), call["result"]
        if recorded is None:
            assert payload == b""
            continue
        details = sw.decode_topic_details(payload)
        _check_topic(details, recorded)
        assert len(details.partitions) == len(recorded["partitions"])
        for partition, expected in zip(details.partitions, recorded["partitions"]):
            for key in ("id", "created_at", "segments_count", "current_offset", "size",
                        "messages_count"):
                assert getattr(partition, key) == expected[key], key
        checked += 1
    for call in calls("get_topics"):
        if call["ok"]:
            topics = sw.decode_topic_list(_payload(call))
            assert len(topics) == len(call["result"])
            for topic, expected in zip(topics, call["result"]):
                _check_topic(topic, expected)
            checked += 1
    for call in calls("create_topic"):
        if call["ok"]:
            details = sw.decode_topic_details(_payload(call))
            args = call["args"]
            assert (details.name, details.partitions_count) == (args["name"],
                                                                args["partitions_count"])
            assert [p.id for p in details.partitions] == list(range(args["partitions_count"]))
            if "message_expiry" in args:
                assert details.message_expiry == expiry_us(args["message_expiry"])
                assert details.max_topic_size == topic_size(args["max_topic_size"])
            checked += 1
    assert checked >= 6


def test_consumer_groups():
    checked = 0
    for call in calls("get_consumer_group") + calls("create_consumer_group"):
        if not call["ok"]:
            continue
        payload, recorded = _payload(call), call["result"]
        if call["method"].startswith("get_consumer_group[missing"):
            assert payload == b"" and recorded is None
            continue
        group = sw.decode_group_details(payload)
        if recorded:  # create's SDK method returns None; the get calls record the details
            for key in ("id", "name", "partitions_count", "members_count"):
                assert getattr(group, key) == recorded[key], key
            assert [(m.id, list(m.partitions)) for m in group.members] == [
                (m["id"], m["partitions"]) for m in recorded["members"]]
            assert all(len(m.partitions) == r["partitions_count"]
                       for m, r in zip(group.members, recorded["members"]))
        else:
            assert group.name == call["args"]["name"] and group.members == ()
        checked += 1
    for call in calls("get_consumer_groups"):
        groups = sw.decode_group_list(_payload(call))
        assert [(g.id, g.name, g.partitions_count, g.members_count) for g in groups] == [
            (r["id"], r["name"], r["partitions_count"], r["members_count"])
            for r in call["result"]]
        checked += 1
    assert checked >= 4


def _check_permissions(perms, recorded) -> None:
    if recorded is None:
        assert perms is None
        return
    glob, streams = perms
    flags = recorded["global_permissions"]
    assert set(P.names_of(glob, P.GLOBAL_NAMES)) == {n for n in P.GLOBAL_NAMES if flags[n]}
    assert set(streams) == {int(sid) for sid in recorded["streams"]}
    for sid, stream in recorded["streams"].items():
        bits, topics = streams[int(sid)]
        assert set(P.names_of(bits, P.STREAM_NAMES)) == {n for n in P.STREAM_NAMES if stream[n]}
        # The SDK's TopicPermissions has no repr: only which topics have entries is recorded.
        assert set(topics) == {int(tid) for tid in (stream["topics"] or {})}


def test_users():
    checked = 0
    statuses = {call["args"]["username"]: STATUS[call["args"].get("status", "Active")]
                for call in calls("create_user") if call["ok"]}
    for call in calls("create_user") + calls("get_user"):
        payload, recorded = _payload(call), call.get("result")
        if not call["ok"]:
            continue
        if recorded is None:
            assert payload == b""
            continue
        user = uw.decode_user_details(payload)
        for key in ("id", "username", "created_at"):
            assert getattr(user, key) == recorded[key], key
        assert user.status == statuses[user.username]
        assert user.options == {}
        _check_permissions(user.permissions, recorded["permissions"])
        checked += 1
    for call in calls("get_users"):
        users = uw.decode_user_list(_payload(call))
        assert [(u.id, u.username, u.created_at) for u in users] == [
            (r["id"], r["username"], r["created_at"]) for r in call["result"]]
        checked += 1
    assert checked >= 6


def test_personal_access_tokens_and_login():
    pats = {call["method"]: call for call in calls("send_binary_request")}
    created = pats["send_binary_request[create_pat]"]
    token = uw.decode_token_created(_payload(created))
    assert token.encode().hex() == created["result"]["bytes_hex"][2:]
    # The PAT login that follows in the recording uses exactly this token.
    assert [c["args"]["token"] for c in calls("connect") if "token" in c["args"]] == [token]
    listed = pats["send_binary_request[get_pats]"]
    assert uw.decode_token_list(_payload(listed)) == [uw.TokenInfo("ci-1", 0)]
    logins = 0
    for call, frame, _, reply in frames():
        if frame["operation"] == 1 and len(reply) > HEADER:
            login = iggy.parse_login_reply(reply_payload(frame))
            assert login.user_id == 0 and login.session > 0
            assert login.server_version == iggy.SERVER_VERSION
            logins += 1
    assert logins == 4



def test_every_recorded_success_payload_decodes():
    """No recorded metadata reply is left out: each success payload has a decoder that takes it
    whole (or it is empty, as every other write's)."""
    decoders = {128: sw.decode_stream_details, 132: sw.decode_topic_details,
                139: sw.decode_group_details, 141: uw.decode_user_details,
                146: uw.decode_token_created}
    reads = {200: sw.decode_stream_details, 201: sw.decode_stream_list,
             300: sw.decode_topic_details, 301: sw.decode_topic_list,
             600: sw.decode_group_details, 601: sw.decode_group_list,
             31: uw.decode_user_details, 32: uw.decode_user_list, 41: uw.decode_token_list}
    decoded = 0
    for call, frame, _, reply in frames():
        if not call["ok"] or not reply:
            continue
        operation, payload = frame["operation"], reply_payload(frame)
        if operation == 2:
            decode = reads.get(frame["code"])
        elif 128 <= operation <= 149:
            decode = decoders.get(operation)
            if decode is None:
                assert payload == b"", call["method"]
                continue
        else:
            continue
        if decode is not None and payload:
            decode(payload)
            decoded += 1
    assert decoded >= 24
