"""The users domain: users, their permissions and their personal access tokens.

Owns: that state; the state checks and mutations of operations 141..147; reads 31, 32, 41;
the acting user's permissions for every other domain's checks (`acting`); the cascades that
drop permissions naming a deleted stream or topic; the credential lookups admission uses
(password hash by user, token owner by token hash). Holds hashes only: a password or token
never reaches this module. Must never hash, read a clock or look at other domains' state.
"""

from __future__ import annotations

from core.check import check
from domains import permissions as P
from domains import users_wire as wire
from domains.codec import U64_MAX, Identifier, decode_options, encode_options, merge_options
from domains.errors import (
    CANNOT_CHANGE_PERMISSIONS,
    CANNOT_DELETE_USER,
    INVALID_PAT_EXPIRY,
    PAT_ALREADY_EXISTS,
    PATS_LIMIT_REACHED,
    RESOURCE_NOT_FOUND,
    UNAUTHORIZED,
    USER_ALREADY_EXISTS,
    USERS_LIMIT_REACHED,
    DomainError,
)
from domains.ids import LowestFree

ROOT_ID = 0
USERS_MAX = 100_000
TOKENS_PER_USER_MAX = 100


class User:
    __slots__ = ("id", "username", "created_at", "status", "password_hash", "options", "perms",
                 "perms_raw", "tokens")

    def __init__(self, ident: int, username: str, created_at: int, status: int,
                 password_hash: bytes, options: bytes) -> None:
        self.id = ident
        self.username = username
        self.created_at = created_at
        self.status = status
        self.password_hash = password_hash
        self.options = options
        self.perms: P.Permissions | None = None
        self.perms_raw = b""  # canonical encoding of perms, b"" when None
        self.tokens: dict[str, tuple[bytes, int]] = {}  # name -> (token hash, expiry_at µs)


class UsersDomain:
    """State and operations of users/permissions/tokens; see the module docstring."""

    def __init__(self, root_username: str, root_password_hash: bytes,
                 root_created_at_us: int = 0) -> None:
        self.users: dict[int, User] = {}
        self.names: dict[str, int] = {}
        # token locator (the hash's first TOKEN_LOCATOR_SIZE bytes) -> (user, token name)
        self.token_owners: dict[bytes, tuple[int, str]] = {}
        self.stream_grants: dict[int, set[int]] = {}  # stream id -> users naming it
        self.ids = LowestFree()
        self.dirty = True
        if root_username:
            self._insert(User(ROOT_ID, root_username, root_created_at_us, wire.STATUS_ACTIVE,
                              root_password_hash, b""))

    def _insert(self, user: User) -> None:
        self.users[user.id] = user
        self.names[user.username] = user.id

    # ---- lookups ---------------------------------------------------------------------
    def find(self, ident: Identifier) -> User | None:
        if isinstance(ident, int):
            return self.users.get(ident)
        uid = self.names.get(ident)
        return None if uid is None else self.users[uid]

    def user(self, ident: Identifier) -> User:
        user = self.find(ident)
        if user is None:
            raise DomainError(RESOURCE_NOT_FOUND)
        return user

    def acting(self, user_id: int) -> P.Permissions | None:
        """The acting user's permissions (None = root, all allowed); a missing or inactive
        user may do nothing."""
        if user_id == ROOT_ID:
            return P.ROOT
        user = self.users.get(user_id)
        if user is None or user.status != wire.STATUS_ACTIVE:
            raise DomainError(UNAUTHORIZED)
        return user.perms if user.perms is not None else (0, {})

    def _permit(self, perms, rule) -> None:
        if not P.allowed(perms, rule):
            raise DomainError(UNAUTHORIZED)

    # ---- permissions bookkeeping -------------------------------------------------------
    def _set_perms(self, user: User, perms: P.Permissions | None) -> None:
        if user.perms is not None:
            for sid in user.perms[1]:
                grants = self.stream_grants[sid]
                grants.discard(user.id)
                if not grants:
                    del self.stream_grants[sid]
        user.perms = perms
        user.perms_raw = b"" if perms is None else P.encode(perms)
        if perms is not None:
            for sid in perms[1]:
                self.stream_grants.setdefault(sid, set()).add(user.id)

    def prepare_forget_stream(self, sid: int) -> None:
        """Validation half of the stream/topic cascades: the grants index must name only
        live users that hold an entry for the stream (checked before any domain changes)."""
        for uid in self.stream_grants.get(sid, ()):
            user = self.users.get(uid)
            check(user is not None and user.perms is not None and sid in user.perms[1],
                  "permission grants index out of step")

    def forget_stream(self, sid: int) -> None:
        """Cascade of a stream delete: drop every permission entry naming the stream."""
        for uid in sorted(self.stream_grants.pop(sid, ())):
            user = self.users[uid]
            del user.perms[1][sid]
            user.perms_raw = P.encode(user.perms)
            self.dirty = True

    def forget_topic(self, sid: int, tid: int) -> None:
        """Cascade of a topic delete: drop every permission entry naming the topic."""
        for uid in sorted(self.stream_grants.get(sid, ())):
            user = self.users[uid]
            topics = user.perms[1][sid][1]
            if tid in topics:
                del topics[tid]
                user.perms_raw = P.encode(user.perms)
                self.dirty = True

    # ---- operations ------------------------------------------------------------------
    def create_user(self, perms, timestamp: int, body: bytes) -> bytes:
        username, password_hash, status, user_perms, options = wire.decode_create_user(body)
        self._permit(perms, P.MANAGE_USERS)
        if username in self.names:
            raise DomainError(USER_ALREADY_EXISTS)
        if len(self.users) >= USERS_MAX:
            raise DomainError(USERS_LIMIT_REACHED)
        uid = self.ids.lowest(self.users)
        user = User(uid, username, timestamp, status, password_hash, encode_options(options))
        self._insert(user)
        self._set_perms(user, user_perms)
        self.dirty = True
        return wire.user_details(user)

    def update_user(self, perms, body: bytes) -> bytes:
        ident, username, status, patch = wire.decode_update_user(body)
        user = self.user(ident)
        self._permit(perms, P.MANAGE_USERS)
        if username is not None:
            holder = self.names.get(username)
            if holder is not None and holder != user.id:
                raise DomainError(USER_ALREADY_EXISTS)
        options = user.options
        if patch:
            options = encode_options(merge_options(decode_options(user.options), patch))
        if username is not None:
            del self.names[user.username]
            user.username = username
            self.names[username] = user.id
        if status is not None:
            user.status = status
        user.options = options
        self.dirty = True
        return b""

    def prepare_delete_user(self, perms, body: bytes) -> User:
        user = self.user(wire.decode_user_id(body))
        self._permit(perms, P.MANAGE_USERS)
        if user.id == ROOT_ID:
            raise DomainError(CANNOT_DELETE_USER)
        return user

    def delete_user(self, user: User) -> None:
        self._set_perms(user, None)
        for token_hash, _ in user.tokens.values():
            del self.token_owners[token_hash[:wire.TOKEN_LOCATOR_SIZE]]
        del self.users[user.id]
        del self.names[user.username]
        self.ids.released(user.id)
        self.dirty = True

    def change_password(self, perms, acting_id: int, body: bytes) -> bytes:
        ident, password_hash = wire.decode_change_password(body)
        user = self.user(ident)
        if user.id != acting_id:
            self._permit(perms, P.MANAGE_USERS)
        user.password_hash = password_hash
        self.dirty = True
        return b""

    def update_permissions(self, perms, body: bytes) -> bytes:
        ident, user_perms = wire.decode_update_permissions(body)
        user = self.user(ident)
        self._permit(perms, P.MANAGE_USERS)
        if user.id == ROOT_ID:
            raise DomainError(CANNOT_CHANGE_PERMISSIONS)
        self._set_perms(user, user_perms)
        self.dirty = True
        return b""

    def create_token(self, acting_id: int, timestamp: int, body: bytes) -> bytes:
        """The result is empty: the token exists only at admission, which builds the reply
        payload with users_wire.encode_token_created."""
        name, expiry, token_hash = wire.decode_create_token(body)
        user = self.user(acting_id)
        expiry_at = 0 if expiry == 0 else timestamp + expiry
        if expiry_at > U64_MAX:
            raise DomainError(INVALID_PAT_EXPIRY)
        if name in user.tokens:
            raise DomainError(PAT_ALREADY_EXISTS)
        locator = token_hash[:wire.TOKEN_LOCATOR_SIZE]
        if locator in self.token_owners:
            raise DomainError(PAT_ALREADY_EXISTS)
        expired = sorted(n for n, (_, at) in user.tokens.items() if at and at <= timestamp)
        if len(user.tokens) - len(expired) >= TOKENS_PER_USER_MAX:
            raise DomainError(PATS_LIMIT_REACHED)
        # Expired tokens are dropped here, at a deterministic point, rather than by a timer.
        for old in expired:
            del self.token_owners[user.tokens.pop(old)[0][:wire.TOKEN_LOCATOR_SIZE]]
        user.tokens[name] = (token_hash, expiry_at)
        self.token_owners[locator] = (user.id, name)
        self.dirty = True
        return b""

    def delete_token(self, acting_id: int, body: bytes) -> bytes:
        name = wire.decode_delete_token(body)
        user = self.user(acting_id)
        entry = user.tokens.pop(name, None)
        if entry is None:
            raise DomainError(RESOURCE_NOT_FOUND)
        del self.token_owners[entry[0][:wire.TOKEN_LOCATOR_SIZE]]
        self.dirty = True
        return b""

    # ---- reads -----------------------------------------------------------------------
    def get_user(self, perms, acting_id: int, body: bytes) -> bytes:
        user = self.find(wire.decode_user_id(body))
        if user is None:
            return b""
        if user.id != acting_id:
            self._permit(perms, P.READ_USERS)
        return wire.user_details(user)

    def get_users(self, perms, body: bytes) -> bytes:
        wire.decode_empty(body)
        self._permit(perms, P.READ_USERS)
        users = self.users
        return b"".join(wire.user_header(users[u]) for u in sorted(users))

    def get_tokens(self, acting_id: int, body: bytes) -> bytes:
        wire.decode_empty(body)
        return wire.token_list(self.user(acting_id).tokens)
