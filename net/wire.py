"""The one frame codec of metavsr: a fixed 256-byte header plus a body (DESIGN section 4).

Every process that reads or writes frames (net, journal, snapshot, the client, the tests, the
simulator) uses this module and nothing else, so there is exactly one definition of each byte.

Layout (little-endian), as in Apache Iggy's VSR protocol:
  0   checksum        16  xxHash3-64 of header bytes 16..255, zero-extended to 128 bits
  16  checksum_body   16  xxHash3-64 of the body, zero-extended
  32  cluster         16  cluster id (u128)
  48  size            4   whole frame: header + body
  52  view            4
  56  release         4
  60  command         1
  61  replica         1
  62  epoch           4   cluster configuration epoch (reserved for reconfiguration)
  66  reserved        62
  128 command-specific 128 bytes, one layout per command (see COMMAND_LAYOUTS)

A prepare's identity checksum leaves out the view (bytes 52..55), so a prepare keeps its
checksum when a new primary re-sends it in a later view; every other command's checksum covers
the whole header. Client frames from the Iggy SDK carry zero checksums; `decode_client_frame`
checks those by structure and size only (DESIGN section 4).

The module never raises anything but `FrameError` on bad input, whatever the bytes: callers
close the connection and count it, they never crash.
"""

from __future__ import annotations

import enum
import struct
from collections import namedtuple
from typing import NamedTuple

import xxhash

HEADER_SIZE = 256
COMMON_SIZE = 128
# Upper bound of any frame (header + body). Config may lower it, never raise it.
FRAME_SIZE_MAX = 1 << 20
WIRE_VERSION = 1  # carried in `release`; bump on any layout change

_xxh3_64 = xxhash.xxh3_64_intdigest


class FrameError(ValueError):
    """Any malformed frame: wrong size, unknown command, bad checksum, bad field."""


class Command(enum.IntEnum):
    # 1..13 are Iggy's VSR command numbers (the SDK sends 5 and understands 8 and 13).
    PING = 1
    PONG = 2
    PING_CLIENT = 3
    PONG_CLIENT = 4
    REQUEST = 5
    PREPARE = 6
    PREPARE_OK = 7
    REPLY = 8
    COMMIT = 9
    START_VIEW_CHANGE = 10
    DO_VIEW_CHANGE = 11
    START_VIEW = 12
    EVICTION = 13
    # metavsr's own peer commands.
    REQUEST_START_VIEW = 14
    REQUEST_HEADERS = 15
    REQUEST_PREPARE = 16
    HEADERS = 17
    REQUEST_SNAPSHOT = 18
    SNAPSHOT_CHUNK = 19
    PEER_HELLO = 20
    PEER_CHALLENGE = 21
    PEER_AUTH = 22
    # A backup's answer to a commit heartbeat: confirms the primary's view for read-index.
    COMMIT_ACK = 23
    # A client request a backup admitted, carried to the primary, and the primary's answer
    # carried back; `conn` is the client connection on the replica that took the request.
    FORWARD = 24
    FORWARD_REPLY = 25


# Common part: checksum and checksum_body are u64 zero-extended to 16 bytes.
_COMMON_FMT = "<Q8xQ8x16sIIIBBI62x"
_COMMON_FIELDS = (
    "checksum",
    "checksum_body",
    "cluster",
    "size",
    "view",
    "release",
    "command",
    "replica",
    "epoch",
)
assert struct.calcsize(_COMMON_FMT) == COMMON_SIZE

# Command-specific layouts: (struct format without byte-order prefix, field names).
# Each format is exactly 128 bytes. u128 ids (client) are kept as 16 raw bytes.
COMMAND_LAYOUTS: dict[Command, tuple[str, tuple[str, ...]]] = {
    Command.PING: ("QQ112x", ("ping_timestamp", "checkpoint_op")),
    Command.PONG: ("QQ112x", ("ping_timestamp", "pong_timestamp")),
    Command.PING_CLIENT: ("128x", ()),
    Command.PONG_CLIENT: ("128x", ()),
    # Iggy client request, byte for byte as the SDK fills it (iggy-protocol.md 2.1). The SDK
    # leaves bytes 200.. zero; metavsr's own client sets `consistency` there (0 = linearizable,
    # 1 = stale read from any replica), so an Iggy SDK always gets linearizable reads.
    Command.REQUEST: (
        "16sQ8xQQB7xQIIB55x",
        ("client", "request_checksum", "timestamp", "request", "operation", "session",
         "user_id", "code", "consistency"),
    ),
    # Iggy reply (iggy-protocol.md 2.2).
    Command.REPLY: (
        "Q8x16x16sQQQQB7xI36x",
        ("request_checksum", "client", "op", "commit", "timestamp", "request", "operation",
         "status"),
    ),
    # Iggy eviction (iggy-protocol.md 2.3); reason is the last byte of the header.
    Command.EVICTION: ("16sII103xB", ("client", "protocol_version", "protocol_version_min",
                                      "reason")),
    # A prepare carries a batch of client requests in its body (see net/batch.py); the header
    # holds what identifies and orders the batch. `operation` is the batch kind (0 = client
    # batch, other values reserved: reconfigure, root/no-op).
    Command.PREPARE: (
        "Q8xQQQHB5xQ72x",
        ("parent", "op", "commit", "timestamp", "request_count", "operation", "checkpoint_op"),
    ),
    Command.PREPARE_OK: (
        "Q8xQQQ88x",
        ("prepare_checksum", "op", "commit", "checkpoint_op"),
    ),
    # `heartbeat` numbers the primary's heartbeat rounds; backups echo it in COMMIT_ACK so
    # one quorum round confirms primacy for every read-index read waiting on it.
    Command.COMMIT: (
        "QQ8xQQQ80x",
        ("commit", "commit_checksum", "timestamp_monotonic", "checkpoint_op", "heartbeat"),
    ),
    Command.COMMIT_ACK: ("QQ112x", ("heartbeat", "commit")),
    Command.FORWARD: ("II120x", ("conn", "user")),
    Command.FORWARD_REPLY: ("I124x", ("conn",)),
    Command.START_VIEW_CHANGE: ("128x", ()),
    # Body (core/vsr/view_change.py): `header_count` chain-verified prepare headers (256
    # bytes each, oldest first), one status byte per header, then (op u64, checksum u64,
    # status u8) for each op known only by its checksum.
    Command.DO_VIEW_CHANGE: (
        "I4xQQQI92x",
        ("log_view", "op", "commit", "checkpoint_op", "header_count"),
    ),
    Command.START_VIEW: (
        "QQQQ96x",
        ("op", "commit", "checkpoint_op", "nonce"),
    ),
    Command.REQUEST_START_VIEW: ("Q120x", ("nonce",)),
    Command.REQUEST_HEADERS: ("QQ112x", ("op_min", "op_max")),
    Command.REQUEST_PREPARE: ("QQ8x104x", ("prepare_op", "prepare_checksum")),
    # `commit`: the sender's applied op; headers at or below it are committed, so canonical
    # whoever sends them (the primary's others are canonical for its view).
    Command.HEADERS: ("QQQ104x", ("op_min", "op_max", "commit")),
    # State transfer (core/roles/transfer.py): a lagging replica asks a peer for bytes of its
    # checkpoint (checksum 0: whichever the peer names now); the chunk's body is the raw
    # prepare header of checkpoint_op (it anchors the hash chain) followed by the bytes.
    Command.REQUEST_SNAPSHOT: ("QQQ104x", ("checkpoint_op", "checkpoint_checksum", "offset")),
    Command.SNAPSHOT_CHUNK: (
        "QQ8xQQ88x",
        ("checkpoint_op", "checkpoint_checksum", "offset", "total_size"),
    ),
    Command.PEER_HELLO: ("32s96x", ("nonce",)),
    Command.PEER_CHALLENGE: ("32s32s64x", ("nonce", "proof")),
    Command.PEER_AUTH: ("32s96x", ("proof",)),
}


class _Layout(NamedTuple):
    struct: struct.Struct
    tuple_type: type
    fields: tuple[str, ...]
    zero: tuple  # every field zero (bytes fields b""), command set: make_header's start


def _field_codes(fmt: str) -> list[str]:
    """The struct code of each value-carrying field in fmt (padding skipped)."""
    codes = []
    number = ""
    for ch in fmt.lstrip("<>=!@"):
        if ch.isdigit():
            number += ch
            continue
        if ch == "x":
            number = ""
            continue
        if ch == "s":
            codes.append("s")
        else:
            codes.extend(ch * (int(number) if number else 1))
        number = ""
    return codes


def _build_layouts() -> dict[int, _Layout]:
    layouts: dict[int, _Layout] = {}
    for command, (specific_fmt, specific_fields) in COMMAND_LAYOUTS.items():
        packer = struct.Struct(_COMMON_FMT + specific_fmt)
        assert packer.size == HEADER_SIZE, (command, packer.size)
        fields = _COMMON_FIELDS + specific_fields
        tuple_type = namedtuple(f"{command.name.title().replace('_', '')}Header", fields)
        zero = tuple_type._make(b"" if code == "s" else 0 for code in _field_codes(packer.format))
        layouts[int(command)] = _Layout(packer, tuple_type, fields,
                                        zero._replace(command=int(command)))
    return layouts


_LAYOUTS = _build_layouts()


def packer_of(command: Command) -> tuple[struct.Struct, tuple[str, ...], tuple]:
    """(header struct, field names, zero values with `command` set) for a hand-tuned encoder
    of one hot frame kind (every field in order; the caller fills size and checksums)."""
    layout = _LAYOUTS[int(command)]
    return layout.struct, layout.fields, tuple(layout.zero)
_SIZE_AT = struct.Struct("<I")
_COMMAND_OFFSET = 60


def make_header(command: Command, **fields: object):
    """A header with every field not given set to zero (bytes fields to zero bytes)."""
    zero = _LAYOUTS[int(command)].zero
    try:
        return zero._replace(**fields) if fields else zero
    except ValueError:
        raise TypeError(f"unknown fields for {command.name}: {sorted(fields)}") from None


def _header_checksum(buf: bytes | bytearray | memoryview, command: int) -> int:
    if command == Command.PREPARE:
        # Identity checksum: leave the view out so a re-sent prepare keeps its identity.
        digest = xxhash.xxh3_64()
        digest.update(buf[16:52])
        digest.update(buf[56:HEADER_SIZE])
        return digest.intdigest()
    return _xxh3_64(buf[16:HEADER_SIZE])


def body_checksum(body: bytes | bytearray | memoryview) -> int:
    """xxHash3-64 of a body: the peer body checksum and the Iggy request_checksum."""
    return _xxh3_64(body)


def encode(header, body: bytes | bytearray | memoryview = b"", *, checksums: bool = True) -> bytes:
    """Pack header + body into one frame, filling size and (by default) both checksums.

    Returns the frame; the returned header's checksum is `frame_checksum(frame)`.
    """
    size = HEADER_SIZE + len(body)
    if size > FRAME_SIZE_MAX:
        raise FrameError(f"frame of {size} bytes exceeds FRAME_SIZE_MAX={FRAME_SIZE_MAX}")
    layout = _LAYOUTS.get(header.command)
    if layout is None:
        raise FrameError(f"unknown command {header.command}")
    header = header._replace(size=size, checksum=0,
                             checksum_body=body_checksum(body) if checksums else 0)
    buf = bytearray(size)
    try:
        layout.struct.pack_into(buf, 0, *header)
    except struct.error as exc:
        raise FrameError(f"cannot pack {Command(header.command).name}: {exc}") from None
    if checksums:
        struct.pack_into("<Q", buf, 0, _header_checksum(buf, header.command))
    buf[HEADER_SIZE:] = body
    return bytes(buf)


def frame_size(buf: bytes | bytearray | memoryview, offset: int = 0) -> int:
    """The size field of the frame starting at offset, bounds-checked; for stream framing."""
    if len(buf) - offset < COMMON_SIZE:
        raise FrameError("truncated header")
    (size,) = _SIZE_AT.unpack_from(buf, offset + 48)
    if not (HEADER_SIZE <= size <= FRAME_SIZE_MAX):
        raise FrameError(f"frame size {size} outside [{HEADER_SIZE}, {FRAME_SIZE_MAX}]")
    return size


def decode_header(buf: bytes | bytearray | memoryview, offset: int = 0):
    """Unpack the header at offset without checking checksums (checked by `decode`)."""
    if len(buf) - offset < HEADER_SIZE:
        raise FrameError(f"truncated header: {len(buf) - offset} of {HEADER_SIZE} bytes")
    command = buf[offset + _COMMAND_OFFSET]
    layout = _LAYOUTS.get(command)
    if layout is None:
        raise FrameError(f"unknown command {command}")
    header = layout.tuple_type._make(layout.struct.unpack_from(buf, offset))
    if not (HEADER_SIZE <= header.size <= FRAME_SIZE_MAX):
        raise FrameError(f"frame size {header.size} outside [{HEADER_SIZE}, {FRAME_SIZE_MAX}]")
    return header


def decode(buf: bytes | bytearray | memoryview, *, verify: bool = True):
    """Decode one whole frame (len(buf) == size): (header, body memoryview).

    With verify, both checksums must match; a peer frame always carries them.
    """
    view = memoryview(buf)
    header = decode_header(view)
    if header.size != len(view):
        raise FrameError(f"frame size field {header.size} != {len(view)} bytes given")
    body = view[HEADER_SIZE:]
    if verify:
        if header.checksum != _header_checksum(view, header.command):
            raise FrameError("header checksum mismatch")
        if header.checksum_body != _xxh3_64(body):
            raise FrameError("body checksum mismatch")
    return header, body


def decode_client_frame(buf: bytes | bytearray | memoryview, body_size_max: int):
    """Decode a frame from a client connection: only REQUEST is allowed.

    The Iggy SDK sends zero checksums, so the frame is checked by structure: command, size
    bound, and the request_checksum of the body when it is non-zero.
    """
    view = memoryview(buf)
    header = decode_header(view)
    if header.command != Command.REQUEST:
        raise FrameError(f"client sent command {header.command}, only REQUEST is allowed")
    if header.size != len(view):
        raise FrameError(f"frame size field {header.size} != {len(view)} bytes given")
    body = view[HEADER_SIZE:]
    if len(body) > body_size_max:
        raise FrameError(f"request body of {len(body)} bytes exceeds {body_size_max}")
    if header.request_checksum and header.request_checksum != _xxh3_64(body):
        raise FrameError("request_checksum mismatch")
    return header, body


def header_checksum_ok(buf: bytes | bytearray | memoryview) -> bool:
    """True when a standalone 256-byte header (say, one of a start_view's headers) matches
    its own checksum; the body is not covered (it may be absent)."""
    if len(buf) < HEADER_SIZE:
        return False
    (stored,) = struct.unpack_from("<Q", buf, 0)
    return stored == _header_checksum(buf, buf[_COMMAND_OFFSET])


def frame_checksum(frame: bytes | bytearray | memoryview) -> int:
    """The header checksum stored in an encoded frame (a prepare's identity)."""
    return struct.unpack_from("<Q", frame, 0)[0]


def cluster_bytes(cluster_id: int) -> bytes:
    """A cluster id (u128) as the 16 bytes of the header field."""
    if not (0 <= cluster_id < 1 << 128):
        raise FrameError(f"cluster id {cluster_id} is not a u128")
    return cluster_id.to_bytes(16, "little")
