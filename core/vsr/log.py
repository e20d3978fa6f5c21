"""The replica's in-memory view of its log: which prepares it knows, holds, and needs.

Owns, for each op of the window above the retained checkpoint: the prepare header (identity and
parent), the frame when this replica holds a valid copy, the checksum it needs when it only
knows the identity by its child's parent pointer, and which copies are durable. It never talks
to the journal (the replica turns changes into Append/Truncate actions) and never decides what
is canonical (the replica and view change do); it only walks the hash chain.

The hash chain is the source of trust: the head is canonical for the log's view, so every
header that chains down from the head by parent checksums is canonical too, and any header
that breaks the chain is stale and is replaced by the checksum its child demands.
"""

from __future__ import annotations

from core.vsr.view_change import FAULTY, NACK, PRESENT
from net.wire import HEADER_SIZE


class Log:
    __slots__ = ("headers", "raw_headers", "frames", "wanted", "durable", "faulty", "head",
                 "floor", "verified_from", "trusted_from")

    def __init__(self, floor: int) -> None:
        self.headers: dict[int, object] = {}
        self.raw_headers: dict[int, bytes] = {}
        self.frames: dict[int, bytes] = {}
        # op -> checksum of the prepare that must sit there (header not known yet).
        self.wanted: dict[int, int] = {}
        # op -> checksum of the copy that is durable in the journal.
        self.durable: dict[int, int] = {}
        # Ops whose durable copy was found corrupt: once durable, maybe acknowledged, so
        # this replica must never claim it did not prepare them until repaired.
        self.faulty: set[int] = set()
        self.head = floor
        # Ops <= floor are behind the checkpoint or applied: never repaired, never changed.
        self.floor = floor
        self.verified_from = floor + 1
        # Local headers at or above this op are canonical for the log's log_view: they came
        # with the view (start_view / merge, a contiguous window up to the head) or from its
        # primary since. Below it, only the hash chain from the head vouches for an entry.
        self.trusted_from = floor + 1

    def checksum(self, op: int) -> int | None:
        header = self.headers.get(op)
        if header is not None:
            return header.checksum
        return self.wanted.get(op)

    def set_header(self, header, raw: bytes) -> bool:
        """Record a canonical header at its op; True when it replaced a different one."""
        op = header.op
        old = self.headers.get(op)
        if old is not None and old.checksum == header.checksum:
            return False
        self.headers[op] = header
        self.raw_headers[op] = bytes(raw[:HEADER_SIZE])
        self.wanted.pop(op, None)
        if old is not None:
            self.frames.pop(op, None)
        if op > self.head:
            self.head = op
        return old is not None

    def set_frame(self, header, frame: bytes) -> None:
        self.set_header(header, frame)
        self.frames[header.op] = frame

    def forget(self, op: int) -> None:
        self.headers.pop(op, None)
        self.raw_headers.pop(op, None)
        self.frames.pop(op, None)
        self.wanted.pop(op, None)

    def truncate_after(self, op: int) -> None:
        for stale in [o for o in self.headers if o > op]:
            self.forget(stale)
        for stale in [o for o in self.wanted if o > op]:
            del self.wanted[stale]
        for stale in [o for o in self.durable if o > op]:
            del self.durable[stale]
        self.faulty = {o for o in self.faulty if o <= op}
        self.head = max(op, self.floor)

    def extends_verified_head(self, header) -> bool:
        """True when `header` is the next op and names the head as its parent while the chain
        is verified up to the head: storing it changes nothing below, so no walk is needed
        (a backup far behind would otherwise walk its whole window for every prepare)."""
        head = self.headers.get(self.head)
        return header.op == self.head + 1 and head is not None and \
            head.checksum == header.parent and self.verified_from <= self.head

    def walk_chain(self) -> list[int]:
        """Make every op below the head agree with its child's parent pointer.

        Returns the ops whose stale header was dropped. Sets verified_from: the lowest op such
        that every op from there up to the head has a header chained to the head.
        """
        replaced: list[int] = []
        op = self.head
        # Trust flows only down from the head: a head whose header is unknown (lost to
        # corruption, or a start_view that named the head without its header) verifies
        # nothing, so a stale entry below it can never pass for canonical.
        top = self.head if self.head in self.headers else self.floor - 1
        verified = True
        self.verified_from = top + 1
        while op > self.floor:
            header = self.headers.get(op)
            child = self.headers.get(op + 1) if op < self.head else None
            expected = child.parent if child is not None else None
            if expected is not None:
                if header is not None and header.checksum != expected:
                    self.forget(op)
                    replaced.append(op)
                    header = None
                if header is None:
                    self.wanted[op] = expected
            if op <= top:
                if header is None or (op < top and child is None):
                    verified = False
                if verified:
                    self.verified_from = op
            op -= 1
        return replaced

    def trust_window(self, ops) -> None:
        """The log was just installed with canonical headers at `ops`: trust the contiguous
        run of them ending at the head (nothing, if the head is not among them)."""
        low = self.head + 1
        while low - 1 in ops and low - 1 > self.floor:
            low -= 1
        self.trusted_from = low

    def verified_headers(self, count: int) -> list[bytes]:
        """Raw canonical headers among the newest `count` ops, oldest first: trusted ones
        and those chained down from the head (applied ones included)."""
        raws: list[bytes] = []
        header = self.headers.get(self.head)
        chained = header is not None
        for op in range(self.head, max(self.head - count, -1), -1):
            header = self.headers.get(op)
            if header is None:
                chained = False
                continue
            if chained and op < self.head:
                chained = header.checksum == self.headers[op + 1].parent
            # Applied ops are committed, so canonical whatever the chain says.
            if chained or op >= self.trusted_from or op <= self.floor:
                raws.append(self.raw_headers[op])
        raws.reverse()
        return raws

    def dvc_status(self, op: int) -> int:
        """What this replica can testify about the prepare it knows at op (view_change)."""
        if self.durable.get(op) == self.headers[op].checksum:
            return PRESENT
        return FAULTY if op in self.faulty or op in self.durable else NACK

    def dvc_wanted(self, count: int, sent: set) -> list[tuple[int, int, int]]:
        """Testimony about the newest `count` ops above the floor whose header is not in
        `sent`: (op, checksum or 0 when this replica cannot name it, NACK | FAULTY). NACK
        means nothing is durable here at op, whatever prepare it is; a durable copy of
        unknown standing testifies nothing (it may be an acknowledged prepare)."""
        out = []
        for op in range(max(self.floor + 1, self.head - count + 1), self.head + 1):
            if op in sent:
                continue
            status = FAULTY if op in self.faulty or op in self.durable else NACK
            out.append((op, self.wanted.get(op, 0), status))
        return out

    def missing(self) -> list[int]:
        """Ops in (floor, head] this replica cannot apply or serve yet, lowest first."""
        return [op for op in range(self.floor + 1, self.head + 1) if op not in self.frames]

    def drop_below(self, op: int) -> None:
        """Release memory of ops <= op (checkpointed and past the retention window)."""
        for old in [o for o in self.headers if o <= op]:
            self.forget(old)
        for old in [o for o in self.wanted if o <= op]:
            del self.wanted[old]
        for old in [o for o in self.durable if o <= op]:
            del self.durable[old]
        self.faulty = {o for o in self.faulty if o > op}
