"""Iggy binary encodings of the users domain: request bodies, their post-admission rewrites,
and result bodies.

Owns: decoding/encoding of operations 141..147 and reads 31, 32, 41 (the SDK's request bodies
too, which the client library sends); the rewritten bodies that carry a hash instead of a
secret (CreateUser, ChangePassword, CreatePersonalAccessToken) and the pure helpers admission
uses to produce them; UserHeader/UserDetails and the PAT layouts (iggy-protocol.md sections 8,
9) in both directions: encoders for the server, decoders into frozen dataclasses for the
client library (failures: codec.MalformedResult). Must never hash anything or see state.

Rewritten bodies (what the log carries; admission builds them, apply reads them):
  CreateUser      [username n8][password_hash u8-len bytes][status u8][has_perms u8]
                  [perms_len u32][perms] (if has_perms) [options TLV to end]
  ChangePassword  [user Identifier][password_hash u8-len bytes]
  CreatePAT       [name n8][expiry_us u64; 0 = never][token_hash u8-len bytes]
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from domains import permissions as P
from domains.codec import (
    NAME_MAX,
    U32,
    U64,
    Identifier,
    Options,
    Reader,
    bytes8,
    decode_options,
    encode_options,
    identifier,
    name8,
    options_block,
    read_one,
    read_until_end,
    result_decoder,
    string_options_only,
)
from domains.errors import (
    INVALID_FORMAT,
    INVALID_PASSWORD,
    INVALID_PAT,
    INVALID_PAT_NAME,
    INVALID_USER_STATUS,
    INVALID_USERNAME,
    DomainError,
)

USERNAME_MIN, USERNAME_MAX = 3, 50
PASSWORD_MIN, PASSWORD_MAX = 3, 100
PAT_NAME_MIN, PAT_NAME_MAX = 3, 30
# Hashes are opaque to the domains (admission chooses scrypt for passwords, SHA-256 for tokens);
# only their size is bounded, by the u8 length prefix.
HASH_MIN, HASH_MAX = 1, 255
# A token hash starts with its locator: the public part of the token admission looks it up by
# (core/auth.py mints 16-character locators). Unique among a replica's tokens (a clash is 51).
TOKEN_LOCATOR_SIZE = 16
STATUS_ACTIVE, STATUS_INACTIVE = 1, 2
STATUSES = (STATUS_ACTIVE, STATUS_INACTIVE)

Perms = P.Permissions | None


def _status(reader: Reader) -> int:
    status = reader.u8()
    if status not in STATUSES:
        raise DomainError(INVALID_USER_STATUS)
    return status


def _perms(reader: Reader) -> Perms:
    if not reader.flag():
        return None
    return P.decode(reader.take(reader.u32()))


def _perms_bytes(perms: Perms) -> bytes:
    if perms is None:
        return b"\x00"
    raw = P.encode(perms)
    return b"\x01" + U32.pack(len(raw)) + raw


def _user_options(reader: Reader) -> Options:
    options = decode_options(reader.rest())
    string_options_only(options)
    return options


# ---- CreateUser (141) --------------------------------------------------------------------

def decode_create_user_request(body: bytes) -> tuple[str, str, int, Perms, Options]:
    """The SDK's body: (username, password, status, permissions, options)."""
    reader = Reader(body)
    username = reader.name8(USERNAME_MIN, USERNAME_MAX, INVALID_USERNAME)
    password = reader.name8(PASSWORD_MIN, PASSWORD_MAX, INVALID_PASSWORD)
    return username, password, _status(reader), _perms(reader), _user_options(reader)


def rewrite_create_user(body: bytes, password_hash: bytes) -> bytes:
    """The SDK's CreateUser body with the password replaced by its hash (the log body)."""
    username, _, status, perms, options = decode_create_user_request(body)
    return encode_create_user(username, password_hash, status, perms, options)


def encode_create_user(username: str, password_hash: bytes, status: int, perms: Perms,
                       options: Options) -> bytes:
    return (name8(username) + bytes8(password_hash) + bytes((status,)) + _perms_bytes(perms)
            + encode_options(options))


def decode_create_user(body: bytes) -> tuple[str, bytes, int, Perms, Options]:
    reader = Reader(body)
    username = reader.name8(USERNAME_MIN, USERNAME_MAX, INVALID_USERNAME)
    password_hash = reader.bytes8(HASH_MIN, HASH_MAX, INVALID_PASSWORD)
    return username, password_hash, _status(reader), _perms(reader), _user_options(reader)


# ---- UpdateUser (142), DeleteUser (143), UpdatePermissions (145) ------------------------

def decode_update_user(body: bytes) -> tuple[Identifier, str | None, int | None, Options]:
    reader = Reader(body)
    user = reader.identifier()
    username = None
    if reader.flag():
        username = reader.name8(USERNAME_MIN, USERNAME_MAX, INVALID_USERNAME)
    status = _status(reader) if reader.flag() else None
    return user, username, status, _user_options(reader)


def encode_update_user(user: Identifier, username: str | None, status: int | None,
                       options: Options) -> bytes:
    return (identifier(user)
            + (b"\x00" if username is None else b"\x01" + name8(username))
            + (b"\x00" if status is None else bytes((1, status)))
            + encode_options(options))


def decode_user_id(body: bytes) -> Identifier:
    reader = Reader(body)
    user = reader.identifier()
    reader.end()
    return user


def decode_update_permissions(body: bytes) -> tuple[Identifier, Perms]:
    reader = Reader(body)
    user = reader.identifier()
    perms = _perms(reader)
    reader.end()
    return user, perms


def encode_update_permissions(user: Identifier, perms: Perms) -> bytes:
    return identifier(user) + _perms_bytes(perms)


# ---- ChangePassword (144) ----------------------------------------------------------------

def decode_change_password_request(body: bytes) -> tuple[Identifier, str, str]:
    """The SDK's body: (user, current password, new password)."""
    reader = Reader(body)
    user = reader.identifier()
    current = reader.name8(PASSWORD_MIN, PASSWORD_MAX, INVALID_PASSWORD)
    new = reader.name8(PASSWORD_MIN, PASSWORD_MAX, INVALID_PASSWORD)
    reader.end()
    return user, current, new


def rewrite_change_password(body: bytes, new_password_hash: bytes) -> bytes:
    """The SDK's ChangePassword body with both passwords replaced by the new hash. Admission
    verifies the current password against `MuxStateMachine.user_credentials` first."""
    user, _, _ = decode_change_password_request(body)
    return encode_change_password(user, new_password_hash)


def encode_change_password(user: Identifier, password_hash: bytes) -> bytes:
    return identifier(user) + bytes8(password_hash)


def decode_change_password(body: bytes) -> tuple[Identifier, bytes]:
    reader = Reader(body)
    user = reader.identifier()
    password_hash = reader.bytes8(HASH_MIN, HASH_MAX, INVALID_PASSWORD)
    reader.end()
    return user, password_hash


# ---- personal access tokens (146, 147) ---------------------------------------------------

def decode_create_token_request(body: bytes) -> tuple[str, int]:
    """The SDK's body: (name, expiry in µs, 0 = never)."""
    reader = Reader(body)
    name = reader.name8(PAT_NAME_MIN, PAT_NAME_MAX, INVALID_PAT_NAME)
    expiry = reader.u64()
    reader.end()
    return name, expiry


def rewrite_create_token(body: bytes, token_hash: bytes) -> bytes:
    """The SDK's CreatePAT body plus the hash of the token admission minted."""
    name, expiry = decode_create_token_request(body)
    return encode_create_token(name, expiry, token_hash)


def encode_create_token(name: str, expiry: int, token_hash: bytes) -> bytes:
    return name8(name) + U64.pack(expiry) + bytes8(token_hash)


def decode_create_token(body: bytes) -> tuple[str, int, bytes]:
    reader = Reader(body)
    name = reader.name8(PAT_NAME_MIN, PAT_NAME_MAX, INVALID_PAT_NAME)
    expiry = reader.u64()
    token_hash = reader.bytes8(HASH_MIN, HASH_MAX, INVALID_PAT)
    reader.end()
    return name, expiry, token_hash


def decode_delete_token(body: bytes) -> str:
    reader = Reader(body)
    name = reader.name8(PAT_NAME_MIN, PAT_NAME_MAX, INVALID_PAT_NAME)
    reader.end()
    return name


def encode_token_created(token: str) -> bytes:
    """The CreatePAT reply payload, built by admission (the only holder of the secret)."""
    return name8(token)


def decode_empty(body: bytes) -> None:
    if body:
        raise DomainError(INVALID_FORMAT)


# ---- results -----------------------------------------------------------------------------

_USER_FIXED = struct.Struct("<IQB")


def user_header(user) -> bytes:
    return (_USER_FIXED.pack(user.id, user.created_at, user.status) + name8(user.username)
            + U32.pack(len(user.options)) + user.options)


def user_details(user) -> bytes:
    # No permissions reads as four zero bytes; this is what the SDK accepted (section 8).
    if user.perms is None:
        return user_header(user) + b"\x00\x00\x00\x00"
    return user_header(user) + b"\x01" + U32.pack(len(user.perms_raw)) + user.perms_raw


def token_list(tokens: dict[str, tuple[bytes, int]]) -> bytes:
    return b"".join(name8(name) + U64.pack(tokens[name][1]) for name in sorted(tokens))


# ---- the SDK's request bodies (what a client sends before admission rewrites them) -------

def encode_create_user_request(username: str, password: str, status: int, perms: Perms,
                               options: Options) -> bytes:
    # The SDK's layout is the log layout with the password's name8 where the hash's u8-length
    # bytes go: the two are the same bytes.
    return encode_create_user(username, password.encode("utf-8"), status, perms, options)


def encode_change_password_request(user: Identifier, current: str, new: str) -> bytes:
    return identifier(user) + name8(current) + name8(new)


def encode_create_token_request(name: str, expiry: int) -> bytes:
    return name8(name) + U64.pack(expiry)


def encode_delete_token(name: str) -> bytes:
    return name8(name)


# ---- result decoding (the client library's side of the layouts above) --------------------


@dataclass(frozen=True)
class UserHeader:
    id: int
    created_at: int  # µs since the Unix epoch
    status: int  # STATUS_ACTIVE / STATUS_INACTIVE
    username: str
    options: Options


@dataclass(frozen=True)
class UserDetails(UserHeader):
    permissions: Perms  # None: no permissions (root acts as all-powerful regardless)


@dataclass(frozen=True)
class TokenInfo:
    name: str
    expiry_at: int  # µs since the Unix epoch; 0 = never


def _read_user_header(reader: Reader) -> UserHeader:
    ident, created_at, status = _USER_FIXED.unpack(reader.take(_USER_FIXED.size))
    if status not in STATUSES:
        raise DomainError(INVALID_FORMAT)
    username = reader.name8(1, NAME_MAX, INVALID_FORMAT)
    return UserHeader(ident, created_at, status, username, options_block(reader))


@result_decoder
def decode_user_header(payload: bytes) -> UserHeader:
    return read_one(payload, _read_user_header)


@result_decoder
def decode_user_details(payload: bytes) -> UserDetails:
    """GetUser / CreateUser: the header, then `00000000` or `01 [len u32][perms]`."""
    reader = Reader(payload)
    header = _read_user_header(reader)
    if reader.flag():
        perms = P.decode(reader.take(reader.u32()))
    else:
        if reader.take(3) != b"\x00\x00\x00":
            raise DomainError(INVALID_FORMAT)
        perms = None
    reader.end()
    return UserDetails(header.id, header.created_at, header.status, header.username,
                       header.options, perms)


@result_decoder
def decode_user_list(payload: bytes) -> list[UserHeader]:
    """GetUsers: headers back to back to the end (an empty body is no users)."""
    return read_until_end(payload, _read_user_header)


@result_decoder
def decode_token_list(payload: bytes) -> list[TokenInfo]:
    """GetPersonalAccessTokens: `[n8 name][expiry_at u64]` pairs to the end."""
    return read_until_end(payload, lambda reader: TokenInfo(
        reader.name8(1, NAME_MAX, INVALID_FORMAT), reader.u64()))


@result_decoder
def decode_token_created(payload: bytes) -> str:
    """CreatePersonalAccessToken: the minted token, `n8 token` (shown once, never stored)."""
    reader = Reader(payload)
    token = reader.name8(1, NAME_MAX, INVALID_FORMAT)
    reader.end()
    return token
