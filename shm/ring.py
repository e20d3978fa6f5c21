"""Single-producer single-consumer ring of variable-length records in POSIX shared memory.

Layout of a ring segment (native little-endian, x86-64):

    [0, 8)        tail_bytes: bytes ever published; written only by the producer
    [64, 72)      head_bytes: bytes ever released; written only by the consumer
    [128, 160)    magic, layout version, capacity_bytes, record_size_max (set once by create)
    [HEADER_BYTES, HEADER_BYTES + capacity_bytes)   entries

The counters sit on separate cache lines so the two sides do not invalidate each other's line
on every store. They only grow (2**64 bytes at 10 GB/s is 58 years); a position is
counter & (capacity_bytes - 1).

An entry is a u32 word, a payload, then padding up to ENTRY_ALIGN_BYTES. The word is one of:
- a length < BATCH_FLAG: the payload is one record (push);
- BATCH_FLAG | length: the payload is marshal.dumps of a list of records (push_batch);
- WRAP_MARKER: the rest of the data area is unused, the next entry starts at offset 0.
An entry never straddles the end of the data area, so every payload is one contiguous slice and
a batch is copied into the ring with one slice assignment. Entries are bounded by half the
capacity, so an entry always fits in an empty ring whatever the wrap.

Why marshal for batches: per-record Python work (a length, a slice, a list append: ~250 ns on
each side) would cap a batch at ~3M records/s; marshal splits and joins a list of bytes in C
(~30 ns a record). Both ends of a ring are the same installed interpreter, so its version-bound
format is not a concern, and unlike pickle, loading it never runs code.

Memory ordering (x86-64, TSO): the producer writes the payload first, then stores the new tail;
the consumer loads the tail, then reads the payload. x86 does not reorder a store with earlier
stores, nor a load with earlier loads, so a consumer that sees a tail sees every byte below it.
Likewise the consumer stores head only after it has read the records it releases, and the
producer loads head before overwriting, so nothing is overwritten while it is being read. Each
counter has exactly one writer and is stored as one aligned 8-byte word through a numpy uint64
view, so a reader never sees a torn value. (Not valid on weakly ordered CPUs such as ARM.)

Lifetime of popped records: a record pushed alone is popped as a memoryview into the ring itself
(no copy), valid until release(), which hands its bytes back to the producer; a consumer must
finish with (or copy) such records before it calls release(), and drop them before closing the
ring. Records pushed in a batch are popped as bytes, copies that outlive release().

A full ring is backpressure, never a drop: push waits, up to a deadline, for the consumer to
release space, then raises RingFullTimeout. A consumer killed with -9 therefore shows up as a
timeout in its producer, not a hang.
"""

from __future__ import annotations

import marshal
import os
import struct
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING

from core.check import InvariantError, check, check_range
from shm.fence import new_fence
from shm.segment import Segment

if TYPE_CHECKING:
    from shm.doorbell import Doorbell  # doorbell.py imports this module

HEADER_BYTES = 4096
_TAIL_OFFSET = 0
_HEAD_OFFSET = 64
_INFO_OFFSET = 128
MAGIC = 0x676E6972_7273766D  # "mvsrring" read as a little-endian u64
LAYOUT_VERSION = 1
ENTRY_ALIGN_BYTES = 8
_WORD = struct.Struct("<I")
WORD_BYTES = _WORD.size
BATCH_FLAG = 0x8000_0000
WRAP_MARKER = 0xFFFF_FFFF
CAPACITY_MIN_BYTES = 4096
# Entry lengths must stay below BATCH_FLAG, and entries are bounded by half the capacity.
CAPACITY_MAX_BYTES = 1 << 31
# marshal spends at most a type byte and a u32 length on the list and on each bytes item.
_MARSHAL_LIST_BYTES = 5
_MARSHAL_ITEM_BYTES = 5
# A full producer first spins on head for FULL_SPIN_US: a live consumer releases a pop's worth
# within microseconds, and the shortest sleep Linux grants is ~60 us, long enough to let the
# consumer drain the ring and idle. Then it re-reads head with sleeps growing from the first
# value to the second. A full ring is the exceptional case, so no doorbell runs that way.
FULL_SPIN_US = 200
FULL_BACKOFF_MIN_S = 0.000_05
FULL_BACKOFF_MAX_S = 0.001


class RingFullTimeout(TimeoutError):
    """The consumer released no room for an entry before the producer's deadline."""


def padded_size(payload_bytes: int) -> int:
    """Bytes one entry of payload_bytes takes in the ring (word, payload, padding)."""
    return (payload_bytes + WORD_BYTES + ENTRY_ALIGN_BYTES - 1) & -ENTRY_ALIGN_BYTES


def record_size_max_for(capacity_bytes: int) -> int:
    """The largest record_size_max a ring accepts, and the bound on any entry, a batch included:
    twice its padded size fits in the ring."""
    return capacity_bytes // 2 - WORD_BYTES


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
        self.entry_size_max = record_size_max_for(capacity)
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

    def __init__(self, ring: Ring, doorbell: Doorbell | None, full_timeout_s: float) -> None:
        check(full_timeout_s > 0, f"ring {ring.name}: full_timeout_s={full_timeout_s} must be positive")
        self.ring = ring
        self.full_timeout_s = full_timeout_s
        self._doorbell = doorbell
        self._bell_flag = doorbell.flag_word if doorbell is not None else None
        self._fence_enter, self._fence_leave = new_fence()
        self._data = ring.data
        self._tail_word = ring.tail_word
        self._head_word = ring.head_word
        self._capacity = ring.capacity_bytes
        self._mask = ring.capacity_bytes - 1
        self._size_max = ring.record_size_max
        self._entry_size_max = ring.entry_size_max
        self._tail = ring.tail_word[0]
        # Head only grows, so a stale copy under-reports free space: safe, and it saves a
        # shared-line read per push until the ring looks full.
        self._head_seen = ring.head_word[0]
        self.full_waits = 0  # pushes that found the ring full (backpressure), for metrics

    def push(self, record: bytes | bytearray | memoryview, timeout_s: float | None = None) -> None:
        """Publish one record and ring the doorbell if the consumer sleeps."""
        # _put() and notify() written out: each call costs ~50 ns of a ~400 ns push.
        size = len(record)
        if size > self._size_max:
            check_range(size, 0, self._size_max, f"ring {self.ring.name} record_bytes")
        step = (size + 11) & -8  # padded_size()
        tail = self._tail
        pos = tail & self._mask
        skip = self._capacity - pos
        if skip >= step:
            skip = 0
        if self._capacity - (tail - self._head_seen) < skip + step:
            self._wait_for_space(skip + step, timeout_s)
        data = self._data
        if skip:
            _WORD.pack_into(data, pos, WRAP_MARKER)
            pos = 0
        _WORD.pack_into(data, pos, size)
        data[pos + 4:pos + 4 + size] = record
        self._tail = tail = tail + skip + step
        self._tail_word[0] = tail
        if self._bell_flag is not None:
            self._fence_enter()
            self._fence_leave()
            if self._bell_flag[0]:
                self._doorbell.wake_sleeper()

    def push_batch(self, records: Sequence[bytes], timeout_s: float | None = None) -> None:
        """Publish records in order as one batch entry, or several if they exceed the entry bound.

        Each piece waits up to timeout_s for room; a timeout leaves earlier pieces published.
        """
        if not records:
            return
        if len(records) == 1:
            self.push(records[0], timeout_s)
            return
        blob = marshal.dumps(records if type(records) in (list, tuple) else list(records))
        # A record is a slice of the blob, so a blob within the bound needs no per-record check.
        if len(blob) > self._size_max and max(map(len, records)) > self._size_max:
            check_range(max(map(len, records)), 0, self._size_max, f"ring {self.ring.name} record_bytes")
        if len(blob) <= self._entry_size_max:
            self._put(BATCH_FLAG | len(blob), blob, len(blob), timeout_s)
        else:
            self._push_pieces(records, timeout_s)

    def _push_pieces(self, records: Sequence[bytes], timeout_s: float | None) -> None:
        # Cut where marshal's size could pass the entry bound (a type byte and a u32 length per
        # item and for the list); each piece then fits in one entry.
        start, piece_bytes = 0, _MARSHAL_LIST_BYTES
        for index, record in enumerate(records):
            if piece_bytes + len(record) + _MARSHAL_ITEM_BYTES > self._entry_size_max:
                self.push_batch(records[start:index], timeout_s)
                start, piece_bytes = index, _MARSHAL_LIST_BYTES
            piece_bytes += len(record) + _MARSHAL_ITEM_BYTES
        self.push_batch(records[start:], timeout_s)

    def _put(self, word: int, payload, size: int, timeout_s: float | None) -> None:
        """Write one entry (word, payload) contiguously, wrapping first if needed, and publish."""
        step = padded_size(size)
        tail = self._tail
        pos = tail & self._mask
        skip = self._capacity - pos
        if skip >= step:
            skip = 0
        if self._capacity - (tail - self._head_seen) < skip + step:
            self._wait_for_space(skip + step, timeout_s)
        data = self._data
        if skip:
            _WORD.pack_into(data, pos, WRAP_MARKER)
            pos = 0
        _WORD.pack_into(data, pos, word)
        data[pos + 4:pos + 4 + size] = payload
        self._tail = tail = tail + skip + step
        self._tail_word[0] = tail
        if self._doorbell is not None:
            self._doorbell.notify()

    def _wait_for_space(self, need_bytes: int, timeout_s: float | None) -> None:
        self._head_seen = self._head_word[0]
        if self._capacity - (self._tail - self._head_seen) >= need_bytes:
            return
        self.full_waits += 1
        if self._doorbell is not None:
            self._doorbell.notify()  # a consumer asleep on a full ring would never drain it
        timeout_s = self.full_timeout_s if timeout_s is None else timeout_s
        deadline = time.monotonic() + timeout_s
        spin_end = min(deadline, time.monotonic() + FULL_SPIN_US / 1e6)
        while time.monotonic() < spin_end:
            self._head_seen = self._head_word[0]
            if self._capacity - (self._tail - self._head_seen) >= need_bytes:
                return
            os.sched_yield()  # if the consumer shares this core, let it run now
        backoff_s = FULL_BACKOFF_MIN_S
        while True:
            self._head_seen = self._head_word[0]
            free = self._capacity - (self._tail - self._head_seen)
            if free >= need_bytes:
                return
            remaining_s = deadline - time.monotonic()
            if remaining_s <= 0:
                raise RingFullTimeout(
                    f"ring {self.ring.name}: no room for {need_bytes} bytes within {timeout_s:.3f} s "
                    f"(free {free} of {self._capacity}); is the consumer alive?"
                )
            time.sleep(min(backoff_s, remaining_s))
            backoff_s = min(backoff_s * 2, FULL_BACKOFF_MAX_S)


class RingConsumer:
    """The one reader of a ring: pop() records, then release() their bytes."""

    def __init__(self, ring: Ring) -> None:
        self.ring = ring
        self._data = ring.data
        self._tail_word = ring.tail_word
        self._head_word = ring.head_word
        self._capacity = ring.capacity_bytes
        self._mask = ring.capacity_bytes - 1
        self._size_max = ring.record_size_max
        self._entry_size_max = ring.entry_size_max
        self._read = ring.head_word[0]
        self._tail_seen = ring.tail_word[0]
        # Records of a batch entry beyond an earlier pop's count_max; already out of the ring.
        self._held: list[bytes] = []

    def pending(self) -> bool:
        """True when a record is published and not yet popped (reads the shared tail if needed)."""
        if self._read != self._tail_seen or self._held:
            return True
        self._tail_seen = self._tail_word[0]
        return self._read != self._tail_seen

    def pop(self, count_max: int) -> list:
        """Up to count_max records in order: memoryviews valid until release(), or bytes.

        Fewer than count_max only when no more are published: the shared tail is re-read
        whenever the records known so far run out.
        """
        records = []
        if self._held:
            records = self._held[:count_max]
            del self._held[:count_max]
            count_max -= len(records)
        read = self._read
        tail = self._tail_seen
        tail_word = self._tail_word
        data = self._data
        mask = self._mask
        size_max = self._size_max
        unpack = _WORD.unpack_from
        append = records.append
        while count_max > 0:
            if read == tail:
                tail = tail_word[0]
                if read == tail:
                    break
            pos = read & mask
            word = unpack(data, pos)[0]
            if word < BATCH_FLAG:
                if word > size_max:
                    check_range(word, 0, size_max, f"ring {self.ring.name} record_bytes read")
                append(data[pos + 4:pos + 4 + word])
                read += (word + 11) & -8
                count_max -= 1
            elif word == WRAP_MARKER:
                read += self._capacity - pos
            else:
                size = word ^ BATCH_FLAG
                if size > self._entry_size_max:
                    check_range(size, 0, self._entry_size_max, f"ring {self.ring.name} batch_bytes read")
                try:
                    batch = marshal.loads(data[pos + 4:pos + 4 + size])
                except (EOFError, ValueError, TypeError) as error:
                    raise InvariantError(f"ring {self.ring.name}: corrupt batch at {pos}: {error}") from error
                if type(batch) is not list:
                    check(type(batch) is tuple, f"ring {self.ring.name}: batch at {pos} is not a list")
                    batch = list(batch)
                read += (size + 11) & -8
                if len(batch) > count_max:
                    self._held = batch[count_max:]
                    batch = batch[:count_max]
                records += batch
                count_max -= len(batch)
        self._read = read
        self._tail_seen = tail
        return records

    def release(self) -> None:
        """Give the bytes of every popped record back to the producer; their views go stale."""
        self._head_word[0] = self._read
