"""MuxStateMachine: the one state machine the owner applies every committed operation to.

Owns: dispatch of operations and reads to the domains (sessions, streams, users), the
exactly-once client table protocol, the cross-domain cascades (each validated against every
domain it touches before any domain changes), and the composite checkpoint (sections, digest).
Must never do I/O, read a clock, hash a secret, or import net/: everything it needs comes in
as arguments (see domains/__init__.py for the interface contract).
"""

from __future__ import annotations

from collections.abc import Callable

import xxhash

from core.check import check
from domains import operations as O
from domains import sessions as sessions_mod
from domains import sessions_wire
from domains import streams_section, users_section
from domains import users_wire as uw
from domains.admit import admit
from domains.codec import Identifier
from domains.errors import (
    INVALID_COMMAND,
    INVALID_CREDENTIALS,
    REQUEST_ALREADY_APPLIED,
    STALE_CLIENT,
    UNAUTHENTICATED,
    DomainError,
)
from domains.sessions import CLIENTS_MAX, SessionsDomain
from domains.streams import StreamsDomain
from domains.users import UsersDomain
from domains.users_wire import STATUS_ACTIVE

# A group member's id on the wire is a u32: the low bits of the client's registration number,
# unique unless 2**32 Registers happen while the older session is still alive.
MEMBER_ID_MASK = (1 << 32) - 1

SECTION_VERSIONS = {
    "sessions": sessions_mod.SESSIONS_SECTION_VERSION,
    "streams": streams_section.STREAMS_SECTION_VERSION,
    "users": users_section.USERS_SECTION_VERSION,
}


class MuxStateMachine:
    """The composite state; see domains/__init__.py for the contract of each method."""

    def __init__(self, root_password_hash: bytes = b"", root_username: str = "iggy",
                 clients_max: int = CLIENTS_MAX, root_created_at_us: int = 0) -> None:
        check(len(root_password_hash) <= uw.HASH_MAX, "root password hash too long")
        self.sessions = SessionsDomain(clients_max)
        self.streams = StreamsDomain()
        self.users = UsersDomain(root_username, root_password_hash, root_created_at_us)
        self._sections: dict[str, tuple[int, bytes]] = {}
        # For checkpoints cut by take_checkpoint_changes: sections whose bytes differ from
        # the last checkpoint's (snapshot() clears a domain's dirty flag, so it notes them
        # here), and the sections a checkpoint holds at all.
        self._changed: set[str] = set()
        self._checkpointed: set[str] = set()
        self._bind()

    def _bind(self) -> None:
        """Build the dispatch tables over the current domain objects (again after restore)."""
        s, u = self.streams, self.users
        # operation -> handler(perms, timestamp, client, session, user_id, body) -> result
        self._writes: dict[int, Callable[..., bytes]] = {
            O.CREATE_STREAM: lambda p, ts, c, se, u_, b: s.create_stream(p, ts, b),
            O.UPDATE_STREAM: lambda p, ts, c, se, u_, b: s.update_stream(p, b),
            O.DELETE_STREAM: lambda p, ts, c, se, u_, b: self._delete_stream(p, b),
            O.PURGE_STREAM: lambda p, ts, c, se, u_, b: s.purge_stream(p, b),
            O.CREATE_TOPIC: lambda p, ts, c, se, u_, b: s.create_topic(p, ts, b),
            O.UPDATE_TOPIC: lambda p, ts, c, se, u_, b: s.update_topic(p, b),
            O.DELETE_TOPIC: lambda p, ts, c, se, u_, b: self._delete_topic(p, b),
            O.PURGE_TOPIC: lambda p, ts, c, se, u_, b: s.purge_topic(p, b),
            O.CREATE_PARTITIONS: lambda p, ts, c, se, u_, b: s.create_partitions(p, ts, b),
            O.DELETE_PARTITIONS: lambda p, ts, c, se, u_, b: s.delete_partitions(p, b),
            O.CREATE_CONSUMER_GROUP: lambda p, ts, c, se, u_, b: s.create_group(p, b),
            O.DELETE_CONSUMER_GROUP: lambda p, ts, c, se, u_, b: s.delete_group(p, b),
            O.JOIN_CONSUMER_GROUP: lambda p, ts, c, se, u_, b: s.join_group(
                p, b, c, self.sessions.clients[c].number & MEMBER_ID_MASK),
            O.LEAVE_CONSUMER_GROUP: lambda p, ts, c, se, u_, b: s.leave_group(p, b, c),
            O.CREATE_USER: lambda p, ts, c, se, u_, b: u.create_user(p, ts, b),
            O.UPDATE_USER: lambda p, ts, c, se, u_, b: u.update_user(p, b),
            O.DELETE_USER: lambda p, ts, c, se, u_, b: self._delete_user(p, b),
            O.CHANGE_PASSWORD: lambda p, ts, c, se, u_, b: u.change_password(p, u_, b),
            O.UPDATE_PERMISSIONS: lambda p, ts, c, se, u_, b: u.update_permissions(p, b),
            O.CREATE_PAT: lambda p, ts, c, se, u_, b: u.create_token(u_, ts, b),
            O.DELETE_PAT: lambda p, ts, c, se, u_, b: u.delete_token(u_, b),
        }
        # read code -> handler(perms, user_id, body) -> result
        self._reads: dict[int, Callable[..., bytes]] = {
            O.GET_STREAM: lambda p, u_, b: s.get_stream(p, b),
            O.GET_STREAMS: lambda p, u_, b: s.get_streams(p, b),
            O.GET_TOPIC: lambda p, u_, b: s.get_topic(p, b),
            O.GET_TOPICS: lambda p, u_, b: s.get_topics(p, b),
            O.GET_CONSUMER_GROUP: lambda p, u_, b: s.get_group(p, b),
            O.GET_CONSUMER_GROUPS: lambda p, u_, b: s.get_groups(p, b),
            O.GET_USER: lambda p, u_, b: u.get_user(p, u_, b),
            O.GET_USERS: lambda p, u_, b: u.get_users(p, b),
            O.GET_PATS: lambda p, u_, b: u.get_tokens(u_, b),
        }

    # ---- admission helpers -----------------------------------------------------------
    admit = staticmethod(admit)

    def user_credentials(self, user: Identifier) -> tuple[int, int, bytes] | None:
        """(user_id, status, password_hash) of a user by id or username, for admission."""
        found = self.users.find(user)
        return None if found is None else (found.id, found.status, found.password_hash)

    def token_by_locator(self, locator: bytes) -> tuple[int, int, bytes, int] | None:
        """(user_id, user status, token hash, expiry_at µs; 0 = never) of the token whose hash
        starts with `locator`, for admission to verify a token login."""
        owner = self.users.token_owners.get(locator[:uw.TOKEN_LOCATOR_SIZE])
        if owner is None:
            return None
        user = self.users.users[owner[0]]
        token_hash, expiry_at = user.tokens[owner[1]]
        return user.id, user.status, token_hash, expiry_at

    def lookup_session(self, client: bytes, session: int) -> int | None:
        entry = self.sessions.get(client)
        if entry is None or entry.session != session:
            return None
        return entry.user_id

    def client_info(self, client: bytes) -> tuple[int, int, list[tuple[int, int, int]]] | None:
        """(user_id, session, sorted (stream, topic, group) memberships) of a live client: what
        the net layer needs for Iggy's "me" (code 20) besides its own transport details."""
        entry = self.sessions.get(client)
        if entry is None:
            return None
        return entry.user_id, entry.session, sorted(self.streams.memberships.get(client, ()))

    def client_reply(self, client: bytes, request: int) -> tuple[int, bytes] | None:
        entry = self.sessions.get(client)
        if entry is None or request > entry.request:
            return None
        if request == entry.request:
            return entry.status, entry.reply
        return REQUEST_ALREADY_APPLIED, b""

    # ---- apply -----------------------------------------------------------------------
    def apply(self, op: int, timestamp_us: int, client: bytes, session: int, request: int,
              user_id: int, operation: int, body: bytes) -> tuple[int, bytes]:
        sessions = self.sessions
        # The requests of one prepare share its op, so ops never decrease (but may repeat).
        check(op >= sessions.op, "ops are applied in order")
        sessions.op = op
        sessions.dirty = True
        if operation == O.REGISTER:
            return self._register(op, timestamp_us, client, body)
        entry = sessions.clients.get(client)
        if entry is None:
            return UNAUTHENTICATED, b""
        if entry.session != session:
            return STALE_CLIENT, b""
        # The acting user is the session's, from replicated state: a user id in a request
        # header (the SDK sends 0, which is root) can never choose who acts.
        user_id = entry.user_id
        if request <= entry.request:
            # A duplicate that reached the log: answered, never applied twice.
            if request == entry.request:
                return entry.status, entry.reply
            return REQUEST_ALREADY_APPLIED, b""
        if operation == O.LOGOUT:
            self.streams.leave_all(client)
            sessions.end(client)
            return 0, b""
        handler = self._writes.get(operation)
        try:
            if handler is None:
                raise DomainError(INVALID_COMMAND)
            perms = self.users.acting(user_id)
            status, reply = 0, handler(perms, timestamp_us, client, session, user_id, body)
        except DomainError as error:
            status, reply = error.code, b""
        if client in sessions.clients:  # absent when the op ended its own session
            sessions.record(entry, request, status, reply)
        return status, reply

    def _register(self, op: int, timestamp: int, client: bytes, body: bytes) -> tuple[int, bytes]:
        existing = self.sessions.get(client)
        if existing is not None:
            # Clients never re-register under the same id, so this is a retried Register.
            if existing.request == 0:
                return existing.status, existing.reply
            return REQUEST_ALREADY_APPLIED, b""
        try:
            user_id, token_hash, password_hash = sessions_wire.decode_register(body)
        except DomainError as error:
            return error.code, b""
        user = self.users.users.get(user_id)
        if user is None or user.status != STATUS_ACTIVE:
            return INVALID_CREDENTIALS, b""
        if password_hash is not None and password_hash != user.password_hash:
            # Verified against an older password (a backup's state lagged a change).
            return INVALID_CREDENTIALS, b""
        if token_hash is not None:
            owner = self.users.token_owners.get(token_hash[:uw.TOKEN_LOCATOR_SIZE])
            if owner is None or owner[0] != user_id:
                return INVALID_CREDENTIALS, b""
            stored, expiry_at = user.tokens[owner[1]]
            if stored != token_hash or (expiry_at and expiry_at <= timestamp):
                return INVALID_CREDENTIALS, b""
        evict = self.sessions.oldest_if_full(client)
        if evict is not None:
            self.streams.leave_all(evict)
            self.sessions.end(evict)
        entry = self.sessions.register(client, op, user_id)
        reply = sessions_wire.register_result(user_id, op)
        self.sessions.record(entry, 0, 0, reply)
        return 0, reply

    # ---- cascades: validate against every domain, then change ------------------------
    def _delete_stream(self, perms, body: bytes) -> bytes:
        stream = self.streams.prepare_delete_stream(perms, body)
        self.users.prepare_forget_stream(stream.id)
        self.streams.delete_stream(stream)
        self.users.forget_stream(stream.id)
        return b""

    def _delete_topic(self, perms, body: bytes) -> bytes:
        stream, topic = self.streams.prepare_delete_topic(perms, body)
        self.users.prepare_forget_stream(stream.id)
        self.streams.delete_topic(stream, topic)
        self.users.forget_topic(stream.id, topic.id)
        return b""

    def _delete_user(self, perms, body: bytes) -> bytes:
        user = self.users.prepare_delete_user(perms, body)
        clients = self.sessions.clients_of(user.id)
        for client in clients:
            self.streams.leave_all(client)
            self.sessions.end(client)
        self.users.delete_user(user)
        return b""

    # ---- reads -----------------------------------------------------------------------
    def query(self, code: int, body: bytes, user_id: int) -> tuple[int, bytes]:
        handler = self._reads.get(code)
        if handler is None:
            return INVALID_COMMAND, b""
        try:
            return 0, handler(self.users.acting(user_id), user_id, body)
        except DomainError as error:
            return error.code, b""

    def counts(self) -> dict[str, int]:
        """Catalogue sizes (for stats): streams, topics, partitions, groups, users, clients."""
        streams = self.streams
        return {
            "streams": len(streams.streams),
            "topics": sum(len(s.topics) for s in streams.streams.values()),
            "partitions": streams.partitions_total,
            "consumer_groups": streams.groups_total,
            "users": len(self.users.users),
            "clients": len(self.sessions.clients),
        }

    # ---- checkpoint ------------------------------------------------------------------
    def _encoders(self) -> tuple:
        return (("sessions", self.sessions, sessions_mod.encode),
                ("streams", self.streams, streams_section.encode),
                ("users", self.users, users_section.encode))

    def snapshot(self) -> dict[str, tuple[int, bytes]]:
        for name, domain, encode in self._encoders():
            if domain.dirty or name not in self._sections:
                self._sections[name] = (SECTION_VERSIONS[name], encode(domain))
                if domain.dirty:
                    self._changed.add(name)
                domain.dirty = False
        return dict(self._sections)

    def take_checkpoint_changes(self) -> tuple[str, ...]:
        """The sections that changed since the last checkpoint (all of them the first time),
        counted as checkpointed from now on: the caller encodes exactly these from this very
        state (encode_sections, in a forked child) and reuses the previous checkpoint's bytes
        for the others. Nothing is encoded here, so the call costs no time in the apply loop."""
        changed = []
        for name, domain, _ in self._encoders():
            if domain.dirty or name in self._changed or name not in self._checkpointed:
                changed.append(name)
                if domain.dirty:
                    domain.dirty = False
                    self._sections.pop(name, None)  # not encoded: snapshot() encodes it anew
        self._changed.clear()
        self._checkpointed.update(changed)
        return tuple(changed)

    def encode_sections(self, names) -> dict[str, tuple[int, bytes]]:
        """(version, bytes) of the named sections, encoded now; changes nothing."""
        return {name: (SECTION_VERSIONS[name], encode(domain))
                for name, domain, encode in self._encoders() if name in names}

    def restore(self, sections: dict[str, tuple[int, bytes]]) -> None:
        check(set(sections) == set(SECTION_VERSIONS), "checkpoint sections do not match")
        for name, (version, _) in sections.items():
            check(version == SECTION_VERSIONS[name], f"unknown {name} section version {version}")
        sessions = sessions_mod.decode(sections["sessions"][1], self.sessions.clients_max)
        streams = streams_section.decode(sections["streams"][1])
        users = users_section.decode(sections["users"][1])
        for client in streams.memberships:
            check(client in sessions.clients, "a group member without a session")
        self.sessions, self.streams, self.users = sessions, streams, users
        self._sections = dict(sections)
        self._changed = set()
        self._checkpointed = set(sections)
        self._bind()

    def digests(self) -> dict[str, bytes]:
        """Per-domain digest: xxh3-128 of (name, version, section bytes)."""
        return {name: xxhash.xxh3_128_digest(name.encode() + version.to_bytes(4, "little") + data)
                for name, (version, data) in self.snapshot().items()}

    def digest(self) -> bytes:
        """The state's digest: xxh3-128 over the per-domain digests in name order."""
        digests = self.digests()
        return xxhash.xxh3_128_digest(b"".join(digests[name] for name in sorted(digests)))
