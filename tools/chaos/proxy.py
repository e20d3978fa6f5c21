"""The fault-injecting TCP proxy: every client and peer connection of the chaos cluster.

Owns one listener per directed link ("client->1": clients to replica 1; "0->1": replica 0's
dialed connection to replica 1, on which 0 sends to 1) and the byte pumps of the connections
accepted on it, in one thread. A link is "up" (bytes flow), "drop" (its connections are closed
and new ones accepted then closed at once: the peer sees a reset) or "hang" (bytes stop in
both directions and new connections are held unanswered: the peer sees silence, as when
packets are lost; at heal the hung connections are closed, as a peer's keepalive would).
Never parses what it forwards.
"""

from __future__ import annotations

import errno
import selectors
import socket
import threading
from dataclasses import dataclass, field

from tools.chaos import netns

MODES = ("up", "drop", "hang")
RECV_SIZE_BYTES = 64 * 1024
BUFFERED_MAX_BYTES = 4 << 20  # per direction: past it the proxy stops reading the sender
SELECT_MAX_S = 0.2


@dataclass
class Link:
    name: str
    listen_ns: str | None
    listen: tuple[str, int]
    target_ns: str | None
    target: tuple[str, int]
    mode: str = "up"
    pairs: set = field(default_factory=set)
    held: list = field(default_factory=list)
    accepted: int = 0
    closed_by_fault: int = 0


class _End:
    __slots__ = ("sock", "pair", "out", "events")

    def __init__(self, sock: socket.socket, pair: "_Pair"):
        self.sock, self.pair, self.out, self.events = sock, pair, bytearray(), 0


class _Pair:
    __slots__ = ("link", "down", "up", "connecting", "hung")

    def __init__(self, link: Link, down: socket.socket, up: socket.socket):
        self.link, self.connecting, self.hung = link, True, False
        self.down, self.up = _End(down, self), _End(up, self)

    def other(self, end: _End) -> _End:
        return self.up if end is self.down else self.down


class Proxy:
    def __init__(self) -> None:
        self.links: dict[str, Link] = {}
        self.selector = selectors.DefaultSelector()
        self._lock = threading.Lock()
        self._changes: list[tuple[tuple[str, ...], str]] = []
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._stopping = False
        self._thread: threading.Thread | None = None
        self.failure: BaseException | None = None

    # --- control (any thread) -------------------------------------------------------------

    def add_link(self, name: str, listen_ns: str | None, listen: tuple[str, int],
                 target_ns: str | None, target: tuple[str, int]) -> None:
        assert self._thread is None, "links are added before the proxy starts"
        link = Link(name, listen_ns, listen, target_ns, target)
        with netns.entered(listen_ns):
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(listen)
        sock.listen(128)
        sock.setblocking(False)
        self.selector.register(sock, selectors.EVENT_READ, link)
        self.links[name] = link

    def start(self) -> None:
        self.selector.register(self._wake_r, selectors.EVENT_READ, None)
        self._thread = threading.Thread(target=self._run, name="chaos-proxy", daemon=True)
        self._thread.start()

    def set_mode(self, names, mode: str) -> None:
        assert mode in MODES, mode
        names = tuple(names)
        for name in names:
            assert name in self.links, f"no link {name}"
        with self._lock:
            self._changes.append((names, mode))
        self._wake_w.send(b"x")

    def heal_all(self) -> None:
        self.set_mode(list(self.links), "up")

    def stop(self) -> None:
        self._stopping = True
        self._wake_w.send(b"x")
        if self._thread is not None:
            self._thread.join(timeout=10)
        for key in list(self.selector.get_map().values()):
            key.fileobj.close()
        for link in self.links.values():
            for sock in link.held:
                sock.close()
        self.selector.close()
        self._wake_w.close()

    # --- the loop (proxy thread) ----------------------------------------------------------

    def _run(self) -> None:
        try:
            while not self._stopping:
                for key, mask in self.selector.select(SELECT_MAX_S):
                    data = key.data
                    if data is None:
                        self._drain_wake()
                    elif isinstance(data, Link):
                        self._accept(key.fileobj, data)
                    elif data.sock is key.fileobj:  # an end not closed earlier this turn
                        self._ready(data, mask)
                self._apply_changes()
        except BaseException as exc:  # reported by the run; a dead proxy must not go unseen
            self.failure = exc
            raise

    def _drain_wake(self) -> None:
        try:
            while self._wake_r.recv(4096):
                pass
        except BlockingIOError:
            pass

    def _apply_changes(self) -> None:
        with self._lock:
            changes, self._changes = self._changes, []
        for names, mode in changes:
            for name in names:
                link = self.links[name]
                previous = link.mode
                if mode == "drop" or (mode == "up" and previous == "hang"):
                    for pair in list(link.pairs):
                        self._close(pair, by_fault=True)
                    for sock in link.held:
                        sock.close()
                    link.held.clear()
                elif mode == "hang":
                    for pair in link.pairs:
                        pair.hung = True
                        self._interest(pair.down)
                        self._interest(pair.up)
                link.mode = mode  # last: a reader of the mode sees the change done

    def _accept(self, listener: socket.socket, link: Link) -> None:
        try:
            down, _ = listener.accept()
        except (BlockingIOError, ConnectionAbortedError):
            return
        link.accepted += 1
        if link.mode == "drop":
            down.close()
            return
        if link.mode == "hang":
            link.held.append(down)
            return
        down.setblocking(False)
        with netns.entered(link.target_ns):
            up = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        up.setblocking(False)
        for sock in (down, up):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        pair = _Pair(link, down, up)
        link.pairs.add(pair)
        err = up.connect_ex(link.target)
        if err not in (0, errno.EINPROGRESS):
            down.close()
            up.close()
            link.pairs.discard(pair)
            return
        self._interest(pair.down)
        self._interest(pair.up)

    def _ready(self, end: _End, mask: int) -> None:
        pair = end.pair
        if end is pair.up and pair.connecting:
            if end.sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR):
                self._close(pair)  # the replica is down: its client sees the close
                return
            pair.connecting = False
        if mask & selectors.EVENT_WRITE and end.out:
            try:
                sent = end.sock.send(end.out)
            except BlockingIOError:
                sent = 0
            except OSError:
                self._close(pair)
                return
            del end.out[:sent]
        if mask & selectors.EVENT_READ:
            try:
                data = end.sock.recv(RECV_SIZE_BYTES)
            except BlockingIOError:
                data = None
            except OSError:
                data = b""
            if data == b"":
                self._close(pair)
                return
            if data:
                pair.other(end).out += data
        self._interest(pair.down)
        self._interest(pair.up)

    def _interest(self, end: _End) -> None:
        pair = end.pair
        if end.sock is None:
            return
        events = 0
        if not pair.hung:
            if end is pair.up and pair.connecting:
                events = selectors.EVENT_WRITE
            else:
                if len(pair.other(end).out) < BUFFERED_MAX_BYTES:
                    events |= selectors.EVENT_READ
                if end.out:
                    events |= selectors.EVENT_WRITE
        if events == end.events:
            return
        if end.events == 0:
            self.selector.register(end.sock, events, end)
        elif events == 0:
            self.selector.unregister(end.sock)
        else:
            self.selector.modify(end.sock, events, end)
        end.events = events

    def _close(self, pair: _Pair, by_fault: bool = False) -> None:
        for end in (pair.down, pair.up):
            if end.sock is None:
                continue
            if end.events:
                self.selector.unregister(end.sock)
            end.sock.close()
            end.sock, end.events = None, 0
        if pair in pair.link.pairs:
            pair.link.pairs.discard(pair)
            pair.link.closed_by_fault += by_fault
