"""The net role: the only process of a replica with sockets.

It runs the event loop (net/loop.py) over the client listener, the peer listener, one dialed
connection to every other replica, its eventfd doorbell and a job-completion pipe, and moves
frames between sockets and rings:

  client frame  -> gateway (net/gateway.py) -> reply now / inbound ring / owner_net ring / job;
                   on a backup, what would go to the inbound ring is FORWARDed to the primary
  peer frame    -> checked (checksums, cluster, sender) -> inbound ring; a FORWARD enters the
                   primary's inbound ring under a pseudo connection whose reply goes back as
                   FORWARD_REPLY to the replica that holds the client
  outbound ring -> a peer connection, every peer, or a client connection
  replies ring  -> a client connection, or a credentials answer back into the gateway

Everything a loop turn produces for a ring is pushed as one batch at the end of the turn.
Peers: each replica dials every other one and sends on its dialed connection; frames arrive on
the accepted ones. Before a peer connection carries anything, both ends prove they hold the
cluster key (challenge-response, core.auth.peer_proof):

  dialer   -> PEER_HELLO     (replica = dialer, nonce_d)
  acceptor -> PEER_CHALLENGE (nonce_a, proof_a = HMAC(key, "accept", cluster, nonce_d, nonce_a))
  dialer   -> PEER_AUTH      (proof_d = HMAC(key, "dial", cluster, nonce_a, nonce_d))

Fresh nonces on both sides make a recorded exchange worthless. Every frame must carry this
cluster's id and valid checksums; a frame out of this order, from another cluster or with a bad
proof closes the connection and is counted (peer_auth_failures, bad_peer_frames). Only then
does the dialed connection enter peers_out and the accepted one deliver frames. Clients never
reach this path: their listener feeds the gateway, which takes only Request frames.
"""

from __future__ import annotations

import hmac
import os
import ssl
import threading
import time
from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor

from core import auth
from core import config as config_mod
from core import log
from core.check import check
from core.roles import metrics, records, wiring
from core.roles.supervisor import RoleHandle
from core.roles.records import Kind
from net import iggy, wire
from net.gateway import Close, Gateway, Job, Reply, ToOwner, ToReplication
from net.loop import Connection, EventLoop, Handler, LoopLimits
from net.wire import Command, FrameError

RECONNECT_INTERVAL_S = 0.1
PUBLISH_INTERVAL_S = 0.5  # security counters to the shared metrics block
FORWARDED_CONN_FIRST = 1 << 31  # pseudo connection ids of forwarded requests start here
FORWARDED_MAX = 65_536  # forwarded requests awaiting a reply; the oldest are forgotten
POP_BATCH_MAX = 512
HASH_THREADS = 2  # scrypt releases the GIL: login work runs beside the loop, not in it
# scrypt jobs queued or running (~50 ms of a core each): beyond this, a login or password
# change is asked to retry (58) rather than queued behind seconds of hashing.
HASH_JOBS_MAX = 32
_HANDSHAKE_COMMANDS = frozenset({Command.PEER_HELLO, Command.PEER_CHALLENGE, Command.PEER_AUTH})


class NetRole(Handler):
    def __init__(self, *, replica: int, cluster_id: int, replicas, limits: LoopLimits,
                 requests_in_flight_max: int, producers: dict, consumers: dict, doorbell,
                 clock, cluster_key: bytes = b"", op_size_max: int = 0, tls=None):
        self.replica = replica
        self.cluster = wire.cluster_bytes(cluster_id)
        self.replicas = replicas
        self.loop = EventLoop(self, limits, clock=clock)
        self.clock = clock
        self.view = 0
        self.primary = 0
        self.normal = True
        self.gateway = Gateway(body_size_max=limits.frame_size_max - wire.HEADER_SIZE,
                               requests_in_flight_max=requests_in_flight_max,
                               roster=self._roster,
                               has_primary=lambda: self.normal, op_size_max=op_size_max,
                               clock=clock)
        self.cluster_key = cluster_key
        self.tls = tls
        self.to_replication = producers["inbound"]
        self.to_owner = producers["owner_net"]
        self.from_replication = consumers["outbound"]
        self.from_owner = consumers["replies"]
        self.doorbell = doorbell
        self.peers_out: dict[int, Connection] = {}  # authenticated dialed connections
        self._dialing: dict[int, Connection] = {}  # dialed, handshake not finished
        # Handshakes under way, by connection id: the nonces sent and received so far.
        self._nonces: dict[int, tuple[bytes, bytes]] = {}
        self._inbound: list[bytes] = []
        self._owner: list[bytes] = []
        self._jobs = ThreadPoolExecutor(max_workers=HASH_THREADS, thread_name_prefix="hash")
        self._done: list[tuple[int, object]] = []
        self._done_lock = threading.Lock()
        self.hash_jobs_max = HASH_JOBS_MAX
        self._jobs_pending = 0
        self._done_read, self._done_write = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        self._next_dial_s = 0.0
        self.bad_peer_frames = 0
        self.peer_auth_failures = 0
        self._next_stranger_log_s = 0.0
        self._strangers_unlogged = 0
        # Requests a backup forwarded here: local pseudo connection -> (origin replica, conn).
        self._forwarded: OrderedDict[int, tuple[int, int]] = OrderedDict()
        self._next_pseudo_conn = FORWARDED_CONN_FIRST

    # --- set-up -------------------------------------------------------------------------

    def start(self) -> None:
        me = self.replicas[self.replica]
        self.loop.listen(me.client_host, me.client_port, "client", tls=self.tls)
        self.loop.listen(me.peer_host, me.peer_port, "peer-in")
        self.loop.add_reader(self.doorbell.fileno(), self._on_doorbell)
        self.loop.add_reader(self._done_read, self._on_jobs_done)
        self._dial_missing()

    def turn(self) -> None:
        # Rings first, so what they produce for sockets and rings goes out in this turn's
        # flush; then sleep in the selector only if no ring has records (doorbell handshake).
        self._drain_rings()
        self.loop.flush()
        self.on_turn()
        timeout_s = 0.05 if self.doorbell.prepare_to_sleep() else 0.0
        self.loop.turn(timeout_s)
        if timeout_s:
            self.doorbell.woke()
        if self.clock() >= self._next_dial_s:
            self._dial_missing()
            self.loop.close_idle()

    def security_counts(self) -> dict[str, int]:
        """Every security event counted so far (metrics.SECURITY_EVENTS), by name."""
        sources = (self.gateway.counters, self.loop.counters)
        counts = {"peer_auth_failures": self.peer_auth_failures,
                  "bad_peer_frames": self.bad_peer_frames}
        for event in metrics.SECURITY_EVENTS:
            for source in sources:
                if hasattr(source, event):
                    counts[event] = getattr(source, event)
        return counts

    def close(self) -> None:
        self._jobs.shutdown(wait=False, cancel_futures=True)
        self.loop.close_all()
        os.close(self._done_read)
        os.close(self._done_write)

    # --- loop callbacks -----------------------------------------------------------------

    def on_open(self, conn: Connection) -> None:
        if conn.kind == "client":
            self.gateway.opened(conn.id)
        elif conn.kind == "peer-out":
            nonce = os.urandom(auth.PEER_NONCE_BYTES)
            self._nonces[conn.id] = (nonce, b"")
            hello = wire.make_header(Command.PEER_HELLO, cluster=self.cluster,
                                     replica=self.replica, release=wire.WIRE_VERSION, nonce=nonce)
            self.loop.send(conn, wire.encode(hello))

    def on_close(self, conn: Connection, reason: str) -> None:
        if conn.kind == "client":
            self.gateway.closed(conn.id)
        self._nonces.pop(conn.id, None)
        if conn.kind == "peer-out" and self.peers_out.get(conn.peer) is conn:
            del self.peers_out[conn.peer]
        if conn.kind == "peer-out" and self._dialing.get(conn.peer) is conn:
            del self._dialing[conn.peer]
        if conn.kind == "client" or conn.connecting:  # failed dials retry quietly
            return
        if not conn.established:
            # Strangers can open peer connections at will: at most one line a second for them.
            now = self.clock()
            if now < self._next_stranger_log_s:
                self._strangers_unlogged += 1
                return
            self._next_stranger_log_s = now + 1.0
            if self._strangers_unlogged:
                reason += f" ({self._strangers_unlogged} unauthenticated closes not logged " \
                          "before this one)"
            self._strangers_unlogged = 0
        log.info("peer_connection_closed", kind=conn.kind, peer=conn.peer, reason=reason)

    def on_frames(self, conn: Connection, frames: list[memoryview]) -> None:
        if conn.kind == "client":
            for frame in frames:
                self._apply_actions(self.gateway.on_frame(conn.id, frame))
                if conn.closed:
                    return
            return
        for frame in frames:
            try:
                header, _body = wire.decode(frame)
            except FrameError as exc:
                self._bad_peer(conn, f"bad peer frame: {exc}")
                return
            if header.cluster != self.cluster or header.replica >= len(self.replicas):
                self._bad_peer(conn, "peer frame of another cluster or an unknown replica")
                return
            if not conn.established:
                if not self._handshake(conn, header):
                    return
                continue
            if conn.kind == "peer-out" or header.command in _HANDSHAKE_COMMANDS:
                self._bad_peer(conn, f"unexpected {Command(header.command).name} on an "
                                     "authenticated link")
                return
            if header.command == Command.FORWARD:
                self._accept_forwarded(conn.peer, header, frame[wire.HEADER_SIZE:])
            elif header.command == Command.FORWARD_REPLY:
                self._deliver(header.conn, frame[wire.HEADER_SIZE:])
            else:
                self._inbound.append(records.peer_frame(conn.peer, frame))

    def on_turn(self) -> None:
        if self._inbound:
            self.to_replication.push_batch(self._inbound)
            self._inbound = []
        if self._owner:
            self.to_owner.push_batch(self._owner)
            self._owner = []

    # --- internals ----------------------------------------------------------------------

    def _handshake(self, conn: Connection, header) -> bool:
        """One step of the peer handshake (module docstring); False if the link was closed."""
        command = header.command
        if conn.kind == "peer-in" and command == Command.PEER_HELLO and conn.id not in self._nonces:
            if header.replica == self.replica:
                self._bad_peer(conn, "PEER_HELLO naming this replica")
                return False
            mine = os.urandom(auth.PEER_NONCE_BYTES)
            self._nonces[conn.id] = (mine, header.nonce)
            conn.peer = header.replica
            proof = auth.peer_proof(self.cluster_key, b"accept", self.cluster, header.nonce,
                                    mine, conn.peer, self.replica)
            challenge = wire.make_header(Command.PEER_CHALLENGE, cluster=self.cluster,
                                         replica=self.replica, release=wire.WIRE_VERSION,
                                         nonce=mine, proof=proof)
            self.loop.send(conn, wire.encode(challenge))
            return True
        if conn.kind == "peer-in" and command == Command.PEER_AUTH and conn.id in self._nonces:
            mine, theirs = self._nonces[conn.id]
            expected = auth.peer_proof(self.cluster_key, b"dial", self.cluster, mine, theirs,
                                       conn.peer, self.replica)
            if header.replica != conn.peer or not hmac.compare_digest(header.proof, expected):
                self.peer_auth_failures += 1
                self._bad_peer(conn, "peer failed the cluster-key challenge")
                return False
            del self._nonces[conn.id]
            conn.established = True
            log.info("peer_authenticated", peer=conn.peer, side="accepted")
            return True
        if conn.kind == "peer-out" and command == Command.PEER_CHALLENGE:
            mine, _ = self._nonces.pop(conn.id, (b"", b""))
            expected = auth.peer_proof(self.cluster_key, b"accept", self.cluster, mine,
                                       header.nonce, self.replica, conn.peer)
            if not mine or header.replica != conn.peer or not hmac.compare_digest(
                    header.proof, expected):
                self.peer_auth_failures += 1
                self._bad_peer(conn, "peer failed the cluster-key challenge")
                return False
            proof = auth.peer_proof(self.cluster_key, b"dial", self.cluster, header.nonce, mine,
                                    self.replica, conn.peer)
            reply = wire.make_header(Command.PEER_AUTH, cluster=self.cluster,
                                     replica=self.replica, release=wire.WIRE_VERSION, proof=proof)
            self.loop.send(conn, wire.encode(reply))
            conn.established = True
            if self._dialing.get(conn.peer) is conn:
                del self._dialing[conn.peer]
            self.peers_out[conn.peer] = conn
            log.info("peer_authenticated", peer=conn.peer, side="dialed")
            return True
        self._bad_peer(conn, f"{Command(header.command).name} before the peer handshake finished")
        return False

    def _bad_peer(self, conn: Connection, reason: str) -> None:
        self.bad_peer_frames += 1
        self.loop.counters.bad_frames += 1
        self.loop.close(conn, reason)

    def _apply_actions(self, actions: list) -> None:
        for action in actions:
            kind = type(action)
            if kind is Reply:
                conn = self.loop.connections.get(action.conn)
                if conn is not None:
                    self.loop.send(conn, action.frame)
            elif kind is ToReplication:
                if self.primary == self.replica:
                    self._inbound.append(action.record)
                else:
                    self._forward(action.record)
            elif kind is ToOwner:
                self._owner.append(action.record)
            elif kind is Job:
                if self._jobs_pending >= self.hash_jobs_max:
                    self._apply_actions(self.gateway.job_refused(action.conn))
                    continue
                self._jobs_pending += 1
                self._jobs.submit(self._run_job, action)
            else:
                check(kind is Close, f"unknown gateway action {action!r}")
                conn = self.loop.connections.get(action.conn)
                if conn is not None:
                    self.loop.close(conn, action.reason)

    def _run_job(self, job: Job) -> None:
        result = job.fn(*job.args)
        with self._done_lock:
            self._done.append((job.conn, result))
        os.write(self._done_write, b"\x01")

    def _on_jobs_done(self) -> None:
        try:
            os.read(self._done_read, 4096)
        except BlockingIOError:
            pass
        with self._done_lock:
            done, self._done = self._done, []
        self._jobs_pending -= len(done)
        check(self._jobs_pending >= 0, "more hash jobs done than submitted")
        for conn, result in done:
            self._apply_actions(self.gateway.job_done(conn, result))

    def _on_doorbell(self) -> None:
        try:
            os.eventfd_read(self.doorbell.fileno())
        except BlockingIOError:
            pass

    def _drain_rings(self) -> None:
        for consumer in (self.from_replication, self.from_owner):
            wiring.drain(consumer, POP_BATCH_MAX, self._on_record)

    def _on_record(self, record: memoryview) -> None:
        kind = records.kind_of(record)
        if kind == Kind.CLIENT_FRAME:
            conn_id, frame = records.read_conn_frame(record)
            origin = self._forwarded.pop(conn_id, None)
            if origin is None:
                self._deliver(conn_id, frame)
            else:
                peer = self.peers_out.get(origin[0])
                if peer is not None:  # lost with the link: the client retries the same frame
                    header = wire.make_header(Command.FORWARD_REPLY, cluster=self.cluster,
                                              replica=self.replica, release=wire.WIRE_VERSION,
                                              conn=origin[1])
                    self.loop.send(peer, wire.encode(header, frame))
        elif kind == Kind.SEND_PEER:
            to, frame = records.read_replica_frame(record)
            conn = self.peers_out.get(to)
            if conn is not None:  # VSR tolerates a lost message; never buffer for a dead peer
                self.loop.send(conn, bytes(frame))
        elif kind == Kind.BROADCAST:
            frame = bytes(record[1:])
            for conn in list(self.peers_out.values()):
                self.loop.send(conn, frame)
        elif kind == Kind.CREDENTIALS:
            conn, found, user, active, blob = records.read_credentials(record)
            self._apply_actions(self.gateway.on_credentials(conn, found, user, active,
                                                            bytes(blob)))
        elif kind == Kind.VIEW:
            self.view, self.primary, self.normal = records.read_view(record)
        else:
            check(False, f"net got a record of kind {kind}")

    def _deliver(self, conn_id: int, frame) -> None:
        """A reply for one of this replica's client connections."""
        out = self.gateway.on_reply(conn_id, frame)
        conn = self.loop.connections.get(conn_id)
        if out is not None and conn is not None:
            self.loop.send(conn, out)

    def _forward(self, record: bytes) -> None:
        """A request this backup admitted goes to the primary, whose reply comes back here."""
        conn, user, frame = records.read_client_request(memoryview(record))
        peer = self.peers_out.get(self.primary)
        if peer is None or peer.connecting:
            request = wire.decode_header(frame)
            self._deliver(conn, iggy.reply_frame(
                request, status=iggy.STATUS_TRANSIENT_NOT_ACCEPTED))
            return
        header = wire.make_header(Command.FORWARD, cluster=self.cluster, replica=self.replica,
                                  release=wire.WIRE_VERSION, conn=conn, user=user)
        self.loop.send(peer, wire.encode(header, frame))

    def _accept_forwarded(self, origin: int, header, frame: memoryview) -> None:
        pseudo = self._next_pseudo_conn
        self._next_pseudo_conn += 1
        self._forwarded[pseudo] = (origin, header.conn)
        if len(self._forwarded) > FORWARDED_MAX:
            self._forwarded.popitem(last=False)
        self._inbound.append(records.client_request(pseudo, header.user, frame))

    def _dial_missing(self) -> None:
        self._next_dial_s = self.clock() + RECONNECT_INTERVAL_S
        for index, address in enumerate(self.replicas):
            if index == self.replica or index in self.peers_out or index in self._dialing:
                continue
            conn = self.loop.dial(address.peer_host, address.peer_port, peer=index)
            if not conn.closed:  # a refused connect closes at once: try next interval
                self._dialing[index] = conn

    def _roster(self) -> bytes:
        nodes = [iggy.Node(f"replica-{i}", address.client_host, address.client_port,
                           leader=(i == self.primary and self.normal))
                 for i, address in enumerate(self.replicas)]
        return iggy.cluster_metadata_body("metavsr", nodes)


def run(context) -> None:
    """The net process: listen, dial peers, move frames until the supervisor says stop."""
    handle = RoleHandle(context)
    config = config_mod.load(context.settings["config_path"])
    ends = wiring.attach(wiring.geometry_of(config), "net", context.settings["net_event_fd"])
    limits = LoopLimits(frame_size_max=config.limits.frame_size_max,
                        connections_max=config.limits.connections_max,
                        idle_timeout_s=config.limits.idle_timeout_s,
                        handshake_timeout_s=config.limits.handshake_timeout_s)
    security = config.security
    key = b""
    if security.cluster_key_file:
        key = auth.load_cluster_key(security.cluster_key_file)
    elif config.replica_count > 1:
        log.warning("no_cluster_key", detail="security.cluster_key_file is not set: any host "
                    "that reaches the peer port can pose as a replica")
    tls = None
    if security.tls:
        tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        tls.minimum_version = ssl.TLSVersion.TLSv1_2
        tls.load_cert_chain(security.tls_cert_file, security.tls_key_file)
    role = NetRole(replica=config.replica, cluster_id=config.cluster_id,
                   replicas=config.replicas, limits=limits,
                   requests_in_flight_max=config.limits.requests_in_flight_max,
                   producers=ends.producers, consumers=ends.consumers, doorbell=ends.doorbell,
                   clock=time.monotonic, cluster_key=key, op_size_max=config.limits.op_size_max,
                   tls=tls)
    role.start()
    meter = metrics.Meter(handle.counters, "net", ends.producers)
    handle.ready()
    log.info("net_ready", client_port=config.replicas[config.replica].client_port)
    publish_at = 0.0
    while not handle.stop_requested():
        handle.beat()
        role.turn()
        clients = len(role.gateway.conns)
        meter.set("client_connections", clients)
        meter.set("peer_connections", len(role.loop.connections) - clients)
        meter.set("bad_frames", role.loop.counters.bad_frames)
        meter.rings()
        if time.monotonic() >= publish_at:
            publish_at = time.monotonic() + PUBLISH_INTERVAL_S
            for event, count in role.security_counts().items():
                meter.set(f"security_{event}", count)
    role.close()
