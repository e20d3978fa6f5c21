"""Failed-login throttling, per account and per connection, without sockets (sans-IO gateway)."""

from __future__ import annotations

import os

from core import auth
from net import iggy, wire
from net.gateway import STATUS_LOGIN_THROTTLED, STATUS_OP_TOO_LARGE, Close, Gateway, Job, Reply, \
    ToOwner, ToReplication
from net.iggy import EvictionReason, Operation
from net.throttle import CONN_FAILURES_MAX, FREE_FAILURES, LoginThrottle

CLIENT = os.urandom(16)
STORED = auth.hash_secret("right-password", n_log2=10)


class _Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _gateway(clock: _Clock, **kwargs) -> Gateway:
    return Gateway(body_size_max=1 << 16, requests_in_flight_max=4, roster=lambda: b"",
                   has_primary=lambda: True, clock=clock, **kwargs)


def _attempt(gateway: Gateway, conn: int, username: str, password: str) -> list:
    """One password login through lookup and verify; returns the final actions."""
    body = iggy.login_body(username, password)
    actions = gateway.on_frame(conn, memoryview(iggy.request_frame(
        CLIENT, 0, 0, Operation.REGISTER, body)))
    if len(actions) != 1 or not isinstance(actions[0], ToOwner):
        return actions
    [job] = gateway.on_credentials(conn, True, 7, True, STORED)
    assert isinstance(job, Job)
    return gateway.job_done(conn, job.fn(*job.args))


def _status(action: Reply) -> int:
    return wire.decode_header(action.frame).status


def _reason(action: Reply) -> int:
    return wire.decode_header(action.frame).reason


def test_an_account_is_throttled_after_its_free_failures_and_the_delay_doubles():
    clock = _Clock()
    gateway = _gateway(clock)
    for conn in range(FREE_FAILURES):  # one connection each: only the account bound applies
        gateway.opened(conn)
        [evicted] = _attempt(gateway, conn, "alice", "guess")
        assert _reason(evicted) == EvictionReason.INVALID_CREDENTIALS
    gateway.opened(100)
    # Even the right password is refused while throttled, and before any lookup or hash.
    [throttled] = _attempt(gateway, 100, "alice", "right-password")
    assert isinstance(throttled, Reply) and _status(throttled) == STATUS_LOGIN_THROTTLED
    assert gateway.counters.logins_throttled == 1
    # Another account is not affected.
    [other] = _attempt(gateway, 100, "bob", "right-password")
    assert isinstance(other, ToReplication)
    clock.now += 1.01  # the first delay has passed: one more try, which fails
    gateway.opened(101)
    [evicted] = _attempt(gateway, 101, "alice", "guess")
    assert _reason(evicted) == EvictionReason.INVALID_CREDENTIALS
    clock.now += 1.5  # the delay doubled to 2 s: still refused
    gateway.opened(102)
    [throttled] = _attempt(gateway, 102, "alice", "right-password")
    assert _status(throttled) == STATUS_LOGIN_THROTTLED
    clock.now += 0.6
    [ok] = _attempt(gateway, 102, "alice", "right-password")
    assert isinstance(ok, ToReplication)


def test_a_successful_login_forgets_the_accounts_failures():
    clock = _Clock()
    gateway = _gateway(clock)
    for conn in range(FREE_FAILURES - 1):
        gateway.opened(conn)
        _attempt(gateway, conn, "alice", "guess")
    gateway.opened(50)
    [ok] = _attempt(gateway, 50, "alice", "right-password")
    header = wire.decode_client_frame(memoryview(iggy.request_frame(
        CLIENT, 0, 0, Operation.REGISTER, b"x")), 1 << 16)[0]
    gateway.on_reply(50, memoryview(iggy.reply_frame(header, body=iggy.login_reply_body(7, 9))))
    assert len(gateway.throttle) == 0
    gateway.opened(51)
    [evicted] = _attempt(gateway, 51, "alice", "guess")
    assert _reason(evicted) == EvictionReason.INVALID_CREDENTIALS


def test_a_connection_is_closed_after_its_failed_logins_whatever_the_accounts():
    clock = _Clock()
    gateway = _gateway(clock)
    gateway.opened(1)
    for index in range(CONN_FAILURES_MAX):
        [evicted] = _attempt(gateway, 1, f"user-{index}", "guess")
        assert _reason(evicted) == EvictionReason.INVALID_CREDENTIALS
    [close] = _attempt(gateway, 1, "someone-else", "right-password")
    assert isinstance(close, Close) and "failed logins" in close.reason
    assert gateway.counters.closed_login_failures == 1


def test_unknown_usernames_are_throttled_like_real_ones():
    clock = _Clock()
    gateway = _gateway(clock)
    for conn in range(FREE_FAILURES):
        gateway.opened(conn)
        gateway.on_frame(conn, memoryview(iggy.request_frame(
            CLIENT, 0, 0, Operation.REGISTER, iggy.login_body("ghost", "pw"))))
        [evicted] = gateway.on_credentials(conn, False, 0, False, b"")
        assert _reason(evicted) == EvictionReason.INVALID_CREDENTIALS
    gateway.opened(99)
    [throttled] = gateway.on_frame(99, memoryview(iggy.request_frame(
        CLIENT, 0, 0, Operation.REGISTER, iggy.login_body("ghost", "pw"))))
    assert _status(throttled) == STATUS_LOGIN_THROTTLED


def test_token_guessing_is_throttled_per_locator():
    clock = _Clock()
    gateway = _gateway(clock)
    token, locator, secret = auth.mint_token()
    record = locator + auth.hash_secret(secret, n_log2=10)
    forged = token[:token.index(".") + 1] + "not-the-secret"
    for conn in range(FREE_FAILURES):
        gateway.opened(conn)
        gateway.on_frame(conn, memoryview(iggy.request_frame(
            CLIENT, 0, 0, Operation.REGISTER, iggy.token_login_body(forged))))
        [job] = gateway.on_credentials(conn, True, 3, True, record)
        [evicted] = gateway.job_done(conn, job.fn(*job.args))
        assert _reason(evicted) == EvictionReason.INVALID_TOKEN
    gateway.opened(99)
    [throttled] = gateway.on_frame(99, memoryview(iggy.request_frame(
        CLIENT, 0, 0, Operation.REGISTER, iggy.token_login_body(token))))
    assert _status(throttled) == STATUS_LOGIN_THROTTLED


def test_the_account_table_is_bounded():
    throttle = LoginThrottle(accounts_max=100)
    for index in range(10_000):
        throttle.failed(f"user:{index}".encode(), 1.0)
    assert len(throttle) == 100
    for _ in range(FREE_FAILURES):
        throttle.failed(b"user:victim", 2.0)
    assert throttle.wait_s(b"user:victim", 2.0) > 0


def test_a_write_over_the_op_size_bound_is_refused_with_its_own_code():
    gateway = _gateway(_Clock(), op_size_max=64)
    gateway.opened(1)
    header = wire.decode_client_frame(memoryview(iggy.request_frame(
        CLIENT, 0, 0, Operation.REGISTER, b"x")), 1 << 16)[0]
    gateway.on_reply(1, memoryview(iggy.reply_frame(header, body=iggy.login_reply_body(7, 9))))
    [refused] = gateway.on_frame(1, memoryview(iggy.request_frame(
        CLIENT, 9, 1, Operation.CREATE_STREAM, iggy.name8("s" * 200))))
    reply = iggy.parse_reply(refused.frame, Operation.CREATE_STREAM)
    assert reply.status == STATUS_OP_TOO_LARGE and gateway.counters.refused_op_size == 1
    [fits] = gateway.on_frame(1, memoryview(iggy.request_frame(
        CLIENT, 9, 1, Operation.CREATE_STREAM, iggy.name8("small"))))
    assert isinstance(fits, ToReplication)
