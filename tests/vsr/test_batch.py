"""The prepare body codec: a batch of client requests."""

import pytest

from net.batch import BatchEntry, decode_batch, encode_batch, entry_size
from net.wire import FrameError

CLIENT = bytes(range(16))


def test_batch_round_trips_with_memoryview_bodies():
    entries = [BatchEntry(CLIENT, 7, 1, 128, 3, b"abc"), BatchEntry(CLIENT, 7, 2, 130, 0, b"")]
    body = encode_batch(entries)
    assert len(body) == entry_size(3) + entry_size(0)
    decoded = decode_batch(body, 2)
    assert [(e.client, e.session, e.request, e.operation, e.user_id, bytes(e.body))
            for e in decoded] == [tuple(e[:5]) + (bytes(e.body),) for e in entries]
    assert isinstance(decoded[0].body, memoryview)


@pytest.mark.parametrize("cut", [1, 40, 42])
def test_truncated_batch_is_a_frame_error(cut):
    body = encode_batch([BatchEntry(CLIENT, 1, 1, 128, 0, b"xyz")])
    with pytest.raises(FrameError):
        decode_batch(body[:-cut] if cut < len(body) else b"", 1)


def test_trailing_bytes_and_wrong_count_are_frame_errors():
    body = encode_batch([BatchEntry(CLIENT, 1, 1, 128, 0, b"x")])
    with pytest.raises(FrameError):
        decode_batch(body + b"\0", 1)
    with pytest.raises(FrameError):
        decode_batch(body, 2)
