"""Model test: the plain reference model (model.py) and the domains agree on the status and
the decoded result of every step of long random sequences."""

from __future__ import annotations

import random

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from domains.mux import MuxStateMachine
from tests.domains import decode
from tests.domains.gen import random_steps
from tests.domains.model import Model
from tests.domains.runner import Runner

CLIENTS_MAX = 5  # small, so session eviction happens in every long sequence

RESULT_DECODERS = {
    "create_stream": decode.stream_details, "create_topic": decode.topic_details,
    "create_group": decode.group_details, "create_user": decode.user_details,
    "get_stream": decode.stream_details, "get_streams": decode.streams_list,
    "get_topic": decode.topic_details, "get_topics": decode.topics_list,
    "get_group": decode.group_details, "get_groups": decode.groups_list,
    "get_user": decode.user_details, "get_users": decode.users_list,
    "get_tokens": decode.tokens_list, "login": decode.register,
}
LISTS = {"get_streams", "get_groups", "get_users", "get_tokens"}


def _decoded(kind: str, status: int, body: bytes):
    if status != 0:
        assert body == b""
        return None
    decoder = RESULT_DECODERS.get(kind)
    if decoder is None:
        assert body == b"", kind
        return None
    if not body:
        return [] if kind in LISTS else None
    return decoder(body)


def run_against_model(seed: int, count: int) -> int:
    steps = random_steps(random.Random(seed), count)
    runner = Runner(MuxStateMachine(clients_max=CLIENTS_MAX))
    model = Model(CLIENTS_MAX)
    last_kind: dict[bytes, str] = {}
    agreed = 0
    for index, step in enumerate(steps):
        ctx = runner.context(step)
        if ctx is None:
            continue
        op, timestamp, client, user, request = ctx
        status, body = runner.run(step)
        kind = step[0]
        if kind in ("login", "login_token"):
            token = step[2] if kind == "login_token" else None
            want = model.login(op, timestamp, client, user, token)
            last_kind[client] = "login"
            result_kind = "login"
        elif kind == "write":
            want = model.write(op, timestamp, client, request, step[2], step[3])
            result_kind = step[2]
            if client in model.sessions:
                last_kind[client] = result_kind
        elif kind == "retry":
            want = model.retry(client, request)
            result_kind = last_kind.get(client, "login")
        else:
            want = model.read(user, step[2], step[3])
            result_kind = step[2]
        got = (status, _decoded(result_kind, status, body))
        assert got == want, (seed, index, step)
        agreed += 1
    return agreed


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.integers(min_value=0, max_value=2**32))
def test_domains_agree_with_the_reference_model(seed):
    assert run_against_model(seed, 2000) > 200


def test_one_long_sequence_agrees_with_the_reference_model():
    assert run_against_model(20261125, 20_000) > 10_000
