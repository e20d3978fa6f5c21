"""The snapshot role's working part: write a checkpoint, then name it in the superblock.

Owns the checkpoint ordering (DESIGN section 6): 1. the 3 snapshot copies, each fsynced;
2. the superblock (4 copies, each fsynced and read back) names the new checkpoint; 3. older
checkpoint files are deleted. Releasing the journal prefix is the journal role's (it is the
journal's only writer): the caller sends it TruncatePrefix(journal_release_op(...)) once the
checkpoint is durable cluster-wide. Never reads rings itself: wired through plain callables.

Why this order is crash-safe: until step 2 completes the superblock names the previous
checkpoint, whose files are untouched until step 3, so a crash at any point recovers either the
old checkpoint (plus the journal, which still holds every op after it) or the new one.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping

from core.check import check
from core.storage.snapshot import Checkpoint, SnapshotStore
from core.storage.superblock import Superblock


@dataclasses.dataclass(frozen=True)
class SnapshotRequest:
    op: int
    view: int
    timestamp: int
    sections: Mapping[str, tuple[int, bytes | None]]  # None: unchanged, reuse the previous
    prepare_header: bytes = b""  # the raw prepare header of op (the core's Checkpoint.header)


class SnapshotWriter:
    """Holds the current checkpoint (its sections are the source of reuse)."""

    def __init__(self, superblock: Superblock, store: SnapshotStore, current: Checkpoint | None):
        self.superblock = superblock
        self.store = store
        self.current = current

    def checkpoint(self, request: SnapshotRequest) -> Checkpoint:
        check(request.op > self.superblock.state.checkpoint_op,
              f"checkpoint op {request.op} not above {self.superblock.state.checkpoint_op}")
        written = self.store.write(request.op, request.view, request.timestamp,
                                   request.sections, self.current)
        self.superblock.update(checkpoint_op=request.op,
                               checkpoint_checksum=written.header.checksum,
                               checkpoint_header=request.prepare_header)
        self.store.remove_other_than(request.op)
        self.current = written
        return written


    def install(self, op: int, checksum: int, prepare_header: bytes = b"") -> Checkpoint:
        """Install a checkpoint received from a peer (state transfer) in the same order: its 3
        copies, then the superblock, then older files go. The journal role then releases its
        log up to op (TruncatePrefix(op): appends restart after it)."""
        check(op > self.superblock.state.checkpoint_op, "installed checkpoint must be newer")
        installed = self.store.install_received(op, checksum)
        self.superblock.update(checkpoint_op=op, checkpoint_checksum=checksum,
                               checkpoint_header=prepare_header)
        self.store.remove_other_than(op)
        self.current = installed
        return installed


def run_snapshot_writer(writer: SnapshotWriter,
                        take: Callable[[], SnapshotRequest | None],
                        report_done: Callable[[int, int], None]) -> None:
    """Run until take() returns None; report_done(op, checkpoint_checksum) after each."""
    while (request := take()) is not None:
        written = writer.checkpoint(request)
        report_done(written.header.op, written.header.checksum)
