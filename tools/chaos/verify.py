"""After a chaos run: replay every replica's data dir to one op, compare state digests, and
check that every acknowledged write is in that state.

Owns the offline part of the verdict. Each replica was stopped cleanly after the cluster
converged; its state at op X is its newest checkpoint plus its journal's prepares up to X,
applied exactly as the owner applies them (core/vsr/apply.py). X is the highest op every
journal holds; the prepare at X must be the same on every replica (the journals are hash
chained, so equal checksums at X mean equal logs up to X), and so must the digests of the
states. The acknowledged writes (from the history) are then looked up in the state of the
replica whose journal reaches furthest, replayed to its top.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from core.roles.state import load_state_machine
from core.storage import datadir
from core.storage.errors import StorageError
from core.storage.prepare import verify_header
from core.storage.superblock import newest_valid, read_copies
from core.vsr.apply import apply_prepare
from domains.codec import identifier
from domains.streams_wire import encode_ids
from net.iggy import Code
from net.wire import HEADER_SIZE

ROOT_USER_ID = 0


@dataclass
class Verification:
    op: int = 0
    digests: list[str] = field(default_factory=list)
    prepare_checksums: list[int] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)  # safety: never expected
    behind: list[str] = field(default_factory=list)  # replicas that could not be replayed
    acked_checked: int = 0
    acked_op: int = 0  # the op of the state the acknowledged writes were looked up in

    @property
    def ok(self) -> bool:
        return not self.problems


def verify(data_dirs: list[str], history_ops: list) -> Verification:
    result = Verification()
    journals = []
    try:
        for data_dir in data_dirs:
            state = newest_valid(read_copies(datadir.Paths(data_dir).superblock))
            journal, recovery = datadir.open_journal(data_dir, state, read_only=True)
            journals.append((data_dir, state, journal, recovery))
        op = min(recovery.op_max for _, _, _, recovery in journals)
        result.op = op
        replayed: dict[int, tuple] = {}  # replica index -> (state machine, op it is at)
        for index, (data_dir, state, journal, _) in enumerate(journals):
            mux, checkpoint_op = load_state_machine(data_dir, state.cluster, state.replica)
            if checkpoint_op > op:
                # Another replica's journal ends below this checkpoint: that one is behind.
                result.behind.append(f"{data_dir}: checkpoint op {checkpoint_op} is past the "
                                     f"common journal op {op}; cannot compare there")
                continue
            hole = _replay(mux, journal, checkpoint_op, op)
            if hole is not None:
                result.behind.append(f"{data_dir}: op {hole} (above its checkpoint "
                                     f"{checkpoint_op}) is not in its journal, which holds up to "
                                     f"op {op}: it never repaired the gap")
                continue
            top = journal.read(op) if op > checkpoint_op else state.checkpoint_header
            identity = verify_header(bytes(top[:HEADER_SIZE])) if top else None
            result.prepare_checksums.append(identity.checksum if identity else 0)
            result.digests.append(mux.digest().hex())
            replayed[index] = (mux, op)
        _check_acknowledged(journals, replayed, history_ops, result)
    finally:
        for _, _, journal, _ in journals:
            journal.close()
    if len(set(result.prepare_checksums)) > 1:
        result.problems.append(f"the prepares at op {op} differ: {result.prepare_checksums}")
    if len(set(result.digests)) > 1:
        result.problems.append(f"state digests at op {op} differ: {result.digests}")
    if len(result.digests) < 2:
        result.problems.append(f"only {len(result.digests)} replica(s) can be replayed to op "
                               f"{op}: nothing to compare")
    return result


def _check_acknowledged(journals, replayed, history_ops, result: Verification) -> None:
    """Look the acknowledged writes up in the most advanced replica, replayed to the top of
    its journal: a replica left behind (a liveness problem, reported apart) would otherwise
    pass for a lost write."""
    lead = max(range(len(journals)), key=lambda index: journals[index][3].op_max)
    data_dir, state, journal, recovery = journals[lead]
    if lead in replayed:
        mux, at = replayed[lead]
    else:
        mux, at = load_state_machine(data_dir, state.cluster, state.replica)
    hole = _replay(mux, journal, at, recovery.op_max)
    if hole is not None:
        result.behind.append(f"{data_dir}: op {hole} is not in its journal, which holds up to "
                             f"op {recovery.op_max}: acknowledged writes not checked there")
        return
    result.acked_op = recovery.op_max
    _acknowledged(mux, history_ops, result)


def _replay(mux, journal, checkpoint_op: int, op: int) -> int | None:
    """Apply the journal's prepares above the checkpoint up to op; the first op missing."""
    for next_op in range(checkpoint_op + 1, op + 1):
        try:
            frame = journal.read(next_op)
        except StorageError:  # a fault the replica never repaired
            frame = None
        if frame is None:
            return next_op
        apply_prepare(mux, frame)
    return None


def _acknowledged(mux, ops: list, result: Verification) -> None:
    """Every acknowledged create is there unless its stream was (maybe) deleted; every
    acknowledged delete is gone."""
    deleted = {op.names for op in ops if op.kind == "delete_stream"}
    for op in ops:
        if op.status != "ok":
            continue
        names = op.names.split("/")
        if op.kind == "create_user":
            present = _found(mux, Code.GET_USER, identifier(names[0]))
        elif op.kind in ("create_stream", "create_topic", "create_consumer_group"):
            if names[0] in deleted:
                continue
            present = _found(mux, {1: Code.GET_STREAM, 2: Code.GET_TOPIC,
                                   3: Code.GET_CONSUMER_GROUP}[len(names)], encode_ids(*names))
        elif op.kind == "delete_stream":
            present = not _found(mux, Code.GET_STREAM, encode_ids(names[0]))
        else:
            continue
        result.acked_checked += 1
        if not present:
            result.problems.append(f"acknowledged {op.kind} {op.names} (history line {op.line}) "
                                   "is not in the final state")
            if len(result.problems) > 20:
                return


def _found(mux, code: int, body: bytes) -> bool:
    status, payload = mux.query(code, body, ROOT_USER_ID)
    return status == 0 and len(payload) > 0
