"""The owner's starting state: the MuxStateMachine restored from the newest checkpoint.

Reads the data dir and never writes it (the journal and snapshot roles are its only writers):
the superblock copies read-only, then the checkpoint the newest valid copy names. The journal
ops above the checkpoint reach the owner later as ordinary Apply records, re-dispatched by the
replication role's core after its own recovery.
"""

from __future__ import annotations

from core.check import check
from core.storage.recover import read_core_recovered
from core.vsr.apply import apply_prepare
from net.wire import HEADER_SIZE
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


def replay(data_dir: str, cluster: int, replica: int, op_max: int | None = None
           ) -> tuple[MuxStateMachine, int]:
    """(state machine, op): the checkpoint, then the journal's whole prepares after it in op
    order up to op_max (or the first gap). Read-only, for a stopped replica: tests and tools
    compare replicas by the digest of the state at one op. The journal may hold prepares that
    never committed, so callers pick an op every replica committed."""
    mux, op = load_state_machine(data_dir, cluster, replica)
    journal = read_core_recovered(data_dir, cluster=cluster, replica=replica).journal
    while op_max is None or op < op_max:
        frame = journal.get(op + 1)
        if frame is None or len(frame) == HEADER_SIZE:  # a gap, or a header whose body is lost
            break
        applied, _ = apply_prepare(mux, bytes(frame))
        check(applied == op + 1, "the journal replays in op order")
        op = applied
    return mux, op
