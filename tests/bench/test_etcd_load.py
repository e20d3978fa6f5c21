"""The etcd backend's HTTP response parsing: what the gateway sends, however TCP splits it."""

from __future__ import annotations

import pytest

from tools.bench.etcd_load import ResponseReader, request_bytes

RESPONSE = (b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 11\r\n\r\n"
            b'{"kvs":[1]}')


def test_a_response_split_at_every_byte_comes_out_once_and_whole():
    for cut in range(1, len(RESPONSE)):
        reader = ResponseReader()
        assert reader.feed(RESPONSE[:cut]) == []
        assert reader.feed(RESPONSE[cut:]) == [(200, b'{"kvs":[1]}')]
        assert reader.buffer == b""


def test_two_responses_in_one_read_and_an_error_status():
    error = b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 2\r\n\r\n{}"
    assert ResponseReader().feed(RESPONSE + error) == [(200, b'{"kvs":[1]}'), (503, b"{}")]


@pytest.mark.parametrize("bad", [
    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
    b"HTTP/1.1 200 OK\r\n\r\n",
    b"SSH-2.0-x\r\nContent-Length: 0\r\n\r\n",
])
def test_what_the_gateway_never_sends_is_refused(bad):
    with pytest.raises(ValueError):
        ResponseReader().feed(bad)


def test_a_request_carries_its_length_and_host():
    request = request_bytes("127.0.0.1:2379", "/v3/kv/put", b'{"key":"YQ=="}')
    head, _, body = request.partition(b"\r\n\r\n")
    assert head.startswith(b"POST /v3/kv/put HTTP/1.1\r\nHost: 127.0.0.1:2379\r\n")
    assert b"Content-Length: 14" in head and body == b'{"key":"YQ=="}'
