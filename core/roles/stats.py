"""Iggy's get_stats (code 10) for a replica: catalogue counts plus the replica's process figures.

Why here: the counts live in the owner's state machine and the process figures come from /proc
and the data dir, so the owner answers this read (domains/ must never do I/O). The figures are
the replica's: its supervisor process and every role process forked under it. Message-plane
figures (messages, segments, message bytes, cache metrics) are zero: metavsr keeps none.

CPU figures are averages, never a sample over an interval (a read must not wait): the replica's
CPU time over its run time, and the host's busy share since boot.
"""

from __future__ import annotations

import os
import platform
import socket
import time

from domains import permissions as P
from domains.errors import UNAUTHORIZED, DomainError
from domains.mux import MuxStateMachine
from net import iggy

_TICKS_PER_S = os.sysconf("SC_CLK_TCK")
_PAGE_BYTES = os.sysconf("SC_PAGE_SIZE")
_PROCESSES_MAX = 64  # a replica is a supervisor and five roles; bounds the /proc walk


def answer(request, mux: MuxStateMachine, user: int, data_dir: str, op: int) -> bytes:
    """The reply frame to a get_stats `request` of `user` (41 without read_servers)."""
    try:
        allowed = P.allowed(mux.users.acting(user), P.READ_SERVERS)
    except DomainError:
        allowed = False
    if not allowed:
        return iggy.reply_frame(request, status=UNAUTHORIZED, op=op)
    return iggy.reply_frame(request, body=iggy.stats_body(collect(mux, data_dir)), op=op)


def collect(mux: MuxStateMachine, data_dir: str, root_pid: int | None = None) -> iggy.Stats:
    """The figures now; `root_pid` is the replica's supervisor (the caller's parent)."""
    root = os.getppid() if root_pid is None else root_pid
    pids = _tree(root)
    stats = [s for s in map(_proc_stat, pids) if s is not None]  # a role may exit meanwhile
    now_s = time.time()
    root_stat = _proc_stat(root)
    start_s = _boot_time_s() + root_stat[3] / _TICKS_PER_S if root_stat else now_s
    run_s = max(now_s - start_s, 1e-6)
    cpu_s = sum(s[0] for s in stats) / _TICKS_PER_S
    read_bytes, written_bytes = 0, 0
    for pid in pids:
        read, written = _proc_io(pid)
        read_bytes += read
        written_bytes += written
    meminfo = _meminfo()
    disk = os.statvfs(data_dir or ".")
    counts = mux.counts()
    version = iggy.SERVER_VERSION
    major, minor, patch = (int(part) for part in version.split("."))
    return iggy.Stats(
        process_id=root, cpu_usage=100.0 * cpu_s / run_s, total_cpu_usage=_host_busy_percent(),
        memory_usage=sum(s[2] for s in stats) * _PAGE_BYTES,
        total_memory=meminfo.get("MemTotal", 0), available_memory=meminfo.get("MemAvailable", 0),
        run_time_us=int(run_s * 1e6), start_time_us=int(start_s * 1e6),
        read_bytes=read_bytes, written_bytes=written_bytes, messages_size_bytes=0,
        streams=counts["streams"], topics=counts["topics"], partitions=counts["partitions"],
        segments=0, messages=0, clients=counts["clients"],
        consumer_groups=counts["consumer_groups"],
        hostname=socket.gethostname(), os_name=platform.system(), os_version=_os_version(),
        kernel_version=platform.release(), server_version=version,
        server_semver=(major << 20) | (minor << 10) | patch,
        threads=sum(s[1] for s in stats), free_disk=disk.f_bavail * disk.f_frsize,
        total_disk=disk.f_blocks * disk.f_frsize)


def _tree(root: int) -> list[int]:
    """`root` and its descendants, breadth first, at most _PROCESSES_MAX."""
    pids, index = [root], 0
    while index < len(pids) and len(pids) < _PROCESSES_MAX:
        pid = pids[index]
        index += 1
        try:
            with open(f"/proc/{pid}/task/{pid}/children") as source:
                pids.extend(int(child) for child in source.read().split())
        except OSError:
            continue
    return pids[:_PROCESSES_MAX]


def _proc_stat(pid: int) -> tuple[int, int, int, int] | None:
    """(utime + stime ticks, threads, rss pages, start ticks after boot) or None if gone."""
    try:
        with open(f"/proc/{pid}/stat") as source:
            fields = source.read().rsplit(")", 1)[1].split()
    except OSError:
        return None
    # fields[0] is field 3 (state) of proc(5); field n is fields[n - 3].
    return (int(fields[11]) + int(fields[12]), int(fields[17]), int(fields[21]),
            int(fields[19]))


def _proc_io(pid: int) -> tuple[int, int]:
    try:
        with open(f"/proc/{pid}/io") as source:
            pairs = dict(line.split(":", 1) for line in source if ":" in line)
    except OSError:
        return 0, 0
    return int(pairs.get("read_bytes", 0)), int(pairs.get("write_bytes", 0))


def _meminfo() -> dict[str, int]:
    out = {}
    try:
        with open("/proc/meminfo") as source:
            for line in source:
                key, _, rest = line.partition(":")
                parts = rest.split()
                if parts:
                    out[key] = int(parts[0]) * (1024 if parts[1:] == ["kB"] else 1)
    except OSError:
        pass
    return out


def _boot_time_s() -> float:
    try:
        with open("/proc/stat") as source:
            for line in source:
                if line.startswith("btime "):
                    return float(line.split()[1])
    except OSError:
        pass
    return time.time() - time.monotonic()


def _host_busy_percent() -> float:
    try:
        with open("/proc/stat") as source:
            ticks = [int(v) for v in source.readline().split()[1:]]
    except (OSError, ValueError):
        return 0.0
    total = sum(ticks[:8])
    idle = ticks[3] + (ticks[4] if len(ticks) > 4 else 0)  # idle + iowait
    return 100.0 * (total - idle) / total if total else 0.0


def _os_version() -> str:
    try:
        with open("/etc/os-release") as source:
            for line in source:
                if line.startswith("VERSION_ID="):
                    return line.split("=", 1)[1].strip().strip('"')
    except OSError:
        pass
    return platform.version()
