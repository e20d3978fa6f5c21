"""Workers' figures merge by adding histograms; the JSON figures are flat with units in keys."""

from __future__ import annotations

import pytest

from tools.loadgen.metrics import Recorder, Totals
from tools.loadgen.mix import KINDS

MS = 1_000_000


def worker_result(latencies_ms: list[int], kind: str, errors: int = 0) -> dict:
    recorder = Recorder(0, lambda tick: None)
    for n, latency in enumerate(latencies_ms):
        recorder.record(kind, 1012 if n < errors else 0, 0, latency * MS, measured=True)
    recorder.retries = 2
    return recorder.result()


def test_merged_percentiles_are_those_of_all_samples():
    totals = Totals()
    totals.add(worker_result([1] * 90, "create_stream", errors=3))
    totals.add(worker_result([100] * 10, "get_stream"))
    figures = totals.figures(KINDS, elapsed_s=2.0)
    assert figures["ops"] == 100 and figures["ops_per_s"] == 50.0
    near = lambda ms: pytest.approx(ms, rel=0.008)  # the histogram's precision
    assert figures["p50_ms"] == near(1) and figures["p99_ms"] == near(100)
    assert figures["max_ms"] == 100.0
    assert figures["create_stream_ops"] == 90 and figures["create_stream_p99_ms"] == near(1)
    assert figures["get_stream_p50_ms"] == near(100)
    assert figures["errors"] == 3 and figures["errors_create_stream_stream_name_already_exists"] == 3
    assert figures["retries"] == 4
    assert "create_topic_ops" not in figures  # kinds that never ran are left out
    assert all(not isinstance(value, (dict, list)) for value in figures.values())
    rows = totals.rows(KINDS, elapsed_s=2.0)
    assert [row[0] for row in rows] == ["create_stream", "get_stream", "all"]
