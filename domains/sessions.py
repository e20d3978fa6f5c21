"""The sessions domain: the client table (who is logged in, and each client's last reply).

Owns: one entry per client (its session number = the op of its Register, its user, its last
request number and the reply to it), bounded by CLIENTS_MAX with deterministic eviction of
the oldest session (lowest op), and its checkpoint section. The table is what makes retries
exactly-once: a request number at or below the last one is answered from here, never applied
twice. Must never decide authentication (admission does) or touch other domains' state; the
mux runs the cascades (a session's group memberships) around it.
"""

from __future__ import annotations

import struct

from core.check import check

CLIENTS_MAX = 10_000
CLIENT_SIZE = 16
SESSIONS_SECTION_VERSION = 1


class Session:
    __slots__ = ("client", "session", "number", "user_id", "request", "status", "reply")

    def __init__(self, client: bytes, session: int, number: int, user_id: int) -> None:
        self.client = client
        self.session = session  # the op of its Register (shared by a batch's Registers)
        self.number = number  # registration counter: unique, orders the table
        self.user_id = user_id
        self.request = 0  # the Register itself is request 0
        self.status = 0
        self.reply = b""


class SessionsDomain:
    """The client table; dict order is registration order (`number`), so the first entry is
    always the oldest session."""

    def __init__(self, clients_max: int = CLIENTS_MAX) -> None:
        check(clients_max >= 1, "clients_max must be positive")
        self.clients_max = clients_max
        self.clients: dict[bytes, Session] = {}
        self.op = 0  # the last op applied (never decreases; a batch shares one op)
        self.registered = 0  # Registers applied so far: the next session's number
        self.dirty = True

    def get(self, client: bytes) -> Session | None:
        return self.clients.get(client)

    def oldest_if_full(self, client: bytes) -> bytes | None:
        """The client to evict before `client` registers, or None when there is room."""
        if client in self.clients or len(self.clients) < self.clients_max:
            return None
        return next(iter(self.clients))

    def register(self, client: bytes, session: int, user_id: int) -> Session:
        check(len(client) == CLIENT_SIZE, "client ids are 16 bytes")
        check(client not in self.clients, "a client registers once")
        check(len(self.clients) < self.clients_max, "client table over its bound")
        self.registered += 1
        entry = Session(client, session, self.registered, user_id)
        self.clients[client] = entry
        self.dirty = True
        return entry

    def end(self, client: bytes) -> None:
        del self.clients[client]
        self.dirty = True

    def record(self, entry: Session, request: int, status: int, reply: bytes) -> None:
        entry.request = request
        entry.status = status
        entry.reply = reply
        self.dirty = True

    def clients_of(self, user_id: int) -> list[bytes]:
        return [c for c, s in self.clients.items() if s.user_id == user_id]


# ---- checkpoint section -------------------------------------------------------------------
# [last op u64][registered u64][count u32] then per session by number:
#   [client 16][session u64][number u64][user_id u32][request u64][status u32][reply_len u32]
#   [reply]
_HEAD = struct.Struct("<QQI")
_ENTRY = struct.Struct("<16sQQIQII")


def encode(domain: SessionsDomain) -> bytes:
    out = [_HEAD.pack(domain.op, domain.registered, len(domain.clients))]
    for entry in sorted(domain.clients.values(), key=lambda s: s.number):
        out.append(_ENTRY.pack(entry.client, entry.session, entry.number, entry.user_id,
                               entry.request, entry.status, len(entry.reply)))
        out.append(entry.reply)
    return b"".join(out)


def decode(data: bytes, clients_max: int = CLIENTS_MAX) -> SessionsDomain:
    domain = SessionsDomain(clients_max)
    domain.op, domain.registered, count = _HEAD.unpack_from(data, 0)
    pos = _HEAD.size
    for _ in range(count):
        client, session, number, user_id, request, status, size = _ENTRY.unpack_from(data, pos)
        pos += _ENTRY.size
        entry = Session(client, session, number, user_id)
        entry.request, entry.status = request, status
        entry.reply = data[pos:pos + size]
        pos += size
        domain.clients[client] = entry
    check(pos == len(data), "sessions section has trailing bytes")
    check(len(domain.clients) <= clients_max, "restored client table over its bound")
    domain.dirty = False
    return domain
