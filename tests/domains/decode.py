"""Test-side decoders of Iggy's response layouts (iggy-protocol.md section 8), written
independently of domains/ so the model test compares meanings, not shared code."""

from __future__ import annotations

import struct

GLOBAL = ("manage_servers", "read_servers", "manage_users", "read_users", "manage_streams",
          "read_streams", "manage_topics", "read_topics", "poll_messages", "send_messages")
STREAM = ("manage_stream", "read_stream", "manage_topics", "read_topics", "poll_messages",
          "send_messages")
TOPIC = ("manage_topic", "read_topic", "poll_messages", "send_messages")


class Cursor:
    def __init__(self, data: bytes) -> None:
        self.data, self.pos = data, 0

    def unpack(self, fmt: str):
        values = struct.unpack_from("<" + fmt, self.data, self.pos)
        self.pos += struct.calcsize("<" + fmt)
        return values if len(values) > 1 else values[0]

    def raw(self, size: int) -> bytes:
        chunk = self.data[self.pos:self.pos + size]
        assert len(chunk) == size
        self.pos += size
        return chunk

    def name(self) -> str:
        return self.raw(self.unpack("B")).decode()

    def done(self) -> bool:
        return self.pos == len(self.data)


def options(cur: Cursor) -> dict:
    block = Cursor(cur.raw(cur.unpack("I")))
    result = {}
    while not block.done():
        assert block.unpack("B") == 2
        key = block.raw(block.unpack("I")).decode()
        kind = block.unpack("B")
        result[key] = (kind, block.raw(block.unpack("I")))
    return result


def stream_header(cur: Cursor) -> tuple:
    sid, created, topics, size, messages = cur.unpack("IQIQQ")
    assert size == 0 and messages == 0
    return sid, created, topics, cur.name(), options(cur)


def stream_details(data: bytes) -> tuple:
    cur = Cursor(data)
    header = stream_header(cur)
    topics = [topic_header(cur) for _ in range(header[2])]
    assert cur.done()
    return header, topics


def streams_list(data: bytes) -> list:
    cur = Cursor(data)
    result = []
    while not cur.done():
        result.append(stream_header(cur))
    return result


def topic_header(cur: Cursor) -> tuple:
    tid, created, partitions, expiry, compression, max_size, size, messages = cur.unpack("IQIQBQQQ")
    name = cur.name()
    explicit = options(cur)
    assert options(cur) == {}
    return tid, created, partitions, expiry, compression, max_size, name, explicit


def topic_details(data: bytes) -> tuple:
    cur = Cursor(data)
    header = topic_header(cur)
    parts = []
    for _ in range(header[2]):
        pid, created, segments, offset, size, messages = cur.unpack("IQIQQQ")
        parts.append((pid, created))
    assert cur.done()
    return header, parts


def topics_list(data: bytes) -> list:
    cur = Cursor(data)
    count = cur.unpack("I")
    result = [topic_header(cur) for _ in range(count)]
    assert cur.done()
    return result


def group_header(cur: Cursor) -> tuple:
    gid, partitions, members = cur.unpack("III")
    return gid, partitions, members, cur.name()


def group_details(data: bytes) -> tuple:
    cur = Cursor(data)
    header = group_header(cur)
    members = []
    for _ in range(header[2]):
        member, count = cur.unpack("II")
        members.append((member, [cur.unpack("I") for _ in range(count)]))
    assert cur.done()
    return header, members


def groups_list(data: bytes) -> list:
    cur = Cursor(data)
    result = []
    while not cur.done():
        result.append(group_header(cur))
    return result


def flags(cur: Cursor, names) -> frozenset:
    return frozenset(n for n in names if cur.unpack("B"))


def permissions(data: bytes) -> tuple:
    cur = Cursor(data)
    glob = flags(cur, GLOBAL)
    streams = {}
    while cur.unpack("B"):
        sid = cur.unpack("I")
        sflags = flags(cur, STREAM)
        topics = {}
        while cur.unpack("B"):
            tid = cur.unpack("I")
            topics[tid] = flags(cur, TOPIC)
        streams[sid] = (sflags, topics)
    assert cur.done()
    return glob, streams


def user_header(cur: Cursor) -> tuple:
    uid, created, status = cur.unpack("IQB")
    return uid, created, status, cur.name(), options(cur)


def user_details(data: bytes) -> tuple:
    cur = Cursor(data)
    header = user_header(cur)
    if cur.unpack("B"):
        perms = permissions(cur.raw(cur.unpack("I")))
    else:
        assert cur.raw(3) == b"\0\0\0"
        perms = None
    assert cur.done()
    return header, perms


def users_list(data: bytes) -> list:
    cur = Cursor(data)
    result = []
    while not cur.done():
        result.append(user_header(cur))
    return result


def tokens_list(data: bytes) -> list:
    cur = Cursor(data)
    result = []
    while not cur.done():
        result.append((cur.name(), cur.unpack("Q")))
    return result


def register(data: bytes) -> tuple:
    return struct.unpack("<IQ", data)
