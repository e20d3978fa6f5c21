"""Lowest-free-id allocation for streams, topics and users (DESIGN section 7).

Owns: `LowestFree`, a cursor below which every id is known occupied. The id it returns is a
function of the occupied set only, so a replica restored from a checkpoint allocates exactly
like one that replayed the log; the cursor is a cache, never state, and never serialized.
"""

from __future__ import annotations

from collections.abc import Container

from core.check import check

ID_MAX = (1 << 32) - 1


class LowestFree:
    """Invariant: every id below `_cursor` is occupied."""

    __slots__ = ("_cursor",)

    def __init__(self) -> None:
        self._cursor = 0

    def lowest(self, occupied: Container[int]) -> int:
        """The lowest id not in `occupied`; amortised O(1) over a run of allocations."""
        cursor = self._cursor
        while cursor in occupied:
            cursor += 1
        check(cursor <= ID_MAX, "id space exhausted")
        self._cursor = cursor
        return cursor

    def released(self, ident: int) -> None:
        if ident < self._cursor:
            self._cursor = ident
