"""The checkpoint section of the streams domain: a compact struct encoding with its version.

Owns: STREAMS_SECTION_VERSION and the byte layout below; encode is a pure function of the
state, ordered by ids (never by dict insertion or hash order), so equal states give equal bytes.
Must never hold state of its own.

Layout (little-endian):
  [streams u32] then per stream by id:
    [id u32][created_at u64][purge_gen u64][name u8+][options u32+][topics u32] then per topic:
      [id u32][created_at u64][purge_gen u64][expiry u64][max_size u64][compression u8]
      [next_group u32][runs u32][groups u32][name u8+][options u32+]
      runs × [count u32][created_at u64]
      groups × [id u32][members u32][name u8+] then members × [client 16][member_id u32]
"""

from __future__ import annotations

import struct

from core.check import check
from domains.streams import Group, Stream, StreamsDomain, Topic

STREAMS_SECTION_VERSION = 1

_STREAM = struct.Struct("<IQQ")
_TOPIC = struct.Struct("<IQQQQBIII")
_RUN = struct.Struct("<IQ")
_GROUP = struct.Struct("<II")
_MEMBER = struct.Struct("<16sI")
_U32 = struct.Struct("<I")


def _name(name: str) -> bytes:
    raw = name.encode("utf-8")
    return bytes((len(raw),)) + raw


def encode(domain: StreamsDomain) -> bytes:
    out: list[bytes] = [_U32.pack(len(domain.streams))]
    append = out.append
    pack_topic = _TOPIC.pack
    pack_run = _RUN.pack
    pack_u32 = _U32.pack
    for sid in sorted(domain.streams):
        stream = domain.streams[sid]
        append(_STREAM.pack(sid, stream.created_at, stream.purge_gen))
        append(_name(stream.name))
        append(pack_u32(len(stream.options)))
        append(stream.options)
        topics = stream.topics
        append(pack_u32(len(topics)))
        for tid in sorted(topics):
            t = topics[tid]
            append(pack_topic(tid, t.created_at, t.purge_gen, t.expiry, t.max_size,
                              t.compression, t.next_group, len(t.runs), len(t.groups)))
            append(_name(t.name))
            append(pack_u32(len(t.options)))
            append(t.options)
            for count, created_at in t.runs:
                append(pack_run(count, created_at))
            for gid in sorted(t.groups):
                group = t.groups[gid]
                append(_GROUP.pack(gid, len(group.members)))
                append(_name(group.name))
                members = group.members
                for client in sorted(members):
                    append(_MEMBER.pack(client, members[client]))
    return b"".join(out)


def decode(data: bytes) -> StreamsDomain:
    domain = StreamsDomain()
    view = memoryview(data)
    pos = 0

    def name() -> str:
        nonlocal pos
        size = data[pos]
        text = bytes(view[pos + 1:pos + 1 + size]).decode("utf-8")
        pos += 1 + size
        return text

    def blob() -> bytes:
        nonlocal pos
        size = _U32.unpack_from(data, pos)[0]
        raw = bytes(view[pos + 4:pos + 4 + size])
        pos += 4 + size
        return raw

    (stream_count,) = _U32.unpack_from(data, pos)
    pos += 4
    unpack_topic = _TOPIC.unpack_from
    unpack_run = _RUN.unpack_from
    for _ in range(stream_count):
        sid, created_at, purge_gen = _STREAM.unpack_from(data, pos)
        pos += _STREAM.size
        stream = Stream(sid, name(), created_at, blob())
        stream.purge_gen = purge_gen
        (topic_count,) = _U32.unpack_from(data, pos)
        pos += 4
        for _ in range(topic_count):
            (tid, t_created, t_purge, expiry, max_size, compression, next_group, runs,
             groups) = unpack_topic(data, pos)
            pos += _TOPIC.size
            t_name = name()
            topic = Topic(tid, t_name, t_created, blob(), (compression, expiry, max_size))
            topic.purge_gen = t_purge
            topic.next_group = next_group
            for _ in range(runs):
                count, run_created = unpack_run(data, pos)
                pos += _RUN.size
                topic.runs.append([count, run_created])
                topic.partitions += count
            for _ in range(groups):
                gid, members = _GROUP.unpack_from(data, pos)
                pos += _GROUP.size
                group = Group(gid, name())
                for _ in range(members):
                    client, member_id = _MEMBER.unpack_from(data, pos)
                    pos += _MEMBER.size
                    group.members[client] = member_id
                    domain.memberships.setdefault(client, set()).add((sid, tid, gid))
                topic.groups[gid] = group
                topic.group_names[group.name] = gid
            domain.partitions_total += topic.partitions
            domain.groups_total += groups
            stream.topics[tid] = topic
            stream.topic_names[t_name] = tid
        domain.streams[sid] = stream
        domain.names[stream.name] = sid
    check(pos == len(data), "streams section has trailing bytes")
    domain.dirty = False
    return domain
