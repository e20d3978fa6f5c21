"""The HDR histogram against exact percentiles of the same samples."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings, strategies as st

from tools.loadgen.histogram import (BUCKETS, EXACT, VALUE_MAX, Histogram, bucket_high,
                                     bucket_low, bucket_of)


def test_buckets_tile_the_value_range_without_gaps():
    for index in range(BUCKETS - 1):
        assert bucket_high(index) + 1 == bucket_low(index + 1)
        assert bucket_of(bucket_low(index)) == index
        assert bucket_of(bucket_high(index)) == index
    assert bucket_of(VALUE_MAX) == BUCKETS - 1


def test_relative_error_is_under_one_percent():
    for index in range(EXACT, BUCKETS):
        low, high = bucket_low(index), bucket_high(index)
        assert (high - low) / low < 0.008


@settings(max_examples=100, deadline=None)
@given(st.lists(st.integers(0, 10**9), min_size=1, max_size=500),
       st.sampled_from([50.0, 90.0, 99.0, 99.9, 100.0]))
def test_percentiles_match_exact_values_within_precision(samples, percent):
    histogram = Histogram()
    for value in samples:
        histogram.record(value)
    ordered = sorted(samples)
    exact = ordered[max(0, int(np.ceil(len(ordered) * percent / 100.0)) - 1)]
    reported = histogram.percentile(percent)
    assert exact <= reported <= max(exact, exact * 1.008 + 1)


def test_merge_equals_recording_everything_in_one():
    rng = np.random.default_rng(3)
    values = rng.lognormal(7, 1.5, 20_000).astype(int).tolist()
    one, left, right = Histogram(), Histogram(), Histogram()
    for i, value in enumerate(values):
        one.record(value)
        (left if i % 2 else right).record(value)
    merged = Histogram.from_dict(left.to_dict())
    merged.merge(Histogram.from_dict(right.to_dict()))
    assert merged.total == one.total == 20_000
    for percent in (50, 90, 99, 99.9, 100):
        assert merged.percentile(percent) == one.percentile(percent)


def test_values_beyond_the_range_are_clamped_and_counted():
    histogram = Histogram()
    histogram.record(VALUE_MAX * 4)
    histogram.record(-5)
    assert histogram.clamped == 1
    assert histogram.percentile(100) == VALUE_MAX
    assert histogram.percentile(1) == 0
