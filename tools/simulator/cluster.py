"""One seeded simulation: replicas, their disks and state machines, the network, clients.

Owns the event loop (deliver messages, sync disks, tick replicas and clients, inject faults
until they heal), the execution of every replica action, and the run's checkers: committed
prefixes agree, state digests agree at equal ops, no request applied twice, no acknowledged
request lost, the client history is linearizable, and the cluster commits again once faults
heal. Deterministic: everything random comes from generators seeded by the run's seed.
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass, field

from core.check import InvariantError
from core.vsr.apply import apply_prepare
from core.vsr.messages import (
    Append, Applied, Apply, Checkpoint, CheckpointDone, Durable, Flush, PersistView, Query,
    Receive, Reply, ReplyFromTable, RequestSnapshot, Send, SnapshotInstalled, Tick, Truncate,
    VsrConfig,
)
from core.vsr.replica import Replica
from net.wire import (
    WIRE_VERSION, Command, FrameError, cluster_bytes, decode, decode_client_frame, encode,
    frame_checksum, make_header,
)
from tools.simulator.faults import PROFILES, FaultProfile
from tools.simulator.linearizability import check_history
from tools.simulator.network import Network
from tools.simulator.storage import Storage
from tools.simulator import load_workload

DIGEST_EVERY_OPS = 8
SIM_CONFIG = dict(pipeline_max=16, checkpoint_interval=64, journal_retention_ops=32,
                  view_headers_max=48)
JOURNAL_BOUNDS = ("none", "segmented", "ring")
# Small enough that a replica down for a few hundred ticks comes back past the bound.
SEGMENTED_OPS_AHEAD = 40
CLIENTS = 6
BODY_SIZE_MAX = 4096


class SimulationFailure(AssertionError):
    pass


@dataclass
class RunResult:
    seed: int
    replicas: int
    profile: str
    ticks: int
    committed_requests: int
    commit_max: int
    wall_seconds: float
    sim_seconds: float
    failures: list = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.failures


class _Node:
    """A running replica with its state machine (absent while crashed)."""

    def __init__(self, replica: Replica, state_machine) -> None:
        self.replica = replica
        self.state_machine = state_machine


class Cluster:
    def __init__(self, seed: int, replica_count: int = 3, ticks: int = 2000,
                 profile: str = "mixed", workload=None, replica_class=Replica,
                 config: dict | None = None, clients: int = CLIENTS,
                 schedule: dict | None = None) -> None:
        self.seed = seed
        self.replica_count = replica_count
        self.ticks = ticks
        self.profile_name = profile
        self.profile: FaultProfile = PROFILES[profile]
        self.workload = workload or load_workload()
        workload = self.workload
        self.replica_class = replica_class
        self.rng = random.Random(seed)
        # Checkpoints and journal retention small enough that a run of ~500 ops checkpoints
        # several times and a replica down long enough needs state transfer.
        # Odd seeds batch like the replication role does (prepares and read rounds cut on a
        # Flush after each tick's inputs), even seeds cut them after every input.
        # Seeds also rotate the journal's bound as the real backends impose it: none, a
        # segmented journal's distance above what it holds, a ring's slots.
        settings = {**SIM_CONFIG, "batch_on_flush": seed % 2 == 1, **(config or {})}
        bound = JOURNAL_BOUNDS[seed % len(JOURNAL_BOUNDS)]
        if bound == "segmented":
            settings.setdefault("journal_ops_ahead_max", SEGMENTED_OPS_AHEAD)
        elif bound == "ring":
            # A ring barely larger than the geometry requires (interval + 3 x pipeline,
            # core/storage/journal_writer.py), since retention here exceeds one pipeline.
            settings.setdefault("journal_slots", settings["checkpoint_interval"] +
                                settings["journal_retention_ops"] + 2 * settings["pipeline_max"])
        self.config = VsrConfig(replica_count=replica_count, **settings)
        self.f = (replica_count - 1) // 2
        self.network = Network(random.Random(self.rng.random()), self.profile.network)
        self.storages = [Storage(self.config) for _ in range(replica_count)]
        self.nodes: list[_Node | None] = [self._boot(r, None) for r in range(replica_count)]
        self.down_until: dict[int, int] = {}
        self.partition_until = 0
        # At most f replicas ever see corruption, so one intact copy of every committed op
        # survives on the f + 1 that acknowledged it.
        self.corruptible = self.rng.sample(range(replica_count), self.f)
        self.heal_tick = ticks * 3 // 5
        # Halfway from the heal to the end, the most advanced replica's applied op: every
        # replica must have applied it by the end (a replica left behind for good fails).
        self.catch_up_tick = (self.heal_tick + ticks) // 2
        self.catch_up_op = 0
        self.now = 0
        self.history: list = []
        self.acked: set = set()
        self.clients = [workload.client(i, replica_count, random.Random(self.rng.random()))
                        for i in range(clients)]
        self.committed_checksums: dict[int, int] = {}
        self.digests: dict[int, bytes] = {}
        self.executed: list[dict] = [{} for _ in range(replica_count)]  # (client,req) -> op
        self.first_executed: dict = {}
        self.failures: list[str] = []
        self.client_nodes = {c.node: c for c in self.clients}
        # Scripted faults for targeted tests: tick -> callables taking the cluster.
        self.schedule = schedule or {}

    # ---------------------------------------------------------------- replicas

    def _boot(self, index: int, recovered) -> _Node:
        state_machine = self.workload.state_machine()
        storage = self.storages[index]
        if recovered is not None and storage.checkpoint_sections is not None:
            state_machine.restore(storage.checkpoint_sections)
        replica = self.replica_class(self.config, index, random.Random(self.rng.random()),
                                     recovered)
        return _Node(replica, state_machine)

    def _step(self, index: int, event) -> None:
        pending = [event]
        while pending:
            node = self.nodes[index]
            if node is None:
                return
            actions = node.replica.step(pending.pop(0))
            for action in actions:
                follow = self._execute(index, node, action)
                if follow is not None:
                    pending.append(follow)

    def _execute(self, index: int, node: _Node, action):
        kind = type(action)
        storage = self.storages[index]
        if kind is Send:
            self.network.send(self.now, index, action.to, action.frame)
        elif kind is Append:
            refused = storage.append(action.seq, action.op, action.frame)
            if refused:
                self._fail(f"replica {index}: {refused}")
        elif kind is Apply:
            return self._apply(index, node, action)
        elif kind is PersistView:
            storage.persist_view(action.view, action.log_view, action.op, action.headers)
        elif kind is Truncate:
            storage.truncate(action.op)
        elif kind is Reply:
            self._reply(index, node, action.header, (action.status, action.result), action.op)
        elif kind is ReplyFromTable:
            cached = node.state_machine.client_reply(action.header.client, action.header.request)
            if cached is not None:
                self._reply(index, node, action.header, cached, node.replica.commit_min)
        elif kind is Query:
            h = action.header
            result = node.state_machine.query(h.code, bytes(action.body), h.user_id)
            self._reply(index, node, h, result, action.op)
        elif kind is Checkpoint:
            storage.checkpoint(action.op, node.state_machine.snapshot(), action.header)
            return CheckpointDone(action.op)
        elif kind is RequestSnapshot:
            return self._state_transfer(index, node, action)
        else:
            raise SimulationFailure(f"unknown action {kind.__name__}")
        return None

    def _client_index(self, client: bytes) -> int:
        return int.from_bytes(client[8:16], "little") - 1

    def _reply(self, index, node, request_header, result, op) -> None:
        status, body = result
        header = make_header(Command.REPLY, cluster=cluster_bytes(self.config.cluster),
                             view=node.replica.view, release=WIRE_VERSION, replica=index,
                             request_checksum=request_header.request_checksum,
                             client=request_header.client, op=op,
                             commit=node.replica.commit_max, request=request_header.request,
                             operation=request_header.operation, status=status)
        self.network.send(self.now, index, ("client", self._client_index(request_header.client)),
                          encode(header, body))

    def _apply(self, index: int, node: _Node, action: Apply):
        op = action.op
        checksum = frame_checksum(action.frame)
        known = self.committed_checksums.setdefault(op, checksum)
        if known != checksum:
            self._fail(f"replica {index} committed a different prepare at op {op}")
        recorder = _Recorder(node.state_machine)
        op_, entries = apply_prepare(recorder, action.frame)
        executed = self.executed[index]
        for key in recorder.executed:
            if key in executed and executed[key] != op:
                self._fail(f"replica {index} executed request {key[1]} of a client twice "
                           f"(ops {executed[key]} and {op})")
            executed[key] = op
            first = self.first_executed.setdefault(key, op)
            if first != op:
                self._fail(f"request {key[1]} executed at op {first} and op {op}")
        if op % DIGEST_EVERY_OPS == 0:
            digest = node.state_machine.digest()
            if self.digests.setdefault(op, digest) != digest:
                self._fail(f"replica {index} state digest differs at op {op}")
        return Applied(op, entries)

    def _state_transfer(self, index: int, node: _Node, action: RequestSnapshot):
        source = self.storages[action.peer]
        if self.nodes[action.peer] is None or source.checkpoint_sections is None or \
                source.checkpoint_op <= node.replica.commit_min:
            node.replica.snapshot_requested = False  # the peer cannot serve: ask again later
            return None
        storage = self.storages[index]
        storage.checkpoint(source.checkpoint_op, source.checkpoint_sections,
                           source.checkpoint_header)
        node.state_machine.restore(source.checkpoint_sections)
        # The journal below the checkpoint is no longer needed; the executed-request record
        # restarts from the checkpoint like the state it mirrors.
        self.executed[index] = {k: v for k, v in self.first_executed.items()
                                if v <= source.checkpoint_op}
        return SnapshotInstalled(source.checkpoint_op, source.checkpoint_header)

    # ---------------------------------------------------------------- faults

    def _crash(self, index: int) -> None:
        self.crash(index, self.rng.randint(10, self.profile.down_ticks_max),
                   torn=self.rng.random() < self.profile.torn_write)

    def crash(self, index: int, down_ticks: int, torn: bool = False) -> None:
        """Stop replica `index` (unsynced appends lost) and restart it down_ticks later."""
        self.nodes[index] = None
        self.storages[index].crash(self.rng, torn)
        self.down_until[index] = self.now + down_ticks

    def isolate(self, side_a: list, ticks: int) -> None:
        """Cut side_a from every other node (replicas and clients) for `ticks`."""
        others = [r for r in range(self.replica_count) if r not in side_a]
        self.network.partition(side_a, others + [c.node for c in self.clients])
        self.partition_until = self.now + ticks

    def _restart(self, index: int) -> None:
        storage = self.storages[index]
        self.nodes[index] = self._boot(index, storage.recover())
        checkpoint = storage.checkpoint_op
        self.executed[index] = {k: v for k, v in self.executed[index].items() if v <= checkpoint}
        del self.down_until[index]

    def _inject(self) -> None:
        p = self.profile
        rng = self.rng
        if p.crash_per_tick and rng.random() < p.crash_per_tick:
            up = [r for r in range(self.replica_count) if self.nodes[r] is not None]
            if len(self.down_until) < self.f and up:
                self._crash(rng.choice(up))
        for index in sorted(self.down_until):
            if self.now >= self.down_until[index]:
                self._restart(index)
        if self.partition_until and self.now >= self.partition_until:
            self.network.heal()
            self.partition_until = 0
        if p.partition_per_tick and not self.partition_until and \
                rng.random() < p.partition_per_tick:
            replicas = list(range(self.replica_count))
            rng.shuffle(replicas)
            cut = rng.randint(1, self.replica_count // 2)
            side_a = replicas[:cut]
            side_b = replicas[cut:] + ([c.node for c in self.clients] if rng.random() < 0.5
                                       else [])
            self.network.partition(side_a, side_b)
            self.partition_until = self.now + rng.randint(10, p.partition_ticks_max)
        if p.corrupt_per_tick and self.corruptible and rng.random() < p.corrupt_per_tick:
            self.storages[rng.choice(self.corruptible)].corrupt(rng)

    def _heal(self) -> None:
        self.network.heal()
        self.network.faulty = False
        self.partition_until = 0
        for index in sorted(self.down_until):
            self._restart(index)

    # ---------------------------------------------------------------- loop

    def _fail(self, message: str) -> None:
        self.failures.append(f"tick {self.now}: {message}")

    def run(self) -> RunResult:
        started = time.perf_counter()
        for self.now in range(1, self.ticks + 1):
            for event in self.schedule.get(self.now, ()):
                event(self)
            if self.now < self.heal_tick:
                self._inject()
            elif self.now == self.heal_tick:
                self._heal()
            elif self.now == self.catch_up_tick:
                self.catch_up_op = max(n.replica.commit_min for n in self.nodes if n)
            try:
                for source, target, frame in list(self.network.due(self.now)):
                    self._deliver(source, target, frame)
                for index in range(self.replica_count):
                    if self.nodes[index] is not None:
                        seq = self.storages[index].sync()
                        if seq is not None:
                            self._step(index, Durable(seq))
                        self._step(index, Tick())
                        if self.config.batch_on_flush:
                            self._step(index, Flush())
            except InvariantError as error:
                # A replica stopped on a broken invariant (fail-stop): a failure of this seed.
                self._fail(f"invariant: {error}")
                break
            for client in self.clients:
                client.tick(self.now, self.history,
                            lambda to, frame, c=client: self.network.send(self.now, c.node, to,
                                                                          frame))
            if self.failures:
                break
        self._final_checks()
        wall = time.perf_counter() - started
        commit_max = max((n.replica.commit_min for n in self.nodes if n), default=0)
        return RunResult(self.seed, self.replica_count, self.profile_name, self.now,
                         len(self.first_executed), commit_max, wall,
                         self.now * self.config.tick_us / 1e6, self.failures)

    def _deliver(self, source, target, frame: bytes) -> None:
        if isinstance(target, tuple):
            client = self.client_nodes[target]
            header, body = decode(frame, verify=True)
            client.on_reply(self.now, header, body, self.acked)
            return
        if self.nodes[target] is None:
            return
        try:
            if isinstance(source, tuple):
                header, body = decode_client_frame(frame, BODY_SIZE_MAX)
            else:
                header, body = decode(frame, verify=True)
        except FrameError as error:
            self._fail(f"replica {target} got a bad frame: {error}")
            return
        self._step(target, Receive(header, body, frame=frame))

    def _final_checks(self) -> None:
        if self.failures:
            return
        # Liveness: once faults heal, every client completes an operation it started later.
        for client in self.clients:
            if not any(op.client == client.index and op.complete_tick is not None and
                       op.invoke_tick >= self.heal_tick for op in self.history):
                self._fail(f"liveness: client {client.index} completed nothing after faults "
                           f"healed at tick {self.heal_tick}")
                break
        for index, node in enumerate(self.nodes):
            if node is not None and node.replica.commit_min < self.catch_up_op:
                self._fail(f"liveness: replica {index} applied only up to op "
                           f"{node.replica.commit_min}, behind op {self.catch_up_op} that "
                           f"another had applied at tick {self.catch_up_tick}")
                break
        # No acknowledged write lost: the most advanced replica executed every acked request
        # whose op it has reached.
        best = max((n for n in self.nodes if n), key=lambda n: n.replica.commit_min)
        best_index = self.nodes.index(best)
        executed = self.executed[best_index]
        for key in sorted(self.acked):
            op = self.first_executed.get(key)
            if op is None:
                self._fail(f"acknowledged request {key[1]} was never executed")
            elif op <= best.replica.commit_min and key not in executed:
                self._fail(f"acknowledged request {key[1]} (op {op}) lost on replica "
                           f"{best_index}")
        problem = check_history(self.history, self.workload.model)
        if problem:
            self._fail(f"history not linearizable: {problem}")


class _Recorder:
    """Wraps a state machine to record which requests were executed (not answered from the
    client table), for the applied-twice checker."""

    def __init__(self, state_machine) -> None:
        self.state_machine = state_machine
        self.executed: list = []

    def client_reply(self, client, request):
        return self.state_machine.client_reply(client, request)

    def apply(self, op, timestamp_us, client, session, request, user_id, operation, body):
        if operation != 1:
            self.executed.append((client, request))
        return self.state_machine.apply(op, timestamp_us, client, session, request, user_id,
                                        operation, body)


def run_seed(seed: int, replicas: int = 3, ticks: int = 2000, profile: str = "mixed",
             **kwargs) -> RunResult:
    return Cluster(seed, replicas, ticks, profile, **kwargs).run()
