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
    assert records.read_client_frame(memoryview(records.client_frame(9, frame)))[0] == 9
    routes, prepare = records.read_commit(memoryview(records.commit(frame, [(0, 5), (3, 11)])))
    assert routes == {0: 5, 3: 11} and bytes(prepare) == frame
    assert records.read_read_request(memoryview(records.read_request(1, 2, 99, frame)))[:3] == (1, 2, 99)
    query = records.read_credentials_query(memoryview(records.credentials_query(3, records.Lookup.USERNAME, b"bob")))
    assert query == (3, records.Lookup.USERNAME, b"bob")
    found = records.read_credentials(memoryview(records.credentials(4, True, 12, False, b"hash")))
    assert found[:4] == (4, True, 12, False) and bytes(found[4]) == b"hash"
    assert records.read_op(memoryview(records.applied(2**40))) == 2**40
    assert records.read_view(memoryview(records.view(17, 2, True))) == (17, 2, True)
    assert records.kind_of(records.broadcast(frame)) == Kind.BROADCAST
