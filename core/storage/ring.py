"""The `ring` journal backend: a bounded on-disk circular buffer (DESIGN section 6).

Owns the file journal/ring: a redundant region of `slots` prepare headers (HEADER_SIZE bytes
each, slot order), then `slots` fixed-size prepare slots (op mod slots; slot size = the largest
prepare accepted). The file is preallocated and zero-filled at format, so writes only overwrite
blocks that already exist and fdatasync never has to journal a size or extent change. Never
overwrites a slot holding another op above the released prefix (the checkpoint), and never
writes a header before its prepare is durable.

write() of an op overwrites its slot, whatever the slot held: a newer version of the same op
(supersede), nothing (a gap being filled), or an op of an older lap, which the bound
op - slots <= released_op proves released. A torn overwrite damages only that slot; when it
superseded a durable version, that version's header makes it a fault (never dropped as torn),
repaired by the core like any corrupt entry.

Hot path: write() puts each run of consecutive ops of a batch with one pwritev when padding each
prepare to its slot's end adds no page (small slots), else one pwrite per prepare (slots are
not contiguous, see _write_run); sync() pwrites the due headers (one call per run of
consecutive slots) and does one fdatasync. Reads go through a read-only mmap. (Writing through
a shared mmap was measured slower: re-dirtying a page after writeback costs a write-protect
fault per page and sync.)

Ordering, the reason a header is trustworthy: the headers of the prepares made durable by sync
N are written into the header region during sync N+1, so they reach the disk together with the
next batch, one fdatasync for both. A valid header therefore proves its prepare was durable: a
header whose slot does not verify is a fault (corrupt after the fact), whereas a bad slot
without its header may be a torn write (cut if in the window). The header region lags the
slots by at most one batch; recovery rewrites the missing headers from their valid prepares.
"""

from __future__ import annotations

import array
import mmap
import os
from collections.abc import Iterable, Sequence

from core.check import check
from core.storage.files import write_all_at
from core.storage.journal import UNLINKED, EntryFault, Fault, Journal, Recovery, classify
from core.storage.prepare import Identity, verify_frame, verify_header
from net.wire import FRAME_SIZE_MAX, HEADER_SIZE

RING_FILE = "ring"
SLOTS_MAX = 1 << 20
SLOT_SIZE_BYTES_MIN = 4096
BLOCK_SIZE = 4096
PAGE_SIZE_BYTES = 4096  # the unit the page cache dirties and writes back
_ZERO_HEADER = bytes(HEADER_SIZE)
# Zero-copy slices of it pad a frame to its slot's end; never a page or more (_write_run).
_PADDING = memoryview(bytes(PAGE_SIZE_BYTES))
_FRAMES_PER_PWRITEV = 512  # 2 buffers per frame within IOV_MAX (1024)
_FORMAT_CHUNK_BYTES = 1 << 20


def headers_region_bytes(slots: int) -> int:
    return -(-slots * HEADER_SIZE // BLOCK_SIZE) * BLOCK_SIZE


def file_size_bytes(slots: int, slot_size_bytes: int) -> int:
    return headers_region_bytes(slots) + slots * slot_size_bytes


def check_geometry(slots: int, slot_size_bytes: int) -> None:
    check(0 < slots <= SLOTS_MAX, f"slots={slots} outside (0, {SLOTS_MAX}]")
    check(SLOT_SIZE_BYTES_MIN <= slot_size_bytes <= FRAME_SIZE_MAX
          and slot_size_bytes % BLOCK_SIZE == 0,
          f"slot size {slot_size_bytes} must be a multiple of {BLOCK_SIZE} in "
          f"[{SLOT_SIZE_BYTES_MIN}, {FRAME_SIZE_MAX}]")


def validate_config(slots: int, checkpoint_interval_ops: int, pipeline_max: int) -> None:
    """The ring never makes the primary wait for a slot (DESIGN section 6): between two
    checkpoints the log grows by checkpoint_interval ops while up to 2 pipelines of ops are
    beyond the checkpoint still held for the view change."""
    check(checkpoint_interval_ops <= slots - 2 * pipeline_max,
          f"checkpoint_interval={checkpoint_interval_ops} > slots={slots} - 2 x "
          f"pipeline={pipeline_max}")


def create(directory: str, slots: int, slot_size_bytes: int) -> None:
    """Preallocate the ring file full of zeros (format only), fsynced."""
    check_geometry(slots, slot_size_bytes)
    path = os.path.join(directory, RING_FILE)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        remaining = file_size_bytes(slots, slot_size_bytes)
        zeros = bytes(_FORMAT_CHUNK_BYTES)
        while remaining > 0:  # real zero blocks, not a hole: later writes are overwrites
            remaining -= os.write(fd, zeros[:min(remaining, _FORMAT_CHUNK_BYTES)])
        os.fsync(fd)
    finally:
        os.close(fd)


class RingJournal(Journal):
    def __init__(self, directory: str, slots: int, slot_size_bytes: int, in_flight_ops_max: int,
                 read_only: bool = False):
        check_geometry(slots, slot_size_bytes)
        check(in_flight_ops_max < slots, "the in-flight window must fit in the ring")
        self.slots = slots
        self.slot_size_bytes = slot_size_bytes
        self.in_flight_ops_max = in_flight_ops_max
        self.path = os.path.join(directory, RING_FILE)
        self.read_only = read_only  # inspect: recover reports, changes nothing on disk
        self._fd = os.open(self.path, os.O_RDONLY if read_only else os.O_RDWR)
        size = os.fstat(self._fd).st_size
        check(size == file_size_bytes(slots, slot_size_bytes),
              f"ring file is {size} bytes, geometry says {file_size_bytes(slots, slot_size_bytes)}")
        self._map = mmap.mmap(self._fd, size, access=mmap.ACCESS_READ)  # reads; writes pwrite
        self._slots_offset = headers_region_bytes(slots)
        self.faults: dict[int, Fault] = {}
        self.op_min = 1
        self.op_max = 0
        self.released_op = 0  # slots of ops <= released_op may be overwritten
        self._slot_ops = array.array("Q", bytes(8 * slots))  # the op each slot holds, 0: none
        # op -> header of the prepares written since the last sync, and of those made durable
        # by the last sync whose headers are still to be written.
        self._unsynced: dict[int, bytes] = {}
        self._headers_due: dict[int, bytes] = {}

    def _slot_offset(self, op: int) -> int:
        return self._slots_offset + (op % self.slots) * self.slot_size_bytes

    def _slot_identity(self, slot: int) -> Identity | None:
        offset = self._slots_offset + slot * self.slot_size_bytes
        header = verify_header(self._map, offset)
        if header is None or header.size > self.slot_size_bytes:
            return None
        return verify_frame(self._map[offset:offset + header.size])

    # -- recovery -------------------------------------------------------------------------

    def recover(self, checkpoint_op: int) -> Recovery:
        valid: dict[int, Identity] = {}
        headers: dict[int, Identity] = {}
        damaged: list[int] = []
        for slot in range(self.slots):
            identity = self._slot_identity(slot)
            if identity is not None and identity.op % self.slots == slot:
                valid[identity.op] = identity
            else:
                frame_header = verify_header(self._map, self._slots_offset + slot * self.slot_size_bytes)
                if frame_header is not None and frame_header.op % self.slots == slot:
                    damaged.append(frame_header.op)  # header written, body torn or corrupt
            header = verify_header(self._map, slot * HEADER_SIZE)
            if header is not None and header.op % self.slots == slot:
                headers[header.op] = header
        head = max(max(valid, default=0), max(headers, default=0), max(damaged, default=0))
        # Only the last `slots` ops can still be in the ring; older ones were overwritten.
        valid = {op: i for op, i in valid.items() if op > head - self.slots}
        durable = {op: h.checksum for op, h in headers.items()
                   if op > head - self.slots and (op not in valid or valid[op].checksum != h.checksum)}
        damaged = [op for op in damaged if op > head - self.slots]
        recovery = classify(valid, durable, damaged, checkpoint_op,
                            max(head - self.slots + 1, 1), self.in_flight_ops_max)
        self.faults = {f.op: f for f in recovery.faults if f.reason != UNLINKED}
        self.op_min, self.op_max = recovery.op_min, recovery.op_max
        self.released_op = checkpoint_op
        for op in valid:
            if op >= self.op_min:
                self._slot_ops[op % self.slots] = op
        if recovery.cut_ops and not self.read_only:
            self._erase(recovery.cut_ops)
        # Rewrite every redundant header that is missing or stale for a kept valid prepare
        # (the last batch's headers are always due, see the module docstring).
        repaired = 0
        for op in range(self.op_min, self.op_max + 1):
            if op in valid:
                offset = (op % self.slots) * HEADER_SIZE
                slot_header = self._map[self._slot_offset(op):self._slot_offset(op) + HEADER_SIZE]
                if self._map[offset:offset + HEADER_SIZE] != slot_header:
                    if not self.read_only:
                        write_all_at(self._fd, slot_header, offset)
                    repaired += 1
        if not self.read_only:
            os.fdatasync(self._fd)
        return Recovery(recovery.op_min, recovery.op_max, recovery.faults, recovery.cut_ops,
                        repaired)

    def _erase(self, ops: Iterable[int]) -> None:
        """Zero the header and the slot's frame header of each op: no longer a valid entry."""
        for op in ops:
            header_offset = (op % self.slots) * HEADER_SIZE
            slot_offset = self._slot_offset(op)
            write_all_at(self._fd, _ZERO_HEADER, header_offset)
            write_all_at(self._fd, _ZERO_HEADER, slot_offset)
            self._slot_ops[op % self.slots] = 0

    # -- the hot path ------------------------------------------------------------------------

    def op_writable_max(self) -> int:
        return self.released_op + self.slots

    def _bound_reason(self) -> str:
        return (f"it would overwrite the slot of an op above the released op {self.released_op}:"
                f" checkpoint_interval too large for {self.slots} slots")

    def _write(self, frames: Sequence[bytes], ops: list[int]) -> None:
        check(max(map(len, frames)) <= self.slot_size_bytes, "a prepare is larger than a slot")
        slots, slot_ops, unsynced = self.slots, self._slot_ops, self._unsynced
        start = 0
        for index in range(1, len(ops) + 1):
            # A run ends where the next frame is not the next slot (another op, or a wrap).
            if index == len(ops) or ops[index] != ops[index - 1] + 1 or ops[index] % slots == 0:
                self._write_run(ops[start] % slots, frames[start:index])
                start = index
        for op, frame in zip(ops, frames):
            slot_ops[op % slots] = op
            unsynced[op] = frame[:HEADER_SIZE]
        self.op_min = max(self.op_min, max(ops) - slots + 1)

    def _write_run(self, slot_first: int, frames: Sequence[bytes]) -> None:
        """Write frames into consecutive slots from slot_first.

        Slots are sized for the largest prepare, so consecutive frames are not contiguous on
        disk. When padding each frame to its slot's end adds no page (every frame but the last
        reaches its slot's last page), one pwritev writes the run: the same pages are dirtied
        and written back either way, and one syscall replaces one per prepare (a syscall costs
        microseconds under virtualisation, the padding copy a fraction of that). Otherwise one
        pwrite per prepare, as writing padding would multiply the bytes written.
        """
        fd, slot_size = self._fd, self.slot_size_bytes
        offset = self._slots_offset + slot_first * slot_size
        if all(slot_size - len(frame) < PAGE_SIZE_BYTES for frame in frames[:-1]):
            for start in range(0, len(frames), _FRAMES_PER_PWRITEV):
                chunk = frames[start:start + _FRAMES_PER_PWRITEV]
                buffers = []
                for frame in chunk[:-1]:
                    buffers += (frame, _PADDING[:slot_size - len(frame)])
                buffers.append(chunk[-1])
                written = os.pwritev(fd, buffers, offset)
                total = sum(map(len, buffers))
                if written < total:  # short writes: finish them
                    write_all_at(fd, b"".join(buffers)[written:], offset + written)
                offset += len(chunk) * slot_size
            return
        for frame in frames:
            if os.pwrite(fd, frame, offset) != len(frame):  # short writes: finish them
                write_all_at(fd, frame, offset)
            offset += slot_size

    def sync(self) -> int:
        # Headers of prepares made durable by the previous sync, in one pwrite per run of
        # consecutive slots (a contiguous batch is one run, two when it wraps).
        run: list[bytes] = []
        run_slot = 0
        for op in sorted(self._headers_due):
            slot = op % self.slots
            if run and slot != run_slot + len(run):
                write_all_at(self._fd, b"".join(run), run_slot * HEADER_SIZE)
                run = []
            if not run:
                run_slot = slot
            run.append(self._headers_due[op])
        if run:
            write_all_at(self._fd, b"".join(run), run_slot * HEADER_SIZE)
        os.fdatasync(self._fd)
        self._headers_due = self._unsynced
        self._unsynced = {}
        return len(self._headers_due)

    # -- reads --------------------------------------------------------------------------------

    def locate(self, op: int) -> tuple[str, int] | None:
        return (self.path, self._slot_offset(op)) if self.op_min <= op <= self.op_max else None

    def header_offset(self, op: int) -> int:
        """Where op's redundant header lives in the ring file."""
        return (op % self.slots) * HEADER_SIZE

    def read(self, op: int) -> bytes | None:
        if op in self.faults:
            raise EntryFault(op, self.faults[op].reason)
        if not (self.op_min <= op <= self.op_max) or self._slot_ops[op % self.slots] != op:
            return None
        identity = self._slot_identity(op % self.slots)
        if identity is None or identity.op != op:
            self.faults[op] = Fault(op, None, "corrupt when read")
            raise EntryFault(op, "corrupt when read")
        offset = self._slot_offset(op)
        return self._map[offset:offset + identity.size]

    def stored(self, op: int) -> bytes | None:
        offset = self._slot_offset(op)
        identity = self._slot_identity(op % self.slots)
        if identity is not None and identity.op == op:
            return self._map[offset:offset + identity.size]
        header = verify_header(self._map, offset)
        return self._map[offset:offset + HEADER_SIZE] if header and header.op == op else None

    # -- truncation ---------------------------------------------------------------------------

    def truncate_prefix(self, op: int) -> None:
        # Nothing to delete: released slots are simply overwritten later, at no cost.
        self.released_op = max(self.released_op, op)
        if op > self.op_max:
            # A checkpoint installed past our log: writes restart after it.
            self.op_max = op
            self.op_min = op + 1
        for faulty in [f for f in self.faults if f <= op]:
            del self.faults[faulty]

    def truncate_suffix(self, op: int) -> None:
        check(op >= self.op_min - 1, f"truncate_suffix({op}) below op_min {self.op_min}")
        # Every op above op has its slot here (op_writable_max keeps them within one lap),
        # so zeroing those slots and their headers, then one fdatasync, removes them all.
        self._erase(range(max(op + 1, self.op_max - self.slots + 1), self.op_max + 1))
        os.fdatasync(self._fd)
        self._unsynced = {o: h for o, h in self._unsynced.items() if o <= op}
        self._headers_due = {o: h for o, h in self._headers_due.items() if o <= op}
        for faulty in [f for f in self.faults if f > op]:
            del self.faults[faulty]
        self.op_max = min(self.op_max, op)

    def close(self) -> None:
        self._map.close()
        os.close(self._fd)
