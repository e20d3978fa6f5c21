"""The checkpoint store: composite snapshot files in 3 copies (DESIGN section 6).

Owns the snapshot file format and writing, verifying and loading its copies under snapshots/.
Sections are opaque bytes per domain (name -> (version, bytes)) from the state machine's
snapshot(); this module never interprets them, never touches the superblock or the journal (the
snapshot writer orders those steps, snapshot_writer.py).

File snapshots/checkpoint-<op, 20 digits>.<copy>, copies 0..2 with identical bytes:

  header (HEADER_SIZE_BYTES rounded up to a block):
    0   checksum        u64  xxHash3-64 of header bytes 8..header_size: THE checkpoint checksum
                             (it covers every section checksum, so it names the whole state)
    8   magic           8s   b"MVSRSNAP"
    16  format_version  u32
    20  section_count   u32
    24  header_size     u32
    32  op              u64
    40  view            u32
    48  timestamp       u64  the checkpoint prepare's timestamp (never a wall clock)
    56  total_size      u64  the whole file
    128 table: section_count entries of 64 bytes:
        name 32s (UTF-8, NUL padded), version u32, 4 pad, offset u64, length u64, checksum u64
  sections, each starting on a SECTION_ALIGN_BYTES boundary.

Why three whole copies, each fsynced before the next is started: a crash or a bad sector can
damage at most the copy being written or one stored copy; loading tries the copies in turn and
takes the first whose header checksum equals the superblock's and whose sections all verify.
"""

from __future__ import annotations

import dataclasses
import os
import struct
from collections.abc import Mapping

import xxhash

from core.check import check, check_range
from core.storage.errors import SnapshotError
from core.storage.files import fsync_dir, read_exact_at, write_all_at

SNAPSHOT_COPIES = 3
# How much of a checkpoint copy may be dirty at once (_write_paced).
PACED_WRITE_BYTES = 1 << 20
MAGIC = b"MVSRSNAP"
FORMAT_VERSION = 1
SECTIONS_MAX = 32
SECTION_NAME_BYTES_MAX = 32
SECTION_SIZE_BYTES_MAX = 1 << 36
SECTION_ALIGN_BYTES = 4096
FILE_PREFIX = "checkpoint-"
RECEIVE_PREFIX = "receive-"
CHUNK_SIZE_BYTES_MAX = 1 << 20  # a chunk rides in one frame (net.wire.FRAME_SIZE_MAX)
_FIXED = struct.Struct("<Q8sIII4xQI4xQQ")
_TABLE_OFFSET = 128
_ENTRY = struct.Struct("<32sI4xQQQ")
_HEADER_SIZE_MAX = _TABLE_OFFSET + SECTIONS_MAX * _ENTRY.size
check(_FIXED.size <= _TABLE_OFFSET, "snapshot fixed header layout")


def _align(value: int) -> int:
    return -(-value // SECTION_ALIGN_BYTES) * SECTION_ALIGN_BYTES


def file_name(op: int, copy: int) -> str:
    return f"{FILE_PREFIX}{op:020d}.{copy}"


@dataclasses.dataclass(frozen=True)
class SectionEntry:
    name: str
    version: int
    offset: int
    length: int
    checksum: int


@dataclasses.dataclass(frozen=True)
class SnapshotHeader:
    checksum: int
    op: int
    view: int
    timestamp: int
    total_size: int
    header_size: int
    sections: tuple[SectionEntry, ...]

    def entry(self, name: str) -> SectionEntry | None:
        return next((s for s in self.sections if s.name == name), None)


@dataclasses.dataclass(frozen=True)
class CopyStatus:
    copy: int
    path: str
    header: SnapshotHeader | None
    problem: str = ""  # empty when the copy is whole and every section verifies


@dataclasses.dataclass(frozen=True)
class Checkpoint:
    """A loaded checkpoint: the state at op, ready for the state machine's restore()."""

    header: SnapshotHeader
    sections: dict[str, tuple[int, bytes]]
    copies: tuple[CopyStatus, ...]  # what was found on the way (the copies tried)


def encode_header(op: int, view: int, timestamp: int,
                  sections: list[tuple[str, int, int, int]]) -> bytes:
    """sections: (name, version, length, checksum) in file order; offsets are assigned here."""
    check_range(len(sections), 0, SECTIONS_MAX, "section count")
    header_size = _align(_TABLE_OFFSET + len(sections) * _ENTRY.size)
    buf = bytearray(header_size)
    offset = header_size
    for index, (name, version, length, checksum) in enumerate(sections):
        raw_name = name.encode()
        check(0 < len(raw_name) <= SECTION_NAME_BYTES_MAX, f"section name {name!r}")
        check_range(length, 0, SECTION_SIZE_BYTES_MAX, f"section {name} length")
        _ENTRY.pack_into(buf, _TABLE_OFFSET + index * _ENTRY.size, raw_name, version, offset,
                         length, checksum)
        offset = _align(offset + length)
    _FIXED.pack_into(buf, 0, 0, MAGIC, FORMAT_VERSION, len(sections), header_size, op, view,
                     timestamp, offset)
    struct.pack_into("<Q", buf, 0, xxhash.xxh3_64_intdigest(memoryview(buf)[8:]))
    return bytes(buf)


def decode_header(buf: bytes) -> SnapshotHeader:
    """Parse and verify a header; SnapshotError says what is wrong."""
    if len(buf) < _TABLE_OFFSET:
        raise SnapshotError(f"header truncated to {len(buf)} bytes")
    (checksum, magic, version, count, header_size, op, view, timestamp,
     total_size) = _FIXED.unpack_from(buf)
    if magic != MAGIC:
        raise SnapshotError(f"bad magic {magic!r}")
    if version != FORMAT_VERSION:
        raise SnapshotError(f"format version {version}, expected {FORMAT_VERSION}")
    if count > SECTIONS_MAX or header_size > _align(_HEADER_SIZE_MAX) or header_size > len(buf):
        raise SnapshotError(f"implausible header: {count} sections in {header_size} bytes")
    if checksum != xxhash.xxh3_64_intdigest(memoryview(buf)[8:header_size]):
        raise SnapshotError("header checksum mismatch")
    entries = []
    for index in range(count):
        raw_name, sversion, offset, length, scheck = _ENTRY.unpack_from(
            buf, _TABLE_OFFSET + index * _ENTRY.size)
        entries.append(SectionEntry(raw_name.rstrip(b"\0").decode(), sversion, offset, length,
                                    scheck))
    return SnapshotHeader(checksum, op, view, timestamp, total_size, header_size, tuple(entries))


def read_copy(path: str, copy: int, expected_checksum: int | None,
              with_sections: bool) -> tuple[CopyStatus, dict[str, tuple[int, bytes]]]:
    """Verify one copy (header, expected checksum, size, every section); load sections too."""
    sections: dict[str, tuple[int, bytes]] = {}
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return CopyStatus(copy, path, None, "missing"), sections
    try:
        try:
            header = decode_header(read_exact_at(fd, _align(_HEADER_SIZE_MAX), 0))
        except SnapshotError as exc:
            return CopyStatus(copy, path, None, str(exc)), sections
        if expected_checksum is not None and header.checksum != expected_checksum:
            return CopyStatus(copy, path, header, "checksum differs from the superblock's"), sections
        if os.fstat(fd).st_size < header.total_size:
            return CopyStatus(copy, path, header, "truncated"), sections
        for entry in header.sections:
            data = read_exact_at(fd, entry.length, entry.offset)
            if len(data) != entry.length or xxhash.xxh3_64_intdigest(data) != entry.checksum:
                return CopyStatus(copy, path, header, f"section {entry.name} corrupt"), {}
            if with_sections:
                sections[entry.name] = (entry.version, data)
        return CopyStatus(copy, path, header), sections
    finally:
        os.close(fd)


class SnapshotStore:
    """The snapshots/ directory of one replica; the snapshot role is its only writer."""

    def __init__(self, directory: str):
        self.directory = directory

    def path(self, op: int, copy: int) -> str:
        return os.path.join(self.directory, file_name(op, copy))

    def verify(self, op: int, checksum: int | None) -> list[CopyStatus]:
        """Every copy's status for the checkpoint at op (for inspect); loads nothing."""
        return [read_copy(self.path(op, copy), copy, checksum, False)[0]
                for copy in range(SNAPSHOT_COPIES)]

    def load(self, op: int, checksum: int) -> Checkpoint:
        """The first valid copy of the checkpoint (op, checksum); SnapshotError if none."""
        tried = []
        for copy in range(SNAPSHOT_COPIES):
            status, sections = read_copy(self.path(op, copy), copy, checksum, True)
            tried.append(status)
            if not status.problem:
                return Checkpoint(status.header, sections, tuple(tried))
        problems = "; ".join(f"copy {s.copy}: {s.problem}" for s in tried)
        raise SnapshotError(f"every copy of checkpoint op={op} is bad ({problems})")

    def write(self, op: int, view: int, timestamp: int,
              sections: Mapping[str, tuple[int, bytes | None]],
              previous: Checkpoint | None) -> Checkpoint:
        """Write the 3 copies, each fsynced (with its directory entry) before the next.

        A section given as (version, None) is unchanged since `previous` and is reused from it
        byte for byte (same version required): the owner need not serialise it again. The
        returned Checkpoint holds every section's bytes, to be the next write's `previous`.
        """
        check_range(len(sections), 0, SECTIONS_MAX, "section count")
        resolved: list[tuple[str, int, bytes, int]] = []
        for name in sorted(sections):  # sorted: byte-identical files on every replica
            version, data = sections[name]
            unchanged = previous is not None and name in previous.sections and (
                data is None or data is previous.sections[name][1])
            if unchanged:
                # The very bytes of the previous checkpoint (the state machine hands back the
                # same object for a clean domain): their checksum is known, no rehash.
                old_version, data = previous.sections[name]
                check(old_version == version, f"section {name} reused across versions")
                checksum = previous.header.entry(name).checksum
            else:
                check(data is not None, f"section {name} reused but the previous lacks it")
                checksum = xxhash.xxh3_64_intdigest(data)
            resolved.append((name, version, data, checksum))
        header_bytes = encode_header(op, view, timestamp,
                                     [(n, v, len(d), c) for n, v, d, c in resolved])
        header = decode_header(header_bytes)
        for copy in range(SNAPSHOT_COPIES):
            fd = os.open(self.path(op, copy), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            try:
                write_all_at(fd, header_bytes, 0)
                for entry, (_, _, data, _) in zip(header.sections, resolved):
                    _write_paced(fd, data, entry.offset)
                os.ftruncate(fd, header.total_size)
                os.fsync(fd)
            finally:
                os.close(fd)
            fsync_dir(self.directory)
        return Checkpoint(header, {n: (v, d) for n, v, d, _ in resolved}, ())

    def remove_other_than(self, op: int) -> None:
        """Delete every checkpoint and received file not of op (once the superblock names op)."""
        removed = False
        for name in os.listdir(self.directory):
            prefix = FILE_PREFIX if name.startswith(FILE_PREFIX) else RECEIVE_PREFIX
            if name.startswith(prefix) and int(name[len(prefix):].split(".")[0]) != op:
                os.unlink(os.path.join(self.directory, name))
                removed = True
        if removed:
            fsync_dir(self.directory)

    # -- state transfer (DESIGN section 5): serve chunks, receive into .part, install ---------

    def chunk(self, op: int, checksum: int, offset: int, size_bytes: int) -> tuple[bytes, int]:
        """(bytes [offset, offset + size_bytes), the file's total size) of a copy of
        (op, checksum) whose header verifies; the receiver verifies every section once it
        has the whole file."""
        check_range(size_bytes, 1, CHUNK_SIZE_BYTES_MAX, "chunk size")
        for copy in range(SNAPSHOT_COPIES):
            try:
                fd = os.open(self.path(op, copy), os.O_RDONLY)
            except FileNotFoundError:
                continue
            try:
                header = decode_header(read_exact_at(fd, _align(_HEADER_SIZE_MAX), 0))
                if header.checksum == checksum:
                    if not 0 <= offset < header.total_size:
                        raise SnapshotError(f"offset {offset} outside checkpoint op={op} of "
                                            f"{header.total_size} bytes")
                    size = min(size_bytes, header.total_size - offset)
                    return read_exact_at(fd, size, offset), header.total_size
            except SnapshotError:
                continue
            finally:
                os.close(fd)
        raise SnapshotError(f"no copy of checkpoint op={op} to serve")

    def receive_path(self, op: int) -> str:
        return os.path.join(self.directory, f"{RECEIVE_PREFIX}{op:020d}.part")

    def receive_chunk(self, op: int, offset: int, data: bytes) -> None:
        """Write a received chunk into the .part file (not durable, not trusted yet)."""
        fd = os.open(self.receive_path(op), os.O_WRONLY | os.O_CREAT, 0o600)
        try:
            write_all_at(fd, data, offset)
        finally:
            os.close(fd)

    def install_received(self, op: int, checksum: int) -> Checkpoint:
        """Verify the whole .part file against (op, checksum), then write it as the 3 copies
        of checkpoint op (byte-identical: same format, same sections). The caller then names
        it in the superblock (SnapshotWriter.install)."""
        part = self.receive_path(op)
        status, sections = read_copy(part, 0, checksum, True)
        if status.problem:
            raise SnapshotError(f"received checkpoint op={op} does not verify: {status.problem}")
        header = status.header
        check(header.op == op, f"received checkpoint is op {header.op}, expected {op}")
        written = self.write(op, header.view, header.timestamp,
                             {name: sections[name] for name in sections}, None)
        check(written.header.checksum == checksum, "rewritten checkpoint differs from received")
        os.unlink(part)
        fsync_dir(self.directory)
        return written


def _write_paced(fd: int, data: bytes, offset: int) -> None:
    """Write in slices of PACED_WRITE_BYTES, each made durable before the next, so a
    checkpoint copy never queues tens of MB of writeback in front of the journal's fdatasync
    (same disk). Measured here with a 4 KiB append+fdatasync loop beside three 14 MB copies:
    the loop's worst fdatasync 7.4-8.2 ms with whole copies, 2.6-5.2 ms paced. The copy is
    complete only at the final fsync, as before."""
    view = memoryview(data)
    for start in range(0, len(view), PACED_WRITE_BYTES):
        piece = view[start:start + PACED_WRITE_BYTES]
        write_all_at(fd, piece, offset + start)
        if len(piece) == PACED_WRITE_BYTES:
            os.fdatasync(fd)
