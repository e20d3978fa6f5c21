"""The metrics catalogue of a replica and its Prometheus text rendering (format 0.0.4).

This module is the one place that defines every metric: its Prometheus name, type, help
string, which role's counter block holds it (that role is its only writer, see
shm/counters.py) and the counter's name in that block. Roles count into those counters; the
supervisor renders a CounterTable snapshot with `render` and serves it (metrics_server.py).

It owns names and rendering: it never creates or serves counters, and rendering reads nothing
but the snapshot it is given. Its writes are for the role that owns the counters: `Meter`
(slots resolved once, so a role's counting is a few numpy stores per loop turn, never work per
op) and `Histogram.observe` (bucket choice belongs with the bounds). A sample whose block or
counter is absent from the snapshot (a replica run with stand-in roles, or without the metric
counters) is left out rather than invented as zero. `joined_view` and `status_line` read the
replication role's counters for the supervisor (READY=1 and STATUS=).

Counters are unsigned 64-bit integers, so durations are counted in microseconds and exposed
in seconds (`divisor`); a histogram's buckets are counted per bucket (one add per observation,
no cumulative update on the hot path) and made cumulative here.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Iterable
from dataclasses import dataclass

from core.check import check
from core.roles.wiring import RINGS

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
KINDS = ("counter", "gauge", "histogram")
# The supervisor's own block holds only its stop flag: no role metric is read from it.
SUPERVISOR_BLOCK = "supervisor"
MICROSECONDS_PER_SECOND = 1_000_000


@dataclass(frozen=True)
class Metric:
    """One sample of a counter or gauge family.

    writer: the role whose block holds the counter; None = every role's own block, with a
    `role` label (liveness counters every role has, see supervisor.ROLE_COUNTERS)."""
    name: str
    kind: str
    help: str
    writer: str | None
    counter: str
    labels: tuple[tuple[str, str], ...] = ()
    divisor: int = 1  # counted units per exposed unit (MICROSECONDS_PER_SECOND for durations)


@dataclass(frozen=True)
class Histogram:
    """A histogram counted in microseconds: one counter per bucket plus one for the sum."""
    name: str
    help: str
    writer: str
    counter: str  # prefix of the bucket and sum counters
    bounds_us: tuple[int, ...]  # upper bounds, ascending; the last bucket (+Inf) is implicit

    kind = "histogram"

    def bucket_counters(self) -> tuple[str, ...]:
        return tuple(f"{self.counter}_b{i}" for i in range(len(self.bounds_us) + 1))

    @property
    def sum_counter(self) -> str:
        return f"{self.counter}_sum_us"

    def observe(self, table, seconds: float) -> None:
        """Count one observation into `table` (a CounterTable) in the writer's block."""
        micros = max(0, round(seconds * MICROSECONDS_PER_SECOND))
        index = bisect.bisect_left(self.bounds_us, micros)
        table.add(self.writer, self.bucket_counters()[index])
        table.add(self.writer, self.sum_counter, micros)


# fdatasync on SSDs takes tens of microseconds to a few milliseconds; on disks and busy
# clouds, tens to hundreds of milliseconds. The bounds cover both so the +Inf bucket only holds stalls.
FSYNC_BOUNDS_US = (50, 100, 250, 500, 1_000, 2_500, 5_000, 10_000, 25_000, 50_000,
                   100_000, 250_000, 1_000_000)

FSYNC_SECONDS = Histogram(
    "metavsr_fsync_duration_seconds",
    "Duration of each journal fdatasync (one per group commit).",
    "journal", "fsync", FSYNC_BOUNDS_US)


def _ring_metrics() -> tuple[Metric, ...]:
    # The producer of a ring is the one that sees it full and waits, so it is the writer.
    metrics = []
    for spec in RINGS:
        labels = (("ring", spec.name),)
        metrics.append(Metric(
            "metavsr_ring_used_bytes", "gauge",
            "Bytes pushed to the ring and not yet released by its consumer.",
            spec.producer, f"ring_{spec.name}_used_bytes", labels))
        metrics.append(Metric(
            "metavsr_ring_capacity_bytes", "gauge", "Capacity of the ring in bytes.",
            spec.producer, f"ring_{spec.name}_capacity_bytes", labels))
        metrics.append(Metric(
            "metavsr_ring_full_waits_total", "counter",
            "Pushes that found the ring full and waited for the consumer (backpressure).",
            spec.producer, f"ring_{spec.name}_full_waits", labels))
    return tuple(metrics)


# Refusals of hostile or broken input by the net role (docs/SECURITY.md), one sample per event.
SECURITY_EVENTS = (
    "logins_failed", "logins_throttled", "closed_login_failures", "refused_unauthenticated",
    "closed_in_flight", "refused_op_size", "refused_busy", "protocol_errors",
    "refused_over_limit", "handshake_timeouts", "slow_frames_closed", "idle_closed",
    "slow_readers_closed", "tls_failed", "peer_auth_failures", "bad_peer_frames",
)


def _security_metrics() -> tuple[Metric, ...]:
    return tuple(Metric("metavsr_security_events_total", "counter",
                        "Hostile or broken input refused by the net role, by event.",
                        "net", f"security_{event}", (("event", event),))
                 for event in SECURITY_EVENTS)


CATALOGUE: tuple[Metric | Histogram, ...] = (
    Metric("metavsr_role_ready", "gauge", "1 once the role has reported ready.",
           None, "ready"),
    Metric("metavsr_role_heartbeats_total", "counter",
           "Heartbeats of the role; the supervisor feeds the systemd watchdog while they move.",
           None, "heartbeat"),
    Metric("metavsr_replica", "gauge", "This replica's index in the cluster.",
           "replication", "replica"),
    Metric("metavsr_view", "gauge", "Current view number.", "replication", "view"),
    Metric("metavsr_primary", "gauge", "Index of the primary of the current view.",
           "replication", "primary"),
    Metric("metavsr_view_status", "gauge",
           "Replica status: 1 normal, 2 view change, 3 recovering (0 until the core runs).",
           "replication", "view_status"),
    Metric("metavsr_view_changes_total", "counter", "View changes this replica took part in.",
           "replication", "view_changes"),
    Metric("metavsr_op", "gauge", "Highest op number in this replica's log.",
           "replication", "op"),
    Metric("metavsr_commit_op", "gauge", "Highest committed op number known to this replica.",
           "replication", "commit_op"),
    Metric("metavsr_ops_committed_total", "counter", "Ops this replica has seen committed.",
           "replication", "ops_committed"),
    Metric("metavsr_prepares_in_flight", "gauge",
           "Prepares sent by the primary and not yet committed (bounded by pipeline_max).",
           "replication", "prepares_in_flight"),
    Metric("metavsr_apply_lag_ops", "gauge",
           "Committed ops the owner has not applied yet (commit op minus applied op).",
           "replication", "apply_lag_ops"),
    Metric("metavsr_applied_op", "gauge", "Highest op applied to the state machine.",
           "owner", "applied_op"),
    FSYNC_SECONDS,
    Metric("metavsr_journal_size_bytes", "gauge", "Bytes of journal on disk.",
           "journal", "journal_size_bytes"),
    Metric("metavsr_journal_durable_op", "gauge",
           "Highest op in the journal, as of its latest fdatasync.",
           "journal", "durable_op"),
    Metric("metavsr_checkpoint_op", "gauge",
           "Op of the latest checkpoint the superblock names (durable).",
           "replication", "checkpoint_op"),
    Metric("metavsr_checkpoints_total", "counter", "Checkpoints written.",
           "snapshot", "checkpoints"),
    Metric("metavsr_checkpoint_duration_seconds", "gauge",
           "Duration of writing the latest checkpoint's 3 copies, each fsynced.",
           "snapshot", "checkpoint_duration_us", divisor=MICROSECONDS_PER_SECOND),
    Metric("metavsr_connections", "gauge", "Open connections.",
           "net", "client_connections", (("kind", "client"),)),
    Metric("metavsr_connections", "gauge", "Open connections.",
           "net", "peer_connections", (("kind", "peer"),)),
    Metric("metavsr_bad_frames_total", "counter",
           "Frames refused by framing or checksum checks (the connection is closed).",
           "net", "bad_frames"),
) + _ring_metrics() + _security_metrics()


def _counter_names() -> tuple[str, ...]:
    names: list[str] = []
    for metric in CATALOGUE:
        if isinstance(metric, Histogram):
            names.extend(metric.bucket_counters() + (metric.sum_counter,))
        elif metric.writer is not None:
            names.append(metric.counter)
    return tuple(dict.fromkeys(names))


# Pass as the supervisor's extra_counters: the role-specific counters of the catalogue
# (the per-role liveness counters are the supervisor's ROLE_COUNTERS already).
COUNTER_NAMES = _counter_names()


def _check_catalogue() -> None:
    families: dict[str, tuple[str, str]] = {}
    counted: set[tuple[str | None, str]] = set()
    for metric in CATALOGUE:
        check((metric.writer, metric.counter) not in counted,
              f"{metric.name}: counter {metric.counter!r} of {metric.writer} is already used")
        counted.add((metric.writer, metric.counter))
        check(metric.kind in KINDS, f"{metric.name}: kind {metric.kind!r}")
        check(not isinstance(metric, Histogram) or
              list(metric.bounds_us) == sorted(set(metric.bounds_us)),
              f"{metric.name}: bucket bounds must be strictly ascending")
        check(metric.kind != "counter" or metric.name.endswith("_total"),
              f"{metric.name}: a counter's name ends with _total")
        seen = families.setdefault(metric.name, (metric.kind, metric.help))
        check(seen == (metric.kind, metric.help), f"{metric.name}: one type and help per family")


_check_catalogue()


# metavsr_view_status values; 0 means the replication role has not counted yet.
VIEW_STATUS = {"normal": 1, "view_change": 2, "recovering": 3}
VIEW_STATUS_NAMES = {0: "starting", **{code: name for name, code in VIEW_STATUS.items()}}


class Meter:
    """A role's writer of its own counter block (the block's only writer, see shm/counters.py).

    Counter slots are resolved once; set/add are one numpy store each. `rings()` publishes
    the occupancy and full-waits of the rings this role produces into: call it once per loop
    turn, never per record."""

    def __init__(self, table, role: str, producers: dict | None = None):
        self._table = table
        self._role = role
        self._slots: dict[str, int] = {}
        self._histograms: dict[str, tuple[int, ...]] = {}  # name -> bucket slots + sum slot
        self._rings = []
        for ring, producer in (producers or {}).items():
            table.set(role, f"ring_{ring}_capacity_bytes", producer.ring.capacity_bytes)
            self._rings.append((producer, self.slot(f"ring_{ring}_used_bytes"),
                                self.slot(f"ring_{ring}_full_waits")))

    def slot(self, name: str) -> int:
        slot = self._slots.get(name)
        if slot is None:
            slot = self._slots[name] = self._table.slot(self._role, name)
        return slot

    def set(self, name: str, value: int) -> None:
        self._table.set_at(self.slot(name), value)

    def add(self, name: str, delta: int = 1) -> None:
        slot = self.slot(name)
        self._table.set_at(slot, self._table.get_at(slot) + delta)

    def observe(self, histogram: Histogram, seconds: float) -> None:
        """Histogram.observe with the bucket slots resolved once."""
        slots = self._histograms.get(histogram.name)
        if slots is None:
            check(histogram.writer == self._role, f"{histogram.name} is {histogram.writer}'s")
            slots = self._histograms[histogram.name] = tuple(
                self.slot(name) for name in histogram.bucket_counters() + (histogram.sum_counter,))
        micros = max(0, round(seconds * MICROSECONDS_PER_SECOND))
        table = self._table
        bucket = slots[bisect.bisect_left(histogram.bounds_us, micros)]
        table.set_at(bucket, table.get_at(bucket) + 1)
        table.set_at(slots[-1], table.get_at(slots[-1]) + micros)

    def rings(self) -> None:
        table = self._table
        for producer, used, waits in self._rings:
            table.set_at(used, producer.ring.used_bytes())
            table.set_at(waits, producer.full_waits)


def joined_view(table) -> bool:
    """The replica takes part in the current view: its replication core is in normal status
    (a restarted replica is recovering until the view's primary has brought it in)."""
    return table.get("replication", "view_status") == VIEW_STATUS["normal"]


def status_line(table) -> str:
    """The STATUS= text systemd shows: view, primary, status and the op counters."""
    get = table.get
    status = VIEW_STATUS_NAMES.get(get("replication", "view_status"), "unknown")
    return (f"view {get('replication', 'view')} primary {get('replication', 'primary')} "
            f"{status}; op {get('replication', 'op')} commit {get('replication', 'commit_op')} "
            f"applied {get('owner', 'applied_op')}")


def _escape_help(text: str) -> str:
    return text.replace("\\", "\\\\").replace("\n", "\\n")


def _escape_label(text: str) -> str:
    return text.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _labels(pairs: Iterable[tuple[str, str]]) -> str:
    inner = ",".join(f'{key}="{_escape_label(value)}"' for key, value in pairs)
    return "{" + inner + "}" if inner else ""


def _value(raw: int, divisor: int) -> str:
    # Division, not a multiplication by 1e-6: 50 / 1e6 prints 5e-05, 50 * 1e-6 does not.
    return str(raw) if divisor == 1 else repr(raw / divisor)


def render(snapshot: dict[str, dict[str, int]],
           catalogue: tuple[Metric | Histogram, ...] = CATALOGUE) -> str:
    """Prometheus text format of `snapshot` (CounterTable.snapshot(): block -> name -> value).

    The samples of one family are consecutive under one HELP and TYPE, as the format requires,
    whatever the order of the catalogue."""
    families: dict[str, list[Metric | Histogram]] = {}
    for metric in catalogue:
        families.setdefault(metric.name, []).append(metric)
    role_blocks = [block for block in snapshot if block != SUPERVISOR_BLOCK]
    lines: list[str] = []
    for name, members in families.items():
        samples = [line for metric in members for line in _samples(metric, snapshot, role_blocks)]
        if samples:
            lines.append(f"# HELP {name} {_escape_help(members[0].help)}")
            lines.append(f"# TYPE {name} {members[0].kind}")
            lines.extend(samples)
    return "\n".join(lines) + "\n"


def _samples(metric: Metric | Histogram, snapshot: dict[str, dict[str, int]],
             role_blocks: list[str]) -> list[str]:
    if isinstance(metric, Histogram):
        return _histogram_samples(metric, snapshot.get(metric.writer, {}))
    if metric.writer is None:
        return [f"{metric.name}{_labels(metric.labels + (('role', block),))} "
                f"{_value(snapshot[block][metric.counter], metric.divisor)}"
                for block in role_blocks if metric.counter in snapshot[block]]
    block = snapshot.get(metric.writer, {})
    if metric.counter not in block:
        return []
    return [f"{metric.name}{_labels(metric.labels)} {_value(block[metric.counter], metric.divisor)}"]


def _histogram_samples(metric: Histogram, block: dict[str, int]) -> list[str]:
    counters = metric.bucket_counters()
    if not all(name in block for name in counters + (metric.sum_counter,)):
        return []
    lines = []
    cumulative = 0
    for bound_us, name in zip(metric.bounds_us + (math.inf,), counters):
        cumulative += block[name]
        le = "+Inf" if bound_us == math.inf else _value(bound_us, MICROSECONDS_PER_SECOND)
        lines.append(f'{metric.name}_bucket{{le="{le}"}} {cumulative}')
    lines.append(f"{metric.name}_sum {_value(block[metric.sum_counter], MICROSECONDS_PER_SECOND)}")
    lines.append(f"{metric.name}_count {cumulative}")
    return lines
