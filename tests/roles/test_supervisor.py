"""The supervisor with stand-in roles: readiness, watchdog, fail-stop and clean shutdown,
observed the way systemd observes them (a NOTIFY_SOCKET datagram socket owned by the test)."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time

from tests.roles.fake_roles import STOPPING_S

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _start(tmp_path, cluster_id: int, kinds: str, stall_s: float = 5.0):
    address = str(tmp_path / "notify.sock")
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    listener.bind(address)
    listener.settimeout(0.2)
    env = dict(os.environ, NOTIFY_SOCKET=address, WATCHDOG_USEC="200000")
    code = (f"from tests.roles.fake_roles import run_supervisor; "
            f"run_supervisor({cluster_id}, {kinds!r}, {stall_s})")
    process = subprocess.Popen([sys.executable, "-c", code], cwd=ROOT, env=env,
                               stderr=subprocess.PIPE)
    return process, listener


def _messages_until(listener, predicate, timeout_s=30.0) -> list[str]:
    seen: list[str] = []
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            seen.extend(listener.recv(4096).decode().split("\n"))
        except socket.timeout:
            continue
        if predicate(seen):
            return seen
    raise AssertionError(f"notifications seen before the deadline: {seen[-10:]}")


def _shm_names(cluster_id: int) -> list[str]:
    return [n for n in os.listdir("/dev/shm") if f"metavsr-{cluster_id}-" in n]


def test_ready_status_watchdog_then_stopping_on_sigterm(tmp_path):
    process, listener = _start(tmp_path, 9101, "ss")
    seen = _messages_until(listener, lambda s: s.count("WATCHDOG=1") >= 3)
    assert "READY=1" in seen
    assert seen.index("READY=1") < seen.index("WATCHDOG=1")
    assert any(m.startswith("STATUS=") for m in seen)
    assert _shm_names(9101)
    process.send_signal(signal.SIGTERM)
    seen += _messages_until(listener, lambda s: "STOPPING=1" in s)
    assert process.wait(timeout=20) == 0
    assert seen.index("STOPPING=1") > seen.index("READY=1")
    assert _shm_names(9101) == []
    stderr = process.stderr.read().decode()
    assert '"event":"role_start"' in stderr and '"cpus":[0]' in stderr
    # Roles stop one at a time in the reverse of their start order: r1 has exited (after
    # STOPPING_S) before r0 is told to stop.
    stopping = [json.loads(line) for line in stderr.splitlines()
                if '"event":"role_stopping"' in line]
    assert [event["role"] for event in stopping] == ["r1", "r0"]
    assert stopping[1]["ts"] - stopping[0]["ts"] >= STOPPING_S


def test_a_dying_role_fails_the_whole_replica(tmp_path):
    process, listener = _start(tmp_path, 9102, "sd")
    _messages_until(listener, lambda s: "READY=1" in s)
    assert process.wait(timeout=30) == 1
    assert _shm_names(9102) == []
    stderr = process.stderr.read().decode()
    assert '"event":"role_died"' in stderr and '"role_name":"r1"' in stderr


def test_a_hung_role_stops_the_watchdog_pings(tmp_path):
    process, listener = _start(tmp_path, 9103, "sh", stall_s=0.5)
    seen = _messages_until(listener, lambda s: "READY=1" in s)
    # After the stall bound, pings must stop while STATUS keeps coming.
    time_limit = time.monotonic() + 1.0
    while time.monotonic() < time_limit:
        try:
            seen.extend(listener.recv(4096).decode().split("\n"))
        except socket.timeout:
            pass
    later = _messages_until(listener, lambda s: s.count("STATUS=running") >= 5, timeout_s=10)
    assert "WATCHDOG=1" not in later
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=20) == 0


def test_roles_die_with_a_killed_supervisor(tmp_path):
    process, listener = _start(tmp_path, 9104, "ss")
    _messages_until(listener, lambda s: "READY=1" in s)
    children = subprocess.run(["pgrep", "-P", str(process.pid)], capture_output=True,
                              text=True).stdout.split()
    roles = [int(pid) for pid in children]
    assert len(roles) >= 2
    process.kill()
    process.wait(timeout=10)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        alive = [pid for pid in roles if os.path.exists(f"/proc/{pid}")
                 and open(f"/proc/{pid}/stat").read().split()[2] != "Z"]
        if not alive:
            break
        time.sleep(0.02)
    assert not alive, f"roles still alive after the supervisor's kill -9: {alive}"
    from shm import naming
    naming.remove_stale(9104, 0)
