"""Bringing a replica's storage back at start: superblock -> checkpoint -> journal.

Owns the recovery order of DESIGN section 6 and nothing else: it opens and verifies, the roles
then run from the result. Never repairs from peers (faults are returned for the replica).
"""

from __future__ import annotations

import dataclasses

from core.storage.datadir import Paths, open_data_dir, open_journal
from core.storage.journal import IN_FLIGHT_OPS_MAX_DEFAULT, Journal, Recovery
from core.storage.snapshot import Checkpoint, SnapshotStore
from core.storage.superblock import Superblock


@dataclasses.dataclass
class Recovered:
    superblock: Superblock
    checkpoint: Checkpoint | None  # None: no checkpoint yet, start from the empty state
    journal: Journal
    journal_recovery: Recovery  # replay ops checkpoint op + 1 .. journal_recovery.op_max


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
