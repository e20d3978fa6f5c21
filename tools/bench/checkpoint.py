"""`metavsr bench checkpoint`: time to write and to load a checkpoint of a large catalogue.

Owns the checkpoint benchmark. The catalogue (default 100k streams, 1M topics, 100k users) is
built through domains.MuxStateMachine by applying create operations, so the sections are the
real section encodings; then it times: serialising the sections (the owner's stall), writing
the checkpoint (3 copies fsynced + the superblock), loading and verifying it, restoring the
state machine from it, and a second checkpoint after one operation that changes only the users
domain (the streams and sessions sections are reused byte for byte, not re-serialised or
re-hashed). Never a test: run it a few times and take medians.
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time

from core.storage import datadir
from core.storage.snapshot import SnapshotStore
from core.storage.snapshot_writer import SnapshotRequest, SnapshotWriter
from domains import sessions_wire
from domains import streams_wire as sw
from domains import users_wire as uw
from domains.mux import MuxStateMachine
from tools.bench.report import print_table

HELP = "checkpoint write and load times for a catalogue of streams, topics and users"
STREAMS = 100_000
TOPICS_PER_STREAM = 10
USERS = 100_000
SMOKE_STREAMS = 1_000
SMOKE_USERS = 1_000
_CLIENT = b"bench-client-016"
_PASSWORD_HASH = b"h" * 32  # stands for an scrypt hash: same size, no cost
_CLUSTER = 1
_OP_CREATE_STREAM, _OP_CREATE_TOPIC, _OP_CREATE_USER, _OP_REGISTER = 128, 132, 141, 1


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--dir", help="where to write (default: a temp dir under the current dir)")
    parser.add_argument("--streams", type=int, default=STREAMS)
    parser.add_argument("--topics-per-stream", type=int, default=TOPICS_PER_STREAM)
    parser.add_argument("--users", type=int, default=USERS,
                        help="users in the end, root included (at most domains.users.USERS_MAX)")
    parser.add_argument("--smoke", action="store_true",
                        help=f"{SMOKE_STREAMS} streams, {SMOKE_USERS} users: finishes in seconds")


class Builder:
    """Applies create operations as the owner would after commit (root, one session).

    root_hash: the root user's password hash (a real one when a cluster starts from it).
    one_op: apply everything as requests of one prepare, op 1 (timestamps still advance), so
    a cluster formatted with this state at op 0 applies its own op 1 onwards in order."""

    def __init__(self, root_hash: bytes = _PASSWORD_HASH, one_op: bool = False) -> None:
        self.mux = MuxStateMachine(root_hash)
        self.one_op = one_op
        self.op = 1
        self.request = 0
        status, _ = self.mux.apply(self.op, 1, _CLIENT, 0, 0, 0, _OP_REGISTER,
                                   sessions_wire.encode_register(0))
        assert status == 0
        self.session = self.op

    def apply(self, operation: int, body: bytes) -> None:
        self.op += 1
        self.request += 1
        status, _ = self.mux.apply(1 if self.one_op else self.op, self.op, _CLIENT, self.session, self.request, 0,
                                   operation, body)
        if status:
            raise RuntimeError(f"operation {operation} failed with status {status}")

    def build(self, streams: int, topics_per_stream: int, users: int) -> None:
        for stream in range(streams):
            self.apply(_OP_CREATE_STREAM, sw.encode_create_stream(f"stream-{stream}", {}))
            for topic in range(topics_per_stream):
                self.apply(_OP_CREATE_TOPIC,
                           sw.encode_create_topic(stream, 1, f"topic-{topic}", {}))
        for user in range(users - 2):  # root exists; the last user is the "one change" below
            self.apply(_OP_CREATE_USER,
                       uw.encode_create_user(f"user-{user}", _PASSWORD_HASH, 1, None, {}))


def open_store(directory: str):
    """A formatted data dir under directory: its superblock, snapshot store and writer."""
    root = os.path.join(directory, "data")
    datadir.format_data_dir(root, cluster=_CLUSTER, replica=0, replica_count=3)
    superblock = datadir.open_data_dir(root, cluster=_CLUSTER, replica=0)
    store = SnapshotStore(datadir.Paths(root).snapshots)
    return superblock, store, SnapshotWriter(superblock, store, None)


def timed(action):
    began = time.perf_counter()
    result = action()
    return result, time.perf_counter() - began


def run(args: argparse.Namespace) -> dict[str, float]:
    streams = SMOKE_STREAMS if args.smoke else args.streams
    users = SMOKE_USERS if args.smoke else args.users
    builder = Builder()
    _, build_s = timed(lambda: builder.build(streams, args.topics_per_stream, users))
    directory = tempfile.mkdtemp(prefix="metavsr-bench-checkpoint-", dir=args.dir or os.getcwd())
    try:
        superblock, store, writer = open_store(directory)
        sections, serialise_s = timed(builder.mux.snapshot)
        total_bytes = sum(len(data) for _, data in sections.values())
        written, write_s = timed(lambda: writer.checkpoint(
            SnapshotRequest(builder.op, 0, builder.op, sections)))
        loaded, load_s = timed(lambda: store.load(written.header.op, written.header.checksum))
        _, restore_s = timed(lambda: MuxStateMachine().restore(loaded.sections))
        builder.apply(_OP_CREATE_USER,
                      uw.encode_create_user("one-more-user", _PASSWORD_HASH, 1, None, {}))
        changed, serialise_one_s = timed(builder.mux.snapshot)
        _, write_one_s = timed(lambda: writer.checkpoint(
            SnapshotRequest(builder.op, 0, builder.op, changed)))
        superblock.close()
    finally:
        shutil.rmtree(directory, ignore_errors=True)
    counts = builder.mux.counts()
    figures = {
        "streams_count": counts["streams"], "topics_count": counts["topics"],
        "users_count": counts["users"], "checkpoint_bytes": total_bytes,
        **{f"section_{name}_bytes": len(data) for name, (_, data) in sections.items()},
        "build_through_mux_s": build_s,
        "serialise_sections_s": serialise_s,
        "write_3_copies_and_superblock_s": write_s,
        "load_and_verify_s": load_s,
        "restore_state_machine_s": restore_s,
        "one_domain_changed_serialise_s": serialise_one_s,
        "one_domain_changed_write_s": write_one_s,
        "write_mib_per_s": 3 * total_bytes / write_s / (1 << 20),
    }
    print_table(("figure", "value"), [(k, v) for k, v in figures.items()],
                title=f"checkpoint: built through domains.MuxStateMachine ({streams} streams x "
                      f"{args.topics_per_stream} topics, {users} users)")
    return figures
