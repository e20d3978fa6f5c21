"""Named 64-bit counters in shared memory: heartbeats, readiness and metrics of the roles.

One segment per replica holds one block of counters per role. Each block has exactly one
writer (its role) and any number of readers (the supervisor for liveness and Prometheus), so a
counter needs no lock: an aligned 8-byte store is never seen torn on x86-64. The catalogue of
names is fixed at creation, so every process agrees on each counter's slot.
"""

from __future__ import annotations

from collections.abc import Sequence

from core.check import check
from shm.segment import Segment


class CounterTable:
    """blocks x names uint64 counters; block b, name n lives at word b * len(names) + index(n)."""

    def __init__(self, segment: Segment, blocks: Sequence[str], names: Sequence[str]):
        check(len(set(blocks)) == len(blocks) and len(set(names)) == len(names),
              "counter blocks and names must be unique")
        self.segment = segment
        self.blocks = tuple(blocks)
        self.names = tuple(names)
        self._words = segment.words(0, len(blocks) * len(names))
        self._block_index = {block: i for i, block in enumerate(self.blocks)}
        self._name_index = {name: i for i, name in enumerate(self.names)}

    @staticmethod
    def size_bytes(blocks: Sequence[str], names: Sequence[str]) -> int:
        return 8 * len(blocks) * len(names)

    @classmethod
    def create(cls, name: str, blocks: Sequence[str], names: Sequence[str]) -> CounterTable:
        return cls(Segment.create(name, cls.size_bytes(blocks, names)), blocks, names)

    @classmethod
    def attach(cls, name: str, blocks: Sequence[str], names: Sequence[str]) -> CounterTable:
        table = cls(Segment.attach(name), blocks, names)
        check(table.segment.size_bytes >= cls.size_bytes(blocks, names),
              f"counter segment {name} is smaller than its catalogue")
        return table

    def slot(self, block: str, name: str) -> int:
        """The word index of one counter: resolve once, then use get_at/set_at on hot paths."""
        return self._block_index[block] * len(self.names) + self._name_index[name]

    def get(self, block: str, name: str) -> int:
        return self._words[self.slot(block, name)]

    def set(self, block: str, name: str, value: int) -> None:
        self._words[self.slot(block, name)] = value

    def add(self, block: str, name: str, delta: int = 1) -> None:
        slot = self.slot(block, name)
        self._words[slot] = self._words[slot] + delta

    def get_at(self, slot: int) -> int:
        return self._words[slot]

    def set_at(self, slot: int, value: int) -> None:
        self._words[slot] = value

    def snapshot(self) -> dict[str, dict[str, int]]:
        """Every counter, by block then name (for metrics and status)."""
        values = self._words.tolist()
        width = len(self.names)
        return {block: dict(zip(self.names, values[b * width:(b + 1) * width]))
                for b, block in enumerate(self.blocks)}

    def close(self) -> None:
        self._words = None  # type: ignore[assignment]
        self.segment.close()
