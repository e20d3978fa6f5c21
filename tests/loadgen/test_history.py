"""The --history format: one JSON object per operation, parts joined in process order."""

from __future__ import annotations

import struct

import orjson

from tools.loadgen import history
from tools.loadgen.history import HistoryWriter, join_parts, part_path

START = 5_000_000_000
FIELDS = {"process", "session", "op", "key", "invoke_ns", "complete_ns", "status", "code",
          "result"}


def test_lines_carry_times_since_start_status_and_a_result_summary(tmp_path):
    path = str(tmp_path / "h.jsonl")
    writer = HistoryWriter(path, 1, START)
    writer.add(3, "create_stream", "lg-r-1-3-s1", START + 10, START + 50, 0,
               struct.pack("<I", 7) + bytes(30))
    writer.add(3, "get_stream", "lg-r-1-3-s1", START + 60, START + 90, 0, b"")
    writer.add(3, "create_stream", "lg-r-1-3-s2", START + 100, START + 200, 1012, b"")
    writer.add(3, "create_topic", "lg-r-1-3-s1/t3", START + 300, None, -1, b"")
    writer.close()
    join_parts(path, 2)  # process 0 wrote nothing: its part is simply absent
    lines = [orjson.loads(line) for line in open(path, "rb").read().splitlines()]
    assert all(set(line) == FIELDS for line in lines)
    assert lines[0] == {"process": 1, "session": 3, "op": "create_stream",
                        "key": "lg-r-1-3-s1", "invoke_ns": 10, "complete_ns": 50,
                        "status": "ok", "code": 0, "result": {"id": 7, "bytes": 34}}
    assert lines[1]["result"] == {"id": None, "bytes": 0}  # a get that found nothing
    assert (lines[2]["status"], lines[2]["code"], lines[2]["result"]) == (
        "stream_name_already_exists", 1012, None)
    assert (lines[3]["status"], lines[3]["complete_ns"]) == ("unknown", None)
    assert not (tmp_path / "h.jsonl.part1").exists()


def test_writer_flushes_in_batches_and_parts_join_in_process_order(tmp_path, monkeypatch):
    monkeypatch.setattr(history, "BATCH_LINES", 3)
    path = str(tmp_path / "h.jsonl")
    writers = [HistoryWriter(path, p, 0) for p in range(2)]
    for n in range(4):
        for writer in reversed(writers):
            writer.add(0, "get_streams", "", n, n + 1, 0, b"")
    # Three lines reached the file at the third add; the fourth waits for close.
    assert open(part_path(path, 0), "rb").read().count(b"\n") == 3
    for writer in writers:
        writer.close()
    join_parts(path, 2)
    lines = [orjson.loads(line) for line in open(path, "rb").read().splitlines()]
    assert [(line["process"], line["invoke_ns"]) for line in lines] == [
        (p, n) for p in range(2) for n in range(4)]
