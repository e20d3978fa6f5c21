"""Random push/pop schedules against a model of the ring (in one process: the layout is the spec).

The model is the documented layout, re-derived here: an entry takes 4 + payload bytes rounded up
to 8; an entry that does not fit before the end of the data area skips to offset 0 and the
skipped bytes stay used until the consumer passes them; a batch is one entry holding
marshal.dumps(records), or, when that exceeds the entry bound, pieces cut greedily where the
size marshal could reach (5 bytes for the list and per record, plus the bytes) would exceed it.
It predicts exactly which pushes fit, what every pop returns, and the bytes in use after each step.
"""

from __future__ import annotations

import marshal
import random
from collections import deque

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from core.check import InvariantError
from shm.naming import ring_name
from shm.ring import Ring, RingConsumer, RingFullTimeout, RingProducer, record_size_max_for
from shm.segment import Segment

CAPACITY_BYTES = 4096
SIZE_MAX_BYTES = 300


def _padded(size: int) -> int:
    return (4 + size + 7) // 8 * 8


def _entries(batch: list[bytes]) -> list[tuple[int, int]]:
    """(payload bytes, records) of each entry push_batch makes of this batch."""
    if len(batch) == 1:
        return [(len(batch[0]), 1)]
    if len(marshal.dumps(batch)) <= record_size_max_for(CAPACITY_BYTES):
        return [(len(marshal.dumps(batch)), len(batch))]
    pieces, piece, estimate = [], [], 5
    for record in batch:
        if estimate + 5 + len(record) > record_size_max_for(CAPACITY_BYTES):
            pieces.append(piece)
            piece, estimate = [], 5
        piece.append(record)
        estimate += 5 + len(record)
    pieces.append(piece)
    return [entry for piece in pieces for entry in _entries(piece)]


def _place(tail: int, head: int, sizes: list[int]) -> int | None:
    """The tail after appending entries of these payload sizes, or None if they do not all fit."""
    for size in sizes:
        step = _padded(size)
        room_to_end = CAPACITY_BYTES - tail % CAPACITY_BYTES
        if room_to_end < step:
            tail += room_to_end
        tail += step
        if tail - head > CAPACITY_BYTES:
            return None
    return tail


sizes = st.integers(0, SIZE_MAX_BYTES)
operations = st.lists(
    st.one_of(
        st.tuples(st.just("push"), sizes),
        st.tuples(st.just("batch"), st.lists(sizes, min_size=1, max_size=24)),
        st.tuples(st.just("pop"), st.integers(1, 10)),
        st.tuples(st.just("release"), st.none()),
    ),
    max_size=120,
)


@settings(max_examples=300, deadline=None)
@given(operations)
def test_random_push_pop_schedules_match_the_model(schedule):
    ring = Ring.create(ring_name(random.getrandbits(64), 0, "model"), CAPACITY_BYTES, SIZE_MAX_BYTES)
    producer = RingProducer(ring, None, full_timeout_s=1.0)
    consumer = RingConsumer(ring)
    queued: deque[bytes] = deque()
    tail = head = read = 0
    popped_tails: deque[int] = deque()  # model tail after each queued record, to know `read`
    serial = 0

    def record(size: int) -> bytes:
        nonlocal serial
        serial += 1
        return (serial.to_bytes(4, "little") * (size // 4 + 1))[:size]

    try:
        for op, arg in schedule:
            if op in ("push", "batch"):
                batch = [record(size) for size in (arg if op == "batch" else [arg])]
                # The consumer passes a whole entry when it pops its first record.
                ends = []
                for payload_bytes, count in ([(arg, 1)] if op == "push" else _entries(batch)):
                    end = _place(ends[-1] if ends else tail, head, [payload_bytes])
                    if end is None:
                        break
                    ends += [end] * count
                if len(ends) < len(batch):
                    if op == "push":
                        with pytest.raises(RingFullTimeout):
                            producer.push(batch[0], timeout_s=0)
                    continue  # a batch that cannot fit is not pushed: partial batches time out
                if op == "push":
                    producer.push(batch[0])
                else:
                    producer.push_batch(batch)
                queued.extend(batch)
                popped_tails.extend(ends)
                tail = ends[-1]
            elif op == "pop":
                got = [bytes(view) for view in consumer.pop(arg)]
                want = [queued.popleft() for _ in range(min(arg, len(queued)))]
                assert got == want
                for _ in want:
                    read = popped_tails.popleft()
            else:
                consumer.release()
                head = read
            assert ring.used_bytes() == tail - head
            assert consumer.pending() == bool(queued)
    finally:
        ring.close()


def test_records_above_the_bound_are_refused_on_push(cluster_id):
    ring = Ring.create(ring_name(cluster_id, 0, "bound"), CAPACITY_BYTES, 100)
    producer = RingProducer(ring, None, full_timeout_s=1.0)
    producer.push(bytes(100))
    with pytest.raises(InvariantError, match="record_bytes=101 outside"):
        producer.push(bytes(101))
    with pytest.raises(InvariantError, match="record_bytes=101 outside"):
        producer.push_batch([b"ok", bytes(101)])
    assert ring.used_bytes() == _padded(100)  # the refused batch left nothing behind
    ring.close()


@pytest.mark.parametrize("capacity_bytes, size_max_bytes, message", [
    (3 * 4096, 100, "not a power of two"),
    (2048, 100, "capacity_bytes=2048 outside"),
    (4096, record_size_max_for(4096) + 1, "record_size_max=2045 outside"),
])
def test_ring_geometry_is_checked_at_creation(cluster_id, capacity_bytes, size_max_bytes, message):
    with pytest.raises(InvariantError, match=message):
        Ring.create(ring_name(cluster_id, 0, "geometry"), capacity_bytes, size_max_bytes)


def test_attaching_to_a_segment_that_is_not_a_ring_fails(cluster_id):
    name = ring_name(cluster_id, 0, "other")
    segment = Segment.create(name, 8192)
    with pytest.raises(InvariantError, match="bad magic"):
        Ring.attach(name)
    segment.close()


def test_a_batch_above_the_entry_bound_goes_in_pieces_and_pops_whole(cluster_id):
    ring = Ring.create(ring_name(cluster_id, 0, "pieces"), 1 << 16, 600)
    producer = RingProducer(ring, None, full_timeout_s=1.0)
    consumer = RingConsumer(ring)
    batch = [bytes([i]) * 600 for i in range(100)]  # ~60 KiB: two entries of at most 32 KiB
    producer.push_batch(batch)
    assert consumer.pop(1000) == batch
    consumer.release()
    assert ring.used_bytes() == 0
    ring.close()


def test_closing_while_a_popped_view_is_held_is_refused_then_works_once_dropped(cluster_id):
    ring = Ring.create(ring_name(cluster_id, 0, "lifetime"), CAPACITY_BYTES, SIZE_MAX_BYTES)
    RingProducer(ring, None, full_timeout_s=1.0).push(b"still in use")
    (view,) = RingConsumer(ring).pop(1)
    with pytest.raises(BufferError, match="still referenced"):
        ring.close()
    assert bytes(view) == b"still in use"
    del view
    ring.close()
