"""The checkpoint section of the users domain: a compact struct encoding with its version.

Owns: USERS_SECTION_VERSION and the layout below; ordered by user id and token name, so equal
states give equal bytes. Must never hold state of its own.

Layout (little-endian):
  [users u32] then per user by id:
    [id u32][created_at u64][status u8][tokens u32][username u8+][password_hash u8+]
    [options u32+][permissions u32+ (0 = none, else the permissions layout)]
    tokens × [name u8+][expiry_at u64][token_hash u8+]
"""

from __future__ import annotations

import struct

from core.check import check
from domains import permissions as P
from domains.users import User, UsersDomain
from domains.users_wire import TOKEN_LOCATOR_SIZE

USERS_SECTION_VERSION = 1

_USER = struct.Struct("<IQBI")
_U32 = struct.Struct("<I")
_U64 = struct.Struct("<Q")


def _short(raw: bytes) -> bytes:
    return bytes((len(raw),)) + raw


def encode(domain: UsersDomain) -> bytes:
    out = [_U32.pack(len(domain.users))]
    append = out.append
    for uid in sorted(domain.users):
        user = domain.users[uid]
        append(_USER.pack(uid, user.created_at, user.status, len(user.tokens)))
        append(_short(user.username.encode("utf-8")))
        append(_short(user.password_hash))
        append(_U32.pack(len(user.options)) + user.options)
        append(_U32.pack(len(user.perms_raw)) + user.perms_raw)
        for name in sorted(user.tokens):
            token_hash, expiry_at = user.tokens[name]
            append(_short(name.encode("utf-8")) + _U64.pack(expiry_at) + _short(token_hash))
    return b"".join(out)


def decode(data: bytes) -> UsersDomain:
    domain = UsersDomain("", b"")
    pos = 0

    def short() -> bytes:
        nonlocal pos
        size = data[pos]
        raw = data[pos + 1:pos + 1 + size]
        pos += 1 + size
        return raw

    def blob() -> bytes:
        nonlocal pos
        size = _U32.unpack_from(data, pos)[0]
        raw = data[pos + 4:pos + 4 + size]
        pos += 4 + size
        return raw

    (count,) = _U32.unpack_from(data, pos)
    pos += 4
    for _ in range(count):
        uid, created_at, status, tokens = _USER.unpack_from(data, pos)
        pos += _USER.size
        username = short().decode("utf-8")
        user = User(uid, username, created_at, status, short(), blob())
        perms_raw = blob()
        domain._insert(user)
        domain._set_perms(user, P.decode(perms_raw) if perms_raw else None)
        for _ in range(tokens):
            name = short().decode("utf-8")
            (expiry_at,) = _U64.unpack_from(data, pos)
            pos += 8
            token_hash = short()
            user.tokens[name] = (token_hash, expiry_at)
            domain.token_owners[token_hash[:TOKEN_LOCATOR_SIZE]] = (uid, name)
    check(pos == len(data), "users section has trailing bytes")
    domain.dirty = False
    return domain
