"""A full memory barrier callable from Python, for the doorbell's sleep handshake.

The doorbell handshake is Dekker's pattern: the consumer stores its sleeping flag then loads the
ring tails; a producer stores a tail then loads the flag. x86 keeps stores in order and loads in
order, but may let a load pass an earlier store (the store buffer), so without a barrier on both
sides each could miss the other's store and the consumer would sleep on a published record.

Python has no fence primitive. An uncontended threading.Lock acquire/release is glibc sem_trywait
and sem_post on Linux (CPython's USE_SEMAPHORES build), each a `lock cmpxchg`: a locked
instruction is a full barrier on x86. The pair costs ~70 ns as two bound C calls, cheaper than
a ctypes call or a syscall, which matters on the producer's per-push path.

Each user gets its own lock and must use it from one thread: a shared lock could be held by
another thread, and a fork taken while it is held would leave the child a fence that blocks.
"""

from __future__ import annotations

import threading
from collections.abc import Callable


def new_fence() -> tuple[Callable[[], bool], Callable[[], None]]:
    """(enter, leave): calling enter() then leave() orders all earlier loads and stores of this
    process before all later ones."""
    lock = threading.Lock()
    return lock.acquire, lock.release
