"""Shared test helpers: where the Iggy SDK vectors live (shared/ beside the repository), and a
running 3-replica cluster for the tests that need one."""

from __future__ import annotations

import json
import os

import pytest

SHARED_DIR = os.path.normpath(os.path.join(os.path.dirname(__file__), "..", "..", "shared"))
VECTORS_DIR = os.path.join(SHARED_DIR, "iggy-vectors")


def load_sdk_calls() -> list[dict]:
    """Every call recorded from the real apache-iggy wheel (iggy-vectors/sdk_frames.jsonl)."""
    path = os.path.join(VECTORS_DIR, "sdk_frames.jsonl")
    if not os.path.exists(path):
        pytest.skip(f"SDK vectors not found at {path}")
    with open(path) as source:
        return [json.loads(line) for line in source]


@pytest.fixture
def cluster(tmp_path):
    """A formatted 3-replica cluster, every replica started; stopped after the test."""
    from tests.integration.test_cluster import Cluster
    running = Cluster(str(tmp_path / "cluster"))
    for index in range(3):
        running.start(index)
    yield running
    running.stop()
