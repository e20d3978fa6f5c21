"""Segment names and the removal of what a crashed run left in /dev/shm."""

from __future__ import annotations

import os

import posix_ipc
import pytest

from core.check import InvariantError
from shm.doorbell import SemaphoreDoorbell
from shm.naming import SHM_DIR, doorbell_name, remove_stale, ring_name
from shm.ring import Ring


def test_names_carry_cluster_replica_and_part():
    assert ring_name(7, 2, "inbound") == "/metavsr-7-2-inbound"
    assert doorbell_name(7, 2, "net") == "/metavsr-7-2-bell.net"


@pytest.mark.parametrize("cluster, replica, part", [
    (-1, 0, "inbound"), (2**128, 0, "inbound"), (1, 7, "inbound"),
    (1, 0, "In"), (1, 0, "a-b"), (1, 0, "a.b"), (1, 0, ""), (1, 0, "x" * 33),
])
def test_bad_name_parts_are_refused(cluster, replica, part):
    with pytest.raises(InvariantError):
        ring_name(cluster, replica, part)


def _ours(cluster_id: int) -> list[str]:
    return sorted(entry for entry in os.listdir(SHM_DIR) if f"metavsr-{cluster_id}-" in entry)


def test_close_unlinks_segments_and_semaphores(cluster_id):
    ring = Ring.create(ring_name(cluster_id, 0, "inbound"), 4096, 100)
    bell = SemaphoreDoorbell.create(doorbell_name(cluster_id, 0, "net"), poll_us=0)
    assert len(_ours(cluster_id)) == 3  # ring, flag segment, semaphore
    ring.close()
    bell.close()
    assert _ours(cluster_id) == []


def test_stale_segments_of_a_crashed_run_are_removed_and_only_this_replicas(cluster_id):
    # A crashed run: created, never closed (a killed process runs no close()).
    for replica in (0, 1):
        Ring.create(ring_name(cluster_id, replica, "inbound"), 4096, 100)
        SemaphoreDoorbell.create(doorbell_name(cluster_id, replica, "net"), poll_us=0)
    with pytest.raises(posix_ipc.ExistentialError):
        Ring.create(ring_name(cluster_id, 0, "inbound"), 4096, 100)  # the new run is blocked

    removed = remove_stale(cluster_id, 0)

    prefix = f"/metavsr-{cluster_id}-0-"
    assert sorted(removed) == sorted([prefix + "bell.net", prefix + "bell.net", prefix + "inbound"])
    assert _ours(cluster_id) == sorted(
        [f"metavsr-{cluster_id}-1-bell.net", f"metavsr-{cluster_id}-1-inbound", f"sem.metavsr-{cluster_id}-1-bell.net"])
    Ring.create(ring_name(cluster_id, 0, "inbound"), 4096, 100).close()  # the new run can start
    assert remove_stale(cluster_id, 0) == []
