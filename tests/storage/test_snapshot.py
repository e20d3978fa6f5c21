"""Checkpoints: 3 copies, section reuse byte for byte, the superblock names them last."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from core.storage.datadir import Paths, open_data_dir
from core.storage.errors import SnapshotError
from core.storage.recover import recover_storage
from core.storage.snapshot import SNAPSHOT_COPIES, SnapshotStore
from core.storage.snapshot_writer import SnapshotRequest, SnapshotWriter
from core.storage.testing import CLUSTER_TEST, make_prepare
from net.wire import HEADER_SIZE

from .conftest import format_small
from .test_crash import REPO_ROOT
from .test_datadir_superblock import flip_bit

SECTIONS = {"sessions": (1, b"s" * 5000), "streams": (2, os.urandom(20000)), "users": (1, b"")}


@pytest.fixture
def root(tmp_path):
    path = str(tmp_path / "data")
    format_small(path, "segmented")
    return path


def writer_for(root):
    superblock = open_data_dir(root, cluster=CLUSTER_TEST, replica=0)
    return SnapshotWriter(superblock, SnapshotStore(Paths(root).snapshots), None)


def test_a_checkpoint_loads_back_exactly_and_the_superblock_names_it(root):
    writer = writer_for(root)
    prepare_header = make_prepare(100, 0, HEADER_SIZE)  # the core's Checkpoint.header
    written = writer.checkpoint(SnapshotRequest(100, 3, 123456, SECTIONS, prepare_header))
    recovered = recover_storage(root, cluster=CLUSTER_TEST, replica=0)
    assert recovered.superblock.state.checkpoint_op == 100
    assert recovered.superblock.state.checkpoint_checksum == written.header.checksum
    assert recovered.superblock.state.checkpoint_header == prepare_header
    assert recovered.checkpoint.sections == SECTIONS
    header = recovered.checkpoint.header
    assert (header.op, header.view, header.timestamp) == (100, 3, 123456)
    assert len(os.listdir(Paths(root).snapshots)) == SNAPSHOT_COPIES


def test_an_unchanged_section_is_reused_byte_for_byte(root):
    writer = writer_for(root)
    writer.checkpoint(SnapshotRequest(100, 0, 1, SECTIONS))
    changed = {"sessions": (1, b"t" * 10), "streams": (2, None), "users": (1, None)}
    written = writer.checkpoint(SnapshotRequest(200, 0, 2, changed))
    loaded = SnapshotStore(Paths(root).snapshots).load(200, written.header.checksum)
    assert loaded.sections["streams"] == SECTIONS["streams"]
    assert loaded.sections["sessions"] == (1, b"t" * 10)
    assert sorted(os.listdir(Paths(root).snapshots))[0].startswith("checkpoint-00000000000000000200")


def test_a_bit_flip_in_one_copy_is_detected_and_the_next_copy_loads(root):
    writer = writer_for(root)
    written = writer.checkpoint(SnapshotRequest(100, 0, 1, SECTIONS))
    store = SnapshotStore(Paths(root).snapshots)
    entry = written.header.entry("streams")
    flip_bit(store.path(100, 0), entry.offset + 77)
    loaded = store.load(100, written.header.checksum)
    assert loaded.sections == SECTIONS
    assert "section streams corrupt" in loaded.copies[0].problem
    assert [bool(s.problem) for s in store.verify(100, written.header.checksum)] == [True, False, False]


def test_a_torn_header_in_two_copies_still_loads_from_the_third(root):
    written = writer_for(root).checkpoint(SnapshotRequest(100, 0, 1, SECTIONS))
    store = SnapshotStore(Paths(root).snapshots)
    flip_bit(store.path(100, 0), 30)
    os.truncate(store.path(100, 1), 1000)
    assert store.load(100, written.header.checksum).sections == SECTIONS


def test_all_three_copies_bad_is_a_clear_error(root):
    written = writer_for(root).checkpoint(SnapshotRequest(100, 0, 1, SECTIONS))
    store = SnapshotStore(Paths(root).snapshots)
    for copy in range(SNAPSHOT_COPIES):
        flip_bit(store.path(100, copy), 9000)
    with pytest.raises(SnapshotError, match="every copy of checkpoint op=100 is bad"):
        store.load(100, written.header.checksum)


def test_a_copy_of_another_checkpoint_is_rejected_by_the_superblock_checksum(root):
    store = SnapshotStore(Paths(root).snapshots)
    store.write(100, 0, 1, SECTIONS, None)
    with pytest.raises(SnapshotError, match="differs from the superblock"):
        store.load(100, 12345)


def test_a_crash_before_the_superblock_update_recovers_the_previous_checkpoint(root):
    writer = writer_for(root)
    first = writer.checkpoint(SnapshotRequest(100, 0, 1, SECTIONS))
    # The next checkpoint's copies are written, then the process dies before the superblock.
    writer.store.write(200, 0, 2, {"sessions": (1, b"new")}, writer.current)
    recovered = recover_storage(root, cluster=CLUSTER_TEST, replica=0)
    assert recovered.checkpoint.header.checksum == first.header.checksum
    assert recovered.checkpoint.sections == SECTIONS


SNAPSHOT_PROCESS = """
import sys
from core.storage.datadir import Paths, open_data_dir
from core.storage.snapshot import SnapshotStore
from core.storage.snapshot_writer import SnapshotRequest, SnapshotWriter, run_snapshot_writer
root = sys.argv[1]
writer = SnapshotWriter(open_data_dir(root, cluster=7, replica=0), SnapshotStore(Paths(root).snapshots), None)
requests = [SnapshotRequest(op, 1, op * 10, {"streams": (1, bytes([op % 256]) * 10000),
            "users": (1, b"u" * 100 if op == 10 else None)}) for op in (10, 20, 30)]
run_snapshot_writer(writer, lambda: requests.pop(0) if requests else None,
                    lambda op, checksum: print(op, checksum, flush=True))
"""


def test_the_snapshot_writer_runs_in_its_own_process_and_reports_each_checkpoint(root):
    result = subprocess.run([sys.executable, "-c", SNAPSHOT_PROCESS, root], capture_output=True,
                            env={**os.environ, "PYTHONPATH": REPO_ROOT}, timeout=60, check=True)
    done = [tuple(map(int, line.split())) for line in result.stdout.decode().splitlines()]
    assert [op for op, _ in done] == [10, 20, 30]
    recovered = recover_storage(root, cluster=CLUSTER_TEST, replica=0)
    assert recovered.superblock.state.checkpoint_checksum == done[-1][1]
    assert recovered.checkpoint.sections == {"streams": (1, bytes([30]) * 10000),
                                             "users": (1, b"u" * 100)}


def test_a_checkpoint_sent_in_chunks_installs_on_another_replica(tmp_path, root):
    sender = writer_for(root)
    sent = sender.checkpoint(SnapshotRequest(300, 2, 77, SECTIONS))
    receiver_root = str(tmp_path / "receiver")
    format_small(receiver_root, "ring")
    receiver = writer_for(receiver_root)
    total, offset = sent.header.total_size, 0
    while offset < total:
        data, _ = sender.store.chunk(300, sent.header.checksum, offset, 8192)
        receiver.store.receive_chunk(300, offset, data)
        offset += len(data)
    receiver.install(300, sent.header.checksum)
    recovered = recover_storage(receiver_root, cluster=CLUSTER_TEST, replica=0,
                                in_flight_ops_max=8)
    assert recovered.checkpoint.sections == SECTIONS
    assert recovered.superblock.state.checkpoint_op == 300
    assert recovered.journal_recovery.op_max == 300  # the log restarts after the checkpoint
    assert sorted(os.listdir(Paths(receiver_root).snapshots)) == [
        f"checkpoint-{300:020d}.{copy}" for copy in range(SNAPSHOT_COPIES)]


def test_a_corrupt_received_checkpoint_is_refused_and_nothing_changes(tmp_path, root):
    sent = writer_for(root).checkpoint(SnapshotRequest(300, 2, 77, SECTIONS))
    receiver_root = str(tmp_path / "receiver")
    format_small(receiver_root, "segmented")
    receiver = writer_for(receiver_root)
    data, total = SnapshotStore(Paths(root).snapshots).chunk(300, sent.header.checksum, 0,
                                                             sent.header.total_size)
    assert total == sent.header.total_size
    data = bytearray(data)
    data[5000] ^= 1
    receiver.store.receive_chunk(300, 0, bytes(data))
    with pytest.raises(SnapshotError, match="does not verify"):
        receiver.install(300, sent.header.checksum)
    assert receiver.superblock.state.checkpoint_op == 0
