"""Bringing a replica's storage back at start: superblock -> checkpoint -> journal.

Owns the recovery order of DESIGN section 6 and the hand-over of what was found to the VSR core
(to_core_recovered: the one place storage speaks the core's type), and nothing else: it opens
and verifies, the roles then run from the result. Never repairs from peers (faults are returned
for the replica), and never decides what is canonical (the core does, from its hash chain).
"""

from __future__ import annotations

import dataclasses

from core.check import check
from core.storage.datadir import Paths, open_data_dir, open_journal
from core.storage.journal import IN_FLIGHT_OPS_MAX_DEFAULT, Journal, Recovery
from core.storage.snapshot import Checkpoint, SnapshotStore
from core.storage.superblock import Superblock, newest_valid, read_copies
from core.vsr.replica import Recovered as CoreRecovered


@dataclasses.dataclass
class Recovered:
    superblock: Superblock
    checkpoint: Checkpoint | None  # None: no checkpoint yet, start from the empty state
    journal: Journal
    journal_recovery: Recovery  # ops checkpoint op + 1 .. journal_recovery.op_max


def recover_storage(root: str, *, cluster: int, replica: int,
                    in_flight_ops_max: int = IN_FLIGHT_OPS_MAX_DEFAULT) -> Recovered:
    superblock = open_data_dir(root, cluster=cluster, replica=replica)
    state = superblock.state
    checkpoint = None
    if state.checkpoint_checksum:  # op 0 may hold format's initial checkpoint
        checkpoint = SnapshotStore(Paths(root).snapshots).load(state.checkpoint_op,
                                                               state.checkpoint_checksum)
    journal, recovery = open_journal(root, state, in_flight_ops_max)
    return Recovered(superblock, checkpoint, journal, recovery)


def read_core_recovered(root: str, *, cluster: int, replica: int,
                        in_flight_ops_max: int = IN_FLIGHT_OPS_MAX_DEFAULT) -> CoreRecovered:
    """to_core_recovered from a read-only look at the data dir (nothing is cut or rewritten):
    for the replication role, once the journal role (the writer) has recovered the dir."""
    copies = read_copies(Paths(root).superblock)
    state = newest_valid(copies)
    check(state.cluster == cluster and state.replica == replica,
          f"{root} belongs to cluster {state.cluster} replica {state.replica}")
    journal, recovery = open_journal(root, state, in_flight_ops_max, read_only=True)
    try:
        return _core_recovered(state, journal, recovery)
    finally:
        journal.close()


def to_core_recovered(recovered: Recovered) -> CoreRecovered:
    """What the VSR core needs to restart (core.vsr.replica.Recovered).

    journal: for each op above the checkpoint up to the journal's op_max, the whole verified
    frame; else the intact 256-byte header of an entry whose body is corrupt; else None for a
    fault (lost or corrupt although possibly durable: the core must never deny it). Ops absent
    from the dict are gaps the journal proves were never durable (never written, or a torn
    write dropped at recovery). An entry reported as not linking is passed whole: the core's
    chain walk decides which side is stale.
    """
    return _core_recovered(recovered.superblock.state, recovered.journal,
                           recovered.journal_recovery)


def _core_recovered(state, journal: Journal, journal_recovery: Recovery) -> CoreRecovered:
    check(state.checkpoint_op == 0 or state.checkpoint_header,
          f"the superblock names checkpoint op {state.checkpoint_op} without its header")
    faulty = {fault.op for fault in journal_recovery.faults}
    entries: dict[int, bytes | None] = {}
    for op in range(state.checkpoint_op + 1, journal.op_max + 1):
        entry = journal.stored(op)
        if entry is not None:
            entries[op] = bytes(entry)
        elif op in faulty:
            entries[op] = None
    return CoreRecovered(view=state.view, log_view=state.log_view, view_op=state.view_op,
                         view_headers=list(state.view_headers),
                         checkpoint_op=state.checkpoint_op,
                         checkpoint_header=state.checkpoint_header, journal=entries)
