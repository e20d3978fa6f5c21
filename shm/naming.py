"""Names of a replica's POSIX shared-memory segments and semaphores, and removal of stale ones.

Every name of one replica starts with /metavsr-<cluster>-<replica>-, so the supervisor of a
restarted replica can find and unlink everything a crashed run left behind: a process killed with
-9 never runs its close(), and a stale segment would otherwise hand the new run old counters.
Part names are restricted to lower-case identifiers so that no prefix of one replica can match
another replica's names (replica 1 never matches replica 11: the prefix ends with '-').
"""

from __future__ import annotations

import os
import re

import posix_ipc

from core.check import check, check_range

NAME_PREFIX = "metavsr"
# The cluster id travels in every wire header as a u128 (DESIGN section 4).
CLUSTER_ID_MAX = 2**128 - 1
# A cluster has at most 7 replicas (DESIGN: any odd count up to 7).
REPLICA_INDEX_MAX = 6
# Lower-case identifier; no '-' or '.' so part names cannot collide with the separators.
_PART_RE = re.compile(r"[a-z][a-z0-9_]{0,31}")
# Linux keeps POSIX segments as /dev/shm/NAME and semaphores as /dev/shm/sem.NAME.
SHM_DIR = "/dev/shm"
_SEMAPHORE_FILE_PREFIX = "sem."


def replica_prefix(cluster_id: int, replica_index: int) -> str:
    """The name prefix (without the leading '/') shared by every segment of one replica."""
    check_range(cluster_id, 0, CLUSTER_ID_MAX, "cluster_id")
    check_range(replica_index, 0, REPLICA_INDEX_MAX, "replica_index")
    return f"{NAME_PREFIX}-{cluster_id}-{replica_index}-"


def _check_part(part: str) -> str:
    check(_PART_RE.fullmatch(part) is not None, f"shm part name {part!r} is not [a-z][a-z0-9_]{{0,31}}")
    return part


def ring_name(cluster_id: int, replica_index: int, ring: str) -> str:
    """POSIX name of a ring segment, e.g. /metavsr-7-0-inbound."""
    return "/" + replica_prefix(cluster_id, replica_index) + _check_part(ring)


def doorbell_name(cluster_id: int, replica_index: int, process: str) -> str:
    """POSIX name of a process's doorbell (its flag segment and its semaphore share it).

    The '.' keeps doorbells apart from rings, whose names cannot contain one.
    """
    return "/" + replica_prefix(cluster_id, replica_index) + "bell." + _check_part(process)


def remove_stale(cluster_id: int, replica_index: int, shm_dir: str = SHM_DIR) -> list[str]:
    """Unlink every segment and semaphore of this replica; return the POSIX names removed.

    Run by the supervisor before it creates anything, and by tests. Names another process
    unlinks at the same moment are skipped, not errors.
    """
    prefix = replica_prefix(cluster_id, replica_index)
    removed = []
    for entry in sorted(os.listdir(shm_dir)):
        if entry.startswith(prefix):
            unlink, name = posix_ipc.unlink_shared_memory, "/" + entry
        elif entry.startswith(_SEMAPHORE_FILE_PREFIX + prefix):
            unlink, name = posix_ipc.unlink_semaphore, "/" + entry[len(_SEMAPHORE_FILE_PREFIX):]
        else:
            continue
        try:
            unlink(name)
        except posix_ipc.ExistentialError:
            continue
        removed.append(name)
    return removed
