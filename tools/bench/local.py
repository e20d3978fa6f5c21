"""Processes a benchmark starts on this machine: a work dir and stopping for sure.

Exists so every benchmark that starts servers (bench cluster, bench scale, the etcd members;
their ports come from tools/ports.py) stops what it started the same way: each server runs in
its own session (so its process group holds it and everything it forked), and stopping sends SIGTERM,
waits within a bound, then SIGKILLs the whole group, so nothing outlives the benchmark even if
a server hangs or the benchmark is interrupted.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import tempfile
import time

from tools.bench import BenchError


@contextlib.contextmanager
def work_dir(prefix: str, parent: str | None):
    """A fresh temp dir for servers' data and logs, removed at the end, except when a
    BenchError (a server that did not start or failed) ends the run: then it is kept, and the
    error says where, so the logs it names can be read."""
    path = tempfile.mkdtemp(prefix=prefix, dir=parent)
    try:
        yield path
    except BenchError as exc:
        raise BenchError(f"{exc} (kept {path} for its logs)") from None
    except BaseException:
        shutil.rmtree(path, ignore_errors=True)
        raise
    shutil.rmtree(path, ignore_errors=True)


def stop_all(processes: list[subprocess.Popen], timeout_s: float) -> None:
    """SIGTERM every running process, wait up to timeout_s in all, then SIGKILL each process
    group (each was started with start_new_session=True, so its group id is its pid)."""
    for process in processes:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + timeout_s
    for process in processes:
        try:
            process.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            pass
    for process in processes:
        try:
            os.killpg(process.pid, signal.SIGKILL)  # what it forked, or itself if it hung
        except (ProcessLookupError, PermissionError):
            pass
        process.wait()


def rss_bytes(pid: int | str = "self") -> int:
    """Resident memory of a process (default: this one), from /proc."""
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise BenchError(f"no VmRSS in /proc/{pid}/status")


def cpu_seconds(pid: int) -> float:
    """User + system CPU time the process has used so far (0.0 once it is gone)."""
    try:
        with open(f"/proc/{pid}/stat") as source:
            fields = source.read().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    # After the command name: state is field 3 of stat(5), utime and stime fields 14 and 15.
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def machine_busy_seconds() -> float:
    """CPU seconds all cores have spent not idle since boot (/proc/stat)."""
    with open("/proc/stat") as source:
        fields = [int(x) for x in source.readline().split()[1:]]
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
    return (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK")  # guest time is inside user


class CpuMeter:
    """CPU used by groups of processes, and by the machine, between start() and stop(), as
    percent of one core (a group using two full cores shows 200)."""

    def __init__(self, groups: dict[str, list[int]]):
        self.groups = groups
        self.began: dict[str, float] = {}

    def _now(self) -> dict[str, float]:
        now = {name: sum(cpu_seconds(pid) for pid in pids) for name, pids in self.groups.items()}
        now["machine"] = machine_busy_seconds()
        now["wall"] = time.monotonic()
        return now

    def start(self) -> None:
        self.began = self._now()

    def stop(self) -> dict[str, float]:
        assert self.began, "CpuMeter.stop before start"
        ended = self._now()
        wall = ended["wall"] - self.began["wall"]
        return {name: round(100.0 * (ended[name] - self.began[name]) / wall, 1)
                for name in ended if name != "wall"}
