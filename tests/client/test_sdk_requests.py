"""net/operations.py against the real Iggy SDK: for every recorded metadata call, the same call
through MetadataClient builds the SDK's request (operation, read code, body byte for byte), and
given the SDK's recorded reply it returns the typed result or raises the named error the SDK
showed. The transport is the recording (tests/client/sdk.py), not a server."""

from __future__ import annotations

import os
import re

import pytest

from domains import streams_wire as sw
from net import wire
from net.iggy import Code, Operation
from net.operations import MetadataClient, OperationError, ident
from tests.client.sdk import HEADER, Replay, invoke, load_sdk_calls, ok_reply


def _replayed():
    """The recorded calls that reached a server and have a MetadataClient equivalent."""
    for call in load_sdk_calls():
        if call["frames"] and invoke(Replay([]), call["method"], call["args"]) is not None:
            yield call


def test_every_metadata_call_builds_the_sdks_request_and_reads_its_reply():
    operations = set()
    for call in _replayed():
        recorded = call["frames"]
        client = Replay([bytes.fromhex(f["reply_hex"]) for f in recorded])
        thunk = invoke(client, call["method"], call["args"])
        try:
            result = thunk()
        except OperationError as error:
            assert not call["ok"], call["method"]
            assert error.text == call["error"]["message"], call["method"]
        else:
            assert call["ok"], call["method"]
            expected = call["result"]
            if expected is None:
                assert result is None, call["method"]
            elif expected == [] and call["method"].startswith("create_"):
                # The SDK's create methods return None; ours return what the reply carries.
                created = getattr(result, "name", None) or getattr(result, "username", None)
                assert created == call["args"].get("name", call["args"].get("username"))
            elif expected == []:
                assert result in (None, []), call["method"]
            elif isinstance(expected, list):
                assert len(result) == len(expected), call["method"]
            elif isinstance(expected, dict) and "id" in expected:
                assert result.id == expected["id"], call["method"]
        assert len(client.sent) == len(recorded), call["method"]
        for sent, frame in zip(client.sent, recorded):
            header = wire.decode_header(sent)
            assert header.operation == frame["operation"], call["method"]
            if frame["operation"] == Operation.NON_REPLICATED:
                assert header.code == frame["code"], call["method"]
                assert header.consistency == 0  # linearizable unless asked
            assert sent[HEADER:] == bytes.fromhex(frame["frame_hex"])[HEADER:], call["method"]
            operations.add(frame["operation"] if frame["operation"] != 2 else frame["code"])
    # Every write the SDK can send and every read of the catalogue (DeleteSegments is refused
    # by design; DeletePersonalAccessToken was never recorded: tested below).
    assert operations >= (set(range(128, 150)) - {138, 147}) | {3, 31, 32, 41, 200, 201, 300,
                                                                301, 600, 601}


def test_delete_token_body_is_the_sdks_layout():
    # Protocol section 9 [S]: send_binary_request(43, n8 name) -> op 147, body as given.
    client = Replay([ok_reply()])
    client.delete_token("ci-1")
    assert client.sent[0][HEADER:] == bytes.fromhex("0463692d31")
    assert wire.decode_header(client.sent[0]).operation == Operation.DELETE_PERSONAL_ACCESS_TOKEN


def test_stale_reads_set_the_consistency_byte():
    client = Replay([ok_reply(b"")])
    assert client.get_streams(stale=True) == []
    header = wire.decode_header(client.sent[0])
    assert (header.code, header.consistency) == (Code.GET_STREAMS, 1)


def test_errors_carry_catalogue_names():
    for call in load_sdk_calls():
        if call["method"] == "create_stream[duplicate]":
            client = Replay([bytes.fromhex(call["frames"][0]["reply_hex"])])
            with pytest.raises(OperationError) as caught:
                client.create_stream("orders")
            assert (caught.value.code, caught.value.name) == (1012, "stream_name_already_exists")
            return
    raise AssertionError("no create_stream[duplicate] recorded")


def test_arguments_that_cannot_be_encoded_send_nothing():
    client = Replay([])
    for bad, error in ((-1, ValueError), (1 << 32, ValueError), ("", ValueError),
                       ("x" * 256, ValueError), (1.5, TypeError), (True, TypeError)):
        with pytest.raises(error):
            client.delete_stream(bad)
    with pytest.raises(ValueError, match="count"):
        client.create_partitions(0, 0, -1)
    with pytest.raises(ValueError):
        client.create_topic(0, "t", 1, message_expiry=-1)
    with pytest.raises(TypeError, match="unknown topic setting"):
        client.create_topic(0, "t", 1, compression="gzip")
    with pytest.raises(ValueError, match="expiry"):
        client.create_token("tok", 1 << 64)
    assert client.sent == []


def test_identifiers_follow_the_sdk():
    # A decimal-only string is sent as a numeric identifier (protocol section 7).
    assert ident("1") == 1 and ident("orders") == "orders" and ident(7) == 7
    assert sw.encode_ids(ident("1")) == bytes.fromhex("010401000000")


def test_every_operation_of_the_catalogue_has_a_method():
    """docs/OPERATIONS.md's operation tables, each mapped to its MetadataClient method."""
    with open(os.path.join(os.path.dirname(__file__), "..", "..", "docs", "OPERATIONS.md")) as f:
        doc = f.read()
    names = set(re.findall(r"^\| (\d+) \| ([A-Z]\w+)", doc, re.M))
    methods = {
        "Register": "login", "Logout": "logout", "CreateStream": "create_stream",
        "UpdateStream": "update_stream", "DeleteStream": "delete_stream",
        "PurgeStream": "purge_stream", "GetStream": "get_stream", "GetStreams": "get_streams",
        "CreateTopic": "create_topic", "UpdateTopic": "update_topic",
        "DeleteTopic": "delete_topic", "PurgeTopic": "purge_topic",
        "CreatePartitions": "create_partitions", "DeletePartitions": "delete_partitions",
        "GetTopic": "get_topic", "GetTopics": "get_topics",
        "CreateConsumerGroup": "create_consumer_group",
        "DeleteConsumerGroup": "delete_consumer_group",
        "JoinConsumerGroup": "join_consumer_group", "LeaveConsumerGroup": "leave_consumer_group",
        "GetConsumerGroup": "get_consumer_group", "GetConsumerGroups": "get_consumer_groups",
        "CreateUser": "create_user", "UpdateUser": "update_user", "DeleteUser": "delete_user",
        "ChangePassword": "change_password", "UpdatePermissions": "update_permissions",
        "GetUser": "get_user", "GetUsers": "get_users",
        "CreatePersonalAccessToken": "create_token",
        "DeletePersonalAccessToken": "delete_token", "GetPersonalAccessTokens": "get_tokens",
        # Refused at admission by design (segments belong to the partition plane).
        "DeleteSegments": None,
    }
    assert {name for _, name in names} == set(methods), "OPERATIONS.md changed: map it here"
    for method in filter(None, methods.values()):
        assert callable(getattr(MetadataClient, method)), method
