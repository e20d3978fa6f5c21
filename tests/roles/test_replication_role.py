"""The replication role's logic with the real VSR core and the real owner logic; the test plays
the journal (it answers APPEND with DURABLE and PERSIST_VIEW with VIEW_PERSISTED)."""

from __future__ import annotations

import random

from core import auth
from core.roles import owner as owner_mod
from core.roles import records
from core.roles.records import Kind
from core.roles.replication import Outputs, Replication
from core.vsr.messages import VsrConfig
from core.vsr.replica import Replica
from domains import sessions_wire, streams_wire
from domains.mux import MuxStateMachine
from net import iggy, wire
from net.iggy import Operation

CLIENT = b"\x09" * 16


def _kinds(items: list[bytes]) -> list[int]:
    return [records.kind_of(item) for item in items]


def _feed(replication: Replication, record: bytes) -> Outputs:
    out = Outputs()
    replication.handle(memoryview(record), out)
    return out


def _journal_answers(out: Outputs) -> list[bytes]:
    """What a journal role would answer for these journal records, in order."""
    answers = []
    for record in out.journal:
        view = memoryview(record)
        if records.kind_of(view) == Kind.APPEND:
            answers.append(records.durable(records.read_append(view)[0]))
        elif records.kind_of(view) == Kind.PERSIST_VIEW:
            view_number, log_view, _op, _headers = records.read_persist_view(view)
            answers.append(records.view_persisted(view_number, log_view))
    return answers


def test_a_request_goes_journal_then_owner_then_back_to_its_connection():
    replication = Replication(Replica(VsrConfig(replica_count=1), 0, random.Random(1)))
    owner = owner_mod.Owner(MuxStateMachine(auth.hash_secret("pw", n_log2=10)))
    register = iggy.request_frame(CLIENT, 0, 0, Operation.REGISTER,
                                  sessions_wire.encode_register(0))
    out = _feed(replication, records.client_request(7, 0, register))
    assert Kind.APPEND in _kinds(out.journal)
    assert Kind.VIEW in _kinds(out.outbound) and Kind.VIEW in _kinds(out.apply)
    replies = []
    pending = _journal_answers(out)
    for _ in range(10):  # journal -> core -> owner -> core until the reply leaves
        step = Outputs()
        for answer in pending:
            replication.handle(memoryview(answer), step)
        owner_out = owner_mod.Outputs()
        for record in step.apply:
            if records.kind_of(record) in (Kind.APPLY, Kind.QUERY, Kind.TABLE_REPLY,
                                          Kind.CHECKPOINT):
                owner.handle(memoryview(record), owner_out)
        for applied in owner_out.applied:
            replication.handle(memoryview(applied), step)
        replies += [r for r in step.outbound if records.kind_of(r) == Kind.CLIENT_FRAME]
        pending = _journal_answers(step)
        if replies:
            break
    [reply] = replies
    conn, frame = records.read_conn_frame(memoryview(reply))
    header = wire.decode_header(frame)
    assert conn == 7 and header.command == wire.Command.REPLY
    assert header.operation == Operation.REGISTER
    login = iggy.parse_login_reply(iggy.parse_reply(bytes(frame), Operation.REGISTER).payload)
    assert (login.user_id, login.session) == (0, owner.applied_op)
    assert owner.mux.lookup_session(CLIENT, owner.applied_op) == 0


def test_actions_after_persist_view_wait_for_the_journal():
    config = VsrConfig(replica_count=3)
    replication = Replication(Replica(config, 1, random.Random(2)))
    held = Outputs()
    for _ in range(config.normal_timeout_ticks + config.view_change_timeout_ticks + 5):
        out = Outputs()
        replication.tick(0, out)
        held.journal += out.journal
        held.outbound += out.outbound
        if Kind.PERSIST_VIEW in _kinds(out.journal):
            break
    assert Kind.PERSIST_VIEW in _kinds(held.journal)
    sent_before = [r for r in held.outbound if records.kind_of(r) != Kind.VIEW]
    # Nothing the core decided after PersistView left before the journal confirmed it.
    after = Outputs()
    replication.tick(0, after)
    assert [r for r in after.outbound if records.kind_of(r) != Kind.VIEW] == []
    released = Outputs()
    for answer in _journal_answers(held):
        replication.handle(memoryview(answer), released)
    peer_frames = [r for r in released.outbound
                   if records.kind_of(r) in (Kind.SEND_PEER, Kind.BROADCAST)]
    assert peer_frames, (sent_before, released.outbound)


def test_one_broadcast_record_replaces_a_send_per_peer():
    config = VsrConfig(replica_count=3)
    replication = Replication(Replica(config, 0, random.Random(3)))
    out = Outputs()
    for _ in range(config.heartbeat_ticks + 1):
        replication.tick(0, out)
    kinds = _kinds(out.outbound)
    assert Kind.BROADCAST in kinds and Kind.SEND_PEER not in kinds
    frame = next(r for r in out.outbound if records.kind_of(r) == Kind.BROADCAST)[1:]
    assert wire.decode_header(frame).command == wire.Command.COMMIT


def test_create_stream_round_trip_reaches_the_state():
    replication = Replication(Replica(VsrConfig(replica_count=1), 0, random.Random(4)))
    owner = owner_mod.Owner(MuxStateMachine())
    frames = [iggy.request_frame(CLIENT, 0, 0, Operation.REGISTER,
                                 sessions_wire.encode_register(0))]
    outputs = []

    def run(record: bytes) -> None:
        queue = [record]
        while queue:
            out = Outputs()
            replication.handle(memoryview(queue.pop(0)), out)
            queue += _journal_answers(out)
            owner_out = owner_mod.Outputs()
            for item in out.apply:
                if records.kind_of(item) != Kind.VIEW:
                    owner.handle(memoryview(item), owner_out)
            queue += owner_out.applied
            outputs.extend(r for r in out.outbound if records.kind_of(r) == Kind.CLIENT_FRAME)

    run(records.client_request(1, 0, frames[0]))
    session = owner.applied_op
    run(records.client_request(1, 0, iggy.request_frame(
        CLIENT, session, 1, Operation.CREATE_STREAM, streams_wire.encode_create_stream("x", {}))))
    assert len(outputs) == 2
    created = iggy.parse_reply(bytes(records.read_conn_frame(memoryview(outputs[1]))[1]),
                               Operation.CREATE_STREAM)
    assert created.status == 0 and streams_wire.decode_stream_details(created.payload).name == "x"
    assert b"x" in owner.mux.query(201, b"", 0)[1]


def test_prepares_are_stamped_with_the_wall_clock_the_caller_gives():
    replication = Replication(Replica(VsrConfig(replica_count=1), 0, random.Random(5)))
    replication.tick(1_795_000_000_000_000, Outputs())
    out = _feed(replication, records.client_request(1, 0, iggy.request_frame(
        CLIENT, 0, 0, Operation.REGISTER, sessions_wire.encode_register(0))))
    [append] = [r for r in out.journal if records.kind_of(r) == Kind.APPEND]
    _seq, _op, frame = records.read_append(memoryview(append))
    assert wire.decode_header(frame).timestamp == 1_795_000_000_000_000


def _settle(replication: Replication, owner: owner_mod.Owner, out: Outputs) -> list[bytes]:
    """Play journal and owner until the replies of what `out` started have left."""
    replies = [r for r in out.outbound if records.kind_of(r) == Kind.CLIENT_FRAME]
    pending = _journal_answers(out)
    for _ in range(10):
        step = Outputs()
        for answer in pending:
            replication.handle(memoryview(answer), step)
        owner_out = owner_mod.Outputs()
        for record in step.apply:
            if records.kind_of(record) == Kind.APPLY:
                owner.handle(memoryview(record), owner_out)
        for applied in owner_out.applied:
            replication.handle(memoryview(applied), step)
        replication.flush(step)
        replies += [r for r in step.outbound if records.kind_of(r) == Kind.CLIENT_FRAME]
        pending = _journal_answers(step)
        if not pending:
            break
    return replies


def test_with_batch_on_flush_the_requests_of_one_pass_share_one_prepare():
    replication = Replication(Replica(VsrConfig(replica_count=1, batch_on_flush=True), 0,
                                      random.Random(7)))
    owner = owner_mod.Owner(MuxStateMachine(auth.hash_secret("pw", n_log2=10)))
    clients = [bytes([i + 1]) * 16 for i in range(4)]
    sessions = []
    for conn, client in enumerate(clients):
        out = _feed(replication, records.client_request(conn, 0, iggy.request_frame(
            client, 0, 0, Operation.REGISTER, sessions_wire.encode_register(0))))
        assert Kind.APPEND not in _kinds(out.journal)  # nothing is cut before the flush
        replication.flush(out)
        [reply] = _settle(replication, owner, out)
        frame = records.read_conn_frame(memoryview(reply))[1]
        sessions.append(iggy.parse_login_reply(
            iggy.parse_reply(bytes(frame), Operation.REGISTER).payload).session)
    out = Outputs()
    for conn, (client, session) in enumerate(zip(clients, sessions)):
        replication.handle(memoryview(records.client_request(conn, 0, iggy.request_frame(
            client, session, 1, Operation.CREATE_STREAM,
            streams_wire.encode_create_stream(f"s{conn}", {})))), out)
    assert Kind.APPEND not in _kinds(out.journal)
    replication.flush(out)
    [append] = [r for r in out.journal if records.kind_of(r) == Kind.APPEND]
    assert wire.decode_header(records.read_append(memoryview(append))[2]).request_count == 4
    replies = _settle(replication, owner, out)
    assert sorted(records.read_conn_frame(memoryview(r))[0] for r in replies) == [0, 1, 2, 3]
    assert len(owner.mux.streams.streams) == 4


def test_with_a_ring_journal_a_batch_fits_one_slot():
    from core.config import parse
    from core.roles.replication import vsr_config
    from core.vsr.messages import BATCH_BYTES_MAX_DEFAULT
    config = parse({"cluster_id": 7, "replica": 0, "data_dir": "d", "replicas": [
        {"client": f"127.0.0.1:{3001 + i}", "peer": f"127.0.0.1:{4001 + i}"} for i in range(3)],
        "replication": {"checkpoint_interval": 2048}})
    assert vsr_config(config).batch_bytes_max == BATCH_BYTES_MAX_DEFAULT
    ring = vsr_config(config, 4096, 64 << 10)
    assert ring.batch_bytes_max == (64 << 10) - wire.HEADER_SIZE
    assert (ring.journal_slots, ring.journal_ops_ahead_max) == (4096, 0)
    assert vsr_config(config).journal_ops_ahead_max > 0  # segmented: bounded ahead
