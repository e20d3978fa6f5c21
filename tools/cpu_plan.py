"""`metavsr cpu-plan`: print a suggested `[cpu]` table for this machine's CPUs.

Owns the placement advice only: which CPUs each role of each replica on this host should be
pinned to, and which CPUs to give the load generator, with the reasoning printed as TOML
comments. It reads nothing but this process's CPU affinity and never changes any affinity
itself: the supervisor applies the table (core/roles/supervisor.py) and core/config.py
validates it.

The reasoning (DESIGN section 2):
- hot roles: net, replication, owner and journal handle every operation. Two roles joined by a
  busy ring run best on different cores: the producer fills while the consumer drains, and
  neither waits for the other to be scheduled. The busiest pairs are net<->replication (every
  frame both ways), replication<->journal (every prepare) and replication->owner (every
  commit); owner->net carries replies.
- journal spends its time in fdatasync, off the CPU, so it is the cheapest core-mate; it goes
  with net, with which it shares no ring. With two cores: net+journal | replication+owner.
- cold roles: the supervisor (polls every 50 ms) and snapshot (a burst per checkpoint) float
  over all of the replica's CPUs, so the scheduler puts their rare work on an idle core.
- the load generator frames and checksums as much as net does; on more than two CPUs it gets
  CPUs of its own, on two or fewer it can only share (measure on another host instead).
- several replicas on one host: each gets its own CPUs when there are enough; otherwise they
  share, each rotated by one core so that their hot roles do not stack on the same core.

This is reasoning, not yet a measurement: issue 9's pinned-vs-unpinned benchmark needs the
real roles. `metavsr bench ring` (one producer, one consumer) under `taskset -c 0` and under
`taskset -c 0,1` on the shared 2-CPU development machine (load average 2.4 from other work)
gave the same ~1.3 M records/s single and ~10.5 M batched either way.
"""

from __future__ import annotations

import argparse
import os
import sys

from core.config import REPLICA_COUNT_MAX

HELP = "print a suggested [cpu] table (role pinning) for this machine's CPUs"

HOT_ROLES = ("net", "replication", "journal", "owner")
COLD_ROLES = ("supervisor", "snapshot")
# Hot roles grouped per number of cores a replica has: pairs joined by a busy ring are kept
# apart first (net|replication), then journal (mostly in fdatasync) joins a role it has no
# ring with; with 4 cores every hot role has its own.
HOT_GROUPS = {
    1: (("net", "replication", "journal", "owner"),),
    2: (("net", "journal"), ("replication", "owner")),
    3: (("net",), ("replication",), ("journal", "owner")),
    4: (("net",), ("replication",), ("journal",), ("owner",)),
}
CORES_PER_REPLICA_MAX = len(HOT_ROLES)
SHARED_CPUS_MAX = 2  # at or below this, the load generator cannot have CPUs of its own


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--replicas", type=int, default=1,
                        help=f"replicas that will run on this host (1..{REPLICA_COUNT_MAX}; "
                             "default 1)")


def plan(cpus: list[int], replicas: int) -> tuple[list[dict[str, list[int]]], list[int]]:
    """The [cpu] table of each replica on this host and the load generator's CPUs."""
    if not cpus:
        raise ValueError("no CPUs available")
    if not 1 <= replicas <= REPLICA_COUNT_MAX:
        raise ValueError(f"replicas: {replicas}; allowed: 1..{REPLICA_COUNT_MAX}")
    cpus = sorted(cpus)
    if len(cpus) <= SHARED_CPUS_MAX:
        return [_table(cpus, index) for index in range(replicas)], cpus
    # One CPU for the load generator, then as many CPUs per replica as its hot roles can use;
    # what is left over also goes to the load generator.
    pool = cpus[:-1]
    if len(pool) < replicas:
        return [_table(pool, index) for index in range(replicas)], cpus[-1:]
    per_replica = min(CORES_PER_REPLICA_MAX, len(pool) // replicas)
    tables = [_table(pool[i * per_replica:(i + 1) * per_replica], 0) for i in range(replicas)]
    return tables, cpus[replicas * per_replica:]


def _table(cores: list[int], rotation: int) -> dict[str, list[int]]:
    groups = HOT_GROUPS[min(len(cores), CORES_PER_REPLICA_MAX)]
    table = {role: list(cores) for role in COLD_ROLES}
    for position, group in enumerate(groups):
        core = cores[(position + rotation) % len(cores)]
        for role in group:
            table[role] = [core]
    return table


def render(cpus: list[int], replicas: int) -> str:
    """The plan as TOML: one [cpu] table per replica, each after a `# --- replica` line."""
    tables, loadgen = plan(cpus, replicas)
    claims = [{cpu for cpus_of_role in t.values() for cpu in cpus_of_role} for t in tables]
    claims.append(set(loadgen))
    shared = sum(map(len, claims)) > len(set().union(*claims))
    lines = [
        f"# metavsr cpu-plan: CPUs {sorted(cpus)} available to this process; "
        f"{replicas} replica(s) on this host plus the load generator.",
        "# Hot roles (net, replication, owner, journal) touch every operation: the pairs with",
        "# the busiest rings (net<->replication, replication<->journal, replication->owner) are",
        "# on different cores when there are cores enough, so producer and consumer run at once.",
        "# journal waits in fdatasync, off the CPU: the cheapest core-mate, put with net (no",
        "# ring between them). supervisor and snapshot are cold: they float over the replica's",
        "# CPUs and the scheduler puts their rare work on an idle core.",
    ]
    if shared:
        lines.append("# Too few CPUs for each replica and the load generator to have their own: "
                     "they share" + (", each replica rotated by one core." if replicas > 1 else "."))
        lines.append("# Measure throughput with the load generator on another host.")
        lines.append("# Here pinning only keeps the scheduler from moving work to an idle core "
                     "(2 CPUs, 3 replicas")
        lines.append("# + loadgen: unpinned 957 ops/s, pinned 588): leave [cpu] out of the "
                     "configs on such a host;")
        lines.append("# the tables below are what to use once each replica has cores of its own.")
    # One loadgen process per CPU: each is a single Python thread.
    lines.append(f"# Load generator: taskset -c {','.join(map(str, loadgen))} "
                 f"metavsr loadgen --processes {len(loadgen)} ...")
    for index, table in enumerate(tables):
        lines.append("")
        lines.append(f"# --- replica {index} of {replicas} on this host: "
                     "paste into its config file ---")
        lines.append("[cpu]")
        for role in ("supervisor",) + HOT_ROLES + ("snapshot",):
            mates = [other for other in HOT_ROLES if other != role and table[other] == table[role]]
            why = f"  # shares its core with {', '.join(mates)}" if mates and role in HOT_ROLES \
                else ""
            lines.append(f"{role} = {table[role]}{why}")
    return "\n".join(lines) + "\n"


def run(args: argparse.Namespace) -> int:
    try:
        sys.stdout.write(render(sorted(os.sched_getaffinity(0)), args.replicas))
    except ValueError as exc:
        print(f"metavsr cpu-plan: {exc}", file=sys.stderr)
        return 2
    return 0
