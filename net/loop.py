"""The net role's event loop: the only code in a replica that touches sockets.

One selector (epoll) serves the listeners, every client and peer connection, outgoing peer
dials and the readers the net role adds (its eventfd doorbell, its job-completion pipe). What arrives is cut into frames
(net/framing.py) and handed to a `Handler`; what the handler sends is queued per connection and
written with as few syscalls as possible (one send of all queued frames per connection per
loop turn).

Everything is bounded: connections (per kind: a flood of clients cannot take the slots peers
need), bytes buffered per connection for reading (a frame size bound) and for writing (a slow
reader is disconnected rather than buffered without end), idle time, and time to handshake: a
connection must finish its TLS handshake and first frame (a peer: its authentication, marked by
the handler) within handshake_timeout_s of its accept, and every frame it starts must be
complete within the same bound, so a slow-loris that trickles bytes cannot hold a slot by
staying "active". A misbehaving connection is closed and counted; the loop never raises because
of what a remote sent.

TLS (client listeners given an ssl.SSLContext): the handshake runs non-blocking inside the
loop, driven by the socket's readiness like any other I/O.
"""

from __future__ import annotations

import errno
import os
import selectors
import socket
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from net.framing import FrameReader
from net.wire import FrameError

RECV_SIZE_BYTES = 256 * 1024
LISTEN_BACKLOG = 512


@dataclass
class LoopLimits:
    frame_size_max: int
    connections_max: int = 1024  # accepted client connections
    peer_connections_max: int = 16  # accepted peer connections (2 per other replica suffice)
    write_buffer_max_bytes: int = 64 << 20
    idle_timeout_s: float = 300.0
    handshake_timeout_s: float = 5.0


@dataclass
class Counters:
    accepted: int = 0
    refused_over_limit: int = 0
    closed: int = 0
    bad_frames: int = 0
    slow_readers_closed: int = 0
    idle_closed: int = 0
    handshake_timeouts: int = 0
    slow_frames_closed: int = 0
    tls_failed: int = 0
    frames_in: int = 0
    frames_out: int = 0


@dataclass(eq=False)
class Connection:
    id: int
    kind: str  # "client" or "peer-in" (accepted) or "peer-out" (dialed)
    sock: socket.socket
    reader: FrameReader
    peer: int = -1  # replica index for peer connections, once known
    outgoing: list[bytes] = field(default_factory=list)
    outgoing_bytes: int = 0
    last_active_s: float = 0.0
    opened_s: float = 0.0
    established: bool = False  # client: TLS done and a first frame; peer: set by the handler
    partial_since_s: float = 0.0  # when the incomplete frame now buffered began; 0: none
    tls_handshaking: bool = False
    connecting: bool = False
    want_write: bool = False  # EVENT_WRITE registered: epoll_ctl only when this changes
    closed: bool = False


class Handler:
    """What the loop calls. Override what you need; every call happens on the loop thread."""

    def on_open(self, conn: Connection) -> None:
        pass

    def on_frames(self, conn: Connection, frames: list[memoryview]) -> None:
        raise NotImplementedError

    def on_close(self, conn: Connection, reason: str) -> None:
        pass

    def on_turn(self) -> None:
        """Called once per loop turn after I/O: flush batched work here."""


class EventLoop:
    def __init__(self, handler: Handler, limits: LoopLimits,
                 clock: Callable[[], float] = time.monotonic):
        self.handler = handler
        self.limits = limits
        self.clock = clock
        self.selector = selectors.DefaultSelector()
        self.connections: dict[int, Connection] = {}
        self.counters = Counters()
        self._next_id = 1
        self._dirty: list[Connection] = []
        self._running = True
        self._accepted: dict[str, int] = {}  # open accepted connections per kind

    # --- set-up -------------------------------------------------------------------------

    def listen(self, host: str, port: int, kind: str,
               tls: ssl.SSLContext | None = None) -> socket.socket:
        """Listen on host:port; accepted connections get `kind` (and TLS if given)."""
        sock = socket.create_server((host, port), backlog=LISTEN_BACKLOG, reuse_port=False)
        sock.setblocking(False)
        self.selector.register(sock, selectors.EVENT_READ, ("listen", (kind, tls)))
        return sock

    def add_reader(self, fd: int, callback: Callable[[], None]) -> None:
        """Call callback() on the loop thread whenever fd is readable (doorbells, job
        completions); the callback must drain fd."""
        self.selector.register(fd, selectors.EVENT_READ, ("reader", callback))

    def dial(self, host: str, port: int, peer: int) -> Connection:
        """Start a non-blocking connect to a peer; frames sent meanwhile are queued."""
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setblocking(False)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        conn = self._add(sock, "peer-out")
        conn.peer = peer
        conn.connecting = True
        error = sock.connect_ex((host, port))
        if error not in (0, errno.EINPROGRESS):
            self.close(conn, f"connect failed: {os.strerror(error)}")
            return conn
        self._want_write(conn, True)
        return conn

    # --- sending ------------------------------------------------------------------------

    def send(self, conn: Connection, frame: bytes | memoryview) -> bool:
        """Queue a frame; written at the end of this turn. False if the connection is gone."""
        if conn.closed:
            return False
        conn.outgoing.append(frame)
        conn.outgoing_bytes += len(frame)
        if conn.outgoing_bytes > self.limits.write_buffer_max_bytes:
            self.counters.slow_readers_closed += 1
            self.close(conn, "write buffer over its bound (slow reader)")
            return False
        if len(conn.outgoing) == 1:
            self._dirty.append(conn)
        return True

    def close(self, conn: Connection, reason: str) -> None:
        if conn.closed:
            return
        conn.closed = True
        self.counters.closed += 1
        self.connections.pop(conn.id, None)
        if conn.kind in self._accepted:
            self._accepted[conn.kind] -= 1
        try:
            self.selector.unregister(conn.sock)
        except (KeyError, ValueError):
            pass
        conn.sock.close()
        self.handler.on_close(conn, reason)

    def stop(self) -> None:
        self._running = False

    # --- running ------------------------------------------------------------------------

    def run(self, timeout_s: Callable[[], float]) -> None:
        """Loop until stop(); timeout_s() bounds each wait (the handler's next deadline)."""
        while self._running:
            self.turn(timeout_s())

    def turn(self, timeout_s: float) -> None:
        for key, events in self.selector.select(timeout_s):
            what, data = key.data
            if what == "conn":
                self._on_conn_event(data, events)
            elif what == "listen":
                self._accept(key.fileobj, *data)
            else:
                data()
        self.handler.on_turn()
        self.flush()

    def close_idle(self) -> None:
        """Close connections past a time bound (call a few times a second): clients idle too
        long, any connection not established in time, any frame not completed in time."""
        now = self.clock()
        idle_deadline = now - self.limits.idle_timeout_s
        handshake_deadline = now - self.limits.handshake_timeout_s
        for conn in list(self.connections.values()):
            if not conn.established and conn.opened_s < handshake_deadline:
                self.counters.handshake_timeouts += 1
                self.close(conn, "handshake timeout")
            elif 0 < conn.partial_since_s < handshake_deadline:
                self.counters.slow_frames_closed += 1
                self.close(conn, "frame not completed in time (slow sender)")
            elif conn.kind == "client" and conn.last_active_s < idle_deadline:
                self.counters.idle_closed += 1
                self.close(conn, "idle timeout")

    def close_all(self) -> None:
        for conn in list(self.connections.values()):
            self.close(conn, "shutdown")
        self.selector.close()

    # --- internals ----------------------------------------------------------------------

    def _add(self, sock: socket.socket, kind: str) -> Connection:
        now = self.clock()
        conn = Connection(self._next_id, kind, sock, FrameReader(self.limits.frame_size_max),
                          last_active_s=now, opened_s=now)
        self._next_id += 1
        self.connections[conn.id] = conn
        self.selector.register(sock, selectors.EVENT_READ, ("conn", conn))
        return conn

    def _accept(self, listener: socket.socket, kind: str, tls: ssl.SSLContext | None) -> None:
        bound = (self.limits.connections_max if kind == "client"
                 else self.limits.peer_connections_max)
        for _ in range(LISTEN_BACKLOG):
            try:
                sock, _address = listener.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                return  # e.g. EMFILE: leave it queued; we try again next turn
            if self._accepted.get(kind, 0) >= bound:
                self.counters.refused_over_limit += 1
                sock.close()
                continue
            sock.setblocking(False)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if tls is not None:
                try:
                    sock = tls.wrap_socket(sock, server_side=True,
                                           do_handshake_on_connect=False)
                except (ssl.SSLError, OSError):
                    self.counters.tls_failed += 1
                    sock.close()
                    continue
            self.counters.accepted += 1
            self._accepted[kind] = self._accepted.get(kind, 0) + 1
            conn = self._add(sock, kind)
            conn.tls_handshaking = tls is not None
            self.handler.on_open(conn)

    def _on_conn_event(self, conn: Connection, events: int) -> None:
        if conn.closed:
            return
        if conn.tls_handshaking:
            self._tls_handshake(conn)
            if conn.tls_handshaking or conn.closed:
                return
        if conn.connecting and events & selectors.EVENT_WRITE:
            error = conn.sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
            if error:
                self.close(conn, f"connect failed: {os.strerror(error)}")
                return
            conn.connecting = False
            self.handler.on_open(conn)
            self._write(conn)
            if not conn.closed and not conn.outgoing:
                self._want_write(conn, False)
            if conn.closed:
                return
        if events & selectors.EVENT_READ:
            self._read(conn)
        elif events & selectors.EVENT_WRITE:
            self._write(conn)

    def _tls_handshake(self, conn: Connection) -> None:
        try:
            conn.sock.do_handshake()
        except ssl.SSLWantReadError:
            self._want_write(conn, False)
            return
        except ssl.SSLWantWriteError:
            self._want_write(conn, True)
            return
        except (ssl.SSLError, OSError) as exc:
            self.counters.tls_failed += 1
            self.close(conn, f"TLS handshake failed: {exc}")
            return
        conn.tls_handshaking = False
        self._want_write(conn, bool(conn.outgoing))
        self._read(conn)  # the handshake's last record may have come with application data

    def _recv(self, conn: Connection) -> bytes | None:
        """What the socket has now (b"" at end of stream); None if nothing yet."""
        sock = conn.sock
        try:
            data = sock.recv(RECV_SIZE_BYTES)
            # TLS decrypts one record per recv: take what is already decrypted, as epoll
            # will not report it (it has left the kernel's buffer).
            while data and isinstance(sock, ssl.SSLSocket) and sock.pending():
                data += sock.recv(sock.pending())
        except (BlockingIOError, InterruptedError, ssl.SSLWantReadError, ssl.SSLWantWriteError):
            return None
        return data

    def _read(self, conn: Connection) -> None:
        try:
            data = self._recv(conn)
        except OSError as exc:
            self.close(conn, f"recv failed: {exc.strerror or exc}")
            return
        if data is None:
            return
        if not data:
            self.close(conn, "closed by remote")
            return
        now = self.clock()
        conn.last_active_s = now
        conn.reader.feed(data)
        try:
            frames = conn.reader.frames()
        except FrameError as exc:
            self.counters.bad_frames += 1
            self.close(conn, f"bad frame: {exc}")
            return
        if not conn.reader.buffered_bytes:
            conn.partial_since_s = 0.0
        elif frames or not conn.partial_since_s:
            conn.partial_since_s = now  # a new frame began in this read
        if frames and conn.kind == "client":
            conn.established = True
        if frames:
            self.counters.frames_in += len(frames)
            self.handler.on_frames(conn, frames)

    def flush(self) -> None:
        """Write what was queued since the last flush (also called by the net role after it
        drained its rings, so replies never wait for the next select)."""
        dirty, self._dirty = self._dirty, []
        for conn in dirty:
            if not conn.closed and not conn.connecting:
                self._write(conn)

    def _write(self, conn: Connection) -> None:
        if not conn.outgoing:
            return
        data = conn.outgoing[0] if len(conn.outgoing) == 1 else b"".join(conn.outgoing)
        frames = len(conn.outgoing)
        try:
            sent = conn.sock.send(data)
        except (BlockingIOError, InterruptedError, ssl.SSLWantWriteError, ssl.SSLWantReadError):
            sent = 0
        except OSError as exc:
            self.close(conn, f"send failed: {exc.strerror}")
            return
        if sent == len(data):
            self.counters.frames_out += frames
            conn.outgoing = []
            conn.outgoing_bytes = 0
            self._want_write(conn, False)
            return
        rest = memoryview(data)[sent:]
        conn.outgoing = [rest]
        conn.outgoing_bytes = len(rest)
        self._want_write(conn, True)

    def _want_write(self, conn: Connection, wanted: bool) -> None:
        if conn.want_write != wanted:
            conn.want_write = wanted
            events = selectors.EVENT_READ | (selectors.EVENT_WRITE if wanted else 0)
            self.selector.modify(conn.sock, events, ("conn", conn))
