"""View change decisions: what a do_view_change carries and how the new primary merges them.

Owns the pure functions of VSR Revisited's view change with TigerBeetle's refinement; it never
holds replica state and never emits actions.

Merge rule (DESIGN section 5): the log of the highest log_view wins, then the highest op. Every
do_view_change carries only headers that chain down from its sender's head, so all headers of
the winning log_view agree (they are prefixes of one primary's log). Below any known header the
log is known by the hash chain (the child's parent names it). What may be unknown is a top
segment above the highest known header: the winning replica's head entries whose headers it
lost to corruption. Those ops are truncated only when a quorum of the do_view_change senders
prove they never prepared them (their head is below); otherwise the view change waits, because
a quorum of durable copies (an acknowledged, maybe committed op) may hide behind that
corruption.
"""

from __future__ import annotations

from typing import NamedTuple

from core.check import check
from net.wire import HEADER_SIZE, FrameError, decode_header, header_checksum_ok, Command


class DoViewChange(NamedTuple):
    replica: int
    log_view: int
    op: int
    commit: int
    headers: dict  # op -> (header, raw bytes)


class Merged(NamedTuple):
    head: int
    commit: int
    headers: dict  # op -> (header, raw bytes), canonical


def encode_headers(raws: list[bytes]) -> bytes:
    return b"".join(raws)


def decode_headers(body: bytes | memoryview) -> dict:
    """Split a body of concatenated prepare headers; each must carry a valid checksum."""
    if len(body) % HEADER_SIZE:
        raise FrameError(f"headers body of {len(body)} bytes is not a multiple of {HEADER_SIZE}")
    headers = {}
    for offset in range(0, len(body), HEADER_SIZE):
        raw = bytes(body[offset:offset + HEADER_SIZE])
        if raw[60] != Command.PREPARE or not header_checksum_ok(raw):
            raise FrameError("bad prepare header in a headers body")
        # decode_header checks `size` only against the frame bound, so a lone header decodes.
        header = decode_header(raw)
        headers[header.op] = (header, raw)
    return headers


def merge(dvcs: list[DoViewChange], quorum: int) -> Merged | None:
    """The canonical log for the new view, or None when the view change must wait."""
    check(len(dvcs) >= quorum, "merge needs a quorum of do_view_change")
    log_view = max(d.log_view for d in dvcs)
    best = [d for d in dvcs if d.log_view == log_view]
    head = max(d.op for d in best)
    commit = max(d.commit for d in dvcs)
    headers: dict = {}
    for d in best:
        for op, pair in d.headers.items():
            known = headers.get(op)
            # Same log_view and chain-verified: two copies of one op must be one prepare.
            check(known is None or known[0].checksum == pair[0].checksum,
                  f"do_view_change headers of log_view {log_view} disagree at op {op}")
            headers[op] = pair
    known_top = max((op for op in headers if op <= head), default=0)
    if known_top < head:
        # Ops (known_top, head] exist on the winning replica but nobody can name them.
        nacks = sum(1 for d in dvcs if d.op <= known_top)
        if nacks < quorum:
            return None
        head = known_top
    # Every committed op is in the log of the highest log_view, and the nack rule only cuts
    # ops a quorum never prepared (so never committed): the merged head covers every commit.
    check(commit <= head, f"merged head {head} below a known commit {commit}")
    return Merged(head=head, commit=commit,
                  headers={op: pair for op, pair in headers.items() if op <= head})
