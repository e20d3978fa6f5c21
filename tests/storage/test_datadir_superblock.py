"""Format, open and the superblock: refusals are clear, the newest valid copy wins."""

from __future__ import annotations

import os

import pytest

from core.check import InvariantError
from core.storage.datadir import format_data_dir, open_data_dir
from core.storage.errors import DataDirError
from core.storage.superblock import (
    COPY_STRIDE_BYTES, SUPERBLOCK_COPIES, VIEW_HEADERS_MAX, Superblock, encode_copy, read_copies,
)
from core.storage.testing import CLUSTER_TEST
from net.wire import HEADER_SIZE

from .conftest import format_small


def flip_bit(path, offset: int, bit: int = 0) -> None:
    with open(path, "r+b") as f:
        f.seek(offset)
        byte = f.read(1)[0]
        f.seek(offset)
        f.write(bytes([byte ^ (1 << bit)]))


def test_format_creates_superblock_journal_and_snapshots(tmp_path, backend):
    state = format_small(tmp_path / "d", backend)
    assert sorted(os.listdir(tmp_path / "d")) == ["journal", "snapshots", "superblock"]
    superblock = open_data_dir(str(tmp_path / "d"), cluster=CLUSTER_TEST, replica=0)
    assert superblock.state == state
    assert state.journal_backend == backend
    superblock.close()


def test_format_refuses_a_formatted_dir(tmp_path, backend):
    format_small(tmp_path / "d", backend)
    with pytest.raises(DataDirError, match="already formatted"):
        format_small(tmp_path / "d", backend)


def test_format_refuses_a_non_empty_dir(tmp_path):
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "stray").write_text("x")
    with pytest.raises(DataDirError, match="not empty"):
        format_small(tmp_path / "d", "segmented")


def test_format_rejects_a_replica_outside_the_cluster(tmp_path):
    with pytest.raises(InvariantError):
        format_data_dir(str(tmp_path / "d"), cluster=1, replica=3, replica_count=3)


def test_opening_a_missing_dir_says_to_format(tmp_path):
    with pytest.raises(DataDirError, match="does not exist"):
        open_data_dir(str(tmp_path / "nope"), cluster=CLUSTER_TEST, replica=0)


def test_a_dir_whose_format_was_interrupted_is_refused(tmp_path):
    format_small(tmp_path / "d", "segmented")
    os.rename(tmp_path / "d" / "superblock", tmp_path / "d" / "superblock.partial")
    with pytest.raises(DataDirError, match="half formatted"):
        open_data_dir(str(tmp_path / "d"), cluster=CLUSTER_TEST, replica=0)


def test_format_writes_the_initial_state_as_the_checkpoint_at_op_0(tmp_path):
    from core.storage.recover import recover_storage
    sections = {"users": (1, b"root with a password hash")}
    format_data_dir(str(tmp_path / "d"), cluster=CLUSTER_TEST, replica=0, replica_count=3,
                    initial_sections=sections, initial_timestamp=1234)
    recovered = recover_storage(str(tmp_path / "d"), cluster=CLUSTER_TEST, replica=0)
    assert recovered.checkpoint.sections == sections
    assert (recovered.checkpoint.header.op, recovered.checkpoint.header.timestamp) == (0, 1234)
    recovered.journal.close()


def test_a_dir_of_another_cluster_or_replica_is_refused(tmp_path):
    format_small(tmp_path / "d", "segmented", replica=1)
    with pytest.raises(DataDirError, match="belongs to cluster"):
        open_data_dir(str(tmp_path / "d"), cluster=CLUSTER_TEST + 1, replica=1)
    with pytest.raises(DataDirError, match="belongs to cluster"):
        open_data_dir(str(tmp_path / "d"), cluster=CLUSTER_TEST, replica=0)


def test_update_persists_every_copy_with_the_next_sequence(tmp_path):
    format_small(tmp_path / "d", "segmented")
    path = str(tmp_path / "d" / "superblock")
    superblock = Superblock(path)
    superblock.update(view=3, log_view=2)
    superblock.close()
    copies = read_copies(path)
    assert [c.state.sequence for c in copies] == [1] * SUPERBLOCK_COPIES
    assert Superblock(path).state.view == 3


def test_a_bit_flip_in_one_copy_is_detected_and_the_others_win(tmp_path):
    format_small(tmp_path / "d", "segmented")
    path = str(tmp_path / "d" / "superblock")
    superblock = Superblock(path)
    superblock.update(view=5)
    superblock.close()
    flip_bit(path, 2 * COPY_STRIDE_BYTES + 40)
    copies = read_copies(path)
    assert copies[2].state is None and "checksum" in copies[2].problem
    assert Superblock(path).state.view == 5


def test_a_crash_halfway_through_an_update_recovers_the_new_or_the_old_state(tmp_path):
    format_small(tmp_path / "d", "segmented")
    path = str(tmp_path / "d" / "superblock")
    superblock = Superblock(path)
    old = superblock.update(view=1)
    new = old.__class__(**{**old.__dict__, "view": 2, "sequence": old.sequence + 1})
    superblock.close()
    with open(path, "r+b") as f:  # copies 0 and 1 written, copy 2 torn, copy 3 untouched
        for copy in (0, 1):
            f.seek(copy * COPY_STRIDE_BYTES)
            f.write(encode_copy(new, copy))
        f.seek(2 * COPY_STRIDE_BYTES)
        f.write(encode_copy(new, 2)[:40])  # new checksum and sequence, old view
    assert Superblock(path).state.view == 2
    with open(path, "r+b") as f:  # only copy 3 (old) survives
        for copy in (0, 1):
            f.seek(copy * COPY_STRIDE_BYTES + 10)
            f.write(b"\xff")
    assert Superblock(path).state.view == 1


def test_a_copy_written_in_the_place_of_another_is_rejected(tmp_path):
    format_small(tmp_path / "d", "segmented")
    path = str(tmp_path / "d" / "superblock")
    state = Superblock(path).state
    with open(path, "r+b") as f:
        f.seek(1 * COPY_STRIDE_BYTES)
        f.write(encode_copy(state, 0))
    assert "in the place of copy 1" in read_copies(path)[1].problem


def test_every_copy_corrupt_is_a_clear_error(tmp_path):
    format_small(tmp_path / "d", "segmented")
    path = str(tmp_path / "d" / "superblock")
    for copy in range(SUPERBLOCK_COPIES):
        flip_bit(path, copy * COPY_STRIDE_BYTES + 30)
    with pytest.raises(DataDirError, match="no valid superblock copy"):
        open_data_dir(str(tmp_path / "d"), cluster=CLUSTER_TEST, replica=0)


def test_view_and_checkpoint_never_go_back(tmp_path):
    format_small(tmp_path / "d", "segmented")
    superblock = Superblock(str(tmp_path / "d" / "superblock"))
    superblock.update(view=4, checkpoint_op=10)
    with pytest.raises(InvariantError):
        superblock.update(view=3)
    with pytest.raises(InvariantError):
        superblock.update(checkpoint_op=9)


def view_headers(count: int, op_first: int = 1) -> list[bytes]:
    from core.storage.testing import make_chain
    return [frame[:HEADER_SIZE] for frame in make_chain(op_first, count, HEADER_SIZE + 8)]


def test_view_op_view_headers_and_checkpoint_header_round_trip(tmp_path):
    format_small(tmp_path / "d", "ring")
    path = str(tmp_path / "d" / "superblock")
    headers = view_headers(40, op_first=61)
    checkpoint_header = view_headers(1, op_first=60)[0]
    superblock = Superblock(path)
    assert superblock.state.view_headers == () and superblock.state.checkpoint_header == b""
    superblock.update(view=3, log_view=3, view_op=100, view_headers=headers,
                      checkpoint_op=60, checkpoint_header=checkpoint_header)
    superblock.close()
    state = Superblock(path).state
    assert (state.view, state.log_view, state.view_op) == (3, 3, 100)
    assert list(state.view_headers) == headers and state.checkpoint_header == checkpoint_header
    assert [c.state == state for c in read_copies(path)] == [True] * SUPERBLOCK_COPIES
    # A later checkpoint without its header clears the old one (it named another op).
    superblock = Superblock(path)
    assert superblock.update(checkpoint_op=70).checkpoint_header == b""
    superblock.close()


def test_the_maximum_of_view_headers_fits_every_copy_and_one_more_is_refused(tmp_path):
    format_small(tmp_path / "d", "segmented")
    path = str(tmp_path / "d" / "superblock")
    superblock = Superblock(path)
    headers = view_headers(VIEW_HEADERS_MAX)
    superblock.update(view=1, view_op=VIEW_HEADERS_MAX, view_headers=headers)
    with pytest.raises(InvariantError, match="VIEW_HEADERS_MAX"):
        superblock.update(view_op=VIEW_HEADERS_MAX + 1, view_headers=view_headers(VIEW_HEADERS_MAX + 1))
    with pytest.raises(InvariantError, match="checkpoint header"):
        superblock.update(checkpoint_op=5, checkpoint_header=headers[0])  # op 1's header
    superblock.close()
    assert list(Superblock(path).state.view_headers) == headers
    assert os.path.getsize(path) == SUPERBLOCK_COPIES * COPY_STRIDE_BYTES


def test_a_torn_copy_holding_view_headers_loses_to_the_valid_old_copies(tmp_path):
    format_small(tmp_path / "d", "segmented")
    path = str(tmp_path / "d" / "superblock")
    superblock = Superblock(path)
    old = superblock.update(view=1, view_op=10, view_headers=view_headers(10))
    superblock.close()
    new = old.__class__(**{**old.__dict__, "view": 2, "view_op": 200,
                           "view_headers": tuple(view_headers(200)), "sequence": old.sequence + 1})
    record = encode_copy(new, 0)
    with open(path, "r+b") as f:  # copy 0's first blocks reached the disk, the rest did not
        f.seek(0)
        f.write(record[:2 * 4096])
    copies = read_copies(path)
    assert copies[0].state is None and "checksum" in copies[0].problem
    assert Superblock(path).state == old
    with open(path, "r+b") as f:  # a bit flip deep in the headers of another copy
        f.seek(COPY_STRIDE_BYTES + 512 + 5 * HEADER_SIZE + 100)
        f.write(b"\xff")
    assert read_copies(path)[1].state is None and Superblock(path).state == old
