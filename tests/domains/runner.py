"""Feeds generated steps to a MuxStateMachine the way the replica does (increasing ops and
timestamps, per-client request numbers, a fresh client id per login)."""

from __future__ import annotations

from domains import sessions_wire
from domains.mux import MuxStateMachine
from tests.domains.gen import encode


class Runner:
    def __init__(self, mux: MuxStateMachine) -> None:
        self.mux = mux
        self.op = 0
        self.serial = 0
        self.slots: dict[int, list] = {}  # slot -> [client, session, last request, user]

    def context(self, step):
        """(op, timestamp, client, user, request) the step will use, or None to skip it."""
        kind, slot = step[0], step[1]
        op = self.op + 1
        timestamp = op * 10
        if kind == "login":
            return op, timestamp, (self.serial + 1).to_bytes(16, "little"), step[2], 0
        if kind == "login_token":
            owner = self.mux.token_by_locator(step[2])  # admission's lookup; unknown: refused
            if owner is None:
                return None
            return op, timestamp, (self.serial + 1).to_bytes(16, "little"), owner[0], 0
        entry = self.slots.get(slot)
        if entry is None:
            return None
        if kind != "retry" and entry[0] not in self.mux.sessions.clients:
            return None  # a logged-out or evicted slot only retries (exercising code 40)
        client, _, request, user = entry
        if kind == "write":
            request += 1
        return op, timestamp, client, user, request

    def run(self, step):
        ctx = self.context(step)
        if ctx is None:
            return None
        op, timestamp, client, user, request = ctx
        kind, slot = step[0], step[1]
        if kind == "read":
            code, body = encode(step[2], step[3])
            return self.mux.query(code, body, user)
        self.op = op
        if kind in ("login", "login_token"):
            self.serial += 1
            token_hash = step[2] if kind == "login_token" else None
            result = self.mux.apply(
                op, timestamp, client, 0, 0, user, 1,
                self.mux.admit(1, sessions_wire.encode_register(user, token_hash)))
            if result[0] == 0:
                self.slots[slot] = [client, op, 0, user]
            return result
        entry = self.slots[slot]
        if kind == "retry":
            operation, body = 131, b""  # the body does not matter: it is never applied
        else:
            operation, body = encode(step[2], step[3])
            body = self.mux.admit(operation, body)
            entry[2] = request
        return self.mux.apply(op, timestamp, client, entry[1], request, user, operation, body)

    def steps(self, steps) -> None:
        for step in steps:
            self.run(step)
