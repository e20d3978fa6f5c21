"""A small deterministic key-value state machine behind the real state machine interface.

Owns the simulator's stand-in for domains.MuxStateMachine until that lands: keys are one byte,
values are bytes; a client table (client -> session, last request, cached reply) bounded with a
deterministic eviction order. It never does I/O and never reads clocks (it uses the prepare's
timestamp only). Interface: see core/vsr/apply.py.
"""

from __future__ import annotations

import hashlib
import struct

from core.check import check
from core.vsr.messages import OPERATION_LOGOUT, OPERATION_REGISTER

OPERATION_PUT = 128  # body: key u8 + value
QUERY_GET = 1  # NonReplicated code: body key u8 -> value

STATUS_OK = 0
STATUS_SESSION_INVALID = 11
STATUS_BAD_REQUEST = 3
CLIENTS_MAX = 64


class KvStateMachine:
    def __init__(self) -> None:
        self.data: dict[int, bytes] = {}
        # client -> [session, last request, (status, result), last op]
        self.clients: dict[bytes, list] = {}
        self.op = 0

    def apply(self, op, timestamp_us, client, session, request, user_id, operation, body):
        check(op >= self.op, "ops apply in order")
        self.op = op
        if operation == OPERATION_REGISTER:
            reply = (STATUS_OK, struct.pack("<IQ", 0, op))
            self._record(client, op, request, reply, op)
            return reply
        entry = self.clients.get(client)
        if entry is None or entry[0] != session:
            return STATUS_SESSION_INVALID, b""
        if operation == OPERATION_LOGOUT:
            del self.clients[client]
            return STATUS_OK, b""
        if operation != OPERATION_PUT or len(body) < 1:
            reply = (STATUS_BAD_REQUEST, b"")
        else:
            key = body[0]
            previous = self.data.get(key, b"")
            self.data[key] = bytes(body[1:])
            reply = (STATUS_OK, previous)
        self._record(client, session, request, reply, op)
        return reply

    def _record(self, client, session, request, reply, op) -> None:
        self.clients[client] = [session, request, reply, op]
        if len(self.clients) > CLIENTS_MAX:
            # Evict the client idle longest (lowest last op; op numbers are unique per entry).
            oldest = min(self.clients, key=lambda c: self.clients[c][3])
            del self.clients[oldest]

    def query(self, code, body, user_id):
        if code != QUERY_GET or len(body) < 1:
            return STATUS_BAD_REQUEST, b""
        return STATUS_OK, self.data.get(body[0], b"")

    def client_reply(self, client, request):
        entry = self.clients.get(client)
        if entry is not None and request <= entry[1]:
            return entry[2]
        return None

    def snapshot(self) -> dict:
        data = b"".join(struct.pack("<BI", k, len(v)) + v for k, v in sorted(self.data.items()))
        clients = b"".join(
            c + struct.pack("<QQIQI", s, r, st, o, len(res)) + res
            for c, (s, r, (st, res), o) in sorted(self.clients.items()))
        return {"kv": (1, data), "clients": (1, clients), "op": (1, struct.pack("<Q", self.op))}

    def restore(self, sections: dict) -> None:
        self.data.clear()
        self.clients.clear()
        data = sections["kv"][1]
        i = 0
        while i < len(data):
            k, n = struct.unpack_from("<BI", data, i)
            i += 5
            self.data[k] = data[i:i + n]
            i += n
        clients = sections["clients"][1]
        i = 0
        while i < len(clients):
            c = clients[i:i + 16]
            s, r, st, o, n = struct.unpack_from("<QQIQI", clients, i + 16)
            i += 16 + 32
            self.clients[c] = [s, r, (st, clients[i:i + n]), o]
            i += n
        (self.op,) = struct.unpack("<Q", sections["op"][1])

    def digest(self) -> bytes:
        digest = hashlib.blake2b(digest_size=16)
        for _, (version, blob) in sorted(self.snapshot().items()):
            digest.update(struct.pack("<IQ", version, len(blob)))
            digest.update(blob)
        return digest.digest()
