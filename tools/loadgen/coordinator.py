"""Runs the load generator's worker processes and combines what they report.

Owns: starting P worker processes (the `multiprocess` package), the common start (every worker
logs its sessions in first; then one start time, START_DELAY_S ahead, is handed to all, so the
measurement begins with every session ready), collecting the per-second ticks into one time
series (calling `progress` as each second completes on every worker), merging the final figures
(metrics.Totals) and stopping every process it started. Must never open a socket or format
output: the workers measure, the command prints.
"""

from __future__ import annotations

import queue as queue_module
import time
from dataclasses import dataclass, field

import multiprocess

from tools.loadgen import worker
from tools.loadgen.histogram import Histogram
from tools.loadgen.history import join_parts
from tools.loadgen.metrics import Totals
from tools.loadgen.pacing import NS_PER_S, Window

START_DELAY_S = 0.2
POLL_S = 0.5
READY_TIMEOUT_S = worker.LOGIN_DEADLINE_S + 30.0
PROCESSES_MAX = 256
JOIN_TIMEOUT_S = 10.0


class RunFailed(Exception):
    """A worker could not run (its message says why); every process has been stopped."""


@dataclass
class Second:
    """One second of the run, merged over the workers."""

    second: int
    ops: int = 0
    errors: int = 0
    histogram: Histogram = field(default_factory=Histogram)
    reported: int = 0  # workers whose tick for this second arrived


@dataclass
class Outcome:
    totals: Totals
    window: Window
    series: list[Second]

    @property
    def elapsed_s(self) -> float:
        """The measured span: from the end of warm-up to the last measured completion."""
        return max(0, self.totals.last_complete_ns - self.window.measure_ns) / NS_PER_S


def check_bounds(config: worker.WorkerConfig) -> None:
    if not 1 <= config.processes <= PROCESSES_MAX:
        raise RunFailed(f"--processes {config.processes} outside 1..{PROCESSES_MAX}")
    if not 1 <= config.clients <= worker.SESSIONS_MAX:
        raise RunFailed(f"--clients {config.clients} outside 1..{worker.SESSIONS_MAX} "
                        "(sessions per process)")


def run(config: worker.WorkerConfig, progress=None, target=None) -> Outcome:
    """Run the workers. `target` is the worker process's main (default: worker.main, the Iggy
    protocol); another backend (tools/bench/etcd_load.py) passes its own with the same
    signature and messages, so pacing, measurement and merging stay the same for both."""
    check_bounds(config)
    target = target or worker.main
    context = multiprocess.get_context("fork")
    messages = context.Queue()
    go = context.Event()
    start = context.Value("q", 0)
    processes = [context.Process(target=target, args=(config, p, messages, go, start),
                                 name=f"loadgen-{p}", daemon=True)
                 for p in range(config.processes)]
    for process in processes:
        process.start()
    try:
        _wait_ready(messages, processes)
        start.value = time.monotonic_ns() + round(START_DELAY_S * NS_PER_S)
        go.set()
        outcome = _collect(messages, processes, config, start.value, progress)
    except BaseException:
        for process in processes:  # a failed or interrupted run stops at once
            process.kill()
        raise
    finally:
        for process in processes:
            process.join(timeout=JOIN_TIMEOUT_S)
            if process.is_alive():
                process.kill()
                process.join()
    if config.history:
        join_parts(config.history, config.processes)
    return outcome


def _next_message(messages, processes):
    try:
        return messages.get(timeout=POLL_S)
    except queue_module.Empty:
        dead = [p.name for p in processes if p.exitcode not in (None, 0)]
        if dead:
            raise RunFailed(f"worker processes died without a report: {', '.join(dead)}")
        return None


def _failed(message) -> None:
    if message is not None and message[0] == "failed":
        raise RunFailed(f"worker {message[1]}: {message[2]}")


def _wait_ready(messages, processes) -> None:
    ready = set()
    deadline = time.monotonic() + READY_TIMEOUT_S
    while len(ready) < len(processes):
        if time.monotonic() > deadline:
            raise RunFailed(f"workers not ready after {READY_TIMEOUT_S:.0f} s")
        message = _next_message(messages, processes)
        _failed(message)
        if message is not None and message[0] == "ready":
            ready.add(message[1])


def _collect(messages, processes, config, start_ns, progress) -> Outcome:
    window = Window.of(start_ns, config.warmup_s, config.duration_s)
    totals = Totals()
    seconds: dict[int, Second] = {}
    done = 0
    while done < len(processes):
        message = _next_message(messages, processes)
        _failed(message)
        if message is None:
            continue
        kind, _process, payload = message
        if kind == "tick":
            second = seconds.setdefault(payload.second, Second(payload.second))
            second.ops += payload.ops
            second.errors += payload.errors
            second.histogram.merge(Histogram.from_dict(payload.histogram))
            second.reported += 1
            if second.reported == len(processes) and progress is not None:
                progress(second)
        elif kind == "done":
            totals.add(payload)
            done += 1
    return Outcome(totals, window, [seconds[k] for k in sorted(seconds)])
