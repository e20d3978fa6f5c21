"""The official apache-iggy SDK as a client of a real metavsr cluster (the conformance judge).

Connected to any replica - the primary or a backup - the SDK logs in (a backup forwards the
Register to the primary), reads the roster, moves to the primary by itself, and its calls
return what metavsr's own client reads.
"""

from __future__ import annotations

import asyncio
import time

import pytest


apache_iggy = pytest.importorskip("apache_iggy")


async def _session(address: str, username: str, password: str, name: str) -> dict:
    client = apache_iggy.IggyClient(address)
    await client.connect()
    await client.login_user(username, password)
    await client.create_stream(name)
    stream = await client.get_stream(name)
    await client.create_topic(name, "events", partitions_count=3)
    topic = await client.get_topic(name, "events")
    try:
        await client.create_stream(name)
        duplicate = ""
    except RuntimeError as error:
        duplicate = str(error)
    streams = [s.name for s in await client.get_streams()]
    return {"stream": (stream.id, stream.name), "topic": (topic.name, topic.partitions_count),
            "duplicate": duplicate, "streams": streams}


def test_the_sdk_works_through_every_replica_primary_or_backup(cluster):
    ours = cluster.client(timeout_s=2.0, deadline_s=30.0)  # waits until the cluster is ready
    username, password = cluster.credentials
    for index, (host, port) in enumerate(cluster.addresses):
        name = f"sdk-via-{index}"
        seen = asyncio.run(_session(f"{host}:{port}", username, password, name))
        assert seen["stream"][1] == name
        assert seen["topic"] == ("events", 3)
        assert seen["duplicate"] == "Stream with name:  already exists."
        assert name in seen["streams"]
        mine = ours.get_stream(name)
        assert (mine.id, mine.name) == seen["stream"]


async def _create_through_failover(address: str, username: str, password: str, kill) -> dict:
    from datetime import timedelta

    config = apache_iggy.TcpConfig(
        server_address=address,
        auto_login=apache_iggy.AutoLogin.username_password(username, password),
        heartbeat_interval=timedelta(milliseconds=500),
        reconnection=apache_iggy.TcpReconnectionConfig(
            max_retries=None, interval=timedelta(milliseconds=50),
            reestablish_after=timedelta(0)))
    client = apache_iggy.IggyClient(config)
    await client.connect()
    acked, errors, gap_s, killed_at = [], [], 0.0, 0.0
    for i in range(60):
        if i == 20:
            kill()
            killed_at = time.monotonic()
        try:
            await asyncio.wait_for(client.create_stream(f"failover-{i}"), 30)
        except RuntimeError as error:  # the write in flight at the kill: outcome unknown
            errors.append(str(error))
            continue
        if killed_at and not gap_s:
            gap_s = time.monotonic() - killed_at
        acked.append(f"failover-{i}")
    listed = {stream.name for stream in await client.get_streams()}
    return {"acked": acked, "errors": errors, "gap_s": gap_s, "listed": listed}


def test_an_sdk_with_auto_login_carries_on_after_kill_9_of_the_primary(cluster):
    ours = cluster.client(timeout_s=2.0, deadline_s=30.0)
    primary = cluster.primary(ours)
    backup = (primary + 1) % 3
    host, port = cluster.addresses[backup]
    username, password = cluster.credentials
    seen = asyncio.run(_create_through_failover(f"{host}:{port}", username, password,
                                                lambda: cluster.kill(primary)))
    assert len(seen["errors"]) <= 1 and all(e == "Disconnected" for e in seen["errors"])
    assert len(seen["acked"]) >= 59
    assert set(seen["acked"]) <= seen["listed"]
    assert seen["gap_s"] < 5.0
    print(f"SDK failover gap {seen['gap_s']:.3f} s")
