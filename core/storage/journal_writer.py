"""The journal role's working part: the writer loop with group commit (DESIGN section 2).

Owns the loop "take what arrived, append it, one fdatasync, report the durable op". Never
reads rings or sockets itself: it is wired to its input and output through two plain callables,
so the shared-memory rings (shm/) plug in later and a test can drive it with a list or a pipe.

Group commit, why one fdatasync covers every append that arrived while the previous one ran:
while the loop is inside fdatasync, new commands queue up in the source; the next take()
returns all of them at once (up to the in-flight bound), they are written with one writev and
made durable with one fdatasync. The durable op is reported only after that fdatasync returns.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence

from core.check import check
from core.storage.journal import BATCH_FRAMES_MAX, Journal


@dataclasses.dataclass(frozen=True)
class Append:
    frames: Sequence[bytes]


@dataclasses.dataclass(frozen=True)
class TruncatePrefix:
    """Ops <= op are released (checkpoint minus the retention lag, DESIGN section 6)."""

    op: int


@dataclasses.dataclass(frozen=True)
class TruncateSuffix:
    op: int


Command = Append | TruncatePrefix | TruncateSuffix


def journal_release_op(checkpoint_op: int, retention_ops: int) -> int:
    """The op below which the journal may drop entries once checkpoint_op is durable."""
    check(retention_ops >= 0, "retention_ops must not be negative")
    return max(0, checkpoint_op - retention_ops)


def run_journal_writer(journal: Journal,
                       take: Callable[[int], Sequence[Command] | None],
                       report_durable: Callable[[int], None],
                       in_flight_ops_max: int) -> int:
    """Run until take() returns None; returns the last durable op.

    take(frames_max) blocks until at least one command is available and returns every
    available command whose appends total at most frames_max frames. frames_max is the
    recovery window (journal.py): never more than that many ops are appended but unsynced.
    """
    check(0 < in_flight_ops_max, "in_flight_ops_max must be positive")
    durable = journal.op_max
    while True:
        commands = take(in_flight_ops_max)
        if commands is None:
            return durable
        pending: list[bytes] = []
        appended = 0
        for command in commands:
            if isinstance(command, Append):
                pending.extend(command.frames)
                continue
            appended += _append(journal, pending)  # appends that came first are written first
            pending = []
            if isinstance(command, TruncatePrefix):
                journal.truncate_prefix(command.op)
            else:
                check(isinstance(command, TruncateSuffix), f"unknown command {command!r}")
                journal.truncate_suffix(command.op)  # durable when it returns
            durable = journal.op_max
        appended += _append(journal, pending)
        check(appended <= in_flight_ops_max, f"{appended} ops in one group > {in_flight_ops_max}")
        if appended:
            durable = journal.sync()
            report_durable(durable)


def _append(journal: Journal, frames: list[bytes]) -> int:
    for start in range(0, len(frames), BATCH_FRAMES_MAX):
        journal.append(frames[start:start + BATCH_FRAMES_MAX])
    return len(frames)
