"""`metavsr format`: create a replica's data dir (superblock, journal/, snapshots/).

Owns the command line of formatting; the work is core.storage.datadir.format_data_dir. Never
formats over an existing formatted or non-empty dir: a replica that lost its disk must not
rejoin as if new (DESIGN section 6).

Initial credentials: the root password comes from --root-password-file or the environment
variable METAVSR_ROOT_PASSWORD, never a default: format refuses to run without one. It is
stored only as a salted scrypt hash inside the initial state (the checkpoint at op 0, written
before the superblock). The salt is derived from the cluster id (core.auth.root_salt) so that
replicas formatted one by one start from byte-identical state.

Cluster key: --new-cluster-key FILE writes a fresh random key (mode 0600, never over an
existing file) for a cluster formatted by hand: copy that one file to every replica host and
name it in each config's security.cluster_key_file (docs/SECURITY.md).
"""

from __future__ import annotations

import argparse
import os
import sys

from core import auth
from core.storage import datadir, segmented
from core.storage.errors import StorageError
from core.storage.superblock import JOURNAL_BACKENDS
from domains.mux import MuxStateMachine

ROOT_PASSWORD_ENV = "METAVSR_ROOT_PASSWORD"
ROOT_PASSWORD_MIN, ROOT_PASSWORD_MAX = 8, 100

HELP = "create a replica's data dir (refuses a dir that is formatted or not empty)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--cluster", required=True, type=lambda text: int(text, 0),
                        help="cluster id (u128; decimal or 0x hex)")
    parser.add_argument("--replica", required=True, type=int, help="this replica's index")
    parser.add_argument("--replica-count", required=True, type=int, help="replicas in the cluster")
    parser.add_argument("--journal", choices=JOURNAL_BACKENDS, default="segmented",
                        help="journal backend (default: segmented)")
    parser.add_argument("--ring-slots", type=int, default=datadir.RING_SLOTS_DEFAULT,
                        help="ring: number of prepare slots (>= checkpoint interval + 2 x pipeline)")
    parser.add_argument("--ring-slot-size-bytes", type=int,
                        default=datadir.RING_SLOT_SIZE_BYTES_DEFAULT,
                        help="ring: slot size = the largest prepare accepted (multiple of 4096)")
    parser.add_argument("--segment-size-bytes", type=int,
                        default=segmented.SEGMENT_SIZE_BYTES_DEFAULT,
                        help="segmented: a new segment file starts past this size")
    parser.add_argument("--root-password-file", metavar="FILE",
                        help=f"file holding the root user's password (else ${ROOT_PASSWORD_ENV})")
    parser.add_argument("--new-cluster-key", metavar="FILE",
                        help="also write a new random cluster key to FILE (mode 0600); give "
                             "the same file to every replica (security.cluster_key_file)")
    parser.add_argument("dir", metavar="DIR", help="the data dir to create")


def initial_state(cluster_id: int, root_password: str) -> dict:
    """The sections every replica of a cluster starts from: root with this password."""
    if not (ROOT_PASSWORD_MIN <= len(root_password) <= ROOT_PASSWORD_MAX):
        raise ValueError(f"the root password must be {ROOT_PASSWORD_MIN}..{ROOT_PASSWORD_MAX} "
                         "characters")
    root_hash = auth.hash_secret(root_password, salt=auth.root_salt(cluster_id))
    return MuxStateMachine(root_hash).snapshot()


def _root_password(args: argparse.Namespace) -> str:
    if args.root_password_file:
        with open(args.root_password_file, encoding="utf-8") as source:
            return source.read().strip("\n")
    password = os.environ.get(ROOT_PASSWORD_ENV, "")
    if not password:
        raise ValueError(f"no root password: give --root-password-file or set {ROOT_PASSWORD_ENV}"
                         " (there is no default password)")
    return password


def run(args: argparse.Namespace) -> int:
    if args.new_cluster_key and os.path.lexists(args.new_cluster_key):
        print(f"metavsr format: {args.new_cluster_key} exists; a cluster key is never "
              "overwritten (give the existing file to the configs instead)", file=sys.stderr)
        return 2
    try:
        sections = initial_state(args.cluster, _root_password(args))
    except (OSError, ValueError) as exc:
        print(f"metavsr format: {exc}", file=sys.stderr)
        return 2
    try:
        state = datadir.format_data_dir(
            args.dir, cluster=args.cluster, replica=args.replica,
            replica_count=args.replica_count, journal_backend=args.journal,
            ring_slots=args.ring_slots, ring_slot_size_bytes=args.ring_slot_size_bytes,
            segment_size_bytes=args.segment_size_bytes, initial_sections=sections)
    except (StorageError, AssertionError) as exc:  # AssertionError: a bound check failed
        print(f"metavsr format: {exc}", file=sys.stderr)
        return 1
    if args.new_cluster_key:
        try:
            auth.write_cluster_key(args.new_cluster_key)
        except OSError as exc:
            print(f"metavsr format: cluster key {args.new_cluster_key}: {exc.strerror}",
                  file=sys.stderr)
            return 1
        print(f"wrote a new cluster key to {args.new_cluster_key} (mode 0600): copy it to "
              "every replica and set security.cluster_key_file in each config")
    geometry = (f"{state.journal_slots} slots x {state.journal_slot_size_bytes} bytes"
                if state.journal_backend == "ring"
                else f"segments of {state.journal_segment_size_bytes} bytes")
    print(f"formatted {args.dir}: cluster {state.cluster} replica {state.replica} of "
          f"{state.replica_count}, journal {state.journal_backend} ({geometry})")
    return 0
