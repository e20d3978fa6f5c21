"""The simulator over many seeds: mixed fault profiles, 3 and 5 replicas, every checker.

300 seeds in chunks (one test per chunk keeps collection cheap); a failure names each failing
seed with the command that replays it.
"""

import pytest

from tools.sim import plan, replay_command
from tools.simulator.cluster import run_seed

SEEDS = 300
CHUNK = 10
TICKS = 2000


@pytest.mark.slow
@pytest.mark.parametrize("first", range(1, SEEDS + 1, CHUNK))
def test_simulator_seeds_pass_every_checker(first):
    failures = []
    for seed in range(first, first + CHUNK):
        profile, replicas = plan(seed, "rotate", None)
        result = run_seed(seed, replicas, TICKS, profile)
        if not result.ok:
            failures.append(f"seed {seed}: {result.failures[:3]}\n  replay: "
                            f"{replay_command(seed, profile, replicas, TICKS)}")
    assert not failures, "\n".join(failures)


def test_a_seed_replays_exactly():
    first = run_seed(42, 3, 1200, "mixed")
    second = run_seed(42, 3, 1200, "mixed")
    assert first.ok and second.ok
    assert (first.committed_requests, first.commit_max) == \
        (second.committed_requests, second.commit_max)
