"""The records the roles of one replica exchange through their shared-memory rings.

Each record is a small fixed prefix (kind, then kind-specific ids) followed, for most kinds, by
a whole frame in the wire format (net/wire.py), so no role re-encodes what another already
encoded. Prefixes are precompiled structs; a record is built with one concatenation and read
with one unpack plus a memoryview slice.

Rings and their records (producer -> consumer):
  inbound   net -> replication    CLIENT_REQUEST, PEER_FRAME
  outbound  replication -> net    SEND_PEER, BROADCAST, CLIENT_FRAME, VIEW
  journal   replication -> journal  APPEND, TRUNCATE, PERSIST_VIEW
  durable   journal -> replication  DURABLE, VIEW_PERSISTED
  apply     replication -> owner  APPLY (committed prepare), QUERY (read-index satisfied),
                                  TABLE_REPLY (retry of a committed request), CHECKPOINT
  owner_net net -> owner          QUERY (stale read), CREDENTIALS_QUERY
  replies   owner -> net          CLIENT_FRAME, CREDENTIALS
  applied   owner -> replication  APPLIED (op and each entry's result)
  snapshot  owner -> snapshot     SECTIONS (the file where the owner's checkpoint child wrote
                                  a checkpoint's changed sections)
  snapshot_done snapshot -> replication  CHECKPOINT_WRITTEN (3 copies durable)
  journal   (also)                    CHECKPOINT_WRITTEN + header: name it in the superblock
  durable   (also)                    CHECKPOINT_DONE (superblock names it, prefix released)

State transfer (core/roles/transfer.py drives it from the replication role):
  transfer  replication -> snapshot  SERVE (a peer's REQUEST_SNAPSHOT), STORE (a received
                                     SNAPSHOT_CHUNK), INSTALL (the .part file is complete)
  snapshot_done (also)               SEND_PEER (a chunk for a peer), CHUNK_STORED, INSTALLED
  journal   (also)                   INSTALL_CHECKPOINT + header: name it, restart the log
  durable   (also)                   CHECKPOINT_INSTALLED
  apply     (also)                   RESTORE: the owner loads the installed checkpoint
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
    APPLY = 6  # committed prepare frame (header + batch)
    QUERY = 7  # [conn u32] + request frame: answer now (applied already covers its op)
    TABLE_REPLY = 8  # [conn u32] + request frame: answer from the client table
    CREDENTIALS_QUERY = 9  # [conn u32][by u8] + key (see Lookup)
    CREDENTIALS = 10  # [conn u32][found u8][user u32][active u8] + hash blob
    APPLIED = 11  # [op u64][count u16] + count x ([client 16][request u64][operation u8]
    #               [status u32][size u32] + result)
    VIEW = 12  # [view u32][primary u8][status u8]
    CHECKPOINT = 13  # [op u64]
    APPEND = 32  # [seq u64][op u64] + prepare frame
    TRUNCATE = 33  # [op u64]: drop every journal entry above op
    PERSIST_VIEW = 34  # [view u32][log_view u32][head op u64] + raw view headers
    DURABLE = 35  # [seq u64]: every append up to seq is durable
    VIEW_PERSISTED = 36  # [view u32][log_view u32]
    CHECKPOINT_DONE = 37  # [op u64]
    SECTIONS = 38  # [op u64][view u32][timestamp u64] + path of the sections file (UTF-8)
    CHECKPOINT_WRITTEN = 39  # [op u64][checksum u64] (+ the op's raw prepare header when the
    #                          replication role forwards it to the journal role)
    SERVE = 40  # [from replica u8] + REQUEST_SNAPSHOT frame
    STORE = 41  # SNAPSHOT_CHUNK frame, accepted by the transfer: write it into the .part file
    INSTALL = 42  # [op u64][checksum u64]: verify the .part file, write it as 3 copies
    CHUNK_STORED = 43  # [op u64][checksum u64][end u64][total u64]
    INSTALLED = 44  # [op u64][checksum u64] (checksum 0: the received file did not verify)
    INSTALL_CHECKPOINT = 45  # [op u64][checksum u64] + raw prepare header of op
    CHECKPOINT_INSTALLED = 46  # [op u64]
    RESTORE = 47  # [op u64][checksum u64]


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
_APPLIED = struct.Struct("<BQH")
_RESULT = struct.Struct("<16sQBII")
_CREDENTIALS = struct.Struct("<BIBIB")
_OP = struct.Struct("<BQ")
_VIEW = struct.Struct("<BIBB")
_SEQ_OP = struct.Struct("<BQQ")
_VIEWS = struct.Struct("<BII")
_PERSIST_VIEW = struct.Struct("<BIIQ")
_OP_CHECKSUM = struct.Struct("<BQQ")
_CHUNK_STORED = struct.Struct("<BQQQQ")


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


def apply(prepare: bytes | memoryview) -> bytes:
    return _KIND.pack(Kind.APPLY) + prepare


def query(conn: int, frame: bytes | memoryview) -> bytes:
    return _CONN.pack(Kind.QUERY, conn) + frame


def table_reply(conn: int, frame: bytes | memoryview) -> bytes:
    return _CONN.pack(Kind.TABLE_REPLY, conn) + frame


def read_conn_frame(record: memoryview) -> tuple[int, memoryview]:
    """CLIENT_FRAME, QUERY or TABLE_REPLY: (conn, frame)."""
    _, conn = _CONN.unpack_from(record)
    return conn, record[_CONN.size:]


def checkpoint(op: int) -> bytes:
    return _OP.pack(Kind.CHECKPOINT, op)


def applied(op: int, results: list[tuple[bytes, int, int, int, bytes]]) -> bytes:
    """Op applied, with (client, request, operation, status, result) of each batch entry."""
    check(len(results) <= 0xFFFF, "too many results in one applied record")
    parts = [_APPLIED.pack(Kind.APPLIED, op, len(results))]
    for client, request, operation, status, result in results:
        parts.append(_RESULT.pack(client, request, operation, status, len(result)))
        parts.append(result)
    return b"".join(parts)


def read_applied(record: memoryview) -> tuple[int, list[tuple[bytes, int, int, int, bytes]]]:
    _, op, count = _APPLIED.unpack_from(record)
    offset = _APPLIED.size
    results = []
    for _ in range(count):
        client, request, operation, status, size = _RESULT.unpack_from(record, offset)
        offset += _RESULT.size
        results.append((client, request, operation, status, bytes(record[offset:offset + size])))
        offset += size
    check(offset == len(record), "applied record has trailing bytes")
    return op, results


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


def append(seq: int, op: int, frame: bytes | memoryview) -> bytes:
    return _SEQ_OP.pack(Kind.APPEND, seq, op) + frame


def read_append(record: memoryview) -> tuple[int, int, memoryview]:
    _, seq, op = _SEQ_OP.unpack_from(record)
    return seq, op, record[_SEQ_OP.size:]


def truncate(op: int) -> bytes:
    return _OP.pack(Kind.TRUNCATE, op)


def persist_view(view_number: int, log_view: int, op: int, headers: list[bytes]) -> bytes:
    return _PERSIST_VIEW.pack(Kind.PERSIST_VIEW, view_number, log_view, op) + b"".join(headers)


def read_persist_view(record: memoryview) -> tuple[int, int, int, memoryview]:
    """(view, log_view, head op, raw view headers)."""
    _, view_number, log_view, op = _PERSIST_VIEW.unpack_from(record)
    return view_number, log_view, op, record[_PERSIST_VIEW.size:]


def read_view_persisted(record: memoryview) -> tuple[int, int]:
    _, view_number, log_view = _VIEWS.unpack_from(record)
    return view_number, log_view


def durable(seq: int) -> bytes:
    return _OP.pack(Kind.DURABLE, seq)


def view_persisted(view_number: int, log_view: int) -> bytes:
    return _VIEWS.pack(Kind.VIEW_PERSISTED, view_number, log_view)


def checkpoint_done(op: int) -> bytes:
    return _OP.pack(Kind.CHECKPOINT_DONE, op)


def checkpoint_written(op: int, checksum: int, header: bytes = b"") -> bytes:
    return _OP_CHECKSUM.pack(Kind.CHECKPOINT_WRITTEN, op, checksum) + header


def read_checkpoint_written(record: memoryview) -> tuple[int, int, bytes]:
    _, op, checksum = _OP_CHECKSUM.unpack_from(record)
    return op, checksum, bytes(record[_OP_CHECKSUM.size:])


def op_checksum(kind: Kind, op: int, checksum: int, tail: bytes = b"") -> bytes:
    """INSTALL, INSTALLED, INSTALL_CHECKPOINT (tail: the prepare header) or RESTORE."""
    return _OP_CHECKSUM.pack(kind, op, checksum) + tail


def read_op_checksum(record: memoryview) -> tuple[int, int, bytes]:
    """(op, checksum, tail) of a record made by op_checksum (or CHECKPOINT_WRITTEN)."""
    _, op, checksum = _OP_CHECKSUM.unpack_from(record)
    return op, checksum, bytes(record[_OP_CHECKSUM.size:])


_SECTIONS = struct.Struct("<BQIQ")


def sections_file(op: int, view_number: int, timestamp: int, path: str) -> bytes:
    return _SECTIONS.pack(Kind.SECTIONS, op, view_number, timestamp) + path.encode()


def read_sections_file(record: memoryview) -> tuple[int, int, int, str]:
    """(op, view, timestamp, path) of a SECTIONS record."""
    _, op, view_number, timestamp = _SECTIONS.unpack_from(record)
    return op, view_number, timestamp, bytes(record[_SECTIONS.size:]).decode()


def serve(replica: int, frame: bytes | memoryview) -> bytes:
    return _FROM.pack(Kind.SERVE, replica) + frame


def store(frame: bytes | memoryview) -> bytes:
    return _KIND.pack(Kind.STORE) + frame


def chunk_stored(op: int, checksum: int, end: int, total: int) -> bytes:
    return _CHUNK_STORED.pack(Kind.CHUNK_STORED, op, checksum, end, total)


def read_chunk_stored(record: memoryview) -> tuple[int, int, int, int]:
    """(op, checksum, end, total): the .part file holds bytes [0, end) of total."""
    return _CHUNK_STORED.unpack_from(record)[1:]


def checkpoint_installed(op: int) -> bytes:
    return _OP.pack(Kind.CHECKPOINT_INSTALLED, op)


def read_op(record: memoryview) -> int:
    """CHECKPOINT, TRUNCATE, DURABLE (the seq), CHECKPOINT_DONE or CHECKPOINT_INSTALLED."""
    return _OP.unpack_from(record)[1]


def view(view_number: int, primary: int, normal: bool) -> bytes:
    return _VIEW.pack(Kind.VIEW, view_number, primary, int(normal))


def read_view(record: memoryview) -> tuple[int, int, bool]:
    _, view_number, primary, normal = _VIEW.unpack_from(record)
    return view_number, primary, bool(normal)
