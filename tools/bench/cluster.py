"""`metavsr bench cluster`: a local cluster under the load generator, optionally beside etcd.

Owns the run of the cluster benchmark: a fresh metavsr cluster (tools/bench/replicas.py) in a
temp dir, driven by tools/loadgen (in this process's coordinator, P worker processes x C
sessions) through the PHASES below: closed loop writes only (the saturation), closed loop with
80% linearizable reads, then open loop writes at 25%, 50% and 75% of the measured saturation.
With --vs etcd the same phases then run against a 3-member etcd (tools/bench/etcd.py) with the
same processes and sessions through tools/bench/etcd_load.py (puts of new keys with 256-byte
values; linearizable ranges of keys already put), never both systems at once. With --py-spy DIR
the primary's role processes are sampled (py-spy record -f raw) during metavsr's saturation
phase and the busiest functions per role are printed.

Everything it starts (replicas, etcd members, load workers, py-spy) it stops, also on an error,
Ctrl-C or SIGTERM. Never an assertion on speed: it prints a table and flat JSON figures.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass

from tools.bench import BenchError, local
from tools.bench.report import print_table
from tools.loadgen import coordinator, mix
from tools.loadgen.worker import WorkerConfig

HELP = "a local cluster at saturation and at 25/50/75% of it (--vs etcd: beside etcd)"
DURATION_DEFAULT_S = 10.0
WARMUP_DEFAULT_S = 2.0
DRAIN_S = 10.0
PROCESSES_DEFAULT = 2
CLIENTS_DEFAULT = 16  # 2 x 16 = 32 sessions, the figure etcd's own benchmarks quote
PY_SPY_RATE_HZ = 100
PY_SPY_TOP = 6


@dataclass(frozen=True)
class Phase:
    name: str  # JSON key part
    label: str
    metavsr_mix: str
    etcd_mix: dict[str, int]
    fraction: float | None  # of the writes saturation, open loop; None: closed loop


PHASES = (
    Phase("writes_saturation", "writes, closed loop", "writes", {"put": 1}, None),
    Phase("reads80_saturation", "80% reads, closed loop", "reads80", {"put": 20, "range": 80},
          None),
    Phase("writes_at_25pct", "writes at 25%", "writes", {"put": 1}, 0.25),
    Phase("writes_at_50pct", "writes at 50%", "writes", {"put": 1}, 0.50),
    Phase("writes_at_75pct", "writes at 75%", "writes", {"put": 1}, 0.75),
)
METAVSR_READS = ("get_stream", "get_topic")
FIGURES = ("target_ops_per_s", "ops_per_s", "reads_ops_per_s", "p50_ms", "p90_ms", "p99_ms",
           "p99_9_ms", "max_ms", "errors", "retries", "loadgen_cpu_pct")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--replicas", type=int, default=3, choices=(1, 3, 5))
    parser.add_argument("--journal", choices=("segmented", "ring"), default="segmented")
    parser.add_argument("--vs", choices=("etcd",), help="also run the phases against etcd")
    parser.add_argument("--duration", type=float, default=DURATION_DEFAULT_S, metavar="S",
                        help=f"measured seconds per phase (default {DURATION_DEFAULT_S:g})")
    parser.add_argument("--warmup", type=float, default=WARMUP_DEFAULT_S, metavar="S",
                        help=f"unmeasured seconds before each phase (default "
                             f"{WARMUP_DEFAULT_S:g})")
    parser.add_argument("--processes", type=int, default=PROCESSES_DEFAULT, metavar="P")
    parser.add_argument("--clients", type=int, default=CLIENTS_DEFAULT, metavar="C",
                        help="sessions per process")
    parser.add_argument("--dir", help="where the temp dir goes (default: the system's)")
    parser.add_argument("--py-spy", metavar="DIR", dest="py_spy",
                        help="profile the primary's roles during the writes saturation phase "
                             "into DIR/<role>.txt (py-spy record -f raw)")


def run(args: argparse.Namespace) -> dict[str, object]:
    from tools.bench import etcd

    if args.duration <= 0 or args.warmup < 0:
        raise BenchError("--duration must be positive and --warmup not negative")
    binary = None
    if args.vs == "etcd":
        try:
            binary = etcd.find_binary()
        except etcd.EtcdMissing as exc:
            raise BenchError(str(exc)) from None
    py_spy = _py_spy_binary() if args.py_spy else None
    previous = signal.signal(signal.SIGTERM, _interrupt)
    try:
        with local.work_dir("metavsr-bench-cluster-", args.dir) as tmp:
            results = {"metavsr": _metavsr(args, os.path.join(tmp, "metavsr"), py_spy)}
            if binary is not None:
                results["etcd"] = _etcd(args, binary, os.path.join(tmp, "etcd"))
    finally:
        signal.signal(signal.SIGTERM, previous)
    return _report(args, results)


def _interrupt(signum, frame):
    raise KeyboardInterrupt  # unwinds through every finally: what was started is stopped


# --- the two systems --------------------------------------------------------------------------

def _metavsr(args, directory: str, py_spy: str | None) -> dict:
    from tools.bench.replicas import MetavsrCluster

    cluster = MetavsrCluster(directory, args.replicas, args.journal)
    cluster.create()
    try:
        cluster.start()
        _say(f"metavsr: {args.replicas} replicas ({args.journal} journal) ready at "
             + ",".join(f"{h}:{p}" for h, p in cluster.addresses))
        login = cluster.login_body()

        def drive(phase: Phase, run_id: str, rate: float | None) -> dict:
            config = _config(args, tuple(cluster.addresses), login, mix.parse_mix(
                phase.metavsr_mix), run_id, rate)
            if phase.name != "writes_saturation":
                return _measure(config, None, mix.KINDS, METAVSR_READS)
            # At saturation: where the CPU goes, role by role (see _metered).
            primary = cluster.primary()
            pids = [cluster.role_pids(index) for index in range(args.replicas)]
            groups = {f"primary_{role}": [pids[primary][role]] for role in pids[primary]}
            groups.update({f"backups_{role}": [p[role] for i, p in enumerate(pids)
                                               if i != primary] for role in pids[primary]})
            groups["server"] = [pid for p in pids for pid in p.values()]
            profile: list = []

            def started() -> None:
                if py_spy is not None:
                    _start_py_spy(py_spy, pids[primary], args, profile)

            try:
                return _metered(groups, started, lambda each_second: _measure(
                    config, None, mix.KINDS, METAVSR_READS, each_second))
            finally:
                _finish_py_spy(profile)

        return _phases("metavsr", drive)
    finally:
        cluster.stop()


def _etcd(args, binary: str, directory: str) -> dict:
    from tools.bench import etcd, etcd_load

    os.makedirs(directory)
    members = etcd.EtcdCluster(binary, directory)
    try:
        members.start()
        try:
            leader = members.wait_leader()
            version = members.version()
        except etcd.EtcdFailed as exc:
            raise BenchError(str(exc)) from None
        _say(f"etcd {version}: 3 members ready, leader {leader[0]}:{leader[1]}")

        def drive(phase: Phase, run_id: str, rate: float | None) -> dict:
            # Every session talks to the leader, as metavsr's follow its roster to the primary.
            config = _config(args, (leader,), b"", phase.etcd_mix, run_id, rate)

            def measure(each_second) -> dict:
                return _measure(config, etcd_load.main, etcd_load.KINDS, ("range",),
                                each_second)

            if phase.name != "writes_saturation":
                return measure(None)
            return _metered({"server": [p.pid for p in members.processes]}, None, measure)

        results = _phases("etcd", drive)
        results["version"] = version
        return results
    finally:
        members.stop()


def _metered(groups: dict[str, list[int]], started, measure) -> dict:
    """Run measure(each_second) and add the CPU the groups of processes (and the machine)
    used from the end of the first second of load (the sessions have logged in by then: their
    password hashing is not the load) to the end of the phase, as `<group>_cpu_pct`."""
    meter = local.CpuMeter(groups)

    def first_second(second) -> None:
        if not meter.began:
            meter.start()
            if started is not None:
                started()

    figures = measure(first_second)
    figures.update({f"{name}_cpu_pct": pct for name, pct in meter.stop().items()})
    return figures


def _phases(system: str, drive) -> dict:
    run_base = f"b{int(time.time()) % 1_000_000}"
    results: dict = {}
    for index, phase in enumerate(PHASES):
        rate = None
        if phase.fraction is not None:
            saturation = results["writes_saturation"]["ops_per_s"]
            if saturation <= 0:
                raise BenchError(f"{system}: no write completed at saturation; nothing to "
                                 "take a fraction of")
            rate = phase.fraction * saturation
        _say(f"{system}: {phase.label}"
             + (f" ({rate:,.0f} ops/s offered)" if rate else ""))
        results[phase.name] = drive(phase, f"{run_base}{index}", rate)
        results[phase.name]["target_ops_per_s"] = round(rate or 0.0, 1)
    return results


def _config(args, addresses, login_body: bytes, weights: dict[str, int], run_id: str,
            rate: float | None) -> WorkerConfig:
    return WorkerConfig(addresses=addresses, login_body=login_body, processes=args.processes,
                        clients=args.clients, mix=weights, seed=1, run=run_id, rate=rate,
                        duration_s=args.duration, ops=None, warmup_s=args.warmup,
                        stale_reads=False, history=None, drain_s=DRAIN_S)


def _measure(config: WorkerConfig, target, kinds, read_kinds, each_second=None) -> dict:
    show = sys.stderr.isatty()

    def progress(second) -> None:
        if each_second is not None:
            each_second(second)
        if show:
            _progress(second)

    began, began_cpu = time.monotonic(), _children_cpu_s()
    try:
        coordinator.check_bounds(config)
        outcome = coordinator.run(config, progress, target)
    except coordinator.RunFailed as exc:
        raise BenchError(f"the load generator failed: {exc}") from None
    # The workers have been joined: their whole CPU time (start and login included) is in
    # this process's children times now; the servers (never reaped before the end) are not.
    loadgen_cpu_pct = 100.0 * (_children_cpu_s() - began_cpu) / (time.monotonic() - began)
    if show:
        sys.stderr.write("\n")
    figures = outcome.totals.figures(kinds, outcome.elapsed_s)
    return {
        "loadgen_cpu_pct": round(loadgen_cpu_pct, 1),
        "ops_per_s": figures["ops_per_s"],
        "reads_ops_per_s": round(sum(figures.get(f"{k}_ops_per_s", 0.0) for k in read_kinds), 1),
        "p50_ms": figures["p50_ms"], "p90_ms": figures["p90_ms"], "p99_ms": figures["p99_ms"],
        "p99_9_ms": figures["p99_9_ms"], "max_ms": figures["max_ms"],
        "errors": figures["errors"], "retries": figures["retries"],
    }


def _children_cpu_s() -> float:
    times = os.times()
    return times.children_user + times.children_system


def _progress(second) -> None:
    sys.stderr.write(f"\r  {second.second + 1:>4d} s  {second.ops:>9,d} ops/s  "
                     f"p99 {second.histogram.percentile(99.0) / 1000.0:8.2f} ms  "
                     f"errors {second.errors:<8,d}")
    sys.stderr.flush()


def _say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


# --- py-spy ---------------------------------------------------------------------------------

def _py_spy_binary() -> str:
    beside = os.path.join(os.path.dirname(sys.executable), "py-spy")
    binary = beside if os.access(beside, os.X_OK) else shutil.which("py-spy")
    if binary is None:
        raise BenchError("--py-spy needs py-spy: pip install py-spy (in this venv)")
    return binary


def _start_py_spy(binary: str, roles: dict[str, int], args, started: list) -> None:
    """One `py-spy record` per role, appended to `started` as it starts (the caller stops
    whatever is in it, whatever happens)."""
    os.makedirs(args.py_spy, exist_ok=True)
    seconds = max(1, round(args.warmup + args.duration - 1))
    for role, pid in sorted(roles.items()):
        out = os.path.join(args.py_spy, f"{role}.txt")
        started.append((role, out, subprocess.Popen(
            [binary, "record", "--pid", str(pid), "--format", "raw", "--output", out,
             "--rate", str(PY_SPY_RATE_HZ), "--duration", str(seconds), "--nonblocking"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)))
    _say(f"py-spy: sampling the primary's roles for {seconds} s into {args.py_spy}")


def _finish_py_spy(started) -> None:
    if not started:
        return
    for _, _, process in started:
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            pass
    local.stop_all([process for _, _, process in started], 5.0)
    for role, path, _ in started:
        if os.path.exists(path):
            print_py_spy_summary(role, path)


def print_py_spy_summary(role: str, path: str) -> None:
    """The functions where a role spent its sampled time (self time: the innermost frame)."""
    leaves: Counter[str] = Counter()
    total = 0
    with open(path) as source:
        for line in source:
            stack, _, count = line.rstrip("\n").rpartition(" ")
            if not stack or not count.isdigit():
                continue
            leaf = stack.rsplit(";", 1)[-1]
            name, _, where = leaf.partition(" (")
            leaves[f"{name} ({where.split(':')[0].rsplit('/', 1)[-1]}"] += int(count)
            total += int(count)
    rows = [(leaf + ")", count, 100.0 * count / total) for leaf, count in
            leaves.most_common(PY_SPY_TOP)] if total else []
    print_table(("function (file)", "samples", "%"), rows,
                title=f"py-spy {role}: {total} samples at {PY_SPY_RATE_HZ} Hz (py-spy leaves out "
                      "those it judges idle)")
    print()


# --- output -------------------------------------------------------------------------------

def _report(args, results: dict) -> dict[str, object]:
    mine = results["metavsr"]
    theirs = results.get("etcd")
    figures: dict[str, object] = {
        "replicas": args.replicas, "journal": args.journal, "processes": args.processes,
        "clients_per_process": args.clients, "duration_per_phase_s": args.duration,
        "warmup_per_phase_s": args.warmup}
    for system, phases in results.items():
        for phase in PHASES:
            for figure in FIGURES:
                figures[f"{system}_{phase.name}_{figure}"] = phases[phase.name][figure]
    rows = []
    for phase in PHASES:
        m = mine[phase.name]
        row = [phase.label, m["target_ops_per_s"] or "-", m["ops_per_s"], m["p50_ms"],
               m["p99_ms"], m["p99_9_ms"], m["errors"]]
        if theirs is not None:
            e = theirs[phase.name]
            ops_ratio = m["ops_per_s"] / e["ops_per_s"] if e["ops_per_s"] else 0.0
            p99_ratio = e["p99_ms"] / m["p99_ms"] if m["p99_ms"] else 0.0
            figures[f"ratio_{phase.name}_ops_per_s"] = round(ops_ratio, 3)
            figures[f"ratio_{phase.name}_p99_etcd_over_metavsr"] = round(p99_ratio, 3)
            row += [e["target_ops_per_s"] or "-", e["ops_per_s"], e["p50_ms"], e["p99_ms"],
                    e["p99_9_ms"], e["errors"], f"{ops_ratio:.2f}x", f"{p99_ratio:.2f}x"]
        rows.append(row)
    headers = ["phase", "offered/s", "ops/s", "p50 ms", "p99 ms", "p99.9 ms", "errors"]
    title = (f"bench cluster: metavsr {args.replicas} replicas ({args.journal}), "
             f"{args.processes} x {args.clients} sessions, {args.duration:g} s per phase")
    if theirs is not None:
        figures["etcd_version"] = theirs["version"]
        headers = (["phase"] + [f"mvsr {h}" for h in headers[1:]]
                   + [f"etcd {h}" for h in headers[1:]] + ["ops/s x", "p99 x"])
        title += f", beside etcd {theirs['version']} (3 members, fsync on)"
    print()
    print_table(headers, rows, title=title)
    for system, phases in results.items():
        saturation = phases["writes_saturation"]
        figures.update({f"{system}_writes_saturation_{key}": value
                        for key, value in saturation.items() if key.endswith("_cpu_pct")})
        figures[f"{system}_writes_saturation_server_cpu_ms_per_op"] = round(
            10.0 * saturation["server_cpu_pct"] / max(saturation["ops_per_s"], 1e-9), 3)
    cpu = {key: value for key, value in mine["writes_saturation"].items()
           if key.endswith("_cpu_pct")}
    roles = sorted((key[len("primary_"):-len("_cpu_pct")] for key in cpu
                    if key.startswith("primary_")),
                   key=lambda role: -cpu[f"primary_{role}_cpu_pct"])
    print()
    print_table(("role", "primary", "backups (sum)"),
                [(role, cpu[f"primary_{role}_cpu_pct"], cpu[f"backups_{role}_cpu_pct"])
                 for role in roles],
                title="metavsr CPU per role during the writes saturation, % of one core")
    print()
    for system, phases in results.items():
        saturation = phases["writes_saturation"]
        print(f"{system} at writes saturation: its servers used "
              f"{saturation['server_cpu_pct']:.0f}% of one core, "
              f"{figures[f'{system}_writes_saturation_server_cpu_ms_per_op']:.2f} ms of CPU per "
              f"write; the load generator {saturation['loadgen_cpu_pct']:.0f}% (over its whole "
              f"run); the machine ({os.cpu_count()} cores) was "
              f"{saturation['machine_cpu_pct']:.0f}% busy")
    saturation = mine["writes_saturation"]["ops_per_s"]
    reads = mine["reads80_saturation"]["reads_ops_per_s"]
    print(f"\nlinearizable reads in the 80% reads phase: {reads:,.0f}/s = "
          f"{reads / saturation if saturation else 0:.2f}x the writes saturation; "
          f"p99 at 50% of saturation: {mine['writes_at_50pct']['p99_ms']:.2f} ms")
    if theirs is not None:
        print("ops/s x = metavsr / etcd; p99 x = etcd p99 / metavsr p99 (above 1: metavsr's "
              "is lower); each system's 25/50/75% are of its own saturation")
    return figures
