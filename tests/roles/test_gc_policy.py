"""The roles' collector policy: survivors are frozen at start, when ready, and every interval,
so full collections never traverse the long-lived state."""

import gc
import weakref

from core.roles.gc_policy import FREEZE_INTERVAL_S, GcPolicy


class Probe:
    pass


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_survivors_are_frozen_on_the_interval_and_no_sooner():
    clock = Clock()
    try:
        policy = GcPolicy(clock)
        assert policy.freezes == 1 and gc.get_freeze_count() > 0
        state = [[i] for i in range(10_000)]  # long-lived, like a catalogue
        frozen = gc.get_freeze_count()
        clock.now += FREEZE_INTERVAL_S / 2
        policy.tick()
        assert policy.freezes == 1 and gc.get_freeze_count() == frozen
        clock.now += FREEZE_INTERVAL_S / 2
        policy.tick()
        assert policy.freezes == 2 and gc.get_freeze_count() >= frozen + len(state)
        # Frozen objects are still freed by reference counting.
        probe = Probe()
        alive = weakref.ref(probe)
        policy.freeze()
        del probe
        assert alive() is None
    finally:
        gc.unfreeze()
