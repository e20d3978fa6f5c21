"""View change decisions: what a do_view_change carries and how the new primary merges them.

Owns the pure functions of VSR Revisited's view change with TigerBeetle's refinement; it never
holds replica state and never emits actions.

Merge rule (DESIGN section 5): the log of the highest log_view wins, then the highest op. Every
do_view_change carries only headers that chain down from its sender's head, so all headers of
the winning log_view agree (they are prefixes of one primary's log). Below any known header the
log is known by the hash chain (the child's parent names it).

Discarding an uncommitted op needs proof, never the absence of evidence. A sender NACKS op k
(of the canonical identity) when k is above its head, when it holds another prepare at k, or
when it knows k's header but never held k durably and did not lose it to corruption. A
committed op is durable on a quorum, so it can collect at most n - quorum nacks: an op with a
quorum of nacks was never committed, nor was any op above it (commits are a prefix). So:
  - a top segment whose headers nobody can name (the winner lost them to corruption) is cut
    only with a quorum of nacks, else the view change waits;
  - the lowest op of the suffix with a quorum of nacks and everything above it are cut (an op
    whose only durable copy is corrupt, and that a quorum never had, would otherwise block the
    log forever).
A corrupt local entry is reported as such, never as a nack, so it can never erase an op that
was acknowledged.
"""

from __future__ import annotations

import struct
from typing import NamedTuple

from core.check import check
from net.wire import HEADER_SIZE, Command, FrameError, decode_header, header_checksum_ok


# Per-op testimony in a do_view_change body.
PRESENT = 1  # this very prepare is durable here
NACK = 0  # nothing is durable here at this op, and nothing was lost to corruption
FAULTY = 2  # proves nothing: a corrupt copy, or a durable copy of another prepare


class DoViewChange(NamedTuple):
    replica: int
    log_view: int
    op: int
    commit: int
    headers: dict  # op -> (header, raw bytes)
    status: dict  # op -> PRESENT | NACK | FAULTY, for ops in headers
    wanted: dict  # op -> (checksum, NACK | FAULTY): ops known only by their child's parent


class Merged(NamedTuple):
    head: int
    commit: int
    headers: dict  # op -> (header, raw bytes), canonical
    head_checksum: int | None  # the head's identity, also when only its child named it


def encode_headers(raws: list[bytes]) -> bytes:
    return b"".join(raws)


_WANTED = struct.Struct("<QQB")


def encode_dvc_body(raws: list[bytes], statuses: list[int], wanted: list[tuple]) -> bytes:
    """Headers, one status byte per header, then (op, checksum, status) per wanted op."""
    check(len(raws) == len(statuses), "one status per header")
    return b"".join(raws) + bytes(statuses) + b"".join(_WANTED.pack(*w) for w in wanted)


def decode_dvc_body(body: bytes | memoryview, header_count: int) -> tuple[dict, dict, dict]:
    headers_end = header_count * (HEADER_SIZE + 1)
    if len(body) < headers_end or (len(body) - headers_end) % _WANTED.size:
        raise FrameError(f"do_view_change body of {len(body)} bytes is malformed")
    headers = decode_headers(body[:header_count * HEADER_SIZE])
    raw_status = bytes(body[header_count * HEADER_SIZE:headers_end])
    if len(headers) != header_count or any(s not in (PRESENT, NACK, FAULTY)
                                           for s in raw_status):
        raise FrameError("bad do_view_change header statuses")
    wanted = {}
    for offset in range(headers_end, len(body), _WANTED.size):
        op, checksum, status = _WANTED.unpack_from(body, offset)
        if status not in (NACK, FAULTY):
            raise FrameError("bad do_view_change wanted status")
        wanted[op] = (checksum, status)
    return headers, dict(zip(sorted(headers), raw_status)), wanted


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


def _nacks(dvcs: list[DoViewChange], op: int, checksum: int | None) -> int:
    """Senders proving they never held the prepare `checksum` at op durably (None: whatever
    prepare it is, when nobody can name it)."""
    count = 0
    for d in dvcs:
        if op > d.op:
            count += 1  # nothing at op at all
            continue
        pair = d.headers.get(op)
        if pair is not None:
            status = d.status.get(op)
            if status == NACK:
                count += 1  # nothing durable at op
            elif status == PRESENT and checksum is not None and pair[0].checksum != checksum:
                count += 1  # its one durable copy at op is another prepare
            continue
        wanted = d.wanted.get(op)
        if wanted is not None and wanted[1] == NACK:
            count += 1  # nothing durable at op
    return count


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
        # Ops (known_top, head] exist on the winning replica but nobody can name them: cut
        # them only if a quorum holds nothing durable at the lowest of them.
        if _nacks(dvcs, known_top + 1, None) < quorum:
            return None
        head = known_top
    head_checksum = _identity(headers, head)
    for op in range(commit + 1, head + 1):
        checksum = _identity(headers, op)
        if checksum is not None and _nacks(dvcs, op, checksum) >= quorum:
            head = op - 1  # op was never committed, so nothing above it was either
            head_checksum = headers[op][0].parent if op in headers else _identity(headers, head)
            break
    # Every committed op is in the log of the highest log_view, and the nack rules only cut
    # ops a quorum never prepared (so never committed): the merged head covers every commit.
    check(commit <= head, f"merged head {head} below a known commit {commit}")
    return Merged(head=head, commit=commit,
                  headers={op: pair for op, pair in headers.items() if op <= head},
                  head_checksum=head_checksum)


def _identity(headers: dict, op: int) -> int | None:
    """The checksum of op: its header's, else its child's parent pointer, else unknown."""
    if op in headers:
        return headers[op][0].checksum
    return headers[op + 1][0].parent if op + 1 in headers else None
