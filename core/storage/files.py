"""Small durable-file primitives shared by the storage modules.

Owns the exact syscall sequences for durability (write all, fdatasync, directory fsync). Never
decides what to write or when: callers own ordering and explain why it is crash-safe.
"""

from __future__ import annotations

import os

from core.check import check


def write_all_at(fd: int, data: bytes | bytearray | memoryview, offset: int) -> None:
    """pwrite the whole buffer at offset (one syscall unless the kernel writes short)."""
    view = memoryview(data)
    while view:
        written = os.pwrite(fd, view, offset)
        check(written > 0, "pwrite wrote nothing")
        view = view[written:]
        offset += written


def read_exact_at(fd: int, size: int, offset: int) -> bytes:
    """pread exactly size bytes, or fewer only at end of file."""
    chunks = []
    while size > 0:
        chunk = os.pread(fd, size, offset)
        if not chunk:
            break
        chunks.append(chunk)
        size -= len(chunk)
        offset += len(chunk)
    return b"".join(chunks)


def fsync_dir(path: str | os.PathLike) -> None:
    """fsync a directory so a created, renamed or unlinked entry in it survives a crash."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
