"""The owner's starting state: the MuxStateMachine restored from the newest checkpoint.

Reads the data dir and never writes it (the journal and snapshot roles are its only writers):
the superblock copies read-only, then the checkpoint the newest valid copy names. The journal
ops above the checkpoint reach the owner later as ordinary Apply records, re-dispatched by the
replication role's core after its own recovery.
"""

from __future__ import annotations

from core.check import check
from core.storage.datadir import Paths
from core.storage.errors import DataDirError
from core.storage.snapshot import SnapshotStore
from core.storage.superblock import newest_valid, read_copies
from domains.mux import MuxStateMachine


def load_state_machine(data_dir: str, cluster: int, replica: int) -> tuple[MuxStateMachine, int]:
    """(state machine at the checkpoint, checkpoint op)."""
    paths = Paths(data_dir)
    state = newest_valid(read_copies(paths.superblock))
    if state.cluster != cluster or state.replica != replica:
        raise DataDirError(f"{data_dir} belongs to cluster {state.cluster} replica "
                           f"{state.replica}, not cluster {cluster} replica {replica}")
    mux = MuxStateMachine()
    if state.checkpoint_checksum:
        checkpoint = SnapshotStore(paths.snapshots).load(state.checkpoint_op,
                                                         state.checkpoint_checksum)
        mux.restore(checkpoint.sections)
    else:
        check(state.checkpoint_op == 0, "a checkpoint op without a checksum")
    return mux, state.checkpoint_op
