"""One session's workload: which operation comes next, on which key, with which request body.

Owns: the catalogues of created names and the deterministic draw of the next operation from
the mix. The workload creates what it reads:
- writes that target an existing object (create a topic or group in it, join, leave, delete)
  only target names this session created, so no other session can delete them underneath;
- reads target names any session of the same process created (a `Catalogue` the process's
  sessions share), so a history also orders operations of different sessions on one key:
  session B's read after session A's create completed must find the object;
- when nothing is there to target yet, the prerequisite create is drawn instead (so the sent
  mix leans towards creates until the catalogue fills).
Every created name is new (a per-session counter under a per-run prefix), so no key is ever
created twice; a deleted or left name is dropped from the catalogues when the operation is
issued, so it is never targeted again (a read already in flight may still find it gone).

The kinds drawn and the names created are a function of the seed, run id, process and session
(given the same answers); which shared name a read picks also depends on what the other
sessions had created by then. Must never touch sockets, clocks or frames: the worker owns the
transport and timing.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from domains.codec import identifier
from domains.streams_wire import (encode_create_group, encode_create_stream,
                                  encode_create_topic, encode_ids)
from domains.users_wire import STATUS_ACTIVE, encode_create_user
from net.iggy import Code, Operation

# Entries kept per catalogue list: creates go on past it, but what is read is bounded.
CATALOGUE_MAX = 10_000
TOPIC_PARTITIONS = 1
USER_PASSWORD = "loadgen-pw"

# kind -> (operation, legacy read code or 0 for a replicated operation)
WIRE: dict[str, tuple[int, int]] = {
    "create_stream": (Operation.CREATE_STREAM, 0),
    "create_topic": (Operation.CREATE_TOPIC, 0),
    "create_consumer_group": (Operation.CREATE_CONSUMER_GROUP, 0),
    "create_user": (Operation.CREATE_USER, 0),
    "join_consumer_group": (Operation.JOIN_CONSUMER_GROUP, 0),
    "leave_consumer_group": (Operation.LEAVE_CONSUMER_GROUP, 0),
    "delete_stream": (Operation.DELETE_STREAM, 0),
    "get_stream": (Operation.NON_REPLICATED, Code.GET_STREAM),
    "get_streams": (Operation.NON_REPLICATED, Code.GET_STREAMS),
    "get_topic": (Operation.NON_REPLICATED, Code.GET_TOPIC),
    "get_consumer_group": (Operation.NON_REPLICATED, Code.GET_CONSUMER_GROUP),
    "get_user": (Operation.NON_REPLICATED, Code.GET_USER),
}

# What to draw instead when a kind has nothing to target yet.
_PREREQUISITE = {
    "create_topic": "create_stream",
    "get_stream": "create_stream",
    "delete_stream": "create_stream",
    "create_consumer_group": "create_topic",
    "get_topic": "create_topic",
    "join_consumer_group": "create_consumer_group",
    "get_consumer_group": "create_consumer_group",
    "leave_consumer_group": "join_consumer_group",
    "get_user": "create_user",
}


@dataclass(frozen=True)
class Op:
    kind: str
    key: str  # the names it targets, joined by "/" (stream/topic/group); "" for get_streams
    operation: int
    code: int
    body: bytes
    names: tuple[str, ...]  # the same names, for the catalogue update on completion


class Catalogue:
    """Live names by kind, each list bounded by CATALOGUE_MAX (creates go on past it)."""

    def __init__(self) -> None:
        self.streams: list[str] = []
        self.topics: list[tuple[str, str]] = []
        self.groups: list[tuple[str, str, str]] = []
        self.users: list[str] = []

    def add(self, kind: str, names: tuple[str, ...]) -> None:
        if kind == "create_stream":
            _add(self.streams, names[0])
        elif kind == "create_topic":
            _add(self.topics, names)
        elif kind == "create_consumer_group":
            _add(self.groups, names)
        elif kind == "create_user":
            _add(self.users, names[0])

    def forget_stream(self, stream: str) -> None:
        # Deleting a stream cascades to its topics and groups on the server; forget them too.
        if stream in self.streams:
            self.streams.remove(stream)
        self.topics = [t for t in self.topics if t[0] != stream]
        self.groups = [g for g in self.groups if g[0] != stream]


class Workload:
    def __init__(self, mix: dict[str, int], *, seed: int, run: str, process: int, session: int,
                 shared: Catalogue | None = None):
        self.rng = random.Random(f"{seed}:{run}:{process}:{session}")
        self.prefix = f"lg-{run}-{process}-{session}"
        self.kinds = list(mix)
        total = 0
        self.cumulative = []
        for kind in self.kinds:
            total += mix[kind]
            self.cumulative.append(total)
        self.counter = 0
        self.own = Catalogue()  # what this session created: targets of its writes
        self.shared = shared if shared is not None else self.own  # targets of reads
        self.joined: list[tuple[str, str, str]] = []

    def next_op(self) -> Op:
        kind = self.rng.choices(self.kinds, cum_weights=self.cumulative)[0]
        while True:
            op = self._build(kind)
            if op is not None:
                return op
            kind = _PREREQUISITE[kind]

    def completed(self, op: Op, status: int) -> None:
        """Record what a successful create or join added (failures add nothing)."""
        if status:
            return
        if op.kind == "join_consumer_group":
            _add(self.joined, op.names)
            return
        self.own.add(op.kind, op.names)
        if self.shared is not self.own:
            self.shared.add(op.kind, op.names)

    # --- drawing --------------------------------------------------------------------------

    def _fresh(self, tag: str) -> str:
        self.counter += 1
        return f"{tag}{self.counter}"

    def _build(self, kind: str) -> Op | None:
        rng, own, shared = self.rng, self.own, self.shared
        if kind == "create_stream":
            name = f"{self.prefix}-{self._fresh('s')}"
            return _op(kind, (name,), encode_create_stream(name, {}))
        if kind == "create_user":
            name = f"{self.prefix}-{self._fresh('u')}"
            # The SDK's CreateUser body is the log layout with the password where the hash
            # goes: n8 username, n8 password, status, no permissions, no options.
            body = encode_create_user(name, USER_PASSWORD.encode(), STATUS_ACTIVE, None, {})
            return _op(kind, (name,), body)
        if kind == "get_streams":
            return _op(kind, (), b"")
        if kind == "get_stream":
            if not shared.streams:
                return None
            stream = rng.choice(shared.streams)
            return _op(kind, (stream,), encode_ids(stream))
        if kind in ("delete_stream", "create_topic"):
            if not own.streams:
                return None
            stream = rng.choice(own.streams)
            if kind == "create_topic":
                topic = self._fresh("t")
                return _op(kind, (stream, topic),
                           encode_create_topic(stream, TOPIC_PARTITIONS, topic, {}))
            self._forget_stream(stream)
            return _op(kind, (stream,), encode_ids(stream))
        if kind == "get_topic":
            if not shared.topics:
                return None
            names = rng.choice(shared.topics)
            return _op(kind, names, encode_ids(*names))
        if kind == "create_consumer_group":
            if not own.topics:
                return None
            stream, topic = rng.choice(own.topics)
            group = self._fresh("g")
            return _op(kind, (stream, topic, group), encode_create_group(stream, topic, group))
        if kind == "get_consumer_group":
            if not shared.groups:
                return None
            names = rng.choice(shared.groups)
            return _op(kind, names, encode_ids(*names))
        if kind == "join_consumer_group":
            if not own.groups:
                return None
            names = rng.choice(own.groups)
            if names in self.joined:
                return None
            return _op(kind, names, encode_ids(*names))
        if kind == "leave_consumer_group":
            if not self.joined:
                return None
            names = self.joined.pop(rng.randrange(len(self.joined)))
            return _op(kind, names, encode_ids(*names))
        if kind == "get_user":
            if not shared.users:
                return None
            name = rng.choice(shared.users)
            return _op(kind, (name,), identifier(name))
        raise ValueError(f"unknown operation kind {kind!r}")

    def _forget_stream(self, stream: str) -> None:
        self.own.forget_stream(stream)
        if self.shared is not self.own:
            self.shared.forget_stream(stream)
        self.joined = [g for g in self.joined if g[0] != stream]


def _op(kind: str, names: tuple[str, ...], body: bytes) -> Op:
    operation, code = WIRE[kind]
    return Op(kind, "/".join(names), operation, code, body, names)


def _add(catalogue: list, entry) -> None:
    if len(catalogue) < CATALOGUE_MAX:
        catalogue.append(entry)
