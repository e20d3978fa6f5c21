"""A small populated state shared by the error-path and cascade tests."""

from __future__ import annotations

from domains import permissions as P
from domains import streams_wire as sw
from domains import users_wire as uw
from domains.codec import U64
from domains.mux import MuxStateMachine
from tests.domains.helpers import Driver, password_hash

ROOT_CLIENT = b"R" * 16
ALICE_CLIENT = b"A" * 16
BOB_CLIENT = b"B" * 16


def topic_options(**values) -> dict:
    options = {}
    for key, value in values.items():
        if isinstance(value, str):
            options[key] = (2, value.encode())
        else:
            options[key] = (12, U64.pack(value))
    return options


def build(clients_max: int = 10_000) -> Driver:
    """root (client R) owns stream "s" (0) with topic "t" (0, 3 partitions) and group "g" (0);
    alice (user 1, client A) has no permissions; bob (user 2, client B) may poll stream 0 and
    manage topic 0 of it; R and B are members of group g."""
    driver = Driver(MuxStateMachine(password_hash("rootpw"), clients_max=clients_max))
    driver.login(ROOT_CLIENT, 0)
    ok(driver.write(ROOT_CLIENT, 128, sw.encode_create_stream("s", {})))
    ok(driver.write(ROOT_CLIENT, 132, sw.encode_create_topic("s", 3, "t", {})))
    ok(driver.write(ROOT_CLIENT, 139, sw.encode_create_group("s", "t", "g")))
    ok(driver.write(ROOT_CLIENT, 141, uw.encode_create_user(
        "alice", password_hash("alicepw"), 1, None, {})))
    bob_perms = (0, {0: (P.S_POLL, {0: P.T_MANAGE})})
    ok(driver.write(ROOT_CLIENT, 141, uw.encode_create_user(
        "bob", password_hash("bobpw"), 1, bob_perms, {})))
    driver.login(ALICE_CLIENT, 1)
    driver.login(BOB_CLIENT, 2)
    ok(driver.write(ROOT_CLIENT, 148, sw.encode_ids("s", "t", "g")))
    ok(driver.write(BOB_CLIENT, 148, sw.encode_ids(0, 0, 0)))
    return driver


def ok(result: tuple[int, bytes]) -> bytes:
    status, body = result
    assert status == 0, status
    return body
