"""The workload creates what it reads, never creates a name twice, and is deterministic."""

from __future__ import annotations

from domains.streams_wire import decode_create_stream, decode_create_topic, decode_ids
from domains.users_wire import decode_create_user_request
from tools.loadgen.mix import KINDS
from tools.loadgen.workload import WIRE, Catalogue, Workload

EVERYTHING = {kind: 1 for kind in KINDS}


def drive(workload: Workload, count: int, fail_every: int = 0) -> list:
    ops = []
    for n in range(count):
        op = workload.next_op()
        ops.append(op)
        workload.completed(op, 1012 if fail_every and n % fail_every == 0 else 0)
    return ops


def test_every_kind_has_a_wire_mapping():
    assert set(WIRE) == set(KINDS)


def test_reads_joins_leaves_and_deletes_only_target_live_names_of_this_session():
    workload = Workload(EVERYTHING, seed=3, run="r", process=1, session=2)
    live_streams, live_topics, live_groups, joined, users = set(), set(), set(), set(), set()
    for op in drive(workload, 3000):
        if op.kind in ("get_stream", "delete_stream", "create_topic"):
            assert op.names[0] in live_streams, op
        if op.kind in ("get_topic", "create_consumer_group"):
            assert op.names[:2] in live_topics, op
        if op.kind in ("get_consumer_group", "join_consumer_group"):
            assert op.names in live_groups, op
        if op.kind == "leave_consumer_group":
            assert op.names in joined, op
            joined.discard(op.names)
        if op.kind == "get_user":
            assert op.names[0] in users
        if op.kind == "create_stream":
            assert op.names[0].startswith("lg-r-1-2-") and op.names[0] not in live_streams
            live_streams.add(op.names[0])
        elif op.kind == "create_topic":
            live_topics.add(op.names)
        elif op.kind == "create_consumer_group":
            live_groups.add(op.names)
        elif op.kind == "join_consumer_group":
            joined.add(op.names)
        elif op.kind == "create_user":
            users.add(op.names[0])
        elif op.kind == "delete_stream":
            stream = op.names[0]
            live_streams.discard(stream)
            live_topics = {t for t in live_topics if t[0] != stream}
            live_groups = {g for g in live_groups if g[0] != stream}
            joined = {g for g in joined if g[0] != stream}
    assert live_streams and live_topics and live_groups and users


def test_created_keys_are_never_repeated_even_after_failures():
    workload = Workload({"create_stream": 1, "create_topic": 1, "create_user": 1}, seed=1,
                        run="r", process=0, session=0)
    creates = [op.key for op in drive(workload, 2000, fail_every=3)]
    assert len(creates) == len(set(creates))


def test_same_seed_same_sequence_other_session_other_names():
    ops = [[(op.kind, op.key) for op in drive(Workload(EVERYTHING, seed=9, run="r", process=0,
                                                       session=s), 500)] for s in (0, 0, 1)]
    assert ops[0] == ops[1]
    assert not {key for _, key in ops[0]} & {key for _, key in ops[2]} - {""}  # "" = get_streams


def test_bodies_decode_with_the_domain_decoders():
    workload = Workload(EVERYTHING, seed=5, run="r", process=0, session=0)
    for op in drive(workload, 1000):
        if op.kind == "create_stream":
            assert decode_create_stream(op.body) == (op.names[0], {})
        elif op.kind == "create_topic":
            assert decode_create_topic(op.body)[::2] == (op.names[0], op.names[1])
        elif op.kind == "create_user":
            assert decode_create_user_request(op.body)[0] == op.names[0]
        elif op.kind in ("get_stream", "delete_stream", "get_topic", "get_consumer_group",
                         "join_consumer_group", "leave_consumer_group", "get_user"):
            assert decode_ids(op.body, len(op.names)) == op.names


def test_reads_share_the_process_catalogue_writes_stay_on_own_names():
    shared = Catalogue()
    sessions = [Workload(EVERYTHING, seed=2, run="r", process=0, session=s, shared=shared)
                for s in range(2)]
    foreign_reads = 0
    for _ in range(1500):
        for index, workload in enumerate(sessions):
            op = workload.next_op()
            mine = f"lg-r-0-{index}-"
            if op.kind.startswith("get_") and op.key:
                foreign_reads += not op.key.startswith(mine)
            elif op.key:
                assert op.key.startswith(mine), op  # writes never touch another's names
            workload.completed(op, 0)
    assert foreign_reads > 100
