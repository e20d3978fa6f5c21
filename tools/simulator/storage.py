"""The simulated disk of one replica, with the journal's failure semantics (DESIGN section 6).

Owns the superblock (view, log_view, view headers, checkpoint op and its state sections,
written synchronously as the real superblock is fsynced before the replica proceeds) and the
journal: appends become durable at the next sync; a crash loses unsynced appends and may tear
the last one (a torn entry above every durable op is cut at recovery; a torn rewrite of an op in
the middle is a corrupt entry to repair); `corrupt` damages a durable entry (its body only, so
the header survives as in the ring journal's redundant header region, or the whole entry).
Truncation is durable at once. It never interprets prepares beyond their op.
"""

from __future__ import annotations

import random

from core.vsr.messages import VsrConfig
from core.vsr.replica import Recovered
from net.wire import HEADER_SIZE


class Storage:
    def __init__(self, config: VsrConfig) -> None:
        # The journal's bound (core/vsr/messages.py VsrConfig): an append past it is a bug of
        # the core, which the real journal would refuse.
        self.ops_ahead_max = config.journal_ops_ahead_max
        self.slots = config.journal_slots
        self.retention = config.journal_retention_ops
        self.view = 0
        self.log_view = 0
        self.view_op = 0
        self.view_headers: list[bytes] = []
        self.checkpoint_op = 0
        self.checkpoint_sections: dict | None = None
        self.checkpoint_header = b""
        self.durable: dict[int, bytes | None] = {}
        self.pending: list[tuple[int, int, bytes]] = []  # (seq, op, frame)
        self.op_max = 0  # the highest op held, durable or pending

    def persist_view(self, view: int, log_view: int, op: int, headers: list[bytes]) -> None:
        self.view, self.log_view, self.view_op = view, log_view, op
        self.view_headers = list(headers)

    def append(self, seq: int, op: int, frame: bytes) -> str | None:
        """Queue an append; a reason when the journal's bound refuses it."""
        if self.ops_ahead_max:
            held = max(self.checkpoint_op, self.op_max)
            if op > held + self.ops_ahead_max:
                return f"append of op {op} more than {self.ops_ahead_max} above op {held}"
        if self.slots:
            released = max(0, self.checkpoint_op - self.retention)
            if op > released + self.slots:
                return f"append of op {op} past the ring's {self.slots} slots above {released}"
        self.pending.append((seq, op, frame))
        self.op_max = max(self.op_max, op)
        return None

    def sync(self) -> int | None:
        """Make every pending append durable; the highest seq synced, if any."""
        if not self.pending:
            return None
        for _, op, frame in self.pending:
            self.durable[op] = frame
        seq = self.pending[-1][0]
        self.pending.clear()
        return seq

    def truncate(self, op: int) -> None:
        for stale in [o for o in self.durable if o > op]:
            del self.durable[stale]
        self.pending = [p for p in self.pending if p[1] <= op]
        self.op_max = min(self.op_max, op)

    def checkpoint(self, op: int, sections: dict, header: bytes) -> None:
        self.checkpoint_op = op
        self.checkpoint_sections = sections
        self.checkpoint_header = header

    def corrupt(self, rng: random.Random) -> int | None:
        candidates = sorted(op for op, frame in self.durable.items()
                            if frame is not None and op > self.checkpoint_op
                            and len(frame) > HEADER_SIZE)
        if not candidates:
            return None
        op = rng.choice(candidates)
        frame = self.durable[op]
        # Body-only damage keeps the header (readable from the header region); whole-entry
        # damage leaves only the knowledge that op exists.
        self.durable[op] = frame[:HEADER_SIZE] if rng.random() < 0.5 else None
        return op

    def crash(self, rng: random.Random, torn: bool) -> None:
        if torn and self.pending:
            _, op, _ = self.pending[-1]
            top = max((o for o in self.durable), default=0)
            if op <= top:
                self.durable[op] = None  # a torn rewrite in the middle: corrupt, to repair
        self.pending.clear()
        self.op_max = max(self.durable, default=0)

    def recover(self) -> Recovered:
        journal = {op: frame for op, frame in self.durable.items() if op > self.checkpoint_op}
        return Recovered(self.view, self.log_view, self.view_op, self.view_headers,
                         self.checkpoint_op, self.checkpoint_header, journal)
