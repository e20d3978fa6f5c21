"""The ring between real processes: ordered, complete delivery, backpressure, a dead consumer."""

from __future__ import annotations

import os
import random
import signal
import time
import zlib

import pytest

from shm.doorbell import SemaphoreDoorbell
from shm.naming import doorbell_name, ring_name
from shm.ring import Ring, RingConsumer, RingFullTimeout, RingProducer

from .conftest import FORK

RECORDS = 1_000_000
# Small against the traffic, so the run wraps thousands of times and often finds the ring full.
CAPACITY_BYTES = 1 << 16
SIZE_MAX_BYTES = 600
DEADLINE_S = 60.0


def _produce_random(ring_id: str, bell_id: str, seed: int, result) -> None:
    """Push RECORDS records of random sizes, singly and in random batches; send count and crc."""
    ring = Ring.attach(ring_id)
    producer = RingProducer(ring, SemaphoreDoorbell.attach(bell_id, poll_us=0), full_timeout_s=DEADLINE_S)
    rng = random.Random(seed)
    pool = rng.randbytes(SIZE_MAX_BYTES * 4)
    # Half small (as most frames are), half anywhere up to the bound.
    sizes = [rng.choice((rng.randrange(0, 64), rng.randrange(0, SIZE_MAX_BYTES + 1))) for _ in range(4096)]
    crc = sent = 0
    while sent < RECORDS:
        count = min(rng.choice((1, 1, 7, 64, 200)), RECORDS - sent)
        batch = []
        for i in range(sent, sent + count):
            size = sizes[i % 4096]
            start = (i * 7919) % (len(pool) - size)
            batch.append(pool[start:start + size])
        for record in batch:
            crc = zlib.crc32(record, zlib.crc32(len(record).to_bytes(4, "little"), crc))
        if count == 1:
            producer.push(batch[0])
        else:
            producer.push_batch(batch)
        sent += count
    result.send((sent, crc))


def test_million_random_sized_records_arrive_complete_and_in_order(cluster_id):
    ring_id, bell_id = ring_name(cluster_id, 0, "data"), doorbell_name(cluster_id, 0, "consumer")
    ring = Ring.create(ring_id, CAPACITY_BYTES, SIZE_MAX_BYTES)
    bell = SemaphoreDoorbell.create(bell_id, poll_us=20)
    consumer = RingConsumer(ring)
    bell.watch(consumer)
    result_recv, result_send = FORK.Pipe(duplex=False)
    child = FORK.Process(target=_produce_random, args=(ring_id, bell_id, 1234, result_send), daemon=True)
    child.start()
    deadline = time.monotonic() + DEADLINE_S
    crc = received = 0
    while received < RECORDS:
        assert time.monotonic() < deadline, f"only {received} records after {DEADLINE_S} s"
        records = consumer.pop(512)
        if not records:
            bell.wait(timeout_s=1.0)
            continue
        for record in records:
            crc = zlib.crc32(record, zlib.crc32(len(record).to_bytes(4, "little"), crc))
        received += len(records)
        del records, record
        consumer.release()
    assert result_recv.poll(DEADLINE_S)
    assert result_recv.recv() == (received, crc)
    assert not consumer.pending()
    assert ring.tail_word[0] > 1000 * CAPACITY_BYTES  # wrapped around a thousand times and more
    child.join(DEADLINE_S)
    assert child.exitcode == 0
    bell.close()
    ring.close()


def _consume_then_freeze(ring_id: str, ready) -> None:
    consumer = RingConsumer(Ring.attach(ring_id))
    deadline = time.monotonic() + DEADLINE_S
    while not consumer.pending():
        if time.monotonic() > deadline:
            return
    batch = consumer.pop(1)
    del batch
    consumer.release()
    ready.send("consumed one")
    time.sleep(DEADLINE_S)  # alive but never reading again, until killed


def test_producer_facing_a_killed_consumer_gets_a_timeout_not_a_hang(cluster_id):
    ring_id = ring_name(cluster_id, 0, "victim")
    ring = Ring.create(ring_id, 4096, 256)
    producer = RingProducer(ring, None, full_timeout_s=0.2)
    ready_recv, ready_send = FORK.Pipe(duplex=False)
    child = FORK.Process(target=_consume_then_freeze, args=(ring_id, ready_send), daemon=True)
    child.start()
    producer.push(b"first")
    assert ready_recv.poll(DEADLINE_S), "consumer never popped the first record"
    os.kill(child.pid, signal.SIGKILL)
    child.join(DEADLINE_S)
    assert child.exitcode == -signal.SIGKILL

    started = time.monotonic()
    with pytest.raises(RingFullTimeout, match="is the consumer alive"):
        for _ in range(4096):
            producer.push(bytes(100))
    waited_s = time.monotonic() - started
    assert 0.2 <= waited_s < 5.0
    ring.close()


def _drain_after_signal(ring_id: str, go, result) -> None:
    consumer = RingConsumer(Ring.attach(ring_id))
    assert go.poll(DEADLINE_S)
    go.recv()
    sizes = []
    deadline = time.monotonic() + DEADLINE_S
    while len(sizes) < 100 and time.monotonic() < deadline:
        for record in consumer.pop(16):
            sizes.append(bytes(record))
        record = None
        consumer.release()
    result.send(sizes)


def test_full_ring_blocks_the_producer_until_the_consumer_frees_room(cluster_id):
    ring_id = ring_name(cluster_id, 0, "full")
    ring = Ring.create(ring_id, 4096, 1024)
    producer = RingProducer(ring, None, full_timeout_s=DEADLINE_S)
    go_recv, go_send = FORK.Pipe(duplex=False)
    result_recv, result_send = FORK.Pipe(duplex=False)
    child = FORK.Process(target=_drain_after_signal, args=(ring_id, go_recv, result_send), daemon=True)
    child.start()
    records = [i.to_bytes(2, "little") * 50 for i in range(100)]  # 100 x 100 B: 2.6x the ring
    pushed = 0
    while ring.used_bytes() + 104 <= 4096:
        producer.push(records[pushed])
        pushed += 1
    with pytest.raises(RingFullTimeout):
        producer.push(records[pushed], timeout_s=0.01)  # full: refused, not dropped
    go_send.send("drain")
    for record in records[pushed:]:
        producer.push(record)  # waits for room each time the ring fills
    assert result_recv.poll(DEADLINE_S)
    assert result_recv.recv() == records
    child.join(DEADLINE_S)
    ring.close()
