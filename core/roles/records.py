"""The records the roles of one replica exchange through their shared-memory rings.

Each record is a small fixed prefix (kind, then kind-specific ids) followed, for most kinds, by
a whole frame in the wire format (net/wire.py), so no role re-encodes what another already
encoded. Prefixes are precompiled structs; a record is built with one concatenation and read
with one unpack plus a memoryview slice.

Rings and their records (producer -> consumer):
  inbound   net -> replication    CLIENT_REQUEST, PEER_FRAME
  outbound  replication -> net    SEND_PEER, BROADCAST, CLIENT_FRAME, VIEW
  journal   replication -> journal (storage's own records)
  durable   journal -> replication (storage's own records)
  apply     replication -> owner  COMMIT (prepare + reply routing), READ, ROLE
  owner_net net -> owner          STALE_READ, CREDENTIALS_QUERY
  replies   owner -> net          CLIENT_FRAME, CREDENTIALS
  applied   owner -> replication  APPLIED, CHECKPOINT_SECTIONS_READY
"""

from __future__ import annotations

import enum
import struct

from core.check import check

CONN_NONE = 0xFFFFFFFF  # no client connection (a prepare entry from another replica's client)
USER_NONE = 0xFFFFFFFF  # connection not (yet) bound to a user


class Kind(enum.IntEnum):
    CLIENT_REQUEST = 1  # [conn u32][user u32] + request frame
    PEER_FRAME = 2  # [from replica u8] + peer frame (checksums verified by net)
    SEND_PEER = 3  # [to replica u8] + frame
    BROADCAST = 4  # frame to every connected peer
    CLIENT_FRAME = 5  # [conn u32] + reply or eviction frame
    COMMIT = 6  # [routes u16] routes x [entry u16][conn u32] + prepare frame
    READ = 7  # [conn u32][user u32][commit_min u64] + request frame
    STALE_READ = 8  # [conn u32][user u32] + request frame
    CREDENTIALS_QUERY = 9  # [conn u32][by u8] + key (see Lookup)
    CREDENTIALS = 10  # [conn u32][found u8][user u32][active u8] + hash blob
    APPLIED = 11  # [op u64]
    VIEW = 12  # [view u32][primary u8][status u8]


class Lookup(enum.IntEnum):
    """What a credentials query names: the key's meaning."""
    USERNAME = 1  # UTF-8 username (login by password)
    IDENTIFIER = 2  # an Iggy Identifier, id or name (change password)
    TOKEN_LOCATOR = 3  # the public part of a personal access token (login by token)


_KIND = struct.Struct("<B")
_QUERY = struct.Struct("<BIB")
_CONN_USER = struct.Struct("<BII")
_FROM = struct.Struct("<BB")
_CONN = struct.Struct("<BI")
_ROUTES = struct.Struct("<BH")
_ROUTE = struct.Struct("<HI")
_READ = struct.Struct("<BIIQ")
_CREDENTIALS = struct.Struct("<BIBIB")
_OP = struct.Struct("<BQ")
_VIEW = struct.Struct("<BIBB")


def kind_of(record: memoryview | bytes) -> int:
    return record[0]


def client_request(conn: int, user: int, frame: bytes | memoryview) -> bytes:
    return _CONN_USER.pack(Kind.CLIENT_REQUEST, conn, user) + frame


def read_client_request(record: memoryview) -> tuple[int, int, memoryview]:
    _, conn, user = _CONN_USER.unpack_from(record)
    return conn, user, record[_CONN_USER.size:]


def peer_frame(replica: int, frame: bytes | memoryview) -> bytes:
    return _FROM.pack(Kind.PEER_FRAME, replica) + frame


def send_peer(replica: int, frame: bytes | memoryview) -> bytes:
    return _FROM.pack(Kind.SEND_PEER, replica) + frame


def read_replica_frame(record: memoryview) -> tuple[int, memoryview]:
    """PEER_FRAME or SEND_PEER: (replica, frame)."""
    return record[1], record[_FROM.size:]


def broadcast(frame: bytes | memoryview) -> bytes:
    return _KIND.pack(Kind.BROADCAST) + frame


def client_frame(conn: int, frame: bytes | memoryview) -> bytes:
    return _CONN.pack(Kind.CLIENT_FRAME, conn) + frame


def read_client_frame(record: memoryview) -> tuple[int, memoryview]:
    _, conn = _CONN.unpack_from(record)
    return conn, record[_CONN.size:]


def commit(prepare: bytes | memoryview, routes: list[tuple[int, int]]) -> bytes:
    """A committed prepare for the owner, with (entry index, conn) for each entry to answer."""
    check(len(routes) <= 0xFFFF, "too many reply routes in one prepare")
    parts = [_ROUTES.pack(Kind.COMMIT, len(routes))]
    parts.extend(_ROUTE.pack(entry, conn) for entry, conn in routes)
    parts.append(prepare)
    return b"".join(parts)


def read_commit(record: memoryview) -> tuple[dict[int, int], memoryview]:
    _, count = _ROUTES.unpack_from(record)
    offset = _ROUTES.size
    routes = {}
    for _ in range(count):
        entry, conn = _ROUTE.unpack_from(record, offset)
        routes[entry] = conn
        offset += _ROUTE.size
    return routes, record[offset:]


def read_request(conn: int, user: int, commit_min: int, frame: bytes | memoryview) -> bytes:
    return _READ.pack(Kind.READ, conn, user, commit_min) + frame


def read_read_request(record: memoryview) -> tuple[int, int, int, memoryview]:
    _, conn, user, commit_min = _READ.unpack_from(record)
    return conn, user, commit_min, record[_READ.size:]


def stale_read(conn: int, user: int, frame: bytes | memoryview) -> bytes:
    return _CONN_USER.pack(Kind.STALE_READ, conn, user) + frame


def credentials_query(conn: int, by: Lookup, key: bytes) -> bytes:
    return _QUERY.pack(Kind.CREDENTIALS_QUERY, conn, by) + key


def read_credentials_query(record: memoryview) -> tuple[int, Lookup, bytes]:
    _, conn, by = _QUERY.unpack_from(record)
    return conn, Lookup(by), bytes(record[_QUERY.size:])


def credentials(conn: int, found: bool, user: int, active: bool, blob: bytes) -> bytes:
    return _CREDENTIALS.pack(Kind.CREDENTIALS, conn, found, user, active) + blob


def read_credentials(record: memoryview) -> tuple[int, bool, int, bool, memoryview]:
    _, conn, found, user, active = _CREDENTIALS.unpack_from(record)
    return conn, bool(found), user, bool(active), record[_CREDENTIALS.size:]


def applied(op: int) -> bytes:
    return _OP.pack(Kind.APPLIED, op)


def read_op(record: memoryview) -> int:
    return _OP.unpack_from(record)[1]


def view(view_number: int, primary: int, normal: bool) -> bytes:
    return _VIEW.pack(Kind.VIEW, view_number, primary, int(normal))


def read_view(record: memoryview) -> tuple[int, int, bool]:
    _, view_number, primary, normal = _VIEW.unpack_from(record)
    return view_number, primary, bool(normal)
