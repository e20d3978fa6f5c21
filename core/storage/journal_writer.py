"""The journal role's working part: the writer loop with group commit (DESIGN section 2).

Owns the loop "take what arrived, write it, one fdatasync, report how far it is durable".
Never reads rings or sockets itself: it is wired to its input and output through two plain
callables, so the shared-memory rings (shm/) plug in later and a test can drive it with a list
or a pipe. Durability is reported in the caller's own sequence numbers (Write.seq), not in ops:
the journal may hold gaps, so "durable up to op N" would mean nothing.

Group commit, why one fdatasync covers every write that arrived while the previous one ran:
while the loop is inside fdatasync, new commands queue up in the source; the next take()
returns all of them at once (up to the in-flight bound), they are written with one writev and
made durable with one fdatasync. A seq is reported only after that fdatasync returns.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence

from core.check import check
from core.storage.journal import BATCH_FRAMES_MAX, Journal


@dataclasses.dataclass(frozen=True)
class Write:
    """Prepares for any ops (Journal.write); seq: the caller's number for this command,
    increasing, reported back once the frames are durable."""

    seq: int
    frames: Sequence[bytes]


@dataclasses.dataclass(frozen=True)
class TruncatePrefix:
    """Ops <= op are released (checkpoint minus the retention lag, DESIGN section 6)."""

    op: int


@dataclasses.dataclass(frozen=True)
class TruncateSuffix:
    op: int


Command = Write | TruncatePrefix | TruncateSuffix


def retention_for(retention_ops: int, journal_slots: int, checkpoint_interval: int,
                  pipeline_max: int) -> int:
    """The retention a journal can keep: all of retention_ops for a segmented journal
    (journal_slots 0); for a ring, no more than leaves room for a checkpoint interval and two
    pipelines above the checkpoint, or the primary would run out of slots."""
    if not journal_slots:
        return retention_ops
    return max(0, min(retention_ops, journal_slots - checkpoint_interval - 2 * pipeline_max))


def ring_geometry_problem(journal_slots: int, checkpoint_interval: int,
                          pipeline_max: int) -> str:
    """Why a ring of journal_slots cannot serve this config ("" when it can)."""
    needed = checkpoint_interval + 3 * pipeline_max
    if journal_slots and journal_slots < needed:
        return (f"the ring journal has {journal_slots} slots; checkpoint_interval + "
                f"3 x pipeline_max = {needed} are needed (an interval and two pipelines above "
                f"the checkpoint, and a pipeline of retention below it): format with more "
                f"slots or lower replication.checkpoint_interval")
    return ""


def journal_release_op(checkpoint_op: int, retention_ops: int) -> int:
    """The op below which the journal may drop entries once checkpoint_op is durable."""
    check(retention_ops >= 0, "retention_ops must not be negative")
    return max(0, checkpoint_op - retention_ops)


def run_journal_writer(journal: Journal,
                       take: Callable[[int], Sequence[Command] | None],
                       report_durable: Callable[[int], None],
                       in_flight_ops_max: int) -> int:
    """Run until take() returns None; returns the last seq reported durable (0: none).

    take(frames_max) blocks until at least one command is available and returns every
    available command whose writes total at most frames_max frames. frames_max is the
    recovery window (journal.py): never more than that many ops are written but unsynced.
    """
    check(0 < in_flight_ops_max, "in_flight_ops_max must be positive")
    durable_seq = 0
    while True:
        commands = take(in_flight_ops_max)
        if commands is None:
            return durable_seq
        pending: list[bytes] = []
        written = 0
        seq = durable_seq
        for command in commands:
            if isinstance(command, Write):
                check(command.seq > seq, f"write seq {command.seq} not above {seq}")
                seq = command.seq
                pending.extend(command.frames)
                continue
            written += _write(journal, pending)  # writes that came first are written first
            pending = []
            if isinstance(command, TruncatePrefix):
                journal.truncate_prefix(command.op)
            else:
                check(isinstance(command, TruncateSuffix), f"unknown command {command!r}")
                journal.truncate_suffix(command.op)  # durable when it returns
        written += _write(journal, pending)
        check(written <= in_flight_ops_max, f"{written} ops in one group > {in_flight_ops_max}")
        if written:
            journal.sync()
            durable_seq = seq
            report_durable(durable_seq)


def _write(journal: Journal, frames: list[bytes]) -> int:
    for start in range(0, len(frames), BATCH_FRAMES_MAX):
        journal.write(frames[start:start + BATCH_FRAMES_MAX])
    return len(frames)
