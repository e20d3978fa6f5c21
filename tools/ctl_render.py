"""How `metavsr ctl` shows typed results: readable lines and tables, or one JSON document.

Owns: `human(result)` and `jsonable(result)` for every result type net/operations.py returns
(the domains' frozen dataclasses, lists of them, a minted token, a login). Must never talk to
a cluster or decide exit codes (tools/ctl.py does).

JSON keeps the typed results' field names and raw numbers (µs timestamps, bytes, the header's
compression code, 0 / u64::MAX sentinels), turns options into {key: value} and permissions into
flag names. Human output names the sentinels (server_default, never, unlimited) and prints
timestamps in UTC.
"""

from __future__ import annotations

import dataclasses
import datetime

from domains import permissions as P
from domains import streams_wire as sw
from domains import users_wire as uw
from domains.codec import U64_MAX, Options, option_value
from domains.topic_options import COMPRESSIONS

COMPRESSION_NAMES = {code: name.decode() for name, code in COMPRESSIONS.items()}
STATUS_NAMES = {uw.STATUS_ACTIVE: "active", uw.STATUS_INACTIVE: "inactive"}
_EPOCH = datetime.datetime(1970, 1, 1, tzinfo=datetime.UTC)


# ---- JSON --------------------------------------------------------------------------------

def options_json(options: Options) -> dict:
    out = {}
    for key in sorted(options, key=str.encode):
        value = option_value(*options[key])
        out[key] = value.hex() if isinstance(value, bytes) else value
    return out


def permissions_json(perms: P.Permissions | None) -> dict | None:
    if perms is None:
        return None
    glob, streams = perms
    return {
        "global": P.names_of(glob, P.GLOBAL_NAMES),
        "streams": {
            str(sid): {"flags": P.names_of(bits, P.STREAM_NAMES),
                       "topics": {str(tid): P.names_of(tbits, P.TOPIC_NAMES)
                                  for tid, tbits in sorted(topics.items())}}
            for sid, (bits, topics) in sorted(streams.items())},
    }


def jsonable(result):
    """Plain JSON values (dicts, lists, str, int, float, bool, None) for orjson."""
    if isinstance(result, list | tuple):
        return [jsonable(item) for item in result]
    if dataclasses.is_dataclass(result):
        out = {}
        for field in dataclasses.fields(result):
            value = getattr(result, field.name)
            if field.name in ("options", "derived_options"):
                out[field.name] = options_json(value)
            elif field.name == "permissions":
                out[field.name] = permissions_json(value)
            else:
                out[field.name] = jsonable(value)
        return out
    return result


# ---- human -------------------------------------------------------------------------------

def timestamp(us: int) -> str:
    try:
        moment = _EPOCH + datetime.timedelta(microseconds=us)
    except OverflowError:
        return f"{us} µs"
    return moment.strftime("%Y-%m-%d %H:%M:%S.%f") + "Z"


def expiry(us: int) -> str:
    """A topic's message expiry."""
    if us == 0:
        return "server_default"
    if us == U64_MAX:
        return "never"
    return f"{us // 1_000_000}s" if us % 1_000_000 == 0 else f"{us}µs"


def max_size(size: int) -> str:
    if size == 0:
        return "server_default"
    if size == U64_MAX:
        return "unlimited"
    return f"{size} B"


def options_text(options: Options) -> str:
    return ", ".join(f"{key}={value}" for key, value in options_json(options).items()) or "-"


def table(headers: tuple[str, ...], rows: list[tuple]) -> str:
    """Left-aligned columns, two spaces apart."""
    cells = [headers] + [tuple(str(cell) for cell in row) for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    return "\n".join("  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip()
                     for row in cells)


def fields(pairs: list[tuple[str, object]]) -> str:
    width = max(len(key) for key, _ in pairs)
    return "\n".join(f"{key.ljust(width)}  {value}" for key, value in pairs)


def _topics_table(topics) -> str:
    return table(("ID", "NAME", "PARTITIONS", "COMPRESSION", "EXPIRY", "MAX_SIZE", "CREATED"),
                 [(t.id, t.name, t.partitions_count, COMPRESSION_NAMES.get(t.compression),
                   expiry(t.message_expiry), max_size(t.max_topic_size), timestamp(t.created_at))
                  for t in topics])


def _stream(stream: sw.StreamDetails) -> str:
    text = fields([("stream", f"{stream.id} {stream.name}"),
                   ("created", timestamp(stream.created_at)), ("topics", stream.topics_count),
                   ("options", options_text(stream.options))])
    return text + ("\n\n" + _topics_table(stream.topics) if stream.topics else "")


def _topic(topic: sw.TopicDetails) -> str:
    text = fields([
        ("topic", f"{topic.id} {topic.name}"), ("created", timestamp(topic.created_at)),
        ("partitions", topic.partitions_count),
        ("compression", COMPRESSION_NAMES.get(topic.compression)),
        ("message_expiry", expiry(topic.message_expiry)),
        ("max_topic_size", max_size(topic.max_topic_size)),
        ("options", options_text(topic.options))])
    if not topic.partitions:
        return text
    return text + "\n\n" + table(("PARTITION", "CREATED", "SEGMENTS", "OFFSET"),
                                 [(p.id, timestamp(p.created_at), p.segments_count,
                                   p.current_offset) for p in topic.partitions])


def _group(group: sw.ConsumerGroupDetails) -> str:
    text = fields([("group", f"{group.id} {group.name}"), ("partitions", group.partitions_count),
                   ("members", group.members_count)])
    if not group.members:
        return text
    return text + "\n\n" + table(("MEMBER", "PARTITIONS"),
                                 [(m.id, ",".join(map(str, m.partitions)) or "-")
                                  for m in group.members])


def permissions_lines(perms: P.Permissions | None) -> list[tuple[str, str]]:
    if perms is None:
        return [("permissions", "none")]
    glob, streams = perms
    lines = [("global", ",".join(P.names_of(glob, P.GLOBAL_NAMES)) or "-")]
    for sid, (bits, topics) in sorted(streams.items()):
        lines.append((f"stream {sid}", ",".join(P.names_of(bits, P.STREAM_NAMES)) or "-"))
        for tid, tbits in sorted(topics.items()):
            lines.append((f"topic {sid}/{tid}", ",".join(P.names_of(tbits, P.TOPIC_NAMES)) or "-"))
    return lines


def _user(user: uw.UserDetails) -> str:
    return fields([("user", f"{user.id} {user.username}"),
                   ("status", STATUS_NAMES.get(user.status, user.status)),
                   ("created", timestamp(user.created_at)),
                   ("options", options_text(user.options))]
                  + permissions_lines(user.permissions))


def _list(items: list) -> str:
    if not items:
        return "(none)"
    first = items[0]
    if isinstance(first, sw.StreamHeader):
        return table(("ID", "NAME", "TOPICS", "CREATED"),
                     [(s.id, s.name, s.topics_count, timestamp(s.created_at)) for s in items])
    if isinstance(first, sw.TopicHeader):
        return _topics_table(items)
    if isinstance(first, sw.ConsumerGroupHeader):
        return table(("ID", "NAME", "PARTITIONS", "MEMBERS"),
                     [(g.id, g.name, g.partitions_count, g.members_count) for g in items])
    if isinstance(first, uw.UserHeader):
        return table(("ID", "USERNAME", "STATUS", "CREATED"),
                     [(u.id, u.username, STATUS_NAMES.get(u.status, u.status),
                       timestamp(u.created_at)) for u in items])
    if isinstance(first, uw.TokenInfo):
        return table(("NAME", "EXPIRES"),
                     [(t.name, timestamp(t.expiry_at) if t.expiry_at else "never")
                      for t in items])
    raise TypeError(f"no human form for a list of {type(first).__name__}")


def human(result) -> str:
    """The text `metavsr ctl` prints for a result (None: a write that returns nothing)."""
    if result is None:
        return "ok"
    if isinstance(result, list):
        return _list(result)
    if isinstance(result, sw.StreamDetails):
        return _stream(result)
    if isinstance(result, sw.TopicDetails):
        return _topic(result)
    if isinstance(result, sw.ConsumerGroupDetails):
        return _group(result)
    if isinstance(result, uw.UserDetails):
        return _user(result)
    if isinstance(result, str):
        return result  # a minted token: alone on its line, so scripts can capture it
    if isinstance(result, dict):
        return fields(list(result.items()))
    raise TypeError(f"no human form for {type(result).__name__}")
