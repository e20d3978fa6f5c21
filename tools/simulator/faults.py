"""Fault profiles of the simulator: which faults a run injects and how often.

Owns the named profiles (`metavsr sim --faults NAME`); never injects anything itself.
"""

from __future__ import annotations

from dataclasses import dataclass

from tools.simulator.network import NetworkProfile


@dataclass(frozen=True)
class FaultProfile:
    network: NetworkProfile
    crash_per_tick: float = 0.0
    torn_write: float = 0.0
    partition_per_tick: float = 0.0
    corrupt_per_tick: float = 0.0
    down_ticks_max: int = 200
    partition_ticks_max: int = 200


_LOSSY = NetworkProfile(delay_min_ticks=1, delay_max_ticks=8, loss=0.05, duplicate=0.03)

PROFILES: dict[str, FaultProfile] = {
    "none": FaultProfile(NetworkProfile()),
    "network": FaultProfile(_LOSSY, partition_per_tick=0.006),
    "crash": FaultProfile(NetworkProfile(delay_max_ticks=4), crash_per_tick=0.005,
                          torn_write=0.5),
    "storage": FaultProfile(NetworkProfile(delay_max_ticks=4), crash_per_tick=0.004,
                            torn_write=0.5, corrupt_per_tick=0.02),
    "mixed": FaultProfile(_LOSSY, crash_per_tick=0.004, torn_write=0.5,
                          partition_per_tick=0.004, corrupt_per_tick=0.01),
}

# What `--faults random` and the test suite cycle through, by seed.
ROTATION = ("mixed", "network", "crash", "storage", "mixed", "none")
