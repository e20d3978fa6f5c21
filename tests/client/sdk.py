"""The recorded SDK calls (iggy-vectors/sdk_frames.jsonl) as the client tests use them: the
calls' frames, the SDK's argument spellings turned into net/operations.py arguments, and a
MetadataClient whose transport answers from the recorded reply frames (no server, no socket)."""

from __future__ import annotations

import re

from domains import permissions as P
from domains.codec import U64_MAX
from net import iggy, wire
from net.client import ClientError
from net.operations import MetadataClient
from tests.conftest import load_sdk_calls

HEADER = 256
RESULT_SECTION = 4


def frames():
    """(call, frame, request frame bytes, reply frame bytes) for every recorded frame."""
    for call in load_sdk_calls():
        for frame in call["frames"]:
            reply = bytes.fromhex(frame["reply_hex"]) if frame.get("reply_hex") else b""
            yield call, frame, bytes.fromhex(frame["frame_hex"]), reply


def calls(method: str) -> list[dict]:
    """The recorded calls of one SDK method (the part of the name before any [variant])."""
    return [call for call in load_sdk_calls() if call["method"].split("[")[0] == method]


def call_replies(method: str) -> list[bytes]:
    """The reply frames of the recorded call named exactly `method`."""
    for call in load_sdk_calls():
        if call["method"] == method:
            return [bytes.fromhex(frame["reply_hex"]) for frame in call["frames"]]
    raise AssertionError(f"no {method} recorded")


def ok_reply(body: bytes = b"\x00\x00\x00\x00") -> bytes:
    """A success Reply frame (default: an empty result section, as a write without result)."""
    return wire.encode(wire.make_header(wire.Command.REPLY), body, checksums=False)


def reply_payload(frame: dict) -> bytes:
    """The recorded reply body without header and, for result-framed ops, result section."""
    body = bytes.fromhex(frame["reply_hex"])[HEADER:]
    if iggy.is_result_framed(frame["operation"], len(body)):
        return body[RESULT_SECTION:]
    return body


# ---- the SDK's argument spellings --------------------------------------------------------

STATUS = {"Active": 1, "Inactive": 2}
# The recorded permission arguments (the SDK's repr), decoded by hand from their frames.
PERMISSIONS = {
    "global(read_streams,read_users); streams {0: read_stream,poll_messages, topics "
    "{0: read_topic,send_messages; 1: manage_topic}; 1: manage_stream}":
        (P.G_READ_STREAMS | P.G_READ_USERS,
         {0: (P.S_READ_STREAM | P.S_POLL, {0: P.T_READ | P.T_SEND, 1: P.T_MANAGE}),
          1: (P.S_MANAGE_STREAM, {})}),
    "global(manage_streams)": (P.G_MANAGE_STREAMS, {}),
    None: None,
}


def expiry_us(text: str) -> int:
    if text == "NeverExpire":
        return U64_MAX
    match = re.fullmatch(r"ExpireDuration\((\d+)s\)", text)
    assert match, text
    return int(match.group(1)) * 1_000_000


def topic_size(text: str) -> int:
    if text == "Unlimited":
        return U64_MAX
    match = re.fullmatch(r"Custom\((\d+)\)", text)
    assert match, text
    return int(match.group(1))


def topic_settings(args: dict) -> dict:
    """The documented topic options the SDK call named, as create_topic/update_topic take them."""
    settings = {}
    for key in ("compression_algorithm", "segment_size", "durability",
                "consumer_offset_durability", "messages_required_to_save",
                "size_of_messages_required_to_save", "preallocate_segments"):
        if key in args:
            settings[key] = args[key]
    if "message_expiry" in args:
        settings["message_expiry"] = expiry_us(args["message_expiry"])
    if "max_topic_size" in args:
        settings["max_topic_size"] = topic_size(args["max_topic_size"])
    return settings


def invoke(client: MetadataClient, method: str, args: dict):
    """The net/operations.py call equivalent to a recorded SDK call; None when there is none
    (connection-level calls, and send_binary_request outside the PAT codes)."""
    name = method.split("[")[0]
    stream, topic = args.get("stream_id"), args.get("topic_id")
    group, user = args.get("group_id"), args.get("user_id")
    table = {
        "create_stream": lambda: client.create_stream(args["name"]),
        "get_stream": lambda: client.get_stream(stream),
        "get_streams": lambda: client.get_streams(),
        "update_stream": lambda: client.update_stream(stream, args["name"], args.get("options")),
        "purge_stream": lambda: client.purge_stream(stream),
        "delete_stream": lambda: client.delete_stream(stream),
        "create_topic": lambda: client.create_topic(
            args["stream"], args["name"], args["partitions_count"], options=args.get("options"),
            **topic_settings(args)),
        "get_topic": lambda: client.get_topic(stream, topic),
        "get_topics": lambda: client.get_topics(stream),
        "update_topic": lambda: client.update_topic(stream, topic, args["name"],
                                                    options=args.get("options"),
                                                    **topic_settings(args)),
        "purge_topic": lambda: client.purge_topic(stream, topic),
        "delete_topic": lambda: client.delete_topic(stream, topic),
        "create_partitions": lambda: client.create_partitions(stream, topic,
                                                              args["partitions_count"]),
        "delete_partitions": lambda: client.delete_partitions(stream, topic,
                                                              args["partitions_count"]),
        "create_consumer_group": lambda: client.create_consumer_group(stream, topic, args["name"]),
        "get_consumer_group": lambda: client.get_consumer_group(stream, topic, group),
        "get_consumer_groups": lambda: client.get_consumer_groups(stream, topic),
        "join_consumer_group": lambda: client.join_consumer_group(stream, topic, group),
        "leave_consumer_group": lambda: client.leave_consumer_group(stream, topic, group),
        "delete_consumer_group": lambda: client.delete_consumer_group(stream, topic, group),
        "create_user": lambda: client.create_user(
            args["username"], args["password"], STATUS[args.get("status", "Active")],
            PERMISSIONS[args.get("permissions")]),
        "get_user": lambda: client.get_user(user),
        "get_users": lambda: client.get_users(),
        "update_user": lambda: client.update_user(user, args.get("username"),
                                                  STATUS.get(args.get("status"))),
        "update_permissions": lambda: client.update_permissions(
            user, PERMISSIONS[args["permissions"]]),
        "change_password": lambda: client.change_password(user, args["current_password"],
                                                          args["new_password"]),
        "delete_user": lambda: client.delete_user(user),
        "logout_user": lambda: client.logout(),
    }
    if name == "send_binary_request":
        payload = bytes.fromhex(args["payload_hex"])
        if args["code"] == 42:  # create a PAT: [n8 name][expiry u64]
            return lambda: client.create_token(payload[1:1 + payload[0]].decode(),
                                               int.from_bytes(payload[1 + payload[0]:], "little"))
        if args["code"] == 41:
            return lambda: client.get_tokens()
        return None
    return table.get(name)


class Replay(MetadataClient):
    """A MetadataClient whose transport answers each request with the next recorded reply
    frame (through the real iggy.parse_reply) and keeps every frame it built."""

    def __init__(self, replies: list[bytes], session: int = 1) -> None:
        super().__init__([("127.0.0.1", 9)])
        self.session = session
        self.replies = list(replies)
        self.sent: list[bytes] = []

    def _exchange(self, frame: bytes, operation: int, retry_on_new_connection: bool) -> bytes:
        self.sent.append(frame)
        reply = iggy.parse_reply(self.replies.pop(0), operation)
        if reply.status:
            raise ClientError(reply.status)
        return reply.payload
