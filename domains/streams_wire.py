"""Iggy binary encodings of the streams domain: its request bodies and its result bodies.

Owns: decoding (with every static bound) and canonical encoding of the request bodies of
operations 128..140, 148, 149 and reads 200, 201, 300, 301, 600, 601, and the response layouts
StreamHeader/Details, TopicHeader/Details, Partition, ConsumerGroupHeader/Details
(iggy-protocol.md sections 8, 9) in both directions: encoders for the server, decoders into
frozen dataclasses for the client library (failures: codec.MalformedResult). Must never touch
state: encoders take the model objects.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, fields

from domains import topic_options
from domains.codec import (
    NAME_MAX,
    U32,
    Identifier,
    Options,
    Reader,
    decode_options,
    encode_options,
    identifier,
    name8,
    options_block,
    read_one,
    read_until_end,
    result_decoder,
    string_options_only,
)
from domains.errors import (
    INVALID_CONSUMER_GROUP_NAME,
    INVALID_FORMAT,
    INVALID_PARTITIONS_COUNT,
    INVALID_STREAM_NAME,
    INVALID_TOPIC_NAME,
    TOO_MANY_PARTITIONS,
    DomainError,
)

# Partition counts (iggy-protocol.md section 10).
CREATE_TOPIC_PARTITIONS_MAX = 1000
PARTITIONS_STEP_MAX = 1000

# ---- requests ----------------------------------------------------------------------------


def decode_create_stream(body: bytes) -> tuple[str, Options]:
    reader = Reader(body)
    name = reader.name8(1, NAME_MAX, INVALID_STREAM_NAME)
    options = decode_options(reader.rest())
    string_options_only(options)
    return name, options


def encode_create_stream(name: str, options: Options) -> bytes:
    return name8(name) + encode_options(options)


def decode_update_stream(body: bytes) -> tuple[Identifier, str, Options]:
    reader = Reader(body)
    stream = reader.identifier()
    name = reader.name8(1, NAME_MAX, INVALID_STREAM_NAME)
    options = decode_options(reader.rest())
    string_options_only(options)
    return stream, name, options


def encode_update_stream(stream: Identifier, name: str, options: Options) -> bytes:
    return identifier(stream) + name8(name) + encode_options(options)


def decode_ids(body: bytes, count: int) -> tuple[Identifier, ...]:
    """Bodies made of `count` identifiers only (delete/purge/get of streams, topics, groups)."""
    reader = Reader(body)
    read = reader.identifier
    if count == 3:
        idents = (read(), read(), read())
    elif count == 2:
        idents = (read(), read())
    else:
        idents = tuple([read() for _ in range(count)])
    reader.end()
    return idents


def encode_ids(*idents: Identifier) -> bytes:
    return b"".join(identifier(i) for i in idents)


def decode_create_topic(body: bytes) -> tuple[Identifier, int, str, Options]:
    reader = Reader(body)
    stream = reader.identifier()
    partitions = reader.u32()
    if partitions > CREATE_TOPIC_PARTITIONS_MAX:
        raise DomainError(TOO_MANY_PARTITIONS)
    name = reader.name8(1, NAME_MAX, INVALID_TOPIC_NAME)
    options = decode_options(reader.rest())
    topic_options.check(options)
    topic_options.fixed_fields(options)
    return stream, partitions, name, options


def encode_create_topic(stream: Identifier, partitions: int, name: str, options: Options) -> bytes:
    return identifier(stream) + U32.pack(partitions) + name8(name) + encode_options(options)


def decode_update_topic(body: bytes) -> tuple[Identifier, Identifier, str, Options]:
    reader = Reader(body)
    stream = reader.identifier()
    topic = reader.identifier()
    name = reader.name8(1, NAME_MAX, INVALID_TOPIC_NAME)
    options = decode_options(reader.rest())
    topic_options.check(options)
    return stream, topic, name, options


def encode_update_topic(stream: Identifier, topic: Identifier, name: str, options: Options) -> bytes:
    return identifier(stream) + identifier(topic) + name8(name) + encode_options(options)


def decode_partitions(body: bytes) -> tuple[Identifier, Identifier, int]:
    reader = Reader(body)
    stream = reader.identifier()
    topic = reader.identifier()
    count = reader.u32()
    reader.end()
    if not 1 <= count <= PARTITIONS_STEP_MAX:
        raise DomainError(INVALID_PARTITIONS_COUNT)
    return stream, topic, count


def encode_partitions(stream: Identifier, topic: Identifier, count: int) -> bytes:
    return identifier(stream) + identifier(topic) + U32.pack(count)


def decode_create_group(body: bytes) -> tuple[Identifier, Identifier, str]:
    reader = Reader(body)
    stream = reader.identifier()
    topic = reader.identifier()
    name = reader.name8(1, NAME_MAX, INVALID_CONSUMER_GROUP_NAME)
    reader.end()
    return stream, topic, name


def encode_create_group(stream: Identifier, topic: Identifier, name: str) -> bytes:
    return identifier(stream) + identifier(topic) + name8(name)


# ---- results -----------------------------------------------------------------------------

_STREAM_FIXED = struct.Struct("<IQIQQ")
_TOPIC_FIXED = struct.Struct("<IQIQBQQQ")
_PARTITION = struct.Struct("<IQIQQQ")
_GROUP_FIXED = struct.Struct("<III")
# A partition in a metadata store has no data yet: one (empty) segment, offset 0, size 0.
_SEGMENTS = 1


def stream_header(stream) -> bytes:
    return (_STREAM_FIXED.pack(stream.id, stream.created_at, len(stream.topics), 0, 0)
            + name8(stream.name) + U32.pack(len(stream.options)) + stream.options)


def stream_details(stream) -> bytes:
    topics = stream.topics
    return stream_header(stream) + b"".join(topic_header(topics[t]) for t in sorted(topics))


def topic_header(topic) -> bytes:
    return (_TOPIC_FIXED.pack(topic.id, topic.created_at, topic.partitions, topic.expiry,
                              topic.compression, topic.max_size, 0, 0)
            + name8(topic.name) + U32.pack(len(topic.options)) + topic.options
            + b"\x00\x00\x00\x00")  # derived options: none


def topic_details(topic) -> bytes:
    parts = [topic_header(topic)]
    pack = _PARTITION.pack
    partition = 0
    for count, created_at in topic.runs:
        for _ in range(count):
            parts.append(pack(partition, created_at, _SEGMENTS, 0, 0, 0))
            partition += 1
    return b"".join(parts)


def group_header(group, partitions: int) -> bytes:
    return _GROUP_FIXED.pack(group.id, partitions, len(group.members)) + name8(group.name)


def group_details(group, partitions: int) -> bytes:
    parts = [group_header(group, partitions)]
    for member_id, owned in assignment(sorted(group.members.values()), partitions):
        parts.append(U32.pack(member_id) + U32.pack(len(owned))
                     + b"".join(U32.pack(p) for p in owned))
    return b"".join(parts)


def assignment(member_ids: list[int], partitions: int) -> list[tuple[int, list[int]]]:
    """Partition p goes to the (p mod m)-th member by ascending member id: a pure function of
    the partition count and the member set, so every replica computes the same assignment and
    it is recomputed from scratch on every change (never stored, never drifts)."""
    count = len(member_ids)
    owned: list[list[int]] = [[] for _ in range(count)]
    if count:
        for partition in range(partitions):
            owned[partition % count].append(partition)
    return list(zip(member_ids, owned))


# ---- result decoding (the client library's side of the layouts above) --------------------
# Typed results: frozen dataclasses whose fields are the layouts' fields, in layout order.
# Counts on the wire are trusted only as far as the body goes: every read is bounds-checked
# by the Reader, so a huge count in a short body fails at the first missing byte.


@dataclass(frozen=True)
class TopicHeader:
    id: int
    created_at: int  # µs since the Unix epoch
    partitions_count: int
    message_expiry: int  # µs; 0 = server default, U64_MAX = never
    compression: int  # topic_options.COMPRESSION_NONE / COMPRESSION_GZIP
    max_topic_size: int  # bytes; 0 = server default, U64_MAX = unlimited
    size: int
    messages_count: int
    name: str
    options: Options
    derived_options: Options


@dataclass(frozen=True)
class Partition:
    id: int
    created_at: int
    segments_count: int
    current_offset: int
    size: int
    messages_count: int


@dataclass(frozen=True)
class TopicDetails(TopicHeader):
    partitions: tuple[Partition, ...]


@dataclass(frozen=True)
class StreamHeader:
    id: int
    created_at: int
    topics_count: int
    size: int
    messages_count: int
    name: str
    options: Options


@dataclass(frozen=True)
class StreamDetails(StreamHeader):
    topics: tuple[TopicHeader, ...]


@dataclass(frozen=True)
class ConsumerGroupHeader:
    id: int
    partitions_count: int
    members_count: int
    name: str


@dataclass(frozen=True)
class ConsumerGroupMember:
    id: int
    partitions: tuple[int, ...]


@dataclass(frozen=True)
class ConsumerGroupDetails(ConsumerGroupHeader):
    members: tuple[ConsumerGroupMember, ...]


def _result_name(reader: Reader) -> str:
    return reader.name8(1, NAME_MAX, INVALID_FORMAT)


def _read_stream_header(reader: Reader) -> StreamHeader:
    fixed = _STREAM_FIXED.unpack(reader.take(_STREAM_FIXED.size))
    return StreamHeader(*fixed, _result_name(reader), options_block(reader))


def _read_topic_header(reader: Reader) -> TopicHeader:
    fixed = _TOPIC_FIXED.unpack(reader.take(_TOPIC_FIXED.size))
    # Any other compression byte makes the SDK fail the whole topic decode (protocol 7).
    if fixed[4] not in topic_options.COMPRESSIONS.values():
        raise DomainError(INVALID_FORMAT)
    return TopicHeader(*fixed, _result_name(reader), options_block(reader), options_block(reader))


def _read_partition(reader: Reader) -> Partition:
    return Partition(*_PARTITION.unpack(reader.take(_PARTITION.size)))


def _read_group_header(reader: Reader) -> ConsumerGroupHeader:
    fixed = _GROUP_FIXED.unpack(reader.take(_GROUP_FIXED.size))
    return ConsumerGroupHeader(*fixed, _result_name(reader))


def _read_member(reader: Reader) -> ConsumerGroupMember:
    member_id = reader.u32()
    count = reader.u32()
    owned = reader.take(4 * count)  # bounds-checked before anything is unpacked
    return ConsumerGroupMember(member_id, struct.unpack(f"<{count}I", owned))


@result_decoder
def decode_stream_header(payload: bytes) -> StreamHeader:
    return read_one(payload, _read_stream_header)


@result_decoder
def decode_stream_details(payload: bytes) -> StreamDetails:
    """GetStream / CreateStream: the header, then exactly `topics_count` topic headers."""
    reader = Reader(payload)
    header = _read_stream_header(reader)
    topics = tuple(_read_topic_header(reader) for _ in range(header.topics_count))
    reader.end()
    return StreamDetails(*_fields(header), topics)


@result_decoder
def decode_stream_list(payload: bytes) -> list[StreamHeader]:
    """GetStreams: headers back to back to the end (an empty body is no streams)."""
    return read_until_end(payload, _read_stream_header)


@result_decoder
def decode_topic_header(payload: bytes) -> TopicHeader:
    return read_one(payload, _read_topic_header)


@result_decoder
def decode_topic_details(payload: bytes) -> TopicDetails:
    """GetTopic / CreateTopic: the header, then exactly `partitions_count` partitions."""
    reader = Reader(payload)
    header = _read_topic_header(reader)
    partitions = tuple(_read_partition(reader) for _ in range(header.partitions_count))
    reader.end()
    return TopicDetails(*_fields(header), partitions)


@result_decoder
def decode_topic_list(payload: bytes) -> list[TopicHeader]:
    """GetTopics: `[count u32]` then exactly that many headers (the only counted list)."""
    reader = Reader(payload)
    count = reader.u32()
    topics = [_read_topic_header(reader) for _ in range(count)]
    reader.end()
    return topics


@result_decoder
def decode_partition(payload: bytes) -> Partition:
    return read_one(payload, _read_partition)


@result_decoder
def decode_group_header(payload: bytes) -> ConsumerGroupHeader:
    return read_one(payload, _read_group_header)


@result_decoder
def decode_group_details(payload: bytes) -> ConsumerGroupDetails:
    """GetConsumerGroup / CreateConsumerGroup: the header, then `members_count` members."""
    reader = Reader(payload)
    header = _read_group_header(reader)
    members = tuple(_read_member(reader) for _ in range(header.members_count))
    reader.end()
    return ConsumerGroupDetails(*_fields(header), members)


@result_decoder
def decode_group_list(payload: bytes) -> list[ConsumerGroupHeader]:
    """GetConsumerGroups: headers back to back to the end."""
    return read_until_end(payload, _read_group_header)


def _fields(header) -> tuple:
    """A header's field values in order, to extend it into its details type."""
    return tuple(getattr(header, f.name) for f in fields(header))
