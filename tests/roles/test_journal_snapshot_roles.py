"""The journal and snapshot roles' logic over real files: durability is reported only after
fdatasync, the superblock is named in order, checkpoints are written in 3 copies and reused."""

from __future__ import annotations

import os

import pytest

from core import auth
from core.roles import owner as owner_mod
from core.roles import records
from core.roles.journal import JournalRole
from core.roles.records import Kind
from core.roles.snapshot import SnapshotRole
from core.storage.datadir import format_data_dir
from core.storage.recover import recover_storage
from core.storage.snapshot import SnapshotStore
from core.storage.testing import CLUSTER_TEST, make_chain
from domains.mux import MuxStateMachine
from net import wire


def _open(root: str):
    recovered = recover_storage(root, cluster=CLUSTER_TEST, replica=0)
    return recovered, JournalRole(recovered.journal, recovered.superblock, retention_ops=2)


def _run(role: JournalRole, items: list[bytes]) -> list[bytes]:
    out: list[bytes] = []
    for item in items:
        role.handle(memoryview(item), out)
    role.flush(out)
    return out


@pytest.fixture(params=["segmented", "ring"])
def data_dir(request, tmp_path):
    root = str(tmp_path / "r0")
    format_data_dir(root, cluster=CLUSTER_TEST, replica=0, replica_count=3,
                    journal_backend=request.param, ring_slots=256,
                    initial_sections=MuxStateMachine().snapshot())
    return root


def test_appends_in_any_order_are_durable_once_reported(data_dir):
    frames = make_chain(1, 4)
    recovered, role = _open(data_dir)
    order = [0, 1, 3, 2]  # op 4 arrives before op 3 (a gap filled by repair)
    out = _run(role, [records.append(seq, i + 1, frames[i]) for seq, i in enumerate(order, 1)])
    assert out == [records.durable(4)]
    recovered.journal.close()
    again, _ = _open(data_dir)
    assert [again.journal.read(op) for op in range(1, 5)] == frames


def test_view_is_in_the_superblock_before_view_persisted_and_truncate_is_durable(data_dir):
    frames = make_chain(1, 5)
    recovered, role = _open(data_dir)
    headers = [frame[:wire.HEADER_SIZE] for frame in frames[:3]]
    out = _run(role, [records.append(op, op, frames[op - 1]) for op in range(1, 6)]
               + [records.truncate(3), records.persist_view(2, 2, 3, headers)])
    assert [records.kind_of(r) for r in out] == [Kind.DURABLE, Kind.VIEW_PERSISTED]
    recovered.journal.close()
    again, _ = _open(data_dir)
    state = again.superblock.state
    assert (state.view, state.log_view, state.view_op) == (2, 2, 3)
    assert list(state.view_headers) == headers
    assert again.journal.read(4) is None and again.journal.read(3) == frames[2]


def test_a_written_checkpoint_is_named_in_the_superblock_then_done(data_dir):
    frames = make_chain(1, 6)
    recovered, role = _open(data_dir)
    _run(role, [records.append(op, op, frames[op - 1]) for op in range(1, 7)])
    out = _run(role, [records.checkpoint_written(5, 0xABCDEF, frames[4][:wire.HEADER_SIZE])])
    assert out == [records.checkpoint_done(5)]
    state = recovered.superblock.state
    assert (state.checkpoint_op, state.checkpoint_checksum) == (5, 0xABCDEF)
    assert state.checkpoint_header == frames[4][:wire.HEADER_SIZE]


def test_snapshot_role_writes_three_copies_the_owner_sections_restore(tmp_path):
    mux = MuxStateMachine(auth.hash_secret("pw", n_log2=10))
    store = SnapshotStore(str(tmp_path))
    owner = owner_mod.Owner(mux, snapshots=store)
    role = SnapshotRole(store, None)
    owner.handle(memoryview(records.checkpoint(0)), owner_mod.Outputs())
    cut = owner_mod.Outputs()
    owner.poll_checkpoint(cut, wait=True)
    out: list[bytes] = []
    for record in cut.snapshot:
        role.handle(memoryview(record), out)
    [written] = out
    op, checksum, _ = records.read_checkpoint_written(memoryview(written))
    assert op == 0
    restored = MuxStateMachine()
    restored.restore(store.load(op, checksum).sections)
    assert restored.digest() == mux.digest()
    assert all(status.problem == "" for status in store.verify(op, checksum))
    assert not [name for name in os.listdir(tmp_path) if name.startswith("sections-")]
