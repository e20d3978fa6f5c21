"""One load-generator process: C client sessions over non-blocking sockets in one selector loop.

Owns the transport of its sessions and their protocol state: connecting, logging in (Register,
then the code-12 roster to find the leader), lockstep requests (at most one in flight per
session, as the Iggy protocol requires), request numbering, retries and failover, timing each
operation against the pacing (tools/loadgen/pacing.py), and logging out at the end (waiting at
most LOGOUT_WAIT_S), so runs do not fill the cluster's client table. What to send comes from
each session's Workload; what was measured goes to a Recorder and, with --history, to a
HistoryWriter. Must never aggregate across processes or print: the coordinator does both.

Retries re-send the SAME frame (same client id, session and request number), which the cluster
answers exactly once because its client table is replicated:
- 57 (TransientNotCommitted) is re-sent after RETRY_PAUSE_S on the same connection;
- 58 (TransientNotAccepted: this replica is not the primary, net/gateway.py, and will answer
  58 until it is) is re-sent after RETRY_PAUSE_S to the next replica, which also is how a
  session that first reached a backup logs in (the roster needs a session);
- a lost connection, an undecodable reply or no reply within REPLY_TIMEOUT_S closes the
  connection, and the frame is re-sent on a new connection to the next replica;
- an operation still unanswered OP_DEADLINE_S after its first send is given up (outcome unknown).
Each re-send counts as one retry.
"""

from __future__ import annotations

import errno
import heapq
import os
import selectors
import socket
import struct
import time
from dataclasses import dataclass, field

from net import iggy
from net.client import _parse_roster  # the one decoder of the code-12 roster
from net.framing import FrameReader
from net.iggy import Code, Operation
from net.wire import FRAME_SIZE_MAX, FrameError
from tools.loadgen.history import HistoryWriter
from tools.loadgen.metrics import EVICTED, UNAVAILABLE, Recorder
from tools.loadgen.pacing import NS_PER_S, ClosedLoop, OpenLoop, Window
from tools.loadgen.workload import Catalogue, Op, Workload

RETRY_PAUSE_S = 0.05  # as the SDK: a transient answer is re-sent about 50 ms later
REPLY_TIMEOUT_S = 5.0
OP_DEADLINE_S = 30.0
# Logins queue for the cluster's password hashing (scrypt, tens of ms each): generous.
LOGIN_DEADLINE_S = 120.0
LOGOUT_WAIT_S = 5.0
# A login gives up early when every address refused this many connections in a row: a wrong
# --cluster should fail in a second, not after LOGIN_DEADLINE_S.
LOGIN_REFUSALS_PER_ADDRESS = 3
RECV_SIZE_BYTES = 64 * 1024
SESSIONS_MAX = 4096  # per process: one socket each, well under the usual fd limit
SELECT_MAX_S = 0.1
_CONSISTENCY_OFFSET = 200  # metavsr's `consistency` byte of a REQUEST header: 1 = stale read
_LOGIN_REPLY = struct.Struct("<IQ")


class LoadgenError(Exception):
    """A condition that makes the whole run meaningless (refused login, no replica reachable)."""


@dataclass(frozen=True)
class WorkerConfig:
    addresses: tuple[tuple[str, int], ...]
    login_body: bytes = field(repr=False)  # the Register body: it holds the secret
    processes: int
    clients: int
    mix: dict[str, int]
    seed: int
    run: str
    rate: float | None  # total ops/s over all sessions; None = closed loop
    duration_s: float | None
    ops: int | None  # measured operations over all sessions; None = until duration ends
    warmup_s: float
    stale_reads: bool
    history: str | None
    drain_s: float

    def quota(self, process: int, session: int) -> int | None:
        """This session's share of --ops (the remainder goes to the first sessions)."""
        if self.ops is None:
            return None
        total = self.processes * self.clients
        index = process * self.clients + session
        return self.ops // total + (1 if index < self.ops % total else 0)


@dataclass
class _Pending:
    kind: str  # an operation kind, or "login" / "roster" / "logout"
    op: Op | None
    operation: int
    frame: bytes
    intended_ns: int
    invoke_ns: int
    deadline_ns: int
    measured: bool


class _Session:
    def __init__(self, index: int, workload: Workload, quota: int | None, address_index: int):
        self.index = index
        self.workload = workload
        self.quota = quota
        self.address_index = address_index
        self.client_id = b""
        self.session = 0
        self.next_request = 1
        self.sock: socket.socket | None = None
        self.reader: FrameReader | None = None
        self.connecting = False
        self.events = 0
        self.outbuf = b""
        self.pending: _Pending | None = None
        self.pacing: ClosedLoop | OpenLoop = ClosedLoop()
        self.op_index = 0
        self.measured_issued = 0
        self.timer_gen = 0
        self.refusals = 0  # connections refused in a row
        self.ready = False
        self.done = False

    def new_identity(self) -> None:
        self.client_id = os.urandom(16)
        self.session = 0
        self.next_request = 1


class Worker:
    def __init__(self, config: WorkerConfig, process: int):
        self.config = config
        self.process = process
        self.clock = time.monotonic_ns
        self.addresses = list(config.addresses)
        self.selector = selectors.DefaultSelector()
        self.timers: list[tuple[int, int, int, _Session, object]] = []
        self._timer_seq = 0
        self.running = False
        self.active = 0  # sessions not yet done with the workload
        self.window: Window | None = None
        self.recorder: Recorder | None = None
        self.history: HistoryWriter | None = None
        shared = Catalogue()  # reads of any session target what any session here created
        self.sessions = [
            _Session(s, Workload(config.mix, seed=config.seed, run=config.run, process=process,
                                 session=s, shared=shared),
                     config.quota(process, s),
                     # spread the first connections; the roster then names the leader
                     (process * config.clients + s) % len(self.addresses))
            for s in range(config.clients)]

    # --- phases ---------------------------------------------------------------------------

    def login_all(self) -> None:
        """Connect and log in every session; returns when all are ready."""
        for s in self.sessions:
            self._login(s)
        deadline = self.clock() + round(LOGIN_DEADLINE_S * NS_PER_S)
        while not all(s.ready for s in self.sessions):
            if self.clock() > deadline:
                raise LoadgenError(f"sessions not logged in after {LOGIN_DEADLINE_S:.0f} s")
            self._turn()

    def run(self, start_ns: int, emit) -> dict:
        """Drive the workload from `start_ns` until the window closes; returns the figures."""
        config = self.config
        self.window = Window.of(start_ns, config.warmup_s, config.duration_s)
        self.recorder = Recorder(start_ns, emit)
        if config.history:
            self.history = HistoryWriter(config.history, self.process, start_ns)
        total = config.processes * config.clients
        for s in self.sessions:
            if config.rate:
                s.pacing = OpenLoop(start_ns, config.rate, total,
                                    self.process * config.clients + s.index)
        hard_end = None
        if self.window.end_ns is not None:
            hard_end = self.window.end_ns + round(config.drain_s * NS_PER_S)
        while self.clock() < start_ns:
            self._turn(start_ns)
        self.running = True
        self.active = len(self.sessions)
        for s in self.sessions:
            self._next(s)
        while self.active:
            now = self.clock()
            if hard_end is not None and now >= hard_end:
                self._abandon(now)
                break
            self.recorder.advance(now)
            self._turn(hard_end)
        self.recorder.finish(self.clock())
        self._logout_all()
        if self.history:
            self.history.close()
        self.close()
        return self.recorder.result()

    def close(self) -> None:
        for s in self.sessions:
            self._close(s)
        self.selector.close()

    # --- the loop -------------------------------------------------------------------------

    def _turn(self, until_ns: int | None = None) -> None:
        """One selector wait (bounded by the next timer) and everything that became due."""
        now = self.clock()
        wake = now + round(SELECT_MAX_S * NS_PER_S)
        if self.timers:
            wake = min(wake, self.timers[0][0])
        if until_ns is not None:
            wake = min(wake, until_ns)
        if self.running:  # the next progress tick is due at the next whole second
            elapsed = now - self.recorder.start_ns
            wake = min(wake, now + NS_PER_S - elapsed % NS_PER_S)
        timeout = max(0.0, (wake - now) / NS_PER_S)
        for key, mask in self.selector.select(timeout):
            s = key.data
            if s.sock is not key.fileobj:
                continue
            if mask & selectors.EVENT_WRITE:
                self._writable(s)
            if mask & selectors.EVENT_READ and s.sock is key.fileobj:
                self._readable(s)
        now = self.clock()
        while self.timers and self.timers[0][0] <= now:
            _, _, gen, s, action = heapq.heappop(self.timers)
            if gen == s.timer_gen:
                action(s)

    def _at(self, s: _Session, when_ns: int, action) -> None:
        """Set the session's one timer (a later call replaces an earlier one)."""
        s.timer_gen += 1
        self._timer_seq += 1
        heapq.heappush(self.timers, (when_ns, self._timer_seq, s.timer_gen, s, action))

    def _cancel_timer(self, s: _Session) -> None:
        s.timer_gen += 1

    # --- sessions -------------------------------------------------------------------------

    def _login(self, s: _Session) -> None:
        s.new_identity()
        s.ready = False
        frame = iggy.request_frame(s.client_id, 0, 0, Operation.REGISTER, self.config.login_body)
        self._start(s, "login", None, Operation.REGISTER, frame, self.clock(), measured=False)

    def _next(self, s: _Session) -> None:
        """Issue the session's next operation now, or set a timer for its intended time."""
        if s.quota is not None and s.measured_issued >= s.quota:
            self._done(s)
            return
        now = self.clock()
        intended = s.pacing.intended(s.op_index, now)
        if not self.window.open(intended):
            self._done(s)
            return
        if intended > now:
            self._at(s, intended, lambda s: self._issue(s, intended))
        else:
            self._issue(s, intended)

    def _done(self, s: _Session) -> None:
        if not s.done:
            s.done = True
            self.active -= 1

    def _issue(self, s: _Session, intended_ns: int) -> None:
        op = s.workload.next_op()
        s.op_index += 1
        measured = self.window.measured(intended_ns)
        if measured:
            s.measured_issued += 1
        if op.operation == Operation.NON_REPLICATED:
            frame = iggy.request_frame(s.client_id, s.session, s.next_request, op.operation,
                                       op.body, code=op.code)
            if self.config.stale_reads:
                frame = _stale(frame)
        else:
            frame = iggy.request_frame(s.client_id, s.session, s.next_request, op.operation,
                                       op.body)
            s.next_request += 1  # a write uses up its number even when refused
        self._start(s, op.kind, op, op.operation, frame, intended_ns, measured)

    def _start(self, s: _Session, kind: str, op: Op | None, operation: int, frame: bytes,
               intended_ns: int, measured: bool) -> None:
        now = self.clock()
        deadline_s = LOGIN_DEADLINE_S if kind == "login" else OP_DEADLINE_S
        s.pending = _Pending(kind, op, operation, frame, intended_ns, now,
                             now + round(deadline_s * NS_PER_S), measured)
        self._send(s)

    def _send(self, s: _Session) -> None:
        """(Re-)send the pending frame, connecting first when needed."""
        pending = s.pending
        now = self.clock()
        if now >= pending.deadline_ns:
            self._give_up(s, now)
            return
        s.outbuf = pending.frame
        self._at(s, now + round(REPLY_TIMEOUT_S * NS_PER_S), self._lost)
        if s.sock is None:
            self._connect(s)
        elif not s.connecting:
            self._flush(s)

    def _retry(self, s: _Session) -> None:
        if self.recorder is not None:
            self.recorder.retries += 1
        self._at(s, self.clock() + round(RETRY_PAUSE_S * NS_PER_S), self._send)

    def _lost(self, s: _Session) -> None:
        """The connection failed, went silent or reached a backup: drop it; re-send on the
        next replica."""
        self._close(s)
        s.address_index = (s.address_index + 1) % len(self.addresses)
        if s.pending is not None:
            self._retry(s)

    def _refused(self, s: _Session) -> None:
        s.refusals += 1
        if (s.pending is not None and s.pending.kind == "login"
                and s.refusals >= LOGIN_REFUSALS_PER_ADDRESS * len(self.addresses)):
            raise LoadgenError(f"no replica of {self._addresses()} accepts connections")
        self._lost(s)

    def _reply(self, s: _Session, frame: bytes) -> None:
        pending = s.pending
        now = self.clock()
        try:
            reply = iggy.parse_reply(frame, pending.operation)
        except iggy.ProtocolError:
            self._lost(s)
            return
        if reply.evicted is not None:
            if pending.kind == "login":
                raise LoadgenError(f"login refused by {self._address(s)} "
                                   f"(eviction reason {int(reply.evicted)}): check the credentials")
            self._complete(s, now, EVICTED, b"")
            return
        if reply.status == iggy.STATUS_TRANSIENT_NOT_ACCEPTED:
            self._lost(s)  # not the primary: try the next replica
            return
        if reply.status == iggy.STATUS_TRANSIENT_NOT_COMMITTED:
            self._cancel_timer(s)
            self._retry(s)
            return
        self._complete(s, now, reply.status, reply.payload)

    def _complete(self, s: _Session, now: int, code: int, payload: bytes) -> None:
        pending = s.pending
        s.pending = None
        self._cancel_timer(s)
        if pending.kind == "login":
            if code:
                raise LoadgenError(f"login failed with code {code} at {self._address(s)}")
            _user_id, s.session = _LOGIN_REPLY.unpack_from(payload, 0)
            frame = iggy.request_frame(s.client_id, s.session, s.next_request,
                                       Operation.NON_REPLICATED, b"", code=Code.GET_CLUSTER_METADATA)
            self._start(s, "roster", None, Operation.NON_REPLICATED, frame, now, measured=False)
            return
        if pending.kind == "logout":
            s.session = 0
            return
        if pending.kind == "roster":
            self._follow_roster(s, payload if code == 0 else b"")
            s.ready = True
            if self.running:
                self._next(s)
            return
        op = pending.op
        s.workload.completed(op, code)
        self.recorder.record(op.kind, code, pending.intended_ns, now, pending.measured)
        if self.history:
            self.history.add(s.index, op.kind, op.key, pending.invoke_ns,
                             None if code == UNAVAILABLE else now, code, payload)
        if code == EVICTED:
            self._login(s)
        else:
            self._next(s)

    def _give_up(self, s: _Session, now: int) -> None:
        if s.pending.kind == "logout":
            s.pending = None
            self._close(s)
            return
        if s.pending.kind in ("login", "roster"):
            raise LoadgenError(f"no replica of {self._addresses()} answered the "
                               f"{s.pending.kind} within its deadline")
        self._close(s)
        self._complete(s, now, UNAVAILABLE, b"")

    def _abandon(self, now: int) -> None:
        """The drain time is over: what is in flight is unknown, what is scheduled unsent."""
        for s in self.sessions:
            pending = s.pending
            if pending is not None:
                s.pending = None
                self._cancel_timer(s)
                self._close(s)  # its answer may still come: never on a connection reused
                if pending.op is not None:
                    self.recorder.record(pending.kind, UNAVAILABLE, pending.intended_ns, now,
                                         pending.measured)
                    if self.history:
                        self.history.add(s.index, pending.kind, pending.op.key,
                                         pending.invoke_ns, None, UNAVAILABLE, b"")
            if isinstance(s.pacing, OpenLoop) and self.window.end_ns is not None:
                self.recorder.not_sent += max(
                    0, s.pacing.count_before(self.window.end_ns) - s.op_index)
            self._done(s)

    def _logout_all(self) -> None:
        """End every session: the cluster's client table is bounded, leave it as found."""
        for s in self.sessions:
            if s.session and s.pending is None:
                frame = iggy.request_frame(s.client_id, s.session, s.next_request,
                                           Operation.LOGOUT, b"")
                s.next_request += 1
                self._start(s, "logout", None, Operation.LOGOUT, frame, self.clock(),
                            measured=False)
        deadline = self.clock() + round(LOGOUT_WAIT_S * NS_PER_S)
        while any(s.pending is not None for s in self.sessions) and self.clock() < deadline:
            self._turn(deadline)

    def _follow_roster(self, s: _Session, payload: bytes) -> None:
        """Move to the leader the roster names (the session is cluster-wide: no re-login)."""
        for node in _parse_roster(payload):
            if node.leader and node.healthy:
                leader = (node.ip, node.tcp_port)
                if leader not in self.addresses:
                    self.addresses.append(leader)
                index = self.addresses.index(leader)
                if index != s.address_index:
                    self._close(s)
                    s.address_index = index
                return

    # --- sockets --------------------------------------------------------------------------

    def _connect(self, s: _Session) -> None:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setblocking(False)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        err = sock.connect_ex(self.addresses[s.address_index])
        if err not in (0, errno.EINPROGRESS):
            sock.close()
            self._refused(s)
            return
        s.sock = sock
        s.reader = FrameReader(FRAME_SIZE_MAX)
        s.connecting = True
        s.events = selectors.EVENT_READ | selectors.EVENT_WRITE
        self.selector.register(sock, s.events, s)

    def _writable(self, s: _Session) -> None:
        if s.connecting:
            if s.sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR):
                self._refused(s)
                return
            s.connecting = False
            s.refusals = 0
        self._flush(s)

    def _flush(self, s: _Session) -> None:
        if s.outbuf:
            try:
                sent = s.sock.send(s.outbuf)
            except BlockingIOError:
                sent = 0
            except OSError:
                self._lost(s)
                return
            s.outbuf = s.outbuf[sent:]
        events = selectors.EVENT_READ | (selectors.EVENT_WRITE if s.outbuf else 0)
        if events != s.events:
            s.events = events
            self.selector.modify(s.sock, events, s)

    def _readable(self, s: _Session) -> None:
        try:
            data = s.sock.recv(RECV_SIZE_BYTES)
        except BlockingIOError:
            return
        except OSError:
            self._lost(s)
            return
        if not data:
            self._lost(s)
            return
        try:
            s.reader.feed(data)
            frames = s.reader.frames()
        except FrameError:
            self._lost(s)
            return
        if not frames:
            return
        # Lockstep: exactly one reply per request; anything more would desync the stream.
        if len(frames) > 1 or s.pending is None or s.outbuf:
            self._lost(s)
            return
        self._reply(s, bytes(frames[0]))

    def _close(self, s: _Session) -> None:
        if s.sock is not None:
            self.selector.unregister(s.sock)
            s.sock.close()
            s.sock = None
            s.reader = None
            s.connecting = False
            s.outbuf = b""

    def _address(self, s: _Session) -> str:
        host, port = self.addresses[s.address_index]
        return f"{host}:{port}"

    def _addresses(self) -> str:
        return ",".join(f"{h}:{p}" for h, p in self.addresses)


def _stale(frame: bytes) -> bytes:
    out = bytearray(frame)
    out[_CONSISTENCY_OFFSET] = 1
    return bytes(out)


def main(config: WorkerConfig, process: int, queue, go, start) -> None:
    """The worker process: log in, report ready, wait for the common start, run, report."""
    try:
        worker = Worker(config, process)
        worker.login_all()
        queue.put(("ready", process, None))
        go.wait()
        result = worker.run(start.value, lambda tick: queue.put(("tick", process, tick)))
        queue.put(("done", process, result))
    except LoadgenError as exc:
        queue.put(("failed", process, str(exc)))
    except Exception as exc:  # report, so the coordinator stops at once instead of waiting
        queue.put(("failed", process, f"{type(exc).__name__}: {exc}"))
        raise
