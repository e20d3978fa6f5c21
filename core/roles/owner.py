"""The owner role: the only process that applies operations to the MuxStateMachine.

`Owner` is the role's logic without rings, so it is tested with real frames and the real state
machine: it applies committed prepares in op order (each batch entry exactly once, through
core/vsr/apply.py and the client table), answers reads whose read-index is satisfied and stale
reads, answers retries from the client table, looks up stored credentials for the net role's
admission, cuts checkpoints for the snapshot role, and after a state transfer restores
the checkpoint the transfer installed (RESTORE). Its outputs are grouped per
destination ring so the process loop publishes each ring once per pass.

The acting user of a read is the session's user in the replicated client table, never a field
a client sent.
"""

from __future__ import annotations

import gc
import os
import struct
import time
import traceback
from dataclasses import dataclass, field

from core import config as config_mod
from core import log
from core.check import check
from core.roles import metrics, records, stats, wiring
from core.roles.state import load_state_machine
from core.storage.datadir import Paths
from core.storage.snapshot import SnapshotStore
from core.roles.supervisor import RoleHandle, die_with_parent
from core.roles.records import Kind, Lookup
from core.vsr.apply import apply_prepare
from domains.codec import Reader
from domains.errors import DomainError
from domains.mux import SECTION_VERSIONS, MuxStateMachine
from domains.users_wire import STATUS_ACTIVE
from net import iggy, wire

_SECTION_ENTRY = struct.Struct("<BIQ")  # name length, version, size (SECTION_REUSED = reused)
SECTION_REUSED = 0xFFFF_FFFF_FFFF_FFFF


@dataclass
class Outputs:
    """What one pass produced, per destination ring (pushed as one batch each)."""
    replies: list[bytes] = field(default_factory=list)  # -> net
    applied: list[bytes] = field(default_factory=list)  # -> replication
    snapshot: list[bytes] = field(default_factory=list)  # -> snapshot


class Owner:
    def __init__(self, mux: MuxStateMachine, applied_op: int = 0, view: int = 0,
                 data_dir: str = "", snapshots: SnapshotStore | None = None):
        self.mux = mux
        self.data_dir = data_dir  # for the disk figures of get_stats
        self.snapshots = snapshots
        self.applied_op = applied_op
        self.view = view
        self.last_timestamp_us = 0
        # The checkpoint being cut by a forked child: (pid, op, view, timestamp, path, start).
        self._cutting: tuple | None = None

    def handle(self, record: memoryview, out: Outputs) -> None:
        kind = records.kind_of(record)
        if kind == Kind.APPLY:
            self._apply(record[1:], out)
        elif kind == Kind.QUERY:
            conn, frame = records.read_conn_frame(record)
            out.replies.append(records.client_frame(conn, self._query(frame)))
        elif kind == Kind.TABLE_REPLY:
            conn, frame = records.read_conn_frame(record)
            out.replies.append(records.client_frame(conn, self._table_reply(frame)))
        elif kind == Kind.CREDENTIALS_QUERY:
            out.replies.append(self._credentials(*records.read_credentials_query(record)))
        elif kind == Kind.CHECKPOINT:
            self._checkpoint(records.read_op(record), out)
        elif kind == Kind.VIEW:
            self.view = records.read_view(record)[0]
        elif kind == Kind.RESTORE:
            self._restore(*records.read_op_checksum(record)[:2])
        else:
            check(False, f"owner got a record of kind {kind}")

    # --- apply ------------------------------------------------------------------------

    def _apply(self, frame: memoryview, out: Outputs) -> None:
        header = wire.decode_header(frame)
        check(header.op == self.applied_op + 1,
              f"apply of op {header.op} after op {self.applied_op}: ops must come in order")
        op, entries = apply_prepare(self.mux, bytes(frame))
        self.applied_op = op
        self.last_timestamp_us = header.timestamp
        out.applied.append(records.applied(op, [
            (entry.client, entry.request, entry.operation, entry.status, entry.result)
            for entry in entries]))

    def _restore(self, op: int, checksum: int) -> None:
        """State transfer installed checkpoint op (the superblock names it): replace the state.
        The core applied nothing past applied_op since it asked, so this only moves forward."""
        check(op > self.applied_op, f"restore of op {op} over applied op {self.applied_op}")
        check(self.snapshots is not None, "an owner without a data dir cannot restore")
        started = time.perf_counter()
        checkpoint = self.snapshots.load(op, checksum)
        mux = MuxStateMachine()
        mux.restore(checkpoint.sections)
        self.mux, self.applied_op = mux, op
        self.last_timestamp_us = checkpoint.header.timestamp
        log.info("state_restored", op=op, ms=round((time.perf_counter() - started) * 1000, 1))

    # --- reads --------------------------------------------------------------------------

    def _query(self, frame: memoryview) -> bytes:
        header = wire.decode_header(frame)
        body = bytes(frame[wire.HEADER_SIZE:])
        user = self.mux.lookup_session(header.client, header.session)
        if user is None:
            return iggy.reply_frame(header, status=iggy.STATUS_UNAUTHENTICATED)
        if header.code == iggy.Code.GET_STATS:
            return stats.answer(header, self.mux, user, self.data_dir, self.applied_op)
        status, result = self.mux.query(header.code, body, user)
        return iggy.answer_frame(header, status, result, op=self.applied_op)

    def _table_reply(self, frame: memoryview) -> bytes:
        header = wire.decode_header(frame)
        cached = self.mux.client_reply(header.client, header.request)
        if cached is None:
            # The core only asks for requests the table answered: a miss means the session
            # was evicted meanwhile, which the client must learn.
            return iggy.eviction_frame(header.client, iggy.EvictionReason.SESSION_ERROR)
        status, result = cached
        return iggy.answer_frame(header, status, result, op=self.applied_op)

    def _credentials(self, conn: int, by: Lookup, key: bytes) -> bytes:
        try:
            if by == Lookup.TOKEN_LOCATOR:
                found = self.mux.token_by_locator(key)
                if found is None:
                    return records.credentials(conn, False, 0, False, b"")
                user_id, status, token_hash, expiry_at = found
                active = status == STATUS_ACTIVE and (
                    expiry_at == 0 or expiry_at > self.last_timestamp_us)
                return records.credentials(conn, True, user_id, active, token_hash)
            ident = key.decode() if by == Lookup.USERNAME else Reader(key).identifier()
            found = self.mux.user_credentials(ident)
        except (DomainError, UnicodeDecodeError):
            found = None
        if found is None:
            return records.credentials(conn, False, 0, False, b"")
        user_id, status, password_hash = found
        return records.credentials(conn, True, user_id, status == STATUS_ACTIVE, password_hash)

    # --- checkpoints ----------------------------------------------------------------------

    def _checkpoint(self, op: int, out: Outputs) -> None:
        """Cut checkpoint op without stopping the apply loop: a forked child encodes the
        sections that changed since the last checkpoint from its copy-on-write image of the
        state at op and writes them to a sections file; poll_checkpoint hands that file to the
        snapshot role once the child is done (the others are reused from the last checkpoint).
        """
        check(op == self.applied_op, f"checkpoint at op {op} but applied {self.applied_op}")
        check(self._cutting is None, "a checkpoint is cut only after the previous one")
        check(self.snapshots is not None, "an owner without a data dir cannot checkpoint")
        started = time.perf_counter()
        changed = self.mux.take_checkpoint_changes()
        path = sections_path(self.snapshots.directory, op)
        pid = os.fork()
        if pid == 0:
            _cut_sections(self.mux, changed, path)  # never returns
        self._cutting = (pid, op, self.view, self.last_timestamp_us, path, started)
        log.info("checkpoint_forked", op=op, changed=list(changed),
                 stall_ms=round((time.perf_counter() - started) * 1000, 3))

    def poll_checkpoint(self, out: Outputs, wait: bool = False) -> bool:
        """Hand a finished checkpoint child's sections file to the snapshot role; True while
        a child is still at work. `wait` blocks until it is done."""
        if self._cutting is None:
            return False
        pid, op, view, timestamp, path, started = self._cutting
        done, status = os.waitpid(pid, 0 if wait else os.WNOHANG)
        if done == 0:
            return True
        check(os.waitstatus_to_exitcode(status) == 0,
              f"the checkpoint child for op {op} failed (status {status})")
        self._cutting = None
        out.snapshot.append(records.sections_file(op, view, timestamp, path))
        log.info("checkpoint_sections_cut", op=op, bytes=os.path.getsize(path),
                 ms=round((time.perf_counter() - started) * 1000, 1))
        return False


def sections_path(directory: str, op: int) -> str:
    """Where the checkpoint child of op writes its sections (the snapshot role removes it)."""
    return os.path.join(directory, f"{SECTIONS_FILE_PREFIX}{op:020d}.tmp")


SECTIONS_FILE_PREFIX = "sections-"
CHECKPOINT_CHILD_NICE = 19


def _cut_sections(mux: MuxStateMachine, changed: tuple[str, ...], path: str) -> None:
    """The checkpoint child: encode, write, exit. It shares the parent's rings and sockets
    through fork, so it touches none of them and leaves with os._exit (no atexit, no flush
    of inherited buffers)."""
    status = 1
    try:
        die_with_parent()
        # Encoding takes CPU-seconds on a large catalogue (1.6 s for 14 MB), at the same moment
        # on every replica (they checkpoint at the same op): at the lowest priority within its
        # replica it yields to the roles. (Across replicas started in their own sessions,
        # autogroup scheduling shares CPU per session first; see docs/BENCHMARKS.md.) The
        # collector stays off: the child exits soon, and a collection would write to every
        # object it visits, copying the parent's pages.
        gc.disable()
        os.nice(CHECKPOINT_CHILD_NICE)
        blob = encode_sections(mux.encode_sections(changed))
        with open(path, "wb") as sink:  # no fsync: the snapshot role writes the durable copies
            sink.write(blob)
        status = 0
    except BaseException:  # report, then exit non-zero: the owner fails stop on it
        traceback.print_exc()
    finally:
        os._exit(status)


def encode_sections(encoded: dict[str, tuple[int, bytes]]) -> bytes:
    """Every section in name order: the given ones whole, the others marked reused."""
    parts = []
    for name in sorted(SECTION_VERSIONS):
        version, data = encoded.get(name, (SECTION_VERSIONS[name], None))
        raw = name.encode()
        parts.append(_SECTION_ENTRY.pack(len(raw), version,
                                         SECTION_REUSED if data is None else len(data)))
        parts.append(raw)
        if data is not None:
            parts.append(data)
    return b"".join(parts)


def decode_sections(blob: bytes) -> dict[str, tuple[int, bytes | None]]:
    """Sections of a checkpoint; None marks a section reused unchanged from the previous one."""
    sections: dict[str, tuple[int, bytes | None]] = {}
    offset = 0
    while offset < len(blob):
        name_size, version, size = _SECTION_ENTRY.unpack_from(blob, offset)
        offset += _SECTION_ENTRY.size
        name = blob[offset:offset + name_size].decode()
        offset += name_size
        if size == SECTION_REUSED:
            sections[name] = (version, None)
        else:
            sections[name] = (version, blob[offset:offset + size])
            offset += size
    check(offset == len(blob), "sections blob has trailing bytes")
    return sections



POP_BATCH_MAX = 256
IDLE_WAIT_S = 0.1  # bounds how long a stop request or a heartbeat can wait
CUTTING_WAIT_S = 0.005  # while a checkpoint child works: how soon its end is noticed


def run(context) -> None:
    """The owner process: restore the newest checkpoint, then drain its rings until stopped."""
    handle = RoleHandle(context)
    config = config_mod.load(context.settings["config_path"])
    ends = wiring.attach(wiring.geometry_of(config), "owner", context.settings["net_event_fd"])
    mux, applied_op = load_state_machine(config.data_dir, config.cluster_id, config.replica)
    owner = Owner(mux, applied_op, data_dir=config.data_dir,
                  snapshots=SnapshotStore(Paths(config.data_dir).snapshots))
    consumers = (ends.consumers["apply"], ends.consumers["owner_net"])
    replies, applied, snapshot = (ends.producers["replies"], ends.producers["applied"],
                                  ends.producers["snapshot"])
    meter = metrics.Meter(handle.counters, "owner", ends.producers)
    meter.set("applied_op", applied_op)
    handle.ready()
    log.info("owner_ready", applied_op=applied_op)
    while not handle.stop_requested():
        handle.beat()
        meter.rings()  # every pass, idle ones too: the consumer drains after our last push
        cutting = owner.poll_checkpoint(out := Outputs())
        if not ends.doorbell.wait(CUTTING_WAIT_S if cutting else IDLE_WAIT_S) and \
                not out.snapshot:
            continue
        for consumer in consumers:
            wiring.drain(consumer, POP_BATCH_MAX, lambda record: owner.handle(record, out))
        if out.replies:
            replies.push_batch(out.replies)
        if out.applied:
            applied.push_batch(out.applied)
        if out.snapshot:
            snapshot.push_batch(out.snapshot)
        meter.set("applied_op", owner.applied_op)
    # Stopping: replication stopped first (reverse start order), so the apply ring holds all
    # the owner will ever get: apply it. Net and replication are gone, so no reply or APPLIED
    # is sent; a checkpoint's sections still go to the snapshot role, which stops after us.
    while ends.consumers["apply"].pending():
        out = Outputs()
        wiring.drain(ends.consumers["apply"], POP_BATCH_MAX,
                     lambda record: owner.handle(record, out))
        owner.poll_checkpoint(out, wait=True)
        if out.snapshot:
            snapshot.push_batch(out.snapshot)
    out = Outputs()
    owner.poll_checkpoint(out, wait=True)
    if out.snapshot:
        snapshot.push_batch(out.snapshot)
    log.info("owner_stopped", applied_op=owner.applied_op)
