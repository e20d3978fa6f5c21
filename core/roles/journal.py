"""The journal role: the only writer of the journal and of the superblock.

`JournalRole` is the role's logic without rings (tested with real files): it takes the
replication role's records in order and makes them durable.

  APPEND(seq, op, frame)     written in any op order (Journal.write: gaps and supersedes are
                             the journal's business); one fdatasync per pass covers them all,
                             then DURABLE(highest seq) - every append up to it is durable
  TRUNCATE(op)               pending writes first, then everything above op is dropped, durably
  PERSIST_VIEW               view, log_view, head op and view headers into the superblock
                             (each copy written, fdatasynced, read back), then VIEW_PERSISTED
  CHECKPOINT_WRITTEN+header  the snapshot role's 3 copies are durable: the superblock names the
                             checkpoint, the journal prefix below it minus the retention lag is
                             released, then CHECKPOINT_DONE
  INSTALL_CHECKPOINT+header  state transfer wrote a peer's checkpoint: the superblock names
                             it and the log restarts after it, then CHECKPOINT_INSTALLED

Why one role writes both: the superblock has a sequence number and four copies updated in
turn; two writers would race on them. Ordering within a pass is the order of the records, so
a PersistView is durable before anything the core decided after it reaches the disk.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable

from core import config as config_mod
from core import log
from core.check import check
from core.roles import metrics, records, wiring
from core.roles.records import Kind
from core.roles.supervisor import RoleHandle
from core.storage.journal import BATCH_FRAMES_MAX, IN_FLIGHT_OPS_MAX_DEFAULT, Journal
from core.storage.journal_writer import journal_release_op, retention_for
from core.storage.datadir import Paths
from core.storage.recover import recover_storage
from core.storage.superblock import Superblock
from net.wire import HEADER_SIZE


class JournalRole:
    def __init__(self, journal: Journal, superblock: Superblock, retention_ops: int,
                 observe_fsync: Callable[[float], None] | None = None):
        self.journal = journal
        self.observe_fsync = observe_fsync  # seconds of each group fdatasync (metrics)
        self.superblock = superblock
        self.retention_ops = retention_ops
        self._pending: list[bytes] = []
        self._pending_seq = 0
        self.durable_seq = 0
        self.installed_op = 0  # the newest checkpoint state transfer installed

    def handle(self, record: memoryview, out: list[bytes]) -> None:
        """Process one record; answers for the replication role are appended to out."""
        kind = records.kind_of(record)
        if kind == Kind.APPEND:
            seq, op, frame = records.read_append(record)
            check(seq > self._pending_seq, "append sequence numbers must increase")
            self._pending_seq = seq
            # The core learns of an installed checkpoint a moment after this role: an op it
            # appended meanwhile at or below the checkpoint is in the state already.
            if op > self.installed_op:
                self._pending.append(bytes(frame))
            return
        self.flush(out)  # everything before this record is durable before it takes effect
        if kind == Kind.TRUNCATE:
            self.journal.truncate_suffix(records.read_op(record))
        elif kind == Kind.PERSIST_VIEW:
            view, log_view, op, headers = records.read_persist_view(record)
            raw = bytes(headers)
            check(len(raw) % HEADER_SIZE == 0, "view headers are whole prepare headers")
            self.superblock.update(view=view, log_view=log_view, view_op=op, view_headers=tuple(
                raw[i:i + HEADER_SIZE] for i in range(0, len(raw), HEADER_SIZE)))
            out.append(records.view_persisted(view, log_view))
        elif kind == Kind.CHECKPOINT_WRITTEN:
            op, checksum, header = records.read_checkpoint_written(record)
            check(len(header) == HEADER_SIZE, "a checkpoint is named with its prepare header")
            self.superblock.update(checkpoint_op=op, checkpoint_checksum=checksum,
                                   checkpoint_header=header)
            self.journal.truncate_prefix(journal_release_op(op, self.retention_ops))
            out.append(records.checkpoint_done(op))
        elif kind == Kind.INSTALL_CHECKPOINT:
            op, checksum, header = records.read_op_checksum(record)
            check(op > self.superblock.state.checkpoint_op and len(header) == HEADER_SIZE,
                  f"installed checkpoint {op} must be newer, with its prepare header")
            self.superblock.update(checkpoint_op=op, checkpoint_checksum=checksum,
                                   checkpoint_header=header)
            self.journal.truncate_prefix(op)
            self.installed_op = op
            log.info("checkpoint_installed", op=op)
            out.append(records.checkpoint_installed(op))
        else:
            check(False, f"journal got a record of kind {kind}")

    def flush(self, out: list[bytes]) -> None:
        """Write what is pending, one fdatasync, then report the highest durable sequence."""
        if self._pending_seq == self.durable_seq:
            return
        pending, self._pending = self._pending, []
        if pending:
            for start in range(0, len(pending), BATCH_FRAMES_MAX):
                self.journal.write(pending[start:start + BATCH_FRAMES_MAX])
            started = time.perf_counter()
            self.journal.sync()
            if self.observe_fsync is not None:
                self.observe_fsync(time.perf_counter() - started)
        self.durable_seq = self._pending_seq
        out.append(records.durable(self.durable_seq))


IDLE_WAIT_S = 0.1
SIZE_INTERVAL_S = 1.0  # the journal's size on disk is a stat per file: once a second at most
IN_FLIGHT_OPS_MAX = IN_FLIGHT_OPS_MAX_DEFAULT  # unsynced ops at most: recovery's torn window


def run(context) -> None:
    """The journal process: recover the data dir (cut the torn tail), then write until stop."""
    handle = RoleHandle(context)
    config = config_mod.load(context.settings["config_path"])
    ends = wiring.attach(wiring.geometry_of(config), "journal", context.settings["net_event_fd"])
    recovered = recover_storage(config.data_dir, cluster=config.cluster_id,
                                replica=config.replica, in_flight_ops_max=IN_FLIGHT_OPS_MAX)
    meter = metrics.Meter(handle.counters, "journal", ends.producers)
    retention = retention_for(config.journal.retention_ops,
                              recovered.superblock.state.journal_slots,
                              config.replication.checkpoint_interval,
                              config.replication.pipeline_max)
    role = JournalRole(recovered.journal, recovered.superblock, retention,
                       lambda seconds: meter.observe(metrics.FSYNC_SECONDS, seconds))
    journal_path, next_size_s = Paths(config.data_dir).journal, 0.0
    consumer, producer = ends.consumers["journal"], ends.producers["durable"]
    log.info("journal_ready", op_max=recovered.journal.op_max,
             faults=len(recovered.journal_recovery.faults),
             cut=len(recovered.journal_recovery.cut_ops))
    handle.ready()
    while not handle.stop_requested():
        handle.beat()
        meter.rings()  # every pass, idle ones too: the consumer drains after our last push
        if time.monotonic() >= next_size_s:
            meter.set("journal_size_bytes", _size_bytes(journal_path))
            next_size_s = time.monotonic() + SIZE_INTERVAL_S
        if not ends.doorbell.wait(IDLE_WAIT_S):
            continue
        out: list[bytes] = []
        # At most the recovery window per group: recovery may cut only that many unsynced ops.
        wiring.drain(consumer, IN_FLIGHT_OPS_MAX, lambda record: role.handle(record, out))
        role.flush(out)
        if out:
            producer.push_batch(out)
        meter.set("durable_op", role.journal.op_max)
    # Stopping: replication stopped first (reverse start order), so the journal ring holds all
    # it will ever get: write it (in recovery-window groups, as above); nobody takes answers.
    while consumer.pending():
        wiring.drain(consumer, IN_FLIGHT_OPS_MAX, lambda record: role.handle(record, []))
        role.flush([])
    role.flush([])
    log.info("journal_stopped", op_max=role.journal.op_max)


def _size_bytes(path: str) -> int:
    """Bytes of the journal: its one file (ring backend) or its segment files."""
    if not os.path.isdir(path):
        return os.path.getsize(path) if os.path.exists(path) else 0
    with os.scandir(path) as entries:
        return sum(entry.stat().st_size for entry in entries if entry.is_file())
