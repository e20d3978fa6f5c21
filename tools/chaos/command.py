"""`metavsr chaos`: the command line and the run: load + seeded faults, heal, converge, check.

Owns the sequence (start the cluster behind the proxy, run `metavsr loadgen --history` while
the nemesis schedule is played, heal every fault, wait for convergence with a deadline, stop
cleanly, then check) and the summary. The verdict passes only when: the history is
linearizable (tools/check.py), every acknowledged write is in the final state and the replicas'
digests agree at one op (verify.py), every replica converged and stopped cleanly, and no process
is left behind. A replica that exits when no fault asked for it is restarted (as systemd would)
and reported. Exit status 0 on pass, 1 on a failed check, 2 when the run could not be set up.
"""

from __future__ import annotations

import argparse
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter

import orjson

from net.client import ClientError
from net.operations import MetadataClient
from tools import check
from tools.chaos import nemesis, verify
from tools.chaos.cluster import ROOT, ChaosCluster

HELP = "run a local cluster under load and seeded faults, then check it (needs root)"
READY_TIMEOUT_S = 60.0
CONVERGE_TIMEOUT_S = 120.0
LOADGEN_DRAIN_S = 40.0  # past an op's 30 s deadline, so every op ends answered or unknown
TMPFS_BYTES = 256 << 20
POLL_S = 0.05
GONE_TIMEOUT_S = 10.0
DISK_FULL_GRACE_S = 3.0
MIX = ("create_stream=10,create_topic=12,create_consumer_group=5,join_consumer_group=4,"
       "leave_consumer_group=3,delete_stream=3,get_stream=30,get_topic=25,get_consumer_group=5,"
       "create_user=1,get_user=2")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--duration", type=float, default=60.0, metavar="S",
                        help="seconds of load under faults (default 60)")
    parser.add_argument("--faults", default=",".join(nemesis.FAULT_KINDS),
                        help="comma-separated subset of " + ",".join(nemesis.FAULT_KINDS))
    parser.add_argument("--seed", type=int, default=1, help="nemesis and workload seed")
    parser.add_argument("--dir", metavar="D",
                        help="run dir: cluster, logs, history, summary (default: a new temp dir)")
    parser.add_argument("--processes", type=int, default=1, help="loadgen processes (default 1)")
    parser.add_argument("--clients", type=int, default=8,
                        help="loadgen sessions per process (default 8)")
    parser.add_argument("--tmpfs-mb", type=int, default=TMPFS_BYTES >> 20, metavar="MB",
                        help="size of the disk-full replica's tmpfs data dir "
                             f"(default {TMPFS_BYTES >> 20})")
    parser.add_argument("--checkpoint-interval", type=int, metavar="OPS",
                        help="replicas' [replication] checkpoint_interval (default: theirs)")
    parser.add_argument("--json", metavar="FILE", help="write the summary as JSON")


def run(args: argparse.Namespace) -> int:
    kinds = tuple(k.strip() for k in args.faults.split(",") if k.strip())
    unknown = [k for k in kinds if k not in nemesis.FAULT_KINDS]
    if unknown or args.duration < 10:
        print(f"metavsr chaos: unknown faults {unknown}; known: {nemesis.FAULT_KINDS}"
              if unknown else "metavsr chaos: --duration must be at least 10 s", file=sys.stderr)
        return 2
    if os.geteuid() != 0:
        print("metavsr chaos: needs root (network namespaces, tmpfs)", file=sys.stderr)
        return 2
    directory = os.path.abspath(args.dir or tempfile.mkdtemp(prefix="metavsr-chaos-"))
    rng = random.Random(args.seed)
    disk_full_replica = rng.randrange(3) if "disk-full" in kinds else None
    try:
        cluster = ChaosCluster(os.path.join(directory, "cluster"), disk_full_replica,
                               args.tmpfs_mb << 20, args.checkpoint_interval)
    except Exception as exc:
        print(f"metavsr chaos: cannot set up: {exc}", file=sys.stderr)
        return 2
    # Ctrl-C or SIGTERM (even when started in the background, where SIGINT is ignored) unwinds
    # through the teardown below, so no replica, loadgen, namespace or mount is left.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, _interrupt)
    chaos = Run(cluster, args, kinds, directory)
    try:
        summary = chaos.execute()
    finally:
        chaos.stop_loadgen()
        cluster.close()
    _print(summary)
    if args.json:
        with open(args.json, "wb") as out:
            out.write(orjson.dumps(summary, option=orjson.OPT_INDENT_2))
    return 0 if summary["passed"] else 1


class Run:
    def __init__(self, cluster: ChaosCluster, args, kinds: tuple[str, ...], directory: str):
        self.cluster, self.args, self.kinds, self.directory = cluster, args, kinds, directory
        self.history = os.path.join(directory, "history.jsonl")
        self.faults_done: list[dict] = []
        self.unexpected_exits: list[dict] = []
        self.down: set[int] = set()  # replicas a fault keeps down: not restarted until healed
        self.t0 = 0.0
        self.problems: list[str] = []
        self.loadgen: subprocess.Popen | None = None
        self.disk_grace: tuple | None = None  # (replica, until, fault record) after a disk-full

    def execute(self) -> dict:
        cluster = self.cluster
        for index in range(3):
            cluster.start(index)
        self._wait_ready()
        end_quiet = min(15.0, self.args.duration * 0.2)
        plan = nemesis.schedule(self.args.seed, self.args.duration, self.kinds, 3,
                                cluster.disk_full_replica if cluster.disk_full_replica is not None
                                else 0, end_quiet)
        loadgen = self.loadgen = self._start_loadgen()
        self.t0 = time.monotonic()
        heal_at, healing = None, None
        pending = list(plan)
        while loadgen.poll() is None:
            now = time.monotonic() - self.t0
            if healing is None and pending and now >= pending[0].at_s:
                fault = pending.pop(0)
                healing = self._begin(fault, now)
                heal_at = now + fault.hold_s
            elif healing is not None and now >= heal_at:
                healing()
                healing = None
            self._watch(now)
            if cluster.proxy.failure is not None:
                raise RuntimeError(f"the proxy failed: {cluster.proxy.failure!r}")
            time.sleep(POLL_S)
        if healing is not None:
            healing()
        loadgen_rc = loadgen.returncode
        if loadgen_rc != 0:
            self.problems.append(f"loadgen exited with {loadgen_rc} (see loadgen.log)")
        self._heal_everything()
        converge_s = self._converge()
        codes = cluster.stop()
        if any(code != 0 for code in codes):
            self.problems.append(f"replicas did not stop cleanly: exit codes {codes}")
        leftovers = cluster.leftovers()
        if leftovers:
            self.problems.append(f"processes left behind: {leftovers}")
        return self._summary(converge_s, codes, leftovers)

    # --- phases ---------------------------------------------------------------------------

    def _client(self, addresses=None) -> MetadataClient:
        return MetadataClient(list(addresses or self.cluster.addresses), timeout_s=1.0,
                              deadline_s=30.0)

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + READY_TIMEOUT_S
        while True:
            client = self._client()
            try:
                client.login(*self.cluster.credentials)
                client.logout()
                return
            except (ClientError, OSError):
                if time.monotonic() > deadline:
                    raise RuntimeError("the cluster did not accept a login in time")
                time.sleep(0.2)
            finally:
                client.close()

    def _start_loadgen(self) -> subprocess.Popen:
        args = self.args
        command = [sys.executable, "-m", "tools.cli", "loadgen", "--dir", self.cluster.directory,
                   "--processes", str(args.processes), "--clients", str(args.clients),
                   "--duration", str(args.duration), "--drain", str(LOADGEN_DRAIN_S),
                   "--mix", MIX, "--seed", str(args.seed), "--history", self.history,
                   "--json", os.path.join(self.directory, "loadgen.json")]
        log = open(os.path.join(self.directory, "loadgen.log"), "wb")
        # Its own process group: an interrupted run stops its worker processes too.
        return subprocess.Popen(command, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, start_new_session=True)

    def stop_loadgen(self) -> None:
        if self.loadgen is not None and self.loadgen.poll() is None:
            os.killpg(self.loadgen.pid, signal.SIGKILL)
            self.loadgen.wait()

    def _begin(self, fault: nemesis.Fault, now: float):
        """Start a fault; returns what heals it."""
        cluster = self.cluster
        target = self._primary() if fault.target == "primary" else fault.target
        record = {"at_s": round(now, 2), "kind": fault.kind, "variant": fault.variant,
                  "replica": target, "plan": fault.describe()}
        self.faults_done.append(record)
        print(f"  {now:8.1f} s  {fault.kind}/{fault.variant} replica {target}: "
              f"{fault.describe()}", flush=True)
        if fault.kind == "kill":
            if not cluster.alive(target):
                record["skipped"] = "replica not running"
                return lambda: None
            self.down.add(target)
            if fault.variant == "replica":
                cluster.kill_group(target)
            else:
                pids = cluster.role_pids(target)
                if fault.variant == "supervisor" or not pids:
                    cluster.kill_pid(cluster.processes[target].pid)
                else:
                    pid = random.Random(f"{self.args.seed}:{now}").choice(sorted(pids))
                    record["role"] = pids[pid]
                    cluster.kill_pid(pid)
            return lambda: self._restart(target)
        if fault.kind == "pause":
            if not cluster.alive(target):
                record["skipped"] = "replica not running"
                return lambda: None
            if fault.variant == "replica":
                cluster.pause_group(target)
            else:
                pids = cluster.role_pids(target)
                if not pids:
                    record["skipped"] = "no roles yet"
                    return lambda: None
                pid = random.Random(f"{self.args.seed}:{now}").choice(sorted(pids))
                record["role"] = pids[pid]
                cluster.pause_pid(pid)
            return cluster.resume_all
        if fault.kind == "partition":
            links = _partition_links(fault, target)
            record["links"] = links
            cluster.proxy.set_mode(links, fault.mode)
            return lambda: cluster.proxy.set_mode(links, "up")
        if fault.kind == "disk-full":
            record["filled_bytes"] = cluster.fill_disk()
            self.down.add(target)  # it may fail-stop on ENOSPC: restarted only once healed

            def heal() -> None:
                cluster.free_disk()
                record["replica_exited"] = not cluster.alive(target)
                self._restart(target)
                # A write that failed just before the heal may stop the replica just after.
                self.disk_grace = (target, time.monotonic() + DISK_FULL_GRACE_S, record)
            return heal
        raise ValueError(fault.kind)

    def _restart(self, index: int) -> None:
        self.down.discard(index)
        cluster = self.cluster
        if not cluster.alive(index):
            left = cluster.wait_gone(index, GONE_TIMEOUT_S)
            if left:
                self.problems.append(f"replica {index}'s processes {left} outlived it by "
                                     f"{GONE_TIMEOUT_S:.0f} s")
                for pid in left:
                    cluster.kill_pid(pid)
                cluster.wait_gone(index, GONE_TIMEOUT_S)
            cluster.start(index)

    def _watch(self, now: float) -> None:
        """Restart a replica that exited without a fault asking for it, and report it."""
        for index in range(3):
            if index in self.down or self.cluster.alive(index):
                continue
            grace = self.disk_grace
            if grace is not None and grace[0] == index and time.monotonic() < grace[1]:
                grace[2]["replica_exited"] = True  # the disk-full fault's doing
                self.disk_grace = None
                self._restart(index)
                continue
            code = self.cluster.exit_code(index)
            self.cluster.wait_gone(index, GONE_TIMEOUT_S)
            active = self.faults_done[-1]["plan"] if self.faults_done else ""
            self.unexpected_exits.append({"replica": index, "at_s": round(now, 2),
                                          "exit_code": code, "during": active})
            print(f"  {now:8.1f} s  replica {index} exited with {code} unasked "
                  f"(during {active}); restarting", flush=True)
            self.cluster.start(index)

    def _primary(self) -> int:
        """The primary of the newest normal view any replica logged (0 before any)."""
        best = (-1, 0)
        for index in range(3):
            with open(self.cluster.log_path(index), "rb") as log:
                for line in log:
                    if line.startswith(b"{") and b'"view_status"' in line \
                            and b'"normal":true' in line:
                        entry = orjson.loads(line)
                        best = max(best, (entry["view"], entry["primary"]))
        return best[1]

    def _heal_everything(self) -> None:
        cluster = self.cluster
        cluster.proxy.heal_all()
        cluster.resume_all()
        cluster.free_disk()
        for index in range(3):
            self._restart(index)

    def _converge(self) -> float | None:
        """Seconds until a marker write is applied by every replica; None past the deadline."""
        started = time.monotonic()
        deadline = started + CONVERGE_TIMEOUT_S
        marker = f"chaos-marker-{self.args.seed}"
        client = self._client()
        try:
            while True:
                try:
                    client.login(*self.cluster.credentials)
                    client.create_stream(marker)
                    break
                except (ClientError, OSError) as exc:
                    if getattr(exc, "name", "") == "stream_name_already_exists":
                        break
                    if time.monotonic() > deadline:
                        self.problems.append(f"no marker write within {CONVERGE_TIMEOUT_S} s: "
                                             f"{exc}")
                        return None
                    time.sleep(0.2)
            for index, address in enumerate(self.cluster.addresses):
                replica = self._client([address])
                replica.session, replica.client_id, replica.user_id = (
                    client.session, client.client_id, client.user_id)
                try:
                    while True:
                        try:
                            if replica.get_stream(marker, stale=True) is not None:
                                break
                        except (ClientError, OSError):
                            pass  # not yet applied our Register, or still starting
                        if time.monotonic() > deadline:
                            self.problems.append(f"replica {index} never applied the marker "
                                                 f"within {CONVERGE_TIMEOUT_S} s")
                            return None
                        time.sleep(0.1)
                finally:
                    replica.close()
            client.logout()
        finally:
            client.close()
        return time.monotonic() - started

    # --- the verdict ----------------------------------------------------------------------

    def _summary(self, converge_s, codes, leftovers) -> dict:
        ops, skipped = check.read_history(self.history) if os.path.exists(self.history) \
            else ([], 0)
        lin = check.check_ops(ops, skipped)
        data_dirs = [replica["data_dir"] for replica in self.cluster.replicas]
        verification = verify.verify(data_dirs, ops)
        statuses = Counter("ok" if op.status == "ok" else "unknown" if op.status in
                           check.UNKNOWN_OUTCOME else "error" for op in ops)
        gap_s, gap_at = _longest_unavailability(ops)
        views, events = _scan_logs(self.cluster)
        problems = list(self.problems)
        safety = list(verification.problems)
        if not lin.ok:
            safety.append(f"history not linearizable at key {lin.first_key}")
        if not ops:
            safety.append("the history is empty")
        liveness = problems + verification.behind
        if self.unexpected_exits:
            first = self.unexpected_exits[0]
            liveness.append(f"{len(self.unexpected_exits)} replica exits no fault asked for "
                            f"(first: replica {first['replica']} with {first['exit_code']} at "
                            f"{first['at_s']} s; see its log)")
        return {
            "passed": not safety and not liveness, "safe": not safety,
            "problems": safety + liveness, "safety_problems": safety,
            "liveness_problems": liveness, "seed": self.args.seed,
            "duration_s": self.args.duration, "faults_requested": list(self.kinds),
            "dir": self.directory,
            "ops": len(ops) + skipped, "ops_ok": statuses["ok"], "ops_error": statuses["error"],
            "ops_unknown": statuses["unknown"],
            "faults_injected": dict(Counter(f["kind"] for f in self.faults_done
                                            if "skipped" not in f)),
            "fault_variants": dict(Counter(f"{f['kind']}/{f['variant']}" for f in
                                           self.faults_done if "skipped" not in f)),
            "faults_skipped": sum(1 for f in self.faults_done if "skipped" in f),
            "faults": self.faults_done, "unexpected_exits": self.unexpected_exits,
            "view_changes": max(0, len(views) - 1), "final_view": max(views, default=0),
            "log_events": events,
            "longest_unavailability_s": round(gap_s, 3),
            "longest_unavailability_at_s": round(gap_at, 3),
            "converge_s": None if converge_s is None else round(converge_s, 2),
            "stop_exit_codes": codes, "leftover_processes": leftovers,
            "namespaces": self.cluster.namespaces,
            "linearizable": lin.ok, "linearizability": lin.as_dict(),
            "verified_op": verification.op, "digests_compared": len(verification.digests),
            "digests_equal": len(set(verification.digests)) == 1,
            "acked_writes_checked": verification.acked_checked,
            "acked_writes_checked_at_op": verification.acked_op,
        }


def _interrupt(*_) -> None:
    raise KeyboardInterrupt


def _partition_links(fault: nemesis.Fault, target: int) -> list[str]:
    others = [r for r in range(3) if r != target]
    peers = [f"{target}->{o}" for o in others] + [f"{o}->{target}" for o in others]
    if fault.variant == "isolate":
        return peers + [f"client->{target}"]
    if fault.variant == "peers":
        return peers
    if fault.variant == "clients":
        return [f"client->{target}"]
    if fault.variant == "link":
        return [f"{target}->{fault.other}", f"{fault.other}->{target}"]
    return [f"{target}->{fault.other}"]  # one-way


def _longest_unavailability(ops) -> tuple[float, float]:
    """Longest time (s) with no definite answer, and when it began (s since the load began)."""
    ends = sorted(op.complete_tick for op in ops
                  if op.complete_tick is not None and op.status not in check.UNKNOWN_OUTCOME)
    if not ends:
        return 0.0, 0.0
    best, at, previous = 0, 0, min(op.invoke_tick for op in ops)
    for end in ends:
        if end - previous > best:
            best, at = end - previous, previous
        previous = end
    return best / 1e9, at / 1e9


# Replica log events a summary counts (the logs stay in the run dir for the rest).
COUNTED_EVENTS = ("state_transfer_started", "state_transfer_installed", "state_transfer_refused",
                  "state_transfer_serve_failed", "role_died", "role_heartbeat_stalled")


def _scan_logs(cluster: ChaosCluster) -> tuple[set[int], dict[str, int]]:
    """(views some replica was normal in, counts of COUNTED_EVENTS) over every replica log."""
    views: set[int] = set()
    counts: Counter = Counter()
    for index in range(3):
        with open(cluster.log_path(index), "rb") as log:
            for line in log:
                if not line.startswith(b"{"):
                    continue  # a traceback's lines, not a structured event
                if b'"view_status"' in line and b'"normal":true' in line:
                    views.add(orjson.loads(line)["view"])
                elif b"state_transfer" in line or b"role_" in line:
                    event = orjson.loads(line).get("event")
                    if event in COUNTED_EVENTS:
                        counts[event] += 1
    return views, dict(counts)


def _print(summary: dict) -> None:
    verdict = "PASSED" if summary["passed"] else "FAILED (safety held)" if summary["safe"] \
        else "FAILED"
    print(f"chaos {verdict}: seed {summary['seed']}, "
          f"{summary['duration_s']:g} s, run dir {summary['dir']}")
    print(f"  ops {summary['ops']} (ok {summary['ops_ok']}, errors {summary['ops_error']}, "
          f"unknown {summary['ops_unknown']})")
    print(f"  faults injected {summary['faults_injected']} "
          f"(skipped {summary['faults_skipped']}); variants {summary['fault_variants']}")
    print(f"  view changes {summary['view_changes']} (final view {summary['final_view']}); "
          f"longest unavailability {summary['longest_unavailability_s']} s at "
          f"{summary['longest_unavailability_at_s']} s; converged in {summary['converge_s']} s")
    print(f"  unexpected replica exits {len(summary['unexpected_exits'])}; linearizable "
          f"{summary['linearizable']}; digests equal at op {summary['verified_op']} "
          f"{summary['digests_equal']} ({summary['digests_compared']} of 3 replayed); "
          f"acknowledged writes checked {summary['acked_writes_checked']}; leftovers {summary['leftover_processes'] or 'none'}")
    print(f"  replica log events {summary['log_events']}")
    for problem in summary["safety_problems"]:
        print(f"  SAFETY: {problem}")
    for problem in summary["liveness_problems"]:
        print(f"  LIVENESS: {problem}")
    lin = summary["linearizability"]
    if lin["first_violation_window"]:
        print("\n".join(lin["first_violation_window"]))
