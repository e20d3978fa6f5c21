"""One journal suite for both backends: the interface, torn tails, faults, truncation."""

from __future__ import annotations

import os

import pytest

from core.check import InvariantError
from core.storage import ring
from core.storage.journal import MISSING, UNLINKED, EntryFault
from core.storage.journal_writer import TruncatePrefix, Write, run_journal_writer
from core.storage.testing import make_chain, make_prepare
from net import wire
from net.wire import HEADER_SIZE

from .conftest import IN_FLIGHT_OPS, RING_SLOTS, Dir
from .test_datadir_superblock import flip_bit


def write_synced(journal, frames, batch: int = 5) -> None:
    for start in range(0, len(frames), batch):
        journal.write(frames[start:start + batch])
        journal.sync()


def assert_chain(journal, op_from: int, op_to: int) -> None:
    parent = None
    for op, frame in zip(range(op_from, op_to + 1), journal.iterate(op_from)):
        header, _ = wire.decode(frame)
        assert header.op == op
        assert parent is None or header.parent == parent
        parent = wire.frame_checksum(frame)


def test_appended_prepares_read_back_and_survive_a_restart(data_dir):
    frames = make_chain(1, 40)
    write_synced(data_dir.journal, frames)
    assert data_dir.journal.read(17) == frames[16]
    assert list(data_dir.journal.iterate(1)) == frames
    recovery = data_dir.reopen()
    assert (recovery.op_min, recovery.op_max, recovery.faults, recovery.cut_ops) == (1, 40, (), ())
    assert list(data_dir.journal.iterate(1)) == frames


def test_write_refuses_released_ops_and_ops_beyond_the_bound(data_dir):
    journal = data_dir.journal
    write_synced(journal, make_chain(1, 10))
    journal.truncate_prefix(4)
    with pytest.raises(InvariantError, match="released op 4"):
        journal.write(make_chain(4, 1, fill=1))
    bound = journal.op_writable_max()
    with pytest.raises(InvariantError, match="writable bound"):
        journal.write(make_chain(bound + 1, 1))
    journal.write(make_chain(bound, 1))  # the bound itself is writable
    journal.write(make_chain(5, 1, fill=1))


def test_reads_outside_the_log_are_none(data_dir):
    write_synced(data_dir.journal, make_chain(1, 5))
    assert data_dir.journal.read(6) is None
    assert data_dir.journal.read(0) is None


def test_a_torn_last_prepare_is_cut_at_recovery(data_dir):
    frames = make_chain(1, 20)
    write_synced(data_dir.journal, frames)
    path, offset = data_dir.journal.locate(20)
    with open(path, "r+b") as f:  # the last write reached the disk only half way
        f.seek(offset + HEADER_SIZE + 10)
        f.write(b"\0" * 50)
    recovery = data_dir.reopen()
    assert recovery.op_max == 19 and recovery.cut_ops == (20,) and recovery.faults == ()
    assert_chain(data_dir.journal, 1, 19)
    # The replica goes on from op 19 as if 20 had never been written.
    write_synced(data_dir.journal, make_chain(20, 3, parent=wire.frame_checksum(frames[18]),
                                               fill=9))
    assert data_dir.reopen().op_max == 22


def test_a_tail_cut_mid_frame_is_cut_at_recovery(data_dir):
    if data_dir.backend == "ring":
        pytest.skip("ring slots are preallocated: a short file is not a torn write")
    write_synced(data_dir.journal, make_chain(1, 12))
    path, offset = data_dir.journal.locate(12)
    os.truncate(path, offset + 300)
    recovery = data_dir.reopen()
    assert recovery.op_max == 11 and recovery.faults == ()
    assert os.path.getsize(path) == offset  # the stray bytes are gone from the file


def test_torn_writes_in_the_window_are_dropped_and_the_valid_entries_above_stay(data_dir):
    frames = make_chain(1, 20)
    write_synced(data_dir.journal, frames)
    for op in (16, 18):  # pages of a batch reach the disk in any order
        path, offset = data_dir.journal.locate(op)
        flip_bit(path, offset + HEADER_SIZE + 3)
    recovery = data_dir.reopen()
    # Written out of order, 17, 19 and 20 may have been durable before 16 and 18 were
    # written: only the damaged entries go, as gaps the core repairs.
    assert recovery.op_max == 20 and recovery.faults == () and recovery.cut_ops == (16, 18)
    assert data_dir.journal.read(16) is None and data_dir.journal.read(18) is None
    assert [data_dir.journal.read(op) for op in (17, 19, 20)] == [frames[16], frames[18],
                                                                  frames[19]]
    assert data_dir.reopen().cut_ops == ()  # the dropped entries are gone from the disk


def test_a_bit_flip_in_the_middle_is_a_fault_never_dropped(data_dir):
    frames = make_chain(1, 40)
    write_synced(data_dir.journal, frames)
    path, offset = data_dir.journal.locate(10)
    flip_bit(path, offset + HEADER_SIZE + 100)
    recovery = data_dir.reopen()
    assert recovery.op_max == 40 and recovery.cut_ops == ()
    assert [(f.op, f.expected_checksum) for f in recovery.faults] == [
        (10, wire.frame_checksum(frames[9]))]
    with pytest.raises(EntryFault):
        data_dir.journal.read(10)
    with pytest.raises(EntryFault):
        list(data_dir.journal.iterate(1))
    data_dir.journal.repair(frames[9])  # fetched from a peer by (op, expected checksum)
    assert data_dir.journal.read(10) == frames[9]
    recovery = data_dir.reopen()
    assert recovery.faults == () and recovery.op_max == 40
    assert_chain(data_dir.journal, 1, 40)


def test_a_bit_flip_in_a_prepare_header_in_the_middle_is_a_fault(data_dir):
    frames = make_chain(1, 40)
    write_synced(data_dir.journal, frames)
    path, offset = data_dir.journal.locate(12)
    flip_bit(path, offset + 49)  # the size field: the frame's length is no longer known
    recovery = data_dir.reopen()
    assert [f.op for f in recovery.faults] == [12] and recovery.op_max == 40
    assert data_dir.journal.read(13) == frames[12]
    data_dir.journal.repair(frames[11])
    assert data_dir.reopen().faults == ()
    assert_chain(data_dir.journal, 1, 40)


def test_a_repair_must_be_the_prepare_the_chain_names(data_dir):
    frames = make_chain(1, 30)
    write_synced(data_dir.journal, frames)
    path, offset = data_dir.journal.locate(5)
    flip_bit(path, offset + HEADER_SIZE + 1)
    data_dir.reopen()
    impostor = make_chain(5, 1, parent=wire.frame_checksum(frames[3]), fill=7)[0]
    with pytest.raises(InvariantError, match="another prepare"):
        data_dir.journal.repair(impostor)


def test_truncate_suffix_removes_a_losing_suffix_durably(data_dir):
    frames = make_chain(1, 30)
    write_synced(data_dir.journal, frames)
    data_dir.journal.truncate_suffix(22)
    assert data_dir.journal.op_max == 22 and data_dir.journal.read(23) is None
    other = make_chain(23, 4, parent=wire.frame_checksum(frames[21]), fill=3)  # the new view's
    write_synced(data_dir.journal, other)
    recovery = data_dir.reopen()
    assert recovery.op_max == 26 and recovery.faults == ()
    assert list(data_dir.journal.iterate(23)) == other


def test_truncate_prefix_releases_old_ops_and_the_log_goes_on(data_dir):
    frames = make_chain(1, 200)
    journal = data_dir.journal
    for start in range(0, 200, 10):
        journal.write(frames[start:start + 10])
        journal.sync()
        journal.truncate_prefix(max(0, start + 10 - 40))  # checkpoint trails by 40 ops
    superblock = data_dir.superblock()
    superblock.update(checkpoint_op=160)
    superblock.close()
    recovery = data_dir.reopen()
    assert recovery.op_max == 200 and recovery.faults == ()
    assert recovery.op_min <= 161
    assert_chain(data_dir.journal, 161, 200)
    if data_dir.backend == "segmented":
        assert data_dir.journal.segments[0].sequence > 1  # whole old segments were deleted


def test_ring_refuses_to_overwrite_a_slot_above_the_checkpoint(tmp_path):

    directory = Dir(tmp_path / "d", "ring")
    directory.reopen()
    frames = make_chain(1, RING_SLOTS + 1)
    write_synced(directory.journal, frames[:RING_SLOTS])
    with pytest.raises(InvariantError, match="would overwrite"):
        directory.journal.write(frames[RING_SLOTS:])
    directory.journal.truncate_prefix(1)
    directory.journal.write(frames[RING_SLOTS:])
    directory.journal.close()


def test_ring_config_keeps_two_pipelines_of_slots_free():
    ring.validate_config(slots=1024, checkpoint_interval_ops=896, pipeline_max=64)
    with pytest.raises(InvariantError, match="checkpoint_interval"):
        ring.validate_config(slots=1024, checkpoint_interval_ops=897, pipeline_max=64)


def test_ring_a_bit_flip_in_a_redundant_header_is_repaired_from_its_prepare(tmp_path):

    directory = Dir(tmp_path / "d", "ring")
    directory.reopen()
    write_synced(directory.journal, make_chain(1, 30))
    flip_bit(directory.journal.path, directory.journal.header_offset(7) + 20)
    recovery = directory.reopen()
    assert recovery.faults == () and recovery.op_max == 30 and recovery.repaired_headers >= 1
    directory.journal.close()


def test_ring_a_corrupt_prepare_whose_header_proves_it_durable_is_a_fault_even_at_the_tail(tmp_path):

    directory = Dir(tmp_path / "d", "ring")
    directory.reopen()
    frames = make_chain(1, 30)
    write_synced(directory.journal, frames, batch=1)
    directory.journal.write(make_chain(31, 1, parent=wire.frame_checksum(frames[-1])))
    directory.journal.sync()  # op 30's header is written with op 31's batch
    path, offset = directory.journal.locate(30)
    flip_bit(path, offset + HEADER_SIZE + 5)
    recovery = directory.reopen()
    assert [f.op for f in recovery.faults] == [30] and recovery.op_max == 31
    directory.journal.close()


def test_writer_loop_makes_one_group_of_everything_queued(data_dir):
    frames = make_chain(1, 12)
    queued = [[Write(1, frames[0:1])], [Write(2, frames[1:4]), Write(3, frames[4:9]),
                                        TruncatePrefix(0), Write(4, frames[9:12])]]
    reports: list[int] = []
    syncs = []
    original_sync = data_dir.journal.sync
    data_dir.journal.sync = lambda: syncs.append(1) or original_sync()
    durable = run_journal_writer(data_dir.journal, lambda limit: queued.pop(0) if queued else None,
                                 reports.append, in_flight_ops_max=IN_FLIGHT_OPS + 4)
    assert reports == [1, 4] and durable == 4 and len(syncs) == 2
    assert list(data_dir.journal.iterate(1)) == frames


def test_writer_loop_refuses_a_group_beyond_the_recovery_window(data_dir):
    queued = [[Write(1, make_chain(1, IN_FLIGHT_OPS + 1))]]
    with pytest.raises(InvariantError, match="in one group"):
        run_journal_writer(data_dir.journal, lambda limit: queued.pop(0) if queued else None,
                           lambda op: None, in_flight_ops_max=IN_FLIGHT_OPS)


def test_a_log_behind_an_installed_checkpoint_restarts_after_it(data_dir):
    write_synced(data_dir.journal, make_chain(1, 10))
    superblock = data_dir.superblock()
    superblock.update(checkpoint_op=50)  # a snapshot from a peer was installed at op 50
    superblock.close()
    recovery = data_dir.reopen()
    assert (recovery.op_min, recovery.op_max, recovery.faults) == (51, 50, ())
    write_synced(data_dir.journal, make_chain(51, 5, parent=1234))
    recovery = data_dir.reopen()
    assert (recovery.op_max, recovery.faults) == (55, ())


def test_segmented_two_damaged_headers_in_a_row_are_two_faults(data_dir):
    if data_dir.backend != "segmented":
        pytest.skip("segmented resync")
    frames = make_chain(1, 12, 256)
    write_synced(data_dir.journal, frames, batch=12)
    path, offset = data_dir.journal.locate(3)
    flip_bit(path, offset + 49)  # op 3's size
    flip_bit(path, offset + 256 + 49)  # op 4's size
    recovery = data_dir.reopen()
    assert [f.op for f in recovery.faults] == [3, 4]
    assert recovery.faults[1].expected_checksum == wire.frame_checksum(frames[3])
    assert data_dir.journal.read(5) == frames[4]


@pytest.mark.parametrize("frame_size_bytes", [256, 5000, 8192])
def test_ring_slots_larger_than_a_page_hold_small_and_full_prepares(tmp_path, frame_size_bytes):
    from core.storage.datadir import format_data_dir, open_journal
    from core.storage.testing import CLUSTER_TEST
    root = str(tmp_path / "d")
    state = format_data_dir(root, cluster=CLUSTER_TEST, replica=0, replica_count=3,
                            journal_backend="ring", ring_slots=16, ring_slot_size_bytes=8192)
    journal, _ = open_journal(root, state, 4)
    frames = make_chain(1, 40, frame_size_bytes)
    for start in range(0, 40, 4):
        journal.truncate_prefix(max(0, start - 8))
        journal.write(frames[start:start + 4])
        journal.sync()
    journal.close()
    from core.storage.superblock import Superblock
    sb = Superblock(os.path.join(root, "superblock"))
    sb.update(checkpoint_op=32)
    sb.close()
    journal, recovery = open_journal(root, sb.state, 4)
    assert (recovery.op_max, recovery.faults) == (40, ())
    assert list(journal.iterate(33)) == frames[32:]
    journal.close()


# -- write(): out of order, gaps, supersede ---------------------------------------------------


def new_version(frames, op: int, view: int = 1) -> bytes:
    """The prepare a new view puts at op: same parent as the old one, another checksum."""
    old, _ = wire.decode(frames[op - 1])
    return make_prepare(op, old.parent, len(frames[op - 1]), view=view, fill=view + 50)


def test_out_of_order_writes_leave_a_gap_that_a_later_write_fills(data_dir):
    frames = make_chain(1, 30)
    journal = data_dir.journal
    write_synced(journal, frames[:20])
    journal.write([frames[24], frames[22], frames[21]])  # 21, 24 and 25 missing for now
    journal.sync()
    assert journal.op_max == 25 and journal.read(24) is None and journal.read(23) == frames[22]
    journal.write([frames[23], frames[20]])
    journal.sync()
    journal.write(frames[25:30])
    journal.sync()
    recovery = data_dir.reopen()
    assert (recovery.op_max, recovery.faults, recovery.cut_ops) == (30, (), ())
    assert list(data_dir.journal.iterate(1)) == frames


def test_a_gap_below_the_window_is_a_fault_pinned_by_its_successor(data_dir):
    frames = make_chain(1, 30)
    write_synced(data_dir.journal, frames[:9] + frames[10:])  # op 10 never written
    recovery = data_dir.reopen()
    assert [(f.op, f.expected_checksum) for f in recovery.faults] == [
        (10, wire.frame_checksum(frames[9]))]
    data_dir.journal.repair(frames[9])
    assert data_dir.reopen().faults == ()
    assert_chain(data_dir.journal, 1, 30)


def test_a_superseding_write_wins_and_leaves_its_neighbours_untouched(data_dir):
    frames = make_chain(1, 40)
    write_synced(data_dir.journal, frames)
    replacement = new_version(frames, 20)
    data_dir.journal.write([replacement])
    assert data_dir.journal.read(20) == replacement
    data_dir.journal.sync()
    recovery = data_dir.reopen()
    assert recovery.op_max == 40 and recovery.cut_ops == ()
    # Op 21 still names the old op 20: reported so the core repairs it, readable as it is.
    assert [(f.op, f.reason) for f in recovery.faults] == [(21, UNLINKED)]
    assert data_dir.journal.read(20) == replacement
    assert [data_dir.journal.read(op) for op in (19, 21)] == [frames[18], frames[20]]
    assert list(data_dir.journal.iterate(22)) == frames[21:]


@pytest.mark.parametrize("torn", [False, True], ids=["page-cache-kept", "torn"])
def test_a_supersede_lost_to_a_crash_before_sync_never_damages_a_neighbour(data_dir, torn):
    frames = make_chain(1, 40)
    write_synced(data_dir.journal, frames)
    data_dir.journal.sync()  # the ring writes the last batch's headers in the next sync
    replacement = new_version(frames, 20)
    data_dir.journal.write([replacement])  # the crash comes before sync()
    if torn:
        path, offset = data_dir.journal.locate(20)
        flip_bit(path, offset + HEADER_SIZE + 7)
    recovery = data_dir.reopen()
    journal = data_dir.journal
    faults = {f.op: f for f in recovery.faults}
    if torn and data_dir.backend == "ring":
        # Overwritten in place: the slot is damaged, and its header proves the old version
        # durable, so the fault names it; the core repairs the op.
        assert faults[20].reason == MISSING
        assert faults[20].expected_checksum == wire.frame_checksum(frames[19])
    else:
        assert journal.read(20) == (frames[19] if torn else replacement)
    assert set(faults) <= {20, 21}
    assert [journal.read(op) for op in (19, 21)] == [frames[18], frames[20]]
    assert list(journal.iterate(22)) == frames[21:]


def test_truncate_suffix_after_supersedes_drops_every_version_above(data_dir):
    frames = make_chain(1, 30)
    journal = data_dir.journal
    write_synced(journal, frames)
    versions = {op: new_version(frames, op) for op in (10, 25, 28)}
    journal.write(list(versions.values()))
    journal.sync()
    journal.write([new_version(frames, 25, view=2)])  # a third version of op 25, unsynced
    journal.truncate_suffix(22)
    assert journal.op_max == 22 and journal.read(25) is None and journal.read(10) == versions[10]
    recovery = data_dir.reopen()
    assert recovery.op_max == 22 and recovery.cut_ops == ()
    assert data_dir.journal.read(25) is None and data_dir.journal.read(10) == versions[10]
    other = make_chain(23, 4, parent=wire.frame_checksum(frames[21]), fill=3)
    write_synced(data_dir.journal, other)
    recovery = data_dir.reopen()
    assert recovery.op_max == 26 and {f.op for f in recovery.faults} <= {11}
    assert list(data_dir.journal.iterate(23)) == other


def test_segmented_prefix_truncation_keeps_a_segment_only_for_live_records_above_it(data_dir):
    if data_dir.backend != "segmented":
        pytest.skip("segment files")
    journal = data_dir.journal
    frames = make_chain(1, 40, 1000)  # a batch of 9 frames of 1000 bytes fills a segment
    write_synced(journal, frames, batch=9)
    first, second = journal.segments[0], journal.segments[1]
    assert list(first.ops) == list(range(1, 10)) and list(second.ops)[0] == 10
    # Every op of the first segment gets a new version: it holds only superseded records.
    journal.write([new_version(frames, op) for op in range(1, 10)])
    # The second segment keeps one live record (op 12) above the release point.
    journal.write([new_version(frames, op) for op in range(10, 19) if op != 12])
    journal.truncate_prefix(0)  # unsynced: syncs before any segment goes
    names = sorted(os.listdir(data_dir.root + "/journal"))
    assert os.path.basename(first.path) not in names and os.path.basename(second.path) in names
    journal.truncate_prefix(11)
    assert os.path.basename(second.path) in os.listdir(data_dir.root + "/journal")
    journal.truncate_prefix(12)
    assert os.path.basename(second.path) not in os.listdir(data_dir.root + "/journal")
    superblock = data_dir.superblock()
    superblock.update(checkpoint_op=12, checkpoint_header=frames[11][:HEADER_SIZE])
    superblock.close()
    recovery = data_dir.reopen()
    assert recovery.op_max == 40 and {f.reason for f in recovery.faults} <= {UNLINKED}
    assert data_dir.journal.read(13) == new_version(frames, 13)
    assert list(data_dir.journal.iterate(19)) == frames[18:]
