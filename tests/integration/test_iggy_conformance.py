"""Conformance: every metadata method of the official apache-iggy SDK against one real cluster.

The wheel (real client code none of us wrote) drives each method and each error path through a
backup replica (so every session also exercises the login redirect to the primary), and what it
returns is compared field by field with what metavsr's own MetadataClient reads. One cluster
serves the whole module; each test works on its own streams and users so the order of the
tests does not matter.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import subprocess
import time
from datetime import timedelta

import pytest

from domains import users_wire
from domains.codec import U64_MAX
from domains.permissions import G_READ_STREAMS, S_READ_STREAM, T_READ
from net import iggy
from net.operations import MetadataClient
from tests.integration.test_cluster import Cluster

apache_iggy = pytest.importorskip("apache_iggy")
IggyClient = apache_iggy.IggyClient

CALL_TIMEOUT_S = 30.0  # the SDK's own reply deadline; a hang fails the test instead
COMPRESSIONS = {1: "none", 2: "gzip"}


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    cluster = Cluster(str(tmp_path_factory.mktemp("iggy-conformance") / "cluster"))
    for index in range(3):
        cluster.start(index)
    yield cluster
    cluster.stop()


@pytest.fixture(scope="module")
def ours(cluster) -> MetadataClient:
    client = cluster.client(timeout_s=2.0, deadline_s=30.0)  # waits until the cluster is ready
    yield client
    client.close()


@pytest.fixture(scope="module")
def address(cluster, ours) -> str:
    backup = (cluster.primary(ours) + 1) % 3
    host, port = cluster.addresses[backup]
    return f"{host}:{port}"


def run(coroutine):
    return asyncio.run(asyncio.wait_for(coroutine, 4 * CALL_TIMEOUT_S))


async def _logged_in(address: str, username: str, password: str) -> IggyClient:
    client = IggyClient(address)
    await client.connect()
    await client.login_user(username, password)
    return client


async def _error(awaitable) -> str:
    """The SDK's error text for a call that must fail (RuntimeError, as the SDK raises)."""
    try:
        await asyncio.wait_for(awaitable, CALL_TIMEOUT_S)
    except RuntimeError as error:
        return str(error)
    raise AssertionError("the call succeeded")


def _options(sdk_options: dict) -> dict[str, object]:
    return {str(key.value): value.value for key, value in sdk_options.items()}


def _our_options(options: dict) -> dict[str, object]:
    decoded = {}
    for key, (kind, raw) in options.items():
        if kind == 2:
            decoded[key] = raw.decode()
        elif kind == 3:
            decoded[key] = raw != b"\x00"
        else:
            decoded[key] = int.from_bytes(raw, "little")
    return decoded


def _same_stream(sdk, mine) -> None:
    assert (sdk.id, sdk.name, sdk.created_at, sdk.topics_count, sdk.size, sdk.messages_count) == (
        mine.id, mine.name, mine.created_at, mine.topics_count, mine.size, mine.messages_count)


def _expiry_us(sdk_expiry) -> int | None:
    """µs of an ExpireDuration; None for NeverExpire/ServerDefault (compared by class name)."""
    duration = getattr(sdk_expiry, "duration", None)
    return None if duration is None else round(duration / timedelta(microseconds=1))


def _same_topic(sdk, mine) -> None:
    assert (sdk.id, sdk.name, sdk.created_at, sdk.partitions_count, sdk.size,
            sdk.messages_count) == (mine.id, mine.name, mine.created_at, mine.partitions_count,
                                    mine.size, mine.messages_count)
    assert sdk.compression_algorithm == COMPRESSIONS[mine.compression]
    if mine.message_expiry in (0, U64_MAX):
        assert type(sdk.message_expiry).__name__ in ("NeverExpire", "ServerDefault")
    else:
        assert _expiry_us(sdk.message_expiry) == mine.message_expiry
    max_size = {0: "ServerDefault", U64_MAX: "Unlimited"}.get(mine.max_topic_size, "Custom")
    assert type(sdk.max_topic_size).__name__ == max_size
    assert _options(sdk.options) == _our_options(mine.options)
    assert _options(sdk.derived_options) == _our_options(mine.derived_options)
    if hasattr(sdk, "partitions"):
        assert [(p.id, p.created_at, p.segments_count, p.current_offset, p.size,
                 p.messages_count) for p in sdk.partitions] == [
            (p.id, p.created_at, p.segments_count, p.current_offset, p.size, p.messages_count)
            for p in mine.partitions]


def _same_group(sdk, mine) -> None:
    assert (sdk.id, sdk.name, sdk.partitions_count, sdk.members_count) == (
        mine.id, mine.name, mine.partitions_count, mine.members_count)
    if hasattr(sdk, "members"):
        assert [(m.id, list(m.partitions)) for m in sdk.members] == [
            (m.id, list(m.partitions)) for m in mine.members]


def _status(sdk_status) -> int:
    return {"Active": users_wire.STATUS_ACTIVE, "Inactive": users_wire.STATUS_INACTIVE}[
        str(sdk_status).rsplit(".", 1)[-1]]


def _same_user(sdk, mine) -> None:
    assert (sdk.id, sdk.username, sdk.created_at, _status(sdk.status)) == (
        mine.id, mine.username, mine.created_at, mine.status)


# --- connection, login, server ------------------------------------------------------------

def test_connect_ping_login_logout_and_connection_strings(cluster, address):
    username, password = cluster.credentials

    async def scenario():
        plain = IggyClient(address)
        await plain.connect()
        await plain.ping()  # before login: answered by the replica itself
        unauthenticated = await _error(plain.get_stats())
        await plain.login_user(username, password)
        await plain.ping()
        streams = await plain.get_streams()
        await plain.logout_user()
        after_logout = await _error(plain.get_streams())
        wrong = await _error(plain.login_user(username, "not-the-password"))
        by_string = IggyClient.from_connection_string(f"iggy://{username}:{password}@{address}")
        await by_string.connect()
        await by_string.ping()
        config = apache_iggy.TcpConfig(
            server_address=address,
            auto_login=apache_iggy.AutoLogin.username_password(username, password))
        auto = IggyClient(config)
        await auto.connect()
        return (unauthenticated, streams, after_logout, wrong, await by_string.get_streams(),
                await auto.get_streams())

    unauthenticated, streams, after_logout, wrong, by_string, auto = run(scenario())
    assert unauthenticated == "Unauthenticated" and after_logout == "Unauthenticated"
    assert wrong == "Invalid credentials"
    assert isinstance(streams, list) and isinstance(by_string, list) and isinstance(auto, list)


def test_get_stats_reports_the_replica_counts_and_process_figures(cluster, ours, address):
    ours.create_stream("stats-s")
    ours.create_topic("stats-s", "t", 3)
    ours.create_consumer_group("stats-s", "t", "g")

    async def scenario():
        client = await _logged_in(address, *cluster.credentials)
        return await client.get_stats()

    sdk = run(scenario())
    # Both clients sit on the primary: the same replica answers.
    mine = iggy.parse_stats(ours.read(iggy.Code.GET_STATS))
    streams = ours.get_streams()
    topics = [t for s in streams for t in ours.get_topics(s.id)]
    assert (sdk.streams_count, sdk.topics_count) == (len(streams), len(topics))
    assert sdk.partitions_count == sum(t.partitions_count for t in topics)
    assert sdk.consumer_groups_count == sum(
        len(ours.get_consumer_groups(s.id, t.id)) for s in streams for t in ours.get_topics(s.id))
    assert sdk.consumer_groups_count >= 1 and sdk.partitions_count >= 3
    assert sdk.clients_count >= 2  # our client and the SDK's session at least
    assert (sdk.streams_count, sdk.topics_count, sdk.partitions_count,
            sdk.consumer_groups_count) == (mine.streams, mine.topics, mine.partitions,
                                           mine.consumer_groups)
    assert (sdk.process_id, sdk.hostname, sdk.os_name, sdk.kernel_version,
            sdk.iggy_server_version, sdk.iggy_server_semver, sdk.start_time) == (
        mine.process_id, mine.hostname, mine.os_name, mine.kernel_version, mine.server_version,
        mine.server_semver, mine.start_time_us)
    assert sdk.process_id in {p.pid for p in cluster.processes}
    assert (sdk.messages_count, sdk.segments_count, sdk.messages_size_bytes) == (0, 0, 0)
    assert sdk.cache_metrics == {}
    assert sdk.memory_usage > 0 and sdk.threads_count >= 6  # a supervisor and five roles
    assert 0 < sdk.available_memory <= sdk.total_memory
    assert 0 < sdk.free_disk_space <= sdk.total_disk_space
    assert sdk.run_time > timedelta(0)


def test_describe_options_lists_the_topic_keys_metavsr_understands(cluster, address):
    async def scenario():
        client = await _logged_in(address, *cluster.credentials)
        return [await client.describe_options(scope) for scope in ("topic", "stream", "user")]

    topic, stream, user = run(scenario())
    specs = {spec.key: spec for spec in topic}
    assert sorted(specs) == ["compression_algorithm", "consumer_offset_durability", "durability",
                             "max_topic_size", "message_expiry", "messages_required_to_save",
                             "preallocate_segments", "segment_size",
                             "size_of_messages_required_to_save"]
    assert (specs["compression_algorithm"].kind, specs["compression_algorithm"].default_value.value
            ) == ("string", "none")
    assert specs["durability"].default_value.value == "replicated"
    assert (specs["message_expiry"].kind, specs["message_expiry"].default_value.value) == (
        "uint64", 0)
    assert specs["segment_size"].default_value is None
    assert all(spec.description for spec in topic)
    assert stream == [] and user == []


# --- streams, topics, partitions -----------------------------------------------------------

def test_streams_create_get_list_update_purge_delete_and_their_errors(cluster, ours, address):
    async def scenario():
        client = await _logged_in(address, *cluster.credentials)
        await client.create_stream("conf-orders")
        await client.create_stream("conf-payments")
        by_name = await client.get_stream("conf-orders")
        by_id = await client.get_stream(by_name.id)
        by_decimal = await client.get_stream(str(by_name.id))
        mine = ours.get_stream("conf-orders")
        missing = await client.get_stream("conf-nope")
        duplicate = await _error(client.create_stream("conf-orders"))
        await client.update_stream("conf-payments", "conf-payments-2", options={"team": "a"})
        renamed = await client.get_stream("conf-payments-2")
        rename_clash = await _error(client.update_stream("conf-payments-2", "conf-orders"))
        await client.purge_stream("conf-orders")
        listed = await client.get_streams()
        errors = [await _error(client.delete_stream("conf-nope")),
                  await _error(client.update_stream("conf-nope", "x")),
                  await _error(client.purge_stream("conf-nope"))]
        await client.delete_stream("conf-payments-2")
        gone = await client.get_stream("conf-payments-2")
        return by_name, by_id, by_decimal, mine, missing, duplicate, renamed, rename_clash, \
            listed, errors, gone

    (by_name, by_id, by_decimal, mine, missing, duplicate, renamed, rename_clash, listed, errors,
     gone) = run(scenario())
    for seen in (by_name, by_id, by_decimal):
        _same_stream(seen, mine)
        assert seen.topics == []
    assert missing is None and gone is None
    assert duplicate == rename_clash == "Stream with name:  already exists."
    assert errors == ["Stream with ID: 0 was not found."] * 3
    assert renamed.name == "conf-payments-2"
    assert ours.get_stream("conf-payments-2") is None
    mine_listed = {s.id: s for s in ours.get_streams()}
    sdk_listed = {s.id: s for s in listed}
    assert sdk_listed.keys() >= {mine.id}
    for sid in sdk_listed.keys() & mine_listed.keys():
        if sid != renamed.id:  # deleted since the list
            _same_stream(sdk_listed[sid], mine_listed[sid])


def test_topics_with_every_option_and_partitions_and_their_errors(cluster, ours, address):
    ours.create_stream("conf-topics")

    async def scenario():
        client = await _logged_in(address, *cluster.credentials)
        await client.create_topic("conf-topics", "plain", 2)
        await client.create_topic(
            "conf-topics", "full", 3, compression_algorithm="gzip",
            message_expiry=apache_iggy.IggyExpiry.ExpireDuration(timedelta(seconds=60)),
            max_topic_size=apache_iggy.MaxTopicSize.Custom(10_000_000), segment_size=2_000_000,
            durability=apache_iggy.Durability.PERSISTED,
            consumer_offset_durability=apache_iggy.Durability.REPLICATED,
            messages_required_to_save=100, size_of_messages_required_to_save=4096,
            preallocate_segments=True, options={"x-extra": "1"})
        full = await client.get_topic("conf-topics", "full")
        plain = await client.get_topic("conf-topics", 0)
        _same_topic(full, ours.get_topic("conf-topics", "full"))
        _same_topic(plain, ours.get_topic("conf-topics", "plain"))
        listed = await client.get_topics("conf-topics")
        stream = await client.get_stream("conf-topics")
        errors = {
            "duplicate": await _error(client.create_topic("conf-topics", "plain", 1)),
            "missing stream": await _error(client.create_topic("conf-nope", "x", 1)),
            "list missing stream": await _error(client.get_topics("conf-nope")),
            "delete missing": await _error(client.delete_topic("conf-topics", "nope")),
            "zero partitions": await _error(client.create_partitions("conf-topics", "plain", 0)),
            "too many deleted": await _error(client.delete_partitions("conf-topics", "plain",
                                                                      50)),
        }
        missing = await client.get_topic("conf-topics", "nope")
        await client.update_topic(
            "conf-topics", "full", "full-2", compression_algorithm="none",
            message_expiry=apache_iggy.IggyExpiry.NeverExpire(),
            max_topic_size=apache_iggy.MaxTopicSize.Unlimited(), options={"y": "2"})
        updated = await client.get_topic("conf-topics", "full-2")
        await client.create_partitions("conf-topics", "plain", 3)
        await client.delete_partitions("conf-topics", "plain", 1)
        resized = await client.get_topic("conf-topics", "plain")
        _same_topic(resized, ours.get_topic("conf-topics", "plain"))
        await client.purge_topic("conf-topics", "plain")
        await client.delete_topic("conf-topics", "full-2")
        after = await client.get_topics("conf-topics")
        return full, plain, listed, stream, errors, missing, updated, resized, after

    full, plain, listed, stream, errors, missing, updated, resized, after = run(scenario())
    assert full.compression_algorithm == "gzip" and full.partitions_count == 3
    assert _expiry_us(full.message_expiry) == 60_000_000
    assert _options(full.options)["durability"] == "persisted"
    assert _options(full.options)["x-extra"] == "1"
    assert _options(plain.options) == {"consumer_offset_durability": "replicated",
                                       "durability": "replicated"}
    assert [t.name for t in listed] == ["plain", "full"]
    assert [t.name for t in stream.topics] == ["plain", "full"] and stream.topics_count == 2
    assert missing is None
    assert errors == {
        "duplicate": "Topic with name:  for stream with ID: 0 already exists.",
        "missing stream": "Stream with ID: 0 was not found.",
        "list missing stream": "Stream with ID: 0 was not found.",
        "delete missing": "Topic with ID: 0 for stream with ID: 0 was not found.",
        "zero partitions": "Invalid partitions count",
        "too many deleted": "Invalid partitions count",
    }
    assert type(updated.message_expiry).__name__ == "NeverExpire"
    assert type(updated.max_topic_size).__name__ == "Unlimited"
    assert updated.compression_algorithm == "none" and _options(updated.options)["y"] == "2"
    assert resized.partitions_count == 4 and [p.id for p in resized.partitions] == [0, 1, 2, 3]
    assert [t.name for t in after] == ["plain"]
    _same_topic(after[0], ours.get_topics("conf-topics")[0])
    assert ours.get_topic("conf-topics", "full-2") is None


# --- consumer groups -----------------------------------------------------------------------

def test_consumer_groups_create_get_list_join_leave_delete_and_their_errors(cluster, ours,
                                                                            address):
    ours.create_stream("conf-groups")
    ours.create_topic("conf-groups", "events", 4)

    async def scenario():
        client = await _logged_in(address, *cluster.credentials)
        await client.create_consumer_group("conf-groups", "events", "billing")
        await client.create_consumer_group("conf-groups", "events", "audit")
        duplicate = await _error(client.create_consumer_group("conf-groups", "events",
                                                              "billing"))
        await client.join_consumer_group("conf-groups", "events", "billing")
        joined = await client.get_consumer_group("conf-groups", "events", "billing")
        mine_joined = ours.get_consumer_group("conf-groups", "events", "billing")
        listed = await client.get_consumer_groups("conf-groups", "events")
        await client.leave_consumer_group("conf-groups", "events", "billing")
        errors = {
            "leave twice": await _error(client.leave_consumer_group("conf-groups", "events",
                                                                    "billing")),
            "join missing": await _error(client.join_consumer_group("conf-groups", "events",
                                                                    "nope")),
            "delete missing": await _error(client.delete_consumer_group("conf-groups", "events",
                                                                        "nope")),
            "missing topic": await _error(client.get_consumer_groups("conf-groups", "nope")),
        }
        left = await client.get_consumer_group("conf-groups", "events", 0)
        missing = await client.get_consumer_group("conf-groups", "events", "nope")
        await client.delete_consumer_group("conf-groups", "events", "audit")
        after = await client.get_consumer_groups("conf-groups", "events")
        return duplicate, joined, mine_joined, listed, errors, left, missing, after

    duplicate, joined, mine_joined, listed, errors, left, missing, after = run(scenario())
    assert duplicate == "Consumer group with name:  for topic with ID: 0 already exists."
    assert joined.members_count == 1 and joined.partitions_count == 4
    assert list(joined.members[0].partitions) == [0, 1, 2, 3]
    _same_group(joined, mine_joined)
    assert [(g.name, g.members_count) for g in listed] == [("billing", 1), ("audit", 0)]
    assert errors == {
        "leave twice": "Consumer group member with client ID: 0 for group with ID: 0 for topic "
                       "with ID: 0 was not found.",
        "join missing": "Consumer group with ID: 0 for topic with ID: 0 was not found.",
        "delete missing": "Consumer group with ID: 0 for topic with ID: 0 was not found.",
        "missing topic": "Topic with ID: 0 for stream with ID: 0 was not found.",
    }
    assert left.members_count == 0 and left.members == [] and missing is None
    assert [g.name for g in after] == ["billing"]
    _same_group(after[0], ours.get_consumer_groups("conf-groups", "events")[0])
    _same_group(left, ours.get_consumer_group("conf-groups", "events", "billing"))


# --- users, permissions, tokens --------------------------------------------------------------

def test_users_permissions_passwords_and_their_errors(cluster, ours, address):
    ours.create_stream("conf-users")
    ours.create_topic("conf-users", "t", 1)
    stream_id = ours.get_stream("conf-users").id
    root_name, root_password = cluster.credentials
    permissions = apache_iggy.Permissions(
        apache_iggy.GlobalPermissions(read_streams=True),
        {stream_id: apache_iggy.StreamPermissions(
            read_stream=True, topics={0: apache_iggy.TopicPermissions(read_topic=True)})})

    async def scenario():
        client = await _logged_in(address, root_name, root_password)
        await client.create_user("conf-carol", "carol-pw-1", status=apache_iggy.UserStatus.Active,
                                 permissions=permissions)
        await client.create_user("conf-dave", "dave-pw-1")
        carol = await client.get_user("conf-carol")
        dave = await client.get_user("conf-dave")
        listed = await client.get_users()
        errors = {
            "duplicate": await _error(client.create_user("conf-carol", "other-pw-1")),
            "delete root": await _error(client.delete_user(0)),
            "root permissions": await _error(client.update_permissions(0, None)),
            "delete missing": await _error(client.delete_user("conf-nobody")),
            "wrong current": await _error(client.change_password("conf-dave", "wrong-pw-1",
                                                                 "dave-pw-2")),
        }
        missing = await client.get_user("conf-nobody")
        await client.update_user("conf-dave", username="conf-dave-2",
                                 status=apache_iggy.UserStatus.Inactive)
        inactive = await client.get_user("conf-dave-2")
        inactive_login = await _error(_logged_in(address, "conf-dave-2", "dave-pw-1"))
        await client.update_user("conf-dave-2", status=apache_iggy.UserStatus.Active)
        await client.change_password("conf-dave-2", "dave-pw-1", "dave-pw-2")
        old_password = await _error(_logged_in(address, "conf-dave-2", "dave-pw-1"))
        dave_client = await _logged_in(address, "conf-dave-2", "dave-pw-2")
        denied = {
            "create stream": await _error(dave_client.create_stream("conf-by-dave")),
            "list streams": await _error(dave_client.get_streams()),
            "stats": await _error(dave_client.get_stats()),
            "users": await _error(dave_client.get_users()),
            "create user": await _error(dave_client.create_user("conf-eve", "eve-pw-1")),
        }
        own = await dave_client.get_user("conf-dave-2")  # a user may read itself
        await client.update_permissions(
            "conf-dave-2", apache_iggy.Permissions(
                apache_iggy.GlobalPermissions(manage_streams=True, read_servers=True)))
        allowed_stats = await dave_client.get_stats()
        await dave_client.create_stream("conf-by-dave")
        granted = await client.get_user("conf-dave-2")
        await client.update_permissions("conf-dave-2", None)
        revoked = await client.get_user("conf-dave-2")
        after_revoke = await _error(dave_client.delete_stream("conf-by-dave"))
        await client.delete_user("conf-dave-2")
        gone = await client.get_user("conf-dave-2")
        return (carol, dave, listed, errors, missing, inactive, inactive_login, old_password,
                denied, own, allowed_stats, granted, revoked, after_revoke, gone)

    (carol, dave, listed, errors, missing, inactive, inactive_login, old_password, denied, own,
     allowed_stats, granted, revoked, after_revoke, gone) = run(scenario())
    mine_carol = ours.get_user("conf-carol")
    _same_user(carol, mine_carol)
    assert mine_carol.permissions == (G_READ_STREAMS, {stream_id: (S_READ_STREAM, {0: T_READ})})
    assert carol.permissions.global_permissions.read_streams
    assert not carol.permissions.global_permissions.manage_streams
    carol_stream = carol.permissions.streams[stream_id]
    assert carol_stream.read_stream and not carol_stream.manage_stream
    assert carol_stream.topics[0].read_topic and not carol_stream.topics[0].manage_topic
    assert dave.permissions is None and _status(dave.status) == users_wire.STATUS_ACTIVE
    mine_listed = {u.id: u for u in ours.get_users()}
    for user in listed:
        if user.id in mine_listed and user.username != "conf-dave":  # renamed since
            _same_user(user, mine_listed[user.id])
    assert {"conf-carol", "conf-dave", root_name} <= {u.username for u in listed}
    assert errors == {
        "duplicate": "User already exists",
        "delete root": "Cannot delete user with ID: 0",
        "root permissions": "Cannot change permissions for user with ID: 0",
        "delete missing": "Resource with key:  was not found.",
        "wrong current": "Invalid credentials",
    }
    assert missing is None
    assert _status(inactive.status) == users_wire.STATUS_INACTIVE
    assert inactive_login == old_password == "Invalid credentials"
    assert denied == {key: "Unauthorized" for key in denied}
    assert own.username == "conf-dave-2"
    assert allowed_stats.streams_count >= 1
    assert granted.permissions.global_permissions.manage_streams
    assert revoked.permissions is None and after_revoke == "Unauthorized"
    assert gone is None and ours.get_user("conf-dave-2") is None


def _token_request(name: str, expiry_us: int = 0) -> bytes:
    return iggy.name8(name) + expiry_us.to_bytes(8, "little")


def test_personal_access_tokens_create_list_delete_and_login(cluster, ours, address):
    root_name, root_password = cluster.credentials

    async def scenario():
        client = await _logged_in(address, root_name, root_password)
        created = await client.send_binary_request(42, _token_request("conf-ci"))
        await client.send_binary_request(42, _token_request("conf-hourly", 3_600_000_000))
        listed = await client.send_binary_request(41, b"")
        duplicate = await _error(client.send_binary_request(42, _token_request("conf-ci")))
        token = bytes(created[1:1 + created[0]]).decode()
        by_token = IggyClient(apache_iggy.TcpConfig(
            server_address=address, auto_login=apache_iggy.AutoLogin.personal_access_token(token)))
        await by_token.connect()
        token_streams = await by_token.get_streams()
        by_string = IggyClient.from_connection_string(f"iggy://{token}@{address}")
        await by_string.connect()
        await by_string.ping()
        string_users = await by_string.get_users()
        await client.send_binary_request(43, iggy.name8("conf-ci"))
        missing = await _error(client.send_binary_request(43, iggy.name8("conf-ci")))
        after = await client.send_binary_request(41, b"")
        refused = IggyClient(apache_iggy.TcpConfig(
            server_address=address, auto_login=apache_iggy.AutoLogin.personal_access_token(token),
            reconnection=apache_iggy.TcpReconnectionConfig(enabled=False)))
        deleted_login = await _error(refused.connect())
        return created, listed, duplicate, token, token_streams, string_users, missing, after, \
            deleted_login

    (created, listed, duplicate, token, token_streams, string_users, missing, after,
     deleted_login) = run(scenario())
    assert created[0] == len(token) and len(created) == 1 + len(token)
    tokens = ours.get_tokens()
    assert {t.name for t in tokens} == {"conf-hourly"}  # ours lists root's tokens, as the SDK
    assert sorted(_token_list(bytes(after))) == sorted((t.name, t.expiry_at) for t in tokens)
    names = dict(_token_list(bytes(listed)))
    assert names["conf-ci"] == 0 and names["conf-hourly"] > 0
    assert duplicate == "Personal access token:  for user with ID: 0 already exists"
    assert isinstance(token_streams, list) and string_users[0].id == 0
    assert missing == "Resource with key:  was not found."
    assert deleted_login == "Invalid personal access token"


def _token_list(payload: bytes) -> list[tuple[str, int]]:
    """The PAT list layout (iggy-protocol.md 8): name8 + expiry u64, back to back."""
    out, offset = [], 0
    while offset < len(payload):
        size = payload[offset]
        name = payload[offset + 1:offset + 1 + size].decode()
        offset += 1 + size
        out.append((name, int.from_bytes(payload[offset:offset + 8], "little")))
        offset += 8
    return out


# --- what metavsr does not serve -------------------------------------------------------------

def test_message_plane_calls_get_feature_unavailable_and_change_nothing(cluster, ours, address):
    ours.create_stream("conf-messages")
    ours.create_topic("conf-messages", "t", 1)
    before = ours.get_topic("conf-messages", "t")

    async def scenario():
        client = await _logged_in(address, *cluster.credentials)
        return {
            "send": await _error(client.send_messages(
                "conf-messages", "t", apache_iggy.Partitioning.partition_id(0),
                [apache_iggy.SendMessage("hello")])),
            "poll": await _error(client.poll_messages(
                "conf-messages", "t", consumer=apache_iggy.Consumer.Single(1),
                polling_strategy=apache_iggy.PollingStrategy.Next(), count=1, auto_commit=False,
                partition_id=0)),
            "get offset (120)": await _error(client.send_binary_request(120, b"\x00")),
            "store offset (121)": await _error(client.send_binary_request(121, b"\x00")),
            "flush (102)": await _error(client.send_binary_request(102, b"\x00")),
            "delete segments (503)": await _error(client.send_binary_request(503, b"\x00")),
            "unknown code": await _error(client.send_binary_request(9999, b"\x00")),
            "me (20)": await _error(client.send_binary_request(20, b"")),
        }

    async def high_level():
        """The SDK's producer and consumer: their metadata steps work, their messages do not."""
        client = await _logged_in(address, *cluster.credentials)
        producer = await client.producer("conf-produced", "t")  # creates both if missing
        try:
            await producer.send_one(apache_iggy.SendMessage("hello"))
            sent = ""
        except apache_iggy.ProducerSendError as error:
            sent = str(error)
        consumer = await client.consumer_group("conf-consumers", "conf-messages", "t")
        polled = await _error(anext(consumer.iter_messages()))
        return sent, polled

    errors = run(scenario())
    sent, polled = run(high_level())
    assert sent == "Producer send failed: Feature is unavailable"
    assert polled == "Feature is unavailable"
    assert ours.get_topic("conf-produced", "t").partitions_count == 1
    [group] = ours.get_consumer_groups("conf-messages", "t")
    assert (group.name, group.members_count) == ("conf-consumers", 1)
    unknown, me = errors.pop("unknown code"), errors.pop("me (20)")
    assert errors == {key: "Feature is unavailable" for key in errors}
    assert unknown == me == "Invalid command"
    assert ours.get_topic("conf-messages", "t") == before


def test_hostile_frames_never_break_the_replica_for_a_well_behaved_sdk(cluster, ours, address):
    """Wrong size, unknown operation, truncated and oversize bodies, requests before login:
    each gets an answer or a closed connection, and the SDK keeps being served meanwhile."""
    host, port = address.rsplit(":", 1)
    client_id = os.urandom(16)
    good = iggy.request_frame(client_id, 0, 1, iggy.Operation.CREATE_STREAM, iggy.name8("x"))
    hostile = {
        "size below header": good[:48] + (100).to_bytes(4, "little") + good[52:],
        "unknown operation": iggy.request_frame(client_id, 0, 1, 99, b""),
        "truncated login": iggy.request_frame(client_id, 0, 0, iggy.Operation.REGISTER,
                                              b"\x00\x2c\x00\x00\x08rust"),
        "oversize body": good[:48] + (1 << 30).to_bytes(4, "little") + good[52:],
        "write before login": good,
    }
    outcomes = {}
    for name, frame in hostile.items():
        with socket.create_connection((host, int(port)), timeout=5) as sock:
            sock.sendall(frame)
            reply = _recv_header(sock)
            outcomes[name] = "closed" if reply is None else (
                "eviction" if reply[60] == 13 else
                f"status {int.from_bytes(reply[216:220], 'little')}")

    async def scenario():
        client = await _logged_in(address, *cluster.credentials)
        await client.create_stream("conf-after-hostile")
        return await client.get_stream("conf-after-hostile")

    assert run(scenario()).name == "conf-after-hostile"
    assert outcomes == {"size below header": "closed", "unknown operation": "status 3",
                        "truncated login": "eviction", "oversize body": "closed",
                        "write before login": "eviction"}
    assert all(process.poll() is None for process in cluster.processes)


def _recv_header(sock: socket.socket) -> bytes | None:
    """The 256-byte header of the answer, or None when the replica closed the connection."""
    data = b""
    while len(data) < 256:
        try:
            chunk = sock.recv(256 - len(data))
        except (TimeoutError, ConnectionResetError):
            return None
        if not chunk:
            return None
        data += chunk
    return data


# --- TLS ------------------------------------------------------------------------------------

def _ca_signed_certificate(directory) -> tuple[str, str, str]:
    """(cert, key, CA cert): a leaf for localhost and 127.0.0.1 signed by a throwaway CA. The
    SDK (rustls) refuses a self-signed CA certificate used as the server's own."""
    if shutil.which("openssl") is None:
        pytest.skip("no openssl command to generate a test certificate")
    d = str(directory)

    def openssl(*args: str) -> None:
        subprocess.run(["openssl", *args], check=True, capture_output=True, timeout=60, cwd=d)

    curve = ("-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes")
    openssl("req", "-x509", *curve, "-keyout", "ca.key", "-out", "ca.pem", "-days", "1",
            "-subj", "/CN=metavsr-test-ca")
    openssl("req", *curve, "-keyout", "key.pem", "-out", "leaf.csr", "-subj", "/CN=localhost")
    with open(os.path.join(d, "leaf.ext"), "w") as ext:
        ext.write("subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\n"
                  "extendedKeyUsage=serverAuth\n")
    openssl("x509", "-req", "-in", "leaf.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
            "-CAcreateserial", "-out", "cert.pem", "-days", "1", "-extfile", "leaf.ext")
    return (os.path.join(d, "cert.pem"), os.path.join(d, "key.pem"), os.path.join(d, "ca.pem"))


def _serve_tls(config_path: str, cert: str, key: str) -> None:
    with open(config_path) as source:
        text = source.read()
    keys = f'tls = true\ntls_cert_file = "{cert}"\ntls_key_file = "{key}"\n'
    if "\n[security]\n" in text:
        text = text.replace("\n[security]\n", "\n[security]\n" + keys, 1)
    else:
        text += "\n[security]\n" + keys
    with open(config_path, "w") as out:
        out.write(text)


def test_the_sdk_over_tls_validates_the_replica_certificate(tmp_path):
    cert, key, ca = _ca_signed_certificate(tmp_path)
    cluster = Cluster(str(tmp_path / "cluster"))
    for path in cluster.configs:
        _serve_tls(path, cert, key)
    for index in range(3):
        cluster.start(index)
    username, password = cluster.credentials
    host, port = cluster.addresses[0]

    def config(**overrides):
        settings = dict(server_address=f"{host}:{port}", tls_enabled=True,
                        tls_domain="localhost", tls_ca_file=ca,
                        auto_login=apache_iggy.AutoLogin.username_password(username, password),
                        reconnection=apache_iggy.TcpReconnectionConfig(enabled=False))
        return apache_iggy.TcpConfig(**{**settings, **overrides})

    async def ready_client() -> IggyClient:
        deadline = time.monotonic() + 60
        while True:  # the replicas are starting: a refused dial or a login that waits for a
            client = IggyClient(config())  # primary is expected meanwhile
            try:
                await asyncio.wait_for(client.connect(), 10)
                return client
            except (RuntimeError, asyncio.TimeoutError):
                if time.monotonic() > deadline:
                    raise
                await asyncio.sleep(0.2)

    async def scenario():
        client = await ready_client()
        await client.create_stream("conf-over-tls")
        stream = await client.get_stream("conf-over-tls")
        stats = await client.get_stats()
        untrusted = IggyClient(config(tls_ca_file=cert, tls_domain="localhost"))
        refused = await _error(untrusted.connect())
        plain = await _error(IggyClient(config(tls_enabled=False)).connect())
        return stream, stats, refused, plain

    try:
        stream, stats, refused, plain = run(scenario())
    finally:
        cluster.stop()
    assert stream.name == "conf-over-tls" and stats.streams_count == 1
    assert stats.process_id in {p.pid for p in cluster.processes}
    assert refused == "Cannot establish connection"  # a trust anchor that did not sign it
    assert plain == "Disconnected"  # a plain-text client on a TLS listener: closed
