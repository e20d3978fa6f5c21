"""The `segmented` journal backend: log-structured segment files (DESIGN section 6, the default).

Owns the files journal/segment-<sequence, 20 digits>: prepare frames back to back in the order
they were written, whatever their ops; a new segment (the next sequence) is started once the
current one reaches segment_size_bytes. Only the last segment is ever appended to. Never
rewrites a byte of a valid record except to invalidate it (truncate_suffix, a torn entry cut at
recovery), and never deletes a segment holding the live record of an op above the released
prefix.

An op's live record is its last valid record in file order (segments by sequence, then
offset): write() of an op already held appends a superseding record and touches nothing else.
A torn superseding record therefore leaves the older valid record live (the core repairs it
again). write() accepts ops up to OPS_AHEAD_MAX above op_max, so a gap stays bounded.

Hot path: one os.writev per batch (every frame of the batch in one call) and one fdatasync per
sync(); rolling to a new segment costs an fdatasync of the old one (so unsynced records are
always a suffix of the last segment), one file create and a directory fsync.

Recovery reads each segment and indexes every record whose header verifies; a record whose
header is damaged (its size unknown) is skipped by resynchronising on the next valid prepare
header, found by searching for the cluster id at its header offset. Invalidating a record
zeroes its header checksum, so recovery skips it the same way.
"""

from __future__ import annotations

import array
import itertools
import os
from collections.abc import Iterable, Sequence

from core.check import check
from core.storage.files import fsync_dir, read_exact_at, write_all_at
from core.storage.journal import (
    BATCH_FRAMES_MAX, UNLINKED, EntryFault, Fault, Journal, Recovery, classify,
)
from core.storage.prepare import Identity, verify_frame, verify_header
from net import wire
from net.wire import HEADER_SIZE, FrameError

SEGMENT_PREFIX = "segment-"
SEGMENT_SIZE_BYTES_DEFAULT = 64 << 20
SEGMENT_SIZE_BYTES_MIN = 4096
# How far above op_max write() may go: the core writes above a gap by at most a pipeline or a
# view change's headers; a whole batch past op_max must fit.
OPS_AHEAD_MAX = 2 * BATCH_FRAMES_MAX
_CLUSTER_OFFSET = 32  # net/wire.py: the cluster id in every header, the resync anchor
_CHECKSUM_ZERO = bytes(16)  # written over a record's header checksum to invalidate it


def segment_name(sequence: int) -> str:
    return f"{SEGMENT_PREFIX}{sequence:020d}"


class _Segment:
    """One segment file and an index of its records whose header verified, in file order."""

    def __init__(self, path: str, sequence: int):
        self.path = path
        self.sequence = sequence
        self.ops = array.array("Q")  # record i's op; 0 once invalidated (op 0 is never stored)
        self.offsets = array.array("Q")
        self.sizes = array.array("I")
        self.size_bytes = 0  # end of the last record that lies whole in the file
        self.op_high = 0  # the highest op any record in it ever had

    def add(self, op: int, offset: int, size: int) -> int:
        self.ops.append(op)
        self.offsets.append(offset)
        self.sizes.append(size)
        self.op_high = max(self.op_high, op)
        return len(self.ops) - 1


_Location = tuple[_Segment, int]  # a segment and a record index in it


class SegmentedJournal(Journal):
    def __init__(self, directory: str, segment_size_bytes: int, in_flight_ops_max: int,
                 cluster: int, read_only: bool = False):
        check(segment_size_bytes >= SEGMENT_SIZE_BYTES_MIN, "segment size below minimum")
        self.directory = directory
        self.segment_size_bytes = segment_size_bytes
        self.in_flight_ops_max = in_flight_ops_max
        self._cluster = wire.cluster_bytes(cluster)
        self.segments: list[_Segment] = []
        self.faults: dict[int, Fault] = {}
        self.op_min = 1
        self.op_max = 0
        self.released_op = 0
        self._live: dict[int, _Location] = {}  # op -> its live (last valid) record
        self._damaged: dict[int, _Location] = {}  # faulty op -> its record with a valid header
        self._unsynced = 0  # frames written since the last sync
        self._fd = -1  # the last segment, open for appends
        self._dir_dirty = False
        self.read_only = read_only  # inspect: recover reports, changes nothing on disk

    # -- recovery -------------------------------------------------------------------------

    def recover(self, checkpoint_op: int) -> Recovery:
        names = sorted(n for n in os.listdir(self.directory) if n.startswith(SEGMENT_PREFIX))
        valid: dict[int, Identity] = {}
        damaged: dict[int, list[_Location]] = {}  # ops with no valid record after these
        for name in names:
            segment = _Segment(os.path.join(self.directory, name), int(name[len(SEGMENT_PREFIX):]))
            with open(segment.path, "rb") as f:
                data = f.read()
            for identity, whole, index in self._scan(segment, data):
                if whole:  # the last valid record of an op wins
                    valid[identity.op] = identity
                    self._live[identity.op] = (segment, index)
                    damaged.pop(identity.op, None)
                elif identity.op not in valid:
                    damaged.setdefault(identity.op, []).append((segment, index))
            self.segments.append(segment)
        recovery = classify(valid, {}, damaged, checkpoint_op,
                            min(valid, default=checkpoint_op + 1), self.in_flight_ops_max)
        self.faults = {f.op: (Fault(f.op, f.expected_checksum, "body checksum mismatch")
                              if f.op in damaged else f)
                       for f in recovery.faults if f.reason != UNLINKED}
        self._damaged = {op: damaged[op][-1] for op in self.faults if op in damaged}
        self.op_max, self.op_min = recovery.op_max, recovery.op_min
        self.released_op = checkpoint_op
        faults = tuple(self.faults.get(f.op, f) for f in recovery.faults)
        if not self.read_only and self.segments:
            # A dropped torn entry must not come back at the next recovery, when it may no
            # longer be in the window and would read as a fault.
            self._invalidate([location for op in recovery.cut_ops for location in damaged[op]])
            last = self.segments[-1]
            if os.path.getsize(last.path) != last.size_bytes:
                os.truncate(last.path, last.size_bytes)  # a partial record at the very end
            while last.offsets and last.offsets[-1] >= last.size_bytes:
                self._damaged.pop(last.ops[-1], None)
                for column in (last.ops, last.offsets, last.sizes):
                    del column[-1]
            self._fd = os.open(last.path, os.O_WRONLY | os.O_APPEND)
            # What recovery kept is durable before the replica acts on it (it may have been
            # in the page cache only, written by the process that crashed).
            os.fdatasync(self._fd)
        return Recovery(recovery.op_min, recovery.op_max, faults, recovery.cut_ops)

    def _scan(self, segment: _Segment, data: bytes):
        """Index every record whose header verifies; yield (identity, whole, record index).

        A damaged header (size unknown) is skipped by resync to the next valid header.
        """
        position = 0
        while position < len(data):
            size = _frame_size(data, position)
            identity = verify_frame(data[position:position + size]) if size else None
            whole = identity is not None
            if identity is None:
                identity = verify_header(data, position)
            if identity is None:
                found = self._resync(data, position + 1)
                if found is None:
                    return  # damage to the end of the segment
                position = found
                continue
            index = segment.add(identity.op, position, identity.size)
            position += identity.size
            if position <= len(data):
                segment.size_bytes = position
            yield identity, whole, index

    def _resync(self, data: bytes, start: int) -> int | None:
        """The first position at or after start holding a prepare header that verifies."""
        index = data.find(self._cluster, start + _CLUSTER_OFFSET)
        while index != -1:
            if verify_header(data, index - _CLUSTER_OFFSET) is not None:
                return index - _CLUSTER_OFFSET
            index = data.find(self._cluster, index + 1)
        return None

    # -- the hot path ------------------------------------------------------------------------

    def op_writable_max(self) -> int:
        return self.op_max + OPS_AHEAD_MAX

    def _bound_reason(self) -> str:
        return f"more than OPS_AHEAD_MAX={OPS_AHEAD_MAX} above op_max {self.op_max}"

    def _write(self, frames: Sequence[bytes], ops: list[int]) -> None:
        if not self.segments or self.segments[-1].size_bytes >= self.segment_size_bytes:
            self._roll()
        segment = self.segments[-1]
        start = segment.size_bytes
        sizes = list(map(len, frames))
        offsets = list(itertools.accumulate(sizes[:-1], initial=start))
        first = len(segment.ops)
        # Whole-batch index updates (C loops: this is the per-op cost of the hot path).
        segment.ops.extend(ops)
        segment.offsets.extend(offsets)
        segment.sizes.extend(sizes)
        segment.op_high = max(segment.op_high, max(ops))
        self._live.update(zip(ops, zip(itertools.repeat(segment), range(first, first + len(ops)))))
        if self._damaged:
            for op in ops:
                self._damaged.pop(op, None)
        end = offsets[-1] + sizes[-1]
        written = os.writev(self._fd, frames)
        if written < end - start:  # a short writev is legal; finish it (never expected)
            write_all_at(self._fd, b"".join(frames)[written:], start + written)
        segment.size_bytes = end
        self._unsynced += len(frames)

    def sync(self) -> int:
        if self._fd >= 0:
            os.fdatasync(self._fd)
        if self._dir_dirty:
            fsync_dir(self.directory)  # the new segment's name must survive with its data
            self._dir_dirty = False
        synced, self._unsynced = self._unsynced, 0
        return synced

    def _roll(self) -> None:
        if self._fd >= 0:
            # The old segment is complete and durable before the new one exists, so unsynced
            # records are only ever a suffix of the last segment.
            os.fdatasync(self._fd)
            os.close(self._fd)
        sequence = self.segments[-1].sequence + 1 if self.segments else 1
        path = os.path.join(self.directory, segment_name(sequence))
        self._fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND, 0o600)
        self.segments.append(_Segment(path, sequence))
        self._dir_dirty = True

    # -- reads --------------------------------------------------------------------------------

    def _record(self, location: _Location) -> bytes:
        segment, index = location
        fd = os.open(segment.path, os.O_RDONLY)
        try:
            return read_exact_at(fd, segment.sizes[index], segment.offsets[index])
        finally:
            os.close(fd)

    def locate(self, op: int) -> tuple[str, int] | None:
        location = self._live.get(op) or self._damaged.get(op)
        return None if location is None else (location[0].path, location[0].offsets[location[1]])

    def read(self, op: int) -> bytes | None:
        if op in self.faults:
            raise EntryFault(op, self.faults[op].reason)
        location = self._live.get(op)
        if location is None or op < self.op_min:
            return None
        frame = self._record(location)
        identity = verify_frame(frame)
        if identity is None or identity.op != op:
            self.faults[op] = Fault(op, None, "corrupt when read")
            raise EntryFault(op, "corrupt when read")
        return frame

    def stored(self, op: int) -> bytes | None:
        location = self._live.get(op) or self._damaged.get(op)
        if location is None:
            return None
        record = self._record(location)
        if verify_frame(record) is not None:
            return record
        header = verify_header(record)
        return record[:HEADER_SIZE] if header is not None and header.op == op else None

    # -- truncation ---------------------------------------------------------------------------

    def truncate_prefix(self, op: int) -> None:
        self.released_op = max(self.released_op, op)
        if op > self.op_max:  # a checkpoint installed past our log: writes restart after it
            self.op_max = op
            self.op_min = op + 1
        # Whole segments only, never the one being appended to: a segment goes once none of
        # its records is the live version of an op above the released prefix.
        doomed = [s for s in self.segments[:-1] if not self._holds_live_above(s, self.released_op)]
        if doomed:
            # The records that superseded the doomed ones must be durable before those go,
            # or a crash could lose both versions.
            if self._unsynced:
                self.sync()
            for segment in doomed:
                os.unlink(segment.path)
                self.segments.remove(segment)
                for held in segment.ops:
                    if self._live.get(held, (None,))[0] is segment:
                        del self._live[held]
            fsync_dir(self.directory)
            self.op_min = max(self.op_min, min(self._live, default=self.op_max + 1))
        for faulty in [f for f in self.faults if f <= op]:
            del self.faults[faulty]
            self._damaged.pop(faulty, None)

    def _holds_live_above(self, segment: _Segment, op: int) -> bool:
        if segment.op_high <= op:
            return False
        live = self._live
        return any(held > op and live.get(held) == (segment, index)
                   for index, held in enumerate(segment.ops))

    def truncate_suffix(self, op: int) -> None:
        check(op >= self.op_min - 1, f"truncate_suffix({op}) below op_min {self.op_min}")
        # Every record of an op above op goes, superseded ones too (else one would become
        # live again at recovery); invalidate() makes that durable before returning.
        self._invalidate([(segment, index) for segment in self.segments if segment.op_high > op
                          for index, held in enumerate(segment.ops) if held > op])
        for gone in range(op + 1, self.op_max + 1):
            self._live.pop(gone, None)
            self._damaged.pop(gone, None)
            self.faults.pop(gone, None)
        self.op_max = min(self.op_max, op)

    def _invalidate(self, locations: Iterable[_Location]) -> None:
        """Zero the header checksum of each record, then fdatasync every file touched: after
        that, recovery skips those records as it skips any damaged header."""
        touched: dict[str, int] = {}
        try:
            for segment, index in locations:
                fd = touched.get(segment.path)
                if fd is None:  # not the append fd: O_APPEND would ignore the offset
                    fd = touched[segment.path] = os.open(segment.path, os.O_WRONLY)
                write_all_at(fd, _CHECKSUM_ZERO, segment.offsets[index])
                segment.ops[index] = 0
            for fd in touched.values():
                os.fdatasync(fd)
        finally:
            for fd in touched.values():
                os.close(fd)

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
