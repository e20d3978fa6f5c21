"""Stream framing: cut a TCP byte stream into whole frames, bounded.

Reads land in one buffer per connection; frames are handed out as memoryview slices of that
buffer and the consumed prefix is dropped once per read, not once per frame, so a burst of small
frames costs no copy beyond the recv itself. A size field outside [HEADER_SIZE, frame_size_max] is a FrameError:
the caller closes that connection (a peer that lies about sizes cannot make us buffer forever).
"""

from __future__ import annotations

import struct

from core.check import check
from net.wire import HEADER_SIZE, FrameError

_SIZE = struct.Struct("<I")
_SIZE_OFFSET = 48


class FrameReader:
    """Accumulates bytes; `frames()` yields each complete frame as a memoryview."""

    __slots__ = ("frame_size_max", "_buffer", "_start")

    def __init__(self, frame_size_max: int):
        check(HEADER_SIZE <= frame_size_max, "frame_size_max below the header size")
        self.frame_size_max = frame_size_max
        self._buffer = bytearray()
        self._start = 0

    def feed(self, data: bytes | memoryview) -> None:
        self._compact()
        self._buffer += data

    def frames(self) -> list[memoryview]:
        """All complete frames now buffered, as views that stay valid after later feeds."""
        out = []
        buffer = self._buffer
        start = self._start
        end = len(buffer)
        view = memoryview(buffer)
        while end - start >= _SIZE_OFFSET + 4:
            (size,) = _SIZE.unpack_from(buffer, start + _SIZE_OFFSET)
            if size < HEADER_SIZE or size > self.frame_size_max:
                raise FrameError(f"frame size {size} outside [{HEADER_SIZE}, {self.frame_size_max}]")
            if end - start < size:
                break
            out.append(view[start:start + size])
            start += size
        self._start = start
        return out

    @property
    def buffered_bytes(self) -> int:
        return len(self._buffer) - self._start

    def _compact(self) -> None:
        # A fresh buffer holding only the unconsumed tail (at most one partial frame): frames
        # handed out earlier keep the old buffer alive, so they never see it change under them.
        if self._start:
            self._buffer = self._buffer[self._start:]
            self._start = 0
