"""The replication role: drives the sans-IO VSR core (core/vsr) with ring records and ticks.

`Replication` turns ring records into core inputs and the core's actions into ring records,
without touching rings itself (the process loop does), so it is tested with the real core, the
real owner logic and real frames:

  inbound (net)        CLIENT_REQUEST -> Receive (the connection is remembered per client)
                       PEER_FRAME     -> Receive (checksums were verified by net)
  durable (journal)    DURABLE        -> Durable;  VIEW_PERSISTED releases the view barrier
  applied (owner)      APPLIED        -> Applied (results become replies on the primary)
  snapshot_done        CHECKPOINT_WRITTEN -> forwarded to the journal with the op's header
  durable (journal)    CHECKPOINT_DONE -> CheckpointDone (the superblock names it)

State transfer (core/roles/transfer.py) is steered here but never reaches the core until the
end: a peer's REQUEST_SNAPSHOT goes to the snapshot role (SERVE), which answers with chunk
frames to send; RequestSnapshot starts a `Transfer`, whose chunks go to the snapshot role
(STORE, INSTALL), then the journal (INSTALL_CHECKPOINT), then the owner (RESTORE) and last the
core (SnapshotInstalled).

  Send -> outbound SEND_PEER / BROADCAST     Append, Truncate, PersistView -> journal
  Apply, Query, ReplyFromTable, Checkpoint -> apply (owner)     Reply -> outbound CLIENT_FRAME

The view barrier: the core requires PersistView to be durable before any later action is
carried out. Here the journal role makes it durable, so every action after a PersistView waits
in `_deferred` until the journal's VIEW_PERSISTED arrives; inputs keep flowing into the core
meanwhile (only their effects wait).
"""

from __future__ import annotations

import os
import random
import time
from collections import OrderedDict, deque
from dataclasses import dataclass, field

from core import config as config_mod
from core import log
from core.check import check
from core.roles import metrics, records, wiring
from core.roles.supervisor import RoleHandle
from core.storage import segmented
from core.storage.datadir import Paths
from core.storage.journal_writer import retention_for
from core.storage.recover import read_core_recovered
from core.storage.superblock import newest_valid, read_copies
from core.roles.records import Kind
from core.roles.transfer import Transfer
from core.vsr.messages import (
    BATCH_BYTES_MAX_DEFAULT,
    Append, Applied, AppliedEntry, Apply, Checkpoint, CheckpointDone, Durable, Flush, PersistView,
    Query, Receive, Reply, ReplyFromTable, RequestSnapshot, Send, SnapshotInstalled, Tick,
    Truncate, VsrConfig,
)
from core.vsr.replica import Replica
from net import iggy, wire

CLIENT_CONNECTIONS_MAX = 65_536  # client -> connection map; the oldest entries go first


@dataclass
class Outputs:
    outbound: list[bytes] = field(default_factory=list)  # -> net
    journal: list[bytes] = field(default_factory=list)  # -> journal
    apply: list[bytes] = field(default_factory=list)  # -> owner
    transfer: list[bytes] = field(default_factory=list)  # -> snapshot


TRANSFER_TIMEOUT_MS = 2000  # a peer silent this long mid-transfer is replaced by the next


class Replication:
    def __init__(self, replica, transfer_timeout_ticks: int = 200):
        self.core = replica
        config = replica.config
        self.transfer = Transfer(cluster=config.cluster, replica=replica.replica,
                                 replica_count=config.replica_count,
                                 timeout_ticks=transfer_timeout_ticks)
        self.clients: OrderedDict[bytes, int] = OrderedDict()
        self._deferred: deque = deque()
        self._barrier: tuple[int, int] | None = None
        self._announced: tuple | None = None
        self._checkpoint_headers: dict[int, bytes] = {}  # op -> raw prepare header, in flight

    # --- inputs -------------------------------------------------------------------------

    def handle(self, record: memoryview, out: Outputs) -> None:
        kind = records.kind_of(record)
        if kind == Kind.CLIENT_REQUEST:
            conn, _user, frame = records.read_client_request(record)
            header = wire.decode_header(frame)
            self._remember(header.client, conn)
            self._step(Receive(header, bytes(frame[wire.HEADER_SIZE:]), frame=bytes(frame)), out)
        elif kind == Kind.PEER_FRAME:
            sender, frame = records.read_replica_frame(record)
            frame = bytes(frame)
            header = wire.decode_header(frame)
            if header.command == wire.Command.REQUEST_SNAPSHOT:
                out.transfer.append(records.serve(sender, frame))
            elif header.command == wire.Command.SNAPSHOT_CHUNK:
                stored = self.transfer.on_chunk(header, frame)
                if stored is not None:
                    out.transfer.append(stored)
            else:
                self._step(Receive(header, frame[wire.HEADER_SIZE:], frame=frame), out)
        elif kind == Kind.DURABLE:
            self._step(Durable(records.read_op(record)), out)
        elif kind == Kind.VIEW_PERSISTED:
            if self._barrier == records.read_view_persisted(record):
                self._barrier = None
                self._run_deferred(out)
        elif kind == Kind.APPLIED:
            op, results = records.read_applied(record)
            self._step(Applied(op, [AppliedEntry(client, request, operation, status, result)
                                    for client, request, operation, status, result in results]),
                       out)
        elif kind == Kind.CHECKPOINT_WRITTEN:
            op, checksum, _ = records.read_checkpoint_written(record)
            header = self._checkpoint_headers.get(op)
            check(header is not None, f"checkpoint {op} written but never asked")
            out.journal.append(records.checkpoint_written(op, checksum, header))
        elif kind == Kind.CHECKPOINT_DONE:
            op = records.read_op(record)
            self._checkpoint_headers.pop(op, None)
            self._step(CheckpointDone(op), out)
            self._maybe_install(out)
        elif kind == Kind.SEND_PEER:  # a checkpoint chunk the snapshot role serves
            out.outbound.append(bytes(record))
        elif kind == Kind.CHUNK_STORED:
            out.outbound.extend(self.transfer.on_chunk_stored(*records.read_chunk_stored(record)))
            self._maybe_install(out)
        elif kind == Kind.INSTALLED:
            op, checksum, _ = records.read_op_checksum(record)
            for follow_up in self.transfer.on_installed(op, checksum):
                (out.journal if checksum else out.outbound).append(follow_up)
        elif kind == Kind.CHECKPOINT_INSTALLED:
            op, checksum, header = self.transfer.on_checkpoint_installed(records.read_op(record))
            log.info("state_transfer_installed", op=op, restarts=self.transfer.restarts)
            out.apply.append(records.op_checksum(Kind.RESTORE, op, checksum))
            self._step(SnapshotInstalled(op, header), out)
        else:
            check(False, f"replication got a record of kind {kind}")

    def tick(self, now_us: int, out: Outputs) -> None:
        """Time passes; now_us is the wall clock that stamps the next prepares."""
        self._step(Tick(now_us), out)
        out.outbound.extend(self.transfer.tick())
        self._maybe_install(out)

    def flush(self, out: Outputs) -> None:
        """The pass fed every record it had: the requests that came together share a prepare."""
        self._step(Flush(), out)

    def _maybe_install(self, out: Outputs) -> None:
        install = self.transfer.install_record(self.core.checkpoint_pending is not None)
        if install is not None:
            out.transfer.append(install)

    # --- actions ------------------------------------------------------------------------

    def _step(self, event, out: Outputs) -> None:
        self._deferred.extend(self.core.step(event))
        self._run_deferred(out)
        self._announce_view(out)

    def _run_deferred(self, out: Outputs) -> None:
        deferred = self._deferred
        while deferred and self._barrier is None:
            action = deferred.popleft()
            kind = type(action)
            if kind is Send:
                self._send(action, deferred, out)
            elif kind is Append:
                out.journal.append(records.append(action.seq, action.op, action.frame))
            elif kind is Apply:
                out.apply.append(records.apply(action.frame))
            elif kind is Reply:
                conn = self.clients.get(action.client)
                if conn is not None:
                    out.outbound.append(records.client_frame(conn, iggy.answer_frame(
                        action.header, action.status, action.result, op=action.op,
                        commit=action.commit)))
            elif kind is Query:
                conn = self.clients.get(action.header.client)
                if conn is not None:
                    out.apply.append(records.query(conn, _frame_of(action.header, action.body)))
            elif kind is ReplyFromTable:
                conn = self.clients.get(action.header.client)
                if conn is not None:
                    out.apply.append(records.table_reply(conn, _frame_of(action.header, b"")))
            elif kind is Checkpoint:
                self._checkpoint_headers[action.op] = bytes(action.header[:wire.HEADER_SIZE])
                out.apply.append(records.checkpoint(action.op))
            elif kind is Truncate:
                out.journal.append(records.truncate(action.op))
            elif kind is PersistView:
                out.journal.append(records.persist_view(action.view, action.log_view,
                                                        action.op, action.headers))
                self._barrier = (action.view, action.log_view)
            else:
                check(kind is RequestSnapshot, f"unknown core action {action!r}")
                log.info("state_transfer_started", op=action.op, peer=action.peer,
                         commit_min=self.core.commit_min)
                out.outbound.extend(self.transfer.start(action.peer, self.core.commit_min))

    def _send(self, action: Send, deferred: deque, out: Outputs) -> None:
        # The core sends one frame object to each peer in turn: one BROADCAST record instead.
        others = self.core.config.replica_count - 1
        if others > 1 and len(deferred) >= others - 1 and all(
                type(deferred[i]) is Send and deferred[i].frame is action.frame
                for i in range(others - 1)) and len(
                {action.to} | {deferred[i].to for i in range(others - 1)}) == others:
            for _ in range(others - 1):
                deferred.popleft()
            out.outbound.append(records.broadcast(action.frame))
            return
        out.outbound.append(records.send_peer(action.to, action.frame))

    def _announce_view(self, out: Outputs) -> None:
        core = self.core
        state = (core.view, core.primary_of(core.view), core.status == "normal")
        if state != self._announced:
            log.info("view_status", view=state[0], primary=state[1], normal=state[2],
                     commit=core.commit_max, head=core.log.head)
            self._announced = state
            record = records.view(*state)
            out.outbound.append(record)
            out.apply.append(record)

    def _remember(self, client: bytes, conn: int) -> None:
        clients = self.clients
        clients[client] = conn
        clients.move_to_end(client)
        if len(clients) > CLIENT_CONNECTIONS_MAX:
            clients.popitem(last=False)


def _frame_of(header, body: bytes | memoryview) -> bytes:
    return wire.encode(header._replace(size=0), body, checksums=False)


class Counting:
    """The replication role's metrics (core/roles/metrics.py), read from the core's state once
    per loop turn: a turn handles a whole batch, so this costs nothing per op."""

    def __init__(self, meter: metrics.Meter, core: Replica):
        self.meter = meter
        self.core = core
        self._commit = core.commit_max
        self._view = core.view
        meter.set("replica", core.replica)

    def turn(self) -> None:
        core, meter = self.core, self.meter
        if core.commit_max > self._commit:
            meter.add("ops_committed", core.commit_max - self._commit)
            self._commit = core.commit_max
        if core.view != self._view:
            meter.add("view_changes")
            self._view = core.view
        meter.set("view", core.view)
        meter.set("primary", core.primary_of(core.view))
        meter.set("view_status", metrics.VIEW_STATUS[core.status])
        meter.set("op", core.log.head)
        meter.set("commit_op", core.commit_max)
        meter.set("checkpoint_op", core.checkpoint_op)
        meter.set("apply_lag_ops", max(0, core.commit_max - core.applied))
        meter.set("prepares_in_flight", len(core.pipeline) if core.is_primary else 0)
        meter.rings()


POP_BATCH_MAX = 1024
PEERS_READY_TIMEOUT_S = 120.0  # the owner may restore a large checkpoint first


def vsr_config(config, journal_slots: int = 0, journal_slot_bytes: int = 0) -> VsrConfig:
    """The core's bounds from a replica's config (core.config.Config) and its journal's
    geometry from the superblock (0 slots: segmented): a prepare of several requests must fit
    one ring slot, and no op goes past what the journal accepts."""
    replication = config.replication
    batch_bytes_max = BATCH_BYTES_MAX_DEFAULT
    if journal_slot_bytes:
        batch_bytes_max = min(batch_bytes_max, journal_slot_bytes - wire.HEADER_SIZE)
    return VsrConfig(
        batch_bytes_max=batch_bytes_max,
        journal_slots=journal_slots,
        journal_ops_ahead_max=0 if journal_slots else segmented.OPS_AHEAD_MAX,
        replica_count=config.replica_count, cluster=config.cluster_id,
        pipeline_max=replication.pipeline_max, batch_max=replication.batch_max,
        checkpoint_interval=replication.checkpoint_interval,
        view_headers_max=max(128, replication.pipeline_max + 1),
        journal_retention_ops=retention_for(config.journal.retention_ops, journal_slots,
                                            replication.checkpoint_interval,
                                            replication.pipeline_max),
        tick_us=replication.tick_ms * 1000, heartbeat_ticks=replication.heartbeat_ticks,
        normal_timeout_ticks=replication.view_change_timeout_ticks, batch_on_flush=True)


def run(context) -> None:
    """The replication process: wait for the journal's recovery, restart the core, then turn
    ring records and ticks into core inputs until the supervisor says stop."""
    handle = RoleHandle(context)
    config = config_mod.load(context.settings["config_path"])
    ends = wiring.attach(wiring.geometry_of(config), "replication",
                         context.settings["net_event_fd"])
    # The journal recovers (cuts the torn tail) before the core reads the data dir; the owner
    # loads the checkpoint the superblock names before the core can change which one that is
    # (a state transfer renames it), so both start from the same checkpoint.
    deadline = time.monotonic() + PEERS_READY_TIMEOUT_S
    for role in ("journal", "owner"):
        while not handle.counters.get(role, "ready"):
            check(time.monotonic() < deadline, f"the {role} role never became ready")
            time.sleep(0.01)
    # Randomness is injected into the core: here it is seeded from the OS.
    geometry = newest_valid(read_copies(Paths(config.data_dir).superblock))
    core = Replica(vsr_config(config, geometry.journal_slots, geometry.journal_slot_size_bytes),
                   config.replica,
                   random.Random(int.from_bytes(os.urandom(8), "little")),
                   read_core_recovered(config.data_dir, cluster=config.cluster_id,
                                       replica=config.replica))
    replication = Replication(core, max(1, TRANSFER_TIMEOUT_MS // config.replication.tick_ms))
    counting = Counting(metrics.Meter(handle.counters, "replication", ends.producers), core)
    consumers = [ends.consumers[name] for name in ("inbound", "durable", "applied",
                                                   "snapshot_done")]
    producers = ends.producers
    tick_s = config.replication.tick_ms / 1000
    next_tick = time.monotonic()
    handle.ready()
    log.info("replication_ready", view=core.view, status=core.status,
             commit=core.commit_max, head=core.log.head)
    while not handle.stop_requested():
        handle.beat()
        out = Outputs()
        if ends.doorbell.wait(max(0.0, next_tick - time.monotonic())):
            for consumer in consumers:
                wiring.drain(consumer, POP_BATCH_MAX,
                             lambda record: replication.handle(record, out))
        now = time.monotonic()
        if now >= next_tick:
            replication.tick(time.time_ns() // 1000, out)
            next_tick = max(next_tick + tick_s, now)  # a late tick is not made up in a burst
        replication.flush(out)
        if out.outbound:
            producers["outbound"].push_batch(out.outbound)
        if out.journal:
            producers["journal"].push_batch(out.journal)
        if out.apply:
            producers["apply"].push_batch(out.apply)
        if out.transfer:
            producers["transfer"].push_batch(out.transfer)
        counting.turn()
    log.info("replication_stopped", view=core.view, commit=core.commit_max,
             handed_to_apply=core.commit_min, head=core.log.head)
