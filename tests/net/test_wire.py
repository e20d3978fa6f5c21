"""The frame codec: round trips, checksums, and only FrameError on any bad input."""

from __future__ import annotations

import pytest
from hypothesis import given, settings, strategies as st

from net import wire
from net.wire import Command, FrameError

from tests.conftest import load_sdk_calls as _sdk_calls


def test_prepare_round_trip_with_checksums():
    header = wire.make_header(Command.PREPARE, cluster=wire.cluster_bytes(42), view=3, op=10,
                              parent=99, commit=9, timestamp=123, request_count=2)
    frame = wire.encode(header, b"body bytes")
    decoded, body = wire.decode(frame)
    assert bytes(body) == b"body bytes"
    assert (decoded.op, decoded.parent, decoded.commit, decoded.view) == (10, 99, 9, 3)
    assert decoded.size == len(frame) == wire.HEADER_SIZE + 10
    assert decoded.checksum == wire.frame_checksum(frame) != 0


def test_prepare_identity_checksum_leaves_out_the_view():
    header = wire.make_header(Command.PREPARE, op=5, view=1)
    first = wire.encode(header, b"x")
    second = wire.encode(header._replace(view=7), b"x")
    assert wire.frame_checksum(first) == wire.frame_checksum(second)
    third = wire.encode(header._replace(op=6), b"x")
    assert wire.frame_checksum(third) != wire.frame_checksum(first)


def test_other_commands_checksum_covers_the_view():
    header = wire.make_header(Command.COMMIT, commit=5, view=1)
    frame = bytearray(wire.encode(header))
    frame[52] ^= 1
    with pytest.raises(FrameError, match="header checksum"):
        wire.decode(bytes(frame))


def test_body_bit_flip_is_detected():
    frame = bytearray(wire.encode(wire.make_header(Command.PREPARE, op=1), b"payload"))
    frame[-1] ^= 0x40
    with pytest.raises(FrameError, match="body checksum"):
        wire.decode(bytes(frame))


def test_oversize_frame_is_refused_on_encode():
    with pytest.raises(FrameError, match="exceeds"):
        wire.encode(wire.make_header(Command.PREPARE), bytes(wire.FRAME_SIZE_MAX))


def test_unknown_command_and_truncation():
    frame = bytearray(wire.encode(wire.make_header(Command.PING)))
    frame[60] = 200
    with pytest.raises(FrameError, match="unknown command"):
        wire.decode(bytes(frame))
    with pytest.raises(FrameError, match="truncated"):
        wire.decode(b"\x00" * 100)


def test_every_sdk_request_frame_decodes_as_a_client_frame():
    calls = _sdk_calls()
    checked = 0
    for call in calls:
        for frame in call["frames"]:
            raw = bytes.fromhex(frame["frame_hex"])
            header, body = wire.decode_client_frame(raw, body_size_max=wire.FRAME_SIZE_MAX)
            assert header.operation == frame["operation"]
            assert header.request == frame["request"]
            assert header.session == frame["session"]
            if frame["operation"] == 2:
                assert header.code == frame["code"]
                assert header.request_checksum == 0
            else:
                assert header.request_checksum == wire.body_checksum(body)
            checked += 1
    assert checked >= 80


def test_sdk_reply_vectors_decode_as_replies_or_evictions():
    for call in _sdk_calls():
        for frame in call["frames"]:
            if not frame.get("reply_hex"):
                continue
            header = wire.decode_header(bytes.fromhex(frame["reply_hex"]))
            assert header.command in (Command.REPLY, Command.EVICTION)
            if header.command == Command.REPLY:
                assert header.operation == frame["operation"]


def test_client_frame_with_peer_command_is_refused():
    frame = wire.encode(wire.make_header(Command.PREPARE, op=1))
    with pytest.raises(FrameError, match="only REQUEST"):
        wire.decode_client_frame(frame, body_size_max=1024)


def test_client_frame_body_bound_and_request_checksum():
    header = wire.make_header(Command.REQUEST, operation=128, request=1,
                              request_checksum=wire.body_checksum(b"abc"))
    frame = wire.encode(header, b"abc", checksums=False)
    wire.decode_client_frame(frame, body_size_max=3)
    with pytest.raises(FrameError, match="exceeds"):
        wire.decode_client_frame(frame, body_size_max=2)
    bad = wire.encode(header, b"abd", checksums=False)
    with pytest.raises(FrameError, match="request_checksum"):
        wire.decode_client_frame(bad, body_size_max=3)


_VALID_FRAMES = [
    wire.encode(wire.make_header(command, cluster=wire.cluster_bytes(1)), b"some body")
    for command in Command
]


@settings(max_examples=400, deadline=None)
@given(st.binary(max_size=600))
def test_random_bytes_only_raise_frame_error(data):
    for decoder in (lambda b: wire.decode(b), lambda b: wire.decode_client_frame(b, 1 << 16),
                    lambda b: wire.decode_header(b), lambda b: wire.frame_size(b)):
        try:
            decoder(data)
        except FrameError:
            pass


@settings(max_examples=400, deadline=None)
@given(st.sampled_from(_VALID_FRAMES), st.lists(st.tuples(st.integers(0, 10_000),
                                                          st.integers(0, 255)), max_size=8),
       st.integers(0, 400))
def test_mutated_frames_only_raise_frame_error(frame, flips, cut):
    mutated = bytearray(frame)
    for position, value in flips:
        mutated[position % len(mutated)] = value
    for candidate in (bytes(mutated), bytes(mutated[: len(mutated) - cut])):
        try:
            header, _ = wire.decode(candidate)
        except FrameError:
            continue
        # A mutation that still decodes must be an identity mutation of checked bytes.
        assert header.size == len(candidate)
