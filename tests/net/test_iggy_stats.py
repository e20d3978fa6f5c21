"""Stats (code 10) and describe_options (code 13) bodies against what the real SDK accepted."""

from __future__ import annotations

import os
import struct

from net import describe_options, iggy
from net.gateway import Gateway, Reply, ToOwner
from net.iggy import Code, Operation
from tests.conftest import load_sdk_calls


def _vector(method: str, args: dict | None = None) -> dict:
    for call in load_sdk_calls():
        if call["method"] == method and (args is None or call["args"] == args):
            return call
    raise AssertionError(f"no vector for {method}")


def _reply_body(call: dict) -> bytes:
    return bytes.fromhex(call["frames"][0]["reply_hex"])[256:]


def test_the_stats_body_the_sdk_accepted_decodes_and_re_encodes_byte_for_byte():
    call = _vector("get_stats")
    body = _reply_body(call)
    stats = iggy.parse_stats(body)
    seen = call["result"]
    assert (stats.process_id, stats.hostname, stats.server_version, stats.server_semver) == (
        seen["process_id"], seen["hostname"], seen["iggy_server_version"],
        seen["iggy_server_semver"])
    assert (stats.clients, stats.threads, stats.free_disk, stats.total_memory) == (
        seen["clients_count"], seen["threads_count"], seen["free_disk_space"],
        seen["total_memory"])
    assert stats.run_time_us == round(seen["run_time"]["timedelta_s"] * 1e6)
    assert stats.cpu_usage == seen["cpu_usage"]
    assert iggy.stats_body(stats) == body


def test_stats_fields_are_clamped_to_their_width_rather_than_failing():
    stats = iggy.parse_stats(_reply_body(_vector("get_stats")))
    huge = stats.__class__(**{**stats.__dict__, "streams": 1 << 40, "free_disk": -5})
    again = iggy.parse_stats(iggy.stats_body(huge))
    assert again.streams == (1 << 32) - 1 and again.free_disk == 0
    long_name = stats.__class__(**{**stats.__dict__, "hostname": "é" * 200})
    assert iggy.parse_stats(iggy.stats_body(long_name)).hostname == "é" * 127


def test_describe_options_bodies_follow_the_accepted_layout():
    for scope, name in ((2, "stream"), (3, "user")):
        assert describe_options.body(scope) == _reply_body(_vector("describe_options",
                                                                   {"scope": name}))
    body = describe_options.body(describe_options.SCOPE_TOPIC)
    (count,) = struct.unpack_from("<I", body)
    offset, keys = 4, []
    for _ in range(count):
        size = body[offset]
        keys.append(body[offset + 1:offset + 1 + size].decode())
        offset += 1 + size + 1
        (default_size,) = struct.unpack_from("<I", body, offset)
        offset += 4 + default_size
        (text_size,) = struct.unpack_from("<I", body, offset)
        offset += 4 + text_size
    assert offset == len(body) and "durability" in keys and count == len(keys) == 9


def _gateway() -> Gateway:
    gateway = Gateway(body_size_max=1 << 16, requests_in_flight_max=1, roster=lambda: b"",
                      has_primary=lambda: True)
    gateway.opened(1)
    return gateway


def test_the_gateway_sends_stats_to_the_owner_and_answers_describe_options_itself():
    client = os.urandom(16)
    stats = iggy.request_frame(client, 5, 1, Operation.NON_REPLICATED, b"", code=Code.GET_STATS)
    [action] = _gateway().on_frame(1, memoryview(stats))
    assert isinstance(action, ToOwner)
    gateway = _gateway()
    for body, status in ((b"\x01", 0), (b"\x04", iggy.STATUS_INVALID_FORMAT),
                         (b"", iggy.STATUS_INVALID_FORMAT)):
        frame = iggy.request_frame(client, 5, 1, Operation.NON_REPLICATED, body,
                                   code=Code.DESCRIBE_OPTIONS)
        [reply] = gateway.on_frame(1, memoryview(frame))
        assert isinstance(reply, Reply)
        parsed = iggy.parse_reply(reply.frame, Operation.NON_REPLICATED)
        assert parsed.status == status
        if not status:
            assert parsed.payload == describe_options.body(1)
