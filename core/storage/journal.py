"""The journal interface, its recovery result, and the recovery rules both backends share.

Owns: what a journal promises (Journal), what recovery reports (Recovery, Fault), and the one
decision procedure that turns "which entries look valid" into "what is kept, what is cut, what
is a fault" (classify). Never does I/O itself and never picks a backend's file layout; never
drops a corrupt entry below the in-flight window (it is reported as a Fault for the replica to
repair from a peer, DESIGN sections 5 and 6).

Recovery rule (both backends). Let head be the highest op any valid entry (or, in the ring, any
valid redundant header) names. The writer never has more than `in_flight_ops_max` ops appended
but not yet fdatasynced, so every op <= head - in_flight_ops_max was durable before the crash.
Walking up from the checkpoint:
  - a valid entry whose parent is the previous entry's checksum is kept;
  - a missing, corrupt or unlinked entry at or above head - in_flight_ops_max + 1 (the window
    that may hold a torn write) is the torn tail: it and everything above it are cut, unless the
    ring's redundant header proves it was durable (headers are written only after their
    prepares were synced), which makes it a fault;
  - anywhere else it is a Fault, named with the checksum its successor's parent pins when known.
"""

from __future__ import annotations

import abc
import dataclasses
from collections.abc import Collection, Iterator, Sequence

from core.check import check
from core.storage.errors import StorageError
from core.storage.prepare import Identity, frame_op

# writev takes at most IOV_MAX (1024 on Linux) buffers; a batch is one writev.
BATCH_FRAMES_MAX = 1024
IN_FLIGHT_OPS_MAX_DEFAULT = 128  # >= 2 x the default pipeline of 64 (DESIGN section 5)


@dataclasses.dataclass(frozen=True)
class Fault:
    """A corrupt or missing entry that was durable: the replica repairs it from a peer."""

    op: int
    expected_checksum: int | None  # pinned by the successor's parent, when that is valid
    reason: str


@dataclasses.dataclass(frozen=True)
class Recovery:
    """What recovery found. With no faults, ops op_min..op_max form one valid hash chain."""

    op_min: int  # lowest op held; op_min == op_max + 1 when the journal holds nothing
    op_max: int  # the last op kept: the torn tail above it is cut
    faults: tuple[Fault, ...] = ()
    cut_ops: tuple[int, ...] = ()  # ops above op_max that had data and were cut as torn
    repaired_headers: int = 0  # ring: redundant headers rewritten from their valid prepares


class EntryFault(StorageError):
    """Reading an op that is a known fault (or turned out corrupt when read)."""

    def __init__(self, op: int, reason: str):
        super().__init__(f"journal entry op={op} is faulty: {reason}")
        self.op = op


class Journal(abc.ABC):
    """One replica's VSR log on disk. Single writer, single process; not thread-safe.

    op_max is the highest op appended (durable only after sync()); op_min the lowest held.
    """

    op_min: int
    op_max: int
    faults: dict[int, Fault]

    @abc.abstractmethod
    def recover(self, checkpoint_op: int) -> Recovery:
        """Scan the files once at open (rule in the module docstring); cut the torn tail."""

    @abc.abstractmethod
    def append(self, frames: Sequence[bytes]) -> None:
        """Write prepares op_max+1, op_max+2, ... (verified by the caller). Not durable yet."""

    @abc.abstractmethod
    def sync(self) -> int:
        """Make every appended prepare durable (one fdatasync); returns the durable op."""

    @abc.abstractmethod
    def read(self, op: int) -> bytes | None:
        """The verified frame of op; None when not held; EntryFault when corrupt."""

    def iterate(self, op_from: int) -> Iterator[bytes]:
        """Frames op_from..op_max in order; raises EntryFault at a faulty op."""
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

    @abc.abstractmethod
    def repair(self, frame: bytes) -> None:
        """Durably replace the faulty entry of frame's op with frame (fetched from a peer)."""

    @abc.abstractmethod
    def close(self) -> None:
        """Release files; does not sync."""


def check_contiguous(first_op: int, frames: Sequence[bytes]) -> None:
    """The batch is first_op, first_op + 1, ... and within BATCH_FRAMES_MAX frames."""
    check(0 < len(frames) <= BATCH_FRAMES_MAX, f"batch of {len(frames)} frames")
    ops = [frame_op(frame) for frame in frames]
    if ops != list(range(first_op, first_op + len(ops))):
        index = next(i for i, op in enumerate(ops) if op != first_op + i)
        check(False, f"append expected op {first_op + index}, got {ops[index]}")


def classify(valid: dict[int, Identity], durable_headers: dict[int, int],
             damaged: Collection[int], checkpoint_op: int, op_lowest: int,
             in_flight_ops_max: int) -> Recovery:
    """Apply the recovery rule (module docstring) to what a backend scanned.

    valid: op -> identity of every whole, checksum-valid prepare found; durable_headers: op ->
    checksum of ops a redundant header proves durable (ring only); damaged: ops found with
    data that does not verify; op_lowest: the lowest op the backend could still hold.
    """
    check(in_flight_ops_max > 0, "in_flight_ops_max must be positive")
    head = max(max(valid, default=0), max(durable_headers, default=0), max(damaged, default=0))
    faults: list[Fault] = []
    cut: tuple[int, ...] = ()
    op_max = max(head, checkpoint_op)
    window_lo = max(checkpoint_op + 1, head - in_flight_ops_max + 1)
    previous = valid.get(checkpoint_op)
    for op in range(checkpoint_op + 1, head + 1):
        entry = valid.get(op)
        if entry is not None and (previous is None or entry.parent == previous.checksum):
            previous = entry
            continue
        reason = "missing or corrupt" if entry is None else "parent does not link"
        if op >= window_lo and op not in durable_headers:
            cut = tuple(o for o in range(op, head + 1)
                        if o in valid or o in durable_headers or o in damaged)
            op_max = op - 1
            break
        successor = valid.get(op + 1)
        expected = successor.parent if successor is not None else durable_headers.get(op)
        faults.append(Fault(op, expected, reason))
        previous = None  # unknown until repaired; the successor's parent pins it instead
    op_min = checkpoint_op + 1
    while op_min - 1 >= max(op_lowest, 1) and op_min - 1 in valid and (
            op_min not in valid or valid[op_min].parent == valid[op_min - 1].checksum):
        op_min -= 1
    return Recovery(op_min=op_min, op_max=op_max, faults=tuple(faults), cut_ops=cut)
