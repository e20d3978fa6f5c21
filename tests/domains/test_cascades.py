"""Cascades: each removes exactly what it owns across domains, all or nothing."""

from __future__ import annotations

import pytest

from domains import permissions as P
from domains import streams_wire as sw
from domains import users_wire as uw
from domains.codec import identifier
from domains.errors import UNAUTHORIZED, DomainError
from tests.domains.world import ALICE_CLIENT, BOB_CLIENT, ROOT_CLIENT, build, ok


def members(mux, sid=0, tid=0, gid=0):
    return set(mux.streams.streams[sid].topics[tid].groups[gid].members)


def test_delete_stream_removes_topics_partitions_groups_memberships_and_permissions():
    world = build()
    mux = world.mux
    assert mux.counts()["partitions"] == 3 and mux.counts()["consumer_groups"] == 1
    assert mux.users.users[2].perms[1].keys() == {0}
    ok(world.write(ROOT_CLIENT, 130, sw.encode_ids("s")))
    assert mux.counts() == {"streams": 0, "topics": 0, "partitions": 0, "consumer_groups": 0,
                            "users": 3, "clients": 3}
    assert mux.streams.memberships == {}
    assert mux.users.users[2].perms == (0, {})
    assert mux.users.stream_grants == {}
    # The id is free again and a new stream "s" starts clean.
    body = ok(world.write(ROOT_CLIENT, 128, sw.encode_create_stream("s", {})))
    assert body[:4] == b"\0\0\0\0"
    assert mux.query(200, sw.encode_ids(0), 2) == (UNAUTHORIZED, b"")


def test_delete_topic_removes_partitions_groups_memberships_and_topic_permissions():
    world = build()
    mux = world.mux
    ok(world.write(ROOT_CLIENT, 132, sw.encode_create_topic(0, 2, "t2", {})))
    ok(world.write(ROOT_CLIENT, 134, sw.encode_ids(0, "t")))
    assert mux.counts()["partitions"] == 2 and mux.counts()["consumer_groups"] == 0
    assert mux.streams.memberships == {}
    assert mux.users.users[2].perms == (0, {0: (P.S_POLL, {})})  # stream grant survives
    ok(world.write(ROOT_CLIENT, 132, sw.encode_create_topic(0, 1, "again", {})))
    assert mux.streams.streams[0].topics.keys() == {0, 1}  # lowest free id reused


def test_delete_user_removes_tokens_sessions_memberships_and_permissions():
    world = build()
    mux = world.mux
    ok(world.write(BOB_CLIENT, 146, uw.encode_create_token("tok", 0, b"bobtok")))
    assert mux.token_by_locator(b"bobtok") == (2, 1, b"bobtok", 0)
    ok(world.write(ROOT_CLIENT, 143, identifier("bob")))
    assert mux.token_by_locator(b"bobtok") is None
    assert mux.lookup_session(BOB_CLIENT, world.sessions[BOB_CLIENT][0]) is None
    assert members(mux) == {ROOT_CLIENT}
    assert mux.users.stream_grants == {}
    # A new user takes the lowest free id (2) and inherits nothing of bob's.
    ok(world.write(ROOT_CLIENT, 141, uw.encode_create_user("carol", b"h", 1, None, {})))
    assert mux.users.users[2].perms is None and mux.users.users[2].tokens == {}


def test_logout_and_eviction_leave_groups():
    world = build(clients_max=3)
    mux = world.mux
    assert mux.client_info(BOB_CLIENT) == (2, world.sessions[BOB_CLIENT][0], [(0, 0, 0)])
    assert mux.sessions.clients[BOB_CLIENT].number == 3
    ok(world.write(BOB_CLIENT, 3, b""))
    assert mux.client_info(BOB_CLIENT) is None
    assert members(mux) == {ROOT_CLIENT} and BOB_CLIENT not in mux.sessions.clients
    world.login(b"n" * 16, 1)  # the table (bound 3) now holds R, A and n
    world.login(b"m" * 16, 1)  # evicts the oldest session: root's client R
    assert ROOT_CLIENT not in mux.sessions.clients
    assert members(mux) == set() and mux.streams.memberships == {}
    assert len(mux.sessions.clients) == 3


def test_deleting_a_group_forgets_its_members():
    world = build()
    ok(world.write(ROOT_CLIENT, 140, sw.encode_ids(0, 0, "g")))
    assert world.mux.streams.memberships == {}
    ok(world.write(ROOT_CLIENT, 139, sw.encode_create_group(0, 0, "g")))
    assert world.mux.streams.streams[0].topics[0].groups.keys() == {1}  # ids never reused


@pytest.mark.parametrize("operation, body", [
    (130, sw.encode_ids(0)),
    (134, sw.encode_ids(0, 0)),
])
def test_a_cascade_failing_validation_halfway_leaves_every_domain_untouched(operation, body,
                                                                            monkeypatch):
    world = build()
    mux = world.mux
    before = {name: data for name, (_, data) in mux.snapshot().items()}

    def refuse(sid):
        raise DomainError(UNAUTHORIZED)

    # The streams domain has validated the delete; the users domain (second) refuses.
    monkeypatch.setattr(mux.users, "prepare_forget_stream", refuse)
    status, _ = world.write(ROOT_CLIENT, operation, body)
    assert status == UNAUTHORIZED
    after = {name: data for name, (_, data) in mux.snapshot().items()}
    assert after["streams"] == before["streams"]
    assert after["users"] == before["users"]
    assert mux.counts()["partitions"] == 3 and members(mux) == {ROOT_CLIENT, BOB_CLIENT}


def test_partition_assignment_is_recomputed_on_every_change():
    world = build()
    mux = world.mux

    def assignment():
        body = mux.query(600, sw.encode_ids(0, 0, 0), 0)[1]
        return sw.assignment(sorted(mux.streams.streams[0].topics[0].groups[0].members.values()),
                             mux.streams.streams[0].topics[0].partitions), body

    (owned, body) = assignment()
    root_member, bob_member = 1, 3  # registration numbers: root, then alice, then bob
    assert owned == [(root_member, [0, 2]), (bob_member, [1])]
    ok(world.write(ROOT_CLIENT, 136, sw.encode_partitions(0, 0, 2)))
    assert assignment()[0] == [(root_member, [0, 2, 4]), (bob_member, [1, 3])]
    ok(world.write(BOB_CLIENT, 149, sw.encode_ids(0, 0, 0)))
    assert assignment()[0] == [(root_member, [0, 1, 2, 3, 4])]
    assert ALICE_CLIENT not in mux.streams.memberships


def test_requests_of_one_prepare_share_its_op_and_get_distinct_member_ids():
    """A prepare carries a batch: every entry is applied with the prepare's op."""
    from domains import sessions_wire
    world = build()
    mux = world.mux
    world.op += 1
    op = world.op
    first, second = b"1" * 16, b"2" * 16
    for client in (first, second):
        assert mux.apply(op, 5, client, 0, 0, 0, 1, sessions_wire.encode_register(0)) == (
            0, sessions_wire.register_result(0, op))
    for client in (first, second):
        assert mux.apply(op + 1, 6, client, op, 1, 0, 148, sw.encode_ids(0, 0, 0)) == (0, b"")
    ids = sorted(mux.streams.streams[0].topics[0].groups[0].members.values())
    assert len(set(ids)) == len(ids) == 4
