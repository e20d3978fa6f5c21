"""`metavsr bench apply`: how fast the owner applies operations, and what a checkpoint costs.

Measures (1) applied operations per second for a realistic metadata mix against a populated
catalogue, in one process, straight into MuxStateMachine.apply (no replication, no I/O), and
(2) building a large catalogue (10k streams, 100k topics, 1M partitions, 10k users at
--scale 1) through apply, then encoding, digesting and restoring its checkpoint sections.
Goals (reported, not asserted): >= 100k applied ops/s; checkpoint encode < 5 s.
"""

from __future__ import annotations

import argparse
import random
import time

from domains import sessions_wire
from domains import streams_wire as sw
from domains import users_wire as uw
from domains.codec import name8
from domains.mux import MuxStateMachine
from tools.bench.report import print_table

HELP = "domain apply throughput for a realistic mix, and checkpoint encode/decode of a big catalogue"

# Big catalogue at scale 1 (issue 3): 10k streams x 10 topics x 10 partitions, 10k users.
STREAMS, TOPICS_PER_STREAM, PARTITIONS_PER_TOPIC, USERS = 10_000, 10, 10, 10_000
# The mix runs against a catalogue of this shape, with this many logged-in clients.
MIX_STREAMS, MIX_TOPICS, MIX_PARTITIONS, MIX_CLIENTS = 200, 10, 4, 1_000
# operation kind -> weight: consumers joining/leaving groups dominate a busy metadata store,
# then topic and partition churn, then user and token administration.
MIX = {
    "join": 25, "leave": 22, "create_topic": 8, "delete_topic": 8, "create_partitions": 6,
    "delete_partitions": 6, "update_topic": 5, "purge_topic": 4, "create_group": 4,
    "delete_group": 4, "update_user": 3, "create_token": 2, "delete_token": 2, "create_stream": 1,
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--scale", type=float, default=1.0,
                        help="fraction of the big catalogue to build (default 1; 0.01 for smoke)")
    parser.add_argument("--ops", type=int, default=200_000,
                        help="operations in the timed mix (default 200000)")
    parser.add_argument("--seed", type=int, default=1)


class _Clock:
    """Op numbers and timestamps for a single-process run."""

    def __init__(self) -> None:
        self.op = 0

    def next(self) -> int:
        self.op += 1
        return self.op


def _client(index: int) -> bytes:
    return index.to_bytes(16, "little")


def _populate(mux: MuxStateMachine, clock: _Clock, streams: int, topics: int, partitions: int,
              users: int, clients: int, groups_everywhere: bool) -> list[tuple[bytes, int]]:
    """Root creates the catalogue: a group named "group" (id 0) on every topic, or on the
    first topic of each stream only; then `clients` root sessions are registered."""
    root = _client(1 << 100)
    op = clock.next()
    mux.apply(op, op, root, 0, 0, 0, 1, sessions_wire.encode_register(0))
    session, request = op, 0

    def write(operation: int, body: bytes) -> None:
        nonlocal request
        request += 1
        op = clock.next()
        status, _ = mux.apply(op, op, root, session, request, 0, operation, body)
        if status:
            raise RuntimeError(f"populate: operation {operation} failed with {status}")

    for s in range(streams):
        write(128, sw.encode_create_stream(f"stream-{s}", {}))
        for t in range(topics):
            write(132, sw.encode_create_topic(s, partitions, f"topic-{t}", {}))
            if groups_everywhere or t == 0:
                write(139, sw.encode_create_group(s, t, "group"))
    for u in range(users):
        write(141, uw.encode_create_user(f"user-{u:06d}", b"h" * 32, 1, None, {}))
    logged = []
    for c in range(clients):
        op = clock.next()
        mux.apply(op, op, _client(c), 0, 0, 0, 1, sessions_wire.encode_register(0))
        logged.append((_client(c), op))
    return logged


def _mix(rng: random.Random, count: int, clients: list[tuple[bytes, int]]) -> list[tuple]:
    """(client, session, request, operation, body) tuples, bodies in canonical form. The plan
    tracks what exists so most operations succeed, as in a healthy cluster (a failed state
    check is cheaper than a success, so an error-heavy mix would flatter the figure)."""
    kinds = rng.choices(tuple(MIX), tuple(MIX.values()), k=count)
    requests = {client: 0 for client, _ in clients}
    members: list[tuple[int, bytes, int, int]] = []  # (index in clients, client, stream, topic)
    member_set: set[tuple[bytes, int, int]] = set()
    extra_topics: set[int] = set()
    groups: set[tuple[int, int, str]] = set()
    tokens: set[int] = set()
    plan = []
    serial = 0
    for kind in kinds:
        index = rng.randrange(len(clients))
        client, session = clients[index]
        s = rng.randrange(MIX_STREAMS)
        t = rng.randrange(MIX_TOPICS)
        serial += 1
        if kind == "leave" and members:
            index, client, s, t = members.pop(rng.randrange(len(members)))
            member_set.discard((client, s, t))
            session = clients[index][1]
            operation, body = 149, sw.encode_ids(s, t, 0)
        elif kind in ("join", "leave"):
            if (client, s, t) not in member_set:
                member_set.add((client, s, t))
                members.append((index, client, s, t))
            operation, body = 148, sw.encode_ids(s, t, 0)
        elif kind in ("create_topic", "delete_topic") and s not in extra_topics:
            extra_topics.add(s)
            operation, body = 132, sw.encode_create_topic(s, MIX_PARTITIONS, "extra", {})
        elif kind in ("create_topic", "delete_topic"):
            extra_topics.discard(s)
            operation, body = 134, sw.encode_ids(s, "extra")
        elif kind == "create_partitions":
            operation, body = 136, sw.encode_partitions(s, t, 1)
        elif kind == "delete_partitions":
            operation, body = 137, sw.encode_partitions(s, t, 1)
        elif kind == "update_topic":
            operation, body = 133, sw.encode_update_topic(s, t, f"topic-{t}", {})
        elif kind == "purge_topic":
            operation, body = 135, sw.encode_ids(s, t)
        elif kind == "create_group" or (kind == "delete_group" and not groups):
            groups.add((s, t, f"g{serial}"))
            operation, body = 139, sw.encode_create_group(s, t, f"g{serial}")
        elif kind == "delete_group":
            s, t, name = groups.pop()
            operation, body = 140, sw.encode_ids(s, t, name)
        elif kind == "update_user":
            operation, body = 142, uw.encode_update_user(f"user-{s:06d}", None, 1, {})
        elif kind == "create_token" or (kind == "delete_token" and not tokens):
            tokens.add(serial)
            operation, body = 146, uw.encode_create_token(f"tok{serial}", 0,
                                                          serial.to_bytes(32, "little"))
        elif kind == "delete_token":
            operation, body = 147, name8(f"tok{tokens.pop()}")
        else:
            operation, body = 128, sw.encode_create_stream(f"new-{serial}", {})
        requests[client] += 1
        plan.append((client, session, requests[client], operation, body))
    return plan


def _measure_mix(args: argparse.Namespace) -> dict[str, float]:
    mux = MuxStateMachine(b"root")
    clock = _Clock()
    clients = _populate(mux, clock, MIX_STREAMS, MIX_TOPICS, MIX_PARTITIONS, MIX_STREAMS,
                        MIX_CLIENTS, groups_everywhere=True)
    plan = _mix(random.Random(args.seed), args.ops, clients)
    apply = mux.apply
    errors = 0
    op = clock.op
    start = time.perf_counter()
    for client, session, request, operation, body in plan:
        op += 1
        if apply(op, op, client, session, request, 0, operation, body)[0]:
            errors += 1
    elapsed = time.perf_counter() - start
    return {"mix_ops": float(len(plan)), "mix_applied_ops_per_s": len(plan) / elapsed,
            "mix_state_errors_fraction": errors / len(plan)}


def _measure_checkpoint(args: argparse.Namespace) -> dict[str, float]:
    scale = args.scale
    streams = max(1, int(STREAMS * scale))
    users = max(1, int(USERS * scale))
    mux = MuxStateMachine(b"root")
    clock = _Clock()
    start = time.perf_counter()
    _populate(mux, clock, streams, TOPICS_PER_STREAM, PARTITIONS_PER_TOPIC, users, 0,
              groups_everywhere=False)
    build = time.perf_counter() - start
    counts = mux.counts()

    start = time.perf_counter()
    sections = mux.snapshot()
    encode = time.perf_counter() - start
    size = sum(len(data) for _, data in sections.values())
    start = time.perf_counter()
    digest = mux.digest()
    digest_s = time.perf_counter() - start
    start = time.perf_counter()
    restored = MuxStateMachine()
    restored.restore(sections)
    decode = time.perf_counter() - start
    if restored.digest() != digest:
        raise RuntimeError("restored checkpoint digest differs")
    start = time.perf_counter()
    restored.snapshot()
    reencode = time.perf_counter() - start
    return {
        "catalogue_streams": float(counts["streams"]),
        "catalogue_topics": float(counts["topics"]),
        "catalogue_partitions": float(counts["partitions"]),
        "catalogue_users": float(counts["users"]),
        "catalogue_build_via_apply_s": build,
        "catalogue_build_ops_per_s": clock.op / build,
        "checkpoint_bytes": float(size),
        "checkpoint_encode_s": encode,
        "checkpoint_digest_cached_s": digest_s,
        "checkpoint_decode_s": decode,
        "checkpoint_reencode_after_restore_s": reencode,
    }


def run(args: argparse.Namespace) -> dict[str, float]:
    figures = _measure_mix(args)
    print_table(("apply mix", "value"), [
        ("operations", int(figures["mix_ops"])),
        ("applied ops/s (goal >= 100,000)", figures["mix_applied_ops_per_s"]),
        ("state-check errors (fraction)", figures["mix_state_errors_fraction"]),
    ])
    print()
    checkpoint = _measure_checkpoint(args)
    figures.update(checkpoint)
    print_table(("checkpoint", "value"), [
        ("streams / topics", f"{int(checkpoint['catalogue_streams']):,} / "
                             f"{int(checkpoint['catalogue_topics']):,}"),
        ("partitions / users", f"{int(checkpoint['catalogue_partitions']):,} / "
                               f"{int(checkpoint['catalogue_users']):,}"),
        ("build through apply s", checkpoint["catalogue_build_via_apply_s"]),
        ("build ops/s", checkpoint["catalogue_build_ops_per_s"]),
        ("section bytes", int(checkpoint["checkpoint_bytes"])),
        ("encode s (goal < 5)", checkpoint["checkpoint_encode_s"]),
        ("digest of cached sections s", checkpoint["checkpoint_digest_cached_s"]),
        ("decode (restore) s", checkpoint["checkpoint_decode_s"]),
        ("re-encode after restore s", checkpoint["checkpoint_reencode_after_restore_s"]),
    ])
    return figures

