"""The snapshot role: writes checkpoints (3 copies) from the owner's sections.

`SnapshotRole` reassembles the owner's SECTIONS chunks of one checkpoint, writes the composite
file in 3 copies through core/storage/snapshot.py (sections the owner marked unchanged are
reused byte for byte from the previous checkpoint), and reports CHECKPOINT_WRITTEN with the
checkpoint checksum. It never touches the superblock: the journal role names the checkpoint
there (the superblock's only writer), and only then are older checkpoint files removed - at the
next checkpoint, when the superblock is known to name the previous one.
"""

from __future__ import annotations

import time

from core import config as config_mod
from core import log
from core.check import check
from core.roles import metrics, records, wiring
from core.roles.owner import decode_sections, decode_sections_chunk
from core.roles.supervisor import RoleHandle
from core.storage.datadir import Paths
from core.storage.snapshot import Checkpoint, SnapshotStore
from core.storage.superblock import newest_valid, read_copies

CHECKPOINT_BYTES_MAX = 1 << 34  # a sections blob larger than this is a bug, not a catalogue


class SnapshotRole:
    def __init__(self, store: SnapshotStore, current: Checkpoint | None):
        self.store = store
        self.current = current
        self._op = -1
        self._blob = bytearray()
        self.write_seconds = 0.0  # of the latest checkpoint (metrics)

    def handle(self, record: memoryview, out: list[bytes]) -> None:
        op, view, timestamp, offset, total, chunk = decode_sections_chunk(record)
        check(total <= CHECKPOINT_BYTES_MAX, f"checkpoint of {total} bytes")
        if offset == 0:
            self._op = op
            self._blob = bytearray()
        check(op == self._op and offset == len(self._blob),
              f"sections chunk op={op} offset={offset} out of order")
        self._blob += chunk
        if len(self._blob) < total:
            return
        check(len(self._blob) == total, "sections longer than announced")
        sections = decode_sections(bytes(self._blob))
        self._blob = bytearray()
        if self.current is not None:
            self.store.remove_other_than(self.current.header.op)
        started = time.perf_counter()
        written = self.store.write(op, view, timestamp, sections, self.current)
        self.write_seconds = time.perf_counter() - started
        self.current = written
        log.info("checkpoint_written", op=op, bytes=total)
        out.append(records.checkpoint_written(op, written.header.checksum))


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
    role = SnapshotRole(store, current)
    consumer, producer = ends.consumers["snapshot"], ends.producers["snapshot_done"]
    meter = metrics.Meter(handle.counters, "snapshot", ends.producers)
    handle.ready()
    while not handle.stop_requested():
        handle.beat()
        meter.rings()  # every pass, idle ones too: the consumer drains after our last push
        if not ends.doorbell.wait(IDLE_WAIT_S):
            continue
        out: list[bytes] = []
        wiring.drain(consumer, POP_BATCH_MAX, lambda record: role.handle(record, out))
        if out:
            producer.push_batch(out)
            meter.add("checkpoints", len(out))
            meter.set("checkpoint_duration_us", round(role.write_seconds * 1e6))
