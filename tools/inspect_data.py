"""`metavsr inspect superblock|journal|snapshot DIR [--json]`: print and verify a data dir.

Owns presenting what the storage layer finds: every superblock copy, the journal's chain,
faults and torn tail, every checkpoint copy and its section table. Never changes the dir: the
journal is recovered read-only (what recovery *would* cut or rewrite is reported, not done).
Exit status 0 when everything verifies, 1 when something is bad but readable, 2 when unusable.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys

import orjson

from core.storage import datadir
from core.storage.errors import StorageError
from core.storage.snapshot import SnapshotStore
from core.storage.prepare import verify_header
from core.storage.superblock import SuperblockState, newest_valid, read_copies

HELP = "print and verify a data dir's superblock, journal or snapshot"
JOURNAL_IN_FLIGHT_OPS = 128  # the recovery window assumed, as the journal role's default


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("what", choices=("superblock", "journal", "snapshot"))
    parser.add_argument("dir", metavar="DIR")
    parser.add_argument("--json", action="store_true", help="print one JSON document")
    parser.add_argument("--in-flight-ops", type=int, default=JOURNAL_IN_FLIGHT_OPS,
                        help="journal: the recovery window (ops written but not yet synced)")


def run(args: argparse.Namespace) -> int:
    paths = datadir.Paths(os.path.abspath(args.dir))
    try:
        if args.what == "journal":
            report = _journal(paths, args.in_flight_ops)
        else:
            report = {"superblock": _superblock, "snapshot": _snapshot}[args.what](paths)
    except (StorageError, OSError) as exc:
        report = {"ok": False, "error": str(exc)}
        status = 2
    else:
        status = 0 if report["ok"] else 1
    if args.json:
        sys.stdout.write(orjson.dumps(report, option=orjson.OPT_INDENT_2).decode() + "\n")
    else:
        _print(report)
    return status


def _superblock(paths: datadir.Paths) -> dict:
    copies = read_copies(paths.superblock)
    chosen = newest_valid(copies)
    return {
        "ok": all(c.state == chosen for c in copies),
        "chosen": _superblock_state(chosen),
        "copies": [{"copy": c.copy, "valid": c.state is not None, "problem": c.problem,
                    "sequence": c.state.sequence if c.state else None} for c in copies],
    }


def _superblock_state(state: SuperblockState) -> dict:
    """The state's fields, its raw prepare headers shown by identity (op and checksum)."""
    fields = dataclasses.asdict(state)
    fields["view_headers"] = [_header(raw) for raw in state.view_headers]
    fields["checkpoint_header"] = _header(state.checkpoint_header) if state.checkpoint_header \
        else None
    return fields


def _header(raw: bytes) -> dict:
    identity = verify_header(raw)
    return {"op": identity.op, "checksum": identity.checksum} if identity else {"valid": False}


def _journal(paths: datadir.Paths, in_flight_ops: int) -> dict:
    state = newest_valid(read_copies(paths.superblock))
    if state.journal_backend == "ring":  # the window never exceeds the ring (ring.py)
        in_flight_ops = min(in_flight_ops, state.journal_slots - 1)
    journal, recovery = datadir.open_journal(paths.root, state, in_flight_ops, read_only=True)
    try:
        return {
            "ok": not recovery.faults and not recovery.cut_ops and not recovery.repaired_headers,
            "backend": state.journal_backend,
            "checkpoint_op": state.checkpoint_op,
            "in_flight_ops_assumed": in_flight_ops,
            "op_min": recovery.op_min,
            "op_max": recovery.op_max,
            "chain": "valid" if not recovery.faults else "valid except the faults",
            "faults": [dataclasses.asdict(f) for f in recovery.faults],
            "torn_ops_recovery_would_drop": list(recovery.cut_ops),
            "ring_headers_recovery_would_rewrite": recovery.repaired_headers,
            "files": sorted(os.listdir(paths.journal)),
        }
    finally:
        journal.close()


def _snapshot(paths: datadir.Paths) -> dict:
    state = newest_valid(read_copies(paths.superblock))
    if not state.checkpoint_checksum:
        return {"ok": True, "checkpoint_op": 0, "note": "no checkpoint yet (empty state)"}
    copies = SnapshotStore(paths.snapshots).verify(state.checkpoint_op, state.checkpoint_checksum)
    header = next((c.header for c in copies if c.header and not c.problem), None)
    return {
        "ok": all(not c.problem for c in copies),
        "usable": header is not None,
        "checkpoint_op": state.checkpoint_op,
        "checkpoint_checksum": state.checkpoint_checksum,
        "copies": [{"copy": c.copy, "path": c.path, "valid": not c.problem, "problem": c.problem}
                   for c in copies],
        "view": header.view if header else None,
        "timestamp": header.timestamp if header else None,
        "sections": [dataclasses.asdict(s) for s in header.sections] if header else [],
    }


def _print(report: dict, indent: str = "") -> None:
    for key, value in report.items():
        if isinstance(value, dict):
            print(f"{indent}{key}:")
            _print(value, indent + "  ")
        elif isinstance(value, list) and value and isinstance(value[0], dict):
            print(f"{indent}{key}:")
            for item in value:
                print(f"{indent}  - " + ", ".join(f"{k}={v}" for k, v in item.items()))
        else:
            print(f"{indent}{key}: {value}")
