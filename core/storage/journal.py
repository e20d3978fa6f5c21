"""The journal interface, its recovery result, and the recovery rules both backends share.

Owns: what a journal promises (Journal), what recovery reports (Recovery, Fault), the checks
every write() makes, and the one decision procedure that turns "which entries look valid" into
"what is kept, what is dropped as torn, what is a fault" (classify). Never does I/O itself and
never picks a backend's file layout; never drops a corrupt entry below the in-flight window (it
is reported as a Fault for the replica to repair from a peer, DESIGN sections 5 and 6).

The journal is a set of slots, one per op, not an append-only list: the VSR core writes ops in
any order above the released prefix (the next op, an op above a gap that repair fills later, or
an op it already holds, whose stale entry the canonical prepare supersedes). A write touches no
other op; ops never written are gaps.

Recovery rule (both backends). Let head be the highest op any valid entry (or, in the ring, any
valid redundant header) names. The writer never has more than `in_flight_ops_max` ops written
but not yet fdatasynced, so an entry is possibly torn only if it was among those. Walking up
from the checkpoint:
  - a valid entry is kept; if its parent is not the previous valid entry's checksum, it is also
    reported as a Fault "parent does not link" (both are whole prepares: the core decides which
    side is stale from its own chain and view headers), and it reads normally;
  - a missing or corrupt entry at or above head - in_flight_ops_max + 1 (the window that may
    hold a torn write) is dropped as torn (its op reads as a gap), unless the ring's redundant
    header proves it was durable (headers are written only after their prepares were synced),
    which makes it a Fault. Valid entries above it are kept: with out-of-order writes they may
    have been durable before it was written;
  - anywhere else it is a Fault "missing or corrupt", named with the checksum its successor's
    parent pins when known. (A gap the core left below the window is therefore a fault too:
    the journal cannot tell it from a lost entry, so it never lets the replica deny it.)
"""

from __future__ import annotations

import abc
import dataclasses
from collections.abc import Collection, Iterator, Sequence

from core.check import check
from core.storage.errors import StorageError
from core.storage.prepare import Identity, frame_op, verify_frame

# writev takes at most IOV_MAX (1024 on Linux) buffers; a batch is one writev.
BATCH_FRAMES_MAX = 1024
IN_FLIGHT_OPS_MAX_DEFAULT = 128  # >= 2 x the default pipeline of 64 (DESIGN section 5)
MISSING = "missing or corrupt"
UNLINKED = "parent does not link"


@dataclasses.dataclass(frozen=True)
class Fault:
    """An entry the replica must repair from a peer: lost or corrupt (MISSING, or a more
    specific reason) although it was durable, or valid but not linking (UNLINKED)."""

    op: int
    expected_checksum: int | None  # pinned by the successor's parent, when that is valid
    reason: str


@dataclasses.dataclass(frozen=True)
class Recovery:
    """What recovery found: ops op_min..op_max are held, faults, or gaps (dropped as torn)."""

    op_min: int  # lowest op held; op_min == op_max + 1 when the journal holds nothing
    op_max: int  # the highest op kept (or the checkpoint)
    faults: tuple[Fault, ...] = ()
    cut_ops: tuple[int, ...] = ()  # ops whose damaged entry was dropped as a torn write
    repaired_headers: int = 0  # ring: redundant headers rewritten from their valid prepares


class EntryFault(StorageError):
    """Reading an op that is a known fault (or turned out corrupt when read)."""

    def __init__(self, op: int, reason: str):
        super().__init__(f"journal entry op={op} is faulty: {reason}")
        self.op = op


class Journal(abc.ABC):
    """One replica's VSR log on disk. Single writer, single process; not thread-safe.

    op_max is the highest op written (durable only after sync()); op_min the lowest held;
    released_op the prefix the checkpoint covers (never written again). faults: ops whose
    entry cannot be read until written again (UNLINKED entries read normally).
    """

    op_min: int
    op_max: int
    released_op: int
    faults: dict[int, Fault]

    @abc.abstractmethod
    def recover(self, checkpoint_op: int) -> Recovery:
        """Scan the files once at open (rule in the module docstring); drop torn entries."""

    def write(self, frames: Sequence[bytes]) -> None:
        """Write verified prepares for any ops in (released_op, op_writable_max()], in any
        order; a frame for an op already held supersedes it and touches no other op. Not
        durable until sync()."""
        check(0 < len(frames) <= BATCH_FRAMES_MAX, f"batch of {len(frames)} frames")
        ops = [frame_op(frame) for frame in frames]
        low, high = min(ops), max(ops)
        bound = self.op_writable_max()
        check(low > self.released_op,
              f"op {low} is at or below the released op {self.released_op}")
        check(high <= bound, f"op {high} above the writable bound {bound}: "
                             f"{self._bound_reason()}")
        self._write(frames, ops)
        faults = self.faults
        if faults:
            for op in ops:
                faults.pop(op, None)
        self.op_max = max(self.op_max, high)
        self.op_min = min(self.op_min, low)

    @abc.abstractmethod
    def op_writable_max(self) -> int:
        """The highest op write() accepts now."""

    @abc.abstractmethod
    def _bound_reason(self) -> str:
        """Why op_writable_max() is what it is (for the refusal's message)."""

    @abc.abstractmethod
    def _write(self, frames: Sequence[bytes], ops: list[int]) -> None:
        """The backend's part of write(): frames and their ops, already checked."""

    @abc.abstractmethod
    def sync(self) -> int:
        """Make everything written durable (one fdatasync); returns how many entries that was
        (nothing about ops: there may be gaps)."""

    @abc.abstractmethod
    def read(self, op: int) -> bytes | None:
        """The verified frame of op; None when not held; EntryFault when corrupt."""

    @abc.abstractmethod
    def stored(self, op: int) -> bytes | None:
        """What the disk holds for op, faults included: the verified frame, else the intact
        header of an entry whose body is corrupt, else None (for the core's Recovered)."""

    def iterate(self, op_from: int) -> Iterator[bytes]:
        """Frames op_from..op_max in order; raises EntryFault at a faulty op or a gap."""
        check(op_from >= self.op_min, f"op {op_from} below op_min {self.op_min}")
        for op in range(op_from, self.op_max + 1):
            frame = self.read(op)
            if frame is None:
                raise EntryFault(op, "not held")
            yield frame

    @abc.abstractmethod
    def locate(self, op: int) -> tuple[str, int] | None:
        """(file path, byte offset) where op's frame is stored; for inspect and fault tests."""

    @abc.abstractmethod
    def truncate_prefix(self, op: int) -> None:
        """Ops <= op are no longer needed (checkpointed, minus retention): may be dropped."""

    @abc.abstractmethod
    def truncate_suffix(self, op: int) -> None:
        """Durably remove every op > op (an uncommitted suffix that lost a view change)."""

    def repair(self, frame: bytes) -> None:
        """Durably replace the faulty entry of frame's op with frame (fetched from a peer)."""
        identity = verify_frame(frame)
        check(identity is not None, "repair frame does not verify")
        fault = self.faults.get(identity.op)
        check(fault is not None, f"op {identity.op} is not a fault")
        check(fault.expected_checksum in (None, identity.checksum),
              "repair frame is another prepare")
        self.write([frame])
        self.sync()

    @abc.abstractmethod
    def close(self) -> None:
        """Release files; does not sync."""


def classify(valid: dict[int, Identity], durable_headers: dict[int, int],
             damaged: Collection[int], checkpoint_op: int, op_lowest: int,
             in_flight_ops_max: int) -> Recovery:
    """Apply the recovery rule (module docstring) to what a backend scanned.

    valid: op -> identity of the entry found for each op with a whole, checksum-valid
    prepare; durable_headers: op -> checksum of ops a redundant header proves durable (ring
    only); damaged: ops found with data that does not verify; op_lowest: the lowest op the
    backend could still hold.
    """
    check(in_flight_ops_max > 0, "in_flight_ops_max must be positive")
    head = max(max(valid, default=0), max(durable_headers, default=0), max(damaged, default=0))
    faults: list[Fault] = []
    cut: list[int] = []
    op_max = checkpoint_op
    window_lo = max(checkpoint_op + 1, head - in_flight_ops_max + 1)
    previous = valid.get(checkpoint_op)
    for op in range(checkpoint_op + 1, head + 1):
        successor = valid.get(op + 1)
        expected = successor.parent if successor is not None else durable_headers.get(op)
        entry = valid.get(op)
        if entry is not None:
            if previous is not None and entry.parent != previous.checksum:
                faults.append(Fault(op, expected, UNLINKED))
                previous = None  # which side is stale is the core's call; check nothing above
            else:
                previous = entry
            op_max = op
            continue
        previous = None
        if op >= window_lo and op not in durable_headers:
            if op in damaged:
                cut.append(op)
            continue
        faults.append(Fault(op, expected, MISSING))
        op_max = op
    op_min = checkpoint_op + 1
    while op_min - 1 >= max(op_lowest, 1) and op_min - 1 in valid and (
            op_min not in valid or valid[op_min].parent == valid[op_min - 1].checksum):
        op_min -= 1
    return Recovery(op_min=op_min, op_max=op_max, faults=tuple(faults), cut_ops=tuple(cut))
