"""What a benchmark starts on this machine ends with it: process groups and work dirs."""

from __future__ import annotations

import os
import socket
import subprocess
import time

import pytest

from tools.bench import BenchError, local
from tools.ports import free_ports


def live_members(group: int) -> list[int]:
    """Pids of the processes of a process group that are not zombies (a zombie has ended;
    whoever it was reparented to reaps it when it likes)."""
    members = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/stat") as source:
                fields = source.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == group and fields[0] != "Z":  # fields: state, ppid, pgrp, ...
            members.append(int(pid))
    return members


def test_stop_all_ends_a_server_that_ignores_sigterm_and_what_it_forked():
    # The shell ignores SIGTERM and its child sleeps on: only the group SIGKILL ends them.
    process = subprocess.Popen(["sh", "-c", "trap '' TERM; sleep 60 & sleep 60; wait"],
                               start_new_session=True)
    deadline = time.monotonic() + 10
    while len(live_members(process.pid)) < 3 and time.monotonic() < deadline:
        time.sleep(0.01)  # until the shell has forked both sleeps
    assert len(live_members(process.pid)) == 3
    local.stop_all([process], timeout_s=0.5)
    assert process.returncode == -9  # SIGTERM was ignored: it took the SIGKILL
    deadline = time.monotonic() + 10
    while live_members(process.pid) and time.monotonic() < deadline:
        time.sleep(0.01)  # SIGKILL is delivered asynchronously to the orphaned sleep
    assert live_members(process.pid) == []


def test_work_dir_is_removed_unless_a_bench_error_needs_its_logs(tmp_path):
    with local.work_dir("ok-", str(tmp_path)) as path:
        open(os.path.join(path, "log"), "w").close()
    assert os.listdir(tmp_path) == []
    with pytest.raises(KeyboardInterrupt), local.work_dir("interrupted-", str(tmp_path)):
        raise KeyboardInterrupt
    assert os.listdir(tmp_path) == []
    with pytest.raises(BenchError) as failed, local.work_dir("failed-", str(tmp_path)) as path:
        raise BenchError("the cluster did not start")
    assert os.listdir(tmp_path) == [os.path.basename(path)]
    assert f"kept {path}" in str(failed.value)


def test_free_ports_are_free_at_every_offset():
    base = free_ports([0, 1, 50, 51])
    for offset in (0, 1, 50, 51):
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", base + offset))


def test_the_cpu_meter_sees_a_busy_process_and_not_an_idle_one():
    busy = subprocess.Popen(["sh", "-c", "while :; do :; done"], start_new_session=True)
    idle = subprocess.Popen(["sleep", "60"], start_new_session=True)
    try:
        meter = local.CpuMeter({"busy": [busy.pid], "idle": [idle.pid]})
        meter.start()
        began = local.cpu_seconds(busy.pid)
        deadline = time.monotonic() + 20
        while local.cpu_seconds(busy.pid) < began + 0.05 and time.monotonic() < deadline:
            time.sleep(0.01)
        used = meter.stop()
    finally:
        local.stop_all([busy, idle], timeout_s=1.0)
    assert used["busy"] > 0.0 and used["idle"] == 0.0 and used["machine"] > 0.0
    assert local.cpu_seconds(busy.pid) == 0.0  # gone: counts nothing
