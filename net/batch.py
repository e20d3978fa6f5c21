"""The body of a prepare: a batch of client requests (DESIGN sections 1 and 4).

Owns the byte layout of a batch and nothing else; it never interprets a request body (each
domain decodes its own operations) and never checks sessions (the state machine does).

Layout (little-endian), entries back to back, their number in the prepare header's
`request_count`:
  0   client     16  u128 client id, raw bytes as in the request header
  16  session    8   u64
  24  request    8   u64 request number
  32  operation  1   u8
  33  user_id    4   u32, stamped by the primary at admission
  37  body_size  4   u32
  41  body       body_size bytes, the (possibly rewritten) Iggy request body

`decode_batch` returns memoryview slices of the prepare body, so applying a batch copies no
request body. Any malformed batch raises `FrameError` (a prepare that passed its checksum but
does not parse is a bug of the primary, and the caller treats it like a corrupt frame).
"""

from __future__ import annotations

import struct
from typing import NamedTuple

from core.check import check
from net.wire import FrameError

ENTRY_HEADER = struct.Struct("<16sQQBII")
ENTRY_HEADER_SIZE = ENTRY_HEADER.size
check(ENTRY_HEADER_SIZE == 41, "batch entry header layout")


class BatchEntry(NamedTuple):
    client: bytes
    session: int
    request: int
    operation: int
    user_id: int
    body: bytes | memoryview


def entry_size(body_size: int) -> int:
    """Bytes one entry with a body of body_size takes in a batch (for batch size limits)."""
    return ENTRY_HEADER_SIZE + body_size


def encode_batch(entries: list[BatchEntry] | tuple[BatchEntry, ...]) -> bytes:
    """Concatenate the entries into one prepare body."""
    parts: list[bytes] = []
    for entry in entries:
        if len(entry.client) != 16:
            raise FrameError(f"client id of {len(entry.client)} bytes, want 16")
        try:
            parts.append(ENTRY_HEADER.pack(entry.client, entry.session, entry.request,
                                           entry.operation, entry.user_id, len(entry.body)))
        except struct.error as exc:
            raise FrameError(f"cannot pack batch entry: {exc}") from None
        parts.append(bytes(entry.body))
    return b"".join(parts)


def decode_batch(body: bytes | bytearray | memoryview, count: int) -> list[BatchEntry]:
    """Split a prepare body into exactly `count` entries; bodies are memoryview slices."""
    view = memoryview(body)
    entries: list[BatchEntry] = []
    offset = 0
    for _ in range(count):
        if len(view) - offset < ENTRY_HEADER_SIZE:
            raise FrameError("batch truncated inside an entry header")
        client, session, request, operation, user_id, size = ENTRY_HEADER.unpack_from(
            view, offset)
        offset += ENTRY_HEADER_SIZE
        if len(view) - offset < size:
            raise FrameError("batch truncated inside an entry body")
        entries.append(BatchEntry(client, session, request, operation, user_id,
                                  view[offset:offset + size]))
        offset += size
    if offset != len(view):
        raise FrameError(f"batch has {len(view) - offset} trailing bytes after {count} entries")
    return entries
