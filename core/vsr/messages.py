"""The vocabulary of the sans-IO VSR core: its configuration, its inputs and its actions.

Owns the plain classes exchanged between `Replica.step` and its caller, and the named bounds of
the protocol. It never does I/O and never holds replica state.

Contract with the caller (see Replica.step): inputs are fed one at a time; the returned actions
are executed IN ORDER. `PersistView` and `Truncate` must be durable before any later action of
the same list is executed (they precede the messages that reveal the new view or log), which is
why they are synchronous actions and not request/response pairs; `Truncate` also cancels
appends above its op that are not yet written. Journal appends are asynchronous: each `Append`
carries a sequence number and the caller later feeds `Durable(seq)` meaning "every append up to
seq is durable". `Apply` is asynchronous too (`Applied(op, results)` comes back, in op order);
`Checkpoint` is answered by `CheckpointDone`, `RequestSnapshot` by `SnapshotInstalled`.
Client requests reach the core after admission: the caller has checked the session, stamped
`user_id` and rewritten the body where admission resolved something (DESIGN section 7).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from core.check import check
from net.wire import FRAME_SIZE_MAX, HEADER_SIZE

REPLICAS_MAX = 7
PIPELINE_MAX_LIMIT = 256
BATCH_MAX_LIMIT = 1024
BATCH_BYTES_MAX_DEFAULT = 512 * 1024  # a prepare's batch body (fits one frame)

STATUS_NORMAL = "normal"
STATUS_VIEW_CHANGE = "view_change"
STATUS_RECOVERING = "recovering"

OPERATION_REGISTER = 1
OPERATION_NON_REPLICATED = 2
OPERATION_LOGOUT = 3
# A prepare's header `operation`: 0 = a batch of client requests.
PREPARE_BATCH = 0


@dataclass(frozen=True, slots=True)
class VsrConfig:
    replica_count: int
    cluster: int = 1
    pipeline_max: int = 64
    batch_max: int = 64
    # False: a primary cuts a prepare and starts a read-index round after every input (one
    # request may make one prepare). True: only on Flush, which the caller sends once it has
    # fed every input it had, so the requests that arrived together share one prepare (one
    # append, one round of messages) and the reads one heartbeat round.
    batch_on_flush: bool = False
    batch_bytes_max: int = BATCH_BYTES_MAX_DEFAULT
    request_queue_max: int = 4096
    clients_max: int = 4096
    checkpoint_interval: int = 1024
    # Ops below the checkpoint a replica still holds for lagging peers (DESIGN section 6).
    journal_retention_ops: int = 256
    # What the journal can take (0: no bound): a segmented journal accepts ops up to a fixed
    # distance above what it holds (bounded by journal_ops_ahead_max above commit_min); a ring
    # of journal_slots slots up to its released op (checkpoint - retention) + slots. Beyond
    # that a backup does not store a prepare (repair brings it later, or state transfer) and a
    # primary does not prepare.
    journal_ops_ahead_max: int = 0
    journal_slots: int = 0
    # Headers carried by do_view_change and start_view (the uncommitted suffix and some).
    view_headers_max: int = 128
    headers_reply_max: int = 256
    repair_requests_max: int = 16
    tick_us: int = 10_000
    heartbeat_ticks: int = 5
    prepare_resend_ticks: int = 10
    normal_timeout_ticks: int = 40
    view_change_timeout_ticks: int = 50
    view_change_resend_ticks: int = 8
    request_start_view_timeout_ticks: int = 30
    repair_ticks: int = 3
    # A primary whose oldest uncommitted prepare has not committed for this long abdicates:
    # the next view change can prove (by nacks) that an op nobody can repair was never
    # committed and drop it, where this view would wait forever.
    primary_stall_ticks: int = 200

    def __post_init__(self) -> None:
        check(1 <= self.replica_count <= REPLICAS_MAX and self.replica_count % 2 == 1,
              f"replica_count={self.replica_count} must be odd and <= {REPLICAS_MAX}")
        check(1 <= self.pipeline_max <= PIPELINE_MAX_LIMIT, "pipeline_max out of range")
        check(1 <= self.batch_max <= BATCH_MAX_LIMIT, "batch_max out of range")
        check(self.view_headers_max > self.pipeline_max,
              "view_headers_max must cover the whole pipeline")
        check(self.checkpoint_interval >= 2 * self.pipeline_max,
              "checkpoint_interval must exceed twice the pipeline")
        check(self.journal_retention_ops >= self.pipeline_max,
              "journal_retention_ops must cover the pipeline")
        check(self.heartbeat_ticks < self.normal_timeout_ticks,
              "a backup must hear several heartbeats before it suspects the primary")
        check(self.batch_bytes_max + HEADER_SIZE <= FRAME_SIZE_MAX,
              "a full batch must fit in one prepare frame")
        check(HEADER_SIZE + self.view_headers_max * (HEADER_SIZE + 1) <= FRAME_SIZE_MAX and
              HEADER_SIZE + self.headers_reply_max * HEADER_SIZE <= FRAME_SIZE_MAX,
              "view-change and repair header lists must fit in one frame")
        check(self.batch_max < 1 << 16, "request_count is a u16 in the prepare header")
        check(self.primary_stall_ticks > self.normal_timeout_ticks,
              "a stalled primary abdicates only after backups would have suspected a dead one")
        for name in ("heartbeat_ticks", "prepare_resend_ticks", "normal_timeout_ticks",
                     "view_change_timeout_ticks", "view_change_resend_ticks",
                     "request_start_view_timeout_ticks", "repair_ticks", "tick_us",
                     "request_queue_max", "clients_max", "headers_reply_max",
                     "repair_requests_max", "primary_stall_ticks"):
            check(getattr(self, name) >= 1, f"{name} must be positive")

    @property
    def quorum(self) -> int:
        return self.replica_count // 2 + 1


# ---------------------------------------------------------------- inputs


@dataclass(slots=True)
class Receive:
    """A checked frame from a peer or a client: decoded header and body. `stale` marks a
    client read the caller classified as a stale read (served by any replica at once)."""
    header: object
    body: bytes | memoryview = b""
    stale: bool = False
    # The whole frame as received, when the caller has it: a prepare is journaled as is.
    frame: bytes | None = None


@dataclass(slots=True)
class Tick:
    """Time passes one tick. `now_us` is the caller's wall clock (microseconds since the epoch)
    for prepare timestamps; 0 (the simulator) means ticks x tick_us."""
    now_us: int = 0


@dataclass(slots=True)
class Durable:
    """Every Append with seq <= this is durable in the journal."""
    seq: int


@dataclass(slots=True)
class AppliedEntry:
    client: bytes
    request: int
    operation: int
    status: int
    result: bytes


@dataclass(slots=True)
class Applied:
    """The state machine applied every op up to `op`; `entries` are the results of `op`."""
    op: int
    entries: list[AppliedEntry] = field(default_factory=list)


@dataclass(slots=True)
class CheckpointDone:
    op: int


@dataclass(slots=True)
class Flush:
    """Every input at hand has been fed: cut prepares from the queued requests and start a
    read-index round for the waiting reads (see VsrConfig.batch_on_flush)."""


@dataclass(slots=True)
class SnapshotInstalled:
    """State transfer finished: the state machine now holds the checkpoint at `op`;
    `header` is the raw prepare header of op stored with the checkpoint."""
    op: int
    header: bytes


# ---------------------------------------------------------------- actions


@dataclass(slots=True)
class Send:
    to: int
    frame: bytes


@dataclass(slots=True)
class Append:
    seq: int
    op: int
    frame: bytes


@dataclass(slots=True)
class Truncate:
    """Drop every journal entry above `op` (an uncommitted suffix that lost a view change)."""
    op: int


@dataclass(slots=True)
class PersistView:
    """Make view/log_view durable (superblock) before executing the following actions."""
    view: int
    log_view: int
    # The log's head op: a log_view promises this log, even when the head's header is not
    # known yet (a merge may name an op only by position) and the journal lost it.
    op: int = 0
    # Raw prepare headers of the log's verified suffix (superblock "view headers").
    headers: list[bytes] = field(default_factory=list)


@dataclass(slots=True)
class Apply:
    """Apply the committed prepare at `op` (frame = header + batch body), then feed Applied."""
    op: int
    frame: bytes


@dataclass(slots=True)
class Reply:
    """The outcome of a committed request, for its client: the caller frames it in the
    client's protocol (header is the request's header; commit is the primary's commit number)."""
    client: bytes
    header: object
    op: int
    commit: int
    status: int
    result: bytes


@dataclass(slots=True)
class ReplyFromTable:
    """A retry of a committed request: answer it from the client table (client_reply)."""
    header: object


@dataclass(slots=True)
class Query:
    """Answer a read now: the state machine has applied at least `op`."""
    header: object
    body: bytes | memoryview
    op: int


@dataclass(slots=True)
class Checkpoint:
    """Snapshot the state machine at `op` (right after applying it); keep `header`, the raw
    prepare header of op, with the checkpoint: it anchors the hash chain after a restore."""
    op: int
    header: bytes


@dataclass(slots=True)
class RequestSnapshot:
    """Peers' journals no longer hold the ops this replica needs: fetch checkpoint `op`."""
    peer: int
    op: int
