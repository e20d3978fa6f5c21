"""The chaos proxy on loopback: bytes flow when up, connections reset on drop, silence on hang."""

from __future__ import annotations

import socket
import threading
import time

import pytest

from tests.integration.test_cluster import _free_base_port
from tools.chaos.proxy import Proxy


@pytest.fixture
def echo():
    server = socket.create_server(("127.0.0.1", 0))
    stop = threading.Event()

    def serve(conn):
        with conn:
            while data := conn.recv(4096):
                conn.sendall(data)

    def accept():
        server.settimeout(0.1)
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except TimeoutError:
                continue
            threading.Thread(target=serve, args=(conn,), daemon=True).start()

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield server.getsockname()
    stop.set()
    thread.join()
    server.close()


@pytest.fixture
def proxy(echo):
    proxy = Proxy()
    listen = ("127.0.0.1", _free_base_port())
    proxy.add_link("client->0", None, listen, None, echo)
    proxy.start()
    yield proxy, listen
    proxy.stop()


def _roundtrip(sock: socket.socket, data: bytes) -> bytes:
    sock.sendall(data)
    got = b""
    while len(got) < len(data):
        chunk = sock.recv(4096)
        if not chunk:
            break
        got += chunk
    return got


def _closed(sock: socket.socket) -> bool:
    """True once the proxy closed the connection (EOF or reset), within a deadline."""
    sock.settimeout(5.0)
    try:
        return sock.recv(1) == b""
    except ConnectionResetError:
        return True


def _wait_mode(proxy: Proxy, mode: str) -> None:
    deadline = time.monotonic() + 5.0
    while proxy.links["client->0"].mode != mode:
        assert time.monotonic() < deadline, f"link never became {mode}"
        time.sleep(0.01)


def test_bytes_flow_through_an_up_link(proxy):
    proxy, listen = proxy
    with socket.create_connection(listen, timeout=5.0) as sock:
        assert _roundtrip(sock, b"hello" * 10_000) == b"hello" * 10_000


def test_drop_resets_open_connections_and_new_ones_until_healed(proxy):
    proxy, listen = proxy
    sock = socket.create_connection(listen, timeout=5.0)
    assert _roundtrip(sock, b"before") == b"before"
    proxy.set_mode(["client->0"], "drop")
    assert _closed(sock)
    with socket.create_connection(listen, timeout=5.0) as fresh:
        assert _closed(fresh)
    proxy.set_mode(["client->0"], "up")
    _wait_mode(proxy, "up")
    with socket.create_connection(listen, timeout=5.0) as healed:
        assert _roundtrip(healed, b"after") == b"after"


def test_hang_stops_bytes_silently_and_heal_closes_what_was_held(proxy):
    proxy, listen = proxy
    sock = socket.create_connection(listen, timeout=5.0)
    assert _roundtrip(sock, b"before") == b"before"
    proxy.set_mode(["client->0"], "hang")
    _wait_mode(proxy, "hang")
    sock.sendall(b"lost?")
    sock.settimeout(0.5)
    with pytest.raises(TimeoutError):  # silence, not a reset
        sock.recv(16)
    proxy.set_mode(["client->0"], "up")
    assert _closed(sock)
    with socket.create_connection(listen, timeout=5.0) as healed:
        assert _roundtrip(healed, b"after") == b"after"
