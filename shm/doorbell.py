"""Doorbells: how a producer wakes a consumer process that went to sleep on its empty rings.

One doorbell per consuming process, whatever the number of rings it consumes: the process
watch()es each of its RingConsumers on it, and every producer of those rings holds the same
doorbell (attached by name) and calls notify() after it publishes.

Waking a sleeping process costs ~50 us per hop, and a request crosses several rings, so a
consumer first polls its rings for poll_us (a measured, configurable budget; see `metavsr bench
ring`) and only then sleeps. Between checks it yields the core (sched_yield): a fraction of a
microsecond of reaction time on idle cores, and on busy ones it lets a producer that shares the
core run instead of watching the budget burn. Producers pay for a wake-up only when the consumer
has said, in shared memory, that it is going to sleep:

    consumer                                 producer
    flag = SLEEPING                          publish tail
    full fence                               full fence
    re-check every watched ring              if flag == SLEEPING:
    if empty: sleep (with a timeout)             flag = AWAKE; wake()
    flag = AWAKE

The fences make this Dekker's pattern: either the consumer's re-check sees the new tail, or the
producer sees the flag and wakes it; no wake-up is lost (shm/fence.py). The flag has several
writers (the consumer and any producer), which is safe because whoever clears it wakes the
consumer afterwards, and the consumer re-checks all its rings after every wake-up: the worst
case is a spurious wake-up, never a missed one. The sleep also has a timeout, so a consumer
always gets to run its periodic work.

Two ways to sleep: SemaphoreDoorbell (a posix_ipc semaphore, for processes that only wait on
rings) and EventfdDoorbell (an eventfd the net process registers in its selector, next to its
sockets; it is inherited by fork from the supervisor that created it).
"""

from __future__ import annotations

import os
import select
import time

import posix_ipc

from core.check import check, check_range
from shm.fence import new_fence
from shm.ring import RingConsumer
from shm.segment import Segment

AWAKE = 0
SLEEPING = 1
FLAG_SEGMENT_BYTES = 64
# A poll longer than this is spinning, not polling: the cores are shared between the roles.
POLL_MAX_US = 10_000


class Doorbell:
    """The sleep flag and handshake common to both doorbells; subclasses sleep and wake."""

    def __init__(self, segment: Segment, poll_us: int) -> None:
        check_range(poll_us, 0, POLL_MAX_US, f"doorbell {segment.name} poll_us")
        self.name = segment.name
        self.poll_us = poll_us
        self.sleeps = 0  # times this process really went to sleep; a metric for the poll budget
        self._segment = segment
        self.flag_word = segment.words(0, 1)
        self._fence_enter, self._fence_leave = new_fence()
        self._consumers: list[RingConsumer] = []

    # Consumer side.

    def watch(self, consumer: RingConsumer) -> None:
        """Have wait() return when this ring has records (call once per consumed ring)."""
        check(consumer not in self._consumers, f"doorbell {self.name}: ring {consumer.ring.name} watched twice")
        self._consumers.append(consumer)

    def ready(self) -> bool:
        """True when a watched ring has a record to pop."""
        for consumer in self._consumers:
            if consumer.pending():
                return True
        return False

    def wait(self, timeout_s: float) -> bool:
        """Poll for poll_us, then sleep; True once a watched ring has records, False on timeout."""
        check(timeout_s >= 0, "doorbell wait: timeout_s is negative")  # no f-string: a hot path
        if self.ready():
            return True
        poll_end_ns = time.perf_counter_ns() + self.poll_us * 1000
        while time.perf_counter_ns() < poll_end_ns:
            if self.ready():
                return True
            os.sched_yield()  # if a producer shares this core, let it run now
        deadline = time.monotonic() + timeout_s
        while self.prepare_to_sleep():
            remaining_s = deadline - time.monotonic()
            if remaining_s <= 0:
                self.flag_word[0] = AWAKE
                return False
            self._sleep(remaining_s)
            self.woke()
        return True

    def prepare_to_sleep(self) -> bool:
        """Announce sleep; False (and the flag cleared) if a ring has records after all.

        A True answer obliges the caller to sleep on this doorbell (or on fileno() in a
        selector) and then call woke().
        """
        self.flag_word[0] = SLEEPING
        self._fence_enter()
        self._fence_leave()
        if self.ready():
            self.flag_word[0] = AWAKE
            return False
        return True

    def woke(self) -> None:
        self.flag_word[0] = AWAKE
        self.sleeps += 1
        self._drain()

    # Producer side.

    def notify(self) -> None:
        """Call after publishing: wakes the consumer only if it announced sleep."""
        self._fence_enter()
        self._fence_leave()
        if self.flag_word[0] == SLEEPING:
            self.wake_sleeper()

    def wake_sleeper(self) -> None:
        """notify() after its fence found the flag SLEEPING (RingProducer.push inlines notify)."""
        self.flag_word[0] = AWAKE
        self._wake()

    def close(self) -> None:
        self._consumers.clear()
        self._segment.close()

    def _sleep(self, timeout_s: float) -> None:
        raise NotImplementedError

    def _wake(self) -> None:
        raise NotImplementedError

    def _drain(self) -> None:
        """Consume a pending wake-up after a sleep (eventfd only; a semaphore counts itself)."""


class SemaphoreDoorbell(Doorbell):
    """A doorbell for a process that waits only on rings: sleeps in sem_timedwait."""

    def __init__(self, segment: Segment, semaphore: posix_ipc.Semaphore, poll_us: int) -> None:
        super().__init__(segment, poll_us)
        self._semaphore = semaphore

    @classmethod
    def create(cls, name: str, poll_us: int) -> SemaphoreDoorbell:
        """Create the flag segment and semaphore (exclusively); the creator unlinks both on close."""
        segment = Segment.create(name, FLAG_SEGMENT_BYTES)
        semaphore = posix_ipc.Semaphore(name, posix_ipc.O_CREX, mode=0o600, initial_value=0)
        return cls(segment, semaphore, poll_us)

    @classmethod
    def attach(cls, name: str, poll_us: int) -> SemaphoreDoorbell:
        return cls(Segment.attach(name), posix_ipc.Semaphore(name), poll_us)

    def _sleep(self, timeout_s: float) -> None:
        try:
            self._semaphore.acquire(timeout_s)
        except posix_ipc.BusyError:
            pass  # timed out: wait() decides whether its deadline has passed

    def _wake(self) -> None:
        self._semaphore.release()

    def close(self) -> None:
        if self._segment.owner:
            try:
                self._semaphore.unlink()
            except posix_ipc.ExistentialError:
                pass  # already removed by remove_stale of a newer run
        self._semaphore.close()
        super().close()


class EventfdDoorbell(Doorbell):
    """A doorbell for the net process: fileno() goes into its selector next to its sockets.

    Selector use: if prepare_to_sleep(): select(...); woke(). The eventfd is not a named
    object: producers get it by inheriting it (fork), or through attach() with the fd number.
    """

    def __init__(self, segment: Segment, event_fd: int, poll_us: int) -> None:
        super().__init__(segment, poll_us)
        self._event_fd = event_fd

    @classmethod
    def create(cls, name: str, poll_us: int) -> EventfdDoorbell:
        segment = Segment.create(name, FLAG_SEGMENT_BYTES)
        return cls(segment, os.eventfd(0, os.EFD_NONBLOCK), poll_us)

    @classmethod
    def attach(cls, name: str, event_fd: int, poll_us: int) -> EventfdDoorbell:
        return cls(Segment.attach(name), event_fd, poll_us)

    def fileno(self) -> int:
        return self._event_fd

    def _sleep(self, timeout_s: float) -> None:
        select.select([self._event_fd], [], [], timeout_s)

    def _wake(self) -> None:
        os.eventfd_write(self._event_fd, 1)

    def _drain(self) -> None:
        try:
            os.eventfd_read(self._event_fd)
        except BlockingIOError:
            pass  # woken by the timeout, not by a producer

    def close(self) -> None:
        if self._segment.owner:
            os.close(self._event_fd)
        super().close()
