"""Builders of valid prepare chains for the storage tests, benches and crash writers.

Owns nothing on disk; never used by a running replica (only tests, benches and tools).
"""

from __future__ import annotations

from net import wire
from net.wire import HEADER_SIZE, Command

CLUSTER_TEST = 7


def make_prepare(op: int, parent: int, frame_size_bytes: int, *, view: int = 0,
                 fill: int = 0, timestamp: int | None = None) -> bytes:
    """One valid prepare frame of exactly frame_size_bytes for op, linked to parent.

    The view is not part of a prepare's checksum: two versions differ by fill or timestamp.
    """
    body = bytes([(op + fill) & 0xFF]) * (frame_size_bytes - HEADER_SIZE)
    header = wire.make_header(Command.PREPARE, cluster=wire.cluster_bytes(CLUSTER_TEST),
                              view=view, op=op, parent=parent, commit=max(op - 1, 0),
                              timestamp=op * 1000 if timestamp is None else timestamp,
                              request_count=1)
    return wire.encode(header, body)


def make_chain(op_first: int, count: int, frame_size_bytes: int = 512, *, parent: int = 0,
               fill: int = 0) -> list[bytes]:
    """count linked prepares starting at op_first; the first's parent is given."""
    frames = []
    for op in range(op_first, op_first + count):
        frame = make_prepare(op, parent, frame_size_bytes, fill=fill)
        parent = wire.frame_checksum(frame)
        frames.append(frame)
    return frames
