"""The superblock: the replica's small root record, kept in 4 checksummed copies.

Owns the superblock file format, writing it copy by copy and choosing the newest valid copy at
open. Never decides *when* the view or the checkpoint changes (the replica does), and never
writes anything but the superblock file.

File: SUPERBLOCK_COPIES copies, copy i at offset i * COPY_STRIDE_BYTES, each in its own 4 KiB
blocks so one torn or lost block damages at most one copy. A copy is COPY_SIZE bytes:

  0   checksum             u64  xxHash3-64 of bytes 8..COPY_SIZE
  8   magic                8s   b"MVSRSUPR"
  16  format_version       u32
  20  copy                 u8   the copy's own index (catches a copy written to the wrong place)
  24  sequence             u64  +1 per update; the newest valid copy wins
  32  cluster              16s  u128 little-endian
  48  replica, replica_count, journal_backend  u8 each
  52  view, log_view       u32 each
  64  checkpoint_op, checkpoint_checksum       u64 each (checksum 0: no checkpoint yet)
  80  journal_slots, journal_slot_size_bytes   u32 each (ring geometry; 0 for segmented)
  88  journal_segment_size_bytes               u64 (segmented geometry; 0 for ring)
  96  view_op              u64  the head op of the log promised with log_view
  104 view_header_count    u16  how many view headers follow (<= VIEW_HEADERS_MAX)
  106 checkpoint_header_present  u8
  256 checkpoint_header    256  the raw prepare header of checkpoint_op (zeros when absent)
  512 view_headers         VIEW_HEADERS_MAX x 256  raw prepare headers (the core's PersistView)

Every copy has the same fixed size whatever the header count, so a copy's place never moves.

Why updating copy by copy is crash-safe: each copy is written, fsynced and read back before the
next one is touched, so at any crash point every copy holds either the old record or the new
one, except at most one torn copy whose checksum fails. Open takes the highest sequence among
valid copies: either the complete old state or the complete new state, never a mix.
"""

from __future__ import annotations

import dataclasses
import os
import struct

import xxhash

from core.check import check, check_range
from core.storage.errors import SuperblockError
from core.storage.files import read_exact_at, write_all_at
from core.storage.prepare import verify_header
from net.wire import HEADER_SIZE

SUPERBLOCK_COPIES = 4
RECORD_SIZE = 256  # the fixed fields
# The core's view_headers_max (core/vsr/messages.py, 128 by default) must not exceed this.
VIEW_HEADERS_MAX = 256
_CHECKPOINT_HEADER_OFFSET = RECORD_SIZE
_VIEW_HEADERS_OFFSET = _CHECKPOINT_HEADER_OFFSET + HEADER_SIZE
COPY_SIZE = _VIEW_HEADERS_OFFSET + VIEW_HEADERS_MAX * HEADER_SIZE
BLOCK_SIZE = 4096
COPY_STRIDE_BYTES = -(-COPY_SIZE // BLOCK_SIZE) * BLOCK_SIZE
FILE_SIZE_BYTES = SUPERBLOCK_COPIES * COPY_STRIDE_BYTES
FORMAT_VERSION = 2
MAGIC = b"MVSRSUPR"
REPLICA_COUNT_MAX = 7  # DESIGN section 0: any odd count up to 7

JOURNAL_BACKENDS = ("segmented", "ring")

_RECORD = struct.Struct("<Q8sIB3xQ16sBBBxIIxxxxQQIIQQHB")
check(_RECORD.size <= RECORD_SIZE, "superblock record layout exceeds RECORD_SIZE")


@dataclasses.dataclass(frozen=True)
class SuperblockState:
    """One superblock record, decoded."""

    cluster: int
    replica: int
    replica_count: int
    journal_backend: str
    journal_slots: int = 0
    journal_slot_size_bytes: int = 0
    journal_segment_size_bytes: int = 0
    view: int = 0
    log_view: int = 0
    checkpoint_op: int = 0
    checkpoint_checksum: int = 0
    sequence: int = 0
    view_op: int = 0
    view_headers: tuple[bytes, ...] = ()
    checkpoint_header: bytes = b""  # the raw prepare header of checkpoint_op; b"" at op 0

    def __post_init__(self) -> None:
        # update() may be given a list (PersistView's); the state stays immutable.
        object.__setattr__(self, "view_headers", tuple(bytes(h) for h in self.view_headers))
        object.__setattr__(self, "checkpoint_header", bytes(self.checkpoint_header))

    def validate(self) -> None:
        check_range(self.cluster, 0, (1 << 128) - 1, "cluster")
        check_range(self.replica_count, 1, REPLICA_COUNT_MAX, "replica_count")
        check_range(self.replica, 0, self.replica_count - 1, "replica")
        check(self.journal_backend in JOURNAL_BACKENDS, f"journal backend {self.journal_backend!r}")
        check(self.log_view <= self.view, f"log_view {self.log_view} > view {self.view}")
        if self.journal_backend == "ring":
            check(self.journal_slots > 0 and self.journal_slot_size_bytes > 0, "ring geometry")
        else:
            check(self.journal_segment_size_bytes > 0, "segment size")
        check(len(self.view_headers) <= VIEW_HEADERS_MAX,
              f"{len(self.view_headers)} view headers > VIEW_HEADERS_MAX={VIEW_HEADERS_MAX}")
        for raw in self.view_headers:
            identity = verify_header(raw) if len(raw) == HEADER_SIZE else None
            check(identity is not None, "a view header is not a valid prepare header")
            check(identity.op <= self.view_op, f"view header op {identity.op} > view_op")
        if self.checkpoint_header:
            identity = (verify_header(self.checkpoint_header)
                        if len(self.checkpoint_header) == HEADER_SIZE else None)
            check(identity is not None and identity.op == self.checkpoint_op,
                  f"the checkpoint header is not a prepare header of op {self.checkpoint_op}")


@dataclasses.dataclass(frozen=True)
class CopyStatus:
    """What one on-disk copy holds: a state, or why it is unusable."""

    copy: int
    state: SuperblockState | None
    problem: str = ""


def encode_copy(state: SuperblockState, copy: int) -> bytes:
    state.validate()
    record = bytearray(COPY_SIZE)
    _RECORD.pack_into(
        record, 0, 0, MAGIC, FORMAT_VERSION, copy, state.sequence,
        state.cluster.to_bytes(16, "little"), state.replica, state.replica_count,
        JOURNAL_BACKENDS.index(state.journal_backend), state.view, state.log_view,
        state.checkpoint_op, state.checkpoint_checksum, state.journal_slots,
        state.journal_slot_size_bytes, state.journal_segment_size_bytes, state.view_op,
        len(state.view_headers), bool(state.checkpoint_header),
    )
    record[_CHECKPOINT_HEADER_OFFSET:_CHECKPOINT_HEADER_OFFSET + len(state.checkpoint_header)] = \
        state.checkpoint_header
    headers = b"".join(state.view_headers)
    record[_VIEW_HEADERS_OFFSET:_VIEW_HEADERS_OFFSET + len(headers)] = headers
    struct.pack_into("<Q", record, 0, xxhash.xxh3_64_intdigest(memoryview(record)[8:]))
    return bytes(record)


def decode_copy(record: bytes, copy: int) -> CopyStatus:
    if len(record) != COPY_SIZE:
        return CopyStatus(copy, None, f"short: {len(record)} of {COPY_SIZE} bytes")
    (checksum, magic, version, copy_field, sequence, cluster, replica, replica_count, backend,
     view, log_view, checkpoint_op, checkpoint_checksum, slots, slot_size,
     segment_size, view_op, header_count, has_checkpoint_header) = _RECORD.unpack_from(record)
    if checksum != xxhash.xxh3_64_intdigest(memoryview(record)[8:]):
        return CopyStatus(copy, None, "checksum mismatch")
    if magic != MAGIC:
        return CopyStatus(copy, None, f"bad magic {magic!r}")
    if version != FORMAT_VERSION:
        return CopyStatus(copy, None, f"format version {version}, expected {FORMAT_VERSION}")
    if copy_field != copy:
        return CopyStatus(copy, None, f"copy {copy_field} found in the place of copy {copy}")
    if backend >= len(JOURNAL_BACKENDS):
        return CopyStatus(copy, None, f"unknown journal backend {backend}")
    if header_count > VIEW_HEADERS_MAX:
        return CopyStatus(copy, None, f"{header_count} view headers > {VIEW_HEADERS_MAX}")
    headers = tuple(record[offset:offset + HEADER_SIZE] for offset in range(
        _VIEW_HEADERS_OFFSET, _VIEW_HEADERS_OFFSET + header_count * HEADER_SIZE, HEADER_SIZE))
    checkpoint_header = (record[_CHECKPOINT_HEADER_OFFSET:_VIEW_HEADERS_OFFSET]
                         if has_checkpoint_header else b"")
    state = SuperblockState(
        cluster=int.from_bytes(cluster, "little"), replica=replica, replica_count=replica_count,
        journal_backend=JOURNAL_BACKENDS[backend], journal_slots=slots,
        journal_slot_size_bytes=slot_size, journal_segment_size_bytes=segment_size, view=view,
        log_view=log_view, checkpoint_op=checkpoint_op, checkpoint_checksum=checkpoint_checksum,
        sequence=sequence, view_op=view_op, view_headers=headers,
        checkpoint_header=checkpoint_header,
    )
    return CopyStatus(copy, state)


def read_copies(path: str | os.PathLike) -> list[CopyStatus]:
    """Every copy's status, without choosing; for open and for `metavsr inspect`."""
    fd = os.open(path, os.O_RDONLY)
    try:
        return [decode_copy(read_exact_at(fd, COPY_SIZE, copy * COPY_STRIDE_BYTES), copy)
                for copy in range(SUPERBLOCK_COPIES)]
    finally:
        os.close(fd)


def newest_valid(copies: list[CopyStatus]) -> SuperblockState:
    valid = [c.state for c in copies if c.state is not None]
    if not valid:
        problems = "; ".join(f"copy {c.copy}: {c.problem}" for c in copies)
        raise SuperblockError(f"no valid superblock copy ({problems})")
    return max(valid, key=lambda state: state.sequence)


def write_initial(path: str | os.PathLike, state: SuperblockState) -> None:
    """Write every copy of a brand-new superblock file (format only) and fsync it."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.ftruncate(fd, FILE_SIZE_BYTES)
        for copy in range(SUPERBLOCK_COPIES):
            write_all_at(fd, encode_copy(state, copy), copy * COPY_STRIDE_BYTES)
        os.fsync(fd)
    finally:
        os.close(fd)


class Superblock:
    """The open superblock of one replica; the only writer of its file (single process)."""

    def __init__(self, path: str | os.PathLike):
        self.path = os.fspath(path)
        self.copies = read_copies(self.path)
        self.state = newest_valid(self.copies)
        self._fd = os.open(self.path, os.O_RDWR)

    def close(self) -> None:
        os.close(self._fd)

    def update(self, **changes: object) -> SuperblockState:
        """Persist a new state (changed fields given by name) in every copy, copy by copy.

        A new checkpoint_op without a checkpoint_header clears the header (it named the old op).

        Returns once all copies are written, fsynced and read back equal; only then may the
        caller act on the new view or checkpoint (DESIGN section 5: persist, then act).
        """
        check("sequence" not in changes, "the sequence is the superblock's own")
        if changes.get("checkpoint_op", self.state.checkpoint_op) != self.state.checkpoint_op \
                and "checkpoint_header" not in changes:
            changes["checkpoint_header"] = b""
        new = dataclasses.replace(self.state, sequence=self.state.sequence + 1, **changes)
        check(new.view >= self.state.view, "view must not go back")
        check(new.checkpoint_op >= self.state.checkpoint_op, "checkpoint must not go back")
        check((new.cluster, new.replica) == (self.state.cluster, self.state.replica),
              "identity never changes")
        for copy in range(SUPERBLOCK_COPIES):
            record = encode_copy(new, copy)
            offset = copy * COPY_STRIDE_BYTES
            write_all_at(self._fd, record, offset)
            os.fdatasync(self._fd)
            check(read_exact_at(self._fd, COPY_SIZE, offset) == record,
                  f"superblock copy {copy} read back differs")
        self.state = new
        self.copies = [CopyStatus(copy, new) for copy in range(SUPERBLOCK_COPIES)]
        return new
