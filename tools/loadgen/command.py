"""`metavsr loadgen`: the command line of the multiprocess load generator.

Owns: the arguments and their checks, the live progress line and the final output (table,
--json, --plot). Where the cluster and the credentials come from is `metavsr ctl`'s policy,
reused as is (tools/ctl.py `addresses` and `login`): --cluster, else D/cluster.json; then
--token-file, --username or METAVSR_USERNAME with --password-file or METAVSR_PASSWORD, else
D/credentials (D = --dir, default .metavsr/cluster). Must never measure or talk to the cluster
itself (tools/loadgen/coordinator.py and worker.py do) nor print a secret.

Example, against a running local cluster, 4 processes x 32 sessions, writes only, 30 s:

    metavsr loadgen --processes 4 --clients 32 --duration 30 --mix writes --json out.json
"""

from __future__ import annotations

import argparse
import sys
import time

from net import iggy
from tools.cluster_files import DEFAULT_DIR

HELP = "drive a cluster with P processes x C sessions and report throughput and latency"

DURATION_DEFAULT_S = 10.0
DRAIN_DEFAULT_S = 10.0


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--cluster", metavar="ADDRS",
                        help="client addresses host:port,host:port... (default: D/cluster.json)")
    parser.add_argument("--dir", default=DEFAULT_DIR, metavar="D",
                        help=f"local cluster dir for the defaults (default: {DEFAULT_DIR})")
    parser.add_argument("--processes", type=int, default=1, metavar="P",
                        help="worker processes (default 1)")
    parser.add_argument("--clients", type=int, default=8, metavar="C",
                        help="client sessions per process (default 8)")
    stop = parser.add_mutually_exclusive_group()
    stop.add_argument("--duration", type=float, metavar="S",
                      help=f"measured seconds after warm-up (default {DURATION_DEFAULT_S:g})")
    stop.add_argument("--ops", type=int, metavar="N",
                      help="measured operations in all (instead of --duration)")
    parser.add_argument("--rate", type=float, metavar="R",
                        help="open loop: total intended ops/s over all sessions "
                             "(default: closed loop)")
    parser.add_argument("--mix", default="default",
                        help="kind=weight,... or a preset: default, writes, reads80")
    parser.add_argument("--read-consistency", choices=("linearizable", "stale"),
                        default="linearizable")
    parser.add_argument("--warmup", type=float, default=0.0, metavar="S",
                        help="seconds run before measuring (default 0)")
    parser.add_argument("--drain", type=float, default=DRAIN_DEFAULT_S, metavar="S",
                        help="seconds allowed after the end for operations already due "
                             f"(default {DRAIN_DEFAULT_S:g})")
    parser.add_argument("--seed", type=int, default=1, help="workload seed (default 1)")
    parser.add_argument("--run-id", metavar="ID",
                        help="prefix of created names (default: derived from the time)")
    parser.add_argument("--json", metavar="FILE", help="write the figures as flat JSON")
    parser.add_argument("--history", metavar="FILE",
                        help="write one JSON line per operation (tools/loadgen/history.py)")
    parser.add_argument("--plot", metavar="FILE.png", help="plot ops/s and p99 per second")
    parser.add_argument("--progress", action="store_true",
                        help="show the live progress line even when stderr is not a terminal")
    parser.add_argument("--username", help="log in as this user (default: METAVSR_USERNAME "
                                           "or D/credentials)")
    parser.add_argument("--password-file", metavar="F",
                        help="file whose first line is the password (default: METAVSR_PASSWORD)")
    parser.add_argument("--token-file", metavar="F",
                        help="log in with the personal access token in F")


class UsageError(Exception):
    pass


class _Credentials:
    """Stands in for a client in `ctl.login`: keeps the Register body it would log in with."""

    body = b""

    def login(self, username: str, password: str) -> None:
        self.body = iggy.login_body(username, password)

    def login_with_token(self, token: str) -> None:
        self.body = iggy.token_login_body(token)


def run(args: argparse.Namespace) -> int:
    from tools.cluster_files import ClusterFilesError
    from tools.loadgen import coordinator, mix

    try:
        config = _config(args, mix)
        coordinator.check_bounds(config)
    except (UsageError, mix.MixError, ClusterFilesError, iggy.ProtocolError,
            coordinator.RunFailed) as exc:
        print(f"metavsr loadgen: {exc}", file=sys.stderr)
        return 2
    show = args.progress or sys.stderr.isatty()
    try:
        outcome = coordinator.run(config, _progress if show else None)
    except coordinator.RunFailed as exc:
        print(f"\nmetavsr loadgen: {exc}", file=sys.stderr)
        return 1
    if show:
        print(file=sys.stderr)
    _report(args, config, outcome)
    return 0


def _config(args, mix):
    from tools import ctl
    from tools.loadgen import worker

    if args.ops is not None and args.ops < 1:
        raise UsageError("--ops must be at least 1")
    duration = None if args.ops is not None else (args.duration or DURATION_DEFAULT_S)
    if duration is not None and duration <= 0:
        raise UsageError("--duration must be positive")
    if args.rate is not None and args.rate <= 0:
        raise UsageError("--rate must be positive")
    if args.warmup < 0 or args.drain < 0:
        raise UsageError("--warmup and --drain cannot be negative")
    credentials = _Credentials()
    ctl.login(credentials, args)
    return worker.WorkerConfig(
        addresses=tuple(ctl.addresses(args)), login_body=credentials.body,
        processes=args.processes, clients=args.clients, mix=mix.parse_mix(args.mix),
        seed=args.seed, run=args.run_id or _run_id(), rate=args.rate, duration_s=duration,
        ops=args.ops, warmup_s=args.warmup, stale_reads=args.read_consistency == "stale",
        history=args.history, drain_s=args.drain)


def _run_id() -> str:
    # Base-36 seconds since the epoch: short, and different for runs started a second or more
    # apart (names within a run are unique by their process/session/counter parts).
    value, digits = int(time.time()), ""
    while value:
        value, rest = divmod(value, 36)
        digits = "0123456789abcdefghijklmnopqrstuvwxyz"[rest] + digits
    return digits


def _progress(second) -> None:
    p99 = second.histogram.percentile(99.0) / 1000.0
    sys.stderr.write(f"\r  {second.second + 1:>4d} s  {second.ops:>9,d} ops/s  "
                     f"p99 {p99:8.2f} ms  errors {second.errors:<8,d}")
    sys.stderr.flush()


def _report(args, config, outcome) -> None:
    from tools.bench.report import print_table, write_json
    from tools.loadgen import mix, plot

    totals, elapsed = outcome.totals, outcome.elapsed_s
    loop = f"open loop at {config.rate:g} ops/s" if config.rate else "closed loop"
    print_table(["kind", "ops", "ops/s", "errors", "p50 ms", "p90 ms", "p99 ms", "p99.9 ms",
                 "max ms"], totals.rows(mix.KINDS, elapsed),
                title=f"loadgen: {config.processes} x {config.clients} sessions, {loop}, "
                      f"{elapsed:.2f} s measured, {totals.retries} retries"
                      + (f", {totals.not_sent} not sent" if totals.not_sent else ""))
    if totals.errors:
        print()
        print_table(["kind", "error", "count"],
                    [[kind, name, count] for (kind, name), count in sorted(totals.errors.items())],
                    title="errors")
    if args.json:
        figures = totals.figures(mix.KINDS, elapsed)
        figures.update(processes=config.processes, clients_per_process=config.clients,
                       target_ops_per_s=config.rate or 0.0, warmup_s=config.warmup_s)
        write_json(args.json, figures)
    if args.plot:
        plot.write(args.plot, [float(s.ops) for s in outcome.series],
                   [s.histogram.percentile(99.0) / 1000.0 for s in outcome.series])
