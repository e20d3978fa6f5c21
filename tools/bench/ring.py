"""`metavsr bench ring`: the shared-memory ring against multiprocessing.Pipe and a socketpair.

Throughput: 200-byte records from one process to another, one record at a time and in batches of
64 (a batch is one push_batch, one pickled Pipe message, one marshalled socket message: each
transport's natural C-speed encoding of a list), every transport measured
in the same run between two real processes. Latency: ring round trips (ping-pong through two
rings and two doorbells) with the consumer polling for poll_us before it sleeps, and sleeping at
once, next to a Pipe round trip. Each figure is the median of --repeat runs.

Time is taken with perf_counter (CLOCK_MONOTONIC, one clock for every process on Linux): from
just before the producer's first send to the consumer's last receive. CPU time of both processes
per record is shown too: on cores shared with other work, records/s swings with the scheduler
while CPU per record hardly moves. The ring's CPU includes its consumer's polling.
"""

from __future__ import annotations

import argparse
import marshal
import multiprocessing
import os
import socket
import statistics
import time
from collections.abc import Callable

from shm.doorbell import SemaphoreDoorbell
from shm.naming import doorbell_name, remove_stale, ring_name
from shm.ring import Ring, RingConsumer, RingProducer
from tools.bench.report import print_table

HELP = "records/s and round-trip latency of the shm ring vs multiprocessing.Pipe and a socketpair"

RECORD_BYTES = 200
BATCH_RECORDS = 64
# 1 MiB fits in L2 (4 MiB here): copying batches into an 8 MiB ring measured 2.7x slower.
RING_CAPACITY_BYTES = 1 << 20
# Of the order of a frame bound; a batch within it skips the per-record size check.
RING_RECORD_SIZE_MAX = 64 << 10
POLL_US_DEFAULT = 50  # as the config's shm.poll_us default
# Generous: these deadlines only turn a wedged benchmark into an error instead of a hang.
FULL_TIMEOUT_S = 10.0
WAIT_TIMEOUT_S = 1.0
RESULT_TIMEOUT_S = 120.0
_FORK = multiprocessing.get_context("fork")
_CPUS = frozenset(os.sched_getaffinity(0))  # before run() pins this process


def _start(target: Callable, args: tuple) -> multiprocessing.Process:
    """Fork the other side of a measurement, on another CPU than this process when pinned.

    Pinned, the two sides always talk across cores, as pinned roles do (DESIGN section 9),
    instead of sometimes sharing one core when the scheduler pleases.
    """
    child = _FORK.Process(target=_on_other_cpu, args=(target, args), daemon=True)
    child.start()
    return child


def _on_other_cpu(target: Callable, args: tuple) -> None:
    inherited = os.sched_getaffinity(0)
    if len(inherited) == 1 and len(_CPUS) >= 2:  # the parent pinned itself: take another CPU
        os.sched_setaffinity(0, {min(_CPUS - inherited)})
    target(*args)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--records", type=int, default=1_000_000,
                        help="records per throughput run (default 1,000,000; ~20 s in all)")
    parser.add_argument("--roundtrips", type=int, default=20_000,
                        help="round trips per latency run (default 20,000)")
    parser.add_argument("--repeat", type=int, default=1, help="runs per figure; the median is shown")
    parser.add_argument("--poll-us", type=int, default=POLL_US_DEFAULT,
                        help=f"consumer poll budget before sleeping (default {POLL_US_DEFAULT})")
    parser.add_argument("--no-pin", action="store_true",
                        help="do not pin the two processes to two different CPUs")
    parser.add_argument("--smoke", action="store_true", help="tiny sizes, for CI: checks it runs")


def run(args: argparse.Namespace) -> dict[str, float]:
    records, roundtrips = (20_000, 500) if args.smoke else (args.records, args.roundtrips)
    if records < BATCH_RECORDS or roundtrips < 1 or args.repeat < 1:
        raise SystemExit("bench ring: --records >= 64, --roundtrips >= 1 and --repeat >= 1")
    records -= records % BATCH_RECORDS
    cluster_id = os.getpid()  # a cluster id of our own: concurrent runs never share names
    allowed_cpus = os.sched_getaffinity(0)
    if not args.no_pin and len(allowed_cpus) >= 2:
        os.sched_setaffinity(0, {min(allowed_cpus)})  # each child then takes another CPU
    remove_stale(cluster_id, 0)
    try:
        figures = _measure(cluster_id, records, roundtrips, args.repeat, args.poll_us)
    finally:
        remove_stale(cluster_id, 0)
        os.sched_setaffinity(0, allowed_cpus)
    _print(figures, records, args.poll_us)
    return figures


def _measure(cluster_id: int, records: int, roundtrips: int, repeat: int, poll_us: int) -> dict[str, float]:
    figures: dict[str, float] = {"record_bytes": RECORD_BYTES, "records": records,
                                 "ring_poll_budget_us": poll_us}
    for mode, batch in (("single", 1), ("batch64", BATCH_RECORDS)):
        for transport, rate in (("ring", lambda: _ring_rate(cluster_id, records, batch, poll_us)),
                                ("pipe", lambda: _pipe_rate(records, batch)),
                                ("socketpair", lambda: _socket_rate(records, batch))):
            runs = [rate() for _ in range(repeat)]
            figures[f"{transport}_{mode}_records_per_s"] = statistics.median(r for r, _ in runs)
            figures[f"{transport}_{mode}_cpu_ns_per_record"] = statistics.median(c for _, c in runs)
        # Both ratios read "> 1: the ring is better".
        figures[f"ring_vs_pipe_{mode}_speedup_ratio"] = (
            figures[f"ring_{mode}_records_per_s"] / figures[f"pipe_{mode}_records_per_s"])
        figures[f"ring_vs_pipe_{mode}_cpu_saving_ratio"] = (
            figures[f"pipe_{mode}_cpu_ns_per_record"] / figures[f"ring_{mode}_cpu_ns_per_record"])
    for label, budget_us in (("poll", poll_us), ("sleep", 0)):
        runs = [_ring_roundtrips_us(cluster_id, roundtrips, budget_us) for _ in range(repeat)]
        figures[f"ring_roundtrip_{label}_us_p50"] = statistics.median(_pct(r, 50) for r in runs)
        figures[f"ring_roundtrip_{label}_us_p99"] = statistics.median(_pct(r, 99) for r in runs)
    runs = [_pipe_roundtrips_us(roundtrips) for _ in range(repeat)]
    figures["pipe_roundtrip_us_p50"] = statistics.median(_pct(r, 50) for r in runs)
    figures["pipe_roundtrip_us_p99"] = statistics.median(_pct(r, 99) for r in runs)
    return figures


def _pct(samples_us: list[float], percent: int) -> float:
    ordered = sorted(samples_us)
    return ordered[min(len(ordered) - 1, len(ordered) * percent // 100)]


def _batches(records: int, batch: int) -> tuple[list[bytes], int]:
    return [bytes([i % 251]) * RECORD_BYTES for i in range(batch)], records // batch


def _timed(consumer: Callable, args: tuple, produce: Callable[[], None]) -> tuple[float, float]:
    """Run consumer(*args, result_conn) in a child and produce() here.

    Returns records/s (wall clock) and CPU ns per record, both processes together: on a machine
    shared with other work the first swings with the scheduler, the second hardly does.
    """
    result_recv, result_send = _FORK.Pipe(duplex=False)
    child = _start(consumer, (*args, result_send))
    try:
        if not result_recv.poll(RESULT_TIMEOUT_S):
            raise TimeoutError("bench ring: consumer never got ready")
        result_recv.recv()  # ready
        start, cpu_start = time.perf_counter(), time.process_time()
        produce()
        producer_cpu_s = time.process_time() - cpu_start
        if not result_recv.poll(RESULT_TIMEOUT_S):
            raise TimeoutError("bench ring: consumer never finished")
        end, consumer_cpu_s, received = result_recv.recv()
    finally:
        child.join(RESULT_TIMEOUT_S)
        if child.is_alive():
            child.kill()
    if not received:
        raise RuntimeError("bench ring: the consumer received the wrong bytes")
    return received / (end - start), (producer_cpu_s + consumer_cpu_s) * 1e9 / received


def _report_ready(result) -> float:
    result.send("ready")
    return time.process_time()


def _report_done(result, cpu_start_s: float, received: int, total_bytes: int) -> None:
    complete = total_bytes == received * RECORD_BYTES
    result.send((time.perf_counter(), time.process_time() - cpu_start_s, received if complete else 0))


# Ring.

def _ring_rate(cluster_id: int, records: int, batch: int, poll_us: int) -> tuple[float, float]:
    ring_id, bell_id = ring_name(cluster_id, 0, "bench"), doorbell_name(cluster_id, 0, "bench")
    ring = Ring.create(ring_id, RING_CAPACITY_BYTES, RING_RECORD_SIZE_MAX)
    bell = SemaphoreDoorbell.create(bell_id, poll_us)
    producer = RingProducer(ring, bell, FULL_TIMEOUT_S)
    payloads, rounds = _batches(records, batch)

    def produce() -> None:
        if batch == 1:
            push, record = producer.push, payloads[0]
            for _ in range(rounds):
                push(record)
        else:
            push_batch = producer.push_batch
            for _ in range(rounds):
                push_batch(payloads)

    try:
        return _timed(_ring_consume, (ring_id, bell_id, poll_us, rounds * batch), produce)
    finally:
        bell.close()
        ring.close()


def _ring_consume(ring_id: str, bell_id: str, poll_us: int, records: int, result) -> None:
    ring = Ring.attach(ring_id)
    bell = SemaphoreDoorbell.attach(bell_id, poll_us)
    consumer = RingConsumer(ring)
    bell.watch(consumer)
    cpu_start_s = _report_ready(result)
    received = total_bytes = 0
    pop, release, wait = consumer.pop, consumer.release, bell.wait
    while received < records:
        batch = pop(256)
        if not batch:
            wait(WAIT_TIMEOUT_S)
            continue
        total_bytes += sum(map(len, batch))
        received += len(batch)
        del batch
        release()
    _report_done(result, cpu_start_s, received, total_bytes)


def _ring_roundtrips_us(cluster_id: int, roundtrips: int, poll_us: int) -> list[float]:
    names = [ring_name(cluster_id, 0, side) for side in ("ping", "pong")]
    bells = [doorbell_name(cluster_id, 0, side) for side in ("client", "server")]
    rings = [Ring.create(name, RING_CAPACITY_BYTES, RING_RECORD_SIZE_MAX) for name in names]
    doorbells = [SemaphoreDoorbell.create(name, poll_us) for name in bells]
    client_bell, server_bell = doorbells
    to_server = RingProducer(rings[0], server_bell, FULL_TIMEOUT_S)
    from_server = RingConsumer(rings[1])
    client_bell.watch(from_server)
    server = _start(_ring_echo, (names, bells, poll_us))
    record = bytes(RECORD_BYTES)
    samples_us = []
    try:
        for _ in range(roundtrips):
            start_ns = time.perf_counter_ns()
            to_server.push(record)
            while not from_server.pop(1):
                if not client_bell.wait(WAIT_TIMEOUT_S) and not server.is_alive():
                    raise RuntimeError("bench ring: echo process died")
            from_server.release()
            samples_us.append((time.perf_counter_ns() - start_ns) / 1000)
        to_server.push(b"")  # the empty record tells the echo process to stop
        server.join(RESULT_TIMEOUT_S)
    finally:
        if server.is_alive():
            server.kill()
        for closable in (*doorbells, *rings):
            closable.close()
    return samples_us


def _ring_echo(names: list[str], bells: list[str], poll_us: int) -> None:
    rings = [Ring.attach(name) for name in names]
    client_bell, server_bell = (SemaphoreDoorbell.attach(name, poll_us) for name in bells)
    requests = RingConsumer(rings[0])
    replies = RingProducer(rings[1], client_bell, FULL_TIMEOUT_S)
    server_bell.watch(requests)
    while True:
        batch = requests.pop(1)
        if not batch:
            server_bell.wait(WAIT_TIMEOUT_S)
            continue
        if len(batch[0]) == 0:
            return
        replies.push(batch[0])
        del batch
        requests.release()


# multiprocessing.Pipe.

def _pipe_rate(records: int, batch: int) -> tuple[float, float]:
    receiver, sender = _FORK.Pipe(duplex=False)
    payloads, rounds = _batches(records, batch)

    def produce() -> None:
        if batch == 1:
            send, record = sender.send_bytes, payloads[0]
            for _ in range(rounds):
                send(record)
        else:
            send = sender.send
            for _ in range(rounds):
                send(payloads)

    try:
        return _timed(_pipe_consume, (receiver, rounds * batch, batch), produce)
    finally:
        sender.close()
        receiver.close()


def _pipe_consume(receiver, records: int, batch: int, result) -> None:
    cpu_start_s = _report_ready(result)
    received = total_bytes = 0
    while received < records:
        if batch == 1:
            total_bytes += len(receiver.recv_bytes())
            received += 1
        else:
            total_bytes += sum(map(len, receiver.recv()))
            received += batch
    _report_done(result, cpu_start_s, received, total_bytes)


def _pipe_roundtrips_us(roundtrips: int) -> list[float]:
    client, server_end = _FORK.Pipe()
    server = _start(_pipe_echo, (server_end,))
    record = bytes(RECORD_BYTES)
    samples_us = []
    try:
        for _ in range(roundtrips):
            start_ns = time.perf_counter_ns()
            client.send_bytes(record)
            client.recv_bytes()
            samples_us.append((time.perf_counter_ns() - start_ns) / 1000)
        client.send_bytes(b"")
        server.join(RESULT_TIMEOUT_S)
    finally:
        if server.is_alive():
            server.kill()
        client.close()
        server_end.close()
    return samples_us


def _pipe_echo(conn) -> None:
    while record := conn.recv_bytes():
        conn.send_bytes(record)


# Unix socketpair: SOCK_SEQPACKET keeps message boundaries, so a record, or a batch marshalled
# as the ring marshals it, is one send and one recv, as with the other transports.

def _socket_rate(records: int, batch: int) -> tuple[float, float]:
    sender, receiver = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    payloads, rounds = _batches(records, batch)
    message_bytes = len(marshal.dumps(payloads))

    def produce() -> None:
        send = sender.send
        if batch == 1:
            record = payloads[0]
            for _ in range(rounds):
                send(record)
        else:
            dumps = marshal.dumps
            for _ in range(rounds):
                send(dumps(payloads))

    try:
        return _timed(_socket_consume, (receiver, rounds * batch, batch, message_bytes), produce)
    finally:
        sender.close()
        receiver.close()


def _socket_consume(receiver: socket.socket, records: int, batch: int, message_bytes: int, result) -> None:
    cpu_start_s = _report_ready(result)
    received = total_bytes = 0
    recv = receiver.recv
    while received < records:
        if batch == 1:
            total_bytes += len(recv(RECORD_BYTES))
            received += 1
        else:
            total_bytes += sum(map(len, marshal.loads(recv(message_bytes))))
            received += batch
    _report_done(result, cpu_start_s, received, total_bytes)


def _print(figures: dict[str, float], records: int, poll_us: int) -> None:
    rows = []
    for mode in ("single", "batch64"):
        pipe = figures[f"pipe_{mode}_records_per_s"]
        pipe_cpu = figures[f"pipe_{mode}_cpu_ns_per_record"]
        for transport in ("ring", "pipe", "socketpair"):
            rate = figures[f"{transport}_{mode}_records_per_s"]
            cpu = figures[f"{transport}_{mode}_cpu_ns_per_record"]
            rows.append([transport, mode, rate, f"{rate / pipe:.2f}x", cpu, f"{pipe_cpu / cpu:.2f}x"])
    print_table(["transport", "mode", "records/s", "vs pipe", "cpu ns/record", "vs pipe"], rows,
                title=f"{records:,} records of {RECORD_BYTES} bytes, two processes "
                      "(cpu: both processes; 'vs pipe' > 1 is better)")
    print()
    rows = [
        [f"ring, poll {poll_us} us then sleep", figures["ring_roundtrip_poll_us_p50"], figures["ring_roundtrip_poll_us_p99"]],
        ["ring, sleep at once", figures["ring_roundtrip_sleep_us_p50"], figures["ring_roundtrip_sleep_us_p99"]],
        ["pipe", figures["pipe_roundtrip_us_p50"], figures["pipe_roundtrip_us_p99"]],
    ]
    print_table(["round trip", "p50 us", "p99 us"], rows, title="round-trip latency")
