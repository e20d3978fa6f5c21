"""`metavsr bench journal`: journal appends/s and fsyncs/s per backend, beside the raw disk.

Owns the journal benchmark: for each prepare size and batch size it times a raw
os.write + os.fdatasync loop (the physical limit of the disk, appending to a file in the same
dir; "raw_overwrite" rewrites a preallocated region in place instead) and then each backend's
append + sync, on the same disk in the same run; percentages are of the raw append loop. Only the journal
calls are timed (building the prepare frames is not). Never a test: figures are noisy on shared
machines; run it a few times and take medians.
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time

from core.storage import datadir
from core.storage.testing import CLUSTER_TEST, make_chain
from net import wire
from tools.bench.report import print_table

HELP = "journal appends/s and fsyncs/s for both backends beside a raw write+fdatasync loop"
PREPARE_SIZES_BYTES = (256, 4096)
BATCH_SIZES = (1, 16, 128)
SECONDS_PER_CASE = 2.0
SMOKE_SECONDS_PER_CASE = 0.15
RING_SLOTS = 4096
RING_SLOT_SIZE_BYTES = 4096
FRAMES_PER_CHUNK = 1024  # frames built ahead, outside the timed region


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--dir", help="where to write (default: a temp dir under the current dir, "
                                      "i.e. the disk a data dir would use)")
    parser.add_argument("--seconds", type=float, default=SECONDS_PER_CASE,
                        help="measured seconds per (backend, size, batch) case")
    parser.add_argument("--smoke", action="store_true",
                        help=f"{SMOKE_SECONDS_PER_CASE} s per case: finishes in seconds")


def _raw(directory: str, size_bytes: int, batch: int, seconds: float,
         overwrite: bool) -> tuple[int, int, float]:
    """The disk's limit: append (as the segmented log does) or overwrite a preallocated
    region in place (as the ring does, no size change to journal) with one write per batch."""
    path = os.path.join(directory, f"raw-{size_bytes}-{batch}")
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | (0 if overwrite else os.O_APPEND), 0o600)
    payload = b"r" * (size_bytes * batch)
    region_bytes = RING_SLOTS * RING_SLOT_SIZE_BYTES
    if overwrite:
        for offset in range(0, region_bytes, 1 << 20):
            os.pwrite(fd, bytes(1 << 20), offset)
        os.fsync(fd)
    syncs = 0
    offset = 0
    start = time.perf_counter()
    try:
        while (elapsed := time.perf_counter() - start) < seconds:
            if overwrite:
                os.pwrite(fd, payload, offset)
                offset = (offset + len(payload)) % (region_bytes - len(payload))
            else:
                os.write(fd, payload)
            os.fdatasync(fd)
            syncs += 1
    finally:
        os.close(fd)
        os.unlink(path)
    return syncs * batch, syncs, elapsed


class _Backend:
    """A freshly formatted data dir whose journal is appended to across the cases."""

    def __init__(self, directory: str, backend: str):
        self.root = os.path.join(directory, backend)
        state = datadir.format_data_dir(
            self.root, cluster=CLUSTER_TEST, replica=0, replica_count=3, journal_backend=backend,
            ring_slots=RING_SLOTS, ring_slot_size_bytes=RING_SLOT_SIZE_BYTES)
        self.journal, _ = datadir.open_journal(self.root, state, in_flight_ops_max=max(BATCH_SIZES))
        self.parent = 0

    def run(self, size_bytes: int, batch: int, seconds: float) -> tuple[int, int, float]:
        journal = self.journal
        appended = syncs = 0
        elapsed = 0.0
        while elapsed < seconds:
            frames = make_chain(journal.op_max + 1, FRAMES_PER_CHUNK, size_bytes,
                                parent=self.parent)
            self.parent = wire.frame_checksum(frames[-1])
            # Like a checkpoint: release what is behind us so the ring may wrap and old
            # segments go (untimed; a real checkpoint runs beside the journal).
            journal.truncate_prefix(journal.op_max)
            for start in range(0, FRAMES_PER_CHUNK, batch):
                began = time.perf_counter()
                journal.append(frames[start:start + batch])
                journal.sync()
                elapsed += time.perf_counter() - began
                appended += len(frames[start:start + batch])
                syncs += 1
                if elapsed >= seconds:
                    break
        return appended, syncs, elapsed

    def close(self) -> None:
        self.journal.close()


def run(args: argparse.Namespace) -> dict[str, float]:
    seconds = SMOKE_SECONDS_PER_CASE if args.smoke else args.seconds
    directory = tempfile.mkdtemp(prefix="metavsr-bench-journal-", dir=args.dir or os.getcwd())
    figures: dict[str, float] = {}
    rows = []
    try:
        backends = {name: _Backend(directory, name) for name in ("segmented", "ring")}
        for size_bytes in PREPARE_SIZES_BYTES:
            for batch in BATCH_SIZES:
                raw = _raw(directory, size_bytes, batch, seconds, overwrite=False)
                raw_rate = raw[0] / raw[2]
                cases = [("raw", raw),
                         ("raw_overwrite", _raw(directory, size_bytes, batch, seconds, True))]
                cases += [(name, b.run(size_bytes, batch, seconds)) for name, b in backends.items()]
                for name, (appends, syncs, elapsed) in cases:
                    key = f"{name}_{size_bytes}b_batch{batch}"
                    appends_per_s = appends / elapsed
                    mib_per_s = appends * size_bytes / elapsed / (1 << 20)
                    figures[f"{key}_appends_per_s"] = appends_per_s
                    figures[f"{key}_fsyncs_per_s"] = syncs / elapsed
                    figures[f"{key}_mib_per_s"] = mib_per_s
                    figures[f"{key}_of_raw_percent"] = 100.0 * appends_per_s / raw_rate
                    rows.append((name, size_bytes, batch, appends_per_s, syncs / elapsed,
                                 mib_per_s, 100.0 * appends_per_s / raw_rate))
        for backend in backends.values():
            backend.close()
    finally:
        shutil.rmtree(directory, ignore_errors=True)
    print_table(("journal", "prepare_bytes", "batch", "appends_per_s", "fsyncs_per_s",
                 "mib_per_s", "of_raw_percent"), rows,
                title=f"journal: {seconds} s per case, dir {directory}")
    return figures
