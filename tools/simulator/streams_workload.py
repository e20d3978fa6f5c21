"""The streams workload: simulated Iggy clients creating, deleting and reading streams by name
on the real domains.MuxStateMachine.

Owns the client operations (CreateStream 128, DeleteStream 130, GetStream read 200, in Iggy's
encodings from domains/streams_wire) and the sequential model of one stream name (present or
absent) that the linearizability checker uses. Clients log in as root (user 0) with a Register
body as admission would build it. Never reaches into the state machine.
"""

from __future__ import annotations

from core.vsr.messages import OPERATION_NON_REPLICATED
from domains.codec import identifier, name8
from domains.errors import STREAM_NAME_ALREADY_EXISTS
from domains.mux import MuxStateMachine
from domains.sessions_wire import encode_register
from tools.simulator.workload import Operation, SimClient

OPERATION_CREATE_STREAM = 128
OPERATION_DELETE_STREAM = 130
QUERY_GET_STREAM = 200
NAMES = 4


class StreamsClient(SimClient):
    def register_body(self) -> bytes:
        return encode_register(0)

    def _next(self, now: int) -> None:
        name = f"stream-{self.rng.randrange(NAMES)}"
        dice = self.rng.random()
        if dice < 0.35:
            self._start(now, "create", name, None, OPERATION_CREATE_STREAM,
                        name8(name) + b"")
        elif dice < 0.55:
            self._start(now, "delete", name, None, OPERATION_DELETE_STREAM, identifier(name))
        else:
            self._start(now, "get", name, None, OPERATION_NON_REPLICATED, identifier(name),
                        code=QUERY_GET_STREAM)

    def _complete(self, op: Operation, status: int, body: bytes) -> None:
        if op.kind == "get":
            if status != 0:
                raise AssertionError(f"get stream failed with status {status}")
            op.result = bool(body)
        elif op.kind == "create":
            if status not in (0, STREAM_NAME_ALREADY_EXISTS):
                raise AssertionError(f"create stream failed with status {status}")
            op.result = status == 0
        else:
            op.result = status == 0


class StreamNameModel:
    """One stream name: present or absent. A failed create means it was present; a failed
    delete means it was absent (the only errors the workload accepts or can cause)."""
    initial = False
    READ_ONLY = ("get",)

    @staticmethod
    def step(present: bool, op) -> list:
        if op.kind == "get":
            return [present] if op.result == present else []
        if op.kind == "create":
            outcomes = {True: [True] if not present else [], False: [True] if present else []}
        else:
            outcomes = {True: [False] if present else [], False: [False] if not present else []}
        if op.complete_tick is None:
            return sorted(set(outcomes[True] + outcomes[False]) | {present})
        return outcomes[op.result]


class StreamsWorkload:
    state_machine = MuxStateMachine
    client = StreamsClient
    model = StreamNameModel
