"""`metavsr bench journal`: journal appends/s and fsyncs/s per backend, beside the raw disk.

Owns the journal benchmark: for each prepare size and batch size it times a raw
os.write + os.fdatasync loop (the physical limit of the disk, appending to a file in the same
dir; "raw_overwrite" rewrites a preallocated region in place instead) and each backend's
write + sync, on the same disk, interleaved in short rounds so all see the same disk load;
percentages are of the raw append loop. Only the journal
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
ROUND_SECONDS = 0.1
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


class _Raw:
    """The disk's limit: one write + one fdatasync per batch, either appending to a file (as
    the segmented log does) or overwriting a preallocated region in place (as the ring does:
    no size change for the file system to journal)."""

    def __init__(self, directory: str, overwrite: bool):
        self.overwrite = overwrite
        self.path = os.path.join(directory, "raw-overwrite" if overwrite else "raw-append")
        self.fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | (0 if overwrite else os.O_APPEND),
                          0o600)
        self.region_bytes = RING_SLOTS * RING_SLOT_SIZE_BYTES
        self.offset = 0
        if overwrite:
            for offset in range(0, self.region_bytes, 1 << 20):
                os.pwrite(self.fd, bytes(1 << 20), offset)
            os.fsync(self.fd)

    def run(self, size_bytes: int, batch: int, seconds: float) -> tuple[int, int, float]:
        payload = b"r" * (size_bytes * batch)
        syncs = 0
        start = time.perf_counter()
        while (elapsed := time.perf_counter() - start) < seconds:
            if self.overwrite:
                os.pwrite(self.fd, payload, self.offset)
                self.offset = (self.offset + len(payload)) % (self.region_bytes - len(payload))
            else:
                os.write(self.fd, payload)
            os.fdatasync(self.fd)
            syncs += 1
        return syncs * batch, syncs, elapsed

    def close(self) -> None:
        os.close(self.fd)
        os.unlink(self.path)


class _Backend:
    """A freshly formatted data dir whose journal is appended to across the cases."""

    def __init__(self, directory: str, backend: str):
        self.root = os.path.join(directory, backend)
        state = datadir.format_data_dir(
            self.root, cluster=CLUSTER_TEST, replica=0, replica_count=3, journal_backend=backend,
            ring_slots=RING_SLOTS, ring_slot_size_bytes=RING_SLOT_SIZE_BYTES)
        self.journal, _ = datadir.open_journal(self.root, state, in_flight_ops_max=max(BATCH_SIZES))
        self.pending: list[bytes] = []  # built ahead (untimed), ops op_max + 1, op_max + 2, ...

    def _build(self, size_bytes: int, count: int) -> None:
        if self.pending and len(self.pending[0]) != size_bytes:
            self.pending = []  # another case: rebuild from the journal's next op
        if len(self.pending) >= count:
            return
        last = self.pending[-1] if self.pending else self.journal.read(self.journal.op_max)
        next_op = self.journal.op_max + 1 + len(self.pending)
        self.pending += make_chain(next_op, FRAMES_PER_CHUNK, size_bytes,
                                   parent=wire.frame_checksum(last) if last else 0)

    def run(self, size_bytes: int, batch: int, seconds: float) -> tuple[int, int, float]:
        journal = self.journal
        appended = syncs = 0
        elapsed = 0.0
        while elapsed < seconds:
            self._build(size_bytes, batch)
            frames, self.pending = self.pending[:batch], self.pending[batch:]
            # Like a checkpoint: release what is behind us so the ring may wrap and old
            # segments go (untimed; a real checkpoint runs beside the journal).
            journal.truncate_prefix(max(0, journal.op_max - RING_SLOTS // 2))
            began = time.perf_counter()
            journal.write(frames)
            journal.sync()
            elapsed += time.perf_counter() - began
            appended += len(frames)
            syncs += 1
        return appended, syncs, elapsed

    def close(self) -> None:
        self.journal.close()


def run(args: argparse.Namespace) -> dict[str, float]:
    seconds = SMOKE_SECONDS_PER_CASE if args.smoke else args.seconds
    rounds = max(1, round(seconds / ROUND_SECONDS))
    directory = tempfile.mkdtemp(prefix="metavsr-bench-journal-", dir=args.dir or os.getcwd())
    figures: dict[str, float] = {}
    rows = []
    try:
        contenders = {"raw": _Raw(directory, overwrite=False),
                      "raw_overwrite": _Raw(directory, overwrite=True),
                      "segmented": _Backend(directory, "segmented"),
                      "ring": _Backend(directory, "ring")}
        for size_bytes in PREPARE_SIZES_BYTES:
            for batch in BATCH_SIZES:
                # Interleaved short rounds: a shared disk's speed drifts by the second, and
                # every contender must see the same drift for the ratios to mean anything.
                totals = {name: [0, 0, 0.0] for name in contenders}
                for _ in range(rounds):
                    for name, contender in contenders.items():
                        result = contender.run(size_bytes, batch, seconds / rounds)
                        totals[name] = [a + b for a, b in zip(totals[name], result)]
                raw_rate = totals["raw"][0] / totals["raw"][2]
                for name, (appends, syncs, elapsed) in totals.items():
                    key = f"{name}_{size_bytes}b_batch{batch}"
                    appends_per_s = appends / elapsed
                    mib_per_s = appends * size_bytes / elapsed / (1 << 20)
                    figures[f"{key}_appends_per_s"] = appends_per_s
                    figures[f"{key}_fsyncs_per_s"] = syncs / elapsed
                    figures[f"{key}_mib_per_s"] = mib_per_s
                    figures[f"{key}_of_raw_percent"] = 100.0 * appends_per_s / raw_rate
                    rows.append((name, size_bytes, batch, appends_per_s, syncs / elapsed,
                                 mib_per_s, 100.0 * appends_per_s / raw_rate))
        for contender in contenders.values():
            contender.close()
    finally:
        shutil.rmtree(directory, ignore_errors=True)
    print_table(("journal", "prepare_bytes", "batch", "appends_per_s", "fsyncs_per_s",
                 "mib_per_s", "of_raw_percent"), rows,
                title=f"journal: {seconds} s per contender and case, in {rounds} interleaved "
                      f"rounds; of_raw_percent = appends/s over the raw append loop's")
    return figures
