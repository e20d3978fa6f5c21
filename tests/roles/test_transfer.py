"""State transfer between two replicas' real data dirs, through the roles' logic: the
controller (core/roles/transfer.py) steers, the snapshot roles serve, store and install, the
journal role names the checkpoint and the owner restores it. Records are carried by hand in
place of rings and sockets, so each step can be dropped, reordered or corrupted."""

from __future__ import annotations

import os

import pytest

from core import auth
from core.roles import records
from core.roles import snapshot as snapshot_role_mod
from core.roles import transfer as transfer_mod
from core.roles.journal import JournalRole
from core.roles.owner import Outputs, Owner
from core.roles.records import Kind
from core.roles.snapshot import SnapshotRole
from core.roles.transfer import Phase, Transfer
from core.storage.datadir import Paths, format_data_dir
from core.storage.recover import recover_storage
from core.storage.snapshot import SnapshotStore
from core.storage.snapshot_writer import SnapshotRequest, SnapshotWriter
from core.storage.testing import CLUSTER_TEST, make_chain, make_prepare
from domains import sessions_wire, streams_wire
from domains.mux import MuxStateMachine
from net import wire
from net.iggy import Operation

CHECKPOINT_OP = 300
CLIENT = os.urandom(16)
CHUNK_BYTES_SMALL = 4096  # many chunks from a small catalogue


@pytest.fixture(autouse=True)
def small_chunks(monkeypatch):
    monkeypatch.setattr(transfer_mod, "CHUNK_BYTES", CHUNK_BYTES_SMALL)
    monkeypatch.setattr(snapshot_role_mod, "CHUNK_BYTES", CHUNK_BYTES_SMALL)


def _format(root: str, replica: int) -> None:
    format_data_dir(root, cluster=CLUSTER_TEST, replica=replica, replica_count=3,
                    initial_sections=MuxStateMachine().snapshot())


def _catalogue(streams: int) -> MuxStateMachine:
    mux = MuxStateMachine(auth.hash_secret("root-pw", n_log2=10))
    mux.apply(1, 1000, CLIENT, 0, 0, 0, Operation.REGISTER, sessions_wire.encode_register(0))
    for i in range(streams):
        status, _ = mux.apply(2 + i, 2000 + i, CLIENT, 1, 1 + i, 0, Operation.CREATE_STREAM,
                              streams_wire.encode_create_stream(f"stream-{i:04d}", {}))
        assert status == 0
    return mux


class Source:
    """A replica whose superblock names a checkpoint of `mux` at CHECKPOINT_OP."""

    def __init__(self, root: str, replica: int, mux: MuxStateMachine):
        _format(root, replica)
        recovered = recover_storage(root, cluster=CLUSTER_TEST, replica=replica)
        self.prepare_header = make_prepare(CHECKPOINT_OP, 0, 512)[:wire.HEADER_SIZE]
        writer = SnapshotWriter(recovered.superblock, SnapshotStore(Paths(root).snapshots),
                                None)
        self.checkpoint = writer.checkpoint(SnapshotRequest(
            CHECKPOINT_OP, 1, 5000, mux.snapshot(), self.prepare_header))
        recovered.journal.close()
        self.role = SnapshotRole(SnapshotStore(Paths(root).snapshots), self.checkpoint,
                                 superblock_path=Paths(root).superblock, cluster=CLUSTER_TEST,
                                 replica=replica)

    def answer(self, requester: int, request_record: bytes) -> list[bytes]:
        """The source's SEND_PEER records for a REQUEST_SNAPSHOT sent to it."""
        _, frame = records.read_replica_frame(memoryview(request_record))
        out: list[bytes] = []
        self.role.handle(memoryview(records.serve(requester, bytes(frame))), out)
        return out


class Receiver:
    """The lagging replica: controller, snapshot role, journal role and owner."""

    def __init__(self, root: str):
        _format(root, 1)
        self.root = root
        self.recovered = recover_storage(root, cluster=CLUSTER_TEST, replica=1)
        self.journal = JournalRole(self.recovered.journal, self.recovered.superblock,
                                   retention_ops=2)
        store = SnapshotStore(Paths(root).snapshots)
        self.snapshot = SnapshotRole(store, None, superblock_path=Paths(root).superblock,
                                     cluster=CLUSTER_TEST, replica=1)
        self.owner = Owner(MuxStateMachine(), snapshots=store)
        self.transfer = Transfer(cluster=CLUSTER_TEST, replica=1, replica_count=3,
                                 timeout_ticks=5)

    def take_chunk(self, send_peer_record: bytes) -> list[bytes]:
        """A chunk arrives from a peer: what the controller asks next (SEND_PEER records)."""
        to, frame = records.read_replica_frame(memoryview(send_peer_record))
        assert to == 1
        frame = bytes(frame)
        stored = self.transfer.on_chunk(wire.decode_header(frame), frame)
        if stored is None:
            return []
        out: list[bytes] = []
        self.snapshot.handle(memoryview(stored), out)
        [chunk_stored] = out
        assert records.kind_of(chunk_stored) == Kind.CHUNK_STORED
        return self.transfer.on_chunk_stored(*records.read_chunk_stored(memoryview(chunk_stored)))

    def install(self) -> tuple[int, int, bytes]:
        install = self.transfer.install_record(local_checkpoint_pending=False)
        out: list[bytes] = []
        self.snapshot.handle(memoryview(install), out)
        [installed] = out
        [name_it] = self.transfer.on_installed(*records.read_op_checksum(
            memoryview(installed))[:2])
        assert records.kind_of(name_it) == Kind.INSTALL_CHECKPOINT
        journal_out: list[bytes] = []
        self.journal.handle(memoryview(name_it), journal_out)
        [done] = journal_out
        op, checksum, header = self.transfer.on_checkpoint_installed(
            records.read_op(memoryview(done)))
        self.owner.handle(memoryview(records.op_checksum(Kind.RESTORE, op, checksum)), Outputs())
        return op, checksum, header


def _fetch(source: Source, receiver: Receiver, asks: list[bytes]) -> int:
    chunks = 0
    while asks:
        [ask] = asks
        to, _ = records.read_replica_frame(memoryview(ask))
        assert to == 0
        [chunk] = source.answer(1, ask)
        chunks += 1
        asks = receiver.take_chunk(chunk)
    return chunks


def test_a_checkpoint_moves_in_chunks_and_the_receiver_restores_the_same_state(tmp_path):
    mux = _catalogue(300)
    source = Source(str(tmp_path / "source"), 0, mux)
    receiver = Receiver(str(tmp_path / "receiver"))
    chunks = _fetch(source, receiver, receiver.transfer.start(peer=0, commit_min=0))
    total = source.checkpoint.header.total_size
    assert chunks == -(-total // CHUNK_BYTES_SMALL) and chunks > 3
    assert receiver.transfer.phase is Phase.COMPLETE
    # No install while a local checkpoint is being written: the superblock must see them
    # in order.
    assert receiver.transfer.install_record(local_checkpoint_pending=True) is None

    op, checksum, header = receiver.install()
    assert (op, checksum, header) == (CHECKPOINT_OP, source.checkpoint.header.checksum,
                                      source.prepare_header)
    assert receiver.owner.applied_op == CHECKPOINT_OP
    assert receiver.owner.mux.digest() == mux.digest()
    assert receiver.transfer.phase is Phase.IDLE
    snapshots = sorted(os.listdir(Paths(receiver.root).snapshots))
    assert not [name for name in snapshots if name.startswith("receive-")]
    receiver.recovered.journal.close()
    again = recover_storage(receiver.root, cluster=CLUSTER_TEST, replica=1)
    assert again.superblock.state.checkpoint_op == CHECKPOINT_OP
    assert again.superblock.state.checkpoint_header == source.prepare_header
    assert again.journal.op_max == CHECKPOINT_OP  # the log restarts after the checkpoint


def test_a_silent_peer_is_replaced_and_a_new_checkpoint_restarts_the_file(tmp_path):
    source = Source(str(tmp_path / "source"), 0, _catalogue(100))
    receiver = Receiver(str(tmp_path / "receiver"))
    [ask] = receiver.transfer.start(peer=0, commit_min=0)
    [chunk] = source.answer(1, ask)
    [ask] = receiver.take_chunk(chunk)
    # Peer 0 goes silent: after timeout_ticks the same request goes to peer 2.
    assert all(receiver.transfer.tick() == [] for _ in range(4))
    [retry] = receiver.transfer.tick()
    to, frame = records.read_replica_frame(memoryview(retry))
    assert to == 2
    assert wire.decode_header(bytes(frame)).offset == CHUNK_BYTES_SMALL
    # Peer 2 names another checkpoint (different view in its header): the file restarts at 0.
    other = Source(str(tmp_path / "other"), 2, _catalogue(100))
    [chunk] = other.answer(1, retry)
    assert wire.decode_header(bytes(records.read_replica_frame(memoryview(chunk))[1])).offset == 0
    asks = receiver.take_chunk(chunk)
    assert receiver.transfer.restarts == 1
    while asks:
        [ask] = asks
        [chunk] = other.answer(1, ask)
        asks = receiver.take_chunk(chunk)
    assert receiver.install()[1] == other.checkpoint.header.checksum


def test_useless_late_and_duplicate_chunks_are_ignored(tmp_path):
    source = Source(str(tmp_path / "source"), 0, _catalogue(100))
    receiver = Receiver(str(tmp_path / "receiver"))
    [ask] = receiver.transfer.start(peer=0, commit_min=CHECKPOINT_OP)
    [chunk] = source.answer(1, ask)
    assert receiver.take_chunk(chunk) == []  # not ahead of the receiver's state: no use
    assert receiver.transfer.target is None

    receiver = Receiver(str(tmp_path / "receiver2"))
    [ask] = receiver.transfer.start(peer=0, commit_min=0)
    [first] = source.answer(1, ask)
    [ask] = receiver.take_chunk(first)
    assert receiver.take_chunk(first) == []  # a duplicate of the first chunk
    [second] = source.answer(1, ask)
    [ask] = receiver.take_chunk(second)
    assert receiver.transfer.end == 2 * CHUNK_BYTES_SMALL
    assert receiver.transfer.start(peer=2, commit_min=0) == []  # one transfer at a time


def test_a_received_file_that_does_not_verify_is_fetched_again(tmp_path):
    source = Source(str(tmp_path / "source"), 0, _catalogue(50))
    receiver = Receiver(str(tmp_path / "receiver"))
    _fetch(source, receiver, receiver.transfer.start(peer=0, commit_min=0))
    part = SnapshotStore(Paths(receiver.root).snapshots).receive_path(CHECKPOINT_OP)
    section = max(source.checkpoint.header.sections, key=lambda entry: entry.length)
    with open(part, "r+b") as damaged:  # one bit inside the largest section
        damaged.seek(section.offset + section.length // 2)
        byte = damaged.read(1)
        damaged.seek(section.offset + section.length // 2)
        damaged.write(bytes([byte[0] ^ 1]))
    install = receiver.transfer.install_record(local_checkpoint_pending=False)
    out: list[bytes] = []
    receiver.snapshot.handle(memoryview(install), out)
    [installed] = out
    assert records.read_op_checksum(memoryview(installed))[:2] == (CHECKPOINT_OP, 0)
    [ask] = receiver.transfer.on_installed(CHECKPOINT_OP, 0)
    to, frame = records.read_replica_frame(memoryview(ask))
    header = wire.decode_header(bytes(frame))
    assert to == 2 and (header.checkpoint_op, header.offset) == (0, 0)
    assert recover_storage(receiver.root, cluster=CLUSTER_TEST,
                           replica=1).superblock.state.checkpoint_op == 0


def test_the_journal_drops_appends_at_or_below_an_installed_checkpoint(tmp_path):
    receiver = Receiver(str(tmp_path / "receiver"))
    frames = make_chain(CHECKPOINT_OP - 1, 3)  # ops 299, 300, 301
    out: list[bytes] = []
    receiver.journal.handle(memoryview(records.op_checksum(
        Kind.INSTALL_CHECKPOINT, CHECKPOINT_OP, 0xABC, frames[1][:wire.HEADER_SIZE])), out)
    assert out == [records.checkpoint_installed(CHECKPOINT_OP)]
    out = []
    for seq, frame in enumerate(frames, 1):
        receiver.journal.handle(memoryview(records.append(seq, wire.decode_header(frame).op,
                                                          frame)), out)
    receiver.journal.flush(out)
    assert out == [records.durable(3)]  # every sequence is reported, one fdatasync
    journal = receiver.recovered.journal
    assert journal.read(CHECKPOINT_OP + 1) == frames[2]
    assert journal.read(CHECKPOINT_OP) is None
