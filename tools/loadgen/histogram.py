"""A high-dynamic-range latency histogram: log-linear buckets in a numpy array.

Values below 2**PRECISION_BITS are counted exactly; above, each power of two is split into
2**(PRECISION_BITS - 1) linear buckets, so a reported value is within 1/128 (under 0.8%) of the
true one, from 1 us up to VALUE_MAX (~12 days in us), in a fixed array of BUCKETS counters.
Histograms of different processes merge by adding their arrays: that is how the load generator
combines its workers without shipping every sample.
"""

from __future__ import annotations

import numpy as np

PRECISION_BITS = 8
EXACT = 1 << PRECISION_BITS  # 256 values counted exactly
HALF = EXACT >> 1  # linear buckets per power of two above EXACT
VALUE_BITS = 40
VALUE_MAX = (1 << VALUE_BITS) - 1
BUCKETS = EXACT + (VALUE_BITS - PRECISION_BITS) * HALF


def bucket_of(value: int) -> int:
    """The bucket index of an integer 0 <= value <= VALUE_MAX."""
    if value < EXACT:
        return value
    shift = value.bit_length() - PRECISION_BITS
    return EXACT + (shift - 1) * HALF + ((value >> shift) - HALF)


def bucket_low(index: int) -> int:
    """The smallest value that lands in bucket `index`."""
    if index < EXACT:
        return index
    shift, top = divmod(index - EXACT, HALF)
    return (top + HALF) << (shift + 1)


def bucket_high(index: int) -> int:
    """The largest value that lands in bucket `index`."""
    return bucket_low(index + 1) - 1


class Histogram:
    __slots__ = ("counts", "clamped", "max_value", "total")

    def __init__(self) -> None:
        self.counts = np.zeros(BUCKETS, dtype=np.int64)
        self.clamped = 0
        self.max_value = 0
        self.total = 0

    def record(self, value: int) -> None:
        if value < 0:
            value = 0
        elif value > VALUE_MAX:
            self.clamped += 1
            value = VALUE_MAX
        if value > self.max_value:
            self.max_value = value
        self.counts[bucket_of(value)] += 1
        self.total += 1

    def merge(self, other: Histogram) -> None:
        self.counts += other.counts
        self.clamped += other.clamped
        self.max_value = max(self.max_value, other.max_value)
        self.total += other.total

    def percentile(self, percent: float) -> int:
        """The value at or below which `percent` % of the samples fall (0 with no samples).

        Reported as the highest value of the bucket (never below the true value), capped by
        the largest value recorded.
        """
        if self.total == 0:
            return 0
        rank = max(1, int(np.ceil(self.total * min(percent, 100.0) / 100.0)))
        index = int(np.searchsorted(np.cumsum(self.counts), rank))
        return min(bucket_high(index), self.max_value)

    def to_dict(self) -> dict:
        """A compact picklable form: the non-zero buckets only."""
        nonzero = np.nonzero(self.counts)[0]
        return {"index": nonzero.tolist(), "count": self.counts[nonzero].tolist(),
                "clamped": self.clamped, "max": self.max_value}

    @classmethod
    def from_dict(cls, data: dict) -> Histogram:
        histogram = cls()
        histogram.counts[np.asarray(data["index"], dtype=np.int64)] = data["count"]
        histogram.clamped = data["clamped"]
        histogram.max_value = data["max"]
        histogram.total = int(histogram.counts.sum())
        return histogram
