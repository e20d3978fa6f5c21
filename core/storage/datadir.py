"""The data dir: its layout, `format`, and the checks made when a replica opens it.

Owns the names inside a data dir (superblock, journal/, snapshots/), creating a fresh one, and
refusing one that is missing, half formatted, already formatted (for format) or of another
cluster or replica (for open): a replica that lost its disk must not rejoin as if new
(DESIGN section 6). Never writes anything after format except through Superblock, the journal
backends and the snapshot store.

Format order, why a crash during format is always detected: journal/ and snapshots/ (and the
preallocated ring) are created and fsynced first, then the optional initial checkpoint (op 0)
is written in its 3 copies, and the superblock is written last, to a temporary name, fsynced and renamed into place with a
directory fsync. A dir without a superblock file is therefore "half formatted", never mistaken
for a usable one.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping

from core.check import check
from core.storage import ring, segmented
from core.storage.errors import DataDirError, SuperblockError
from core.storage.files import fsync_dir
from core.storage.journal import IN_FLIGHT_OPS_MAX_DEFAULT, Journal, Recovery
from core.storage.snapshot import SnapshotStore
from core.storage.superblock import Superblock, SuperblockState, write_initial

SUPERBLOCK_FILE = "superblock"
JOURNAL_DIR = "journal"
SNAPSHOTS_DIR = "snapshots"
_SUPERBLOCK_PARTIAL = "superblock.partial"

RING_SLOTS_DEFAULT = 4096  # a checkpoint interval (2048), two pipelines and retention
RING_SLOT_SIZE_BYTES_DEFAULT = 64 << 10


@dataclasses.dataclass(frozen=True)
class Paths:
    root: str

    @property
    def superblock(self) -> str:
        return os.path.join(self.root, SUPERBLOCK_FILE)

    @property
    def journal(self) -> str:
        return os.path.join(self.root, JOURNAL_DIR)

    @property
    def snapshots(self) -> str:
        return os.path.join(self.root, SNAPSHOTS_DIR)


def format_data_dir(root: str, *, cluster: int, replica: int, replica_count: int,
                    journal_backend: str = "segmented",
                    ring_slots: int = RING_SLOTS_DEFAULT,
                    ring_slot_size_bytes: int = RING_SLOT_SIZE_BYTES_DEFAULT,
                    segment_size_bytes: int = segmented.SEGMENT_SIZE_BYTES_DEFAULT,
                    initial_sections: Mapping[str, tuple[int, bytes]] | None = None,
                    initial_timestamp: int = 0) -> SuperblockState:
    """Create a fresh data dir at root (absent or empty) and return its superblock state.

    initial_sections: the initial state as checkpoint sections (name -> (version, bytes)),
    written as the checkpoint at op 0 and named by the first superblock. This is the hook for
    the root user's initial credential: the caller builds the state machine with the root
    password hash (hashed outside, never a default password) and passes its snapshot(). None:
    no checkpoint, the replica starts from the state machine's empty state.
    """
    paths = Paths(os.path.abspath(root))
    if os.path.exists(paths.superblock):
        raise DataDirError(f"{paths.root} is already formatted (it has a superblock); refusing")
    if os.path.isdir(paths.root) and os.listdir(paths.root):
        raise DataDirError(f"{paths.root} exists and is not empty; refusing to format it")
    is_ring = journal_backend == "ring"
    state = SuperblockState(
        cluster=cluster, replica=replica, replica_count=replica_count,
        journal_backend=journal_backend,
        journal_slots=ring_slots if is_ring else 0,
        journal_slot_size_bytes=ring_slot_size_bytes if is_ring else 0,
        journal_segment_size_bytes=0 if is_ring else segment_size_bytes,
    )
    state.validate()
    os.makedirs(paths.root, exist_ok=True)
    os.mkdir(paths.journal)
    os.mkdir(paths.snapshots)
    if is_ring:
        ring.create(paths.journal, ring_slots, ring_slot_size_bytes)
        fsync_dir(paths.journal)
    fsync_dir(paths.root)
    if initial_sections is not None:
        initial = SnapshotStore(paths.snapshots).write(0, 0, initial_timestamp,
                                                        initial_sections, None)
        state = dataclasses.replace(state, checkpoint_checksum=initial.header.checksum)
    partial = os.path.join(paths.root, _SUPERBLOCK_PARTIAL)
    write_initial(partial, state)
    os.rename(partial, paths.superblock)
    fsync_dir(paths.root)
    parent = os.path.dirname(paths.root)
    if parent:
        fsync_dir(parent)
    return state


def open_data_dir(root: str, *, cluster: int, replica: int) -> Superblock:
    """Open the superblock of a formatted data dir that belongs to (cluster, replica)."""
    paths = Paths(os.path.abspath(root))
    if not os.path.isdir(paths.root):
        raise DataDirError(f"data dir {paths.root} does not exist: run `metavsr format` first")
    if not os.path.exists(paths.superblock):
        raise DataDirError(f"data dir {paths.root} has no superblock: not formatted, or format "
                           "was interrupted (half formatted); it cannot be used")
    for required in (paths.journal, paths.snapshots):
        if not os.path.isdir(required):
            raise DataDirError(f"data dir {paths.root} is missing {required}: half formatted")
    try:
        superblock = Superblock(paths.superblock)
    except SuperblockError as exc:
        raise DataDirError(f"data dir {paths.root}: {exc}") from None
    state = superblock.state
    if (state.cluster, state.replica) != (cluster, replica):
        superblock.close()
        raise DataDirError(
            f"data dir {paths.root} belongs to cluster {state.cluster} replica {state.replica}, "
            f"not cluster {cluster} replica {replica}")
    return superblock


def open_journal(root: str, state: SuperblockState,
                 in_flight_ops_max: int = IN_FLIGHT_OPS_MAX_DEFAULT,
                 read_only: bool = False) -> tuple[Journal, Recovery]:
    """Open and recover the journal the superblock describes (from its checkpoint).

    read_only (inspect): the recovery is computed and reported but nothing is cut or rewritten.
    """
    directory = Paths(os.path.abspath(root)).journal
    journal: Journal
    if state.journal_backend == "ring":
        journal = ring.RingJournal(directory, state.journal_slots, state.journal_slot_size_bytes,
                                   in_flight_ops_max, read_only)
    else:
        check(state.journal_backend == "segmented", f"backend {state.journal_backend}")
        journal = segmented.SegmentedJournal(directory, state.journal_segment_size_bytes,
                                             in_flight_ops_max, state.cluster, read_only)
    recovery = journal.recover(state.checkpoint_op)
    return journal, recovery
