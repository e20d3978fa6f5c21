"""The `segmented` journal backend: append-only segment files (DESIGN section 6, the default).

Owns the files journal/segment-<first op, 20 digits>: prepare frames back to back, in op order,
a new segment started once the current one reaches segment_size_bytes. Never rewrites a byte
below the tail except to repair a fault in place, and never deletes a segment holding an op
above the released prefix.

Hot path: one os.writev per batch (every frame of the batch in one call) and one fdatasync per
sync(); rolling to a new segment costs one extra file create plus a directory fsync.

Recovery reads each segment, keeps every frame that verifies, and when a frame's header is
damaged (its size unknown) resynchronises on the next valid prepare header, found by searching
for the next op numbers at the op field offset; the damaged bytes become faults (or the torn
tail, by the rule in journal.py).
"""

from __future__ import annotations

import array
import bisect
import os
import struct
from collections.abc import Sequence

from core.check import check
from core.storage.files import fsync_dir, read_exact_at, write_all_at
from core.storage.journal import (
    EntryFault, Fault, Journal, Recovery, check_contiguous, classify,
)
from core.storage.prepare import OP_OFFSET, Identity, verify_frame, verify_header
from net import wire
from net.wire import FrameError

SEGMENT_PREFIX = "segment-"
SEGMENT_SIZE_BYTES_DEFAULT = 64 << 20
SEGMENT_SIZE_BYTES_MIN = 4096
# How many op numbers past a damaged header resync tries; more consecutive damaged ops than
# this in one segment is treated as one damaged region reaching the segment's end.
RESYNC_OPS_MAX = 64
_U64 = struct.Struct("<Q")


def segment_name(first_op: int) -> str:
    return f"{SEGMENT_PREFIX}{first_op:020d}"


class _Segment:
    """One segment file: its first op and where each op's frame starts."""

    def __init__(self, path: str, first_op: int):
        self.path = path
        self.first_op = first_op
        self.offsets = array.array("Q")  # offsets[i]: start of op first_op + i
        self.size_bytes = 0  # end of the last kept frame

    @property
    def last_op(self) -> int:
        return self.first_op + len(self.offsets) - 1

    def span(self, op: int) -> tuple[int, int]:
        index = op - self.first_op
        start = self.offsets[index]
        end = self.offsets[index + 1] if index + 1 < len(self.offsets) else self.size_bytes
        return start, end - start


class SegmentedJournal(Journal):
    def __init__(self, directory: str, segment_size_bytes: int, in_flight_ops_max: int,
                 read_only: bool = False):
        check(segment_size_bytes >= SEGMENT_SIZE_BYTES_MIN, "segment size below minimum")
        self.directory = directory
        self.segment_size_bytes = segment_size_bytes
        self.in_flight_ops_max = in_flight_ops_max
        self.segments: list[_Segment] = []
        self.faults: dict[int, Fault] = {}
        self.op_min = 1
        self.op_max = 0
        self._fd = -1  # the last segment, open for appends
        self._dir_dirty = False
        self.read_only = read_only  # inspect: recover reports, changes nothing on disk

    # -- recovery -------------------------------------------------------------------------

    def recover(self, checkpoint_op: int) -> Recovery:
        names = sorted(n for n in os.listdir(self.directory) if n.startswith(SEGMENT_PREFIX))
        valid: dict[int, Identity] = {}
        bad: dict[int, str] = {}
        for position, name in enumerate(names):
            segment = _Segment(os.path.join(self.directory, name), int(name[len(SEGMENT_PREFIX):]))
            next_first = (int(names[position + 1][len(SEGMENT_PREFIX):])
                          if position + 1 < len(names) else None)
            with open(segment.path, "rb") as f:
                data = f.read()
            self._scan(segment, data, next_first, valid, bad)
            self.segments.append(segment)
        op_lowest = self.segments[0].first_op if self.segments else checkpoint_op + 1
        recovery = classify(valid, {}, bad, checkpoint_op, op_lowest, self.in_flight_ops_max)
        self.faults = {f.op: f for f in recovery.faults}
        for fault in recovery.faults:
            if fault.op in bad:
                self.faults[fault.op] = Fault(fault.op, fault.expected_checksum, bad[fault.op])
        self.op_max = recovery.op_max
        self.op_min = recovery.op_min
        if self.read_only:
            return Recovery(recovery.op_min, recovery.op_max, tuple(self.faults.values()),
                            recovery.cut_ops)
        if self.segments and self.segments[-1].last_op < recovery.op_max:
            # The log ends below the checkpoint (a snapshot was installed past it): every
            # segment is covered by the checkpoint, and appends restart after it.
            self._drop_all()
        self._cut_above(recovery.op_max)
        if self._dir_dirty:
            fsync_dir(self.directory)
            self._dir_dirty = False
        return Recovery(recovery.op_min, recovery.op_max, tuple(self.faults.values()),
                        recovery.cut_ops)

    def _scan(self, segment: _Segment, data: bytes, next_first: int | None,
              valid: dict[int, Identity], bad: dict[int, str]) -> None:
        """Index one segment's frames; damaged ones go to bad, offsets stay op-aligned."""
        position = 0
        op = segment.first_op
        while position < len(data):
            identity = verify_frame(data[position:position + _frame_size(data, position)])
            if identity is not None and identity.op == op:
                valid[op] = identity
                segment.offsets.append(position)
                position += identity.size
                segment.size_bytes = position
                op += 1
                continue
            header = verify_header(data, position)
            if header is not None and header.op == op and position + header.size <= len(data):
                bad[op] = "body checksum mismatch"  # header intact: the size is trustworthy
                segment.offsets.append(position)
                position += header.size
                segment.size_bytes = position
                op += 1
                continue
            found = _resync(data, position + 1, op)
            if found is None:
                # Damage to the end of the segment: torn tail if last, else ops up to the next
                # segment are lost here (reported by classify as faults).
                for lost in range(op, next_first if next_first is not None else op):
                    bad[lost] = "damaged header"
                return
            resync_position, resync_op = found
            for lost in range(op, resync_op):
                bad[lost] = "damaged header"
                # The damaged ops share the region; each points at its start so a repair of the
                # single-op case can be written in place (see repair()).
                segment.offsets.append(position)
            position, op = resync_position, resync_op

    # -- the hot path ------------------------------------------------------------------------

    def append(self, frames: Sequence[bytes]) -> None:
        first = self.op_max + 1
        check_contiguous(first, frames)
        if not self.segments or self.segments[-1].size_bytes >= self.segment_size_bytes:
            self._roll(first)
        segment = self.segments[-1]
        total = 0
        for frame in frames:
            segment.offsets.append(segment.size_bytes + total)
            total += len(frame)
        written = os.writev(self._fd, frames)
        if written < total:  # a short writev is legal; finish it (never expected on files)
            joined = b"".join(frames)
            write_all_at(self._fd, joined[written:], segment.size_bytes + written)
        segment.size_bytes += total
        self.op_max += len(frames)

    def sync(self) -> int:
        if self._fd >= 0:
            os.fdatasync(self._fd)
        if self._dir_dirty:
            fsync_dir(self.directory)  # the new segment's name must survive with its data
            self._dir_dirty = False
        return self.op_max

    def _roll(self, first_op: int) -> None:
        if self._fd >= 0:
            os.fdatasync(self._fd)  # the old segment is complete before the new one exists
            os.close(self._fd)
        path = os.path.join(self.directory, segment_name(first_op))
        self._fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND, 0o600)
        self.segments.append(_Segment(path, first_op))
        self._dir_dirty = True

    # -- reads --------------------------------------------------------------------------------

    def _locate(self, op: int) -> _Segment | None:
        if not (self.op_min <= op <= self.op_max) or not self.segments:
            return None
        index = bisect.bisect_right([s.first_op for s in self.segments], op) - 1
        if index < 0 or op > self.segments[index].last_op:
            return None
        return self.segments[index]

    def locate(self, op: int) -> tuple[str, int] | None:
        segment = self._locate(op)
        return None if segment is None else (segment.path, segment.span(op)[0])

    def read(self, op: int) -> bytes | None:
        if op in self.faults:
            raise EntryFault(op, self.faults[op].reason)
        segment = self._locate(op)
        if segment is None:
            return None
        start, size = segment.span(op)
        fd = os.open(segment.path, os.O_RDONLY)
        try:
            frame = read_exact_at(fd, size, start)
        finally:
            os.close(fd)
        identity = verify_frame(frame)
        if identity is None or identity.op != op:
            self.faults[op] = Fault(op, None, "corrupt when read")
            raise EntryFault(op, "corrupt when read")
        return frame

    # -- truncation and repair --------------------------------------------------------------

    def truncate_prefix(self, op: int) -> None:
        # Whole segments only, never the one being appended to: a segment goes when every op
        # in it is <= op. Unlinking before the directory fsync is safe: a resurrected segment
        # after a crash only holds ops the checkpoint already covers.
        removed = False
        while len(self.segments) > 1 and self.segments[1].first_op - 1 <= op:
            os.unlink(self.segments.pop(0).path)
            removed = True
        if op > self.op_max and self.segments:
            # Everything is released (a checkpoint installed past our log): start afresh.
            self._drop_all()
            removed = True
        self.op_max = max(self.op_max, op)
        if removed:
            fsync_dir(self.directory)
            self._dir_dirty = False
        self.op_min = max(self.op_min, self.segments[0].first_op if self.segments else op + 1)
        for faulty in [f for f in self.faults if f <= op]:
            del self.faults[faulty]

    def truncate_suffix(self, op: int) -> None:
        check(op >= self.op_min - 1, f"truncate_suffix({op}) below op_min {self.op_min}")
        self._cut_above(op)
        self.op_max = min(self.op_max, op)
        if self._fd >= 0:
            os.fdatasync(self._fd)
        fsync_dir(self.directory)

    def _drop_all(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1
        while self.segments:
            os.unlink(self.segments.pop().path)
        self._dir_dirty = True

    def _cut_above(self, op: int) -> None:
        """Drop frames and stray bytes above op from the files (and the in-memory index)."""
        while self.segments and self.segments[-1].first_op > op:
            if self._fd >= 0:
                os.close(self._fd)
                self._fd = -1
            os.unlink(self.segments.pop().path)
            self._dir_dirty = True
        if self.segments:
            segment = self.segments[-1]
            keep = op - segment.first_op + 1
            end = segment.offsets[keep] if keep < len(segment.offsets) else segment.size_bytes
            del segment.offsets[keep:]
            segment.size_bytes = end
            if os.path.getsize(segment.path) != end:
                os.truncate(segment.path, end)
            if self._fd < 0:
                self._fd = os.open(segment.path, os.O_WRONLY | os.O_APPEND)
        for faulty in [f for f in self.faults if f > op]:
            del self.faults[faulty]

    def repair(self, frame: bytes) -> None:
        identity = verify_frame(frame)
        check(identity is not None, "repair frame does not verify")
        fault = self.faults.get(identity.op)
        check(fault is not None, f"op {identity.op} is not a fault")
        check(fault.expected_checksum in (None, identity.checksum), "repair frame is another prepare")
        segment = self._locate(identity.op)
        check(segment is not None, f"op {identity.op} is not in a segment")
        start, size = segment.span(identity.op)
        # In place only when the damaged region is exactly this frame's size (one damaged op);
        # a multi-op damaged region needs all its ops rewritten together (not yet supported).
        check(size == identity.size, f"damaged region of {size} bytes, frame of {identity.size}")
        fd = os.open(segment.path, os.O_WRONLY)
        try:
            write_all_at(fd, frame, start)
            os.fdatasync(fd)
        finally:
            os.close(fd)
        del self.faults[identity.op]

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1


def _frame_size(data: bytes, position: int) -> int:
    """The size field at position if plausible, else 0 (verify_frame then rejects)."""
    try:
        size = wire.frame_size(data, position)
    except FrameError:
        return 0
    return size if position + size <= len(data) else 0


def _resync(data: bytes, start: int, op: int) -> tuple[int, int] | None:
    """The first valid prepare for one of the next ops at or after start: (position, op)."""
    for candidate_op in range(op + 1, op + 1 + RESYNC_OPS_MAX):
        pattern = _U64.pack(candidate_op)
        index = data.find(pattern, start + OP_OFFSET)
        while index != -1:
            position = index - OP_OFFSET
            identity = verify_frame(data[position:position + _frame_size(data, position)])
            if identity is not None and identity.op == candidate_op:
                return position, candidate_op
            index = data.find(pattern, index + 1)
    return None
