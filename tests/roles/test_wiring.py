"""Every ring of the table connects its producer role to its consumer role, doorbell included."""

from __future__ import annotations

from core.roles import wiring
from shm import naming


def test_each_ring_carries_records_from_producer_to_consumer():
    geometry = wiring.Geometry(cluster_id=9201, replica=0, ring_size_bytes=1 << 16, poll_us=0)
    naming.remove_stale(9201, 0)
    cleanup, event_fd = wiring.create(geometry)
    try:
        ends = {role: wiring.attach(geometry, role, event_fd) for role in wiring.ROLES}
        for spec in wiring.RINGS:
            producer = ends[spec.producer].producers[spec.name]
            producer.push(spec.name.encode())
            consumer = ends[spec.consumer].consumers[spec.name]
            assert ends[spec.consumer].doorbell.wait(1.0)
            [record] = consumer.pop(10)
            assert bytes(record) == spec.name.encode()
            del record
            consumer.release()
        for role, attached in ends.items():
            assert set(attached.producers) == {s.name for s in wiring.RINGS if s.producer == role}
            assert set(attached.consumers) == {s.name for s in wiring.RINGS if s.consumer == role}
    finally:
        cleanup()
    assert not [n for n in naming.remove_stale(9201, 0)]
