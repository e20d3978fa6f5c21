"""Simulated clients of the key-value workload and the history they record.

Owns client behaviour (register, then writes of unique values and linearizable reads on a few
keys, one request in flight, retry of the SAME request number to the next replica on timeout)
and the history of invocations and completions the checkers read. It never looks inside the
replicas. To drive another state machine, write a workload with the same shape and pass it
with the state machine factory to the cluster (see tools/simulator/__init__.py).
"""

from __future__ import annotations

import random
import struct
from dataclasses import dataclass

from core.vsr.messages import OPERATION_NON_REPLICATED, OPERATION_REGISTER
from net.wire import Command, body_checksum, encode, make_header
from tools.simulator.kv import OPERATION_PUT, QUERY_GET, KvStateMachine
from tools.simulator.linearizability import RegisterModel

KEYS = 4
REQUEST_TIMEOUT_TICKS = 60


@dataclass
class Operation:
    client: int
    kind: str  # "write" | "read"
    key: int
    value: bytes | None  # the argument (a written value), if any
    invoke_tick: int
    complete_tick: int | None = None
    request: int = 0
    result: object = None  # what the completion observed (value read, status...)


class SimClient:
    """One simulated client: register, then one operation at a time, retried on timeout with
    the same request number at the next replica. Subclasses choose operations (`_next`) and
    read their replies (`_complete`)."""

    def __init__(self, index: int, replica_count: int, rng: random.Random) -> None:
        self.index = index
        self.node = ("client", index)
        self.id = struct.pack("<QQ", 0xC0FFEE, index + 1)
        self.replica_count = replica_count
        self.rng = rng
        self.session = 0
        self.request = 0  # last request number used
        self.target = rng.randrange(replica_count)
        self.current: Operation | None = None
        self.operation = 0  # the request header operation of `current`
        self.frame = b""
        self.sent_tick = 0
        self.wait_until = 0
        self.registered = False

    def _frame(self, operation: int, request: int, body: bytes, code: int = 0) -> bytes:
        header = make_header(Command.REQUEST, client=self.id, request=request,
                             operation=operation, session=self.session, code=code,
                             request_checksum=body_checksum(body) if code == 0 else 0)
        return encode(header, body, checksums=False)

    def _start(self, now: int, kind: str, key, value, operation: int, body: bytes,
               code: int = 0) -> None:
        # The SDK reuses the counter for reads (one request in flight on an ordered
        # connection tells replies apart); on this lossy, duplicating network a late reply to
        # the previous read would match, so simulated reads advance it too.
        self.request += 1
        self.current = Operation(self.index, kind, key, value, now, request=self.request)
        self.operation = operation
        self.frame = self._frame(operation, self.request, body, code)

    def tick(self, now: int, history: list, send) -> None:
        if self.current is None:
            if now < self.wait_until:
                return
            if not self.registered:
                self.current = Operation(self.index, "register", 0, None, now, request=0)
                self.operation = OPERATION_REGISTER
                self.frame = self._frame(OPERATION_REGISTER, 0, self.register_body())
            else:
                self._next(now)
            history.append(self.current)
            self.sent_tick = now
            send(self.target, self.frame)
        elif now - self.sent_tick >= REQUEST_TIMEOUT_TICKS:
            # Retry the same request (same number) at the next replica.
            self.target = (self.target + 1) % self.replica_count
            self.sent_tick = now
            send(self.target, self.frame)

    def on_reply(self, now: int, header, body, acked: set) -> None:
        op = self.current
        if op is None or header.client != self.id or header.request != op.request or \
                header.operation != self.operation:
            return
        self.target = header.view % self.replica_count
        if op.kind == "register":
            if header.status != 0:
                raise AssertionError(f"register failed with status {header.status}")
            _, self.session = struct.unpack("<IQ", bytes(body))
            self.registered = True
        else:
            if self.operation != OPERATION_NON_REPLICATED:
                acked.add((self.id, op.request))
            self._complete(op, header.status, bytes(body))
        op.complete_tick = now
        self.current = None
        self.wait_until = now + self.rng.randint(0, 5)

    def register_body(self) -> bytes:
        return b""

    def _next(self, now: int) -> None:
        raise NotImplementedError

    def _complete(self, op: Operation, status: int, body: bytes) -> None:
        raise NotImplementedError


class KvClient(SimClient):
    """Writes of unique values and linearizable reads on a few one-byte keys."""

    def _next(self, now: int) -> None:
        key = self.rng.randrange(KEYS)
        if self.rng.random() < 0.5:
            value = f"{self.index}:{self.request + 1}".encode()
            self._start(now, "write", key, value, OPERATION_PUT, bytes([key]) + value)
        else:
            self._start(now, "read", key, None, OPERATION_NON_REPLICATED, bytes([key]),
                        code=QUERY_GET)

    def _complete(self, op: Operation, status: int, body: bytes) -> None:
        if status != 0:
            raise AssertionError(f"{op.kind} failed with status {status}")
        if op.kind == "read":
            op.result = body


class KvWorkload:
    """The workload bundle the cluster needs: state machine factory, clients, model."""
    state_machine = KvStateMachine
    client = KvClient
    model = RegisterModel
