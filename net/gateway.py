"""The client side of the net role: Iggy's client protocol per connection, sans-IO.

For each client connection the gateway keeps the protocol state (session bound or not, the one
request in flight, a login or hashing step under way) and turns each request frame into
actions for the net role to carry out:

  Reply(conn, frame)          answer now, from the net process (ping, roster, refusals)
  ToReplication(record)       a write, a Register or a linearizable read, to the VSR core
  ToOwner(record)             a stale read or a credentials lookup, to the owner
  Job(conn, fn, args)         slow work (scrypt) for a thread pool; its result comes back
                              through `job_done`
  Close(conn, reason)         protocol violation

What is answered here never costs a log slot: static validation (domains' admit), protocol
version gate, unauthenticated requests, message-plane calls (FeatureUnavailable) and unknown
codes. Secrets (passwords, token secrets) are turned into salted hashes here, before anything
reaches the log; they are never logged.

Sessions are cluster-wide (the replicated client table), so a request that carries a session
on a fresh connection is forwarded as is: the owner checks (client, session) against the table
and evicts it if unknown. This is what lets a client fail over without logging in again.
"""

from __future__ import annotations

import struct
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from core import auth
from core.roles import records
from core.roles.records import USER_NONE, Lookup
from domains import codec as domain_codec
from domains import sessions_wire
from domains import users_wire
from domains.errors import DomainError
from domains.mux import MuxStateMachine
from net import describe_options, iggy, wire
from net.iggy import Code, EvictionReason, Operation
from net.throttle import CONN_FAILURES_MAX, LoginThrottle

# Reads the owner answers (metadata plane); everything else NonReplicated is handled here.
READ_CODES = frozenset({
    Code.GET_USER, Code.GET_USERS, Code.GET_PERSONAL_ACCESS_TOKENS, Code.GET_STREAM,
    Code.GET_STREAMS, Code.GET_TOPIC, Code.GET_TOPICS, Code.GET_CONSUMER_GROUP,
    Code.GET_CONSUMER_GROUPS,
})
# Reads outside the catalogue: roster and option descriptions answered here, stats by the owner.
LOCAL_READ_CODES = frozenset({Code.GET_CLUSTER_METADATA, Code.DESCRIBE_OPTIONS, Code.GET_STATS})
MESSAGE_PLANE_CODES = frozenset({Code.POLL_MESSAGES, Code.FLUSH_UNSAVED_BUFFER,
                                 Code.GET_CONSUMER_OFFSET, Code.SYNC_CONSUMER_GROUP})
MESSAGE_PLANE_OPERATIONS = frozenset({Operation.SEND_MESSAGES, Operation.STORE_CONSUMER_OFFSET,
                                      Operation.DELETE_CONSUMER_OFFSET,
                                      Operation.DELETE_SEGMENTS})
WRITE_OPERATIONS = frozenset(range(128, 150)) - MESSAGE_PLANE_OPERATIONS

# metavsr's own status codes, outside Iggy's catalogue (docs/SECURITY.md): an Iggy SDK shows
# them as a generic error, metavsr's client by number.
STATUS_LOGIN_THROTTLED = 9100  # too many failed logins for this account: retry later
STATUS_OP_TOO_LARGE = 9101  # a write's body is over limits.op_size_max


@dataclass(frozen=True)
class Reply:
    conn: int
    frame: bytes


@dataclass(frozen=True)
class ToReplication:
    record: bytes


@dataclass(frozen=True)
class ToOwner:
    record: bytes


@dataclass(frozen=True)
class Job:
    conn: int
    fn: Callable
    args: tuple

    def __repr__(self) -> str:  # args may hold a secret
        return f"Job(conn={self.conn}, fn={self.fn.__name__})"


@dataclass(frozen=True)
class Close:
    conn: int
    reason: str


@dataclass
class _Conn:
    user: int = USER_NONE
    session: int = 0
    in_flight: int = 0
    # A multi-step request under way: (step name, request header, data for the next step).
    step: tuple | None = None
    minted_token: str = ""
    account: bytes = b""  # the throttle key of the login under way
    login_failures: int = 0


@dataclass
class GatewayCounters:
    requests: int = 0
    refused_unauthenticated: int = 0
    refused_admission: int = 0
    logins_failed: int = 0
    logins_throttled: int = 0
    closed_login_failures: int = 0
    closed_in_flight: int = 0
    refused_op_size: int = 0
    refused_busy: int = 0
    protocol_errors: int = 0


@dataclass
class Gateway:
    body_size_max: int
    requests_in_flight_max: int
    roster: Callable[[], bytes]  # the code-12 body for the current view
    has_primary: Callable[[], bool]  # a primary in normal status is known (this one or another)
    op_size_max: int = 0  # largest write body admitted to the log; 0: body_size_max
    clock: Callable[[], float] = time.monotonic
    throttle: LoginThrottle = field(default_factory=LoginThrottle)
    conns: dict[int, _Conn] = field(default_factory=dict)
    counters: GatewayCounters = field(default_factory=GatewayCounters)

    # --- connection events ------------------------------------------------------------

    def opened(self, conn: int) -> None:
        self.conns[conn] = _Conn()

    def closed(self, conn: int) -> None:
        self.conns.pop(conn, None)

    def on_frame(self, conn: int, frame: memoryview) -> list:
        state = self.conns[conn]
        try:
            header, body = wire.decode_client_frame(frame, self.body_size_max)
        except wire.FrameError as exc:
            self.counters.protocol_errors += 1
            return [Close(conn, f"bad client frame: {exc}")]
        if state.in_flight >= self.requests_in_flight_max or state.step is not None:
            self.counters.closed_in_flight += 1
            return [Close(conn, "too many requests in flight")]
        self.counters.requests += 1
        operation = header.operation
        if operation == Operation.NON_REPLICATED:
            return self._read(conn, state, header, frame)
        if operation == Operation.REGISTER:
            return self._login(conn, state, header, bytes(body))
        if operation == Operation.LOGOUT or operation in WRITE_OPERATIONS:
            return self._write(conn, state, header, bytes(body), frame)
        if operation in MESSAGE_PLANE_OPERATIONS:
            return [self._status(conn, header, iggy.STATUS_FEATURE_UNAVAILABLE)]
        return [self._status(conn, header, iggy.STATUS_INVALID_COMMAND)]

    def on_reply(self, conn: int, frame: memoryview) -> bytes | None:
        """A reply from the owner or replication for this connection: the frame to send."""
        state = self.conns.get(conn)
        if state is None:
            return None  # the connection closed while its request was in flight
        state.in_flight = max(0, state.in_flight - 1)
        header = wire.decode_header(frame)
        if header.command != wire.Command.REPLY or header.status:
            return bytes(frame)
        body = frame[wire.HEADER_SIZE:]
        if header.operation == Operation.REGISTER and len(body) >= 16:
            state.user, state.session = struct.unpack_from("<IQ", body, 4)
            self.throttle.succeeded(state.account)
        elif header.operation == Operation.LOGOUT:
            state.user, state.session = USER_NONE, 0
        elif header.operation == Operation.CREATE_PERSONAL_ACCESS_TOKEN and state.minted_token:
            token, state.minted_token = state.minted_token, ""
            if bytes(body[:4]) == b"\x00\x00\x00\x00":
                return _with_body(header, iggy.result_ok(iggy.name8(token)))
        return bytes(frame)

    def on_credentials(self, conn: int, found: bool, user: int, active: bool,
                       blob: bytes) -> list:
        """The owner's answer to a credentials lookup for the step under way."""
        state = self.conns.get(conn)
        if state is None or state.step is None:
            return []
        name, header, data = state.step
        if name == "login_lookup":
            if not (found and active):
                state.step = None
                # Same answer for unknown, inactive and wrong: no account enumeration.
                return self._login_failed(conn, state, header, EvictionReason.INVALID_CREDENTIALS)
            state.step = ("login_verify", header, (user, blob))
            return [Job(conn, auth.verify_secret, (blob, data))]
        if name == "token_lookup":
            if not (found and active):
                state.step = None
                return self._login_failed(conn, state, header, EvictionReason.INVALID_TOKEN)
            locator, secret = data
            stored = blob[len(locator):]
            state.step = ("token_verify", header, (user, blob))
            return [Job(conn, auth.verify_secret, (stored, secret))]
        if name == "password_lookup":
            current, new, body = data
            if not found:
                state.step = None
                return [self._result_error(conn, header, 20)]
            state.step = ("password_verify", header, (new, body))
            return [Job(conn, auth.verify_secret, (blob, current))]
        return []

    def job_done(self, conn: int, result: object) -> list:
        state = self.conns.get(conn)
        if state is None or state.step is None:
            return []
        name, header, data = state.step
        state.step = None
        if name == "login_verify":
            if not result:
                return self._login_failed(conn, state, header, EvictionReason.INVALID_CREDENTIALS)
            user, password_hash = data
            return self._forward(conn, state, header,
                                 sessions_wire.encode_register(user, password_hash=password_hash))
        if name == "token_verify":
            user, token_record = data
            if not result:
                return self._login_failed(conn, state, header, EvictionReason.INVALID_TOKEN)
            return self._forward(conn, state, header,
                                 sessions_wire.encode_register(user, token_record))
        if name == "hash_new_user":
            return self._forward(conn, state, header,
                                 users_wire.rewrite_create_user(data, result))
        if name == "password_verify":
            new, body = data
            if not result:
                return [self._result_error(conn, header, 42)]
            state.step = ("hash_new_password", header, body)
            return [Job(conn, auth.hash_secret, (new,))]
        if name == "hash_new_password":
            return self._forward(conn, state, header,
                                 users_wire.rewrite_change_password(data, result))
        if name == "hash_token":
            token, locator, body = data
            state.minted_token = token
            return self._forward(conn, state, header,
                                 users_wire.rewrite_create_token(body, locator + result))
        return []

    def job_refused(self, conn: int) -> list:
        """The net role has too many hash jobs to take this one: the client retries later."""
        state = self.conns.get(conn)
        if state is None or state.step is None:
            return []
        _name, header, _data = state.step
        state.step = None
        self.counters.refused_busy += 1
        return [self._status(conn, header, iggy.STATUS_TRANSIENT_NOT_ACCEPTED)]

    # --- request kinds ----------------------------------------------------------------

    def _read(self, conn: int, state: _Conn, header, frame: memoryview) -> list:
        code = header.code
        if code == Code.PING:
            return [self._status(conn, header, iggy.STATUS_OK)]
        # As Iggy's server: before login every read but ping is refused with 40.
        if not self._authenticated(state, header):
            self.counters.refused_unauthenticated += 1
            return [self._status(conn, header, iggy.STATUS_UNAUTHENTICATED)]
        if code in MESSAGE_PLANE_CODES:
            return [self._status(conn, header, iggy.STATUS_FEATURE_UNAVAILABLE)]
        if code not in READ_CODES and code not in LOCAL_READ_CODES:
            return [self._status(conn, header, iggy.STATUS_INVALID_COMMAND)]
        if code == Code.GET_CLUSTER_METADATA:
            return [Reply(conn, iggy.reply_frame(header, body=self.roster()))]
        if code == Code.DESCRIBE_OPTIONS:
            return [self._describe_options(conn, header, bytes(frame[wire.HEADER_SIZE:]))]
        state.in_flight += 1
        # Stats are the answering replica's own figures: never worth a read-index round.
        if header.consistency == 1 or code == Code.GET_STATS:
            return [ToOwner(records.query(conn, frame))]
        return [ToReplication(records.client_request(conn, state.user, frame))]

    def _login(self, conn: int, state: _Conn, header, body: bytes) -> list:
        try:
            login = iggy.parse_login(body)
        except iggy.ProtocolError:
            self.counters.logins_failed += 1
            state.login_failures += 1
            return [Reply(conn, iggy.eviction_frame(header.client, EvictionReason.MALFORMED_LOGIN))]
        if not iggy.protocol_version_accepted(login.protocol_version):
            return [Reply(conn, iggy.eviction_frame(header.client,
                                                    EvictionReason.INCOMPATIBLE_PROTOCOL))]
        if not self.has_primary():
            # A view change is under way: the SDK re-sends the same frame a little later.
            return [self._status(conn, header, iggy.STATUS_TRANSIENT_NOT_ACCEPTED)]
        state.user, state.session = USER_NONE, 0
        if state.login_failures >= CONN_FAILURES_MAX:
            self.counters.closed_login_failures += 1
            return [Close(conn, "too many failed logins on this connection")]
        parts = None
        if isinstance(login, iggy.PasswordLogin):
            state.account = b"user:" + login.username.encode()
        else:
            parts = auth.split_token(login.token)
            if parts is None:
                state.account = b""
                return self._login_failed(conn, state, header, EvictionReason.INVALID_TOKEN)
            state.account = b"token:" + parts[0]
        # Refused before any lookup or hash: a throttled guess costs the server nothing.
        if self.throttle.wait_s(state.account, self.clock()) > 0:
            self.counters.logins_throttled += 1
            state.login_failures += 1
            return [self._status(conn, header, STATUS_LOGIN_THROTTLED)]
        if parts is None:
            state.step = ("login_lookup", header, login.password)
            return [ToOwner(records.credentials_query(conn, Lookup.USERNAME,
                                                      login.username.encode()))]
        state.step = ("token_lookup", header, parts)
        return [ToOwner(records.credentials_query(conn, Lookup.TOKEN_LOCATOR, parts[0]))]

    def _write(self, conn: int, state: _Conn, header, body: bytes, frame: memoryview) -> list:
        if not self._authenticated(state, header):
            self.counters.refused_unauthenticated += 1
            return [Reply(conn, iggy.eviction_frame(header.client, EvictionReason.NO_SESSION))]
        if not self.has_primary():
            return [self._status(conn, header, iggy.STATUS_TRANSIENT_NOT_ACCEPTED)]
        operation = header.operation
        if len(body) > (self.op_size_max or self.body_size_max):
            self.counters.refused_op_size += 1
            return [self._result_error(conn, header, STATUS_OP_TOO_LARGE)]
        if operation == Operation.LOGOUT:
            state.in_flight += 1
            return [ToReplication(records.client_request(conn, state.user, frame))]
        try:
            if operation == Operation.CREATE_USER:
                _username, password, *_ = users_wire.decode_create_user_request(body)
                state.step = ("hash_new_user", header, body)
                return [Job(conn, auth.hash_secret, (password,))]
            if operation == Operation.CHANGE_PASSWORD:
                user, current, new = users_wire.decode_change_password_request(body)
                state.step = ("password_lookup", header, (current, new, body))
                return [ToOwner(records.credentials_query(conn, Lookup.IDENTIFIER,
                                                          domain_codec.identifier(user)))]
            if operation == Operation.CREATE_PERSONAL_ACCESS_TOKEN:
                users_wire.decode_create_token_request(body)
                token, locator, secret = auth.mint_token()
                state.step = ("hash_token", header, (token, locator, body))
                return [Job(conn, auth.hash_secret, (secret,))]
            canonical = MuxStateMachine.admit(operation, body)
        except DomainError as error:
            self.counters.refused_admission += 1
            return [self._result_error(conn, header, error.code)]
        if canonical == body:
            state.in_flight += 1
            return [ToReplication(records.client_request(conn, state.user, frame))]
        return self._forward(conn, state, header, canonical)

    # --- helpers ----------------------------------------------------------------------

    @staticmethod
    def _describe_options(conn: int, header, body: bytes) -> Reply:
        if len(body) != 1 or body[0] not in describe_options.SCOPES:
            return Gateway._status(conn, header, iggy.STATUS_INVALID_FORMAT)
        return Reply(conn, iggy.reply_frame(header, body=describe_options.body(body[0])))

    def _login_failed(self, conn: int, state: _Conn, header, reason: EvictionReason) -> list:
        self.counters.logins_failed += 1
        state.login_failures += 1
        if state.account:
            self.throttle.failed(state.account, self.clock())
        return [Reply(conn, iggy.eviction_frame(header.client, reason))]

    def _forward(self, conn: int, state: _Conn, header, body: bytes) -> list:
        """Forward a request whose body admission rewrote (hash instead of secret...)."""
        frame = iggy.request_frame(header.client, header.session, header.request,
                                   header.operation, body)
        state.in_flight += 1
        return [ToReplication(records.client_request(conn, state.user, frame))]

    @staticmethod
    def _authenticated(state: _Conn, header) -> bool:
        # A session on a fresh connection is a resume: the owner checks it against the table.
        return state.session != 0 or header.session != 0

    @staticmethod
    def _status(conn: int, header, status: int) -> Reply:
        return Reply(conn, iggy.reply_frame(header, status=status))

    @staticmethod
    def _result_error(conn: int, header, code: int) -> Reply:
        if iggy.is_result_framed(header.operation, 1):
            return Reply(conn, iggy.reply_frame(header, body=iggy.result_error(code)))
        return Reply(conn, iggy.reply_frame(header, status=code))


def _with_body(header, body: bytes) -> bytes:
    reply = header._replace(size=0)
    return wire.encode(reply, body, checksums=False)

