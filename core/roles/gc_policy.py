"""Keep the cyclic garbage collector's pauses out of a role's latency tail.

Every full (generation 2) collection traverses every tracked object the process holds: the
imported modules, the owner's catalogue, the core's log window. On a 3-replica cluster at an
open-loop 1,000 writes/s they took 50-220 ms in the journal, owner and replication roles: the
whole p99.9. A freeze moves the objects alive now into the permanent generation, which
collections skip; reference counting still frees them when they die, so the only cost is that
a reference cycle that was already garbage at the moment of a freeze is never reclaimed. Each
freeze first collects the young generations, where such garbage lives, and the long-lived
state is acyclic (domains/streams.py: plain trees, no back references).
"""

from __future__ import annotations

import gc
import time
from collections.abc import Callable

# Objects that survive this long join the frozen set; full collections only ever see what was
# allocated since the last freeze.
FREEZE_INTERVAL_S = 10.0


class GcPolicy:
    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self.freezes = 0
        gc.collect()  # once, before the role serves: what was imported is never garbage
        self.freeze()

    def tick(self) -> None:
        """Once per loop turn: freeze the survivors when the interval has passed."""
        if self.clock() >= self.next_freeze:
            self.freeze()

    def freeze(self) -> None:
        gc.collect(1)
        gc.freeze()
        self.freezes += 1
        self.next_freeze = self.clock() + FREEZE_INTERVAL_S
