"""When each session sends, and from when its latency counts (no coordinated omission).

Owns: the intended send time of a session's n-th operation and the measurement window; pure
arithmetic on integer nanoseconds of a clock the caller passes in (so tests need no sleeping).

- Closed loop: the next operation is intended the moment the previous one completed, so the
  intended time is the actual send time.
- Open loop at a total rate R over S sessions: session k's n-th operation is intended at
  start + (n + k / S) * S / R. The per-session phase k / S spreads the sessions evenly over one
  period, so the offered load is smooth rather than S requests in a burst. A session still busy
  at its next intended time sends when it is free, and that operation's latency is counted from
  the intended time: the wait the system caused is part of what it is measured on.

Must never read a clock or sleep.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

NS_PER_S = 1_000_000_000


@dataclass(frozen=True)
class Window:
    """The run's time line: everything starts at `start_ns`; ops intended before
    `measure_ns` are warm-up (run, not measured); none is issued at or after `end_ns`
    (None: until the op quota is reached)."""

    start_ns: int
    measure_ns: int
    end_ns: int | None

    @classmethod
    def of(cls, start_ns: int, warmup_s: float, duration_s: float | None) -> Window:
        measure = start_ns + round(warmup_s * NS_PER_S)
        end = None if duration_s is None else measure + round(duration_s * NS_PER_S)
        return cls(start_ns, measure, end)

    def measured(self, intended_ns: int) -> bool:
        return intended_ns >= self.measure_ns

    def open(self, intended_ns: int) -> bool:
        """Whether an op intended at this time is still issued."""
        return self.end_ns is None or intended_ns < self.end_ns


class ClosedLoop:
    """Send as soon as the previous operation completed."""

    def intended(self, index: int, now_ns: int) -> int:
        return now_ns


class OpenLoop:
    """A fixed schedule of intended send times for one of `sessions` sessions."""

    def __init__(self, start_ns: int, rate_per_s: float, sessions: int, session_index: int):
        if rate_per_s <= 0:
            raise ValueError("an open-loop rate must be positive")
        if not 0 <= session_index < sessions:
            raise ValueError("session index outside 0..sessions-1")
        # Per-session period in ns; floats keep the schedule exact for any rate, and the
        # index multiplies before rounding so errors never accumulate.
        self.period_ns = sessions * NS_PER_S / rate_per_s
        self.offset_ns = start_ns + self.period_ns * session_index / sessions

    def intended(self, index: int, now_ns: int) -> int:
        return round(self.offset_ns + index * self.period_ns)

    def count_before(self, end_ns: int) -> int:
        """How many operations of the schedule are intended before `end_ns`."""
        n = max(0, math.ceil((end_ns - self.offset_ns) / self.period_ns))
        # ceil on floats can be one off at an exact boundary; settle it on the rounded times.
        while n > 0 and self.intended(n - 1, 0) >= end_ns:
            n -= 1
        while self.intended(n, 0) < end_ns:
            n += 1
        return n


def latency_ns(intended_ns: int, completed_ns: int) -> int:
    """Latency counted from the intended send time (never negative)."""
    return max(0, completed_ns - intended_ns)
