"""`metavsr sim`: run the deterministic VSR simulator over one seed or a range of seeds.

Owns the command line of the simulator (tools/simulator does the work): seed selection, the
fault profile (a name, or `rotate` to cycle profiles and replica counts by seed), the report of
ops committed per simulated second and of the simulator's own speed, and the replay command
printed with every failure. Never changes what a seed does: the same arguments replay a run.
"""

from __future__ import annotations

import argparse
import sys
import time

HELP = "run the deterministic cluster simulator (seeded faults, safety and liveness checks)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    which = parser.add_mutually_exclusive_group(required=True)
    which.add_argument("--seed", type=int, help="run one seed")
    which.add_argument("--seeds", metavar="A-B", help="run every seed from A to B inclusive")
    parser.add_argument("--replicas", type=int, choices=(3, 5), default=None,
                        help="replica count (default: 3, or by seed with --faults rotate)")
    parser.add_argument("--ticks", type=int, default=2000, help="simulated ticks (10 ms each)")
    parser.add_argument("--faults", default="rotate",
                        help="fault profile: none, network, crash, storage, mixed, or rotate")
    parser.add_argument("--workload", default=None,
                        help="streams (domains.MuxStateMachine, the default) or kv (toy)")
    parser.add_argument("--clients", type=int, default=None,
                        help="simulated clients, one request in flight each (default 6)")
    parser.add_argument("--quiet", action="store_true", help="print failures and totals only")


def plan(seed: int, faults: str, replicas: int | None) -> tuple[str, int]:
    """The (profile, replica count) a seed runs with; `rotate` varies both by seed."""
    from tools.simulator.faults import ROTATION

    if faults == "rotate":
        profile = ROTATION[seed % len(ROTATION)]
        count = replicas or (5 if seed % 4 == 3 else 3)
    else:
        profile, count = faults, replicas or 3
    return profile, count


def replay_command(seed: int, profile: str, replicas: int, ticks: int,
                   workload: str | None = None, clients: int | None = None) -> str:
    command = (f"metavsr sim --seed {seed} --replicas {replicas} --ticks {ticks} "
               f"--faults {profile}")
    command += f" --workload {workload}" if workload else ""
    return command + (f" --clients {clients}" if clients is not None else "")


def run(args: argparse.Namespace) -> int:
    from tools.simulator import WORKLOADS, load_workload
    from tools.simulator.cluster import run_seed
    from tools.simulator.faults import PROFILES

    if args.workload is not None and args.workload not in WORKLOADS:
        print(f"unknown workload {args.workload!r}; one of: {', '.join(sorted(WORKLOADS))}",
              file=sys.stderr)
        return 2
    workload = load_workload(args.workload) if args.workload else None

    if args.faults != "rotate" and args.faults not in PROFILES:
        print(f"unknown fault profile {args.faults!r}; one of: rotate, "
              f"{', '.join(sorted(PROFILES))}", file=sys.stderr)
        return 2
    if args.seed is not None:
        seeds = range(args.seed, args.seed + 1)
    else:
        low, _, high = args.seeds.partition("-")
        seeds = range(int(low), int(high or low) + 1)
    started = time.perf_counter()
    failed = 0
    committed = 0
    sim_seconds = 0.0
    for seed in seeds:
        profile, replicas = plan(seed, args.faults, args.replicas)
        options = {} if args.clients is None else {"clients": args.clients}
        result = run_seed(seed, replicas, args.ticks, profile, workload=workload, **options)
        committed += result.committed_requests
        sim_seconds += result.sim_seconds
        if not result.ok:
            failed += 1
            print(f"FAIL seed {seed} ({profile}, {replicas} replicas):")
            for failure in result.failures[:10]:
                print(f"  {failure}")
            replay = replay_command(seed, profile, replicas, args.ticks, args.workload,
                                    args.clients)
            print(f"  replay: {replay}")
        elif not args.quiet:
            print(f"ok   seed {seed} ({profile}, {replicas} replicas): "
                  f"{result.committed_requests} requests committed, commit {result.commit_max}, "
                  f"{result.wall_seconds:.2f} s")
        sys.stdout.flush()
    wall = time.perf_counter() - started
    print(f"{len(seeds)} seeds, {failed} failed, {wall:.1f} s; "
          f"{committed / max(sim_seconds, 1e-9):.0f} requests committed per simulated second; "
          f"simulator {committed / max(wall, 1e-9):.0f} requests/s real")
    return 1 if failed else 0
