"""Password and token secrets: salted slow hashes, verification, token minting.

Runs only outside the owner and replication processes (the net role calls it from a thread
pool: hashlib.scrypt releases the GIL, so a login never stalls the event loop). A secret lives
in memory only for the call; what is stored and logged is the hash.

Stored password hash: b"scrypt1" | n_log2 u8 | r u8 | p u8 | salt (16) | digest (32).
Tokens are minted as "<locator>.<secret>": the 12-byte random locator (base64url, 16 chars)
finds the token record, the 63-byte secret (84 chars) is verified against its own salted
scrypt hash, so a token is never stored in a form that can be looked up and replayed.

The cluster key (a file named by security.cluster_key_file, mode 0600) is what replicas prove
to each other with peer_proof; it is read once at start and never logged.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import secrets
import struct

SCHEME = b"scrypt1"
SCRYPT_N_LOG2 = 14  # 16 MiB of memory, ~50 ms per hash on this class of machine
SCRYPT_R = 8
SCRYPT_P = 1
SALT_BYTES = 16
DIGEST_BYTES = 32
_PARAMS = struct.Struct("<BBB")
HASH_BYTES = len(SCHEME) + _PARAMS.size + SALT_BYTES + DIGEST_BYTES
TOKEN_LOCATOR_BYTES = 12
TOKEN_SECRET_BYTES = 63
_LOCATOR_CHARS = len(base64.urlsafe_b64encode(bytes(TOKEN_LOCATOR_BYTES)))


def _scrypt(secret: bytes, salt: bytes, n_log2: int, r: int, p: int) -> bytes:
    return hashlib.scrypt(secret, salt=salt, n=1 << n_log2, r=r, p=p,
                          maxmem=(1 << n_log2) * r * 256, dklen=DIGEST_BYTES)


def hash_secret(secret: str, n_log2: int = SCRYPT_N_LOG2, salt: bytes | None = None) -> bytes:
    """A salted scrypt hash of a password or token secret (a random salt unless one is given:
    formatting replicas one by one needs the same root hash on each, see root_salt)."""
    salt = os.urandom(SALT_BYTES) if salt is None else salt
    if len(salt) != SALT_BYTES:
        raise ValueError(f"a salt is {SALT_BYTES} bytes")
    digest = _scrypt(secret.encode(), salt, n_log2, SCRYPT_R, SCRYPT_P)
    return SCHEME + _PARAMS.pack(n_log2, SCRYPT_R, SCRYPT_P) + salt + digest


def root_salt(cluster_id: int) -> bytes:
    """The root password's salt: derived from the cluster id so that every replica formatted
    separately starts from byte-identical state, and differing between clusters."""
    return hashlib.sha256(b"metavsr-root-salt" + cluster_id.to_bytes(16, "little")).digest()[
        :SALT_BYTES]


def verify_secret(stored: bytes, secret: str) -> bool:
    """Constant-time check of a secret against a stored hash; False for a malformed hash."""
    if len(stored) != HASH_BYTES or not stored.startswith(SCHEME):
        return False
    offset = len(SCHEME)
    n_log2, r, p = _PARAMS.unpack_from(stored, offset)
    offset += _PARAMS.size
    if not (10 <= n_log2 <= 20 and 1 <= r <= 16 and 1 <= p <= 4):
        return False
    salt = stored[offset:offset + SALT_BYTES]
    expected = stored[offset + SALT_BYTES:]
    return hmac.compare_digest(_scrypt(secret.encode(), salt, n_log2, r, p), expected)


def mint_token() -> tuple[str, bytes, str]:
    """A new personal access token: (token, locator, secret). Store locator + hash(secret)."""
    locator = base64.urlsafe_b64encode(os.urandom(TOKEN_LOCATOR_BYTES)).decode()
    secret = base64.urlsafe_b64encode(os.urandom(TOKEN_SECRET_BYTES)).decode()
    return f"{locator}.{secret}", locator.encode(), secret


def split_token(token: str) -> tuple[bytes, str] | None:
    """(locator, secret) of a presented token, or None if it is not one of ours."""
    locator, dot, secret = token.partition(".")
    if not dot or len(locator) != _LOCATOR_CHARS or not secret:
        return None
    return locator.encode(), secret


# --- the cluster key: peers prove they hold it (core/roles/net.py) --------------------------

CLUSTER_KEY_BYTES = 32
PEER_NONCE_BYTES = 32


def new_cluster_key() -> str:
    """A fresh random cluster key in its file form (hex)."""
    return secrets.token_hex(CLUSTER_KEY_BYTES)


def write_cluster_key(path: str) -> None:
    """Create a key file readable by its owner only; never overwrites an existing one."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(new_cluster_key() + "\n")


def load_cluster_key(path: str) -> bytes:
    """The key in the file at path. Errors name the file, never its content: a key file must
    be mode 0600 (or stricter) and hold at least CLUSTER_KEY_BYTES bytes as hex."""
    try:
        mode = os.stat(path).st_mode
        with open(path, encoding="ascii") as source:
            text = source.read().strip()
    except (OSError, UnicodeDecodeError) as exc:
        raise ValueError(f"cluster key file {path!r} cannot be read: "
                         f"{getattr(exc, 'strerror', None) or type(exc).__name__}") from None
    if mode & 0o077:
        raise ValueError(f"cluster key file {path!r} is readable by other users "
                         f"(mode {mode & 0o777:o}); allowed: 600 or 400")
    try:
        key = bytes.fromhex(text)
    except ValueError:
        raise ValueError(f"cluster key file {path!r} is not hex") from None
    if len(key) < CLUSTER_KEY_BYTES:
        raise ValueError(f"cluster key file {path!r} holds {len(key)} bytes; at least "
                         f"{CLUSTER_KEY_BYTES} are needed")
    return key


def peer_proof(key: bytes, side: bytes, cluster: bytes, first_nonce: bytes, second_nonce: bytes,
               dialer: int, acceptor: int) -> bytes:
    """HMAC-SHA256 proof that a peer holds the cluster key, bound to this cluster, both
    nonces (so a recorded proof never replays), both replicas and the side that sends it
    (so a proof cannot be reflected back)."""
    message = b"metavsr-peer|" + side + b"|" + cluster + first_nonce + second_nonce + bytes(
        (dialer, acceptor))
    return hmac.new(key, message, hashlib.sha256).digest()
