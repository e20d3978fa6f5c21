"""User permissions: Iggy's binary layout (iggy-protocol.md section 7) and its inheritance rules.

Owns: the `Permissions` value (global flags, per-stream flags, per-topic flags, as bitmasks so
checks are integer tests), its decode/encode, the flags' names, and
`allowed(perms, rule, stream, topic)`. Must
never look at users or streams itself: callers pass the acting user's permissions (or ROOT).

Inheritance (as Iggy): a global flag covers every stream and topic; a stream's flag covers its
topics; `manage_*` implies the matching `read_*`; root (user 0) may do everything.
"""

from __future__ import annotations

from domains.codec import U32, Reader
from domains.errors import INVALID_FORMAT, DomainError

# Global flags, bit i = the i-th u8 of the wire layout.
G_MANAGE_SERVERS, G_READ_SERVERS, G_MANAGE_USERS, G_READ_USERS = 1, 2, 4, 8
G_MANAGE_STREAMS, G_READ_STREAMS, G_MANAGE_TOPICS, G_READ_TOPICS = 16, 32, 64, 128
G_POLL, G_SEND = 256, 512
GLOBAL_FLAGS = 10
# Per-stream flags.
S_MANAGE_STREAM, S_READ_STREAM, S_MANAGE_TOPICS, S_READ_TOPICS, S_POLL, S_SEND = (
    1, 2, 4, 8, 16, 32)
STREAM_FLAGS = 6
# Per-topic flags.
T_MANAGE, T_READ, T_POLL, T_SEND = 1, 2, 4, 8
TOPIC_FLAGS = 4

# Bounds on one permissions value, so a user record stays small.
PERMISSION_STREAMS_MAX = 1000
PERMISSION_TOPICS_MAX = 1000

# Permissions = (global bits, {stream_id: (stream bits, {topic_id: topic bits})}).
Permissions = tuple[int, dict[int, tuple[int, dict[int, int]]]]
ROOT = None  # the acting "permissions" of root: every check passes


class Rule:
    """Which bits grant an action at each level (0 = that level cannot grant it)."""

    __slots__ = ("glob", "stream", "topic")

    def __init__(self, glob: int, stream: int = 0, topic: int = 0) -> None:
        self.glob, self.stream, self.topic = glob, stream, topic


MANAGE_USERS = Rule(G_MANAGE_USERS)
READ_SERVERS = Rule(G_MANAGE_SERVERS | G_READ_SERVERS)  # stats (Iggy's get_stats)
READ_USERS = Rule(G_MANAGE_USERS | G_READ_USERS)
CREATE_STREAM = Rule(G_MANAGE_STREAMS)
MANAGE_STREAM = Rule(G_MANAGE_STREAMS, S_MANAGE_STREAM)
READ_STREAM = Rule(G_MANAGE_STREAMS | G_READ_STREAMS, S_MANAGE_STREAM | S_READ_STREAM)
LIST_STREAMS = Rule(G_MANAGE_STREAMS | G_READ_STREAMS)
MANAGE_TOPIC = Rule(G_MANAGE_STREAMS | G_MANAGE_TOPICS, S_MANAGE_STREAM | S_MANAGE_TOPICS,
                    T_MANAGE)
READ_TOPIC = Rule(G_MANAGE_STREAMS | G_READ_STREAMS | G_MANAGE_TOPICS | G_READ_TOPICS,
                  S_MANAGE_STREAM | S_READ_STREAM | S_MANAGE_TOPICS | S_READ_TOPICS,
                  T_MANAGE | T_READ)
# Consumer groups are how consumers poll, so poll rights at any level also grant them.
CONSUME = Rule(READ_TOPIC.glob | G_POLL, READ_TOPIC.stream | S_POLL, READ_TOPIC.topic | T_POLL)


def allowed(perms: Permissions | None, rule: Rule, stream: int = -1, topic: int = -1) -> bool:
    """True when `perms` grant `rule` on stream/topic (-1: no such level); None is root."""
    if perms is None:
        return True
    glob, streams = perms
    if glob & rule.glob:
        return True
    if stream < 0 or not streams:
        return False
    entry = streams.get(stream)
    if entry is None:
        return False
    if entry[0] & rule.stream:
        return True
    if topic < 0:
        return False
    bits = entry[1].get(topic)
    return bits is not None and bool(bits & rule.topic)


def _flags(reader: Reader, count: int) -> int:
    bits = 0
    for i in range(count):
        if reader.flag():
            bits |= 1 << i
    return bits


def decode(raw: bytes) -> Permissions:
    """Decode the permissions layout; stream and topic ids must be strictly increasing."""
    reader = Reader(raw)
    glob = _flags(reader, GLOBAL_FLAGS)
    streams: dict[int, tuple[int, dict[int, int]]] = {}
    more = reader.flag()
    last_stream = -1
    while more:
        stream_id = reader.u32()
        if stream_id <= last_stream or len(streams) >= PERMISSION_STREAMS_MAX:
            raise DomainError(INVALID_FORMAT)
        last_stream = stream_id
        stream_bits = _flags(reader, STREAM_FLAGS)
        topics: dict[int, int] = {}
        more_topics = reader.flag()
        last_topic = -1
        while more_topics:
            topic_id = reader.u32()
            if topic_id <= last_topic or len(topics) >= PERMISSION_TOPICS_MAX:
                raise DomainError(INVALID_FORMAT)
            last_topic = topic_id
            topics[topic_id] = _flags(reader, TOPIC_FLAGS)
            more_topics = reader.flag()
        streams[stream_id] = (stream_bits, topics)
        more = reader.flag()
    reader.end()
    return glob, streams


def _bits(bits: int, count: int) -> bytes:
    return bytes((bits >> i) & 1 for i in range(count))


def encode(perms: Permissions) -> bytes:
    glob, streams = perms
    parts = [_bits(glob, GLOBAL_FLAGS)]
    for stream_id in sorted(streams):
        stream_bits, topics = streams[stream_id]
        parts.append(b"\x01" + U32.pack(stream_id) + _bits(stream_bits, STREAM_FLAGS))
        for topic_id in sorted(topics):
            parts.append(b"\x01" + U32.pack(topic_id) + _bits(topics[topic_id], TOPIC_FLAGS))
        parts.append(b"\x00")
    parts.append(b"\x00")
    return b"".join(parts)


# Flag names per level in wire order (bit i is the i-th name): how clients show and parse them.
GLOBAL_NAMES = ("manage_servers", "read_servers", "manage_users", "read_users", "manage_streams",
                "read_streams", "manage_topics", "read_topics", "poll_messages", "send_messages")
STREAM_NAMES = ("manage_stream", "read_stream", "manage_topics", "read_topics", "poll_messages",
                "send_messages")
TOPIC_NAMES = ("manage_topic", "read_topic", "poll_messages", "send_messages")


def bits_of(names, level: tuple[str, ...]) -> int:
    """The bitmask of flag `names` at a level (GLOBAL_NAMES...); ValueError names a stranger."""
    bits = 0
    for name in names:
        if name not in level:
            raise ValueError(f"unknown permission {name!r}; one of: {', '.join(level)}")
        bits |= 1 << level.index(name)
    return bits


def names_of(bits: int, level: tuple[str, ...]) -> list[str]:
    return [name for i, name in enumerate(level) if bits >> i & 1]
