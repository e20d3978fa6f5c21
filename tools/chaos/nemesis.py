"""The nemesis schedule: which fault, on what, when and for how long, drawn from a seed.

Owns the plan only (pure: no processes, sockets or clocks), so a seed names a schedule and a
failing run can be replayed with the same faults at the same offsets. Faults come one at a
time: a fault, held for `hold_s`, healed, then a quiet gap so the cluster can make progress
again (safety must hold under any faults; one at a time keeps a 3-replica cluster live most
of the run so the history has something to check). Targets are a replica index, or "primary"
(resolved when the fault starts, so timing decides which replica that is).
"""

from __future__ import annotations

import random
from dataclasses import dataclass

FAULT_KINDS = ("kill", "pause", "partition", "disk-full")
START_QUIET_S = 3.0
HOLD_S = (1.0, 8.0)
QUIET_S = (2.0, 6.0)

# kind -> variants (cluster.py implements each)
VARIANTS = {
    "kill": ("replica", "supervisor", "role"),  # kill -9 the process group, its supervisor,
                                                # or one role (the replica fail-stops)
    "pause": ("replica", "role"),                # SIGSTOP the process group or one role
    "partition": ("isolate", "peers", "clients", "link", "one-way"),
    "disk-full": ("fill",),
}
PARTITION_MODES = ("drop", "hang")


@dataclass(frozen=True)
class Fault:
    at_s: float       # offset from the start of the load
    kind: str
    variant: str
    target: object    # replica index or "primary"
    other: int        # the second replica of a link/one-way partition, else -1
    mode: str         # partition: drop or hang; else ""
    hold_s: float

    def describe(self) -> str:
        what = f"{self.kind}/{self.variant} {self.target}"
        if self.other >= 0:
            what += f"<->{self.other}" if self.variant == "link" else f"->{self.other}"
        if self.mode:
            what += f" ({self.mode})"
        return f"{what} for {self.hold_s:.1f} s"


def schedule(seed: int, duration_s: float, kinds: tuple[str, ...], replicas: int,
             disk_full_replica: int, end_quiet_s: float) -> list[Fault]:
    """Faults starting in [START_QUIET_S, duration_s - end_quiet_s), healed before that end."""
    for kind in kinds:
        assert kind in FAULT_KINDS, kind
    rng = random.Random(seed)
    faults: list[Fault] = []
    at = START_QUIET_S
    end = duration_s - end_quiet_s
    while kinds:
        kind = rng.choice(kinds)
        variant = rng.choice(VARIANTS[kind])
        hold = round(rng.uniform(*HOLD_S), 2)
        if at + hold > end:
            break
        target: object = rng.choice(["primary", *range(replicas)])
        other, mode = -1, ""
        if kind == "disk-full":
            target = disk_full_replica
        if kind == "partition":
            mode = rng.choice(PARTITION_MODES)
            if variant in ("link", "one-way"):
                target = rng.randrange(replicas)
                other = rng.choice([r for r in range(replicas) if r != target])
        faults.append(Fault(round(at, 2), kind, variant, target, other, mode, hold))
        at += hold + rng.uniform(*QUIET_S)
    return faults
