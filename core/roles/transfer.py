"""State-transfer control: the replication role's part of fetching a peer's checkpoint.

The core asks for state transfer (RequestSnapshot) when the ops it needs are gone from every
peer's journal. From then on it applies nothing (core/vsr/replica.py) until SnapshotInstalled,
so the checkpoint fetched is ahead of its state and no local checkpoint starts meanwhile.

`Transfer` decides what to ask whom and when; it touches no file and no socket. One transfer at
a time, one chunk request in flight:

  fetching    REQUEST_SNAPSHOT(op, checksum, offset) to one peer (checksum 0: the checkpoint
              the peer names now); each SNAPSHOT_CHUNK that continues the file goes to the
              snapshot role (STORE), whose CHUNK_STORED asks for the next. A peer serving
              another checkpoint (it checkpointed again, or another peer answered) restarts the
              file from offset 0. A peer silent for `timeout_ticks` is replaced by the next.
  complete    every byte is in the .part file; INSTALL waits until no local checkpoint is
              being written (the snapshot role and the superblock must see them in order).
  installing  the snapshot role verifies the file and writes its 3 copies (INSTALLED; a file
              that does not verify starts the fetch again).
  naming      the journal role names the checkpoint in the superblock and restarts its log
              after it (INSTALL_CHECKPOINT, answered by CHECKPOINT_INSTALLED); then the owner
              restores the checkpoint (RESTORE) and the core hears SnapshotInstalled.
"""

from __future__ import annotations

import enum

from core.check import check
from core.roles import records
from core.roles.records import Kind
from net import wire
from net.wire import HEADER_SIZE, Command, FrameError

CHUNK_BYTES = 512 << 10  # one chunk per frame, well inside wire.FRAME_SIZE_MAX
CHECKPOINT_BYTES_MAX = 1 << 34  # matches the snapshot role's bound on a checkpoint file


class Phase(enum.Enum):
    IDLE = "idle"
    FETCHING = "fetching"
    COMPLETE = "complete"
    INSTALLING = "installing"
    NAMING = "naming"


class Transfer:
    def __init__(self, *, cluster: int, replica: int, replica_count: int, timeout_ticks: int):
        check(timeout_ticks > 0, "a transfer timeout is a positive number of ticks")
        self.cluster = wire.cluster_bytes(cluster)
        self.replica = replica
        self.peers = [r for r in range(replica_count) if r != replica]
        self.timeout_ticks = timeout_ticks
        self.phase = Phase.IDLE
        self.floor = 0  # the core's applied op: a checkpoint at or below it is no use
        self.peer = self.peers[0] if self.peers else replica  # one replica never transfers
        self.target: tuple[int, int] | None = None  # (op, checksum) being fetched
        self.prepare_header = b""  # raw prepare header of the target op
        self.end = 0  # bytes [0, end) of the target are in the .part file
        self.storing = False  # a chunk is with the snapshot role
        self.ticks = 0
        self.asked_tick = 0
        self.restarts = 0

    # --- inputs from the replication role ---------------------------------------------

    def start(self, peer: int, commit_min: int) -> list[bytes]:
        """The core's RequestSnapshot: fetch from `peer` a checkpoint above commit_min."""
        check(peer in self.peers, f"state transfer from replica {peer}")
        if self.phase is not Phase.IDLE:
            return []  # one transfer at a time; the core asks only once until it is installed
        self.phase = Phase.FETCHING
        self.floor = commit_min
        self.peer = peer
        self.target, self.prepare_header, self.end, self.storing = None, b"", 0, False
        return [self._ask()]

    def on_chunk(self, header, frame: bytes) -> bytes | None:
        """A SNAPSHOT_CHUNK from a peer (checksums verified): the STORE record for the snapshot
        role when it continues the file, else None (late, duplicate or of no use)."""
        if self.phase is not Phase.FETCHING or self.storing:
            return None
        body = memoryview(frame)[HEADER_SIZE:]
        data_size = len(body) - HEADER_SIZE
        op, checksum, offset, total = (header.checkpoint_op, header.checkpoint_checksum,
                                       header.offset, header.total_size)
        if op <= self.floor or checksum == 0 or data_size <= 0 or \
                not 0 < total <= CHECKPOINT_BYTES_MAX or offset + data_size > total:
            return None
        if (op, checksum) != self.target:
            if offset != 0:
                return None
            prepare = _prepare_header(body[:HEADER_SIZE], op)
            if prepare is None:
                return None
            if self.target is not None:
                self.restarts += 1
            self.target, self.prepare_header, self.end = (op, checksum), prepare, 0
        elif offset != self.end:
            return None
        self.storing = True
        self.asked_tick = self.ticks
        return records.store(frame)

    def on_chunk_stored(self, op: int, checksum: int, end: int, total: int) -> list[bytes]:
        """The snapshot role wrote bytes up to `end`: ask for the next chunk, or finish."""
        check(self.phase is Phase.FETCHING and self.storing and (op, checksum) == self.target,
              "a chunk stored that the transfer never sent")
        check(self.end < end <= total, f"chunk end {end} after {self.end} of {total}")
        self.storing = False
        self.end = end
        if end < total:
            return [self._ask()]
        self.phase = Phase.COMPLETE
        return []

    def install_record(self, local_checkpoint_pending: bool) -> bytes | None:
        """INSTALL for the snapshot role once the file is complete and no local checkpoint is
        in flight."""
        if self.phase is not Phase.COMPLETE or local_checkpoint_pending:
            return None
        self.phase = Phase.INSTALLING
        op, checksum = self.target
        return records.op_checksum(Kind.INSTALL, op, checksum)

    def on_installed(self, op: int, checksum: int) -> list[bytes]:
        """The snapshot role's answer to INSTALL: INSTALL_CHECKPOINT for the journal role, or
        (checksum 0: the file did not verify) a fresh fetch from the next peer."""
        check(self.phase is Phase.INSTALLING and op == self.target[0],
              "an install the transfer never asked")
        if checksum == 0:
            self.phase = Phase.FETCHING
            self.restarts += 1
            self.target, self.prepare_header, self.end = None, b"", 0
            self.peer = self._next_peer()
            return [self._ask()]
        check(checksum == self.target[1], "installed another checkpoint than fetched")
        self.phase = Phase.NAMING
        return [records.op_checksum(Kind.INSTALL_CHECKPOINT, op, checksum, self.prepare_header)]

    def on_checkpoint_installed(self, op: int) -> tuple[int, int, bytes]:
        """The superblock names the checkpoint: (op, checksum, prepare header) to restore the
        owner from and to tell the core. The transfer is over."""
        check(self.phase is Phase.NAMING and op == self.target[0],
              "a checkpoint installed that the transfer never asked")
        (op, checksum), header = self.target, self.prepare_header
        self.phase = Phase.IDLE
        self.target, self.prepare_header, self.end = None, b"", 0
        return op, checksum, header

    def tick(self) -> list[bytes]:
        """Time passes: a peer silent for timeout_ticks is replaced by the next one."""
        self.ticks += 1
        if self.phase is not Phase.FETCHING or self.storing or \
                self.ticks - self.asked_tick < self.timeout_ticks:
            return []
        self.peer = self._next_peer()
        return [self._ask()]

    # --- helpers ------------------------------------------------------------------------

    def _ask(self) -> bytes:
        """SEND_PEER of a REQUEST_SNAPSHOT continuing the target (or starting one)."""
        self.asked_tick = self.ticks
        op, checksum = self.target if self.target is not None else (0, 0)
        header = wire.make_header(Command.REQUEST_SNAPSHOT, cluster=self.cluster,
                                  replica=self.replica, release=wire.WIRE_VERSION,
                                  checkpoint_op=op, checkpoint_checksum=checksum,
                                  offset=self.end)
        return records.send_peer(self.peer, wire.encode(header))

    def _next_peer(self) -> int:
        return self.peers[(self.peers.index(self.peer) + 1) % len(self.peers)]


def _prepare_header(raw: memoryview, op: int) -> bytes | None:
    """The checkpoint's prepare header when it is one, of `op`, with a valid checksum."""
    raw = bytes(raw)
    if len(raw) != HEADER_SIZE or raw[60] != Command.PREPARE or \
            not wire.header_checksum_ok(raw):
        return None
    try:
        header = wire.decode_header(raw)
    except FrameError:
        return None
    return raw if header.op == op else None
