"""The streams domain: streams, topics, partitions, consumer groups and their members.

Owns: that state, the state checks and mutations of operations 128..140, 148, 149, its reads
(200, 201, 300, 301, 600, 601), and the client -> group memberships index the mux uses when a
session ends. Every method validates everything first and mutates last, so a DomainError leaves
the state untouched. Must never check users or sessions itself (the mux passes the acting
user's permissions and the client's member id) and never read a clock (timestamps come in).

Partitions are stored compactly as runs [(count, created_at)] per topic: a partition is only
its id (its position) and the timestamp of the operation that created it.
"""

from __future__ import annotations

from domains import permissions as P
from domains import streams_wire as wire
from domains import topic_options
from domains.codec import Identifier, decode_options, encode_options, merge_options
from domains.errors import (
    CONSUMER_GROUP_ID_NOT_FOUND,
    CONSUMER_GROUP_MEMBER_NOT_FOUND,
    CONSUMER_GROUP_NAME_ALREADY_EXISTS,
    INVALID_PARTITIONS_COUNT,
    STREAM_ID_NOT_FOUND,
    STREAM_NAME_ALREADY_EXISTS,
    TOO_MANY_CONSUMER_GROUPS,
    TOO_MANY_PARTITIONS,
    TOO_MANY_STREAMS,
    TOO_MANY_TOPICS,
    TOPIC_ID_NOT_FOUND,
    TOPIC_NAME_ALREADY_EXISTS,
    UNAUTHORIZED,
    DomainError,
)
from domains.ids import LowestFree

STREAMS_MAX = 100_000
TOPICS_PER_STREAM_MAX = 100_000
PARTITIONS_PER_TOPIC_MAX = 10_000
GROUPS_PER_TOPIC_MAX = 10_000
MEMBERS_PER_GROUP_MAX = 10_000

GroupKey = tuple[int, int, int]  # (stream id, topic id, group id)


class Group:
    __slots__ = ("id", "name", "members")

    def __init__(self, ident: int, name: str) -> None:
        self.id = ident
        self.name = name
        self.members: dict[bytes, int] = {}  # client -> member id


class Topic:
    __slots__ = ("id", "name", "created_at", "options", "compression", "expiry", "max_size",
                 "purge_gen", "runs", "partitions", "next_group", "groups", "group_names")

    def __init__(self, ident: int, name: str, created_at: int, options: bytes,
                 fixed: tuple[int, int, int]) -> None:
        self.id = ident
        self.name = name
        self.created_at = created_at
        self.options = options  # canonical pairs, decoded only on update
        self.compression, self.expiry, self.max_size = fixed
        self.purge_gen = 0
        self.runs: list[list[int]] = []  # [count, created_at] in partition-id order
        self.partitions = 0
        self.next_group = 0  # group ids are never reused within the topic
        self.groups: dict[int, Group] = {}
        self.group_names: dict[str, int] = {}

    def add_partitions(self, count: int, created_at: int) -> None:
        runs = self.runs
        if runs and runs[-1][1] == created_at:
            runs[-1][0] += count
        else:
            runs.append([count, created_at])
        self.partitions += count

    def remove_partitions(self, count: int) -> None:
        self.partitions -= count
        runs = self.runs
        while count:
            last = runs[-1]
            take = min(count, last[0])
            last[0] -= take
            count -= take
            if not last[0]:
                runs.pop()


class Stream:
    __slots__ = ("id", "name", "created_at", "options", "purge_gen", "topics", "topic_names",
                 "topic_ids")

    def __init__(self, ident: int, name: str, created_at: int, options: bytes) -> None:
        self.id = ident
        self.name = name
        self.created_at = created_at
        self.options = options
        self.purge_gen = 0
        self.topics: dict[int, Topic] = {}
        self.topic_names: dict[str, int] = {}
        self.topic_ids = LowestFree()


class StreamsDomain:
    """State and operations of streams/topics/partitions/groups; see the module docstring."""

    def __init__(self) -> None:
        self.streams: dict[int, Stream] = {}
        self.names: dict[str, int] = {}
        self.ids = LowestFree()
        self.partitions_total = 0
        self.groups_total = 0
        # client -> keys of the groups it is a member of (an index over Group.members).
        self.memberships: dict[bytes, set[GroupKey]] = {}
        self.dirty = True

    # ---- lookups ---------------------------------------------------------------------
    def find_stream(self, ident: Identifier) -> Stream | None:
        if isinstance(ident, int):
            return self.streams.get(ident)
        sid = self.names.get(ident)
        return None if sid is None else self.streams[sid]

    def stream(self, ident: Identifier) -> Stream:
        stream = self.find_stream(ident)
        if stream is None:
            raise DomainError(STREAM_ID_NOT_FOUND)
        return stream

    @staticmethod
    def find_topic(stream: Stream, ident: Identifier) -> Topic | None:
        if isinstance(ident, int):
            return stream.topics.get(ident)
        tid = stream.topic_names.get(ident)
        return None if tid is None else stream.topics[tid]

    def topic(self, stream: Stream, ident: Identifier) -> Topic:
        topic = self.find_topic(stream, ident)
        if topic is None:
            raise DomainError(TOPIC_ID_NOT_FOUND)
        return topic

    @staticmethod
    def find_group(topic: Topic, ident: Identifier) -> Group | None:
        if isinstance(ident, int):
            return topic.groups.get(ident)
        gid = topic.group_names.get(ident)
        return None if gid is None else topic.groups[gid]

    def group(self, topic: Topic, ident: Identifier) -> Group:
        group = self.find_group(topic, ident)
        if group is None:
            raise DomainError(CONSUMER_GROUP_ID_NOT_FOUND)
        return group

    @staticmethod
    def permit(perms, rule, stream: int = -1, topic: int = -1) -> None:
        if not P.allowed(perms, rule, stream, topic):
            raise DomainError(UNAUTHORIZED)

    # ---- streams ---------------------------------------------------------------------
    def create_stream(self, perms, timestamp: int, body: bytes) -> bytes:
        name, options = wire.decode_create_stream(body)
        self.permit(perms, P.CREATE_STREAM)
        if name in self.names:
            raise DomainError(STREAM_NAME_ALREADY_EXISTS)
        if len(self.streams) >= STREAMS_MAX:
            raise DomainError(TOO_MANY_STREAMS)
        sid = self.ids.lowest(self.streams)
        stream = Stream(sid, name, timestamp, encode_options(options))
        self.streams[sid] = stream
        self.names[name] = sid
        self.dirty = True
        return wire.stream_details(stream)

    def update_stream(self, perms, body: bytes) -> bytes:
        ident, name, options = wire.decode_update_stream(body)
        stream = self.stream(ident)
        self.permit(perms, P.MANAGE_STREAM, stream.id)
        holder = self.names.get(name)
        if holder is not None and holder != stream.id:
            raise DomainError(STREAM_NAME_ALREADY_EXISTS)
        merged = encode_options(merge_options(decode_options(stream.options), options))
        del self.names[stream.name]
        stream.name = name
        self.names[name] = stream.id
        stream.options = merged
        self.dirty = True
        return b""

    def prepare_delete_stream(self, perms, body: bytes) -> Stream:
        (ident,) = wire.decode_ids(body, 1)
        stream = self.stream(ident)
        self.permit(perms, P.MANAGE_STREAM, stream.id)
        return stream

    def delete_stream(self, stream: Stream) -> None:
        for topic in stream.topics.values():
            self._drop_topic_contents(stream.id, topic)
        del self.streams[stream.id]
        del self.names[stream.name]
        self.ids.released(stream.id)
        self.dirty = True

    def purge_stream(self, perms, body: bytes) -> bytes:
        (ident,) = wire.decode_ids(body, 1)
        stream = self.stream(ident)
        self.permit(perms, P.MANAGE_STREAM, stream.id)
        # Purging drops messages, which live outside metadata; the generation tells the
        # partition plane which purge it has caught up with.
        stream.purge_gen += 1
        for topic in stream.topics.values():
            topic.purge_gen += 1
        self.dirty = True
        return b""

    # ---- topics ----------------------------------------------------------------------
    def create_topic(self, perms, timestamp: int, body: bytes) -> bytes:
        ident, partitions, name, options = wire.decode_create_topic(body)
        stream = self.stream(ident)
        self.permit(perms, P.MANAGE_TOPIC, stream.id)
        if name in stream.topic_names:
            raise DomainError(TOPIC_NAME_ALREADY_EXISTS)
        if len(stream.topics) >= TOPICS_PER_STREAM_MAX:
            raise DomainError(TOO_MANY_TOPICS)
        fixed = topic_options.fixed_fields(options)
        tid = stream.topic_ids.lowest(stream.topics)
        topic = Topic(tid, name, timestamp, encode_options(options), fixed)
        if partitions:
            topic.add_partitions(partitions, timestamp)
        stream.topics[tid] = topic
        stream.topic_names[name] = tid
        self.partitions_total += partitions
        self.dirty = True
        return wire.topic_details(topic)

    def update_topic(self, perms, body: bytes) -> bytes:
        sident, tident, name, patch = wire.decode_update_topic(body)
        stream = self.stream(sident)
        topic = self.topic(stream, tident)
        self.permit(perms, P.MANAGE_TOPIC, stream.id, topic.id)
        holder = stream.topic_names.get(name)
        if holder is not None and holder != topic.id:
            raise DomainError(TOPIC_NAME_ALREADY_EXISTS)
        merged = merge_options(decode_options(topic.options), patch)
        fixed = topic_options.fixed_fields(merged)
        del stream.topic_names[topic.name]
        topic.name = name
        stream.topic_names[name] = topic.id
        topic.options = encode_options(merged)
        topic.compression, topic.expiry, topic.max_size = fixed
        self.dirty = True
        return b""

    def prepare_delete_topic(self, perms, body: bytes) -> tuple[Stream, Topic]:
        sident, tident = wire.decode_ids(body, 2)
        stream = self.stream(sident)
        topic = self.topic(stream, tident)
        self.permit(perms, P.MANAGE_TOPIC, stream.id, topic.id)
        return stream, topic

    def delete_topic(self, stream: Stream, topic: Topic) -> None:
        self._drop_topic_contents(stream.id, topic)
        del stream.topics[topic.id]
        del stream.topic_names[topic.name]
        stream.topic_ids.released(topic.id)
        self.dirty = True

    def _drop_topic_contents(self, sid: int, topic: Topic) -> None:
        self.partitions_total -= topic.partitions
        for group in topic.groups.values():
            self._forget_members((sid, topic.id, group.id), group)
        self.groups_total -= len(topic.groups)

    def _forget_members(self, key: GroupKey, group: Group) -> None:
        memberships = self.memberships
        for client in group.members:
            keys = memberships[client]
            keys.discard(key)
            if not keys:
                del memberships[client]

    def purge_topic(self, perms, body: bytes) -> bytes:
        sident, tident = wire.decode_ids(body, 2)
        stream = self.stream(sident)
        topic = self.topic(stream, tident)
        self.permit(perms, P.MANAGE_TOPIC, stream.id, topic.id)
        topic.purge_gen += 1
        self.dirty = True
        return b""

    # ---- partitions ------------------------------------------------------------------
    def create_partitions(self, perms, timestamp: int, body: bytes) -> bytes:
        sident, tident, count = wire.decode_partitions(body)
        stream = self.stream(sident)
        topic = self.topic(stream, tident)
        self.permit(perms, P.MANAGE_TOPIC, stream.id, topic.id)
        if topic.partitions + count > PARTITIONS_PER_TOPIC_MAX:
            raise DomainError(TOO_MANY_PARTITIONS)
        topic.add_partitions(count, timestamp)
        self.partitions_total += count
        self.dirty = True
        return b""

    def delete_partitions(self, perms, body: bytes) -> bytes:
        sident, tident, count = wire.decode_partitions(body)
        stream = self.stream(sident)
        topic = self.topic(stream, tident)
        self.permit(perms, P.MANAGE_TOPIC, stream.id, topic.id)
        if count > topic.partitions:
            raise DomainError(INVALID_PARTITIONS_COUNT)
        topic.remove_partitions(count)
        self.partitions_total -= count
        self.dirty = True
        return b""

    # ---- consumer groups -------------------------------------------------------------
    def create_group(self, perms, body: bytes) -> bytes:
        sident, tident, name = wire.decode_create_group(body)
        stream = self.stream(sident)
        topic = self.topic(stream, tident)
        self.permit(perms, P.CONSUME, stream.id, topic.id)
        if name in topic.group_names:
            raise DomainError(CONSUMER_GROUP_NAME_ALREADY_EXISTS)
        if len(topic.groups) >= GROUPS_PER_TOPIC_MAX:
            raise DomainError(TOO_MANY_CONSUMER_GROUPS)
        group = Group(topic.next_group, name)
        topic.next_group += 1
        topic.groups[group.id] = group
        topic.group_names[name] = group.id
        self.groups_total += 1
        self.dirty = True
        return wire.group_details(group, topic.partitions)

    def _group_target(self, perms, body: bytes) -> tuple[Stream, Topic, Group]:
        sident, tident, gident = wire.decode_ids(body, 3)
        stream = self.stream(sident)
        topic = self.topic(stream, tident)
        self.permit(perms, P.CONSUME, stream.id, topic.id)
        return stream, topic, self.group(topic, gident)

    def delete_group(self, perms, body: bytes) -> bytes:
        stream, topic, group = self._group_target(perms, body)
        self._forget_members((stream.id, topic.id, group.id), group)
        del topic.groups[group.id]
        del topic.group_names[group.name]
        self.groups_total -= 1
        self.dirty = True
        return b""

    def join_group(self, perms, body: bytes, client: bytes, member_id: int) -> bytes:
        stream, topic, group = self._group_target(perms, body)
        if client in group.members:
            return b""  # joining twice is a no-op, as in Iggy
        if len(group.members) >= MEMBERS_PER_GROUP_MAX:
            raise DomainError(TOO_MANY_CONSUMER_GROUPS)
        group.members[client] = member_id
        self.memberships.setdefault(client, set()).add((stream.id, topic.id, group.id))
        self.dirty = True
        return b""

    def leave_group(self, perms, body: bytes, client: bytes) -> bytes:
        stream, topic, group = self._group_target(perms, body)
        if client not in group.members:
            raise DomainError(CONSUMER_GROUP_MEMBER_NOT_FOUND)
        del group.members[client]
        keys = self.memberships[client]
        keys.discard((stream.id, topic.id, group.id))
        if not keys:
            del self.memberships[client]
        self.dirty = True
        return b""

    def leave_all(self, client: bytes) -> None:
        """The client leaves every group (logout, session eviction, its user deleted)."""
        keys = self.memberships.pop(client, None)
        if not keys:
            return
        for sid, tid, gid in keys:
            del self.streams[sid].topics[tid].groups[gid].members[client]
        self.dirty = True

    # ---- reads -----------------------------------------------------------------------
    def get_stream(self, perms, body: bytes) -> bytes:
        (ident,) = wire.decode_ids(body, 1)
        stream = self.find_stream(ident)
        if stream is None:
            return b""
        self.permit(perms, P.READ_STREAM, stream.id)
        return wire.stream_details(stream)

    def get_streams(self, perms, body: bytes) -> bytes:
        wire.decode_ids(body, 0)
        self.permit(perms, P.LIST_STREAMS)
        streams = self.streams
        return b"".join(wire.stream_header(streams[s]) for s in sorted(streams))

    def get_topic(self, perms, body: bytes) -> bytes:
        sident, tident = wire.decode_ids(body, 2)
        stream = self.find_stream(sident)
        topic = None if stream is None else self.find_topic(stream, tident)
        if topic is None:
            return b""
        self.permit(perms, P.READ_TOPIC, stream.id, topic.id)
        return wire.topic_details(topic)

    def get_topics(self, perms, body: bytes) -> bytes:
        (sident,) = wire.decode_ids(body, 1)
        stream = self.stream(sident)
        self.permit(perms, P.READ_STREAM, stream.id)
        topics = stream.topics
        return (len(topics).to_bytes(4, "little")
                + b"".join(wire.topic_header(topics[t]) for t in sorted(topics)))

    def get_group(self, perms, body: bytes) -> bytes:
        sident, tident, gident = wire.decode_ids(body, 3)
        stream = self.stream(sident)
        topic = self.topic(stream, tident)
        group = self.find_group(topic, gident)
        if group is None:
            return b""
        self.permit(perms, P.CONSUME, stream.id, topic.id)
        return wire.group_details(group, topic.partitions)

    def get_groups(self, perms, body: bytes) -> bytes:
        sident, tident = wire.decode_ids(body, 2)
        stream = self.stream(sident)
        topic = self.topic(stream, tident)
        self.permit(perms, P.CONSUME, stream.id, topic.id)
        groups = topic.groups
        return b"".join(wire.group_header(groups[g], topic.partitions) for g in sorted(groups))
