"""The primary's pipeline: prepares in flight and the prepare_oks each has gathered.

Owns the ordered set of uncommitted ops of the current view with their acknowledgements and
resend clocks. It never validates checksums (the replica matches a prepare_ok against its log
before counting it) and never commits on its own: it reports which prefix has a quorum.
"""

from __future__ import annotations

from core.check import check


class Pipeline:
    __slots__ = ("quorum", "acks", "sent_tick", "primary", "progress_tick")

    def __init__(self, quorum: int, primary: int) -> None:
        self.quorum = quorum
        self.primary = primary
        self.acks: dict[int, set[int]] = {}
        self.sent_tick: dict[int, int] = {}
        # When the oldest prepare in flight last changed (entered or committed).
        self.progress_tick = 0

    def __len__(self) -> int:
        return len(self.acks)

    def push(self, op: int, tick: int) -> None:
        check(not self.acks or op == max(self.acks) + 1, "pipeline ops must be consecutive")
        if not self.acks:
            self.progress_tick = tick
        self.acks[op] = set()
        self.sent_tick[op] = tick

    def ack(self, op: int, replica: int) -> None:
        acks = self.acks.get(op)
        if acks is not None:
            acks.add(replica)

    def pop_committed(self, tick: int) -> int | None:
        """Pop the prefix acknowledged by a quorum that includes the primary's own durable copy;
        return its highest op. Ops commit in order: op k never commits before k - 1."""
        highest = None
        while self.acks:
            op = min(self.acks)
            acks = self.acks[op]
            if len(acks) < self.quorum or self.primary not in acks:
                break
            del self.acks[op]
            del self.sent_tick[op]
            highest = op
        if highest is not None:
            self.progress_tick = tick
        return highest

    def stalled_since(self, tick: int) -> int:
        """Ticks the oldest prepare in flight has waited to commit (0 when idle)."""
        return tick - self.progress_tick if self.acks else 0

    def resend_due(self, tick: int, every_ticks: int, replica_count: int):
        """(op, replicas that have not acknowledged) for prepares unacknowledged too long."""
        due = []
        for op, acks in self.acks.items():
            if tick - self.sent_tick[op] >= every_ticks:
                self.sent_tick[op] = tick
                due.append((op, [r for r in range(replica_count) if r not in acks]))
        return due

    def clear(self) -> None:
        self.acks.clear()
        self.sent_tick.clear()
