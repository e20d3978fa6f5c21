"""`metavsr format`: create a replica's data dir (superblock, journal/, snapshots/).

Owns the command line of formatting; the work is core.storage.datadir.format_data_dir. Never
formats over an existing formatted or non-empty dir: a replica that lost its disk must not
rejoin as if new (DESIGN section 6).

Initial credentials: format_data_dir takes `initial_sections`, the initial state written as
the checkpoint at op 0 before the superblock (a crash before the superblock leaves a half
formatted dir, refused at open). The security work adds the root password option here (config,
environment or file; never a default), hashes it and passes
MuxStateMachine(root_password_hash, root_created_at_us=...).snapshot(); until then format
writes no state at all and root cannot log in.
"""

from __future__ import annotations

import argparse
import sys

from core.storage import datadir, segmented
from core.storage.errors import StorageError
from core.storage.superblock import JOURNAL_BACKENDS

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
    parser.add_argument("dir", metavar="DIR", help="the data dir to create")


def run(args: argparse.Namespace) -> int:
    try:
        state = datadir.format_data_dir(
            args.dir, cluster=args.cluster, replica=args.replica,
            replica_count=args.replica_count, journal_backend=args.journal,
            ring_slots=args.ring_slots, ring_slot_size_bytes=args.ring_slot_size_bytes,
            segment_size_bytes=args.segment_size_bytes)
    except (StorageError, AssertionError) as exc:  # AssertionError: a bound check failed
        print(f"metavsr format: {exc}", file=sys.stderr)
        return 1
    geometry = (f"{state.journal_slots} slots x {state.journal_slot_size_bytes} bytes"
                if state.journal_backend == "ring"
                else f"segments of {state.journal_segment_size_bytes} bytes")
    print(f"formatted {args.dir}: cluster {state.cluster} replica {state.replica} of "
          f"{state.replica_count}, journal {state.journal_backend} ({geometry})")
    return 0
