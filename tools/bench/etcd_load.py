"""The load generator's etcd backend: the same sessions, pacing and measurement, etcd's v3 API.

Exists so `metavsr bench cluster --vs etcd` measures etcd with the machinery that measures
metavsr: tools/loadgen/coordinator.py runs `main` below in P worker processes (its `target`
hook), each driving C sessions; pacing (closed or open loop, latency from the intended send
time), the Recorder's HDR histograms and per-second ticks, and the merge are tools/loadgen's.

Transport: etcd's JSON gateway (POST /v3/kv/put and /v3/kv/range, base64 keys and values) over
HTTP/1.1 keep-alive, one connection per session, all sessions of a process in one selector
loop, as the metavsr worker does. Not http.client: it blocks, so C sessions would need C
threads per process and the generator itself would then cost more CPU than for metavsr on the
same cores. Not a gRPC client: a new dependency and generated stubs for one benchmark.

Workload: kinds `put` (a new key, never one written before, with a VALUE_BYTES value) and
`range` (a linearizable read, etcd's default, of a key a session of this process has put).
A range with nothing to read yet is a put instead (the catalogue grows from empty, as the
metavsr workload's does). Answers that are not HTTP 200 count as errors with the code
HTTP_CODE_BASE + status; a range that finds no key counts as HTTP_CODE_BASE + 404.
"""

from __future__ import annotations

import base64
import errno
import heapq
import random
import selectors
import socket
from dataclasses import dataclass

import orjson

from tools.loadgen.metrics import UNAVAILABLE, Recorder
from tools.loadgen.pacing import NS_PER_S, ClosedLoop, OpenLoop, Window
from tools.loadgen.worker import WorkerConfig

KINDS = ("put", "range")
VALUE_BYTES = 256
HTTP_CODE_BASE = 100_000  # far from every metavsr error code, so names never collide
REPLY_TIMEOUT_S = 5.0
OP_DEADLINE_S = 30.0
CONNECT_TIMEOUT_S = 10.0
RESPONSE_HEAD_MAX = 16 * 1024
RESPONSE_BODY_MAX = 1 << 20
RECV_SIZE_BYTES = 64 * 1024
SELECT_MAX_S = 0.1
READ_KEYS_MAX = 10_000  # keys kept per process as read targets


class EtcdLoadError(Exception):
    """A condition that makes the run meaningless (no member reachable)."""


def request_bytes(host: str, path: str, body: bytes) -> bytes:
    head = (f"POST {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n\r\n")
    return head.encode() + body


class ResponseReader:
    """Parses HTTP/1.1 responses with a Content-Length body (what etcd's gateway sends)."""

    def __init__(self) -> None:
        self.buffer = b""

    def feed(self, data: bytes) -> list[tuple[int, bytes]]:
        """Add bytes; return the complete (status, body) responses now available."""
        self.buffer += data
        out = []
        while True:
            end = self.buffer.find(b"\r\n\r\n")
            if end < 0:
                if len(self.buffer) > RESPONSE_HEAD_MAX:
                    raise ValueError("response head too long")
                return out
            head = self.buffer[:end].decode("latin-1").split("\r\n")
            parts = head[0].split(" ", 2)
            if len(parts) < 2 or not parts[0].startswith("HTTP/1."):
                raise ValueError(f"not an HTTP/1.x status line: {head[0][:80]!r}")
            length = None
            for line in head[1:]:
                name, _, value = line.partition(":")
                name = name.strip().lower()
                if name == "content-length":
                    length = int(value.strip())
                elif name == "transfer-encoding" and value.strip().lower() != "identity":
                    raise ValueError("chunked responses are not expected from the gateway")
            if length is None or not 0 <= length <= RESPONSE_BODY_MAX:
                raise ValueError(f"response without a usable Content-Length ({length})")
            if len(self.buffer) < end + 4 + length:
                return out
            out.append((int(parts[1]), self.buffer[end + 4:end + 4 + length]))
            self.buffer = self.buffer[end + 4 + length:]


@dataclass
class _Pending:
    kind: str
    key: bytes
    path: str
    body: bytes  # the JSON document; the request is built per send (its Host names the member)
    intended_ns: int
    deadline_ns: int
    measured: bool


class _Session:
    def __init__(self, index: int, rng: random.Random, address_index: int):
        self.index = index
        self.rng = rng
        self.address_index = address_index
        self.sock: socket.socket | None = None
        self.reader = ResponseReader()
        self.outbuf = b""
        self.events = 0
        self.pending: _Pending | None = None
        self.pacing: ClosedLoop | OpenLoop = ClosedLoop()
        self.op_index = 0
        self.measured_issued = 0
        self.quota: int | None = None
        self.counter = 0
        self.timer_gen = 0
        self.done = False


class EtcdWorker:
    """C sessions of one process against etcd members (addresses = their client URLs)."""

    def __init__(self, config: WorkerConfig, process: int, clock):
        unknown = set(config.mix) - set(KINDS)
        assert not unknown, f"etcd kinds are {KINDS}, not {sorted(unknown)}"
        self.config = config
        self.process = process
        self.clock = clock
        self.addresses = list(config.addresses)
        self.selector = selectors.DefaultSelector()
        self.timers: list[tuple[int, int, int, _Session, object]] = []
        self._seq = 0
        self.kinds = list(config.mix)
        self.weights = [config.mix[k] for k in self.kinds]
        self.prefix = f"/bench/{config.run}/p{process}"
        self.readable_keys: list[bytes] = []
        self.value = base64.b64encode(random.Random(config.seed).randbytes(VALUE_BYTES)).decode()
        self.sessions = [
            _Session(s, random.Random(f"{config.seed}:{config.run}:{process}:{s}"),
                     (process * config.clients + s) % len(self.addresses))
            for s in range(config.clients)]
        for s in self.sessions:
            s.quota = config.quota(process, s.index)
        self.window: Window | None = None
        self.recorder: Recorder | None = None
        self.active = 0

    def connect_all(self) -> None:
        for s in self.sessions:
            self._connect(s, blocking=True)

    def run(self, start_ns: int, emit) -> dict:
        config = self.config
        self.window = Window.of(start_ns, config.warmup_s, config.duration_s)
        self.recorder = Recorder(start_ns, emit)
        total = config.processes * config.clients
        if config.rate:
            for s in self.sessions:
                s.pacing = OpenLoop(start_ns, config.rate, total,
                                    self.process * config.clients + s.index)
        hard_end = None
        if self.window.end_ns is not None:
            hard_end = self.window.end_ns + round(config.drain_s * NS_PER_S)
        while self.clock() < start_ns:
            self._turn(start_ns)
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
        self.close()
        return self.recorder.result()

    def close(self) -> None:
        for s in self.sessions:
            self._close(s)
        self.selector.close()

    # --- the loop -------------------------------------------------------------------------

    def _turn(self, until_ns: int | None = None) -> None:
        now = self.clock()
        wake = now + round(SELECT_MAX_S * NS_PER_S)
        if self.timers:
            wake = min(wake, self.timers[0][0])
        if until_ns is not None:
            wake = min(wake, until_ns)
        if self.recorder is not None:  # the next progress tick is due at the next second
            elapsed = now - self.recorder.start_ns
            wake = min(wake, now + NS_PER_S - elapsed % NS_PER_S)
        for key, mask in self.selector.select(max(0.0, (wake - now) / NS_PER_S)):
            s = key.data
            if s.sock is not key.fileobj:
                continue
            if mask & selectors.EVENT_WRITE:
                self._flush(s)
            if mask & selectors.EVENT_READ and s.sock is key.fileobj:
                self._readable(s)
        now = self.clock()
        while self.timers and self.timers[0][0] <= now:
            _, _, gen, s, action = heapq.heappop(self.timers)
            if gen == s.timer_gen:
                action(s)

    def _at(self, s: _Session, when_ns: int, action) -> None:
        s.timer_gen += 1
        self._seq += 1
        heapq.heappush(self.timers, (when_ns, self._seq, s.timer_gen, s, action))

    # --- operations -----------------------------------------------------------------------

    def _next(self, s: _Session) -> None:
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
        kind = s.rng.choices(self.kinds, self.weights)[0]
        if kind == "range" and not self.readable_keys:
            kind = "put"  # nothing to read yet: create first
        if kind == "put":
            s.counter += 1
            key = f"{self.prefix}/s{s.index}/stream-{s.counter:09d}".encode()
            path, document = "/v3/kv/put", {"key": base64.b64encode(key).decode(),
                                            "value": self.value}
        else:
            key = s.rng.choice(self.readable_keys)
            path, document = "/v3/kv/range", {"key": base64.b64encode(key).decode()}
        s.op_index += 1
        measured = self.window.measured(intended_ns)
        if measured:
            s.measured_issued += 1
        now = self.clock()
        s.pending = _Pending(kind, key, path, orjson.dumps(document), intended_ns,
                             now + round(OP_DEADLINE_S * NS_PER_S), measured)
        self._send(s)

    def _send(self, s: _Session) -> None:
        now = self.clock()
        if now >= s.pending.deadline_ns:
            self._close(s)  # its answer may still come: never on a connection reused
            self._complete(s, now, UNAVAILABLE, b"")
            return
        s.outbuf = request_bytes("{}:{}".format(*self.addresses[s.address_index]), s.pending.path,
                                 s.pending.body)
        self._at(s, now + round(REPLY_TIMEOUT_S * NS_PER_S), self._lost)
        if s.sock is None:
            self._connect(s, blocking=False)
        if s.sock is not None:
            self._flush(s)

    def _lost(self, s: _Session) -> None:
        """No answer, a closed or broken connection: re-send on the next member's address
        (a put of a fresh key is safe to repeat; a repeat overwrites it with the same value)."""
        self._close(s)
        s.address_index = (s.address_index + 1) % len(self.addresses)
        if s.pending is not None:
            self.recorder.retries += 1
            self._send(s)

    def _complete(self, s: _Session, now: int, code: int, body: bytes) -> None:
        pending = s.pending
        s.pending = None
        s.timer_gen += 1  # cancels the reply timeout
        if code == 0 and pending.kind == "range" and b'"kvs"' not in body:
            code = HTTP_CODE_BASE + 404  # a key put and acknowledged before must be found
        if code == 0 and pending.kind == "put":
            if len(self.readable_keys) < READ_KEYS_MAX:
                self.readable_keys.append(pending.key)
            else:
                self.readable_keys[s.rng.randrange(READ_KEYS_MAX)] = pending.key
        self.recorder.record(pending.kind, code, pending.intended_ns, now, pending.measured)
        self._next(s)

    def _abandon(self, now: int) -> None:
        for s in self.sessions:
            if s.pending is not None:
                pending = s.pending
                s.pending = None
                s.timer_gen += 1
                self._close(s)
                self.recorder.record(pending.kind, UNAVAILABLE, pending.intended_ns, now,
                                     pending.measured)
            if isinstance(s.pacing, OpenLoop) and self.window.end_ns is not None:
                self.recorder.not_sent += max(
                    0, s.pacing.count_before(self.window.end_ns) - s.op_index)
            self._done(s)

    # --- sockets --------------------------------------------------------------------------

    def _connect(self, s: _Session, blocking: bool) -> None:
        address = self.addresses[s.address_index]
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if blocking:
            sock.settimeout(CONNECT_TIMEOUT_S)
            try:
                sock.connect(address)
            except OSError as exc:
                sock.close()
                raise EtcdLoadError(f"cannot connect to etcd at {address[0]}:{address[1]}: "
                                    f"{exc}") from None
            sock.setblocking(False)
        else:
            sock.setblocking(False)
            err = sock.connect_ex(address)
            if err not in (0, errno.EINPROGRESS):
                sock.close()
                # Refused: wait out the reply timeout's share before the next member.
                self._at(s, self.clock() + round(0.05 * NS_PER_S), self._lost)
                return
        s.sock = sock
        s.reader = ResponseReader()
        s.events = selectors.EVENT_READ | selectors.EVENT_WRITE
        self.selector.register(sock, s.events, s)

    def _flush(self, s: _Session) -> None:
        if s.outbuf:
            try:
                sent = s.sock.send(s.outbuf)
            except (BlockingIOError, InterruptedError):
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
            responses = s.reader.feed(data)
        except ValueError:
            self._lost(s)
            return
        if not responses:
            return
        if len(responses) > 1 or s.pending is None or s.outbuf:
            self._lost(s)  # one request in flight: anything else desyncs the connection
            return
        status, body = responses[0]
        self._complete(s, self.clock(), 0 if status == 200 else HTTP_CODE_BASE + status, body)

    def _close(self, s: _Session) -> None:
        if s.sock is not None:
            self.selector.unregister(s.sock)
            s.sock.close()
            s.sock = None
            s.outbuf = b""


def main(config: WorkerConfig, process: int, queue, go, start) -> None:
    """The worker process (tools/loadgen/coordinator.py's target): connect, ready, run."""
    import time

    try:
        worker = EtcdWorker(config, process, time.monotonic_ns)
        worker.connect_all()
        queue.put(("ready", process, None))
        go.wait()
        result = worker.run(start.value, lambda tick: queue.put(("tick", process, tick)))
        queue.put(("done", process, result))
    except EtcdLoadError as exc:
        queue.put(("failed", process, str(exc)))
    except Exception as exc:  # report, so the coordinator stops at once instead of waiting
        queue.put(("failed", process, f"{type(exc).__name__}: {exc}"))
        raise
