"""Test-side stand-ins for what lives outside domains/: admission (hashing, credentials) and
an op counter that feeds the mux the way the replica's commit path does."""

from __future__ import annotations

import hashlib

from domains import sessions_wire
from domains import users_wire as uw
from domains.errors import INVALID_CREDENTIALS, DomainError
from domains.mux import MuxStateMachine
from domains.operations import CHANGE_PASSWORD, CREATE_PAT, CREATE_USER

# Fixed salt and tiny scrypt cost: tests need speed, not secrecy.
SALT = b"test-salt-16byte"


def password_hash(password: str) -> bytes:
    return SALT + hashlib.scrypt(password.encode(), salt=SALT, n=16, r=1, p=1, dklen=16)


def token_hash(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


def admit_sdk(mux: MuxStateMachine, operation: int, body: bytes, user_id: int) -> bytes:
    """What admission does on the primary: replace secrets by hashes, then static checks."""
    if operation == CREATE_USER:
        _, password, *_ = uw.decode_create_user_request(body)
        body = uw.rewrite_create_user(body, password_hash(password))
    elif operation == CHANGE_PASSWORD:
        ident, current, new = uw.decode_change_password_request(body)
        creds = mux.user_credentials(ident)
        if creds is None or creds[2] != password_hash(current):
            raise DomainError(INVALID_CREDENTIALS)
        body = uw.rewrite_change_password(body, password_hash(new))
    elif operation == CREATE_PAT:
        body = uw.rewrite_create_token(body, token_hash(f"token-{body.hex()}-{user_id}"))
    return mux.admit(operation, body)


def login_register_body(mux: MuxStateMachine, username: str, password: str) -> bytes:
    creds = mux.user_credentials(username)
    if creds is None or creds[2] != password_hash(password):
        raise DomainError(INVALID_CREDENTIALS)
    return sessions_wire.encode_register(creds[0], password_hash=creds[2])


class Driver:
    """Applies operations with increasing op numbers and per-client request numbers."""

    def __init__(self, mux: MuxStateMachine) -> None:
        self.mux = mux
        self.op = 0
        self.sessions: dict[bytes, list[int]] = {}  # client -> [session, last request, user]

    def login(self, client: bytes, user_id: int, timestamp: int = 1) -> tuple[int, bytes]:
        self.op += 1
        status, reply = self.mux.apply(self.op, timestamp, client, 0, 0, user_id, 1,
                                       sessions_wire.encode_register(user_id))
        if status == 0:
            self.sessions[client] = [self.op, 0, user_id]
        return status, reply

    def write(self, client: bytes, operation: int, body: bytes,
              timestamp: int = 1) -> tuple[int, bytes]:
        session, request, user_id = self.sessions[client]
        request += 1
        self.sessions[client][1] = request
        self.op += 1
        return self.mux.apply(self.op, timestamp, client, session, request, user_id, operation,
                              body)
