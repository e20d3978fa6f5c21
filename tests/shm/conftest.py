"""Fixtures for the shm tests: a cluster id of the test's own, whose segments are always removed."""

from __future__ import annotations

import multiprocessing
import random

import pytest

from shm.naming import REPLICA_INDEX_MAX, remove_stale

# fork: children inherit the parent's mappings and fds (the eventfd doorbell needs that) and
# start in milliseconds.
FORK = multiprocessing.get_context("fork")


@pytest.fixture
def cluster_id():
    """A random cluster id: tests running side by side never share a segment name."""
    cluster = random.SystemRandom().getrandbits(64)
    yield cluster
    for replica in range(REPLICA_INDEX_MAX + 1):
        remove_stale(cluster, replica)
