"""Apache Iggy's client protocol mechanics, as the `apache-iggy` SDK speaks it.

What this module owns (spec: shared/iggy-protocol.md, sections 2 to 6 and 14):
- operation numbers and the legacy NonReplicated command codes;
- request frames (client side) and reply / eviction frames (server side);
- the two reply body formats: result-section framed (metadata writes, Register) and raw
  (reads, Logout);
- the Register (login) body, by password or by personal access token, and the login reply;
- the cluster-metadata roster (code 12) that lets the SDK find the primary.

What it must never do: encode or decode the bodies of metadata operations (each domain owns
its own encodings) or touch sockets. Every decoder here raises only `ProtocolError`.
"""

from __future__ import annotations

import enum
import struct
from dataclasses import dataclass

from net import wire
from net.wire import Command

# The SDK's packed semver: major << 20 | minor << 10 | patch. It sends 0.11.0.
PROTOCOL_VERSION = (0 << 20) | (11 << 10) | 0
PROTOCOL_VERSION_MIN = PROTOCOL_VERSION
SERVER_VERSION = "0.9.0"
NAME8_MAX = 255
LOGIN_CONTEXT_MAX = 4096


class ProtocolError(ValueError):
    """A client body that does not follow the protocol (answered, never crashes)."""


class Operation(enum.IntEnum):
    REGISTER = 1
    NON_REPLICATED = 2
    LOGOUT = 3
    CREATE_STREAM = 128
    UPDATE_STREAM = 129
    DELETE_STREAM = 130
    PURGE_STREAM = 131
    CREATE_TOPIC = 132
    UPDATE_TOPIC = 133
    DELETE_TOPIC = 134
    PURGE_TOPIC = 135
    CREATE_PARTITIONS = 136
    DELETE_PARTITIONS = 137
    DELETE_SEGMENTS = 138
    CREATE_CONSUMER_GROUP = 139
    DELETE_CONSUMER_GROUP = 140
    CREATE_USER = 141
    UPDATE_USER = 142
    DELETE_USER = 143
    CHANGE_PASSWORD = 144
    UPDATE_PERMISSIONS = 145
    CREATE_PERSONAL_ACCESS_TOKEN = 146
    DELETE_PERSONAL_ACCESS_TOKEN = 147
    JOIN_CONSUMER_GROUP = 148
    LEAVE_CONSUMER_GROUP = 149
    SEND_MESSAGES = 160
    STORE_CONSUMER_OFFSET = 161
    DELETE_CONSUMER_OFFSET = 162


# Legacy command codes carried at header offset 196 by NonReplicated requests.
class Code(enum.IntEnum):
    PING = 1
    GET_STATS = 10
    GET_SNAPSHOT = 11
    GET_CLUSTER_METADATA = 12
    DESCRIBE_OPTIONS = 13
    GET_ME = 20
    GET_CLIENT = 21
    GET_CLIENTS = 22
    GET_USER = 31
    GET_USERS = 32
    GET_PERSONAL_ACCESS_TOKENS = 41
    POLL_MESSAGES = 100
    FLUSH_UNSAVED_BUFFER = 102
    GET_CONSUMER_OFFSET = 120
    GET_STREAM = 200
    GET_STREAMS = 201
    GET_TOPIC = 300
    GET_TOPICS = 301
    GET_CONSUMER_GROUP = 600
    GET_CONSUMER_GROUPS = 601
    SYNC_CONSUMER_GROUP = 606


class EvictionReason(enum.IntEnum):
    NO_SESSION = 1
    INVALID_CREDENTIALS = 9
    INVALID_TOKEN = 10
    USER_INACTIVE = 11
    SESSION_ERROR = 12
    STALE_CLIENT = 13
    INCOMPATIBLE_PROTOCOL = 14
    MALFORMED_LOGIN = 15


# Status codes this layer itself produces (the domains own the rest of the catalogue).
STATUS_OK = 0
STATUS_INVALID_COMMAND = 3
STATUS_INVALID_FORMAT = 4
STATUS_FEATURE_UNAVAILABLE = 5
STATUS_UNAUTHENTICATED = 40
STATUS_TRANSIENT_NOT_COMMITTED = 57
STATUS_TRANSIENT_NOT_ACCEPTED = 58


def is_result_framed(operation: int, body_size: int) -> bool:
    """Whether a reply body to `operation` starts with a result section (spec 5.2)."""
    if operation == Operation.REGISTER:
        return body_size > 0
    return 128 <= operation <= 149 or operation in (161, 162)


# --- server side -------------------------------------------------------------------------

_RESULT_OK = b"\x00\x00\x00\x00"
_RESULT_ERROR = struct.Struct("<III")


def result_ok(payload: bytes = b"") -> bytes:
    """A result-section body for a success: count 0, then the payload."""
    return _RESULT_OK + payload


def result_error(code: int) -> bytes:
    """A result-section body for a business rejection: one entry (index 0, code)."""
    return _RESULT_ERROR.pack(1, 0, code)


_REPLY_STRUCT, _REPLY_FIELDS, _REPLY_ZERO = wire.packer_of(Command.REPLY)
_REPLY_AT = {name: _REPLY_FIELDS.index(name) for name in (
    "size", "request_checksum", "client", "op", "commit", "request", "operation", "status")}


def reply_frame(request, *, status: int = STATUS_OK, body: bytes = b"", op: int = 0,
                commit: int = 0) -> bytes:
    """A Reply answering `request` (a REQUEST header): echoes what the SDK reads.

    `body` is already in its final format (result-framed or raw, see is_result_framed). One
    reply per committed request leaves every primary: packed in one call from a template
    (no checksums: the SDK sends and expects none on client frames).
    """
    size = wire.HEADER_SIZE + len(body)
    if size > wire.FRAME_SIZE_MAX:
        raise wire.FrameError(f"reply of {size} bytes exceeds FRAME_SIZE_MAX="
                              f"{wire.FRAME_SIZE_MAX}")
    values = list(_REPLY_ZERO)
    at = _REPLY_AT
    values[at["size"]] = size
    values[at["request_checksum"]] = request.request_checksum
    values[at["client"]] = request.client
    values[at["op"]] = op
    values[at["commit"]] = commit
    values[at["request"]] = request.request
    values[at["operation"]] = request.operation
    values[at["status"]] = status
    return _REPLY_STRUCT.pack(*values) + body


def answer_frame(request, status: int, result: bytes, *, op: int = 0, commit: int = 0) -> bytes:
    """The frame the SDK expects for a state machine's (status, result) to `request`.

    Register: the login reply (result = user id u32 + session u64), or an Eviction for a
    refused login. Logout and reads: status word and raw body. Metadata writes: a result
    section carrying the status, then the payload (spec 5.2, 5.3, 6).
    """
    operation = request.operation
    if operation == Operation.REGISTER:
        if status:
            return eviction_frame(request.client, EvictionReason.INVALID_CREDENTIALS)
        user_id, session = struct.unpack_from("<IQ", result, 0)
        return reply_frame(request, body=login_reply_body(user_id, session), op=op,
                           commit=commit)
    if is_result_framed(operation, 1):
        body = result_error(status) if status else result_ok(result)
        return reply_frame(request, body=body, op=op, commit=commit)
    return reply_frame(request, status=status, body=b"" if status else result, op=op,
                       commit=commit)


def eviction_frame(client: bytes, reason: EvictionReason) -> bytes:
    """A body-less Eviction; for an incompatible protocol it carries the version window."""
    versions = (0, 0)
    if reason == EvictionReason.INCOMPATIBLE_PROTOCOL:
        versions = (PROTOCOL_VERSION, PROTOCOL_VERSION_MIN)
    header = wire.make_header(Command.EVICTION, client=client, protocol_version=versions[0],
                              protocol_version_min=versions[1], reason=int(reason))
    return wire.encode(header, b"", checksums=False)


@dataclass(frozen=True)
class PasswordLogin:
    protocol_version: int
    sdk_name: str
    sdk_version: str
    username: str
    password: str

    def __repr__(self) -> str:  # never let a secret reach a log line
        return f"PasswordLogin(username={self.username!r}, sdk={self.sdk_name}/{self.sdk_version})"


@dataclass(frozen=True)
class TokenLogin:
    protocol_version: int
    sdk_name: str
    sdk_version: str
    token: str

    def __repr__(self) -> str:
        return f"TokenLogin(sdk={self.sdk_name}/{self.sdk_version})"


def parse_login(body: bytes | memoryview) -> PasswordLogin | TokenLogin:
    """Decode a Register body: the password layout first, then the token layout (spec 5.1)."""
    reader = _Reader(body)
    version = reader.u32()
    sdk_name = reader.name8()
    sdk_version = reader.name8()
    first = reader.name8()
    mark = reader.offset
    try:
        password = reader.name8()
        reader.context()
        reader.end()
        return PasswordLogin(version, sdk_name, sdk_version, first, password)
    except ProtocolError:
        reader.offset = mark
    reader.context()
    reader.end()
    return TokenLogin(version, sdk_name, sdk_version, first)


def protocol_version_accepted(version: int) -> bool:
    """The real server's gate: at least our version with patch zeroed, same major.minor."""
    return PROTOCOL_VERSION_MIN <= version and (version >> 10) <= (PROTOCOL_VERSION >> 10)


def login_reply_body(user_id: int, session: int) -> bytes:
    """RS + user id, session (> 0), server protocol version and server version (spec 5.3)."""
    if session <= 0:
        raise ValueError("a login session must be non-zero")
    version = SERVER_VERSION.encode()
    return result_ok(struct.pack("<IQIB", user_id, session, PROTOCOL_VERSION, len(version))
                     + version)


@dataclass(frozen=True)
class LoginReply:
    user_id: int
    session: int
    protocol_version: int
    server_version: str


_LOGIN_FIXED = struct.Struct("<IQI")


def parse_login_reply(payload: bytes) -> LoginReply:
    """The client side of login_reply_body, result section already removed."""
    reader = _Reader(payload)
    user_id, session, version = _LOGIN_FIXED.unpack(reader.take(_LOGIN_FIXED.size))
    server_version = reader.name8()
    reader.end()
    return LoginReply(user_id, session, version, server_version)


@dataclass(frozen=True)
class Node:
    name: str
    ip: str
    tcp_port: int
    leader: bool
    healthy: bool = True


def cluster_metadata_body(cluster_name: str, nodes: list[Node]) -> bytes:
    """The code-12 roster (spec 14.1): exactly one healthy leader makes the SDK redirect."""
    out = bytearray(_len_u32(cluster_name.encode()))
    out += struct.pack("<I", len(nodes))
    for node in nodes:
        out += _len_u32(node.name.encode())
        out += _len_u32(node.ip.encode())
        role = 0 if node.leader else 1
        status = 0 if node.healthy else 1
        out += struct.pack("<HHHHBB", node.tcp_port, 0, 0, 0, role, status)
    return bytes(out)


@dataclass(frozen=True)
class Stats:
    """Iggy's Stats reply (spec 8), field for field; message-plane figures are zero here."""
    process_id: int
    cpu_usage: float  # percent
    total_cpu_usage: float  # percent
    memory_usage: int  # bytes
    total_memory: int
    available_memory: int
    run_time_us: int
    start_time_us: int  # µs since the Unix epoch
    read_bytes: int
    written_bytes: int
    messages_size_bytes: int
    streams: int
    topics: int
    partitions: int
    segments: int
    messages: int
    clients: int
    consumer_groups: int
    hostname: str
    os_name: str
    os_version: str
    kernel_version: str
    server_version: str
    server_semver: int  # packed like PROTOCOL_VERSION; 0 = none
    threads: int
    free_disk: int
    total_disk: int


_STATS_FIXED = struct.Struct("<IffQQQQQQQQIIIIQII")
_STATS_TAIL = struct.Struct("<IIIQQ")  # semver, cache metrics count (0), threads, disk free/total
_STATS_STRINGS = 5


def stats_body(stats: Stats) -> bytes:
    """The code-10 reply body; integers are clamped to their field so a huge host never
    makes an unencodable reply."""
    values = (stats.process_id, stats.cpu_usage, stats.total_cpu_usage, stats.memory_usage,
              stats.total_memory, stats.available_memory, stats.run_time_us,
              stats.start_time_us, stats.read_bytes, stats.written_bytes,
              stats.messages_size_bytes, stats.streams, stats.topics, stats.partitions,
              stats.segments, stats.messages, stats.clients, stats.consumer_groups)
    codes = _STATS_FIXED.format[1:]
    assert len(codes) == len(values)
    values = [float(v) if c == "f" else _clamp(v, c) for v, c in zip(values, codes)]
    out = bytearray(_STATS_FIXED.pack(*values))
    for text in (stats.hostname, stats.os_name, stats.os_version, stats.kernel_version,
                 stats.server_version):
        # Bounded, and cut on a character boundary so the SDK's UTF-8 check still passes.
        out += _len_u32(text.encode()[:NAME8_MAX].decode(errors="ignore").encode())
    out += _STATS_TAIL.pack(_clamp(stats.server_semver, "I"), 0, _clamp(stats.threads, "I"),
                            _clamp(stats.free_disk, "Q"), _clamp(stats.total_disk, "Q"))
    return bytes(out)


def parse_stats(payload: bytes) -> Stats:
    """The client side of stats_body (cache metrics, which metavsr never sends, skipped)."""
    reader = _Reader(payload)
    fixed = _STATS_FIXED.unpack(reader.take(_STATS_FIXED.size))
    try:
        strings = [reader.take(reader.u32()).decode() for _ in range(_STATS_STRINGS)]
    except UnicodeDecodeError:
        raise ProtocolError("a stats string is not UTF-8") from None
    semver, cache_count = struct.unpack("<II", reader.take(8))
    reader.take(cache_count * _CACHE_METRIC_SIZE)
    threads, free_disk, total_disk = struct.unpack("<IQQ", reader.take(20))
    reader.end()
    return Stats(*fixed, *strings, semver, threads, free_disk, total_disk)


_CACHE_METRIC_SIZE = 4 + 4 + 4 + 8 + 8 + 4


def _clamp(value: int, code: str) -> int:
    return max(0, min(int(value), (1 << (8 * struct.calcsize(code))) - 1))


def _len_u32(data: bytes) -> bytes:
    return struct.pack("<I", len(data)) + data


# --- client side -------------------------------------------------------------------------

def request_frame(client: bytes, session: int, request: int, operation: int, body: bytes,
                  code: int = 0) -> bytes:
    """A Request frame exactly as the SDK fills it (spec 2.1)."""
    replicated = operation != Operation.NON_REPLICATED
    header = wire.make_header(
        Command.REQUEST, client=client, request=request, operation=operation, session=session,
        code=0 if replicated else code,
        request_checksum=wire.body_checksum(body) if replicated else 0)
    return wire.encode(header, body, checksums=False)


def login_body(username: str, password: str, sdk_name: str = "metavsr",
               sdk_version: str = "0.1.0") -> bytes:
    """A Register body by password (what the client library sends)."""
    return (struct.pack("<I", PROTOCOL_VERSION) + name8(sdk_name) + name8(sdk_version)
            + name8(username) + name8(password) + struct.pack("<I", 0))


def token_login_body(token: str, sdk_name: str = "metavsr", sdk_version: str = "0.1.0") -> bytes:
    """A Register body by personal access token."""
    return (struct.pack("<I", PROTOCOL_VERSION) + name8(sdk_name) + name8(sdk_version)
            + name8(token) + struct.pack("<I", 0))


def name8(text: str) -> bytes:
    data = text.encode()
    if not (1 <= len(data) <= NAME8_MAX):
        raise ProtocolError(f"name of {len(data)} bytes outside 1..{NAME8_MAX}")
    return bytes((len(data),)) + data


@dataclass(frozen=True)
class Reply:
    """A decoded reply: status (0 = ok) and the payload with any result section removed."""
    status: int
    payload: bytes
    evicted: EvictionReason | int | None = None


def parse_reply(frame: bytes, operation: int) -> Reply:
    """Decode a Reply or Eviction frame the way the SDK does (spec 2.2, 2.3, 5.2)."""
    try:
        header = wire.decode_header(frame)
    except wire.FrameError as exc:
        raise ProtocolError(str(exc)) from None
    if header.command == Command.EVICTION:
        try:
            reason: EvictionReason | int = EvictionReason(header.reason)
        except ValueError:
            reason = header.reason
        return Reply(STATUS_UNAUTHENTICATED, b"", evicted=reason)
    if header.command != Command.REPLY:
        raise ProtocolError(f"expected a Reply, got command {header.command}")
    if header.size != len(frame):
        raise ProtocolError("reply size field does not match the frame")
    body = bytes(frame[wire.HEADER_SIZE:])
    if header.status:
        return Reply(header.status, b"")
    if not is_result_framed(operation, len(body)):
        return Reply(STATUS_OK, body)
    if len(body) < 4:
        raise ProtocolError("result-framed reply shorter than its section count")
    (count,) = struct.unpack_from("<I", body, 0)
    if count == 0:
        return Reply(STATUS_OK, body[4:])
    if len(body) < 4 + 8 * count:
        raise ProtocolError("truncated result section")
    _index, code = struct.unpack_from("<II", body, 4)
    return Reply(code, b"")


class _Reader:
    """Bounds-checked cursor over a client body; every overrun is a ProtocolError."""

    def __init__(self, data: bytes | memoryview):
        self.data = bytes(data)
        self.offset = 0

    def take(self, size: int) -> bytes:
        end = self.offset + size
        if end > len(self.data):
            raise ProtocolError(f"body truncated at byte {self.offset} (needed {size} more)")
        chunk = self.data[self.offset:end]
        self.offset = end
        return chunk

    def u32(self) -> int:
        return struct.unpack("<I", self.take(4))[0]

    def name8(self) -> str:
        (size,) = self.take(1)
        if size == 0:
            raise ProtocolError("empty name")
        try:
            return self.take(size).decode()
        except UnicodeDecodeError:
            raise ProtocolError("name is not UTF-8") from None

    def context(self) -> None:
        size = self.u32()
        if size > LOGIN_CONTEXT_MAX:
            raise ProtocolError(f"login context of {size} bytes exceeds {LOGIN_CONTEXT_MAX}")
        self.take(size)

    def end(self) -> None:
        if self.offset != len(self.data):
            raise ProtocolError(f"{len(self.data) - self.offset} unexpected trailing bytes")
