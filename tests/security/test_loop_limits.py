"""Event-loop limits against real loopback sockets: handshake and slow-frame timeouts,
connection bounds per kind, oversize frames, and TLS with a certificate made for the test."""

from __future__ import annotations

import socket
import ssl
import threading
import time

from net import wire
from net.loop import EventLoop, Handler, LoopLimits
from net.wire import Command
from tests.security.tls_cert import client_context, make_cert


def _frame(n: int, size: int = 10) -> bytes:
    return wire.encode(wire.make_header(Command.PING, ping_timestamp=n), bytes(size))


class _Echo(Handler):
    loop: EventLoop

    def __init__(self) -> None:
        self.opened = 0

    def on_open(self, conn) -> None:
        self.opened += 1

    def on_frames(self, conn, frames):
        for frame in frames:
            self.loop.send(conn, bytes(frame))


class _Server:
    def __init__(self, limits: LoopLimits, clock=time.monotonic, tls=None, kind="client"):
        self.handler = _Echo()
        self.loop = EventLoop(self.handler, limits, clock=clock)
        self.handler.loop = self.loop
        self.port = self.loop.listen("127.0.0.1", 0, kind, tls=tls).getsockname()[1]
        self.thread = threading.Thread(target=self.loop.run, args=(lambda: 0.02,), daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.loop.stop()
        self.thread.join(5)
        self.loop.close_all()


def _wait_for(condition, timeout_s=10.0):
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "condition not reached before the deadline"
        time.sleep(0.005)


def _recv_exact(sock, size: int) -> bytes:
    data = bytearray()
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        if not chunk:
            raise ConnectionError("closed")
        data += chunk
    return bytes(data)


def _closed_by_server(sock) -> bool:
    sock.settimeout(5)
    try:
        return sock.recv(10) == b""
    except ConnectionResetError:
        return True


def test_a_connection_that_sends_nothing_is_closed_at_the_handshake_bound():
    now = [1000.0]
    with _Server(LoopLimits(frame_size_max=4096, handshake_timeout_s=5),
                 clock=lambda: now[0]) as server:
        quiet = socket.create_connection(("127.0.0.1", server.port))
        talker = socket.create_connection(("127.0.0.1", server.port))
        talker.sendall(_frame(1))
        assert _recv_exact(talker, len(_frame(1))) == _frame(1)
        _wait_for(lambda: server.handler.opened == 2)
        now[0] += 4
        server.loop.close_idle()
        assert server.loop.counters.handshake_timeouts == 0
        now[0] += 2
        server.loop.close_idle()
        assert _closed_by_server(quiet)
        assert server.loop.counters.handshake_timeouts == 1
        talker.sendall(_frame(2))  # established: the handshake bound no longer applies
        assert _recv_exact(talker, len(_frame(2))) == _frame(2)
        quiet.close()
        talker.close()


def test_a_slow_loris_trickling_one_frame_is_closed_though_it_is_never_idle():
    now = [1000.0]
    with _Server(LoopLimits(frame_size_max=4096, handshake_timeout_s=5, idle_timeout_s=300),
                 clock=lambda: now[0]) as server:
        sock = socket.create_connection(("127.0.0.1", server.port))
        sock.sendall(_frame(1))  # a good first frame: established
        _recv_exact(sock, len(_frame(1)))
        slow = _frame(2, 100)
        for index in range(8):  # one byte a "second", each read keeps the connection active
            sock.sendall(slow[index:index + 1])
            sent_at = server.loop.counters.frames_in
            now[0] += 1
            _wait_for(lambda: server.loop.connections and next(
                iter(server.loop.connections.values())).reader.buffered_bytes == index + 1)
            server.loop.close_idle()
            assert sent_at == server.loop.counters.frames_in
            if server.loop.counters.slow_frames_closed:
                break
        assert server.loop.counters.slow_frames_closed == 1
        assert server.loop.counters.idle_closed == 0
        assert _closed_by_server(sock)
        sock.close()


def test_client_connections_beyond_the_bound_are_refused_and_counted():
    with _Server(LoopLimits(frame_size_max=4096, connections_max=5)) as server:
        socks = [socket.create_connection(("127.0.0.1", server.port)) for _ in range(5)]
        _wait_for(lambda: server.handler.opened == 5)
        extra = [socket.create_connection(("127.0.0.1", server.port)) for _ in range(20)]
        _wait_for(lambda: server.loop.counters.refused_over_limit == 20)
        assert all(_closed_by_server(sock) for sock in extra)
        socks[0].sendall(_frame(7))  # the admitted ones still work
        assert _recv_exact(socks[0], len(_frame(7))) == _frame(7)
        socks[1].close()  # a freed slot is reusable
        _wait_for(lambda: len(server.loop.connections) == 4)
        again = socket.create_connection(("127.0.0.1", server.port))
        again.sendall(_frame(8))
        assert _recv_exact(again, len(_frame(8))) == _frame(8)
        for sock in socks + extra + [again]:
            sock.close()


def test_peer_connections_have_their_own_bound():
    limits = LoopLimits(frame_size_max=4096, connections_max=1000, peer_connections_max=2)
    with _Server(limits, kind="peer-in") as server:
        socks = [socket.create_connection(("127.0.0.1", server.port)) for _ in range(6)]
        _wait_for(lambda: server.loop.counters.refused_over_limit == 4)
        assert server.handler.opened == 2
        for sock in socks:
            sock.close()


def test_an_oversize_frame_closes_the_connection_before_its_body_is_buffered():
    with _Server(LoopLimits(frame_size_max=4096)) as server:
        sock = socket.create_connection(("127.0.0.1", server.port))
        header = bytearray(_frame(1)[:wire.HEADER_SIZE])
        header[48:52] = (1 << 20).to_bytes(4, "little")
        sock.sendall(bytes(header))
        assert _closed_by_server(sock)
        assert server.loop.counters.bad_frames == 1
        sock.close()


def test_tls_client_connection_echoes_frames_and_plain_text_is_refused(tmp_path):
    cert, key = make_cert(tmp_path)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    with _Server(LoopLimits(frame_size_max=1 << 20), tls=context) as server:
        raw = socket.create_connection(("127.0.0.1", server.port), timeout=5)
        with client_context(cert).wrap_socket(raw, server_hostname="127.0.0.1") as sock:
            frames = [_frame(i, size) for i, size in enumerate((0, 10, 70_000, 300_000, 5))]
            sock.sendall(b"".join(frames))
            for frame in frames:
                assert _recv_exact(sock, len(frame)) == frame
        plain = socket.create_connection(("127.0.0.1", server.port), timeout=5)
        plain.sendall(_frame(1))
        assert _closed_by_server(plain)
        _wait_for(lambda: server.loop.counters.tls_failed == 1)
        plain.close()
