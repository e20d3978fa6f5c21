"""The net event loop and stream framing over real loopback sockets."""

from __future__ import annotations

import random
import socket
import threading
import time

import pytest
from hypothesis import given, settings, strategies as st

from net import wire
from net.framing import FrameReader
from net.loop import EventLoop, Handler, LoopLimits
from net.wire import Command, FrameError


def _frame(n: int, size: int = 10) -> bytes:
    return wire.encode(wire.make_header(Command.PING, ping_timestamp=n), bytes(size))


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(0, 300), min_size=1, max_size=20), st.randoms())
def test_framing_recovers_frames_from_any_chunking(sizes, rng):
    frames = [_frame(i, size) for i, size in enumerate(sizes)]
    stream = b"".join(frames)
    reader = FrameReader(frame_size_max=4096)
    got = []
    position = 0
    while position < len(stream):
        step = rng.randint(1, 700)
        reader.feed(stream[position:position + step])
        position += step
        got.extend(reader.frames())
    assert [bytes(f) for f in got] == frames
    assert reader.buffered_bytes == 0


def test_framing_refuses_a_size_outside_bounds():
    reader = FrameReader(frame_size_max=1024)
    reader.feed(_frame(1, 2000))
    with pytest.raises(FrameError):
        reader.frames()
    reader = FrameReader(frame_size_max=1024)
    bad = bytearray(_frame(1))
    bad[48:52] = (10).to_bytes(4, "little")
    reader.feed(bad)
    with pytest.raises(FrameError):
        reader.frames()


class _Echo(Handler):
    def __init__(self):
        self.loop: EventLoop | None = None
        self.closed_reasons: list[str] = []

    def on_frames(self, conn, frames):
        for frame in frames:
            self.loop.send(conn, bytes(frame))

    def on_close(self, conn, reason):
        self.closed_reasons.append(reason)


class _Server:
    def __init__(self, limits: LoopLimits, handler=None, clock=time.monotonic):
        self.handler = handler or _Echo()
        self.loop = EventLoop(self.handler, limits, clock=clock)
        self.handler.loop = self.loop
        self.port = self.loop.listen("127.0.0.1", 0, "client").getsockname()[1]
        self.thread = threading.Thread(target=self.loop.run, args=(lambda: 0.05,), daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.loop.stop()
        self.thread.join(timeout=5)
        self.loop.close_all()


def _recv_exact(sock: socket.socket, size: int) -> bytes:
    data = bytearray()
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        if not chunk:
            raise ConnectionError("closed")
        data += chunk
    return bytes(data)


def _wait_for(condition, timeout_s=5.0):
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached before the deadline")
        time.sleep(0.005)


def test_echo_of_many_frames_in_random_chunks():
    rng = random.Random(7)
    frames = [_frame(i, rng.randint(0, 3000)) for i in range(2000)]
    stream = b"".join(frames)
    with _Server(LoopLimits(frame_size_max=8192)) as server:
        sock = socket.create_connection(("127.0.0.1", server.port))
        sender = threading.Thread(target=lambda: [sock.sendall(stream[i:i + 997])
                                                  for i in range(0, len(stream), 997)])
        sender.start()
        echoed = _recv_exact(sock, len(stream))
        sender.join()
        sock.close()
    assert echoed == stream


def test_bad_frame_closes_only_that_connection_and_is_counted():
    with _Server(LoopLimits(frame_size_max=4096)) as server:
        good = socket.create_connection(("127.0.0.1", server.port))
        bad = socket.create_connection(("127.0.0.1", server.port))
        bad.sendall(_frame(1, 5000))
        assert bad.recv(10) == b""
        good.sendall(_frame(2))
        assert _recv_exact(good, len(_frame(2))) == _frame(2)
        assert server.loop.counters.bad_frames == 1
        good.close()
        bad.close()


def test_connections_beyond_the_limit_are_refused():
    with _Server(LoopLimits(frame_size_max=4096, connections_max=3)) as server:
        socks = [socket.create_connection(("127.0.0.1", server.port)) for _ in range(3)]
        _wait_for(lambda: len(server.loop.connections) == 3)
        extra = socket.create_connection(("127.0.0.1", server.port))
        assert extra.recv(10) == b""
        assert server.loop.counters.refused_over_limit == 1
        socks[0].sendall(_frame(3))
        assert _recv_exact(socks[0], len(_frame(3))) == _frame(3)
        for sock in socks + [extra]:
            sock.close()


def test_slow_reader_is_disconnected_not_buffered_forever():
    with _Server(LoopLimits(frame_size_max=65536, write_buffer_max_bytes=1 << 20)) as server:
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.connect(("127.0.0.1", server.port))
        frame = _frame(1, 60000)
        try:
            for _ in range(400):  # 24 MB the client never reads
                sock.sendall(frame)
        except OSError:
            pass
        _wait_for(lambda: server.loop.counters.slow_readers_closed == 1)
        sock.close()


def test_idle_client_is_closed_after_the_bound():
    now = [1000.0]
    with _Server(LoopLimits(frame_size_max=4096, idle_timeout_s=30), clock=lambda: now[0]) as server:
        sock = socket.create_connection(("127.0.0.1", server.port))
        frame = _frame(1)
        sock.sendall(frame)
        assert _recv_exact(sock, len(frame)) == frame  # established: past the handshake bound
        now[0] += 31
        server.loop.close_idle()
        assert sock.recv(10) == b""
        assert server.loop.counters.idle_closed == 1
        sock.close()


def test_dialed_peer_connection_delivers_queued_frames():
    received = []

    class _Sink(Handler):
        def on_frames(self, conn, frames):
            received.extend(bytes(f) for f in frames)

    with _Server(LoopLimits(frame_size_max=4096), handler=_Sink()) as server:
        dialer = EventLoop(Handler(), LoopLimits(frame_size_max=4096))
        conn = dialer.dial("127.0.0.1", server.port, peer=2)
        for i in range(10):
            dialer.send(conn, _frame(i))
        deadline = time.monotonic() + 5
        while len(received) < 10 and time.monotonic() < deadline:
            dialer.turn(0.01)
        dialer.close_all()
    assert received == [_frame(i) for i in range(10)]


def test_dial_to_a_closed_port_reports_a_close():
    reasons = []

    class _Watch(Handler):
        def on_close(self, conn, reason):
            reasons.append(reason)

    probe = socket.socket()
    probe.bind(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()
    loop = EventLoop(_Watch(), LoopLimits(frame_size_max=4096))
    loop.dial("127.0.0.1", port, peer=1)
    deadline = time.monotonic() + 5
    while not reasons and time.monotonic() < deadline:
        loop.turn(0.01)
    loop.close_all()
    assert reasons and "connect failed" in reasons[0]
