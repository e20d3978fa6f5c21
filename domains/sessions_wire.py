"""Iggy binary encodings of the sessions domain: the post-admission Register body and the
Register result.

Owns: the Register log body, which admission builds after checking credentials (the SDK's
login body carries a secret and never reaches the log), and the result payload
`[user_id u32][session u64]` (iggy-protocol.md section 5.3; the net layer appends the
server's protocol and version fields, which are not domain state).

Register log body: [user_id u32][via u8][hash u8-len bytes, when via is 1 or 2]. via 1: a token
login names the token's stored hash, so apply re-checks, at the op's timestamp, that the token
still exists and has not expired. via 2: a password login names the stored password hash the
gateway verified against, so apply refuses it when the password changed in between (the
gateway may have read a backup's older state). via 0 names no credential (internal callers).
Must never verify credentials (admission does, outside domains/) or carry a secret.
"""

from __future__ import annotations

import struct

from domains.codec import U32, Reader, bytes8
from domains.errors import INVALID_CREDENTIALS, INVALID_FORMAT, INVALID_PAT, DomainError
from domains.users_wire import HASH_MAX, HASH_MIN

_RESULT = struct.Struct("<IQ")


VIA_NONE, VIA_TOKEN, VIA_PASSWORD = 0, 1, 2


def encode_register(user_id: int, token_hash: bytes | None = None,
                    password_hash: bytes | None = None) -> bytes:
    assert token_hash is None or password_hash is None, "one credential per login"
    if token_hash is not None:
        return U32.pack(user_id) + bytes((VIA_TOKEN,)) + bytes8(token_hash)
    if password_hash is not None:
        return U32.pack(user_id) + bytes((VIA_PASSWORD,)) + bytes8(password_hash)
    return U32.pack(user_id) + bytes((VIA_NONE,))


def decode_register(body: bytes) -> tuple[int, bytes | None, bytes | None]:
    """(user_id, token_hash, password_hash) of a Register body."""
    reader = Reader(body)
    user_id = reader.u32()
    via = reader.u8()
    token_hash = password_hash = None
    if via == VIA_TOKEN:
        token_hash = reader.bytes8(HASH_MIN, HASH_MAX, INVALID_PAT)
    elif via == VIA_PASSWORD:
        password_hash = reader.bytes8(HASH_MIN, HASH_MAX, INVALID_CREDENTIALS)
    elif via != VIA_NONE:
        raise DomainError(INVALID_FORMAT)
    reader.end()
    return user_id, token_hash, password_hash


def register_result(user_id: int, session: int) -> bytes:
    return _RESULT.pack(user_id, session)

