"""Intended send times and latency from the intended time, on a simulated clock (no sleeping)."""

from __future__ import annotations

from tools.loadgen.metrics import Recorder
from tools.loadgen.pacing import NS_PER_S, ClosedLoop, OpenLoop, Window, latency_ns

MS = 1_000_000


def test_open_loop_spreads_sessions_over_one_period_without_drift():
    start, rate, sessions = 10 * NS_PER_S, 400.0, 8  # each session every 20 ms
    schedules = [OpenLoop(start, rate, sessions, k) for k in range(sessions)]
    firsts = sorted(s.intended(0, 0) for s in schedules)
    assert firsts == [start + k * 2_500_000 for k in range(sessions)]
    # The n-th op of session 3 is exact even far out (no accumulated rounding).
    assert schedules[3].intended(1_000_000, 0) == start + 7_500_000 + 1_000_000 * 20 * MS
    # The schedule does not depend on when it is asked.
    assert schedules[0].intended(5, now_ns=0) == schedules[0].intended(5, now_ns=start * 9)


def test_count_before_is_the_number_of_intended_times_before_the_end():
    schedule = OpenLoop(0, 3.0, 1, 0)  # every 333,333,333.3 ns
    for end in (0, 1, 333_333_333, 333_333_334, NS_PER_S, NS_PER_S + 1, 7 * NS_PER_S):
        expected = sum(1 for n in range(100) if schedule.intended(n, 0) < end)
        assert schedule.count_before(end) == expected, end


def test_closed_loop_intends_the_moment_it_is_asked():
    assert ClosedLoop().intended(41, now_ns=123) == 123


def test_window_warmup_and_end():
    window = Window.of(1000, warmup_s=1.0, duration_s=2.0)
    assert (window.measure_ns, window.end_ns) == (1000 + NS_PER_S, 1000 + 3 * NS_PER_S)
    assert not window.measured(1000 + NS_PER_S - 1) and window.measured(1000 + NS_PER_S)
    assert window.open(window.end_ns - 1) and not window.open(window.end_ns)
    assert Window.of(0, 0.0, None).open(10**18)


def simulate(schedule, service_ns: int, count: int, recorder: Recorder) -> list[int]:
    """One lockstep session against a server taking service_ns per request."""
    free_at, latencies = 0, []
    for n in range(count):
        intended = schedule.intended(n, free_at)
        sent = max(intended, free_at)  # busy: the request waits for the previous answer
        free_at = sent + service_ns
        recorder.record("create_stream", 0, intended, free_at, measured=True)
        latencies.append(latency_ns(intended, free_at))
    return latencies


def test_a_late_session_counts_the_wait_in_latency():
    ticks = []
    recorder = Recorder(0, ticks.append)
    # Intended every 5 ms, served in 10 ms: op n waits n x 5 ms before it can be sent.
    latencies = simulate(OpenLoop(0, 200.0, 1, 0), 10 * MS, 100, recorder)
    assert latencies == [10 * MS + n * 5 * MS for n in range(100)]
    histogram = recorder.histograms["create_stream"]
    assert abs(histogram.percentile(50) - 255_000) <= 255_000 // 128  # us, HDR precision
    assert histogram.max_value == 505_000
    recorder.finish(1 * NS_PER_S)  # the last op completes at exactly 1.0 s: second 1
    assert [t.ops for t in ticks] == [99, 1]


def test_closed_loop_latency_is_the_service_time():
    recorder = Recorder(0, lambda tick: None)
    assert set(simulate(ClosedLoop(), 10 * MS, 50, recorder)) == {10 * MS}


def test_recorder_leaves_warmup_out_and_unknown_outcomes_out_of_the_histogram():
    recorder = Recorder(0, lambda tick: None)
    recorder.record("get_stream", 0, 0, 2 * MS, measured=False)
    recorder.record("get_stream", 1009, 0, 3 * MS, measured=True)
    recorder.record("get_stream", -1, 0, 4 * MS, measured=True)
    result = recorder.result()
    assert result["completed"] == {"get_stream": 2}
    assert result["errors"] == {("get_stream", "stream_id_not_found"): 1,
                                ("get_stream", "unavailable"): 1}
    assert recorder.histograms["get_stream"].total == 1
