"""Ring records between roles round-trip exactly (prefix fields and the frame after them)."""

from __future__ import annotations

from core.roles import records
from core.roles.records import Kind


def test_every_record_kind_round_trips():
    frame = b"\x01" * 300
    conn, user, rest = records.read_client_request(memoryview(records.client_request(7, 3, frame)))
    assert (conn, user, bytes(rest)) == (7, 3, frame)
    record = memoryview(records.peer_frame(2, frame))
    assert records.kind_of(record) == Kind.PEER_FRAME
    assert records.read_replica_frame(record)[0] == 2
    assert bytes(records.read_replica_frame(memoryview(records.send_peer(4, frame)))[1]) == frame
    for make, kind in ((records.client_frame, Kind.CLIENT_FRAME), (records.query, Kind.QUERY),
                       (records.table_reply, Kind.TABLE_REPLY)):
        record = memoryview(make(9, frame))
        assert records.kind_of(record) == kind
        conn, rest = records.read_conn_frame(record)
        assert conn == 9 and bytes(rest) == frame
    assert bytes(memoryview(records.apply(frame))[1:]) == frame
    results = [(b"c" * 16, 5, 128, 0, b"details"), (b"d" * 16, 1, 130, 1009, b"")]
    assert records.read_applied(memoryview(records.applied(77, results))) == (77, results)
    assert records.read_op(memoryview(records.checkpoint(2**40))) == 2**40
    query = records.read_credentials_query(memoryview(records.credentials_query(3, records.Lookup.USERNAME, b"bob")))
    assert query == (3, records.Lookup.USERNAME, b"bob")
    found = records.read_credentials(memoryview(records.credentials(4, True, 12, False, b"hash")))
    assert found[:4] == (4, True, 12, False) and bytes(found[4]) == b"hash"
    assert records.read_view(memoryview(records.view(17, 2, True))) == (17, 2, True)
    assert records.kind_of(records.broadcast(frame)) == Kind.BROADCAST


def test_journal_ring_records_round_trip():
    seq, op, frame = records.read_append(memoryview(records.append(9, 41, b"prepare")))
    assert (seq, op, bytes(frame)) == (9, 41, b"prepare")
    view, log_view, head, headers = records.read_persist_view(
        memoryview(records.persist_view(5, 4, 77, [b"h" * 256, b"i" * 256])))
    assert (view, log_view, head, len(headers)) == (5, 4, 77, 512)
    assert records.read_view_persisted(memoryview(records.view_persisted(5, 4))) == (5, 4)
    for make in (records.truncate, records.durable, records.checkpoint_done):
        assert records.read_op(memoryview(make(123))) == 123
