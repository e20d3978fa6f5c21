"""`metavsr bench scale`: what a growing catalogue costs, at 1k, 10k, 100k and 1M objects.

Owns the scale benchmark. For each size N (objects = streams + topics, TOPICS_PER_STREAM topics
per stream) it:
- builds the catalogue through domains.MuxStateMachine (tools/bench/checkpoint.py's Builder) in
  a fresh child process, so the child's resident memory before and after the build gives the
  state machine's memory per object without what earlier sizes left in the allocator;
- times the checkpoint of that state: serialising the sections, writing them (3 copies fsynced
  and the superblock), loading and verifying, restoring a state machine from them;
- formats a fresh local cluster with that state as its op-0 checkpoint (tools/bench/replicas.py),
  times its start until a client logs in (every replica restores the catalogue), reads the
  primary's owner role resident memory, and runs the load generator's writes-only mix closed
  loop (tools/loadgen), so write throughput and latency are measured on a cluster that already
  holds N objects;
- stops the cluster and removes its files before the next size.
Never a test and never an assertion on speed: it prints a table and flat JSON figures.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import time

from tools.bench import BenchError, local
from tools.bench.report import print_table

HELP = "write latency/throughput, checkpoint times and memory as the catalogue grows"
SIZES_DEFAULT = (1_000, 10_000, 100_000, 1_000_000)
SIZE_MAX = 10_000_000
TOPICS_PER_STREAM = 9  # one stream and its topics: 10 objects
DURATION_DEFAULT_S = 5.0
WARMUP_DEFAULT_S = 1.0
PROCESSES_DEFAULT = 2
CLIENTS_DEFAULT = 16
_OP_CREATE_TOPIC, _OP_LOGOUT = 132, 3


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--sizes", default=",".join(str(n) for n in SIZES_DEFAULT),
                        help="catalogue sizes in objects, comma-separated (default "
                             f"{','.join(str(n) for n in SIZES_DEFAULT)})")
    parser.add_argument("--duration", type=float, default=DURATION_DEFAULT_S, metavar="S",
                        help=f"measured write seconds per size (default {DURATION_DEFAULT_S:g})")
    parser.add_argument("--warmup", type=float, default=WARMUP_DEFAULT_S, metavar="S")
    parser.add_argument("--processes", type=int, default=PROCESSES_DEFAULT, metavar="P")
    parser.add_argument("--clients", type=int, default=CLIENTS_DEFAULT, metavar="C",
                        help="sessions per process")
    parser.add_argument("--replicas", type=int, default=3, choices=(1, 3, 5))
    parser.add_argument("--journal", choices=("segmented", "ring"), default="segmented")
    parser.add_argument("--dir", help="where the temp dir goes (default: the system's)")


def parse_sizes(text: str) -> list[int]:
    try:
        sizes = sorted({int(item) for item in text.split(",") if item.strip()})
    except ValueError:
        raise BenchError(f"--sizes {text!r} is not a comma-separated list of integers") from None
    if not sizes or sizes[0] < TOPICS_PER_STREAM + 1 or sizes[-1] > SIZE_MAX:
        raise BenchError(f"--sizes must be between {TOPICS_PER_STREAM + 1} and {SIZE_MAX}")
    return sizes


def run(args: argparse.Namespace) -> dict[str, object]:
    sizes = parse_sizes(args.sizes)
    if args.duration <= 0 or args.warmup < 0:
        raise BenchError("--duration must be positive and --warmup not negative")
    figures: dict[str, object] = {"topics_per_stream": TOPICS_PER_STREAM,
                                  "replicas": args.replicas, "journal": args.journal,
                                  "processes": args.processes,
                                  "clients_per_process": args.clients,
                                  "duration_per_size_s": args.duration}
    rows = []
    with local.work_dir("metavsr-bench-scale-", args.dir) as tmp:
        for objects in sizes:
            print(f"scale: {objects:,} objects", file=sys.stderr, flush=True)
            size = _one_size(args, objects, os.path.join(tmp, f"n{objects}"))
            figures.update({f"objects_{objects}_{key}": value for key, value in size.items()})
            rows.append([objects, size["build_s"], size["memory_bytes_per_object"],
                         size["checkpoint_bytes"] / (1 << 20), size["serialise_s"],
                         size["checkpoint_write_s"], size["checkpoint_load_s"],
                         size["restore_s"], size["cluster_start_s"],
                         size["owner_rss_bytes"] / (1 << 20), size["writes_per_s"],
                         size["write_p50_ms"], size["write_p99_ms"], size["write_p99_9_ms"]])
    print_table(["objects", "build s", "B/object", "ckpt MiB", "serialise s", "write s",
                 "load s", "restore s", "start s", "owner MiB", "writes/s", "p50 ms", "p99 ms",
                 "p99.9 ms"], rows,
                title=f"bench scale: {args.replicas} replicas ({args.journal}), "
                      f"{args.processes} x {args.clients} sessions writing, "
                      f"{args.duration:g} s per size; B/object: the state machine's resident "
                      "memory per object; write s: 3 copies fsynced + superblock")
    return figures


def _one_size(args, objects: int, directory: str) -> dict[str, object]:
    from core.auth import hash_secret, root_salt
    from tools.bench.replicas import MetavsrCluster

    os.makedirs(directory)
    built: dict = {}

    def sections(cluster_id: int, password: str) -> dict:
        root_hash = hash_secret(password, salt=root_salt(cluster_id))
        built.update(_build_in_child(objects, root_hash))
        return built["sections"]

    cluster = MetavsrCluster(os.path.join(directory, "cluster"), args.replicas, args.journal)
    try:
        cluster.create(sections)
        checkpoint = _time_checkpoint(directory, built["sections"])
        del built["sections"]  # the replicas have it on disk now; free it before the run
        began = time.perf_counter()
        cluster.start()
        start_s = time.perf_counter() - began
        owner = cluster.role_pids(cluster.primary())["owner"]
        owner_rss = local.rss_bytes(owner)
        writes = _writes(args, cluster)
    finally:
        cluster.stop()
    shutil.rmtree(directory)  # each size's data is large: free the disk before the next
    return {"build_s": round(built["build_s"], 3),
            "memory_bytes_per_object": round(built["rss_delta_bytes"] / objects, 1),
            "serialise_s": round(built["serialise_s"], 4),
            **checkpoint, "cluster_start_s": round(start_s, 3), "owner_rss_bytes": owner_rss,
            **writes}


def _build_in_child(objects: int, root_hash: bytes) -> dict:
    import multiprocess

    with multiprocess.get_context("fork").Pool(1) as pool:
        return pool.apply(_build, (objects, root_hash))


def _build(objects: int, root_hash: bytes) -> dict:
    """In the child: the catalogue of `objects` streams and topics, its sections and costs."""
    from domains import streams_wire as sw
    from tools.bench.checkpoint import Builder, timed

    before = local.rss_bytes()
    began = time.perf_counter()
    builder = Builder(root_hash, one_op=True)
    streams, rest = divmod(objects, TOPICS_PER_STREAM + 1)
    builder.build(streams, TOPICS_PER_STREAM, 2)  # 2 users: root only (it counts root)
    for extra in range(rest):  # sizes that are not whole streams: more topics in stream 0
        builder.apply(_OP_CREATE_TOPIC, sw.encode_create_topic(0, 1, f"extra-{extra}", {}))
    builder.apply(_OP_LOGOUT, b"")  # the cluster must not inherit the builder's session
    build_s = time.perf_counter() - began
    rss_delta = local.rss_bytes() - before
    counts = builder.mux.counts()
    assert counts["streams"] + counts["topics"] == objects, counts
    assert counts["clients"] == 0, counts
    sections, serialise_s = timed(builder.mux.snapshot)
    return {"sections": sections, "build_s": build_s,
            "rss_delta_bytes": rss_delta, "serialise_s": serialise_s}


def _time_checkpoint(directory: str, sections: dict) -> dict[str, object]:
    from core.storage.snapshot_writer import SnapshotRequest
    from domains.mux import MuxStateMachine
    from tools.bench.checkpoint import open_store, timed

    work = os.path.join(directory, "checkpoint")
    os.makedirs(work)
    superblock, store, writer = open_store(work)
    try:
        written, write_s = timed(lambda: writer.checkpoint(SnapshotRequest(1, 0, 1, sections)))
        loaded, load_s = timed(lambda: store.load(written.header.op, written.header.checksum))
        _, restore_s = timed(lambda: MuxStateMachine().restore(loaded.sections))
    finally:
        superblock.close()
        shutil.rmtree(work, ignore_errors=True)
    return {"checkpoint_bytes": sum(len(data) for _, data in sections.values()),
            "checkpoint_write_s": round(write_s, 4),
            "checkpoint_load_s": round(load_s, 4), "restore_s": round(restore_s, 4)}


def _writes(args, cluster) -> dict[str, object]:
    from tools.loadgen import coordinator, mix
    from tools.loadgen.worker import WorkerConfig

    config = WorkerConfig(addresses=tuple(cluster.addresses), login_body=cluster.login_body(),
                          processes=args.processes, clients=args.clients,
                          mix=mix.parse_mix("writes"), seed=1, run=f"s{int(time.time())}",
                          rate=None, duration_s=args.duration, ops=None,
                          warmup_s=args.warmup, stale_reads=False, history=None, drain_s=10.0)
    try:
        coordinator.check_bounds(config)
        outcome = coordinator.run(config)
    except coordinator.RunFailed as exc:
        raise BenchError(f"the load generator failed: {exc}") from None
    figures = outcome.totals.figures(mix.KINDS, outcome.elapsed_s)
    return {"writes_per_s": figures["ops_per_s"], "write_p50_ms": figures["p50_ms"],
            "write_p99_ms": figures["p99_ms"], "write_p99_9_ms": figures["p99_9_ms"],
            "write_errors": figures["errors"]}
