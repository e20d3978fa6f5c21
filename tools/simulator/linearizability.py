"""Linearizability checker (Wing & Gong search with Lowe's memo), partitioned by key.

Owns the check that a history can be ordered consistently with real time under a sequential
model. Used by the simulator (ticks) and by `metavsr check` (nanoseconds): an operation only
needs `kind`, `key`, `invoke_tick` and `complete_tick` (None: no answer came). The model is
supplied by the caller: `initial` (state of a key) and `step(state, op) -> list of possible
next states` (empty: op cannot happen in that state; an op with no completion may have taken
effect or not, so it is never required and its step lists the outcomes where it did). The
history is split by key (P-compositionality), so each search is small. A read-only op with no
completion is dropped. Never mutates the history.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

SEARCH_STATES_MAX = 2_000_000


@dataclass
class Verdict:
    """One key's search: `ok`, its ops in invoke order, and the deepest point reached
    (`done`: bitmask of the ops linearized there, `state`: the model state after them)."""
    ok: bool
    ops: list
    done: int
    state: object

    def stuck(self) -> list[int]:
        """Indexes of the ops that were candidates where the deepest search stopped."""
        return _candidates(self.ops, _ends(self.ops), self.done)


def check_history(history, model) -> str | None:
    """None when linearizable, else a description of the first key that is not."""
    for key, ops in sorted(split_by_key(history, model).items()):
        if not search(ops, model).ok:
            return f"key {key}: no linearization of {len(ops)} operations"
    return None


def split_by_key(history, model) -> dict:
    by_key: dict = {}
    for op in history:
        if op.kind == "register":
            continue
        if op.complete_tick is None and op.kind in model.READ_ONLY:
            continue
        by_key.setdefault(op.key, []).append(op)
    return by_key


def linearizable(ops: list, model) -> bool:
    return search(ops, model).ok


def search(ops: list, model) -> Verdict:
    ops = sorted(ops, key=lambda o: o.invoke_tick)
    ends = _ends(ops)
    required = sum(1 << i for i, o in enumerate(ops) if o.complete_tick is not None)
    seen: set = set()
    deepest = (-1, 0, model.initial)
    # Depth-first over (linearized set, model state); a candidate may go next only if it was
    # invoked before every not-yet-linearized operation completed.
    stack = [(0, model.initial)]
    while stack:
        done, state = stack.pop()
        if done & required == required:
            return Verdict(True, ops, done, state)
        if (done, state) in seen:
            continue
        seen.add((done, state))
        if len(seen) > SEARCH_STATES_MAX:
            raise RuntimeError("linearizability search exceeded its bound")
        depth = (done & required).bit_count()
        if depth > deepest[0]:
            deepest = (depth, done, state)
        for i in _candidates(ops, ends, done):
            for following in model.step(state, ops[i]):
                stack.append((done | 1 << i, following))
    return Verdict(False, ops, deepest[1], deepest[2])


def _ends(ops: list) -> list:
    return [o.complete_tick if o.complete_tick is not None else math.inf for o in ops]


def _candidates(ops: list, ends: list, done: int) -> list[int]:
    """Pending ops invoked before the earliest completion among pending ops. One scan in
    invoke order: once an op was invoked after that horizon, so was every later op, and their
    completions (never before their invocations) cannot lower it."""
    found = []
    horizon = math.inf
    i = (~done & (done + 1)).bit_length() - 1  # the first op not yet linearized
    count = len(ops)
    while i < count:
        if not done >> i & 1:
            if ops[i].invoke_tick > horizon:
                break
            found.append(i)
            horizon = min(horizon, ends[i])
        i += 1
    return found


class RegisterModel:
    """A register per key: writes of unique values, reads that return the current value."""
    initial = b""
    READ_ONLY = ("read",)

    @staticmethod
    def step(state, op) -> list:
        if op.kind == "write":
            return [op.value]
        return [state] if op.result == state else []
