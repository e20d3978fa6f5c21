"""Hypothesis drives every decoder hostile bytes can reach: the client frame decoder, the
gateway's handling of every operation and read code (before and after login, including the
steps that decode secrets), and the owner's query decoders. Nothing may raise: each input is
answered (reply, forward, job) or closes its connection.

Mutations start from the real SDK frames (iggy-vectors/sdk_frames.jsonl) as well as from random
bytes, so the fuzzer reaches deep into valid-looking bodies. Domain admission and apply on
arbitrary bodies are fuzzed in tests/domains/test_codecs.py.
"""

from __future__ import annotations

import json
import os

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from domains.mux import MuxStateMachine
from net import iggy, wire
from net.gateway import READ_CODES, Close, Gateway, Job, Reply, ToOwner, ToReplication
from net.iggy import Operation

VECTORS = "/work/shared/iggy-vectors/sdk_frames.jsonl"
BODY_MAX = 1 << 16
CLIENT = b"\x07" * 16
ACTIONS = (Reply, ToReplication, ToOwner, Job, Close)


def _sdk_frames() -> list[bytes]:
    if not os.path.exists(VECTORS):
        return []
    frames = []
    with open(VECTORS) as source:
        for line in source:
            for frame in json.loads(line).get("frames", []):
                if "frame_hex" in frame:
                    frames.append(bytes.fromhex(frame["frame_hex"]))
    return frames


SDK_FRAMES = _sdk_frames()


@st.composite
def mutated_sdk_frame(draw) -> bytes:
    if not SDK_FRAMES:
        pytest.skip("SDK vectors not found")
    frame = bytearray(draw(st.sampled_from(SDK_FRAMES)))
    for _ in range(draw(st.integers(1, 8))):
        kind = draw(st.sampled_from(("flip", "cut", "grow", "field")))
        if kind == "flip" and frame:
            frame[draw(st.integers(0, len(frame) - 1))] = draw(st.integers(0, 255))
        elif kind == "cut" and len(frame) > wire.HEADER_SIZE:
            del frame[draw(st.integers(wire.HEADER_SIZE, len(frame) - 1)):]
        elif kind == "grow":
            frame += draw(st.binary(min_size=1, max_size=64))
        else:  # a plausible header field (operation, code, session, size) set to anything
            offset = draw(st.sampled_from((48, 176, 192, 196, 200, 208)))
            frame[offset] = draw(st.integers(0, 255))
    if draw(st.booleans()) and len(frame) >= 52:  # usually keep the size honest, to go deeper
        frame[48:52] = len(frame).to_bytes(4, "little")
    return bytes(frame)


def _request(draw) -> bytes:
    operation = draw(st.sampled_from(sorted(set(range(0, 160)) | {Operation.NON_REPLICATED})))
    code = draw(st.sampled_from(sorted(READ_CODES | {1, 10, 12, 13, 9999})))
    body = draw(st.binary(max_size=300))
    session = draw(st.sampled_from((0, 42)))
    return iggy.request_frame(CLIENT, session, draw(st.integers(0, 5)), operation, body,
                              code=code)


@st.composite
def hostile_frame(draw) -> bytes:
    kind = draw(st.sampled_from(("request", "sdk", "random")))
    if kind == "request":
        return _request(draw)
    if kind == "sdk" and SDK_FRAMES:
        return draw(mutated_sdk_frame())
    size = draw(st.integers(wire.HEADER_SIZE, wire.HEADER_SIZE + 200))
    frame = bytearray(draw(st.binary(min_size=size, max_size=size)))
    frame[48:52] = size.to_bytes(4, "little")
    return bytes(frame)


def _drive(gateway: Gateway, conn: int, frame: bytes) -> None:
    """One frame through the gateway and every step it starts, with plausible step results."""
    actions = gateway.on_frame(conn, memoryview(frame))
    for _ in range(4):  # lookup -> verify -> hash: at most a few steps per request
        follow = []
        for action in actions:
            assert isinstance(action, ACTIONS)
            if isinstance(action, ToOwner) and conn in gateway.conns:
                follow += gateway.on_credentials(conn, True, 3, True, b"x" * 64)
            elif isinstance(action, Job):  # no scrypt here: any result the job could give
                follow += gateway.job_done(conn, b"h" * 58 if "hash" in action.fn.__name__
                                           else False)
            elif isinstance(action, Close):
                gateway.closed(conn)
                gateway.opened(conn)
        actions = follow
        if not actions:
            break


def _gateway(logged_in: bool) -> Gateway:
    gateway = Gateway(body_size_max=BODY_MAX, requests_in_flight_max=64, roster=lambda: b"",
                      has_primary=lambda: True)
    gateway.opened(1)
    if logged_in:
        header = wire.decode_client_frame(memoryview(iggy.request_frame(
            CLIENT, 0, 0, Operation.REGISTER, b"x")), BODY_MAX)[0]
        gateway.on_reply(1, memoryview(iggy.reply_frame(header,
                                                        body=iggy.login_reply_body(3, 42))))
    return gateway


@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.booleans(), st.lists(hostile_frame(), min_size=1, max_size=4))
def test_the_gateway_answers_or_closes_on_any_frame(logged_in, frames):
    gateway = _gateway(logged_in)
    for frame in frames:
        _drive(gateway, 1, frame)
        if 1 in gateway.conns:
            gateway.conns[1].in_flight = 0  # replies are not simulated: keep requests flowing


@settings(max_examples=400, deadline=None)
@given(st.one_of(mutated_sdk_frame(), st.binary(max_size=600)))
def test_the_client_frame_decoder_refuses_with_frame_error_only(frame):
    try:
        header, body = wire.decode_client_frame(memoryview(frame), BODY_MAX)
    except wire.FrameError:
        return
    assert header.size == len(frame) and len(body) == len(frame) - wire.HEADER_SIZE


@settings(max_examples=400, deadline=None)
@given(st.sampled_from(sorted(READ_CODES | {1, 10, 12, 13, 9999})), st.binary(max_size=200),
       st.sampled_from((0, 1, 77)))
def test_every_read_decoder_answers_a_status_on_any_body(code, body, user):
    mux = MuxStateMachine()
    status, result = mux.query(code, body, user)
    assert isinstance(status, int) and isinstance(result, bytes)
