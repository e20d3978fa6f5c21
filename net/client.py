"""metavsr's own client transport (sync): one session, Iggy's client protocol, failover.

Used by `metavsr ctl`, the load generator and the tests. It speaks exactly the frames the Iggy
SDK speaks (net/iggy.py), plus one metavsr extension the SDK never sets (the `consistency`
byte of the request header, for stale reads).

Why it can do better than an Iggy SDK on failover: a metavsr session lives in the replicated
client table, not in one server's memory. So after a timeout or a lost connection the client
re-sends the SAME frame (same client id, session and request number) to the next replica or
the new primary, and the cluster answers it exactly once: from the client table if it had
committed, by executing it otherwise.

Typed operations (create_stream, ...) live in net/operations.py on top of `call`/`read`.
"""

from __future__ import annotations

import os
import socket
import ssl
import struct
import time
from dataclasses import dataclass

from net import iggy, wire
from net.iggy import Code, EvictionReason, Operation

CONNECT_TIMEOUT_S = 2.0
RETRY_PAUSE_S = 0.05  # as the SDK: a transient answer is retried about 50 ms later
ROSTER_REDIRECTS_MAX = 3


class ClientError(Exception):
    """A request the cluster answered with an error code (status or result section)."""

    def __init__(self, code: int, message: str = ""):
        self.code = code
        super().__init__(message or f"error {code}")


class Unavailable(ClientError):
    """No replica answered within the deadline; the outcome of a write is unknown."""

    def __init__(self, message: str):
        super().__init__(-1, message)


class SessionLost(ClientError):
    """The cluster no longer knows this session (evicted from the client table)."""

    def __init__(self, reason: int):
        super().__init__(-2, f"session evicted (reason {reason}); log in again")
        self.reason = reason


@dataclass
class _Credentials:
    username: str = ""
    password: str = ""
    token: str = ""

    def body(self) -> bytes:
        if self.token:
            return iggy.token_login_body(self.token)
        return iggy.login_body(self.username, self.password)


class Client:
    """One client session against a cluster given as a list of (host, port) client addresses."""

    def __init__(self, addresses: list[tuple[str, int]], *, timeout_s: float = 5.0,
                 deadline_s: float = 30.0, tls: ssl.SSLContext | None = None):
        if not addresses:
            raise ValueError("a client needs at least one replica address")
        self.addresses = list(addresses)
        self.timeout_s = timeout_s
        self.deadline_s = deadline_s
        self.tls = tls  # for a cluster with security.tls on; verifies the replica's certificate
        self.client_id = b""
        self.session = 0
        self.user_id = -1
        self.next_request = 1
        self._credentials: _Credentials | None = None
        self._sock: socket.socket | None = None
        self._address_index = 0
        self._new_identity()

    # --- session ------------------------------------------------------------------------

    def login(self, username: str, password: str) -> int:
        """Log in by password; returns the user id. Finds the primary through the roster."""
        return self._login(_Credentials(username=username, password=password))

    def login_with_token(self, token: str) -> int:
        return self._login(_Credentials(token=token))

    def logout(self) -> None:
        self.call(Operation.LOGOUT)
        self.session = 0
        self._credentials = None
        self._new_identity()

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # --- requests -----------------------------------------------------------------------

    def call(self, operation: int, body: bytes = b"") -> bytes:
        """A replicated operation (or Logout): returns the result payload or raises."""
        if not self.session:
            raise ClientError(iggy.STATUS_UNAUTHENTICATED, "not logged in")
        request = self.next_request
        self.next_request += 1
        frame = iggy.request_frame(self.client_id, self.session, request, operation, body)
        return self._exchange(frame, operation, retry_on_new_connection=True)

    def read(self, code: int, body: bytes = b"", *, stale: bool = False) -> bytes:
        """A NonReplicated read by legacy code; linearizable unless stale=True."""
        frame = iggy.request_frame(self.client_id, self.session, self.next_request,
                                   Operation.NON_REPLICATED, body, code=code)
        if stale:
            frame = bytearray(frame)
            frame[200] = 1  # the `consistency` byte (net/wire.py REQUEST layout)
            frame = bytes(frame)
        return self._exchange(frame, Operation.NON_REPLICATED, retry_on_new_connection=True)

    def ping(self) -> None:
        self.read(Code.PING)

    # --- internals ----------------------------------------------------------------------

    def _new_identity(self) -> None:
        self.client_id = os.urandom(16)
        self.next_request = 1

    def _login(self, credentials: _Credentials) -> int:
        if self.session:
            self.logout()
        self._credentials = credentials
        self._register()
        # The session is cluster-wide (replicated client table), so moving to the primary
        # keeps it: no second Register, unlike an Iggy SDK.
        for _ in range(ROSTER_REDIRECTS_MAX):
            leader = self._leader_from_roster()
            if leader is None or leader == self.addresses[self._address_index]:
                break
            self._move_to(leader)
        return self.user_id

    def _register(self) -> None:
        frame = iggy.request_frame(self.client_id, 0, 0, Operation.REGISTER,
                                   self._credentials.body())
        payload = self._exchange(frame, Operation.REGISTER, retry_on_new_connection=True)
        login = iggy.parse_login_reply(payload)
        self.user_id, self.session = login.user_id, login.session
        self.next_request = 1

    def _leader_from_roster(self) -> tuple[str, int] | None:
        try:
            payload = self.read(Code.GET_CLUSTER_METADATA)
        except ClientError:
            return None
        for node in _parse_roster(payload):
            if node.leader and node.healthy:
                return (node.ip, node.tcp_port)
        return None

    def _move_to(self, address: tuple[str, int]) -> None:
        self.close()
        if address not in self.addresses:
            self.addresses.append(address)
        self._address_index = self.addresses.index(address)

    def _connect(self) -> None:
        """Connect to the current address, or the next reachable one."""
        errors = []
        for attempt in range(len(self.addresses)):
            index = (self._address_index + attempt) % len(self.addresses)
            try:
                sock = socket.create_connection(self.addresses[index], timeout=CONNECT_TIMEOUT_S)
            except OSError as exc:
                errors.append(f"{self.addresses[index]}: {exc.strerror or exc}")
                continue
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            sock.settimeout(self.timeout_s)
            if self.tls is not None:
                try:
                    sock = self.tls.wrap_socket(sock, server_hostname=self.addresses[index][0])
                except OSError as exc:  # ssl.SSLError included: a bad certificate
                    sock.close()
                    errors.append(f"{self.addresses[index]}: TLS: {exc}")
                    continue
            self._sock = sock
            self._address_index = index
            return
        raise OSError("; ".join(errors))

    def _exchange(self, frame: bytes, operation: int, retry_on_new_connection: bool) -> bytes:
        deadline = time.monotonic() + self.deadline_s
        last_error = "no attempt"
        while time.monotonic() < deadline:
            try:
                if self._sock is None:
                    self._connect()
                self._sock.sendall(frame)
                reply = iggy.parse_reply(self._receive(), operation)
            except (OSError, iggy.ProtocolError) as exc:
                last_error = str(exc) or type(exc).__name__
                self.close()
                if not retry_on_new_connection:
                    break
                self._address_index = (self._address_index + 1) % len(self.addresses)
                time.sleep(RETRY_PAUSE_S)
                continue
            if reply.evicted is not None:
                if operation == Operation.REGISTER:
                    raise ClientError(_eviction_code(reply.evicted),
                                      f"login refused ({EvictionReason(reply.evicted).name})"
                                      if reply.evicted in EvictionReason.__members__.values()
                                      else f"login refused (reason {reply.evicted})")
                raise SessionLost(int(reply.evicted))
            if reply.status == iggy.STATUS_TRANSIENT_NOT_ACCEPTED:
                # Not the primary: the same frame goes to the next replica at once.
                last_error = "answered by a backup"
                self.close()
                self._address_index = (self._address_index + 1) % len(self.addresses)
                continue
            if reply.status == iggy.STATUS_TRANSIENT_NOT_COMMITTED:
                last_error = "outcome not known yet"
                time.sleep(RETRY_PAUSE_S)
                continue
            if reply.status:
                raise ClientError(reply.status)
            return reply.payload
        raise Unavailable(f"no answer within {self.deadline_s} s: {last_error}")

    def _receive(self) -> bytes:
        header = _recv_exact(self._sock, wire.HEADER_SIZE)
        size = wire.frame_size(header)
        return header + _recv_exact(self._sock, size - wire.HEADER_SIZE)


def _recv_exact(sock: socket.socket, size: int) -> bytes:
    data = bytearray()
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        if not chunk:
            raise ConnectionError("connection closed by the replica")
        data += chunk
    return bytes(data)


def _eviction_code(reason: int) -> int:
    # The Iggy error code the SDK shows for each login eviction (iggy-protocol.md 2.3).
    return {EvictionReason.INVALID_CREDENTIALS: 42, EvictionReason.INVALID_TOKEN: 53,
            EvictionReason.MALFORMED_LOGIN: 4}.get(reason, iggy.STATUS_UNAUTHENTICATED)


def _parse_roster(payload: bytes) -> list[iggy.Node]:
    """Decode a code-12 roster; a malformed one is ignored as the SDK does."""
    nodes = []
    try:
        offset = 4 + struct.unpack_from("<I", payload, 0)[0]
        (count,) = struct.unpack_from("<I", payload, offset)
        offset += 4
        for _ in range(count):
            (name_len,) = struct.unpack_from("<I", payload, offset)
            name = payload[offset + 4:offset + 4 + name_len].decode()
            offset += 4 + name_len
            (ip_len,) = struct.unpack_from("<I", payload, offset)
            ip = payload[offset + 4:offset + 4 + ip_len].decode()
            offset += 4 + ip_len
            tcp, _quic, _http, _ws, role, status = struct.unpack_from("<HHHHBB", payload, offset)
            offset += 10
            nodes.append(iggy.Node(name, ip, tcp, leader=role == 0, healthy=status == 0))
    except (struct.error, UnicodeDecodeError):
        return []
    return nodes
