"""The sans-IO VSR replica: `Replica.step(input) -> list of actions` (DESIGN section 5).

Owns the protocol state of one replica: status, view, log_view, commit numbers, the primary's
pipeline and request queue, view-change votes, repair, read-index rounds, checkpoint and state
transfer triggers. It never does I/O, reads clocks or draws randomness of its own: time is
`Tick`, randomness is the injected `random.Random`, storage and network are actions out and
inputs in (see core/vsr/messages.py for the contract, including action ordering).

Safety in one paragraph: a backup acknowledges a prepare only once it is durable; the primary
commits an op when a quorum including itself holds it durably, ops in order; a view change
takes the log of the highest log_view (view_change.merge) and persists view, log_view and the
log's head before revealing them; trust in any local entry flows down the hash chain from the
canonical head (core/vsr/log.py), so a stale or corrupt entry is never applied, and only a
quorum's proof (nacks) removes an op. Statuses: normal, view_change, recovering (restarted:
asks for the view with request_start_view, and votes only after that times out).
"""

from __future__ import annotations

import random
from collections import deque

from core.check import check
from core.vsr.clients import ClientSessions
from core.vsr.log import Log
from core.vsr.messages import (
    OPERATION_NON_REPLICATED, OPERATION_REGISTER, PREPARE_BATCH, STATUS_NORMAL, STATUS_RECOVERING,
    STATUS_VIEW_CHANGE, Append, Applied, Apply, Checkpoint, CheckpointDone, Durable, Flush,
    PersistView, Query, Receive, Reply, ReplyFromTable, RequestSnapshot, Send,
    SnapshotInstalled, Tick, Truncate, VsrConfig,
)
from core.vsr.pipeline import Pipeline
from core.vsr.read_index import ReadIndex
from core.vsr.view_change import (
    DoViewChange, decode_dvc_body, decode_headers, encode_dvc_body, encode_headers, merge,
)
from net import batch as batch_codec
from net.wire import (
    HEADER_SIZE, WIRE_VERSION, Command, FrameError, cluster_bytes, decode_header, encode,
    make_header,
)


class Recovered:
    """What a restarted replica finds on disk: superblock fields and journal entries.

    journal: op -> frame bytes (valid), or a 256-byte header (body corrupt, header intact), or
    None (corrupt, identity unknown). The possibly-torn tail is already cut by the journal.
    """

    __slots__ = ("view", "log_view", "view_op", "view_headers", "checkpoint_op",
                 "checkpoint_header", "journal")

    def __init__(self, view: int, log_view: int, view_op: int, view_headers: list[bytes],
                 checkpoint_op: int, checkpoint_header: bytes, journal: dict) -> None:
        self.view = view
        self.log_view = log_view
        self.view_op = view_op
        self.view_headers = view_headers
        self.checkpoint_op = checkpoint_op
        self.checkpoint_header = checkpoint_header  # b"" when checkpoint_op is 0 (the root)
        self.journal = journal


class Replica:
    def __init__(self, config: VsrConfig, replica: int, rng: random.Random,
                 recovered: Recovered | None = None) -> None:
        check(0 <= replica < config.replica_count, "replica index out of range")
        self.config = config
        self.replica = replica
        self.rng = rng
        self.cluster = cluster_bytes(config.cluster)
        self.status = STATUS_NORMAL
        self.view = 0
        self.log_view = 0
        self.checkpoint_op = 0
        self.checkpoint_pending: int | None = None
        self.commit_min = 0  # highest op handed to Apply: final, never changes
        self.commit_max = 0  # highest op known committed
        self.applied = 0
        self.log = Log(0)
        self.append_seq = 0
        self.appends_pending: deque = deque()
        self.pipeline = Pipeline(config.quorum, replica)
        self.queue: deque = deque()
        self.sessions = ClientSessions(config.clients_max)
        self.reads = ReadIndex(config.quorum, replica)
        self._jitter = 0
        self._frame: bytes | None = None
        self.svc_from: set[int] = set()
        self.dvcs: dict[int, DoViewChange] = {}
        self.dvc_sent = False
        self.peer_checkpoint: dict[int, int] = {}
        self.snapshot_requested = False
        self.ticks = 0
        self.heard_primary_tick = 0
        self.status_since_tick = 0
        self.last_heartbeat_tick = 0
        self.last_timestamp_us = 0
        self.clock_us = 0  # the caller's wall clock at the last Tick (0: use ticks)
        self.view_start_head = 0
        self.actions: list = []
        if recovered is None:
            self._install_root()
        else:
            self._recover(recovered)

    # ------------------------------------------------------------ entry point

    def step(self, event) -> list:
        """Feed one input; return the actions to execute in order."""
        self.actions = []
        kind = type(event)
        self._frame = None
        if kind is Receive:
            self._frame = event.frame
            self._on_receive(event)
        elif kind is Tick:
            if event.now_us:
                self.clock_us = event.now_us
            self._on_tick()
        elif kind is Durable:
            self._on_durable(event.seq)
        elif kind is Applied:
            self._on_applied(event)
        elif kind is CheckpointDone:
            self._on_checkpoint_done(event.op)
        elif kind is SnapshotInstalled:
            self._on_snapshot_installed(event.op, event.header)
        else:
            check(kind is Flush, f"unknown input {kind.__name__}")
        if self.status == STATUS_NORMAL and self.is_primary and (
                kind is Flush or not self.config.batch_on_flush):
            self._prepare_queued()
            self._maybe_start_read_round()
        self._dispatch_commits()
        actions, self.actions = self.actions, []
        return actions

    def _now_us(self) -> int:
        # Timestamps only ever come from the caller (a Tick), never from a clock read here.
        return self.clock_us or self.ticks * self.config.tick_us

    @property
    def is_primary(self) -> bool:
        return self.view % self.config.replica_count == self.replica

    def primary_of(self, view: int) -> int:
        return view % self.config.replica_count

    # ------------------------------------------------------------ setup

    def _install_root(self) -> None:
        # Op 0 is the root prepare every replica shares, so op 1 has a parent to chain to.
        header, frame = self._build_prepare(op=0, parent=0, body=b"", count=0, timestamp=0,
                                            view=0)
        self.log.set_frame(header, frame)
        self.log.durable[0] = header.checksum

    def _recover(self, rec: Recovered) -> None:
        self.view = rec.view
        self.log_view = rec.log_view
        self.checkpoint_op = rec.checkpoint_op
        self.commit_min = self.commit_max = self.applied = rec.checkpoint_op
        self.log = Log(rec.checkpoint_op)
        if rec.checkpoint_op == 0:
            self._install_root()
        else:
            (header, raw), = decode_headers(rec.checkpoint_header).values()
            check(header.op == rec.checkpoint_op, "the checkpoint header names another op")
            self.log.set_header(header, raw)
        for op in sorted(rec.journal):
            entry = rec.journal[op]
            if entry is None:
                self.log.head = max(self.log.head, op)
                self.log.faulty.add(op)
                continue
            header = decode_header(entry)
            if len(entry) == header.size:
                self.log.set_frame(header, entry)
                self.log.durable[op] = header.checksum
            else:
                self.log.set_header(header, entry)
                self.log.faulty.add(op)
        for op, (header, raw) in sorted(decode_headers(b"".join(rec.view_headers)).items()):
            if op > self.log.floor and self.log.checksum(op) != header.checksum:
                self.log.set_header(header, raw)
        # The head promised with log_view stands even if the journal lost its tail.
        self.log.head = max(self.log.head, rec.view_op)
        if rec.log_view > 0:
            # Trust what came with the view, contiguous up to its head; the journal's entries
            # above that head were prepared in log_view, so they are canonical too.
            view_ops = set(decode_headers(b"".join(rec.view_headers)))
            journal_above = {op for op in rec.journal if op > rec.view_op}
            self.log.trust_window(view_ops | journal_above | {
                op for op in range(rec.view_op + 1, self.log.head + 1)})
        self.log.walk_chain()
        # A prepare names the commit its primary knew; a chain-verified one proves it.
        for op in range(self.log.verified_from, self.log.head + 1):
            header = self.log.headers.get(op)
            if header is not None:
                self.commit_max = max(self.commit_max, min(header.commit, op))
        self.status = STATUS_RECOVERING
        self.status_since_tick = 0
        # After a whole-cluster restart nobody answers request_start_view: the jitter keeps
        # the restarted replicas from starting competing view changes in lockstep.
        self._jitter = self.rng.randrange(self.config.view_change_timeout_ticks)

    # ------------------------------------------------------------ frames

    def _header(self, command: Command, **fields):
        # One template per command (make_header parses the layout each call): hot path.
        template = _TEMPLATES.get((command, self.replica, self.cluster))
        if template is None:
            template = make_header(command, cluster=self.cluster, release=WIRE_VERSION,
                                   replica=self.replica)
            _TEMPLATES[(command, self.replica, self.cluster)] = template
        fields.setdefault("view", self.view)
        return template._replace(**fields)

    def _send(self, to: int, command: Command, body: bytes = b"", **fields) -> None:
        check(to != self.replica, "a replica never sends to itself")
        self.actions.append(Send(to, encode(self._header(command, **fields), body)))

    def _broadcast(self, command: Command, body: bytes = b"", **fields) -> None:
        frame = encode(self._header(command, **fields), body)
        for to in range(self.config.replica_count):
            if to != self.replica:
                self.actions.append(Send(to, frame))

    def _build_prepare(self, *, op, parent, body, count, timestamp, view):
        header = make_header(Command.PREPARE, cluster=cluster_bytes(self.config.cluster),
                             view=view, release=WIRE_VERSION,
                             replica=view % self.config.replica_count, parent=parent, op=op,
                             commit=self.commit_max, timestamp=timestamp,
                             request_count=count, operation=PREPARE_BATCH,
                             checkpoint_op=self.checkpoint_op)
        frame = encode(header, body)
        return decode_header(frame), frame

    def _persist_view(self) -> None:
        # The view's headers go with view/log_view, so after a crash the replica's head is at
        # least the head of the log it promised in this log_view, even if the journal lost the
        # unsynced prepares (TigerBeetle's view headers).
        self.actions.append(PersistView(self.view, self.log_view, self.log.head,
                                        self.log.verified_headers(self.config.view_headers_max)))

    # ------------------------------------------------------------ dispatch

    def _on_receive(self, event: Receive) -> None:
        h = event.header
        if h.command == Command.REQUEST:
            self._on_request(h, event.body, event.stale)
            return
        if h.cluster != self.cluster or h.replica >= self.config.replica_count:
            return
        # A prepare names the primary that made it, not its sender: a repair answer may carry
        # our own old prepare back to us. Every other command names its sender.
        if h.replica == self.replica and h.command != Command.PREPARE:
            return
        checkpoint_op = getattr(h, "checkpoint_op", None)
        if checkpoint_op is not None:
            self.peer_checkpoint[h.replica] = max(self.peer_checkpoint.get(h.replica, 0),
                                                  checkpoint_op)
        handler = _HANDLERS.get(h.command)
        if handler is not None:
            handler(self, h, event.body)

    def _on_tick(self) -> None:
        self.ticks += 1
        cfg = self.config
        if self.status == STATUS_NORMAL:
            if self.is_primary:
                if self.pipeline.stalled_since(self.ticks) >= cfg.primary_stall_ticks:
                    self._start_view_change(self.view + 1)
                    return
                if self.ticks - self.last_heartbeat_tick >= cfg.heartbeat_ticks:
                    self._heartbeat()
                for op, missing in self.pipeline.resend_due(self.ticks, cfg.prepare_resend_ticks,
                                                            self.config.replica_count):
                    frame = self._frame_in_view(op)
                    if frame is not None:
                        for to in missing:
                            if to != self.replica:
                                self.actions.append(Send(to, frame))
            elif self.ticks - self.heard_primary_tick >= cfg.normal_timeout_ticks:
                self._start_view_change(self.view + 1)
                return
        elif self.status == STATUS_VIEW_CHANGE:
            waited = self.ticks - self.status_since_tick
            # Jitter keeps competing replicas from timing out in lockstep forever.
            if waited >= cfg.view_change_timeout_ticks + self._jitter:
                self._start_view_change(self.view + 1)
                return
            if waited % cfg.view_change_resend_ticks == 0:
                self._broadcast(Command.START_VIEW_CHANGE)
                if self.dvc_sent:
                    self._send_do_view_change()
        elif self.status == STATUS_RECOVERING:
            waited = self.ticks - self.status_since_tick
            if waited >= cfg.request_start_view_timeout_ticks + self._jitter:
                # Nobody answered with the current view (a whole-cluster restart): vote.
                self._start_view_change(self.view + 1)
                return
            if waited % cfg.view_change_resend_ticks == 1:
                self._broadcast(Command.REQUEST_START_VIEW, nonce=self.ticks)
        if self.ticks % cfg.repair_ticks == 0:
            self._repair()

    # ------------------------------------------------------------ normal case: primary

    def _on_request(self, h, body, stale: bool) -> None:
        if h.operation == OPERATION_NON_REPLICATED:
            if stale:
                self.actions.append(Query(h, body, self.applied))
            elif self.status == STATUS_NORMAL and self.is_primary:
                # A new primary's commit number may lag ops the old primary committed (and
                # acknowledged); they are all at or below the head it started the view with,
                # so the read waits for that too.
                self.reads.add(h, body, max(self.commit_max, self.view_start_head))
            return
        if self.status != STATUS_NORMAL or not self.is_primary:
            return
        verdict = self.sessions.admit(h.client, h.request)
        if verdict == "cached":
            self.actions.append(ReplyFromTable(h))
            return
        if verdict != "new" or len(self.queue) >= self.config.request_queue_max:
            return  # an in-flight retry, a stale duplicate, or backpressure: client retries
        self.sessions.start(h.client, h.request, h)
        self.queue.append((h, bytes(body)))

    def _prepare_queued(self) -> None:
        cfg = self.config
        if self.log.head not in self.log.headers:
            return  # the head's identity is being repaired: nothing to chain to yet
        bound = self._journal_bound()
        while self.queue and len(self.pipeline) < cfg.pipeline_max and (
                bound is None or self.log.head < bound):
            entries = []
            size = 0
            while self.queue and len(entries) < cfg.batch_max:
                h, body = self.queue[0]
                entry_bytes = batch_codec.entry_size(len(body))
                if entries and size + entry_bytes > cfg.batch_bytes_max:
                    break
                self.queue.popleft()
                size += entry_bytes
                entries.append(batch_codec.BatchEntry(h.client, h.session, h.request,
                                                      h.operation, h.user_id, body))
                if h.operation == OPERATION_REGISTER:
                    break  # a session is numbered by its op: at most one Register per prepare
            op = self.log.head + 1
            parent = self.log.headers[self.log.head].checksum
            # Strictly increasing timestamps: every replica applies with the primary's stamp.
            timestamp = max(self._now_us(), self.last_timestamp_us + 1)
            self.last_timestamp_us = timestamp
            header, frame = self._build_prepare(op=op, parent=parent,
                                                body=batch_codec.encode_batch(entries),
                                                count=len(entries), timestamp=timestamp,
                                                view=self.view)
            self.log.set_frame(header, frame)
            self._append(op, frame)
            self.pipeline.push(op, self.ticks)
            for to in range(cfg.replica_count):
                if to != self.replica:
                    self.actions.append(Send(to, frame))

    def _frame_in_view(self, op: int) -> bytes | None:
        """The prepare at op stamped with the current view, for (re)sending as primary.

        Safe because the identity checksum leaves the view out: backups see the same prepare,
        and a prepare carrying view v can only come from the primary of v."""
        frame = self.log.frames.get(op)
        if frame is None:
            return None
        header = self.log.headers[op]
        if header.view == self.view:
            return frame
        return encode(header._replace(view=self.view), memoryview(frame)[HEADER_SIZE:])

    def _append(self, op: int, frame: bytes) -> None:
        self.append_seq += 1
        self.appends_pending.append((self.append_seq, op, self.log.headers[op].checksum))
        self.actions.append(Append(self.append_seq, op, frame))

    def _on_durable(self, seq: int) -> None:
        newly = []
        while self.appends_pending and self.appends_pending[0][0] <= seq:
            _, op, checksum = self.appends_pending.popleft()
            header = self.log.headers.get(op)
            if header is not None and header.checksum == checksum and op in self.log.frames:
                self.log.durable[op] = checksum
                self.log.faulty.discard(op)
                newly.append(op)
        if self.status != STATUS_NORMAL:
            return
        for op in newly:
            checksum = self.log.durable[op]
            if self.is_primary:
                self.pipeline.ack(op, self.replica)
            elif op > self.commit_min:
                self._send(self.primary_of(self.view), Command.PREPARE_OK,
                           prepare_checksum=checksum, op=op, commit=self.commit_max,
                           checkpoint_op=self.checkpoint_op)
        if self.is_primary:
            self._commit_pipeline()

    def _on_prepare_ok(self, h, body) -> None:
        if self.status != STATUS_NORMAL or not self.is_primary or h.view != self.view:
            return
        # Count the ack only for the prepare our log holds at that op (same identity).
        if self.log.checksum(h.op) == h.prepare_checksum:
            self.pipeline.ack(h.op, h.replica)
            self._commit_pipeline()

    def _commit_pipeline(self) -> None:
        committed = self.pipeline.pop_committed(self.ticks)
        if committed is not None:
            # The pipeline holds exactly the ops above commit_max, so this only moves forward.
            check(committed > self.commit_max, "pipeline committed an op twice")
            self.commit_max = committed

    def _heartbeat(self) -> None:
        self.last_heartbeat_tick = self.ticks
        round_number = self.reads.start_round()
        header = self.log.headers.get(self.commit_max)
        self._broadcast(Command.COMMIT, commit=self.commit_max,
                        commit_checksum=header.checksum if header is not None else 0,
                        timestamp_monotonic=self.ticks, checkpoint_op=self.checkpoint_op,
                        heartbeat=round_number)

    def _maybe_start_read_round(self) -> None:
        if self.reads.needs_round():
            self._heartbeat()
            # A one-replica cluster is its own quorum: the round is confirmed as it starts.
            self._answer_reads()

    def _on_commit_ack(self, h, body) -> None:
        if self.status != STATUS_NORMAL or not self.is_primary or h.view != self.view:
            return
        self.reads.ack(h.heartbeat, h.replica)
        self._answer_reads()
        self._maybe_start_read_round()

    def _answer_reads(self) -> None:
        for h, body, op in self.reads.ready(self.applied):
            self.actions.append(Query(h, body, op))

    # ------------------------------------------------------------ normal case: backup

    def _on_prepare(self, h, body) -> None:
        frame = self._frame if self._frame is not None else encode(h, body)
        if self._wanted(h):
            # A repair answer (prepared in any view): its identity is one this replica's
            # chain demands, so it is canonical whatever view it carries.
            self._store_repaired(h, frame)
            if h.view > self.view:
                self._request_start_view(self.primary_of(h.view))
            return
        if h.view > self.view:
            # A newer view is running (its primary stamped this prepare): ask for it.
            self._request_start_view(self.primary_of(h.view))
            return
        if self.status != STATUS_NORMAL:
            return
        # A prepare stamped with our view comes from our view's primary (the view is outside
        # the identity, so its replica field may still name the primary that first made it).
        if h.view != self.view or self.is_primary:
            return
        self.heard_primary_tick = self.ticks
        self._learn_commit(h.commit)
        known = self.log.headers.get(h.op)
        if known is not None and known.checksum == h.checksum:
            if self.log.durable.get(h.op) == h.checksum:
                # A resent prepare: our prepare_ok was lost (or the op is already committed
                # here but the primary has not counted us yet).
                self._send(self.primary_of(self.view), Command.PREPARE_OK,
                           prepare_checksum=h.checksum, op=h.op, commit=self.commit_max,
                           checkpoint_op=self.checkpoint_op)
            return
        if h.op <= self.commit_min:
            return  # applied ops never change; a differing copy here would be a bug upstream
        # The primary's prepare is canonical for this view: it replaces whatever we held at
        # its op (a stale entry from an older view) and the chain walk fixes what is below.
        self._store_repaired(h, frame)

    def _wanted(self, h) -> bool:
        if h.op <= self.commit_min or h.op > self.log.head:
            return False
        if self.log.wanted.get(h.op) == h.checksum:
            return True
        known = self.log.headers.get(h.op)
        return known is not None and known.checksum == h.checksum and h.op not in self.log.frames

    def _journal_bound(self) -> int | None:
        """The highest op the journal is sure to accept now (None: no bound)."""
        cfg = self.config
        bounds = []
        if cfg.journal_ops_ahead_max:
            bounds.append(self.commit_min + cfg.journal_ops_ahead_max)
        if cfg.journal_slots:
            bounds.append(max(0, self.checkpoint_op - cfg.journal_retention_ops)
                          + cfg.journal_slots)
        return min(bounds) if bounds else None

    def _store_repaired(self, h, frame: bytes) -> None:
        extends = self.log.extends_verified_head(h)
        bound = self._journal_bound()
        if bound is not None and h.op > bound:
            # Too far ahead of what this replica applied for its journal: it is far behind.
            # Keep the identity (the hash chain from the head needs every header to vouch for
            # the ops below, which this replica can apply); repair fetches the prepare once
            # applying has brought the bound past it, or state transfer does.
            self.log.set_header(h, frame)
        else:
            self.log.set_frame(h, frame)
            self._append(h.op, frame)
        if not extends:
            self.log.walk_chain()

    def _on_commit(self, h, body) -> None:
        if h.view > self.view:
            self._request_start_view(h.replica)
            return
        if h.view < self.view or h.replica != self.primary_of(self.view):
            return
        if self.status == STATUS_VIEW_CHANGE or self.status == STATUS_RECOVERING:
            # The primary of our view is already normal: ask it for the view.
            self._request_start_view(h.replica)
            return
        self.heard_primary_tick = self.ticks
        self._learn_commit(h.commit)
        self._send(h.replica, Command.COMMIT_ACK, heartbeat=h.heartbeat, commit=self.commit_max)

    def _learn_commit(self, commit: int) -> None:
        if commit > self.commit_max:
            self.commit_max = commit

    def _dispatch_commits(self) -> None:
        log = self.log
        # While a state transfer runs the state stays where the transfer found it: the
        # checkpoint it installs must be ahead of commit_min, and no local checkpoint may start.
        while self.commit_min < self.commit_max and not self.snapshot_requested:
            op = self.commit_min + 1
            frame = log.frames.get(op)
            # Apply only prepares chained to the canonical head (or proven by a commit number
            # carried in a verified descendant): a stale entry never reaches the state machine.
            if frame is None or op < log.verified_from:
                break
            self.actions.append(Apply(op, frame))
            self.commit_min = op
            log.floor = op
            if op % self.config.checkpoint_interval == 0 and self.checkpoint_pending is None:
                self.checkpoint_pending = op
                self.actions.append(Checkpoint(op, log.raw_headers[op]))

    def _on_applied(self, event: Applied) -> None:
        check(event.op <= self.commit_min, "applied an op that was never dispatched")
        self.applied = max(self.applied, event.op)
        is_primary = self.status == STATUS_NORMAL and self.is_primary
        for entry in event.entries:
            request_header = self.sessions.commit(entry.client, entry.request)
            if request_header is not None and is_primary:
                self.actions.append(Reply(entry.client, request_header, event.op,
                                          self.commit_max, entry.status, entry.result))
        self._answer_reads()

    def _on_checkpoint_done(self, op: int) -> None:
        check(op == self.checkpoint_pending, "checkpoint done for an op never asked")
        self.checkpoint_pending = None
        self.checkpoint_op = op
        self.log.drop_below(op - self.config.journal_retention_ops)

    # ------------------------------------------------------------ view change

    def _start_view_change(self, view: int) -> None:
        check(view > self.view or self.status == STATUS_RECOVERING, "view must grow")
        self.view = max(view, self.view)
        self.status = STATUS_VIEW_CHANGE
        self.status_since_tick = self.ticks
        self._jitter = self.rng.randrange(self.config.view_change_timeout_ticks)
        self.svc_from = {self.replica}
        self.dvcs = {}
        self.dvc_sent = False
        self.pipeline.clear()
        self.queue.clear()
        self.sessions.abandon_in_flight()
        self.reads.clear()
        self._persist_view()
        self._broadcast(Command.START_VIEW_CHANGE)
        self._maybe_send_dvc()

    def _on_start_view_change(self, h, body) -> None:
        if h.view > self.view:
            self._start_view_change(h.view)
        if h.view == self.view and self.status == STATUS_VIEW_CHANGE:
            self.svc_from.add(h.replica)
            self._maybe_send_dvc()

    def _maybe_send_dvc(self) -> None:
        if self.dvc_sent or len(self.svc_from) < self.config.quorum:
            return
        self.dvc_sent = True
        self._send_do_view_change()

    def _own_dvc(self) -> DoViewChange:
        body, count = self._dvc_body()
        headers, status, wanted = decode_dvc_body(body, count)
        return DoViewChange(self.replica, self.log_view, self.log.head, self.commit_max,
                            headers, status, wanted)

    def _dvc_body(self) -> tuple[bytes, int]:
        raws = self.log.verified_headers(self.config.view_headers_max)
        statuses = [self.log.dvc_status(decode_header(raw).op) for raw in raws]
        sent = {decode_header(raw).op for raw in raws}
        wanted = self.log.dvc_wanted(self.config.view_headers_max, sent)
        return encode_dvc_body(raws, statuses, wanted), len(raws)

    def _send_do_view_change(self) -> None:
        primary = self.primary_of(self.view)
        if primary == self.replica:
            self.dvcs[self.replica] = self._own_dvc()
            self._try_merge()
            return
        body, count = self._dvc_body()
        self._send(primary, Command.DO_VIEW_CHANGE, body, log_view=self.log_view,
                   op=self.log.head, commit=self.commit_max, checkpoint_op=self.checkpoint_op,
                   header_count=count)

    def _on_do_view_change(self, h, body) -> None:
        if h.view > self.view:
            self._start_view_change(h.view)
        if h.view != self.view or self.status != STATUS_VIEW_CHANGE or not self.is_primary:
            return
        try:
            headers, status, wanted = decode_dvc_body(body, h.header_count)
        except FrameError:
            return
        self.svc_from.add(h.replica)
        self.dvcs[h.replica] = DoViewChange(h.replica, h.log_view, h.op, h.commit, headers,
                                            status, wanted)
        self._maybe_send_dvc()
        self._try_merge()

    def _try_merge(self) -> None:
        if self.replica not in self.dvcs or len(self.dvcs) < self.config.quorum:
            return
        merged = merge(list(self.dvcs.values()), self.config.quorum)
        if merged is None:
            return  # a corrupt head hides ops that may be acknowledged: wait for more votes
        self._install_log(merged.head, merged.headers, merged.head_checksum)
        self.view_start_head = merged.head
        self.log_view = self.view
        self.status = STATUS_NORMAL
        self.status_since_tick = self.ticks
        self._persist_view()
        self._learn_commit(merged.commit)
        self.pipeline.clear()
        # The uncommitted suffix must be acknowledged again in this view before it commits.
        for op in range(max(self.commit_max, self.commit_min) + 1, self.log.head + 1):
            self.pipeline.push(op, self.ticks - self.config.prepare_resend_ticks)
            checksum = self.log.checksum(op)
            if checksum is not None and self.log.durable.get(op) == checksum:
                self.pipeline.ack(op, self.replica)
        self.last_timestamp_us = max(
            (h.timestamp for h in self.log.headers.values()), default=0)
        self._send_start_view(None, nonce=0)
        self._heartbeat()
        self._commit_pipeline()

    def _install_log(self, head: int, headers: dict, head_checksum: int | None) -> None:
        """Adopt a canonical log: cut above head, replace headers that differ.

        When the canonical head's header is not given, a local header there is trusted only
        if it has the head's known identity: trust flows down from the head, so a stale one
        must not stand in for it (it is dropped and repaired)."""
        check(head >= self.commit_min, "a view change never cuts an applied op")
        if self.log.head > head:
            self.actions.append(Truncate(head))
            self.log.truncate_after(head)
        self.log.head = max(self.log.head, head)
        for op in sorted(headers):
            if op > self.commit_min:
                header, raw = headers[op]
                self.log.set_header(header, raw)
        self.log.head = head
        local = self.log.headers.get(head)
        if head not in headers and head > self.commit_min:
            if local is not None and local.checksum != head_checksum:
                self.log.forget(head)
            if head_checksum is not None and head not in self.log.headers:
                self.log.wanted[head] = head_checksum
        self.log.trust_window(headers)
        self.log.walk_chain()

    def _send_start_view(self, to: int | None, nonce: int) -> None:
        raws = self.log.verified_headers(self.config.view_headers_max)
        fields = dict(op=self.log.head, commit=self.commit_max,
                      checkpoint_op=self.checkpoint_op, nonce=nonce)
        if to is None:
            self._broadcast(Command.START_VIEW, encode_headers(raws), **fields)
        else:
            self._send(to, Command.START_VIEW, encode_headers(raws), **fields)

    def _on_start_view(self, h, body) -> None:
        if h.view < self.view or h.replica != self.primary_of(h.view):
            return
        if h.view == self.view and self.status == STATUS_NORMAL:
            return
        try:
            headers = decode_headers(body)
        except FrameError:
            return
        if h.op < self.commit_min:
            return  # from a primary behind our applied state: impossible unless stale
        self.view = h.view
        self.log_view = h.view
        self.status = STATUS_NORMAL
        self.status_since_tick = self.ticks
        self.heard_primary_tick = self.ticks
        self.pipeline.clear()
        self.queue.clear()
        self.sessions.abandon_in_flight()
        self.reads.clear()
        self._install_log(h.op, headers, headers[h.op][0].checksum if h.op in headers else None)
        self._persist_view()
        self._learn_commit(h.commit)
        # Acknowledge in the new view every uncommitted prepare we hold durably.
        for op in range(self.commit_min + 1, self.log.head + 1):
            checksum = self.log.checksum(op)
            if checksum is not None and self.log.durable.get(op) == checksum:
                self._send(h.replica, Command.PREPARE_OK, prepare_checksum=checksum, op=op,
                           commit=self.commit_max, checkpoint_op=self.checkpoint_op)

    def _request_start_view(self, to: int) -> None:
        if to != self.replica:
            self._send(to, Command.REQUEST_START_VIEW, nonce=self.ticks)

    def _on_request_start_view(self, h, body) -> None:
        if self.status == STATUS_NORMAL and self.is_primary and h.view <= self.view:
            self._send_start_view(h.replica, h.nonce)

    # ------------------------------------------------------------ repair

    def _repair(self) -> None:
        if self.status == STATUS_VIEW_CHANGE:
            return
        self.log.walk_chain()
        primary = self.primary_of(self.view)
        backup_in_view = self.status == STATUS_NORMAL and not self.is_primary
        if backup_in_view and self.commit_max > self.log.head:
            self._send(primary, Command.REQUEST_HEADERS, op_min=self.log.head + 1,
                       op_max=min(self.commit_max, self.log.head + self.config.headers_reply_max))
        requests = 0
        bound = self._journal_bound()
        for op in self.log.missing():
            if requests >= self.config.repair_requests_max:
                break
            checksum = self.log.checksum(op)
            if bound is not None and op > bound and op in self.log.headers:
                continue  # its prepare would not be kept yet; its identity is known already
            # Past the bound with only the checksum its child demands (a stale header was
            # dropped): the chain from the head is broken there until the header comes, so
            # ask for the prepare anyway (_store_repaired keeps just its header). Skipping it
            # would leave every op below unverified and this replica stuck for good.
            peers = [r for r in range(self.config.replica_count) if r != self.replica]
            if checksum is None:
                # Identity unknown: the primary of our view knows it; otherwise a peer that
                # has committed the op does (committed headers are canonical).
                top = op
                while top + 1 <= self.log.head and self.log.checksum(top + 1) is None:
                    top += 1
                to = primary if backup_in_view else self.rng.choice(peers)
                self._send(to, Command.REQUEST_HEADERS, op_min=op, op_max=top)
                requests += 1
                continue
            to = primary if backup_in_view and requests % 2 == 0 else self.rng.choice(peers)
            self._send(to, Command.REQUEST_PREPARE, prepare_op=op, prepare_checksum=checksum)
            requests += 1
        self._maybe_request_snapshot()

    def _maybe_request_snapshot(self) -> None:
        """Ask for state transfer when no peer's journal still holds the next op we need."""
        if self.snapshot_requested or self.commit_min >= self.commit_max:
            return
        if not self.peer_checkpoint:
            return
        peer, peer_checkpoint = max(self.peer_checkpoint.items(), key=lambda kv: (kv[1], -kv[0]))
        oldest_held = peer_checkpoint - self.config.journal_retention_ops
        missing = next((op for op in range(self.commit_min + 1, self.commit_max + 1)
                        if op not in self.log.frames), None)
        if missing is not None and missing <= oldest_held:
            self.snapshot_requested = True
            self.actions.append(RequestSnapshot(peer, peer_checkpoint))

    def _on_snapshot_installed(self, op: int, raw_header: bytes) -> None:
        check(op > self.commit_min, "a snapshot must move the replica forward")
        (header, raw), = decode_headers(raw_header).values()
        check(header.op == op, "a checkpoint's header must be its op's")
        self.snapshot_requested = False
        self.commit_min = self.applied = self.checkpoint_op = op
        self.commit_max = max(self.commit_max, op)
        self.log.drop_below(op - 1)
        # The checkpoint's header is committed, so canonical: it anchors the chain above it.
        if self.log.checksum(op) != header.checksum:
            self.log.set_header(header, raw)
        self.log.floor = op
        self.log.head = max(self.log.head, op)
        self.log.walk_chain()

    def _on_request_prepare(self, h, body) -> None:
        frame = self.log.frames.get(h.prepare_op)
        if frame is None:
            return
        header = self.log.headers[h.prepare_op]
        if h.prepare_checksum == 0 and not (self.status == STATUS_NORMAL and self.is_primary):
            return
        if h.prepare_checksum in (0, header.checksum):
            self.actions.append(Send(h.replica, frame))

    def _on_request_headers(self, h, body) -> None:
        primary_in_view = self.status == STATUS_NORMAL and self.is_primary and \
            h.view == self.view
        # The primary's log is canonical for its view; anyone's applied ops are canonical.
        top = self.log.head if primary_in_view else self.commit_min
        low = max(h.op_min, 1)
        high = min(h.op_max, top, low + self.config.headers_reply_max - 1)
        raws = [self.log.raw_headers[op] for op in range(low, high + 1)
                if op in self.log.raw_headers]
        if raws:
            self._send(h.replica, Command.HEADERS, encode_headers(raws), op_min=low,
                       op_max=high, commit=self.commit_min)

    def _on_headers(self, h, body) -> None:
        if self.status == STATUS_VIEW_CHANGE:
            return
        from_primary = self.status == STATUS_NORMAL and not self.is_primary and \
            h.view == self.view and h.replica == self.primary_of(self.view)
        try:
            headers = decode_headers(body)
        except FrameError:
            return
        for op in sorted(headers):
            # Canonical when the primary of our view sends them, or when committed (at or
            # below the sender's applied op) whoever sends them.
            if op > self.commit_min and (from_primary or op <= h.commit):
                header, raw = headers[op]
                self.log.set_header(header, raw)
        self.log.walk_chain()


_TEMPLATES: dict = {}

_HANDLERS = {
    Command.PREPARE: Replica._on_prepare,
    Command.PREPARE_OK: Replica._on_prepare_ok,
    Command.COMMIT: Replica._on_commit,
    Command.COMMIT_ACK: Replica._on_commit_ack,
    Command.START_VIEW_CHANGE: Replica._on_start_view_change,
    Command.DO_VIEW_CHANGE: Replica._on_do_view_change,
    Command.START_VIEW: Replica._on_start_view,
    Command.REQUEST_START_VIEW: Replica._on_request_start_view,
    Command.REQUEST_PREPARE: Replica._on_request_prepare,
    Command.REQUEST_HEADERS: Replica._on_request_headers,
    Command.HEADERS: Replica._on_headers,
}
