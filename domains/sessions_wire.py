"""Iggy binary encodings of the sessions domain: the post-admission Register body and the
Register result.

Owns: the Register log body, which admission builds after checking credentials (the SDK's
login body carries a secret and never reaches the log), and the result payload
`[user_id u32][session u64]` (iggy-protocol.md section 5.3; the net layer appends the
server's protocol and version fields, which are not domain state).

Register log body: [user_id u32][via_token u8][token_hash u8-len bytes, when via_token = 1].
A token login names the token's hash so apply re-checks, at the op's timestamp, that the token
still exists and has not expired. Must never verify credentials (admission does, outside
domains/) or carry a secret.
"""

from __future__ import annotations

import struct

from domains.codec import U32, Reader, bytes8
from domains.errors import INVALID_PAT
from domains.users_wire import HASH_MAX, HASH_MIN

_RESULT = struct.Struct("<IQ")


def encode_register(user_id: int, token_hash: bytes | None = None) -> bytes:
    if token_hash is None:
        return U32.pack(user_id) + b"\x00"
    return U32.pack(user_id) + b"\x01" + bytes8(token_hash)


def decode_register(body: bytes) -> tuple[int, bytes | None]:
    reader = Reader(body)
    user_id = reader.u32()
    token_hash = reader.bytes8(HASH_MIN, HASH_MAX, INVALID_PAT) if reader.flag() else None
    reader.end()
    return user_id, token_hash


def register_result(user_id: int, session: int) -> bytes:
    return _RESULT.pack(user_id, session)

