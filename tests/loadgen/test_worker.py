"""Frames the worker builds beyond net/iggy.py's: stale reads carry the consistency byte."""

from __future__ import annotations

from net import iggy, wire
from net.iggy import Code, Operation
from tools.loadgen.worker import _stale


def test_stale_reads_set_only_the_consistency_byte():
    frame = iggy.request_frame(b"\x07" * 16, 9, 3, Operation.NON_REPLICATED, b"\x01\x04abcd",
                               code=Code.GET_STREAM)
    stale = _stale(frame)
    header = wire.decode_header(stale)
    assert header.consistency == 1 and wire.decode_header(frame).consistency == 0
    assert (header.code, header.session, header.request) == (Code.GET_STREAM, 9, 3)
    assert [i for i in range(len(frame)) if frame[i] != stale[i]] == [200]
