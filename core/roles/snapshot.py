"""The snapshot role: writes checkpoints (3 copies) from the owner's sections.

`SnapshotRole` reassembles the owner's SECTIONS chunks of one checkpoint, writes the composite
file in 3 copies through core/storage/snapshot.py (sections the owner marked unchanged are
reused byte for byte from the previous checkpoint), and reports CHECKPOINT_WRITTEN with the
checkpoint checksum. It never touches the superblock: the journal role names the checkpoint
there (the superblock's only writer), and only then are older checkpoint files removed - at the
next checkpoint, when the superblock is known to name the previous one.

It is also the state-transfer end of the disk (core/roles/transfer.py steers): it serves chunks
of the checkpoint its superblock names to a lagging peer (SERVE -> a SNAPSHOT_CHUNK frame to
send), writes received chunks into the .part file (STORE -> CHUNK_STORED) and installs the
complete file as 3 verified copies (INSTALL -> INSTALLED); the journal role then names it.
"""

from __future__ import annotations

import os
import time

from core import config as config_mod
from core import log
from core.check import check
from core.roles import metrics, records, wiring
from core.roles.owner import SECTIONS_FILE_PREFIX, decode_sections
from core.roles.records import Kind
from core.roles.supervisor import RoleHandle
from core.roles.transfer import CHUNK_BYTES
from core.storage.datadir import Paths
from core.storage.errors import SnapshotError
from core.storage.snapshot import Checkpoint, SnapshotStore
from core.storage.superblock import newest_valid, read_copies
from net import wire
from net.wire import HEADER_SIZE, Command

CHECKPOINT_BYTES_MAX = 1 << 34  # a sections blob larger than this is a bug, not a catalogue


class SnapshotRole:
    def __init__(self, store: SnapshotStore, current: Checkpoint | None, *,
                 superblock_path: str = "", cluster: int = 0, replica: int = 0):
        self.store = store
        self.current = current
        self.superblock_path = superblock_path
        self.cluster = wire.cluster_bytes(cluster)
        self.replica = replica
        self.write_seconds = 0.0  # of the latest checkpoint (metrics)
        self._served: tuple[int, int, bytes] | None = None  # (op, checksum, prepare header)

    def handle(self, record: memoryview, out: list[bytes]) -> None:
        kind = records.kind_of(record)
        if kind == Kind.SECTIONS:
            self._sections(record, out)
        elif kind == Kind.SERVE:
            requester, frame = records.read_replica_frame(record)
            self._serve(requester, wire.decode_header(frame), out)
        elif kind == Kind.STORE:
            self._store(record[1:], out)
        elif kind == Kind.INSTALL:
            self._install(*records.read_op_checksum(record)[:2], out)
        else:
            check(False, f"snapshot got a record of kind {kind}")

    def _sections(self, record: memoryview, out: list[bytes]) -> None:
        op, view, timestamp, path = records.read_sections_file(record)
        check(os.path.dirname(path) == self.store.directory and
              os.path.basename(path).startswith(SECTIONS_FILE_PREFIX),
              f"sections file {path} outside {self.store.directory}")
        with open(path, "rb") as source:
            blob = source.read(CHECKPOINT_BYTES_MAX + 1)
        total = len(blob)
        check(total <= CHECKPOINT_BYTES_MAX, f"checkpoint of more than {total} bytes")
        sections = decode_sections(blob)
        if self.current is not None:
            self.store.remove_other_than(self.current.header.op)
        started = time.perf_counter()
        written = self.store.write(op, view, timestamp, sections, self.current)
        self.write_seconds = time.perf_counter() - started
        self.current = written
        os.unlink(path)  # the 3 copies are durable: the child's file is no longer needed
        log.info("checkpoint_written", op=op, bytes=total)
        out.append(records.checkpoint_written(op, written.header.checksum))

    # --- state transfer -------------------------------------------------------------------

    def _named(self) -> tuple[int, int, bytes] | None:
        """The checkpoint the superblock names now (read-only; the journal role writes it)."""
        state = newest_valid(read_copies(self.superblock_path))
        if not state.checkpoint_checksum:
            return None
        return state.checkpoint_op, state.checkpoint_checksum, state.checkpoint_header

    def _serve(self, requester: int, request, out: list[bytes]) -> None:
        """A chunk of the named checkpoint: where the request left off when it names the same
        checkpoint, else from the start (the requester then restarts its file)."""
        asked = (request.checkpoint_op, request.checkpoint_checksum)
        served = self._served
        if served is None or request.offset == 0 or asked != served[:2]:
            served = self._served = self._named()
        if served is None:
            return  # nothing checkpointed yet: the requester asks another peer
        op, checksum, prepare_header = served
        offset = request.offset if asked == (op, checksum) else 0
        try:
            data, total = self.store.chunk(op, checksum, offset, CHUNK_BYTES)
        except SnapshotError as error:
            # The files moved on (a newer checkpoint) or the offset is bad: the next request
            # reads the superblock again; the requester's timeout covers this silence.
            self._served = None
            log.warning("state_transfer_serve_failed", peer=requester, op=op, reason=str(error))
            return
        header = wire.make_header(Command.SNAPSHOT_CHUNK, cluster=self.cluster,
                                  replica=self.replica, release=wire.WIRE_VERSION,
                                  checkpoint_op=op, checkpoint_checksum=checksum,
                                  offset=offset, total_size=total)
        out.append(records.send_peer(requester, wire.encode(header, prepare_header + data)))

    def _store(self, frame: memoryview, out: list[bytes]) -> None:
        """A chunk the transfer accepted (it continues the .part file): write it."""
        header = wire.decode_header(frame)
        data = frame[2 * HEADER_SIZE:]
        op, offset, total = header.checkpoint_op, header.offset, header.total_size
        check(0 < len(data) and offset + len(data) <= total <= CHECKPOINT_BYTES_MAX,
              f"chunk [{offset}, +{len(data)}) of {total} bytes")
        if offset == 0:
            try:
                os.unlink(self.store.receive_path(op))  # an earlier attempt's leftovers
            except FileNotFoundError:
                pass
        self.store.receive_chunk(op, offset, bytes(data))
        out.append(records.chunk_stored(op, header.checkpoint_checksum, offset + len(data),
                                        total))

    def _install(self, op: int, checksum: int, out: list[bytes]) -> None:
        """Verify the whole received file, then write it as this replica's 3 copies."""
        try:
            installed = self.store.install_received(op, checksum)
        except SnapshotError as error:
            log.warning("state_transfer_refused", op=op, reason=str(error))
            out.append(records.op_checksum(Kind.INSTALLED, op, 0))
            return
        self.current = installed
        log.info("state_transfer_written", op=op, bytes=installed.header.total_size)
        out.append(records.op_checksum(Kind.INSTALLED, op, checksum))


IDLE_WAIT_S = 0.1
POP_BATCH_MAX = 64


def run(context) -> None:
    """The snapshot process: start from the checkpoint the superblock names, write new ones."""
    handle = RoleHandle(context)
    config = config_mod.load(context.settings["config_path"])
    ends = wiring.attach(wiring.geometry_of(config), "snapshot", context.settings["net_event_fd"])
    paths = Paths(config.data_dir)
    state = newest_valid(read_copies(paths.superblock))
    store = SnapshotStore(paths.snapshots)
    current = (store.load(state.checkpoint_op, state.checkpoint_checksum)
               if state.checkpoint_checksum else None)
    for name in os.listdir(paths.snapshots):  # a checkpoint child's file from before a crash
        if name.startswith(SECTIONS_FILE_PREFIX):
            os.unlink(os.path.join(paths.snapshots, name))
    role = SnapshotRole(store, current, superblock_path=paths.superblock,
                        cluster=config.cluster_id, replica=config.replica)
    consumers = (ends.consumers["snapshot"], ends.consumers["transfer"])
    producer = ends.producers["snapshot_done"]
    meter = metrics.Meter(handle.counters, "snapshot", ends.producers)
    handle.ready()
    while not handle.stop_requested():
        handle.beat()
        meter.rings()  # every pass, idle ones too: the consumer drains after our last push
        if not ends.doorbell.wait(IDLE_WAIT_S):
            continue
        out: list[bytes] = []
        for consumer in consumers:
            wiring.drain(consumer, POP_BATCH_MAX, lambda record: role.handle(record, out))
        if out:
            producer.push_batch(out)
            meter.add("checkpoints", sum(
                1 for record in out if records.kind_of(record) == Kind.CHECKPOINT_WRITTEN))
            meter.set("checkpoint_duration_us", round(role.write_seconds * 1e6))
