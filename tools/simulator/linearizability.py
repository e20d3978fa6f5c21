"""Linearizability checker for register histories (Wing & Gong search with Lowe's memo).

Owns the check that a history of writes (unique values) and reads on independent keys can be
ordered consistently with real time; the history is partitioned by key (P-compositionality),
so each search is small. A write with no completion may or may not have taken effect: it is
treated as completing at infinity. A read with no completion is dropped. Never mutates the
history.
"""

from __future__ import annotations

import math

SEARCH_STATES_MAX = 2_000_000


def check_history(history) -> str | None:
    """None when linearizable, else a description of the first key that is not."""
    by_key: dict[int, list] = {}
    for op in history:
        if op.kind == "register":
            continue
        if op.kind == "read" and op.complete_tick is None:
            continue
        by_key.setdefault(op.key, []).append(op)
    for key in sorted(by_key):
        if not _linearizable(by_key[key]):
            return f"key {key}: no linearization of {len(by_key[key])} operations"
    return None


def _linearizable(ops: list) -> bool:
    ops = sorted(ops, key=lambda o: o.invoke_tick)
    count = len(ops)
    ends = [o.complete_tick if o.complete_tick is not None else math.inf for o in ops]
    required = sum(1 << i for i, o in enumerate(ops) if o.complete_tick is not None)
    seen: set = set()
    # Depth-first over (linearized set, register value); a candidate may go next only if it
    # was invoked before every not-yet-linearized operation completed.
    stack = [(0, b"")]
    while stack:
        done, value = stack.pop()
        if done & required == required:
            return True
        if (done, value) in seen:
            continue
        seen.add((done, value))
        if len(seen) > SEARCH_STATES_MAX:
            raise RuntimeError("linearizability search exceeded its bound")
        pending = [i for i in range(count) if not done >> i & 1]
        horizon = min(ends[i] for i in pending)
        for i in pending:
            op = ops[i]
            if op.invoke_tick > horizon:
                break
            if op.kind == "write":
                stack.append((done | 1 << i, op.value))
            elif op.value == value:
                stack.append((done | 1 << i, value))
    return False
