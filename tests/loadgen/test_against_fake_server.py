"""loadgen's numbers against a known source: a real TCP server with a fixed service time.

The fake server (fake_server.py) serves one request at a time, each taking SERVICE_S, so:
- closed loop, S sessions in all: the server is never idle, throughput = 1 / SERVICE_S and
  every request waits for the S - 1 others: latency = S x SERVICE_S;
- open loop below capacity (evenly spread sends): no queueing, latency = SERVICE_S;
- open loop at twice capacity: op i is intended at i / rate but completes at (i + 1) x
  SERVICE_S, so latency grows linearly to the run's length; a generator that measured
  from the actual send time (coordinated omission) would report about S x SERVICE_S instead.
Tolerances allow for a shared 2-core machine (wake-up delays of a millisecond or two, the odd
scheduling stall) and are far tighter than any of these mistakes.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import orjson
import pytest

REPO = Path(__file__).resolve().parents[2]
SERVICE_S = 0.005
PROCESSES, CLIENTS = 2, 4
SESSIONS = PROCESSES * CLIENTS


@pytest.fixture
def server(request):
    """Start fake_server.py with the given extra arguments; yields its address."""
    processes = []

    def start(*extra: str) -> str:
        process = subprocess.Popen(
            [sys.executable, str(Path(__file__).with_name("fake_server.py")),
             "--service-ms", str(SERVICE_S * 1000), *extra],
            stdout=subprocess.PIPE, text=True, cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)})
        processes.append(process)
        return f"127.0.0.1:{int(process.stdout.readline())}"

    yield start
    for process in processes:
        process.kill()
        process.wait()


def run_loadgen(address: str, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO), "METAVSR_USERNAME": "loadgen",
           "METAVSR_PASSWORD": "secret"}
    return subprocess.run(
        [sys.executable, "-m", "tools.cli", "loadgen", "--cluster", address,
         "--processes", str(PROCESSES), "--clients", str(CLIENTS), *args],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=60)


def loadgen(address: str, tmp_path: Path, *args: str) -> dict:
    out = tmp_path / "figures.json"
    done = run_loadgen(address, "--json", str(out), *args)
    assert done.returncode == 0, done.stderr
    print(done.stdout)
    return orjson.loads(out.read_bytes())


def within(value: float, low: float, high: float) -> bool:
    return low <= value <= high


def test_closed_loop_throughput_is_one_over_service_time_and_latency_sessions_times_it(
        server, tmp_path):
    history = tmp_path / "history.jsonl"
    figures = loadgen(server(), tmp_path, "--duration", "2", "--warmup", "0.5",
                      "--history", str(history))
    capacity = 1 / SERVICE_S
    queued_ms = SESSIONS * SERVICE_S * 1000
    assert figures["errors"] == 0 and figures["retries"] == 0
    assert within(figures["ops_per_s"], 0.85 * capacity, 1.02 * capacity), figures["ops_per_s"]
    assert within(figures["p50_ms"], 0.85 * queued_ms, 1.2 * queued_ms), figures["p50_ms"]
    assert within(figures["p99_ms"], 0.85 * queued_ms, 3 * queued_ms), figures["p99_ms"]
    assert figures["p50_ms"] <= figures["p90_ms"] <= figures["p99_ms"] <= figures["max_ms"]
    # Every operation (warm-up included) is one history line; the measured ones are counted.
    lines = [orjson.loads(line) for line in history.read_bytes().splitlines()]
    assert len(lines) >= figures["ops"]
    assert {(line["process"], line["session"]) for line in lines} == {
        (p, s) for p in range(PROCESSES) for s in range(CLIENTS)}
    assert all(line["status"] == "ok" and line["invoke_ns"] < line["complete_ns"] for line in lines)
    created = [line["key"] for line in lines if line["op"] == "create_stream"]
    assert len(created) == len(set(created)), "a stream name was created twice"


def test_open_loop_below_capacity_sees_the_bare_service_time(server, tmp_path):
    rate = 0.5 / SERVICE_S
    figures = loadgen(server(), tmp_path, "--duration", "2", "--rate", str(rate))
    service_ms = SERVICE_S * 1000
    assert figures["errors"] == 0 and figures["not_sent"] == 0
    assert within(figures["ops_per_s"], 0.9 * rate, 1.05 * rate), figures["ops_per_s"]
    assert within(figures["p50_ms"], 0.9 * service_ms, 2 * service_ms), figures["p50_ms"]
    assert figures["p99_ms"] < 6 * service_ms, figures["p99_ms"]


def test_open_loop_overload_counts_latency_from_the_intended_time(server, tmp_path):
    rate, duration = 2 / SERVICE_S, 1.5
    figures = loadgen(server(), tmp_path, "--duration", str(duration), "--rate", str(rate),
                      "--mix", "writes")
    # Op i waits i x (SERVICE_S - 1 / rate) + SERVICE_S, and i < rate x duration: latencies
    # spread evenly from SERVICE_S to the run's length (1.5 s), so p50 is about 750 ms.
    longest_ms = duration * 1000
    assert figures["errors"] == 0 and figures["not_sent"] == 0
    assert within(figures["ops_per_s"], 0.85 / SERVICE_S, 1.02 / SERVICE_S), figures["ops_per_s"]
    assert within(figures["p50_ms"], 0.4 * longest_ms, 0.6 * longest_ms), figures["p50_ms"]
    assert within(figures["max_ms"], 0.85 * longest_ms, 1.15 * longest_ms), figures["max_ms"]


def test_transient_answers_and_dropped_connections_are_retried_with_the_same_frame(
        server, tmp_path):
    figures = loadgen(server("--transient-every", "7", "--drop-every", "23"), tmp_path,
                      "--duration", "1.5")
    assert figures["errors"] == 0
    assert figures["retries"] >= figures["ops"] // 23, figures
    assert figures["ops"] > 0


def test_a_replica_that_stops_leading_sends_its_sessions_to_the_next_one(server, tmp_path):
    # A serves 200 requests (logins included), then answers 58 to everything; B always leads.
    first, second = server("--backup-after", "200"), server()
    history = tmp_path / "history.jsonl"
    figures = loadgen(f"{first},{second}", tmp_path, "--duration", "2",
                      "--history", str(history))
    assert figures["errors"] == 0
    assert figures["retries"] >= 1  # the sessions that were on A moved, re-sending their op
    lines = [orjson.loads(line) for line in history.read_bytes().splitlines()]
    assert all(line["status"] == "ok" for line in lines)
    # Every session kept going after A stopped: each has far more ops than A could serve.
    per_session = {}
    for line in lines:
        key = (line["process"], line["session"])
        per_session[key] = per_session.get(key, 0) + 1
    assert len(per_session) == SESSIONS and min(per_session.values()) > 200 / SESSIONS


def test_no_replica_listening_fails_fast_with_a_message():
    with socket.socket() as probe:  # a port nobody listens on once the probe is closed
        probe.bind(("127.0.0.1", 0))
        address = f"127.0.0.1:{probe.getsockname()[1]}"
    done = run_loadgen(address, "--duration", "1")
    assert done.returncode == 1
    assert "accepts connections" in done.stderr


def test_refused_credentials_fail_the_run_with_a_message(server):
    done = run_loadgen(server("--refuse-logins"), "--duration", "1")
    assert done.returncode == 1
    assert "check the credentials" in done.stderr
