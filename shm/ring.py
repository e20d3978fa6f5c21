"""Single-producer single-consumer ring of variable-length records in POSIX shared memory.

Layout of a ring segment (native little-endian, x86-64):

    [0, 8)        tail_bytes: bytes ever published; written only by the producer
    [64, 72)      head_bytes: bytes ever released; written only by the consumer
    [128, 160)    magic, layout version, capacity_bytes, record_size_max (set once by create)
    [HEADER_BYTES, HEADER_BYTES + capacity_bytes)   records

The counters sit on separate cache lines so the two sides do not invalidate each other's line
on every store. They only grow (2**64 bytes at 10 GB/s is 58 years); a position is
counter & (capacity_bytes - 1). A record is a u32 length, the payload, then padding up to
RECORD_ALIGN_BYTES. A record never straddles the end of the data area: when it does not fit
before the end, the producer writes WRAP_MARKER as the length there and the record starts at 0;
the skipped bytes count as used until the consumer passes them. That keeps every record one
contiguous memoryview for the consumer. record_size_max is bounded so that twice the largest
padded record fits in the ring, so a record always fits in an empty ring whatever the wrap.

Memory ordering (x86-64, TSO): the producer writes the payload first, then stores the new tail;
the consumer loads the tail, then reads the payload. x86 does not reorder a store with earlier
stores, nor a load with earlier loads, so a consumer that sees a tail sees every byte below it.
Likewise the consumer stores head only after it has read the records it releases, and the
producer loads head before overwriting, so nothing is overwritten while it is being read. Each
counter has exactly one writer and is stored as one aligned 8-byte word through a numpy uint64
view, so a reader never sees a torn value. (Not valid on weakly ordered CPUs such as ARM.)

Lifetime of popped records: pop() returns memoryviews into the ring itself (no copy). They stay
valid until release(), which hands their bytes back to the producer; a consumer must finish with
(or copy) every record before it calls release(), and drop them before closing the ring.

A full ring is backpressure, never a drop: push waits, up to a deadline, for the consumer to
release space, then raises RingFullTimeout. A consumer killed with -9 therefore shows up as a
timeout in its producer, not a hang.
"""

from __future__ import annotations

import bisect
import struct
import time
from collections.abc import Sequence

from core.check import check, check_range
from shm.segment import Segment

HEADER_BYTES = 4096
_TAIL_OFFSET = 0
_HEAD_OFFSET = 64
_INFO_OFFSET = 128
MAGIC = 0x676E6972_7273766D  # "mvsrring" read as a little-endian u64
LAYOUT_VERSION = 1
RECORD_ALIGN_BYTES = 8
_LENGTH = struct.Struct("<I")
LENGTH_BYTES = _LENGTH.size
WRAP_MARKER = 0xFFFF_FFFF
CAPACITY_MIN_BYTES = 4096
CAPACITY_MAX_BYTES = 1 << 32
# A full producer re-reads head with sleeps growing from the first value to the second; a full
# ring is the exceptional case, so no doorbell runs in that direction.
FULL_BACKOFF_MIN_S = 0.000_05
FULL_BACKOFF_MAX_S = 0.001


class RingFullTimeout(TimeoutError):
    """The consumer released no room for a record before the producer's deadline."""


def padded_size(payload_bytes: int) -> int:
    """Bytes one record of payload_bytes takes in the ring (length, payload, padding)."""
    return (payload_bytes + LENGTH_BYTES + RECORD_ALIGN_BYTES - 1) & -RECORD_ALIGN_BYTES


def record_size_max_for(capacity_bytes: int) -> int:
    """The largest record_size_max a ring of capacity_bytes accepts."""
    return capacity_bytes // 2 - LENGTH_BYTES


class Ring:
    """One ring segment mapped in this process. Make a RingProducer or RingConsumer on it."""

    def __init__(self, segment: Segment) -> None:
        self.segment = segment
        self.name = segment.name
        magic, version, capacity, size_max = segment.words(_INFO_OFFSET, 4).tolist()
        check(magic == MAGIC, f"ring {self.name}: bad magic {magic:#x}, not a ring segment")
        check(version == LAYOUT_VERSION, f"ring {self.name}: layout version {version}, want {LAYOUT_VERSION}")
        _check_geometry(self.name, capacity, size_max)
        check(segment.size_bytes >= HEADER_BYTES + capacity, f"ring {self.name}: segment too small")
        self.capacity_bytes = capacity
        self.record_size_max = size_max
        self.tail_word = segment.words(_TAIL_OFFSET, 1)
        self.head_word = segment.words(_HEAD_OFFSET, 1)
        self.data = segment.buffer(HEADER_BYTES, capacity)

    @classmethod
    def create(cls, name: str, capacity_bytes: int, record_size_max: int) -> Ring:
        """Create (exclusively) and initialise a ring; the creator unlinks it on close."""
        _check_geometry(name, capacity_bytes, record_size_max)
        segment = Segment.create(name, HEADER_BYTES + capacity_bytes)
        info = segment.words(_INFO_OFFSET, 4)
        info[0], info[1], info[2], info[3] = MAGIC, LAYOUT_VERSION, capacity_bytes, record_size_max
        return cls(segment)

    @classmethod
    def attach(cls, name: str) -> Ring:
        return cls(Segment.attach(name))

    def used_bytes(self) -> int:
        """Bytes published and not yet released (wrap padding included); for metrics and tests."""
        return self.tail_word[0] - self.head_word[0]

    def close(self) -> None:
        self.segment.close()


def _check_geometry(name: str, capacity_bytes: int, record_size_max: int) -> None:
    check_range(capacity_bytes, CAPACITY_MIN_BYTES, CAPACITY_MAX_BYTES, f"ring {name} capacity_bytes")
    check(capacity_bytes & (capacity_bytes - 1) == 0, f"ring {name}: capacity_bytes={capacity_bytes} not a power of two")
    check_range(record_size_max, 0, record_size_max_for(capacity_bytes), f"ring {name} record_size_max")


class RingProducer:
    """The one writer of a ring. `doorbell` is the consumer process's doorbell (or None)."""

    def __init__(self, ring: Ring, doorbell, full_timeout_s: float) -> None:
        check(full_timeout_s > 0, f"ring {ring.name}: full_timeout_s={full_timeout_s} must be positive")
        self.ring = ring
        self.full_timeout_s = full_timeout_s
        self._doorbell = doorbell
        self._data = ring.data
        self._tail_word = ring.tail_word
        self._head_word = ring.head_word
        self._capacity = ring.capacity_bytes
        self._mask = ring.capacity_bytes - 1
        self._size_max = ring.record_size_max
        self._tail = ring.tail_word[0]
        # Head only grows, so a stale copy under-reports free space: safe, and it saves a
        # shared-line read per push until the ring looks full.
        self._head_seen = ring.head_word[0]

    def push(self, record: bytes | bytearray | memoryview, timeout_s: float | None = None) -> None:
        """Publish one record and ring the doorbell if the consumer sleeps."""
        size = len(record)
        if size > self._size_max:
            check_range(size, 0, self._size_max, f"ring {self.ring.name} record_bytes")
        step = (size + 11) & -8  # padded_size(), inlined: this is the hot path
        tail = self._tail
        pos = tail & self._mask
        skip = self._capacity - pos
        if skip >= step:
            skip = 0
        if self._capacity - (tail - self._head_seen) < skip + step:
            timeout_s = self.full_timeout_s if timeout_s is None else timeout_s
            self._wait_for_space(skip + step, time.monotonic() + timeout_s, timeout_s)
        data = self._data
        if skip:
            _LENGTH.pack_into(data, pos, WRAP_MARKER)
            pos = 0
        _LENGTH.pack_into(data, pos, size)
        data[pos + 4:pos + 4 + size] = record
        self._tail = tail = tail + skip + step
        self._tail_word[0] = tail
        if self._doorbell is not None:
            self._doorbell.notify()

    def push_batch(self, records: Sequence[bytes], timeout_s: float | None = None) -> None:
        """Publish records in order; one slice assignment when they fit before the ring's end."""
        blob, ends = _frame(records, self._size_max, self.ring.name)
        total = len(blob)
        tail = self._tail
        pos = tail & self._mask
        if total <= self._capacity - pos and (
            total <= self._capacity - (tail - self._head_seen) or total <= self._refresh_free()
        ):
            self._data[pos:pos + total] = blob
            self._tail = tail = tail + total
            self._tail_word[0] = tail
            if self._doorbell is not None:
                self._doorbell.notify()
            return
        self._push_chunks(memoryview(blob), ends, timeout_s)

    def _push_chunks(self, blob: memoryview, ends: list[int], timeout_s: float | None) -> None:
        # Slow path: the batch wraps or exceeds the free space. Write the longest run of whole
        # records that fits both before the end and in free space, publish it, repeat.
        timeout_s = self.full_timeout_s if timeout_s is None else timeout_s
        deadline = time.monotonic() + timeout_s
        index, start = 0, 0
        while index < len(ends):
            pos = self._tail & self._mask
            to_end = self._capacity - pos
            free = self._refresh_free()
            stop = bisect.bisect_right(ends, start + min(to_end, free), lo=index)
            if stop > index:
                end = ends[stop - 1]
                self._data[pos:pos + end - start] = blob[start:end]
                self._publish(end - start)
                index, start = stop, end
            elif ends[index] - start <= to_end:
                self._wait_for_space(ends[index] - start, deadline, timeout_s)
            elif free >= to_end:
                _LENGTH.pack_into(self._data, pos, WRAP_MARKER)
                self._publish(to_end)
            else:
                self._wait_for_space(to_end, deadline, timeout_s)

    def _publish(self, size_bytes: int) -> None:
        self._tail += size_bytes
        self._tail_word[0] = self._tail
        if self._doorbell is not None:
            self._doorbell.notify()

    def _refresh_free(self) -> int:
        self._head_seen = self._head_word[0]
        return self._capacity - (self._tail - self._head_seen)

    def _wait_for_space(self, need_bytes: int, deadline: float, timeout_s: float) -> None:
        if self._refresh_free() >= need_bytes:
            return
        if self._doorbell is not None:
            self._doorbell.notify()  # a consumer asleep on a full ring would never drain it
        backoff_s = FULL_BACKOFF_MIN_S
        while self._refresh_free() < need_bytes:
            remaining_s = deadline - time.monotonic()
            if remaining_s <= 0:
                raise RingFullTimeout(
                    f"ring {self.ring.name}: no room for {need_bytes} bytes within {timeout_s:.3f} s "
                    f"(free {self._refresh_free()} of {self._capacity}); is the consumer alive?"
                )
            time.sleep(min(backoff_s, remaining_s))
            backoff_s = min(backoff_s * 2, FULL_BACKOFF_MAX_S)


def _frame(records: Sequence[bytes], size_max: int, ring_name: str) -> tuple[bytes, list[int]]:
    """The batch as ring bytes (length, payload, padding per record) and each record's end."""
    parts = []
    ends = []
    end = 0
    pack = _LENGTH.pack
    for record in records:
        size = len(record)
        if size > size_max:
            check_range(size, 0, size_max, f"ring {ring_name} record_bytes")
        step = (size + 11) & -8
        parts.append(pack(size))
        parts.append(record)
        parts.append(_PADDING[step - 4 - size])
        end += step
        ends.append(end)
    return b"".join(parts), ends


_PADDING = [bytes(n) for n in range(RECORD_ALIGN_BYTES)]


class RingConsumer:
    """The one reader of a ring: pop() views of records, then release() their bytes."""

    def __init__(self, ring: Ring) -> None:
        self.ring = ring
        self._data = ring.data
        self._tail_word = ring.tail_word
        self._head_word = ring.head_word
        self._capacity = ring.capacity_bytes
        self._mask = ring.capacity_bytes - 1
        self._size_max = ring.record_size_max
        self._read = ring.head_word[0]
        self._tail_seen = ring.tail_word[0]

    def pending(self) -> bool:
        """True when a record is published and not yet popped (reads the shared tail if needed)."""
        if self._read != self._tail_seen:
            return True
        self._tail_seen = self._tail_word[0]
        return self._read != self._tail_seen

    def pop(self, count_max: int) -> list[memoryview]:
        """Up to count_max records in order, as views valid until release().

        Fewer than count_max only when no more are published: the shared tail is re-read
        whenever the records known so far run out.
        """
        read = self._read
        tail = self._tail_seen
        tail_word = self._tail_word
        data = self._data
        mask = self._mask
        unpack = _LENGTH.unpack_from
        records = []
        append = records.append
        while count_max > 0:
            if read == tail:
                tail = tail_word[0]
                if read == tail:
                    break
            pos = read & mask
            size = unpack(data, pos)[0]
            if size == WRAP_MARKER:
                read += self._capacity - pos
                continue
            if size > self._size_max:
                check_range(size, 0, self._size_max, f"ring {self.ring.name} record_bytes read")
            append(data[pos + 4:pos + 4 + size])
            read += (size + 11) & -8
            count_max -= 1
        self._read = read
        self._tail_seen = tail
        return records

    def release(self) -> None:
        """Give the bytes of every popped record back to the producer; their views go stale."""
        self._head_word[0] = self._read
