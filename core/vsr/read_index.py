"""Linearizable reads by read-index (DESIGN section 5).

Owns the reads waiting on the primary: each notes the commit number when it arrived and needs
a heartbeat round STARTED AFTER its arrival to be acknowledged by a quorum (proof that no newer
view had been formed when the read arrived); one round serves every read waiting for it. Then
the read is answered once `applied` reaches its noted commit. It never answers on a backup and
never writes to the log.
"""

from __future__ import annotations

from collections import deque

from core.check import check

READS_WAITING_MAX = 4096
ROUNDS_TRACKED_MAX = 16


class ReadIndex:
    __slots__ = ("quorum", "primary", "round", "confirmed", "round_acks", "waiting", "ready_reads")

    def __init__(self, quorum: int, primary: int) -> None:
        self.quorum = quorum
        self.primary = primary
        self.round = 0
        self.confirmed = 0
        self.round_acks: dict[int, set[int]] = {}
        self.waiting: deque = deque()  # (round needed, commit noted, header, body)
        self.ready_reads: deque = deque()  # (commit noted, header, body)

    def add(self, header, body, commit: int) -> bool:
        if len(self.waiting) + len(self.ready_reads) >= READS_WAITING_MAX:
            return False  # backpressure: the client retries
        self.waiting.append((self.round + 1, commit, header, bytes(body)))
        return True

    def needs_round(self) -> bool:
        """A waiting read needs a round not started yet, and no round is in flight: the reads
        that arrive during a round share the next one, started when it is confirmed (or by
        the periodic heartbeat, should its acknowledgements be lost)."""
        return bool(self.waiting) and self.waiting[-1][0] > self.round and \
            self.confirmed == self.round

    def start_round(self) -> int:
        self.round += 1
        self.round_acks[self.round] = {self.primary}
        while len(self.round_acks) > ROUNDS_TRACKED_MAX:
            del self.round_acks[min(self.round_acks)]
        self._confirm(self.round)
        return self.round

    def ack(self, round_number: int, replica: int) -> None:
        acks = self.round_acks.get(round_number)
        if acks is not None:
            acks.add(replica)
            self._confirm(round_number)

    def _confirm(self, round_number: int) -> None:
        if len(self.round_acks[round_number]) < self.quorum or round_number <= self.confirmed:
            return
        self.confirmed = round_number
        for old in [r for r in self.round_acks if r <= round_number]:
            del self.round_acks[old]
        while self.waiting and self.waiting[0][0] <= self.confirmed:
            _, commit, header, body = self.waiting.popleft()
            self.ready_reads.append((commit, header, body))

    def ready(self, applied: int) -> list:
        """Confirmed reads whose commit point is applied: (header, body, applied op)."""
        out = []
        while self.ready_reads and self.ready_reads[0][0] <= applied:
            _, header, body = self.ready_reads.popleft()
            out.append((header, body, applied))
        check(len(out) <= READS_WAITING_MAX, "read bound")
        return out

    def clear(self) -> None:
        """A view change: the reads' primacy can no longer be proven; clients retry."""
        self.waiting.clear()
        self.ready_reads.clear()
        self.round_acks.clear()
