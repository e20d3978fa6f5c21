"""Linearizability checker (Wing & Gong search with Lowe's memo), partitioned by key.

Owns the check that a history can be ordered consistently with real time under a sequential
model. The model is supplied by the workload: `initial` (state of a key) and
`step(state, op) -> list of possible next states` (empty: op cannot happen in that state; an
op with no completion may have taken effect or not, so its step lists every outcome). The
history is split by key (P-compositionality), so each search is small. A read-only op with no
completion is dropped. Never mutates the history.
"""

from __future__ import annotations

import math

SEARCH_STATES_MAX = 2_000_000


def check_history(history, model) -> str | None:
    """None when linearizable, else a description of the first key that is not."""
    by_key: dict = {}
    for op in history:
        if op.kind == "register":
            continue
        if op.complete_tick is None and op.kind in model.READ_ONLY:
            continue
        by_key.setdefault(op.key, []).append(op)
    for key in sorted(by_key):
        if not linearizable(by_key[key], model):
            return f"key {key}: no linearization of {len(by_key[key])} operations"
    return None


def linearizable(ops: list, model) -> bool:
    ops = sorted(ops, key=lambda o: o.invoke_tick)
    count = len(ops)
    ends = [o.complete_tick if o.complete_tick is not None else math.inf for o in ops]
    required = sum(1 << i for i, o in enumerate(ops) if o.complete_tick is not None)
    seen: set = set()
    # Depth-first over (linearized set, model state); a candidate may go next only if it was
    # invoked before every not-yet-linearized operation completed.
    stack = [(0, model.initial)]
    while stack:
        done, state = stack.pop()
        if done & required == required:
            return True
        if (done, state) in seen:
            continue
        seen.add((done, state))
        if len(seen) > SEARCH_STATES_MAX:
            raise RuntimeError("linearizability search exceeded its bound")
        pending = [i for i in range(count) if not done >> i & 1]
        horizon = min(ends[i] for i in pending)
        for i in pending:
            if ops[i].invoke_tick > horizon:
                break
            for following in model.step(state, ops[i]):
                stack.append((done | 1 << i, following))
    return False


class RegisterModel:
    """A register per key: writes of unique values, reads that return the current value."""
    initial = b""
    READ_ONLY = ("read",)

    @staticmethod
    def step(state, op) -> list:
        if op.kind == "write":
            return [op.value]
        return [state] if op.result == state else []
