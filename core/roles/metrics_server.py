"""The supervisor's metrics endpoint: GET /metrics over HTTP on the configured address.

It owns the listening socket and one server thread, nothing else: the body comes from a
`render` callable (the supervisor renders its CounterTable with core/roles/metrics.py).

It must never take the supervisor down nor hold it up, so every request is bounded: one
request at a time (a scrape is small and Prometheus scrapes rarely, so a thread per client
would only let a slow or hostile client multiply), a socket timeout, a cap on the bytes of a
request line plus headers, and any error in a request is answered 500 and logged, never
raised. It must be started after the roles are forked (a thread alive at fork time would be
copied into every role half-dead), which is why it is not created with the supervisor.
"""

from __future__ import annotations

import socket
import socketserver
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler

from core import log
from core.roles.metrics import CONTENT_TYPE

PATH = "/metrics"
REQUEST_BYTES_MAX = 8192  # request line + headers; a Prometheus scrape sends a few hundred
SOCKET_TIMEOUT_S = 5.0  # a client that stalls this long mid-request is dropped
SHUTDOWN_POLL_S = 0.2  # how often the server thread checks for shutdown


class _BoundedReader:
    """The request stream, cut off after REQUEST_BYTES_MAX bytes (a GET has no body)."""

    def __init__(self, raw, limit: int):
        self._raw = raw
        self._left = limit
        self.exceeded = False

    def readline(self, size: int = -1) -> bytes:
        if self._left <= 0:
            self.exceeded = True
            return b""
        size = self._left if size < 0 else min(size, self._left)
        line = self._raw.readline(size)
        self._left -= len(line)
        return line

    def close(self) -> None:
        self._raw.close()


def _handler(render: Callable[[], str]) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        timeout = SOCKET_TIMEOUT_S
        server_version = "metavsr"
        sys_version = ""  # the Server header need not tell a scanner the Python version

        def setup(self) -> None:
            super().setup()
            self.rfile = _BoundedReader(self.rfile, REQUEST_BYTES_MAX)

        def do_GET(self) -> None:
            if self.rfile.exceeded:
                self.send_error(431, f"request line and headers exceed {REQUEST_BYTES_MAX} bytes")
                return
            if self.path.partition("?")[0] != PATH:
                self.send_error(404, f"only GET {PATH} is served")
                return
            try:
                body = render().encode()
            except Exception as exc:  # a rendering bug must cost a scrape, not the replica
                log.error("metrics_render_failed", error=repr(exc))
                self.send_error(500, "rendering the metrics failed")
                return
            self.send_response(200)
            self.send_header("Content-Type", CONTENT_TYPE)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args) -> None:
            # http.server writes Apache-style lines to stderr; our stderr is JSON lines only.
            log.debug("metrics_request", client=self.client_address[0], message=format % args)

    return Handler


class _Server(socketserver.TCPServer):
    # Not http.server.HTTPServer: its bind does a reverse DNS lookup of the host, which can
    # stall the supervisor's start for as long as a broken resolver takes to time out.
    allow_reuse_address = True  # a restarted replica binds while the old socket is TIME_WAIT

    def handle_error(self, request, client_address) -> None:
        # The default prints a traceback to stderr; a client that hung up is not our error.
        log.warning("metrics_request_failed", client=str(client_address[0]))


class _Server6(_Server):
    address_family = socket.AF_INET6


class MetricsServer:
    """An HTTP server for GET /metrics on HOST:PORT, served by one daemon thread."""

    def __init__(self, address: str, render: Callable[[], str]):
        host, _, port = address.rpartition(":")
        host = host.strip("[]")
        server_class = _Server6 if ":" in host else _Server
        self._server = server_class((host, int(port)), _handler(render))
        self._thread = threading.Thread(target=self._server.serve_forever,
                                        args=(SHUTDOWN_POLL_S,), name="metrics", daemon=True)

    @property
    def address(self) -> tuple[str, int]:
        """The bound host and port (the port is chosen by the kernel when 0 was asked)."""
        host, port = self._server.server_address[:2]
        return host, port

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        """Stop serving and close the socket; waits at most for the request being served."""
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()
