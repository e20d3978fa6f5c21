"""Mutation tests: deliberately broken replicas must be caught by the simulator's checkers.

Each test runs a scenario that passes with the real replica and fails with a replica that
breaks one rule, so the checkers are shown able to fail.
"""

import pytest

from core.vsr.replica import Replica
from tools.simulator.cluster import Cluster
from tools.simulator.workload import KvWorkload

from tests.vsr.helpers import every_tick, once, primary_index

TICKS = 2000


class MinorityCommitReplica(Replica):
    """Broken: the primary commits with its own durable copy alone."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.pipeline.quorum = 1


class SkipLogViewReplica(Replica):
    """Broken: the new primary ignores log_view and takes the longest log."""

    def _try_merge(self):
        longest = max(self.dvcs.values(), key=lambda d: d.op, default=None)
        # Every vote looks like the same log_view; only the longest log's headers count.
        self.dvcs = {r: d._replace(log_view=0, headers=d.headers if d is longest else {})
                     for r, d in self.dvcs.items()}
        super()._try_merge()


def isolated_primary_run(replica_class, seed=3):
    """The primary keeps its clients but loses its backups for 300 ticks."""
    def cut_backups(c):
        p = primary_index(c)
        c.network.partition([p], [r for r in range(c.replica_count) if r != p])
        c.partition_until = c.now + 300
    return Cluster(seed, 3, TICKS, "none", replica_class=replica_class, workload=KvWorkload,
                   schedule={300: [cut_backups]}).run()


def stale_longer_log_run(replica_class, seed):
    """Old primary A, cut from its backups, prepares a suffix nobody else has (log_view 0).
    The others form view 1 and commit a shorter log. Then view 1's primary dies as A comes
    back: the next view change sees A's longer log with the older log_view."""
    state = {}

    def cut_backups(c):
        p = primary_index(c)
        state["old"] = p
        c.network.partition([p], [r for r in range(c.replica_count) if r != p])
        # View 1 must commit an op above everything the backups got from A before the cut,
        # at a number where A holds a different prepare.
        state["commit"] = max(n.replica.log.head for i, n in enumerate(c.nodes) if i != p)

    def ready(c):
        old = c.nodes[state["old"]].replica
        new = primary_index(c)
        if new is None or new == state["old"]:
            return False
        replica = c.nodes[new].replica
        return replica.view >= 1 and replica.commit_min > state["commit"] and \
            old.log.head > replica.log.head

    def heal_and_kill_new_primary(c):
        new = primary_index(c)
        c.network.heal()
        c.crash(new, 400)
        state["fired"] = c.now

    trigger = once(ready, heal_and_kill_new_primary)
    schedule = {300: [cut_backups]}
    for tick, events in every_tick(trigger, 301, 1100).items():
        schedule.setdefault(tick, []).extend(events)
    result = Cluster(seed, 3, TICKS, "none", replica_class=replica_class, clients=16,
                     workload=KvWorkload, schedule=schedule).run()
    return result, trigger


def test_isolated_primary_scenario_passes_with_the_real_replica():
    result = isolated_primary_run(Replica)
    assert result.ok, result.failures


def test_commit_on_a_minority_is_caught():
    result = isolated_primary_run(MinorityCommitReplica)
    assert not result.ok
    assert any("different prepare" in f or "lost" in f or "linearizable" in f
               for f in result.failures), result.failures


# One seed of each kind: 6 cuts a prepare per input, 7 batches on Flush (the simulator picks
# by parity); message timing differs between them, so each has its own seed that reaches the
# trigger window.
STALE_LONGER_LOG_SEEDS = [6, 7]


@pytest.mark.parametrize("seed", STALE_LONGER_LOG_SEEDS)
def test_stale_longer_log_scenario_passes_with_the_real_replica(seed):
    result, trigger = stale_longer_log_run(Replica, seed)
    assert trigger.fired, "the scenario never reached its trigger"
    assert result.ok, result.failures


@pytest.mark.parametrize("seed", STALE_LONGER_LOG_SEEDS)
def test_skipping_the_log_view_comparison_is_caught(seed):
    result, trigger = stale_longer_log_run(SkipLogViewReplica, seed)
    assert trigger.fired
    assert not result.ok
    assert not any("invariant" in f for f in result.failures), result.failures
