"""Doorbells across real processes: no lost wake-up under a sleep/wake storm, either kind."""

from __future__ import annotations

import os
import random
import selectors
import time

import pytest

from shm.doorbell import EventfdDoorbell, SemaphoreDoorbell
from shm.naming import doorbell_name, ring_name
from shm.ring import Ring, RingConsumer, RingProducer

from .conftest import FORK

BURSTS = 10_000
# A lost wake-up leaves the consumer asleep until its sleep times out; these are long enough
# that a single loss fails the test instead of slipping by as a slow burst.
SLEEP_TIMEOUT_S = 10.0
BURST_DEADLINE_S = 5.0
CAPACITY_BYTES = 1 << 16


def _echo_counts(names: tuple[str, str], bell_ids: tuple[str, str], kind: str, eventfd_bell) -> None:
    """Consumer: drain each burst, answer with the count, then sleep; report timed-out sleeps."""
    requests = RingConsumer(Ring.attach(names[0]))
    replies = RingProducer(Ring.attach(names[1]), SemaphoreDoorbell.attach(bell_ids[1], poll_us=0), 5.0)
    if kind == "eventfd":
        bell = eventfd_bell
        selector = selectors.DefaultSelector()
        selector.register(bell.fileno(), selectors.EVENT_READ)
    else:
        bell = SemaphoreDoorbell.attach(bell_ids[0], poll_us=0)
    bell.watch(requests)
    timeouts = 0
    while True:
        records = requests.pop(1000)
        if records:
            done = any(len(record) == 0 for record in records)
            count = len(records)
            del records
            requests.release()
            if done:
                replies.push(timeouts.to_bytes(8, "little"))
                replies.push(bell.sleeps.to_bytes(8, "little"))
                return
            replies.push(count.to_bytes(8, "little"))
            continue
        if kind == "eventfd":
            # The net process's way: announce, sleep in the selector, then woke().
            if bell.prepare_to_sleep():
                if not selector.select(SLEEP_TIMEOUT_S):
                    timeouts += 1
                bell.woke()
        elif not bell.wait(SLEEP_TIMEOUT_S):
            timeouts += 1


@pytest.mark.parametrize("kind", ["semaphore", "eventfd"])
def test_no_lost_wakeup_under_a_sleep_wake_storm(cluster_id, kind):
    names = (ring_name(cluster_id, 0, "requests"), ring_name(cluster_id, 0, "replies"))
    bell_ids = (doorbell_name(cluster_id, 0, "server"), doorbell_name(cluster_id, 0, "client"))
    rings = [Ring.create(name, CAPACITY_BYTES, 256) for name in names]
    if kind == "eventfd":
        server_bell = EventfdDoorbell.create(bell_ids[0], poll_us=0)
    else:
        server_bell = SemaphoreDoorbell.create(bell_ids[0], poll_us=0)
    # poll_us=0 on both sides: each sleeps as soon as its rings look empty, so nearly every burst
    # races a producer's publish against a consumer's announce-and-recheck.
    client_bell = SemaphoreDoorbell.create(bell_ids[1], poll_us=0)
    eventfd_bell = server_bell if kind == "eventfd" else None
    server = FORK.Process(target=_echo_counts, args=(names, bell_ids, kind, eventfd_bell), daemon=True)
    server.start()
    requests = RingProducer(rings[0], server_bell, full_timeout_s=5.0)
    replies = RingConsumer(rings[1])
    client_bell.watch(replies)
    rng = random.Random(7)

    def await_reply() -> int:
        deadline = time.monotonic() + BURST_DEADLINE_S
        while not replies.pending():
            assert time.monotonic() < deadline, "lost wake-up: no reply within the deadline"
            client_bell.wait(SLEEP_TIMEOUT_S)
        (record,) = replies.pop(1)
        value = int.from_bytes(record, "little")
        del record
        replies.release()
        return value

    for _ in range(BURSTS):
        count = rng.choice((1, 1, 2, 5, 30))
        if count > 2:
            requests.push_batch([b"x" * rng.randrange(1, 100) for _ in range(count)])
        else:
            for _ in range(count):
                requests.push(b"y")
        echoed = 0
        while echoed < count:  # the server may see a burst in several pieces
            echoed += await_reply()
        assert echoed == count
    requests.push(b"")
    assert await_reply() == 0, "the consumer timed out of a sleep: a wake-up was lost"
    assert await_reply() > BURSTS // 20, "the storm seldom put the server to sleep"
    server.join(BURST_DEADLINE_S)
    assert server.exitcode == 0
    assert client_bell.sleeps > BURSTS // 20, "the storm seldom put the client to sleep"
    for closable in (server_bell, client_bell, *rings):
        closable.close()


def _burst_until_drained(ring_id: str, bell_id: str, ring_index: int, records: int) -> None:
    """Push numbered records in bursts; before each burst, wait for the consumer to drain all."""
    ring = Ring.attach(ring_id)
    producer = RingProducer(ring, SemaphoreDoorbell.attach(bell_id, poll_us=0), full_timeout_s=5.0)
    rng = random.Random(ring_index)
    sent = 0
    while sent < records:
        deadline = time.monotonic() + BURST_DEADLINE_S
        while ring.used_bytes():
            if time.monotonic() > deadline:
                raise TimeoutError(f"ring {ring_index}: consumer stopped draining (lost wake-up?)")
            os.sched_yield()
        count = min(rng.choice((1, 2, 10)), records - sent)
        producer.push_batch([(ring_index << 32 | sent + i).to_bytes(8, "little") for i in range(count)])
        sent += count


def test_one_doorbell_wakes_its_process_for_two_rings_with_two_producers(cluster_id):
    records = 20_000
    names = [ring_name(cluster_id, 0, f"in{index}") for index in range(2)]
    bell_id = doorbell_name(cluster_id, 0, "owner")
    rings = [Ring.create(name, CAPACITY_BYTES, 64) for name in names]
    bell = SemaphoreDoorbell.create(bell_id, poll_us=0)
    consumers = [RingConsumer(ring) for ring in rings]
    for consumer in consumers:
        bell.watch(consumer)
    producers = [FORK.Process(target=_burst_until_drained, args=(names[i], bell_id, i, records), daemon=True)
                 for i in range(2)]
    for process in producers:
        process.start()
    expected = [0, 0]
    timed_out_sleeps = 0
    deadline = time.monotonic() + 60.0
    while expected != [records, records]:
        assert time.monotonic() < deadline, f"stalled at {expected}"
        popped = False
        for index, consumer in enumerate(consumers):
            for record in consumer.pop(64):
                assert int.from_bytes(record, "little") == index << 32 | expected[index]
                expected[index] += 1
                popped = True
            consumer.release()
        if not popped and not bell.wait(SLEEP_TIMEOUT_S):
            timed_out_sleeps += 1
    for process in producers:
        process.join(BURST_DEADLINE_S)
        assert process.exitcode == 0
    assert timed_out_sleeps == 0, "a sleep ran into its timeout: a wake-up was lost"
    assert bell.sleeps > records // 20, "the consumer seldom slept: the race was not exercised"
    bell.close()
    for ring in rings:
        ring.close()
