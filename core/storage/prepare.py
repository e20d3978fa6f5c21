"""Reading the identity of stored prepare frames (op, checksum, parent) for the journal.

Owns the journal's view of a frame: is it a whole, verified prepare, and which op and chain
link does it carry. Never encodes frames (net/wire.py is the one codec) and never touches files.
"""

from __future__ import annotations

import struct
from typing import NamedTuple

from core.check import check
from net import wire
from net.wire import COMMON_SIZE, HEADER_SIZE, Command, FrameError

# Where a prepare header keeps its op: after the common part, the parent (u64 + 8 pad), as in
# net/wire.py COMMAND_LAYOUTS. Read directly on the write hot path (no namedtuple per op);
# checked against the codec at import.
OP_OFFSET = COMMON_SIZE + struct.calcsize("<Q8x")
_OP = struct.Struct("<Q")
check(_OP.unpack_from(wire.encode(wire.make_header(Command.PREPARE, op=0x0102030405060708)),
                      OP_OFFSET)[0] == 0x0102030405060708, "PREPARE op offset moved in net/wire.py")

# Header-only verification: the ring's redundant header region holds headers without bodies.
# net/wire.py has the rule (a prepare's identity checksum leaves out the view) but exports only
# whole-frame verification; we call its private helper rather than copy the rule. Asked of the
# codec owner: export it as `verify_header`.
_header_checksum = wire._header_checksum


class Identity(NamedTuple):
    """What the chain needs from a prepare: its op, its identity checksum, its parent's."""

    op: int
    checksum: int
    parent: int
    size: int


def verify_frame(frame: bytes | bytearray | memoryview) -> Identity | None:
    """The identity of a whole, checksum-valid prepare frame; None for anything else."""
    try:
        header, _ = wire.decode(frame, verify=True)
    except FrameError:
        return None
    if header.command != Command.PREPARE:
        return None
    return Identity(header.op, header.checksum, header.parent, header.size)


def verify_header(buf: bytes | bytearray | memoryview, offset: int = 0) -> Identity | None:
    """The identity in a checksum-valid prepare header at offset (body not checked)."""
    try:
        header = wire.decode_header(buf, offset)
    except FrameError:
        return None
    if header.command != Command.PREPARE:
        return None
    view = memoryview(buf)[offset:offset + HEADER_SIZE]
    if header.checksum != _header_checksum(view, Command.PREPARE):
        return None
    return Identity(header.op, header.checksum, header.parent, header.size)


def frame_op(frame: bytes | bytearray | memoryview) -> int:
    """The op of a frame the caller already verified (the write hot path re-checks nothing)."""
    return _OP.unpack_from(frame, OP_OFFSET)[0]
