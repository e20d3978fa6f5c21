"""The supervisor: the main process of a replica (the systemd main PID).

It owns the life of the role processes and nothing of their work:
- removes shared memory a crashed run left behind, creates the counters (and, through the
  `prepare` hook, the rings and doorbells the roles share);
- starts each role in its own process, which pins itself to its `[cpu]` CPUs, reads the
  affinity back and logs it. Roles are forked: the supervisor has started no thread by then,
  and fork is how the net role's eventfd doorbell reaches the roles that ring it;
- waits until every role reports ready and the replica has joined the current view (the
  `joined` check on the counters; a restarted replica is recovering until the primary brings
  it in), then tells systemd READY=1; STATUS= carries the `status` line meanwhile and after;
- watches, from the moment the roles are ready: a role that exits is fail-stop for the whole replica (stop the others, unlink the
  shared memory, exit non-zero; systemd restarts us and recovery starts from disk); WATCHDOG=1
  is sent only while every role's heartbeat counter moves, so a hung role stops the pings;
- serves Prometheus metrics on metrics_address (if set) from the counters, started once the
  roles are forked (no thread may exist at fork time);
- on SIGTERM/SIGINT: STOPPING=1, then stops the roles one by one in the reverse of their
  start order, each by its own stop flag and after the previous one exited (for `serve`:
  net first, so nothing new is taken; replication, so nothing new is decided; then the owner
  applies what it was handed, and the journal writes what it was handed, last). All of it
  within one bound, after which what is left is killed; unlinks, exits 0.
"""

from __future__ import annotations

import ctypes
import importlib
import os
import signal
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import multiprocess

from core import log
from core.check import check
from core.roles import metrics
from core.roles.gc_policy import GcPolicy
from core.roles.metrics_server import MetricsServer
from core.roles.sdnotify import Notifier, watchdog_interval_s
from shm import naming
from shm.counters import CounterTable

_PR_SET_PDEATHSIG = 1
# Counters every role block has; roles may add metrics after these.
ROLE_COUNTERS = ("ready", "heartbeat", "stop")
READY_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 10.0
WATCH_INTERVAL_S = 0.05
HEARTBEAT_STALL_S = 5.0  # default: a role whose heartbeat has not moved this long is hung


@dataclass(frozen=True)
class RoleSpec:
    """A role: its name and 'module:function' run in the child as function(context)."""
    name: str
    entry: str


@dataclass(frozen=True)
class RoleContext:
    """What a role process receives: enough to attach to everything by name."""
    role: str
    cluster_id: int
    replica: int
    roles: tuple[str, ...]
    counter_names: tuple[str, ...]
    cpus: tuple[int, ...]
    log_level: str
    settings: dict  # role-specific, picklable (config path, data dir, ...)

    def counters_name(self) -> str:
        return naming.ring_name(self.cluster_id, self.replica, "counters")

    def attach_counters(self) -> CounterTable:
        return CounterTable.attach(self.counters_name(), self.roles, self.counter_names)


def die_with_parent() -> None:
    """Ask the kernel to SIGKILL this process when its parent dies (even by kill -9).

    A role that outlives its supervisor would go on serving for a replica that is gone (and a
    role's helper child would go on working for a role that is gone).
    """
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_PDEATHSIG) failed")


def role_main(context: RoleContext, entry: str) -> None:
    """First code of every role process: parent-death signal, signals, pinning, logging,
    then the role's own function."""
    die_with_parent()
    if os.getppid() == 1:
        os._exit(1)  # the supervisor died before prctl took effect
    # Stopping is the supervisor's decision (the stop flag), not each role's on a signal.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    log.configure(context.log_level, role=context.role, replica=context.replica)
    if context.cpus:
        os.sched_setaffinity(0, context.cpus)
    affinity = sorted(os.sched_getaffinity(0))
    if context.cpus:
        check(affinity == sorted(context.cpus), f"affinity {affinity} != configured {context.cpus}")
    log.info("role_start", cpus=affinity)
    module_name, function_name = entry.split(":")
    function = getattr(importlib.import_module(module_name), function_name)
    function(context)


class RoleHandle:
    """A role's view of its own counters: ready, heartbeat, and the stop flag it must poll."""

    def __init__(self, context: RoleContext):
        self.counters = context.attach_counters()
        self._heartbeat = self.counters.slot(context.role, "heartbeat")
        self._stop = self.counters.slot(context.role, "stop")
        self._ready = self.counters.slot(context.role, "ready")
        self.gc = GcPolicy()

    def ready(self) -> None:
        self.gc.freeze()  # what the role loaded (the owner's catalogue) is long-lived
        self.counters.set_at(self._ready, 1)

    def beat(self) -> None:
        self.counters.set_at(self._heartbeat, self.counters.get_at(self._heartbeat) + 1)
        self.gc.tick()

    def stop_requested(self) -> bool:
        return self.counters.get_at(self._stop) != 0


class Supervisor:
    def __init__(self, *, cluster_id: int, replica: int, roles: Sequence[RoleSpec],
                 cpu: dict[str, tuple[int, ...]], log_level: str = "info",
                 settings: dict | None = None, extra_counters: Sequence[str] = (),
                 prepare: Callable[[], tuple[Callable[[], None], dict]] | None = None,
                 status: Callable[[CounterTable], str] | None = None,
                 joined: Callable[[CounterTable], bool] | None = None,
                 notifier: Notifier | None = None,
                 heartbeat_stall_s: float = HEARTBEAT_STALL_S, metrics_address: str = ""):
        check(len({r.name for r in roles}) == len(roles), "role names must be unique")
        check("supervisor" not in {r.name for r in roles}, "'supervisor' is reserved")
        self.cluster_id = cluster_id
        self.replica = replica
        self.roles = tuple(roles)
        self.cpu = cpu
        self.log_level = log_level
        self.settings = settings or {}
        self.counter_names = ROLE_COUNTERS + tuple(extra_counters)
        self.prepare = prepare
        self.status = status or (lambda counters: "running")
        self.joined = joined or (lambda counters: True)
        self.notifier = notifier or Notifier()
        self.heartbeat_stall_s = heartbeat_stall_s
        self.metrics_address = metrics_address
        self._metrics: MetricsServer | None = None
        self.block_names = ("supervisor",) + tuple(r.name for r in roles)
        self.processes: dict[str, multiprocess.Process] = {}
        self.counters: CounterTable | None = None
        self._cleanup_shared: Callable[[], None] | None = None
        self._stop_signal = False

    def run(self) -> int:
        """Run until a signal (exit 0) or a role failure (exit 1)."""
        log.configure(self.log_level, role="supervisor", replica=self.replica)
        if "supervisor" in self.cpu:
            os.sched_setaffinity(0, self.cpu["supervisor"])
        removed = naming.remove_stale(self.cluster_id, self.replica)
        if removed:
            log.warning("stale_shared_memory_removed", names=removed)
        self.counters = CounterTable.create(
            naming.ring_name(self.cluster_id, self.replica, "counters"),
            self.block_names, self.counter_names)
        previous = {sig: signal.signal(sig, self._on_signal) for sig in (signal.SIGTERM, signal.SIGINT)}
        try:
            if self.prepare is not None:
                self._cleanup_shared, extra_settings = self.prepare()
                self.settings = {**self.settings, **extra_settings}
            self._start_roles()
            if self.metrics_address:
                self._serve_metrics()
            if not self._wait_ready():
                return self._shutdown(failed=True)
            log.info("roles_ready", roles=list(self.processes))
            return self._watch()
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)

    # --- internals ----------------------------------------------------------------------

    def _on_signal(self, signum, frame) -> None:
        self._stop_signal = True

    def _start_roles(self) -> None:
        fork = multiprocess.get_context("fork")
        for spec in self.roles:
            context = RoleContext(
                role=spec.name, cluster_id=self.cluster_id, replica=self.replica,
                roles=self.block_names, counter_names=self.counter_names,
                cpus=tuple(self.cpu.get(spec.name, ())), log_level=self.log_level,
                settings=self.settings)
            process = fork.Process(target=role_main, args=(context, spec.entry),
                                    name=f"metavsr-{self.replica}-{spec.name}", daemon=False)
            process.start()
            self.processes[spec.name] = process
            log.info("role_spawned", role_name=spec.name, pid=process.pid)

    def _serve_metrics(self) -> None:
        try:
            server = MetricsServer(self.metrics_address,
                                   lambda: metrics.render(self.counters.snapshot()))
        except OSError as exc:
            # A replica without metrics still serves; the failed scrapes are what alerts.
            log.error("metrics_unavailable", address=self.metrics_address, error=str(exc))
            return
        server.start()
        self._metrics = server
        host, port = server.address
        log.info("metrics_serving", host=host, port=port)

    def _dead_role(self) -> str | None:
        for name, process in self.processes.items():
            if process.exitcode is not None:
                return name
        return None

    def _wait_ready(self) -> bool:
        deadline = time.monotonic() + READY_TIMEOUT_S
        while True:
            if all(self.counters.get(name, "ready") for name in self.processes):
                return True
            dead = self._dead_role()
            if dead is not None:
                log.error("role_died_before_ready", role_name=dead,
                          exitcode=self.processes[dead].exitcode)
                return False
            if self._stop_signal or time.monotonic() > deadline:
                log.error("roles_not_ready", waiting=[n for n in self.processes
                                                      if not self.counters.get(n, "ready")])
                return False
            time.sleep(WATCH_INTERVAL_S)

    def _watch(self) -> int:
        interval = watchdog_interval_s()
        last_beats = {name: self.counters.get(name, "heartbeat") for name in self.processes}
        last_moved = {name: time.monotonic() for name in self.processes}
        next_ping = time.monotonic()
        ready = False
        while not self._stop_signal:
            dead = self._dead_role()
            if dead is not None:
                log.error("role_died", role_name=dead, exitcode=self.processes[dead].exitcode)
                return self._shutdown(failed=True)
            if not ready and self.joined(self.counters):
                # No time bound here: joining needs a quorum of peers, which may take any
                # while; systemd's TimeoutStartSec is the bound of a start.
                ready = True
                self.notifier.ready(self.status(self.counters))
                log.info("replica_ready", roles=list(self.processes))
            now = time.monotonic()
            for name in self.processes:
                beat = self.counters.get(name, "heartbeat")
                if beat != last_beats[name]:
                    last_beats[name] = beat
                    last_moved[name] = now
            stalled = [n for n, t in last_moved.items() if now - t > self.heartbeat_stall_s]
            if now >= next_ping:
                if stalled:
                    log.warning("role_heartbeat_stalled", roles=stalled)
                elif ready:  # systemd's watchdog runs from READY=1 on
                    self.notifier.watchdog()
                status = self.status(self.counters)
                self.notifier.status(status if ready else f"joining the view: {status}")
                next_ping = now + (interval or 1.0)
            time.sleep(WATCH_INTERVAL_S)
        return self._shutdown(failed=False)

    def _shutdown(self, failed: bool) -> int:
        self.notifier.stopping()
        deadline = time.monotonic() + STOP_TIMEOUT_S
        # Reverse start order: a role stops after every role that feeds it, so what reached
        # its rings is all it will get and it can finish that before it exits.
        for name, process in reversed(self.processes.items()):
            if failed and process.exitcode is None:
                process.kill()  # fail-stop: no role may go on acting for a broken replica
            self.counters.set(name, "stop", 1)
            process.join(timeout=max(0.0, deadline - time.monotonic()))
            if process.exitcode is None:
                log.error("role_killed_after_stop_timeout", role_name=name)
                process.kill()
                process.join(timeout=5)
        clean = not failed and all(p.exitcode == 0 for p in self.processes.values())
        if self._metrics is not None:
            self._metrics.stop()  # before the counters it reads are unmapped
        if self._cleanup_shared is not None:
            self._cleanup_shared()
        self.counters.close()
        log.info("replica_stopped", clean=clean,
                 exitcodes={n: p.exitcode for n, p in self.processes.items()})
        self.notifier.close()
        return 0 if clean else 1
