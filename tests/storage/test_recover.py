"""recover_storage -> to_core_recovered: what the VSR core gets back after a restart."""

from __future__ import annotations

import random

from core.storage.recover import recover_storage, to_core_recovered
from core.storage.testing import CLUSTER_TEST, make_chain
from core.vsr.messages import VsrConfig
from core.vsr.replica import Replica
from net.wire import HEADER_SIZE

from .test_datadir_superblock import flip_bit
from .test_journal import write_synced


def test_the_core_gets_frames_damaged_headers_faults_and_gaps(data_dir):
    frames = make_chain(1, 40)
    journal = data_dir.journal
    write_synced(journal, frames[:19])
    write_synced(journal, frames[20:])  # op 20 is never written: a gap below the window
    for op in (10, 38):  # op 38 lies in the in-flight window: a torn write, dropped
        path, offset = journal.locate(op)
        flip_bit(path, offset + HEADER_SIZE + 9)
    view_headers = [frame[:HEADER_SIZE] for frame in frames[34:]]
    superblock = data_dir.superblock()
    superblock.update(view=2, log_view=2, view_op=40, view_headers=view_headers,
                      checkpoint_op=5, checkpoint_header=frames[4][:HEADER_SIZE])
    superblock.close()
    journal.close()
    data_dir.journal = None

    recovered = recover_storage(data_dir.root, cluster=CLUSTER_TEST, replica=0, in_flight_ops_max=8)
    core = to_core_recovered(recovered)
    assert (core.view, core.log_view, core.view_op) == (2, 2, 40)
    assert core.view_headers == view_headers
    assert (core.checkpoint_op, core.checkpoint_header) == (5, frames[4][:HEADER_SIZE])
    assert sorted(core.journal) == [op for op in range(6, 41) if op != 38]
    assert core.journal[10] == frames[9][:HEADER_SIZE]  # body corrupt, header intact
    assert core.journal[20] is None  # lost although it may have been durable
    assert all(core.journal[op] == frames[op - 1] for op in range(6, 41) if op not in (10, 20, 38))

    replica = Replica(VsrConfig(replica_count=3, cluster=CLUSTER_TEST), 0, random.Random(1), core)
    assert replica.log.head == 40 and {10, 20} <= replica.log.faulty
    recovered.journal.close()
    recovered.superblock.close()
