"""Fixtures shared by the storage tests: small formatted data dirs for each journal backend."""

from __future__ import annotations

import pytest

from core.storage.datadir import format_data_dir, open_data_dir, open_journal
from core.storage.testing import CLUSTER_TEST

BACKENDS = ("segmented", "ring")
RING_SLOTS = 64
RING_SLOT_SIZE_BYTES = 4096
SEGMENT_SIZE_BYTES = 8192
IN_FLIGHT_OPS = 8


def format_small(root, backend: str, replica: int = 0):
    return format_data_dir(str(root), cluster=CLUSTER_TEST, replica=replica, replica_count=3,
                           journal_backend=backend, ring_slots=RING_SLOTS,
                           ring_slot_size_bytes=RING_SLOT_SIZE_BYTES,
                           segment_size_bytes=SEGMENT_SIZE_BYTES)


class Dir:
    """A formatted data dir and helpers to (re)open its journal as a restarted replica."""

    def __init__(self, root, backend: str):
        self.root = str(root)
        self.backend = backend
        format_small(root, backend)
        self.journal = None

    def superblock(self):
        return open_data_dir(self.root, cluster=CLUSTER_TEST, replica=0)

    def reopen(self):
        if self.journal is not None:
            self.journal.close()
        superblock = self.superblock()
        state = superblock.state
        superblock.close()
        self.journal, recovery = open_journal(self.root, state, IN_FLIGHT_OPS)
        return recovery


@pytest.fixture(params=BACKENDS)
def backend(request) -> str:
    return request.param


@pytest.fixture
def data_dir(tmp_path, backend):
    directory = Dir(tmp_path / "data", backend)
    directory.reopen()
    yield directory
    if directory.journal is not None:
        directory.journal.close()


@pytest.fixture(autouse=True)
def root_password(monkeypatch):
    """`metavsr format` refuses to run without a root password (tests/security checks that)."""
    monkeypatch.setenv("METAVSR_ROOT_PASSWORD", "storage-tests-root-pw")
