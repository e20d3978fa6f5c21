"""The owner role's logic with real prepares, the real MuxStateMachine and real reply frames."""

from __future__ import annotations

import os

import pytest

from core import auth
from core.check import InvariantError
from core.roles import owner as owner_mod
from core.roles import records
from core.roles.owner import Outputs, Owner
from core.roles.records import Lookup
from core.storage.snapshot import SnapshotStore
from domains import sessions_wire, streams_wire
from domains.codec import identifier
from domains.mux import MuxStateMachine
from net import batch, iggy, wire
from net.iggy import Code, Operation

CLIENT = os.urandom(16)


def _prepare(op: int, entries: list[batch.BatchEntry], timestamp: int = 1000) -> bytes:
    header = wire.make_header(wire.Command.PREPARE, op=op, timestamp=timestamp + op,
                              request_count=len(entries))
    return wire.encode(header, batch.encode_batch(entries))


def _entry(request: int, operation: int, body: bytes, session: int = 0) -> batch.BatchEntry:
    return batch.BatchEntry(CLIENT, session, request, operation, 0, body)


def _request(operation: int, body: bytes = b"", code: int = 0, session: int = 1,
             request: int = 1) -> bytes:
    return iggy.request_frame(CLIENT, session, request, operation, body, code=code)


def _run(owner: Owner, record: bytes) -> Outputs:
    out = Outputs()
    owner.handle(memoryview(record), out)
    return out


@pytest.fixture
def owner(tmp_path) -> Owner:
    owner = Owner(MuxStateMachine(auth.hash_secret("root-pw", n_log2=10)),
                  snapshots=SnapshotStore(str(tmp_path)))
    out = _run(owner, records.apply(_prepare(1, [_entry(0, Operation.REGISTER,
                                                         sessions_wire.encode_register(0))])))
    op, [(client, request, operation, status, result)] = records.read_applied(
        memoryview(out.applied[0]))
    assert (op, client, status) == (1, CLIENT, 0)
    assert result == sessions_wire.register_result(0, 1)
    return owner


def test_committed_writes_apply_in_order_and_report_results(owner):
    body = streams_wire.encode_create_stream("orders", {})
    out = _run(owner, records.apply(_prepare(2, [_entry(1, Operation.CREATE_STREAM, body, 1)])))
    op, [(_, request, operation, status, result)] = records.read_applied(memoryview(out.applied[0]))
    assert (op, request, operation, status) == (2, 1, Operation.CREATE_STREAM, 0)
    assert b"orders" in result
    with pytest.raises(InvariantError):
        _run(owner, records.apply(_prepare(4, [])))


def test_reads_act_as_the_session_user_and_unknown_sessions_are_refused(owner):
    _run(owner, records.apply(_prepare(2, [_entry(1, Operation.CREATE_STREAM,
                                                  streams_wire.encode_create_stream("s1", {}), 1)])))
    out = _run(owner, records.query(5, _request(Operation.NON_REPLICATED, code=Code.GET_STREAMS)))
    conn, frame = records.read_conn_frame(memoryview(out.replies[0]))
    reply = iggy.parse_reply(bytes(frame), Operation.NON_REPLICATED)
    assert conn == 5 and reply.status == 0 and b"s1" in reply.payload
    out = _run(owner, records.query(5, _request(Operation.NON_REPLICATED, code=Code.GET_STREAMS,
                                                session=99)))
    _, frame = records.read_conn_frame(memoryview(out.replies[0]))
    assert iggy.parse_reply(bytes(frame), Operation.NON_REPLICATED).status == 40


def test_a_retry_is_answered_from_the_client_table_exactly_like_the_first_reply(owner):
    body = streams_wire.encode_create_stream("once", {})
    _run(owner, records.apply(_prepare(2, [_entry(1, Operation.CREATE_STREAM, body, 1)])))
    out = _run(owner, records.table_reply(3, _request(Operation.CREATE_STREAM, body)))
    _, frame = records.read_conn_frame(memoryview(out.replies[0]))
    reply = iggy.parse_reply(bytes(frame), Operation.CREATE_STREAM)
    assert reply.status == 0 and b"once" in reply.payload
    streams = owner.mux.query(Code.GET_STREAMS, b"", 0)[1]
    assert streams.count(b"once") == 1


def test_credentials_lookups_for_admission(owner):
    conn, found, user, active, blob = records.read_credentials(memoryview(
        _run(owner, records.credentials_query(4, Lookup.USERNAME, b"iggy")).replies[0]))
    assert (conn, found, user, active) == (4, True, 0, True)
    assert auth.verify_secret(bytes(blob), "root-pw")
    by_id = records.read_credentials(memoryview(
        _run(owner, records.credentials_query(4, Lookup.IDENTIFIER, identifier(0))).replies[0]))
    assert by_id[1] and by_id[2] == 0
    missing = records.read_credentials(memoryview(
        _run(owner, records.credentials_query(4, Lookup.USERNAME, b"nobody")).replies[0]))
    assert missing[1] is False
    no_token = records.read_credentials(memoryview(
        _run(owner, records.credentials_query(4, Lookup.TOKEN_LOCATOR, b"x" * 16)).replies[0]))
    assert no_token[1] is False


def _cut(owner: Owner, op: int) -> dict:
    """Checkpoint op: the owner forks a child and goes on; its sections once it is done."""
    assert _run(owner, records.checkpoint(op)).snapshot == []
    done = Outputs()
    assert owner.poll_checkpoint(done, wait=True) is False
    [record] = done.snapshot
    cut_op, _, _, path = records.read_sections_file(memoryview(record))
    assert cut_op == op
    with open(path, "rb") as source:
        return owner_mod.decode_sections(source.read())


def test_checkpoint_sections_restore_the_same_state_and_reuse_unchanged_sections(owner):
    _run(owner, records.apply(_prepare(2, [_entry(1, Operation.CREATE_STREAM,
                                                  streams_wire.encode_create_stream("c", {}), 1)])))
    sections = _cut(owner, 2)
    restored = MuxStateMachine()
    restored.restore({name: (version, data) for name, (version, data) in sections.items()})
    assert restored.digest() == owner.mux.digest()
    # A stream create changes the streams section (and the client table), not the users one.
    again = _run(owner, records.apply(_prepare(3, [_entry(2, Operation.CREATE_STREAM,
                                                          streams_wire.encode_create_stream("d", {}), 1)])))
    assert again.applied
    second = _cut(owner, 3)
    assert second["users"][1] is None
    assert second["streams"][1] is not None
    with pytest.raises(InvariantError):
        _run(owner, records.checkpoint(2))


def test_a_checkpoint_is_the_state_at_its_op_while_applies_go_on(owner):
    _run(owner, records.apply(_prepare(2, [_entry(1, Operation.CREATE_STREAM,
                                                  streams_wire.encode_create_stream("c", {}), 1)])))
    at_2 = owner.mux.digest()
    assert _run(owner, records.checkpoint(2)).snapshot == []
    # The child encodes from its image of op 2; the owner applies op 3 meanwhile.
    assert _run(owner, records.apply(_prepare(3, [_entry(
        2, Operation.CREATE_STREAM, streams_wire.encode_create_stream("d", {}), 1)]))).applied
    done = Outputs()
    owner.poll_checkpoint(done, wait=True)
    _, _, _, path = records.read_sections_file(memoryview(done.snapshot[0]))
    with open(path, "rb") as source:
        sections = owner_mod.decode_sections(source.read())
    restored = MuxStateMachine()
    restored.restore(sections)
    assert restored.digest() == at_2 != owner.mux.digest()
