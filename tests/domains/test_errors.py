"""One test per error path of the catalogue: each code is provoked the way a client would, and
every code in domains.errors.CATALOGUE is covered (test_every_catalogue_code_is_exercised)."""

from __future__ import annotations

import pytest

from domains import errors as E
from domains import permissions as P
from domains import sessions_wire
from domains import streams as streams_mod
from domains import streams_wire as sw
from domains import users as users_mod
from domains import users_wire as uw
from domains.codec import U32, U64, U64_MAX, identifier, name8
from domains.errors import DomainError
from domains.mux import MuxStateMachine
from tests.domains.helpers import password_hash
from tests.domains.world import ALICE_CLIENT, BOB_CLIENT, ROOT_CLIENT, build, ok, topic_options

EXERCISED: set[int] = set()


def expect(code: int, result: tuple[int, bytes]) -> None:
    assert result == (code, b""), (code, result)
    EXERCISED.add(code)


def admit_error(code: int, operation: int, body: bytes) -> None:
    with pytest.raises(DomainError) as caught:
        MuxStateMachine.admit(operation, body)
    assert caught.value.code == code
    EXERCISED.add(code)


@pytest.fixture
def world():
    return build()


def test_invalid_command(world):
    admit_error(E.INVALID_COMMAND, 9999, b"")
    expect(E.INVALID_COMMAND, world.write(ROOT_CLIENT, 150, b""))
    assert world.mux.query(9999, b"", 0) == (E.INVALID_COMMAND, b"")


def test_invalid_format_and_identifier():
    admit_error(E.INVALID_FORMAT, 128, b"")
    admit_error(E.INVALID_FORMAT, 130, identifier(1) + b"x")  # trailing bytes
    admit_error(E.INVALID_FORMAT, 3, b"x")
    admit_error(E.INVALID_IDENTIFIER, 130, b"\x01\x03\x00\x00\x00")
    admit_error(E.INVALID_IDENTIFIER, 130, b"\x02\x00")
    admit_error(E.INVALID_IDENTIFIER, 130, b"\x07\x01x")


def test_feature_unavailable():
    admit_error(E.FEATURE_UNAVAILABLE, 138, b"")


def test_not_found_and_uniqueness(world):
    expect(E.STREAM_ID_NOT_FOUND, world.write(ROOT_CLIENT, 130, sw.encode_ids("nope")))
    expect(E.STREAM_ID_NOT_FOUND, world.write(ROOT_CLIENT, 132,
                                              sw.encode_create_topic(9, 1, "x", {})))
    assert world.mux.query(301, sw.encode_ids("nope"), 0) == (E.STREAM_ID_NOT_FOUND, b"")
    expect(E.TOPIC_ID_NOT_FOUND, world.write(ROOT_CLIENT, 134, sw.encode_ids(0, "nope")))
    assert world.mux.query(601, sw.encode_ids(0, 5), 0) == (E.TOPIC_ID_NOT_FOUND, b"")
    expect(E.CONSUMER_GROUP_ID_NOT_FOUND, world.write(ROOT_CLIENT, 140, sw.encode_ids(0, 0, 7)))
    expect(E.STREAM_NAME_ALREADY_EXISTS, world.write(ROOT_CLIENT, 128,
                                                     sw.encode_create_stream("s", {})))
    ok(world.write(ROOT_CLIENT, 128, sw.encode_create_stream("s2", {})))
    expect(E.STREAM_NAME_ALREADY_EXISTS, world.write(ROOT_CLIENT, 129,
                                                     sw.encode_update_stream("s2", "s", {})))
    expect(E.TOPIC_NAME_ALREADY_EXISTS, world.write(ROOT_CLIENT, 132,
                                                    sw.encode_create_topic(0, 1, "t", {})))
    ok(world.write(ROOT_CLIENT, 132, sw.encode_create_topic(0, 1, "t2", {})))
    expect(E.TOPIC_NAME_ALREADY_EXISTS, world.write(ROOT_CLIENT, 133,
                                                    sw.encode_update_topic(0, "t2", "t", {})))
    expect(E.CONSUMER_GROUP_NAME_ALREADY_EXISTS,
           world.write(ROOT_CLIENT, 139, sw.encode_create_group(0, 0, "g")))
    world.login(b"r2" * 8, 0)
    expect(E.CONSUMER_GROUP_MEMBER_NOT_FOUND, world.write(b"r2" * 8, 149, sw.encode_ids(0, 0, 0)))
    expect(E.RESOURCE_NOT_FOUND, world.write(ROOT_CLIENT, 143, identifier("nobody")))
    expect(E.RESOURCE_NOT_FOUND, world.write(ROOT_CLIENT, 147, name8("nope")))
    # Single-object reads answer "not found" with an empty body, not an error.
    assert world.mux.query(200, sw.encode_ids("nope"), 0) == (0, b"")
    assert world.mux.query(300, sw.encode_ids(0, "nope"), 0) == (0, b"")
    assert world.mux.query(600, sw.encode_ids(0, 0, "nope"), 0) == (0, b"")
    assert world.mux.query(31, identifier("nobody"), 0) == (0, b"")


def test_name_bounds():
    admit_error(E.INVALID_STREAM_NAME, 128, b"\x00")
    admit_error(E.INVALID_TOPIC_NAME, 132, sw.encode_create_topic(0, 1, "x", {})[:-2] + b"\x00")
    admit_error(E.INVALID_CONSUMER_GROUP_NAME, 139, sw.encode_ids(0, 0) + b"\x00")
    admit_error(E.INVALID_USERNAME, 141, uw.encode_create_user("ab", b"h", 1, None, {}))
    admit_error(E.INVALID_USERNAME, 142, identifier(1) + b"\x01" + name8("x" * 51) + b"\x00")
    admit_error(E.INVALID_PASSWORD, 141, uw.encode_create_user("abc", b"", 1, None, {}))
    with pytest.raises(DomainError) as caught:
        uw.decode_create_user_request(name8("abc") + name8("pw") + b"\x01\x00")
    assert caught.value.code == E.INVALID_PASSWORD
    admit_error(E.INVALID_USER_STATUS, 141, uw.encode_create_user("abc", b"h", 3, None, {}))
    admit_error(E.INVALID_PAT_NAME, 146, uw.encode_create_token("ab", 0, b"h"))
    admit_error(E.INVALID_PAT_NAME, 147, name8("x" * 31))
    admit_error(E.INVALID_PAT, 146, uw.encode_create_token("abc", 0, b""))
    admit_error(E.INVALID_PAT, 1, sessions_wire.encode_register(0)[:4] + b"\x01\x00")


def test_partition_bounds(world):
    admit_error(E.TOO_MANY_PARTITIONS, 132, sw.encode_create_topic(0, 1001, "x", {}))
    admit_error(E.INVALID_PARTITIONS_COUNT, 136, sw.encode_partitions(0, 0, 0))
    admit_error(E.INVALID_PARTITIONS_COUNT, 137, sw.encode_partitions(0, 0, 1001))
    expect(E.INVALID_PARTITIONS_COUNT, world.write(ROOT_CLIENT, 137, sw.encode_partitions(0, 0, 4)))
    for _ in range(streams_mod.PARTITIONS_PER_TOPIC_MAX // 1000 - 1):
        ok(world.write(ROOT_CLIENT, 136, sw.encode_partitions(0, 0, 1000)))
    expect(E.TOO_MANY_PARTITIONS, world.write(ROOT_CLIENT, 136, sw.encode_partitions(0, 0, 998)))


def test_option_errors():
    admit_error(E.INVALID_OPTION_VALUE, 132, sw.encode_create_topic(
        0, 1, "x", topic_options(compression_algorithm="zip")))
    admit_error(E.INVALID_OPTION_VALUE, 132, sw.encode_create_topic(
        0, 1, "x", {"segment_size": (2, b"big")}))
    bad_kind = b"\x01" + U32.pack(1) + b"k" + b"\x02" + U32.pack(1) + b"v"
    admit_error(E.UNSUPPORTED_OPTION_KEY, 128, name8("s") + bad_kind)
    free_int = b"\x02" + U32.pack(1) + b"k" + b"\x0b" + U32.pack(4) + U32.pack(1)
    admit_error(E.UNSUPPORTED_OPTION_KEY, 128, name8("s") + free_int)
    pair = b"\x02" + U32.pack(1) + b"k" + b"\x02" + U32.pack(1) + b"v"
    admit_error(E.OPTIONS_LIMITS_EXCEEDED, 128, name8("s") + pair + pair)
    many = b"".join(b"\x02" + U32.pack(5) + b"k%04d" % i + b"\x02" + U32.pack(1) + b"v"
                    for i in range(1025))
    admit_error(E.OPTIONS_LIMITS_EXCEEDED, 128, name8("s") + many)
    sized = topic_options(segment_size=1000, max_topic_size=10)
    admit_error(E.INVALID_TOPIC_SIZE, 132, sw.encode_create_topic(0, 1, "x", sized))


def test_invalid_topic_size_on_update(world):
    ok(world.write(ROOT_CLIENT, 133, sw.encode_update_topic(0, 0, "t",
                                                            topic_options(segment_size=1000))))
    expect(E.INVALID_TOPIC_SIZE, world.write(ROOT_CLIENT, 133, sw.encode_update_topic(
        0, 0, "t", topic_options(max_topic_size=10))))


def test_limits(world, monkeypatch):
    monkeypatch.setattr(streams_mod, "STREAMS_MAX", 1)
    expect(E.TOO_MANY_STREAMS, world.write(ROOT_CLIENT, 128, sw.encode_create_stream("x", {})))
    monkeypatch.setattr(streams_mod, "TOPICS_PER_STREAM_MAX", 1)
    expect(E.TOO_MANY_TOPICS, world.write(ROOT_CLIENT, 132, sw.encode_create_topic(0, 0, "x", {})))
    monkeypatch.setattr(streams_mod, "GROUPS_PER_TOPIC_MAX", 1)
    expect(E.TOO_MANY_CONSUMER_GROUPS, world.write(ROOT_CLIENT, 139,
                                                   sw.encode_create_group(0, 0, "g2")))
    monkeypatch.setattr(users_mod, "USERS_MAX", 3)
    expect(E.USERS_LIMIT_REACHED, world.write(ROOT_CLIENT, 141,
                                              uw.encode_create_user("carol", b"h", 1, None, {})))


def test_user_errors(world):
    expect(E.USER_ALREADY_EXISTS, world.write(ROOT_CLIENT, 141,
                                              uw.encode_create_user("alice", b"h", 1, None, {})))
    expect(E.USER_ALREADY_EXISTS, world.write(ROOT_CLIENT, 142,
                                              uw.encode_update_user("bob", "alice", None, {})))
    expect(E.CANNOT_DELETE_USER, world.write(ROOT_CLIENT, 143, identifier(0)))
    expect(E.CANNOT_CHANGE_PERMISSIONS, world.write(ROOT_CLIENT, 145,
                                                    uw.encode_update_permissions(0, None)))


def test_token_errors(world):
    expect(E.INVALID_PAT_EXPIRY, world.write(ALICE_CLIENT, 146,
                                             uw.encode_create_token("tok", U64_MAX, b"h1")))
    ok(world.write(ALICE_CLIENT, 146, uw.encode_create_token("tok", 0, b"h1")))
    expect(E.PAT_ALREADY_EXISTS, world.write(ALICE_CLIENT, 146,
                                             uw.encode_create_token("tok", 0, b"h2")))
    for i in range(1, users_mod.TOKENS_PER_USER_MAX):
        ok(world.write(ALICE_CLIENT, 146, uw.encode_create_token(f"tok{i}", 0, b"t%d" % i)))
    expect(E.PATS_LIMIT_REACHED, world.write(ALICE_CLIENT, 146,
                                             uw.encode_create_token("more", 0, b"hm")))


def test_expired_tokens_do_not_count_and_are_dropped(world):
    for i in range(users_mod.TOKENS_PER_USER_MAX):
        ok(world.write(ALICE_CLIENT, 146, uw.encode_create_token(f"tok{i}", 10, b"t%d" % i),
                       timestamp=100))
    ok(world.write(ALICE_CLIENT, 146, uw.encode_create_token("fresh", 0, b"new"), timestamp=200))
    assert world.mux.users.users[1].tokens.keys() == {"fresh"}
    assert world.mux.token_by_locator(b"t0") is None


def test_authorization(world):
    expect(E.UNAUTHORIZED, world.write(ALICE_CLIENT, 128, sw.encode_create_stream("x", {})))
    expect(E.UNAUTHORIZED, world.write(ALICE_CLIENT, 130, sw.encode_ids(0)))
    expect(E.UNAUTHORIZED, world.write(ALICE_CLIENT, 141,
                                       uw.encode_create_user("carol", b"h", 1, None, {})))
    expect(E.UNAUTHORIZED, world.write(ALICE_CLIENT, 144, uw.encode_change_password(2, b"h")))
    assert world.mux.query(201, b"", 1) == (E.UNAUTHORIZED, b"")
    assert world.mux.query(32, b"", 1) == (E.UNAUTHORIZED, b"")
    # bob: poll on stream 0 and manage on topic 0 (inheritance: topic-level grant).
    ok(world.write(BOB_CLIENT, 136, sw.encode_partitions(0, 0, 1)))
    expect(E.UNAUTHORIZED, world.write(BOB_CLIENT, 129, sw.encode_update_stream(0, "z", {})))
    ok(world.write(BOB_CLIENT, 139, sw.encode_create_group(0, 0, "bobs")))
    assert world.mux.query(200, sw.encode_ids(0), 2) == (E.UNAUTHORIZED, b"")
    # Changing one's own password needs no permission.
    ok(world.write(ALICE_CLIENT, 144, uw.encode_change_password("alice", b"h")))
    # An inactive or deleted acting user may do nothing.
    ok(world.write(ROOT_CLIENT, 142, uw.encode_update_user(1, None, 2, {})))
    expect(E.UNAUTHORIZED, world.write(ALICE_CLIENT, 144, uw.encode_change_password(1, b"h")))


def test_session_errors(world):
    mux = world.mux
    expect(E.UNAUTHENTICATED, mux.apply(world.op + 1, 1, b"?" * 16, 1, 1, 0, 128, b""))
    world.op += 1
    session, request, _ = world.sessions[ROOT_CLIENT]
    expect(E.STALE_CLIENT, mux.apply(world.op + 1, 1, ROOT_CLIENT, session + 1000, request + 1, 0,
                                     128, sw.encode_create_stream("x", {})))
    world.op += 1
    # Retries: the last request is answered from the table, an older one with 59.
    last = world.write(ROOT_CLIENT, 128, sw.encode_create_stream("x", {}))
    request = world.sessions[ROOT_CLIENT][1]
    assert mux.client_reply(ROOT_CLIENT, request) == last
    assert mux.client_reply(ROOT_CLIENT, request + 1) is None
    assert mux.client_reply(ROOT_CLIENT, request - 1) == (E.REQUEST_ALREADY_APPLIED, b"")
    EXERCISED.add(E.REQUEST_ALREADY_APPLIED)
    world.op += 1
    assert mux.apply(world.op, 1, ROOT_CLIENT, session, request, 0, 128,
                     sw.encode_create_stream("x", {})) == last  # not applied twice
    world.op += 1
    expect(E.REQUEST_ALREADY_APPLIED, mux.apply(world.op, 1, ROOT_CLIENT, session, 1, 0, 128,
                                                sw.encode_create_stream("y", {})))


def test_register_errors(world):
    mux = world.mux
    expect(E.INVALID_CREDENTIALS, world.login(b"n" * 16, 42))
    ok(world.write(ROOT_CLIENT, 142, uw.encode_update_user(1, None, 2, {})))
    expect(E.INVALID_CREDENTIALS, world.login(b"i" * 16, 1))
    ok(world.write(BOB_CLIENT, 146, uw.encode_create_token("tok", 50, b"bobtok"), timestamp=100))
    world.op += 1
    assert mux.apply(world.op, 120, b"t" * 16, 0, 0, 2, 1,
                     sessions_wire.encode_register(2, b"bobtok"))[0] == 0
    world.op += 1
    expect(E.INVALID_CREDENTIALS, mux.apply(world.op, 150, b"u" * 16, 0, 0, 2, 1,
                                            sessions_wire.encode_register(2, b"bobtok")))
    world.op += 1
    expect(E.INVALID_CREDENTIALS, mux.apply(world.op, 120, b"v" * 16, 0, 0, 0, 1,
                                            sessions_wire.encode_register(0, b"bobtok")))


def test_a_login_verified_against_a_changed_password_is_refused(world):
    # A gateway verifies against its replica's state, which may lag a ChangePassword: the
    # Register names the hash it verified against and apply refuses a stale one.
    mux = world.mux
    old = mux.user_credentials(2)[2]
    world.op += 1
    assert mux.apply(world.op, 1, b"p" * 16, 0, 0, 2, 1,
                     sessions_wire.encode_register(2, password_hash=old))[0] == 0
    ok(world.write(ROOT_CLIENT, 144, uw.encode_change_password(2, password_hash("new-pw"))))
    world.op += 1
    expect(E.INVALID_CREDENTIALS, mux.apply(world.op, 1, b"q" * 16, 0, 0, 2, 1,
                                            sessions_wire.encode_register(2, password_hash=old)))
    world.op += 1
    assert mux.apply(world.op, 1, b"r" * 16, 0, 0, 2, 1, sessions_wire.encode_register(
        2, password_hash=password_hash("new-pw")))[0] == 0
    # An unknown credential kind is a malformed body.
    admit_error(E.INVALID_FORMAT, 1, U32.pack(2) + b"\x07")


def test_register_retry_is_answered_from_the_table(world):
    mux = world.mux
    first = world.login(b"c" * 16, 1)
    world.op += 1
    assert mux.apply(world.op, 1, b"c" * 16, 0, 0, 1, 1, sessions_wire.encode_register(1)) == first
    world.write(b"c" * 16, 131, sw.encode_ids(0))
    world.op += 1
    expect(E.REQUEST_ALREADY_APPLIED, mux.apply(world.op, 1, b"c" * 16, 0, 0, 1, 1,
                                                sessions_wire.encode_register(1)))


def test_password_hash_helper_is_stable():
    assert password_hash("x") == password_hash("x") != password_hash("y")
    assert P.allowed(None, P.MANAGE_USERS)
    assert U64.pack(1) == b"\x01" + b"\x00" * 7


def test_tokens_are_found_by_locator_and_must_match_whole(world):
    from core import auth
    token, locator, secret = auth.mint_token()
    assert len(locator) == uw.TOKEN_LOCATOR_SIZE  # admission's locators fit the index
    record = locator + b"salted-hash-of-the-secret"
    ok(world.write(BOB_CLIENT, 146, uw.encode_create_token("tok", 0, record)))
    assert world.mux.token_by_locator(locator) == (2, 1, record, 0)
    # Another token with the same locator is refused, whoever asks.
    expect(E.PAT_ALREADY_EXISTS, world.write(ALICE_CLIENT, 146, uw.encode_create_token(
        "tok", 0, locator + b"other")))
    # A Register naming the locator with another hash is refused at apply.
    world.op += 1
    expect(E.INVALID_CREDENTIALS, world.mux.apply(world.op, 1, b"z" * 16, 0, 0, 2, 1,
                                                  sessions_wire.encode_register(2, locator + b"x")))
    world.op += 1
    assert world.mux.apply(world.op, 1, b"z" * 16, 0, 0, 2, 1,
                           sessions_wire.encode_register(2, record))[0] == 0
    assert secret.encode() not in b"".join(d for _, d in world.mux.snapshot().values())


def test_every_catalogue_code_is_exercised():
    """Runs last in this module (pytest keeps file order): every code has its test above."""
    assert EXERCISED == set(E.CATALOGUE), sorted(set(E.CATALOGUE) - EXERCISED)


def test_a_forged_user_stamp_cannot_act_as_root(world):
    # The SDK sends user_id 0 (root) in every header: the session's user must act, not it.
    session, request, _ = world.sessions[ALICE_CLIENT]
    status, _ = world.mux.apply(world.op + 1, 1, ALICE_CLIENT, session, request + 1, 0, 128,
                                sw.encode_create_stream("forged", {}))
    assert status == E.UNAUTHORIZED
    assert world.mux.query(201, b"", 0)[1].find(b"forged") == -1
