"""The errors the storage layer raises for bad disks and bad data dirs.

A StorageError is an operator-facing condition (wrong dir, unformatted dir, every copy of
something corrupt); a broken internal assumption is core.check.InvariantError instead, never one
of these.
"""

from __future__ import annotations


class StorageError(Exception):
    """A data dir or file that cannot be used as it is; the message says why and where."""


class DataDirError(StorageError):
    """The data dir is missing, half formatted, already formatted, or of another replica."""


class SuperblockError(StorageError):
    """No copy of the superblock is valid."""


class SnapshotError(StorageError):
    """No copy of the checkpoint the superblock names is valid."""

