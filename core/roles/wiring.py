"""Which rings join which roles of a replica, and how each side attaches to them.

The supervisor creates every ring and doorbell (`create`) before it starts the roles, and
unlinks them when the replica stops; each role attaches to its own rings by name (`attach`).
One table (RINGS) is the single source of truth for the data paths drawn in DESIGN section 2;
the record formats on each ring are in core/roles/records.py.

The net role sleeps in its selector, so its doorbell is an eventfd (inherited through fork);
every other role sleeps on a posix_ipc semaphore.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from core.check import check
from shm import naming
from shm.doorbell import Doorbell, EventfdDoorbell, SemaphoreDoorbell
from shm.ring import Ring, RingConsumer, RingProducer, record_size_max_for

ROLES = ("net", "replication", "journal", "owner", "snapshot")
RING_FULL_TIMEOUT_S = 10.0  # a consumer silent this long is dead: the producer fails stop


@dataclass(frozen=True)
class RingSpec:
    name: str
    producer: str
    consumer: str


RINGS = (
    RingSpec("inbound", "net", "replication"),
    RingSpec("outbound", "replication", "net"),
    RingSpec("journal", "replication", "journal"),
    RingSpec("durable", "journal", "replication"),
    RingSpec("apply", "replication", "owner"),
    RingSpec("owner_net", "net", "owner"),
    RingSpec("replies", "owner", "net"),
    RingSpec("applied", "owner", "replication"),
    RingSpec("snapshot", "owner", "snapshot"),
    RingSpec("snapshot_done", "snapshot", "replication"),
    RingSpec("transfer", "replication", "snapshot"),
)


@dataclass(frozen=True)
class Geometry:
    cluster_id: int
    replica: int
    ring_size_bytes: int
    poll_us: int

    def ring_name(self, ring: str) -> str:
        return naming.ring_name(self.cluster_id, self.replica, ring)

    def doorbell_name(self, role: str) -> str:
        return naming.doorbell_name(self.cluster_id, self.replica, role)


def geometry_of(config) -> Geometry:
    """The ring geometry of a replica's config (core.config.Config)."""
    return Geometry(config.cluster_id, config.replica, config.shm.ring_size_bytes,
                    config.shm.poll_us)


def create(geometry: Geometry) -> tuple[Callable[[], None], int]:
    """Create every ring and doorbell; returns (cleanup, the net doorbell's eventfd)."""
    created: list = []
    record_size_max = record_size_max_for(geometry.ring_size_bytes)
    for spec in RINGS:
        created.append(Ring.create(geometry.ring_name(spec.name), geometry.ring_size_bytes,
                                   record_size_max))
    net_bell = EventfdDoorbell.create(geometry.doorbell_name("net"), geometry.poll_us)
    created.append(net_bell)
    for role in ROLES:
        if role != "net":
            created.append(SemaphoreDoorbell.create(geometry.doorbell_name(role), geometry.poll_us))

    def cleanup() -> None:
        for item in created:
            item.close()

    return cleanup, net_bell.fileno()


@dataclass
class Attached:
    """One role's ends: producers by ring name, consumers by ring name, its own doorbell."""
    producers: dict[str, RingProducer]
    consumers: dict[str, RingConsumer]
    doorbell: Doorbell


def attach(geometry: Geometry, role: str, net_event_fd: int) -> Attached:
    check(role in ROLES, f"unknown role {role!r}")
    bells: dict[str, Doorbell] = {}

    def bell(owner: str) -> Doorbell:
        if owner not in bells:
            name = geometry.doorbell_name(owner)
            bells[owner] = (EventfdDoorbell.attach(name, net_event_fd, geometry.poll_us)
                            if owner == "net" else SemaphoreDoorbell.attach(name, geometry.poll_us))
        return bells[owner]

    own = bell(role)
    producers: dict[str, RingProducer] = {}
    consumers: dict[str, RingConsumer] = {}
    for spec in RINGS:
        if spec.producer == role:
            producers[spec.name] = RingProducer(Ring.attach(geometry.ring_name(spec.name)),
                                                bell(spec.consumer), RING_FULL_TIMEOUT_S)
        elif spec.consumer == role:
            consumer = RingConsumer(Ring.attach(geometry.ring_name(spec.name)))
            own.watch(consumer)
            consumers[spec.name] = consumer
    return Attached(producers, consumers, own)


def drain(consumer: RingConsumer, count_max: int, handle) -> None:
    """Pop up to count_max records, hand each to handle(record), then give the ring space back.

    Records pushed alone are views into the ring, valid only until release(): handle must copy
    what it keeps.
    """
    batch = consumer.pop(count_max)
    for record in batch:
        handle(record)
    del batch
    consumer.release()
