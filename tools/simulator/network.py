"""The simulated network: seeded delay, loss, duplication, reordering and partitions.

Owns messages in flight between nodes (replicas and clients) and the current partition. It
never looks inside a frame and never decides faults by itself beyond the probabilities of its
profile; the cluster schedules partitions and heals.
"""

from __future__ import annotations

import heapq
import random
from dataclasses import dataclass

from core.check import check

IN_FLIGHT_MAX = 200_000


@dataclass(frozen=True)
class NetworkProfile:
    delay_min_ticks: int = 1
    delay_max_ticks: int = 3
    loss: float = 0.0
    duplicate: float = 0.0


class Network:
    def __init__(self, rng: random.Random, profile: NetworkProfile) -> None:
        self.rng = rng
        self.profile = profile
        self.queue: list = []
        self.seq = 0
        # Node ids that cannot reach each other (both directions) while partitioned.
        self.cut: set[tuple] = set()
        self.faulty = True

    def send(self, now: int, source, target, frame: bytes) -> None:
        if (source, target) in self.cut:
            return
        copies = 1
        if self.faulty:
            if self.rng.random() < self.profile.loss:
                return
            if self.rng.random() < self.profile.duplicate:
                copies = 2
        for _ in range(copies):
            delay = self.rng.randint(self.profile.delay_min_ticks,
                                     self.profile.delay_max_ticks if self.faulty else
                                     self.profile.delay_min_ticks + 1)
            self.seq += 1
            heapq.heappush(self.queue, (now + delay, self.seq, source, target, frame))
        check(len(self.queue) <= IN_FLIGHT_MAX, "network queue bound")

    def due(self, now: int):
        while self.queue and self.queue[0][0] <= now:
            _, _, source, target, frame = heapq.heappop(self.queue)
            if (source, target) not in self.cut:
                yield source, target, frame

    def partition(self, group_a: list, group_b: list) -> None:
        for a in group_a:
            for b in group_b:
                self.cut.add((a, b))
                self.cut.add((b, a))

    def heal(self) -> None:
        self.cut.clear()
