"""A full memory barrier callable from Python, for the doorbell's sleep handshake.

The doorbell handshake is Dekker's pattern: the consumer stores its sleeping flag then loads the
ring tails; a producer stores a tail then loads the flag. x86 keeps stores in order and loads in
order, but may let a load pass an earlier store (the store buffer), so without a barrier on both
sides each could miss the other's store and the consumer would sleep on a published record.

Python has no fence primitive. An uncontended threading.Lock acquire/release is glibc sem_trywait
and sem_post on Linux (CPython's USE_SEMAPHORES build), each a `lock cmpxchg`: a locked
instruction is a full barrier on x86. It costs ~65 ns, far cheaper than a ctypes call or syscall.
"""

from __future__ import annotations

import os
import threading

_lock = threading.Lock()


def full_fence() -> None:
    """Order every earlier load and store of this process before every later one."""
    _lock.acquire()
    _lock.release()


def _fresh_lock_after_fork() -> None:
    # A fork taken by another thread between acquire and release would leave the child a held
    # lock and a fence that blocks forever.
    global _lock
    _lock = threading.Lock()


os.register_at_fork(after_in_child=_fresh_lock_after_fork)
