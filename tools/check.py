"""`metavsr check HISTORY`: is a load-generator history linearizable under the metadata model?

Owns reading a `metavsr loadgen --history` file (format: tools/loadgen/history.py), the
sequential model of the metadata the load generator touches, and the readable report of the
first window that admits no linearization. The search itself is the simulator's
(tools/simulator/linearizability.py), split by key: every stream, with its topics and groups
(a stream delete cascades to them, so they share its key), and every user is its own key.

The model (per key, immutable so the search can memoise it):
- a stream: alive or not, its id, its topics {name: id}, its groups {(topic, group): id};
  creates fail with *_already_exists when the name is taken and *_not_found when a parent is
  missing; get_stream/get_topic answer an empty payload (`id` null) for a missing object,
  get_consumer_group an error for a missing stream or topic and an empty payload for a
  missing group; an id a read returns must be the id the create returned.
- a user: exists or not, its id.
- join/leave_consumer_group: checked for what they say about the group's existence only
  (membership belongs to a client id, which a session changes when it is evicted).
- an answer the model has no rule for (e.g. too_many_streams, unauthorized) is accepted
  with no effect; `unknown` and `evicted` operations may have taken effect or not;
  get_streams is skipped (the history keeps only its first id).
Histories recorded with --read-consistency stale are not expected to pass.
"""

from __future__ import annotations

import argparse
import sys
import time

import orjson

from tools.simulator.linearizability import search, split_by_key

HELP = "check a loadgen --history file for linearizability (exit 1 on a violation)"
WINDOW_CONTEXT_OPS = 6  # linearized ops shown before the ones that could not be placed
WINDOW_OPS_MAX = 40


class Op:
    """One history line: `key` is the search partition (a stream or user), `names` the full
    "/"-joined names it targets."""

    __slots__ = ("kind", "key", "names", "invoke_tick", "complete_tick", "status", "id",
                 "process", "session", "line")

    def __init__(self, kind, key, names, invoke, complete, status, ident, process, session,
                 line):
        self.kind, self.key, self.names = kind, key, names
        self.invoke_tick, self.complete_tick = invoke, complete
        self.status, self.id = status, ident
        self.process, self.session, self.line = process, session, line

    def describe(self) -> str:
        end = "       ?      " if self.complete_tick is None \
            else f"{self.complete_tick / 1e9:12.6f} s"
        answer = self.status + (f" id={self.id}" if self.status == "ok" and self.id is not None
                                else " (empty)" if self.status == "ok" else "")
        return (f"[{self.invoke_tick / 1e9:12.6f} s .. {end}] p{self.process}/s{self.session} "
                f"{self.kind} {self.names} -> {answer}  (line {self.line})")


# --- the model ---------------------------------------------------------------------------

NO_STREAM = (False, None, frozenset(), frozenset())
UNKNOWN_OUTCOME = ("unknown", "evicted")


def _topics(state) -> dict:
    return dict(state[2])


def _with(state, *, topics=None, groups=None):
    return (state[0], state[1], state[2] if topics is None else topics,
            state[3] if groups is None else groups)


def _same_id(known, got) -> bool:
    return known is None or got is None or known == got


class MetadataModel:
    """The per-key sequential model; a key's state is a stream's or a user's."""

    initial = NO_STREAM
    READ_ONLY = ("get_stream", "get_topic", "get_consumer_group", "get_user")

    @staticmethod
    def step(state, op) -> list:
        kind = op.kind
        if op.status in UNKNOWN_OUTCOME:
            return _effects(state, op)
        if kind == "create_stream" or kind == "create_user":
            exists = "stream_name_already_exists" if kind == "create_stream" \
                else "user_already_exists"
            if op.status == "ok":
                return [] if state[0] else [(True, op.id, frozenset(), frozenset())]
            if op.status == exists:
                return [state] if state[0] else []
            return [state]
        if kind in ("get_stream", "get_user"):
            if op.status != "ok":
                return [state]
            if op.id is None:
                return [] if state[0] else [state]
            return [state] if state[0] and _same_id(state[1], op.id) else []
        if kind == "delete_stream":
            if op.status == "ok":
                return [NO_STREAM] if state[0] else []
            if op.status == "stream_id_not_found":
                return [] if state[0] else [state]
            return [state]
        _, topic, *rest = op.names.split("/") + [""]
        topics = _topics(state)
        if kind == "create_topic":
            if op.status == "ok":
                if not state[0] or topic in topics:
                    return []
                return [_with(state, topics=state[2] | {(topic, op.id)})]
            if op.status == "stream_id_not_found":
                return [] if state[0] else [state]
            if op.status == "topic_name_already_exists":
                return [state] if state[0] and topic in topics else []
            return [state]
        if kind == "get_topic":
            if op.status != "ok":
                return [state]
            if op.id is None:
                return [] if state[0] and topic in topics else [state]
            return [state] if state[0] and topic in topics and _same_id(topics[topic], op.id) \
                else []
        group = rest[0]
        groups = dict(state[3])
        present = groups.get((topic, group), False) is not False
        missing = _missing_parent(state, topics, topic)
        if kind == "create_consumer_group":
            if op.status == "ok":
                if missing or present:
                    return []
                return [_with(state, groups=state[3] | {((topic, group), op.id)})]
            if op.status in ("stream_id_not_found", "topic_id_not_found"):
                return [state] if missing == op.status else []
            if op.status == "consumer_group_name_already_exists":
                return [state] if not missing and present else []
            return [state]
        if kind == "get_consumer_group":
            if op.status in ("stream_id_not_found", "topic_id_not_found"):
                return [state] if missing == op.status else []
            if op.status != "ok":
                return [state]
            if op.id is None:
                return [] if not missing and present else [state] if not missing else []
            return [state] if not missing and present and _same_id(groups[(topic, group)], op.id) \
                else []
        if kind in ("join_consumer_group", "leave_consumer_group"):
            if op.status in ("ok", "consumer_group_member_not_found"):
                return [state] if not missing and present else []
            if op.status in ("stream_id_not_found", "topic_id_not_found"):
                return [state] if missing == op.status else []
            if op.status == "consumer_group_id_not_found":
                return [state] if not missing and not present else []
            return [state]
        raise ValueError(f"operation kind {kind!r} has no model")


def _missing_parent(state, topics: dict, topic: str) -> str | None:
    if not state[0]:
        return "stream_id_not_found"
    if topic not in topics:
        return "topic_id_not_found"
    return None


def _effects(state, op) -> list:
    """The states after an operation whose answer never came, had it taken effect."""
    kind = op.kind
    if kind in ("create_stream", "create_user"):
        return [state] if state[0] else [(True, None, frozenset(), frozenset())]
    if kind == "delete_stream":
        return [NO_STREAM]
    parts = op.names.split("/")
    if kind == "create_topic":
        if state[0] and parts[1] not in _topics(state):
            return [_with(state, topics=state[2] | {(parts[1], None)})]
        return [state]
    if kind == "create_consumer_group":
        groups = dict(state[3])
        if not _missing_parent(state, _topics(state), parts[1]) \
                and (parts[1], parts[2]) not in groups:
            return [_with(state, groups=state[3] | {((parts[1], parts[2]), None)})]
        return [state]
    return [state]  # join/leave change no modelled state


# --- reading and reporting ---------------------------------------------------------------

def read_history(path: str) -> tuple[list[Op], int]:
    """(ops to check, ops skipped: get_streams)."""
    ops, skipped = [], 0
    with open(path, "rb") as source:
        for number, line in enumerate(source, 1):
            if not line.strip():
                continue
            entry = orjson.loads(line)
            if entry["op"] == "get_streams":
                skipped += 1
                continue
            result = entry["result"]
            # Users and streams share the search only if a name is both: keep them apart.
            key = ("user:" if entry["op"] in ("create_user", "get_user") else "") \
                + entry["key"].split("/")[0]
            # An evicted op may have taken effect or not: like an unknown one, never required.
            complete = None if entry["status"] == "evicted" else entry["complete_ns"]
            ops.append(Op(entry["op"], key, entry["key"], entry["invoke_ns"], complete,
                          entry["status"], result["id"] if result else None,
                          entry["process"], entry["session"], number))
    return ops, skipped


class Report:
    """What a check found: counts, and for the first violation (by the invoke time of the
    first op that could not be placed) its key and rendered window."""

    def __init__(self):
        self.ops = self.keys = self.skipped = self.unknown = self.violations = 0
        self.first_key: str | None = None
        self.window: list[str] = []
        self.seconds = 0.0

    @property
    def ok(self) -> bool:
        return self.violations == 0

    def as_dict(self) -> dict:
        return {"linearizable": self.ok, "ops": self.ops, "keys": self.keys,
                "skipped_get_streams": self.skipped, "unknown_outcome": self.unknown,
                "violating_keys": self.violations, "first_violation_key": self.first_key,
                "first_violation_window": self.window, "check_s": round(self.seconds, 3)}


def check_ops(ops: list[Op], skipped: int = 0) -> Report:
    started = time.perf_counter()
    report = Report()
    report.ops, report.skipped = len(ops), skipped
    report.unknown = sum(1 for op in ops if op.complete_tick is None)
    partitions = split_by_key(ops, MetadataModel)
    report.keys = len(partitions)
    first_at = None
    for key, key_ops in partitions.items():
        verdict = search(key_ops, MetadataModel)
        if verdict.ok:
            continue
        report.violations += 1
        stuck = verdict.stuck()
        at = min((verdict.ops[i].invoke_tick for i in stuck), default=0)
        if first_at is None or at < first_at:
            first_at, report.first_key = at, key
            report.window = _window(verdict, stuck)
    report.seconds = time.perf_counter() - started
    return report


def _window(verdict, stuck: list[int]) -> list[str]:
    """The linearized ops just before the point the search could not pass, then the ops that
    were candidates there, each marked."""
    ops, done = verdict.ops, verdict.done
    placed = [i for i in range(len(ops)) if done >> i & 1]
    first_stuck = min(stuck) if stuck else len(ops)
    context = [i for i in placed if i < first_stuck][-WINDOW_CONTEXT_OPS:]
    lines = [f"  ok      {ops[i].describe()}" for i in context]
    lines.append(f"  -- model state here: {_state_text(verdict.state)}")
    for i in stuck[:WINDOW_OPS_MAX]:
        lines.append(f"  CANNOT  {ops[i].describe()}")
    return lines


def _state_text(state) -> str:
    if not state[0]:
        return "absent"
    parts = [f"exists id={state[1]}"]
    if state[2]:
        parts.append("topics " + ", ".join(f"{n}={i}" for n, i in sorted(state[2], key=str)))
    if state[3]:
        parts.append("groups " + ", ".join(f"{t}/{g}={i}" for (t, g), i in
                                            sorted(state[3], key=str)))
    return "; ".join(parts)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("history", metavar="HISTORY", help="a `metavsr loadgen --history` file")
    parser.add_argument("--json", action="store_true",
                        help="print one JSON line (verdict, counts, window, check_s)")


def run(args: argparse.Namespace) -> int:
    started = time.perf_counter()
    try:
        ops, skipped = read_history(args.history)
    except (OSError, ValueError, KeyError, TypeError) as exc:
        print(f"metavsr check: cannot read {args.history}: {exc}", file=sys.stderr)
        return 2
    report = check_ops(ops, skipped)
    total_s = time.perf_counter() - started
    if args.json:
        figures = report.as_dict()
        figures["total_s"] = round(total_s, 3)
        sys.stdout.write(orjson.dumps(figures).decode() + "\n")
    elif report.ok:
        print(f"linearizable: {report.ops} operations on {report.keys} keys "
              f"({report.unknown} with unknown outcome, {report.skipped} get_streams skipped), "
              f"checked in {total_s:.2f} s")
    else:
        print(f"NOT linearizable: {report.violations} of {report.keys} keys admit no order; "
              f"the first is {report.first_key}:")
        print("\n".join(report.window))
    return 0 if report.ok else 1
