"""Client-session handling in the replication core: deduplication of requests in flight.

Owns the primary's map of requests queued or in the pipeline (so a client's retry of a request
in flight is dropped, not prepared twice) and a bounded cache of each client's last committed
request number (so a retry of a committed request is answered from the state machine's client
table without a log slot). It never holds replies: the client table in the state machine is the
replicated truth, and `core.vsr.apply` consults it again at apply time, so a retry this cache
does not know about (after a restart or a view change) is still executed exactly once.
"""

from __future__ import annotations

from collections import OrderedDict

from core.check import check


class ClientSessions:
    __slots__ = ("clients_max", "in_flight", "committed")

    def __init__(self, clients_max: int) -> None:
        check(clients_max >= 1, "clients_max must be positive")
        self.clients_max = clients_max
        self.in_flight: dict[bytes, tuple[int, object]] = {}
        self.committed: OrderedDict[bytes, int] = OrderedDict()

    def admit(self, client: bytes, request: int) -> str:
        """'new', 'in_flight' (drop: it will be answered), 'cached' or 'stale' (drop)."""
        flying = self.in_flight.get(client)
        if flying is not None and flying[0] == request:
            return "in_flight"
        last = self.committed.get(client)
        if last is not None and request <= last:
            return "cached" if request == last else "stale"
        if len(self.in_flight) >= self.clients_max and client not in self.in_flight:
            return "stale"
        return "new"

    def start(self, client: bytes, request: int, header: object) -> None:
        self.in_flight[client] = (request, header)

    def commit(self, client: bytes, request: int):
        """Record a committed request; return the request header if we owe its reply."""
        last = self.committed.pop(client, None)
        self.committed[client] = request if last is None else max(last, request)
        while len(self.committed) > self.clients_max:
            self.committed.popitem(last=False)  # least recently committed: deterministic
        flying = self.in_flight.get(client)
        if flying is not None and flying[0] == request:
            del self.in_flight[client]
            return flying[1]
        return None

    def abandon_in_flight(self) -> None:
        """A view change: requests in flight are answered by the next primary (or retried)."""
        self.in_flight.clear()
