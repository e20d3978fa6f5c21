"""What the load generator measures, per worker, and how the workers' figures combine.

Owns: the worker-side `Recorder` (an HDR histogram of measured latencies per operation kind,
answered and failed counts, errors by kind and code name, retries, and one tick per second of
run time for the live progress line and the plot) and the coordinator-side `Totals` that merges
the workers' results into table rows and flat JSON figures. Histograms travel between processes
as `Histogram.to_dict()` and are merged by adding buckets, never by shipping samples.

Accounting: every answered operation (status 0 or an error code) counts as completed and its
latency is recorded; an operation that got no answer before its deadline counts as the error
`unavailable` and has no latency (its outcome is unknown). Warm-up operations are run but
neither counted nor recorded, except in the per-second ticks. Must never touch sockets or
decide when to send.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from domains.errors import CATALOGUE
from tools.loadgen.histogram import Histogram
from tools.loadgen.pacing import NS_PER_S, latency_ns

NS_PER_US = 1_000
# Codes the load generator itself gives to operations that got no business answer.
UNAVAILABLE = -1  # no answer before the operation's deadline: outcome unknown
EVICTED = -2  # the cluster dropped the session; the worker logs in again
PERCENTILES = (50.0, 90.0, 99.0, 99.9)


def code_name(code: int) -> str:
    if code == UNAVAILABLE:
        return "unavailable"
    if code == EVICTED:
        return "evicted"
    entry = CATALOGUE.get(code)
    return entry[0] if entry else f"code_{code}"


@dataclass
class Tick:
    """One second of run time (all operations, warm-up included) from one worker."""

    second: int
    ops: int
    errors: int
    histogram: dict  # Histogram.to_dict() of the latencies of that second, in us


class Recorder:
    """One worker's measurements. `emit(tick)` is called once per elapsed second, in order."""

    def __init__(self, start_ns: int, emit):
        self.start_ns = start_ns
        self.emit = emit
        self.histograms: dict[str, Histogram] = {}
        self.completed: Counter[str] = Counter()
        self.errors: Counter[tuple[str, str]] = Counter()
        self.retries = 0
        self.not_sent = 0  # open-loop operations still unsent when the run had to end
        self.last_complete_ns = 0
        self._second = 0
        self._tick_ops = 0
        self._tick_errors = 0
        self._tick_histogram = Histogram()

    def record(self, kind: str, code: int, intended_ns: int, complete_ns: int,
               measured: bool) -> None:
        self.advance(complete_ns)
        answered = code != UNAVAILABLE
        self._tick_ops += 1
        if code:
            self._tick_errors += 1
        latency_us = latency_ns(intended_ns, complete_ns) // NS_PER_US
        if answered:
            self._tick_histogram.record(latency_us)
        if not measured:
            return
        self.completed[kind] += 1
        if code:
            self.errors[(kind, code_name(code))] += 1
        if answered:
            histogram = self.histograms.get(kind)
            if histogram is None:
                histogram = self.histograms[kind] = Histogram()
            histogram.record(latency_us)
        self.last_complete_ns = max(self.last_complete_ns, complete_ns)

    def advance(self, now_ns: int) -> None:
        """Emit the ticks of every second that ended before `now_ns`."""
        second = (now_ns - self.start_ns) // NS_PER_S
        while self._second < second:
            self.emit(Tick(self._second, self._tick_ops, self._tick_errors,
                           self._tick_histogram.to_dict()))
            self._second += 1
            self._tick_ops = self._tick_errors = 0
            self._tick_histogram = Histogram()

    def finish(self, now_ns: int) -> None:
        """Emit every tick up to `now_ns`, the last partial second included."""
        self.advance(now_ns)
        self.advance(self.start_ns + (self._second + 1) * NS_PER_S)

    def result(self) -> dict:
        """The worker's final figures, picklable, for `Totals.add`."""
        return {"histograms": {k: h.to_dict() for k, h in self.histograms.items()},
                "completed": dict(self.completed), "errors": dict(self.errors),
                "retries": self.retries, "not_sent": self.not_sent,
                "last_complete_ns": self.last_complete_ns}


@dataclass
class Totals:
    """The merged figures of all workers."""

    histograms: dict[str, Histogram] = field(default_factory=dict)
    completed: Counter = field(default_factory=Counter)
    errors: Counter = field(default_factory=Counter)
    retries: int = 0
    not_sent: int = 0
    last_complete_ns: int = 0

    def add(self, result: dict) -> None:
        for kind, data in result["histograms"].items():
            histogram = Histogram.from_dict(data)
            if kind in self.histograms:
                self.histograms[kind].merge(histogram)
            else:
                self.histograms[kind] = histogram
        self.completed.update(result["completed"])
        self.errors.update(result["errors"])
        self.retries += result["retries"]
        self.not_sent += result["not_sent"]
        self.last_complete_ns = max(self.last_complete_ns, result["last_complete_ns"])

    def overall(self) -> Histogram:
        merged = Histogram()
        for histogram in self.histograms.values():
            merged.merge(histogram)
        return merged

    def rows(self, kinds, elapsed_s: float) -> list[list[object]]:
        """Table rows: kind, ops, ops/s, errors, p50, p90, p99, p99.9, max (ms); then `all`."""
        rows = []
        for kind in kinds:
            if self.completed[kind]:
                rows.append(self._row(kind, self.completed[kind], self._errors_of(kind),
                                      self.histograms.get(kind, Histogram()), elapsed_s))
        rows.append(self._row("all", sum(self.completed.values()), sum(self.errors.values()),
                              self.overall(), elapsed_s))
        return rows

    def figures(self, kinds, elapsed_s: float) -> dict[str, object]:
        """Flat figures with the unit in each key (`ops_per_s`, `create_stream_p99_ms`...)."""
        out: dict[str, object] = {"elapsed_s": round(elapsed_s, 3), "retries": self.retries,
                                  "not_sent": self.not_sent}
        for kind in [*kinds, "all"]:
            if kind == "all":
                ops, errors, histogram, prefix = (sum(self.completed.values()),
                                                  sum(self.errors.values()), self.overall(), "")
            elif self.completed[kind]:
                ops, errors, histogram = (self.completed[kind], self._errors_of(kind),
                                          self.histograms.get(kind, Histogram()))
                prefix = f"{kind}_"
            else:
                continue
            out[f"{prefix}ops"] = ops
            out[f"{prefix}ops_per_s"] = round(ops / elapsed_s, 1) if elapsed_s > 0 else 0.0
            out[f"{prefix}errors"] = errors
            for percent in PERCENTILES:
                out[f"{prefix}p{_percent_key(percent)}_ms"] = _ms(histogram.percentile(percent))
            out[f"{prefix}max_ms"] = _ms(histogram.max_value)
        for (kind, name), count in sorted(self.errors.items()):
            out[f"errors_{kind}_{name}"] = count
        return out

    def _errors_of(self, kind: str) -> int:
        return sum(count for (k, _), count in self.errors.items() if k == kind)

    @staticmethod
    def _row(name: str, ops: int, errors: int, histogram: Histogram, elapsed_s: float) -> list:
        rate = ops / elapsed_s if elapsed_s > 0 else 0.0
        return [name, ops, float(rate), errors,
                *[_ms(histogram.percentile(p)) for p in PERCENTILES], _ms(histogram.max_value)]


def _percent_key(percent: float) -> str:
    return f"{percent:g}".replace(".", "_")


def _ms(value_us: int) -> float:
    return round(value_us / 1000.0, 3)
