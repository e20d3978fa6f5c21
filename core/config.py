"""The replica configuration: one TOML file, validated before anything starts.

A replica that starts with a wrong config does damage (two replicas on one data dir, a ring
journal too small for the pipeline), so every key is checked here with a message that names
the key, what was wrong and what is allowed. Unknown keys are errors too: a typo must not
silently fall back to a default.

The loaded `Config` is a tree of frozen dataclasses; nothing else in the code parses TOML.
"""

from __future__ import annotations

import dataclasses
import os
import tomllib
from dataclasses import dataclass, field
from typing import Any, Callable

REPLICA_COUNT_MAX = 7
# The superblock keeps at most 256 view headers (core/storage/superblock.py), and a view
# change carries the whole pipeline plus the head: so a pipeline of at most 255 ops.
PIPELINE_MAX_LIMIT = 255

ROLES = ("supervisor", "net", "replication", "journal", "owner", "snapshot")
JOURNAL_BACKENDS = ("segmented", "ring")
LOG_LEVELS = ("debug", "info", "warning", "error")
FRAME_SIZE_MAX = 1 << 20  # equals net.wire.FRAME_SIZE_MAX; config may lower it, never raise it
HEADER_SIZE = 256  # net.wire.HEADER_SIZE
# A write's body grows by at most this much when admission rewrites it (a minted token's hash),
# and a prepare is header + body: op_size_max + this must fit in a frame and a ring slot.
OP_REWRITE_SLACK = 1024
# The default ring slot (core/storage/datadir.py) holds a prepare of this body: a larger op
# would reach the journal and fail there. Raise it only with a larger slot (or segmented).
OP_SIZE_MAX_DEFAULT = (64 << 10) - HEADER_SIZE - OP_REWRITE_SLACK


class ConfigError(ValueError):
    """A config that cannot be used; the message names the key and what is allowed."""


@dataclass(frozen=True)
class ReplicaAddress:
    client_host: str
    client_port: int
    peer_host: str
    peer_port: int


@dataclass(frozen=True)
class JournalConfig:
    backend: str = "segmented"
    segment_size_bytes: int = 64 << 20
    ring_slots: int = 4096
    retention_ops: int = 4096
    fsync: bool = True


@dataclass(frozen=True)
class ReplicationConfig:
    pipeline_max: int = 64
    batch_max: int = 256
    # Each checkpoint stalls commits for a moment (its 3 fsynced copies share the disk with
    # the journal, and the superblock naming it sits in the journal role's loop): 16384 ops
    # keep that out of the p99 at moderate load (`metavsr bench cluster`), at the price of
    # a longer replay at restart and more journal kept. A ring journal needs fewer (serve
    # says so): `cluster up --journal ring` sets 2048.
    checkpoint_interval: int = 16384
    tick_ms: int = 10
    view_change_timeout_ticks: int = 30
    heartbeat_ticks: int = 5


@dataclass(frozen=True)
class LimitsConfig:
    frame_size_max: int = FRAME_SIZE_MAX
    connections_max: int = 1024
    requests_in_flight_max: int = 64
    idle_timeout_s: float = 300.0
    handshake_timeout_s: float = 5.0
    op_size_max: int = OP_SIZE_MAX_DEFAULT


@dataclass(frozen=True)
class ShmConfig:
    ring_size_bytes: int = 8 << 20
    poll_us: int = 50


@dataclass(frozen=True)
class SecurityConfig:
    cluster_key_file: str = ""
    tls: bool = False
    tls_cert_file: str = ""
    tls_key_file: str = ""


@dataclass(frozen=True)
class Config:
    cluster_id: int
    replica: int
    data_dir: str
    replicas: tuple[ReplicaAddress, ...]
    journal: JournalConfig = field(default_factory=JournalConfig)
    replication: ReplicationConfig = field(default_factory=ReplicationConfig)
    limits: LimitsConfig = field(default_factory=LimitsConfig)
    shm: ShmConfig = field(default_factory=ShmConfig)
    security: SecurityConfig = field(default_factory=SecurityConfig)
    metrics_address: str = ""
    log_level: str = "info"
    cpu: dict[str, tuple[int, ...]] = field(default_factory=dict)

    @property
    def replica_count(self) -> int:
        return len(self.replicas)


def load(path: str) -> Config:
    """Read and validate a TOML config file."""
    try:
        with open(path, "rb") as source:
            raw = tomllib.load(source)
    except FileNotFoundError:
        raise ConfigError(f"config file {path!r} does not exist") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config file {path!r} is not valid TOML: {exc}") from None
    return parse(raw, base_dir=os.path.dirname(os.path.abspath(path)))


def parse(raw: dict[str, Any], base_dir: str = ".") -> Config:
    """Validate a decoded TOML document; relative paths are taken from base_dir."""
    top = _Table(raw, "")
    cluster_id = top.int("cluster_id", low=1, high=(1 << 128) - 1)
    replica = top.int("replica", low=0, high=REPLICA_COUNT_MAX - 1)
    data_dir = _path(top.str("data_dir", nonempty=True), base_dir)
    replicas = _parse_replicas(top.list("replicas"))
    if replica >= len(replicas):
        raise ConfigError(
            f"replica: {replica} is not an index of the {len(replicas)} entries of [[replicas]]; "
            f"allowed: 0..{len(replicas) - 1}")
    journal = _parse_section(top.table("journal"), JournalConfig, {
        "backend": lambda t, k: t.choice(k, JOURNAL_BACKENDS),
        "segment_size_bytes": lambda t, k: t.int(k, low=1 << 16, high=1 << 34),
        "ring_slots": lambda t, k: t.int(k, low=64, high=1 << 20),
        "retention_ops": lambda t, k: t.int(k, low=0, high=1 << 32),
        "fsync": lambda t, k: t.bool(k),
    })
    replication = _parse_section(top.table("replication"), ReplicationConfig, {
        "pipeline_max": lambda t, k: t.int(k, low=1, high=PIPELINE_MAX_LIMIT),
        "batch_max": lambda t, k: t.int(k, low=1, high=8192),
        "checkpoint_interval": lambda t, k: t.int(k, low=16, high=1 << 24),
        "tick_ms": lambda t, k: t.int(k, low=1, high=1000),
        "view_change_timeout_ticks": lambda t, k: t.int(k, low=2, high=100_000),
        "heartbeat_ticks": lambda t, k: t.int(k, low=1, high=10_000),
    })
    limits = _parse_section(top.table("limits"), LimitsConfig, {
        "frame_size_max": lambda t, k: t.int(k, low=4096, high=FRAME_SIZE_MAX),
        "connections_max": lambda t, k: t.int(k, low=1, high=65_536),
        "requests_in_flight_max": lambda t, k: t.int(k, low=1, high=4096),
        "idle_timeout_s": lambda t, k: t.float(k, low=0.1, high=86_400.0),
        "handshake_timeout_s": lambda t, k: t.float(k, low=0.1, high=600.0),
        "op_size_max": lambda t, k: t.int(k, low=1024, high=FRAME_SIZE_MAX),
    })
    op_size_fit = limits.frame_size_max - HEADER_SIZE - OP_REWRITE_SLACK
    if "op_size_max" not in raw.get("limits", {}):  # the default follows a lowered frame size
        limits = dataclasses.replace(limits, op_size_max=min(limits.op_size_max, op_size_fit))
    if limits.op_size_max > op_size_fit:
        raise ConfigError(
            f"limits.op_size_max: {limits.op_size_max} is too large for limits.frame_size_max "
            f"{limits.frame_size_max}; allowed: at most frame_size_max - {HEADER_SIZE} (header) "
            f"- {OP_REWRITE_SLACK} (admission rewrites) = "
            f"{limits.frame_size_max - HEADER_SIZE - OP_REWRITE_SLACK}")
    shm = _parse_section(top.table("shm"), ShmConfig, {
        "ring_size_bytes": lambda t, k: t.int(k, low=1 << 16, high=1 << 30),
        "poll_us": lambda t, k: t.int(k, low=0, high=100_000),
    })
    security = _parse_section(top.table("security"), SecurityConfig, {
        "cluster_key_file": lambda t, k: _path(t.str(k), base_dir) if t.str(k) else "",
        "tls": lambda t, k: t.bool(k),
        "tls_cert_file": lambda t, k: _path(t.str(k), base_dir) if t.str(k) else "",
        "tls_key_file": lambda t, k: _path(t.str(k), base_dir) if t.str(k) else "",
    })
    if security.tls and not (security.tls_cert_file and security.tls_key_file):
        raise ConfigError("security.tls: true needs security.tls_cert_file and security.tls_key_file")
    metrics_address = top.str("metrics_address") if "metrics_address" in raw else ""
    if metrics_address:
        _host_port(metrics_address, "metrics_address")
    log_level = top.choice("log_level", LOG_LEVELS) if "log_level" in raw else "info"
    cpu = _parse_cpu(top.table("cpu"))
    top.reject_unknown()

    if replication.heartbeat_ticks >= replication.view_change_timeout_ticks:
        raise ConfigError(
            "replication.heartbeat_ticks must be below replication.view_change_timeout_ticks, "
            "or backups start view changes against a healthy primary")
    if replication.checkpoint_interval < 2 * replication.pipeline_max:
        raise ConfigError(
            f"replication.checkpoint_interval: {replication.checkpoint_interval} is below "
            f"2 x pipeline_max = {2 * replication.pipeline_max}; a checkpoint must not start "
            f"while the pipeline still holds ops of the previous interval")
    if journal.retention_ops < replication.pipeline_max:
        raise ConfigError(
            f"journal.retention_ops: {journal.retention_ops} is below pipeline_max = "
            f"{replication.pipeline_max}; a lagging backup must still find the ops the "
            f"pipeline held at the checkpoint")
    if journal.backend == "ring":
        slots_needed = replication.checkpoint_interval + 2 * replication.pipeline_max
        if journal.ring_slots < slots_needed:
            raise ConfigError(
                f"journal.ring_slots: {journal.ring_slots} is too small; the ring journal needs "
                f"checkpoint_interval + 2 x pipeline_max = {slots_needed} slots so the primary "
                f"never stalls for a slot")
    return Config(cluster_id=cluster_id, replica=replica, data_dir=data_dir,
                  replicas=replicas, journal=journal, replication=replication, limits=limits,
                  shm=shm, security=security, metrics_address=metrics_address,
                  log_level=log_level, cpu=cpu)


def _parse_replicas(entries: list[Any]) -> tuple[ReplicaAddress, ...]:
    count = len(entries)
    if count % 2 == 0 or not (1 <= count <= REPLICA_COUNT_MAX):
        raise ConfigError(
            f"replicas: {count} entries; allowed: an odd count from 1 to {REPLICA_COUNT_MAX}")
    addresses = []
    seen: dict[tuple[str, int], str] = {}
    for index, entry in enumerate(entries):
        name = f"replicas[{index}]"
        if not isinstance(entry, dict):
            raise ConfigError(f"{name}: expected a table with client and peer, got {entry!r}")
        table = _Table(entry, name + ".")
        client = _host_port(table.str("client", nonempty=True), f"{name}.client")
        peer = _host_port(table.str("peer", nonempty=True), f"{name}.peer")
        table.reject_unknown()
        for key, address in (("client", client), ("peer", peer)):
            if address in seen:
                raise ConfigError(
                    f"{name}.{key}: {address[0]}:{address[1]} is already used by {seen[address]}")
            seen[address] = f"{name}.{key}"
        addresses.append(ReplicaAddress(client[0], client[1], peer[0], peer[1]))
    return tuple(addresses)


# The CPUs this process could use before anything pinned it: each role re-reads the config
# after pinning itself to a few CPUs, and must not refuse the CPUs of the other roles.
# Roles are forked from the supervisor, which imported this module before pinning.
_CPUS_AT_START = tuple(sorted(os.sched_getaffinity(0)))


def _parse_cpu(table: _Table) -> dict[str, tuple[int, ...]]:
    available = list(_CPUS_AT_START)
    cpu: dict[str, tuple[int, ...]] = {}
    for role in ROLES:
        if role not in table.raw:
            continue
        cpus = table.list(role)
        key = f"cpu.{role}"
        if not cpus:
            raise ConfigError(f"{key}: empty CPU list; allowed: a non-empty list of {available}")
        for cpu_index in cpus:
            if not isinstance(cpu_index, int) or isinstance(cpu_index, bool):
                raise ConfigError(f"{key}: {cpu_index!r} is not a CPU number; allowed: {available}")
            if cpu_index not in available:
                raise ConfigError(
                    f"{key}: CPU {cpu_index} is not available to this process; allowed: {available}")
        if len(set(cpus)) != len(cpus):
            raise ConfigError(f"{key}: CPU list {cpus} repeats a CPU")
        cpu[role] = tuple(cpus)
    table.reject_unknown(allowed_hint=", ".join(ROLES))
    return cpu


def _parse_section(table: _Table, cls: type, readers: dict[str, Callable[[_Table, str], Any]]):
    values = {}
    for key, reader in readers.items():
        if key in table.raw:
            values[key] = reader(table, key)
    table.reject_unknown()
    return cls(**values)


def _path(value: str, base_dir: str) -> str:
    return value if os.path.isabs(value) else os.path.normpath(os.path.join(base_dir, value))


def _host_port(value: str, key: str) -> tuple[str, int]:
    host, sep, port_text = value.rpartition(":")
    if not sep or not host or not port_text.isdigit():
        raise ConfigError(f"{key}: {value!r} is not HOST:PORT (e.g. \"127.0.0.1:3001\")")
    port = int(port_text)
    if not (1 <= port <= 65_535):
        raise ConfigError(f"{key}: port {port} outside 1..65535")
    return host.strip("[]"), port


class _Table:
    """A TOML table being read: typed getters that name the full key in every error."""

    def __init__(self, raw: Any, prefix: str):
        if not isinstance(raw, dict):
            raise ConfigError(f"{prefix.rstrip('.') or 'config'}: expected a table, got {raw!r}")
        self.raw = raw
        self.prefix = prefix
        self.used: set[str] = set()

    def _get(self, key: str, kind: str) -> Any:
        if key not in self.raw:
            raise ConfigError(f"{self.prefix}{key}: missing; expected {kind}")
        self.used.add(key)
        return self.raw[key]

    def int(self, key: str, low: int, high: int) -> int:
        value = self._get(key, f"an integer in {low}..{high}")
        if not isinstance(value, int) or isinstance(value, bool):
            raise ConfigError(f"{self.prefix}{key}: {value!r} is not an integer; allowed: {low}..{high}")
        if not (low <= value <= high):
            raise ConfigError(f"{self.prefix}{key}: {value} outside the allowed range {low}..{high}")
        return value

    def float(self, key: str, low: float, high: float) -> float:
        value = self._get(key, f"a number in {low}..{high}")
        if not isinstance(value, (int, float)) or isinstance(value, bool):
            raise ConfigError(f"{self.prefix}{key}: {value!r} is not a number; allowed: {low}..{high}")
        if not (low <= value <= high):
            raise ConfigError(f"{self.prefix}{key}: {value} outside the allowed range {low}..{high}")
        return float(value)

    def bool(self, key: str) -> bool:
        value = self._get(key, "true or false")
        if not isinstance(value, bool):
            raise ConfigError(f"{self.prefix}{key}: {value!r} is not a boolean; allowed: true, false")
        return value

    def str(self, key: str, nonempty: bool = False) -> str:
        value = self._get(key, "a string")
        if not isinstance(value, str):
            raise ConfigError(f"{self.prefix}{key}: {value!r} is not a string")
        if nonempty and not value:
            raise ConfigError(f"{self.prefix}{key}: must not be empty")
        return value

    def choice(self, key: str, allowed: tuple[str, ...]) -> str:
        value = self.str(key)
        if value not in allowed:
            raise ConfigError(f"{self.prefix}{key}: {value!r} is not allowed; allowed: {', '.join(allowed)}")
        return value

    def list(self, key: str) -> list[Any]:
        value = self._get(key, "a list")
        if not isinstance(value, list):
            raise ConfigError(f"{self.prefix}{key}: {value!r} is not a list")
        return value

    def table(self, key: str) -> _Table:
        if key not in self.raw:
            return _Table({}, f"{self.prefix}{key}.")
        self.used.add(key)
        return _Table(self.raw[key], f"{self.prefix}{key}.")

    def reject_unknown(self, allowed_hint: str = "") -> None:
        unknown = sorted(set(self.raw) - self.used)
        if unknown:
            where = self.prefix.rstrip(".") or "top level"
            hint = f"; allowed: {allowed_hint}" if allowed_hint else ""
            raise ConfigError(f"{self.prefix}{unknown[0]}: unknown key in {where}{hint}")

