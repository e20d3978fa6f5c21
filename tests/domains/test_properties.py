"""Determinism properties of the MuxStateMachine: equal inputs give equal digests; a checkpoint
restored at any point then the rest of the sequence gives the digest of the straight run; and
the checkpoint bytes do not depend on PYTHONHASHSEED."""

from __future__ import annotations

import hashlib
import os
import random
import subprocess
import sys

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from domains.mux import MuxStateMachine
from tests.domains.gen import random_steps
from tests.domains.runner import Runner

CLIENTS_MAX = 5
FAST = settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def fresh() -> Runner:
    return Runner(MuxStateMachine(b"root-hash", clients_max=CLIENTS_MAX))


@FAST
@given(st.integers(min_value=0, max_value=2**32), st.integers(min_value=50, max_value=800))
def test_two_fresh_instances_reach_equal_digests(seed, count):
    steps = random_steps(random.Random(seed), count)
    first, second = fresh(), fresh()
    first.steps(steps)
    second.steps(steps)
    assert first.mux.digest() == second.mux.digest()
    assert first.mux.snapshot() == second.mux.snapshot()


@FAST
@given(st.integers(min_value=0, max_value=2**32), st.integers(min_value=50, max_value=800),
       st.floats(min_value=0.0, max_value=1.0))
def test_checkpoint_restore_then_the_rest_equals_straight_through(seed, count, cut):
    steps = random_steps(random.Random(seed), count)
    split = int(len(steps) * cut)
    straight = fresh()
    straight.steps(steps)

    first = fresh()
    first.steps(steps[:split])
    sections = first.mux.snapshot()
    restored = fresh()
    restored.mux.restore(sections)
    assert restored.mux.digest() == first.mux.digest()
    # The runner's own bookkeeping (client ids, request numbers) carries over unchanged.
    restored.op, restored.serial, restored.slots = first.op, first.serial, first.slots
    restored.steps(steps[split:])
    assert restored.mux.digest() == straight.mux.digest()
    assert restored.mux.snapshot() == straight.mux.snapshot()


def test_unchanged_sections_are_the_same_bytes_object():
    runner = fresh()
    runner.steps(random_steps(random.Random(7), 300))
    first = runner.mux.snapshot()
    second = runner.mux.snapshot()
    assert all(first[name][1] is second[name][1] for name in first)
    runner.mux.query(201, b"", 0)  # reads change nothing
    assert runner.mux.snapshot()["streams"][1] is first["streams"][1]


_CHILD = """
import hashlib, random, sys
sys.path.insert(0, {root!r})
from domains.mux import MuxStateMachine
from tests.domains.gen import random_steps
from tests.domains.runner import Runner
runner = Runner(MuxStateMachine(b"root-hash", clients_max=5))
for seed in (1, 2, 3):
    runner.steps(random_steps(random.Random(seed), 1500))
digest = hashlib.sha256()
for name, (version, data) in sorted(runner.mux.snapshot().items()):
    digest.update(name.encode() + bytes([version]) + data)
print(digest.hexdigest(), runner.mux.counts()["topics"])
"""


def test_checkpoints_are_byte_identical_across_hash_seeds():
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    outputs = []
    for hash_seed in ("1", "4242"):
        env = dict(os.environ, PYTHONHASHSEED=hash_seed)
        done = subprocess.run([sys.executable, "-c", _CHILD.format(root=root)], env=env,
                              capture_output=True, text=True, check=True, timeout=120)
        outputs.append(done.stdout)
    assert outputs[0] == outputs[1]
    assert hashlib.sha256(outputs[0].encode()).hexdigest()
