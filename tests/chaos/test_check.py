"""`metavsr check`: it rejects known non-linearizable histories and passes a real one."""

from __future__ import annotations

import os
import subprocess
import sys

import orjson
import pytest

from tests.integration.test_cluster import ROOT
from tools.check import check_ops, read_history

MS = 1_000_000


def line(op, key, invoke_ms, complete_ms, status="ok", ident=None, session=0):
    result = {"id": ident, "bytes": 0 if ident is None else 40} if status == "ok" else None
    return {"process": 0, "session": session, "op": op, "key": key, "invoke_ns": invoke_ms * MS,
            "complete_ns": None if complete_ms is None else complete_ms * MS, "status": status,
            "code": 0 if status == "ok" else -1 if status == "unknown" else 1009,
            "result": result}


def write(tmp_path, lines) -> str:
    path = tmp_path / "history.jsonl"
    path.write_bytes(b"".join(orjson.dumps(entry) + b"\n" for entry in lines))
    return str(path)


def check(tmp_path, lines):
    return check_ops(*read_history(write(tmp_path, lines)))


def test_a_lost_write_is_rejected_and_the_window_names_it(tmp_path):
    lines = [line("create_stream", "s", 0, 10, ident=3),
             line("create_topic", "s/t", 11, 20, ident=0),
             line("get_topic", "s/t", 30, 40, ident=None, session=1)]  # the topic is gone
    report = check(tmp_path, lines)
    assert not report.ok and report.first_key == "s"
    assert any("CANNOT" in row and "get_topic s/t" in row for row in report.window)
    lines[2] = line("get_topic", "s/t", 30, 40, ident=0, session=1)
    assert check(tmp_path, lines).ok


def test_a_stale_read_after_an_acknowledged_delete_is_rejected(tmp_path):
    lines = [line("create_stream", "s", 0, 10, ident=3),
             line("delete_stream", "s", 20, 30),
             line("get_stream", "s", 31, 35, ident=3, session=1)]
    assert not check(tmp_path, lines).ok
    # Concurrent with the delete, either answer is fine.
    lines[2] = line("get_stream", "s", 25, 35, ident=3, session=1)
    assert check(tmp_path, lines).ok


def test_a_reordered_pair_of_reads_around_a_write_in_flight_is_rejected(tmp_path):
    # The create is still in flight; a reader sees the stream, then later does not.
    lines = [line("create_stream", "s", 0, 100, ident=3),
             line("get_stream", "s", 10, 20, ident=3, session=1),
             line("get_stream", "s", 30, 40, ident=None, session=1)]
    assert not check(tmp_path, lines).ok
    lines[1], lines[2] = (line("get_stream", "s", 10, 20, ident=None, session=1),
                          line("get_stream", "s", 30, 40, ident=3, session=1))
    assert check(tmp_path, lines).ok


def test_a_read_of_another_id_than_the_create_returned_is_rejected(tmp_path):
    lines = [line("create_stream", "s", 0, 10, ident=3),
             line("get_stream", "s", 20, 30, ident=4, session=1)]
    assert not check(tmp_path, lines).ok


def test_two_successful_creates_of_one_group_are_rejected(tmp_path):
    lines = [line("create_stream", "s", 0, 10, ident=1),
             line("create_topic", "s/t", 11, 20, ident=0),
             line("create_consumer_group", "s/t/g", 21, 30, ident=0),
             line("create_consumer_group", "s/t/g", 25, 40, ident=1, session=1)]
    assert not check(tmp_path, lines).ok


def test_an_unanswered_write_may_have_taken_effect_or_not(tmp_path):
    taken = [line("create_stream", "s", 0, None, status="unknown"),
             line("get_stream", "s", 50, 60, ident=7, session=1)]
    assert check(tmp_path, taken).ok
    not_taken = [taken[0], line("get_stream", "s", 50, 60, ident=None, session=1)]
    assert check(tmp_path, not_taken).ok
    # ... but not both, in that order.
    assert not check(tmp_path, taken + [line("get_stream", "s", 70, 80, ident=None)]).ok


def test_the_command_exits_1_with_the_window_and_0_when_linearizable(tmp_path):
    bad = write(tmp_path, [line("create_stream", "s", 0, 10, ident=3),
                           line("get_stream", "s", 20, 30, ident=None, session=1)])
    out = subprocess.run([sys.executable, "-m", "tools.cli", "check", bad], cwd=ROOT,
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 1, out.stderr
    assert "NOT linearizable" in out.stdout and "CANNOT" in out.stdout
    good = write(tmp_path, [line("create_stream", "s", 0, 10, ident=3)])
    out = subprocess.run([sys.executable, "-m", "tools.cli", "check", "--json", good], cwd=ROOT,
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stdout + out.stderr
    assert orjson.loads(out.stdout)["linearizable"] is True


def test_a_history_recorded_by_loadgen_on_a_real_cluster_passes(cluster, tmp_path):
    cluster.client().close()  # waits until the cluster accepts logins
    history = str(tmp_path / "real.jsonl")
    mix = ("create_stream=10,create_topic=12,create_consumer_group=5,join_consumer_group=4,"
           "leave_consumer_group=3,delete_stream=4,get_stream=30,get_topic=25,"
           "get_consumer_group=5,create_user=1,get_user=3")
    out = subprocess.run([sys.executable, "-m", "tools.cli", "loadgen", "--dir",
                          cluster.directory, "--processes", "2", "--clients", "8",
                          "--duration", "4", "--mix", mix, "--history", history],
                         cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    ops, skipped = read_history(history)
    kinds = {op.kind for op in ops}
    assert {"create_stream", "delete_stream", "get_stream", "get_topic"} <= kinds
    report = check_ops(ops, skipped)
    assert report.ok, "\n".join(report.window)
    assert report.keys > 10
    assert os.path.getsize(history) > 0
