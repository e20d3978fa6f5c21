"""`metavsr ctl`: argument parsing, credentials and cluster defaults, and its output (human and
--json) on the SDK's recorded replies, replayed through MetadataClient (no server)."""

from __future__ import annotations

import argparse
import inspect
import os

import orjson
import pytest

from domains import permissions as P
from domains.codec import U64_MAX
from net import wire
from net.client import Client
from net.iggy import Operation
from net.operations import MetadataClient
from tests.client.sdk import Replay, call_replies, load_sdk_calls, ok_reply
from tools import cluster_files, ctl

CLUSTER = ["--cluster", "127.0.0.1:3001,127.0.0.1:3002"]


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="metavsr ctl")
    ctl.add_arguments(parser)
    return parser.parse_args(argv)


class CtlReplay(Replay):
    """Replay with login recorded instead of exchanged, and a reply queued for the logout."""

    def __init__(self, replies: list[bytes]) -> None:
        super().__init__(replies + [ok_reply(b"")], session=0)
        self.logins: list[tuple] = []

    def login(self, username: str, password: str) -> int:
        self.logins.append(("password", username, password))
        self.session = 1
        return 0

    def login_with_token(self, token: str) -> int:
        self.logins.append(("token", token))
        self.session = 1
        return 0


def run(argv: list[str], replies: list[bytes], capsys, env: dict | None = None):
    """(exit code, stdout, stderr, client) of one ctl invocation on recorded replies."""
    client = CtlReplay(replies)
    args = parse(argv)
    old = {key: os.environ.pop(key, None) for key in (ctl.ENV_USERNAME, ctl.ENV_PASSWORD)}
    os.environ.update({ctl.ENV_USERNAME: "iggy", ctl.ENV_PASSWORD: "iggy"} if env is None else env)
    try:
        code = ctl.run(args, client_type=lambda addresses, deadline_s: client)
    finally:
        for key, value in old.items():
            os.environ.pop(key, None)
            if value is not None:
                os.environ[key] = value
    out, err = capsys.readouterr()
    return code, out, err, client


# ---- parsing ---------------------------------------------------------------------------------

def test_global_options_before_or_after_the_operation():
    for argv in (["--json", "--stale", *CLUSTER, "list-streams"],
                 ["list-streams", "--json", "--stale", *CLUSTER]):
        args = parse(argv)
        assert (args.json, args.stale, args.operation) == (True, True, "list-streams")
        assert ctl.addresses(args) == [("127.0.0.1", 3001), ("127.0.0.1", 3002)]
    args = parse(["list-streams"])
    assert (args.json, args.stale, args.cluster, args.dir) == (False, False, None,
                                                               cluster_files.DEFAULT_DIR)


def test_create_user_password_file_is_the_new_users():
    args = parse(["--username", "root", "--password-file", "root.pw", "create-user", "alice",
                  "--password-file", "alice.pw", "--status", "inactive"])
    assert (args.username, args.password_file, args.new_username, args.new_password_file) == (
        "root", "root.pw", "alice", "alice.pw")
    assert ctl._permissions(args) is None
    args = parse(["--username", "root", "update-user", "alice", "--new-username", "alice2"])
    assert (args.username, args.user, args.new_username) == ("root", "alice", "alice2")


def test_topic_settings_flags():
    args = parse(["create-topic", "orders", "audit", "--partitions", "2", "--compression", "gzip",
                  "--message-expiry-us", "60000000", "--max-topic-size", "unlimited",
                  "--segment-size", "2097152", "--preallocate-segments", "true",
                  "--option", "x-extra=1"])
    assert args.partitions == 2 and args.option == [("x-extra", "1")]
    assert ctl._settings(args) == {
        "compression_algorithm": "gzip", "message_expiry": 60_000_000,
        "max_topic_size": U64_MAX, "segment_size": 2097152, "preallocate_segments": True,
        "durability": "replicated", "consumer_offset_durability": "replicated"}
    # update-topic sends only what was given (no durability defaults).
    args = parse(["update-topic", "0", "1", "audit3", "--message-expiry-us", "never"])
    assert ctl._settings(args) == {"message_expiry": U64_MAX}


def test_permission_flags():
    args = parse(["update-permissions", "bob", "--global", "read_streams,read_users",
                  "--stream", "0:read_stream,poll_messages", "--topic", "0/0:read_topic",
                  "--topic", "0/1:manage_topic", "--stream", "1:manage_stream"])
    assert ctl._permissions(args) == (
        P.G_READ_STREAMS | P.G_READ_USERS,
        {0: (P.S_READ_STREAM | P.S_POLL, {0: P.T_READ, 1: P.T_MANAGE}),
         1: (P.S_MANAGE_STREAM, {})})
    # A topic entry alone creates its stream entry with no stream flags.
    args = parse(["update-permissions", "bob", "--topic", "3/4:send_messages"])
    assert ctl._permissions(args) == (0, {3: (0, {4: P.T_SEND})})


@pytest.mark.parametrize("argv", [
    ["update-permissions", "bob", "--global", "fly"],
    ["update-permissions", "bob", "--stream", "x:read_stream"],
    ["update-permissions", "bob", "--topic", "1:read_topic"],
    ["create-topic", "s", "t", "--max-topic-size", "-1"],
    ["create-topic", "s", "t", "--preallocate-segments", "yes"],
    ["create-stream", "s", "--option", "novalue"],
    ["frobnicate"],
])
def test_bad_arguments_exit_2(argv, capsys):
    with pytest.raises(SystemExit) as exited:
        parse(argv)
    assert exited.value.code == 2


# ---- output on recorded replies ------------------------------------------------------------

def test_get_topic_human_and_json(capsys):
    code, out, _, client = run([*CLUSTER, "get-topic", "0", "1"],
                               call_replies("get_topic[by_id]"), capsys)
    assert code == 0
    lines = out.splitlines()
    assert lines[0].split() == ["topic", "1", "audit"]
    text = "\n".join(lines)
    for needle in ("compression     gzip", "message_expiry  60s", "max_topic_size  10000000 B",
                   "x-extra=1", "durability=persisted", "preallocate_segments=True"):
        assert needle in text
    assert lines[-3].split() == ["PARTITION", "CREATED", "SEGMENTS", "OFFSET"]
    assert lines[-1].split()[0] == "1" and lines[-1].split()[-2:] == ["1", "0"]
    # The session is ended after the operation.
    assert wire.decode_header(client.sent[-1]).operation == Operation.LOGOUT
    assert client.logins == [("password", "iggy", "iggy")]

    code, out, _, _ = run([*CLUSTER, "--json", "get-topic", "0", "1"],
                          call_replies("get_topic[by_id]"), capsys)
    document = orjson.loads(out)
    assert code == 0 and out.count("\n") == 1
    assert (document["name"], document["compression"], document["message_expiry"],
            document["max_topic_size"]) == ("audit", 2, 60_000_000, 10_000_000)
    assert document["options"]["segment_size"] == 2097152
    assert document["options"]["x-extra"] == "1"
    assert [p["id"] for p in document["partitions"]] == [0, 1]


def test_list_streams_table(capsys):
    code, out, _, _ = run([*CLUSTER, "list-streams"], call_replies("get_streams"), capsys)
    rows = [line.split() for line in out.splitlines()]
    assert code == 0
    assert rows[0] == ["ID", "NAME", "TOPICS", "CREATED"]
    assert [row[:3] for row in rows[1:]] == [["0", "orders", "0"], ["1", "payments", "0"]]
    assert rows[1][3].startswith("2026-")
    code, out, _, _ = run([*CLUSTER, "list-streams"], call_replies("get_streams[empty]"), capsys)
    assert (code, out) == (0, "(none)\n")


def test_stale_flag_reaches_the_read(capsys):
    _, _, _, client = run([*CLUSTER, "--stale", "list-streams"], call_replies("get_streams"),
                          capsys)
    assert wire.decode_header(client.sent[0]).consistency == 1


def test_get_user_with_permissions(capsys):
    code, out, _, _ = run([*CLUSTER, "get-user", "bob"], call_replies("get_user[by_name]"), capsys)
    fields = dict(line.split(None, 1) if " " in line else (line, "") for line in out.splitlines())
    assert code == 0 and fields["user"] == "2 bob" and fields["status"] == "inactive"
    assert fields["global"] == "read_users,read_streams"
    lines = [line.split() for line in out.splitlines()]
    assert ["stream", "0", "read_stream,poll_messages"] in lines
    assert ["topic", "0/0", "read_topic,send_messages"] in lines
    assert ["topic", "0/1", "manage_topic"] in lines and ["stream", "1", "manage_stream"] in lines
    code, out, _, _ = run([*CLUSTER, "--json", "get-user", "bob"],
                          call_replies("get_user[by_name]"), capsys)
    perms = orjson.loads(out)["permissions"]
    assert perms["global"] == ["read_users", "read_streams"]
    assert perms["streams"]["1"] == {"flags": ["manage_stream"], "topics": {}}


def test_group_and_users_and_tokens(capsys):
    code, out, _, _ = run([*CLUSTER, "get-group", "0", "0", "0"],
                          call_replies("get_consumer_group[by_id]"), capsys)
    assert code == 0 and out.splitlines()[-1].split() == ["1", "0,1,2,3"]
    code, out, _, _ = run([*CLUSTER, "list-users"], call_replies("get_users"), capsys)
    assert [line.split()[:3] for line in out.splitlines()[1:]] == [
        ["0", "iggy", "active"], ["1", "alice", "active"], ["2", "bob", "inactive"]]
    code, out, _, _ = run([*CLUSTER, "list-tokens"], call_replies("send_binary_request[get_pats]"),
                          capsys)
    assert out.splitlines()[1].split() == ["ci-1", "never"]
    code, out, _, client = run([*CLUSTER, "create-token", "ci-1"],
                               call_replies("send_binary_request[create_pat]"), capsys)
    assert code == 0 and len(out.strip()) == 100 and out.count("\n") == 1
    assert client.sent[0][256:] == bytes.fromhex("0463692d310000000000000000")


def test_create_stream_prints_the_created_stream(capsys):
    code, out, _, _ = run([*CLUSTER, "create-stream", "orders"], call_replies("create_stream"),
                          capsys)
    assert code == 0 and out.splitlines()[0].split() == ["stream", "0", "orders"]


def test_writes_without_result(capsys):
    code, out, _, _ = run([*CLUSTER, "delete-stream", "orders"], call_replies("delete_stream"),
                          capsys)
    assert (code, out) == (0, "ok\n")
    code, out, _, _ = run([*CLUSTER, "--json", "purge-stream", "orders"],
                          call_replies("purge_stream"), capsys)
    assert (code, orjson.loads(out)) == (0, {"ok": True})


def test_errors_are_one_named_line(capsys):
    code, out, err, _ = run([*CLUSTER, "create-stream", "orders"],
                            call_replies("create_stream[duplicate]"), capsys)
    assert (code, out) == (ctl.EXIT_ERROR, "")
    assert err == "metavsr ctl: stream_name_already_exists (code 1012)\n"
    code, out, err, _ = run([*CLUSTER, "--json", "list-topics", "nope"],
                            call_replies("get_topics[missing_stream]"), capsys)
    assert code == ctl.EXIT_ERROR and err.count("\n") == 1 and "stream_id_not_found" in err
    assert orjson.loads(out) == {"error": {"name": "stream_id_not_found", "code": 1009,
                                           "detail": ""}}


def test_missing_object_exits_1(capsys):
    code, out, err, _ = run([*CLUSTER, "get-stream", "nope"], call_replies("get_stream[missing]"),
                            capsys)
    assert (code, out) == (1, "") and "not_found" in err
    code, out, _, _ = run([*CLUSTER, "--json", "get-stream", "nope"],
                          call_replies("get_stream[missing]"), capsys)
    assert (code, out) == (1, "null\n")


def test_invalid_argument_exits_2_and_sends_nothing(capsys):
    code, _, err, client = run([*CLUSTER, "update-permissions", "bob"], [], capsys)
    assert code == ctl.EXIT_USAGE and "invalid_argument" in err and "--none" in err
    assert [wire.decode_header(f).operation for f in client.sent] == [Operation.LOGOUT]


# ---- credentials and the local cluster ------------------------------------------------------

def _local_cluster(tmp_path, mode=0o600):
    (tmp_path / "cluster.json").write_bytes(orjson.dumps(
        {"replicas": [{"client": "127.0.0.1:3001", "peer": "x"}, {"client": "[::1]:3002"}]}))
    credentials = tmp_path / "credentials"
    credentials.write_text("username=root\npassword=s3cr=t\n")
    credentials.chmod(mode)
    return str(tmp_path)


def test_local_cluster_defaults(tmp_path, capsys):
    directory = _local_cluster(tmp_path)
    args = parse(["--dir", directory, "list-streams"])
    assert ctl.addresses(args) == [("127.0.0.1", 3001), ("::1", 3002)]
    code, _, _, client = run(["--dir", directory, "list-streams"], call_replies("get_streams"),
                             capsys, env={})
    assert code == 0 and client.logins == [("password", "root", "s3cr=t")]


def test_credentials_order(tmp_path, capsys):
    directory = _local_cluster(tmp_path)
    secret = tmp_path / "pw"
    secret.write_text("from-file\n")
    token = tmp_path / "token"
    token.write_text("locator.secret\n")
    replies = call_replies("get_streams")
    _, _, _, client = run(["--dir", directory, "--username", "u", "--password-file", str(secret),
                           "list-streams"], replies, capsys, env={})
    assert client.logins == [("password", "u", "from-file")]
    _, _, _, client = run(["--dir", directory, "list-streams"], replies, capsys,
                          env={ctl.ENV_USERNAME: "envuser", ctl.ENV_PASSWORD: "envpw"})
    assert client.logins == [("password", "envuser", "envpw")]
    _, _, _, client = run(["--dir", directory, "--token-file", str(token), "list-streams"],
                          replies, capsys, env={})
    assert client.logins == [("token", "locator.secret")]
    code, _, err, _ = run(["--dir", directory, "--username", "u", "list-streams"], replies,
                          capsys, env={})
    assert code == ctl.EXIT_USAGE and "--password-file" in err


def test_credentials_readable_by_others_are_refused(tmp_path, capsys):
    directory = _local_cluster(tmp_path, mode=0o644)
    code, _, err, _ = run(["--dir", directory, "list-streams"], [], capsys, env={})
    assert code == ctl.EXIT_USAGE and "chmod 600" in err and "s3cr" not in err


def test_cluster_files_errors(tmp_path):
    with pytest.raises(cluster_files.ClusterFilesError, match="No such file"):
        cluster_files.cluster_addresses(str(tmp_path))
    (tmp_path / "cluster.json").write_text('{"replicas": [{"peer": "x"}]}')
    with pytest.raises(cluster_files.ClusterFilesError, match="client"):
        cluster_files.cluster_addresses(str(tmp_path))
    for bad in ("localhost", "h:0", "h:70000", ":1", "h:x"):
        with pytest.raises(cluster_files.ClusterFilesError):
            cluster_files.parse_address(bad)
    (tmp_path / "credentials").write_text("username=root\n")
    (tmp_path / "credentials").chmod(0o600)
    with pytest.raises(cluster_files.ClusterFilesError, match="two lines"):
        cluster_files.read_credentials(str(tmp_path))
    (tmp_path / "empty").write_text("\n")
    with pytest.raises(cluster_files.ClusterFilesError, match="empty"):
        cluster_files.read_secret_file(str(tmp_path / "empty"))


def _sdk_body(method: str) -> bytes:
    for call in load_sdk_calls():
        if call["method"] == method:
            return bytes.fromhex(call["frames"][0]["frame_hex"])[256:]
    raise AssertionError(f"no {method} recorded")


def test_ctl_arguments_build_the_sdks_requests(tmp_path, capsys):
    """The flags of create-user and create-topic say what the SDK's arguments say: same bytes."""
    password = tmp_path / "bob.pw"
    password.write_text("bobpw123\n")
    code, _, _, client = run(
        [*CLUSTER, "create-user", "bob", "--password-file", str(password), "--status", "inactive",
         "--global", "read_streams,read_users", "--stream", "0:read_stream,poll_messages",
         "--topic", "0/0:read_topic,send_messages", "--topic", "0/1:manage_topic",
         "--stream", "1:manage_stream"],
        call_replies("create_user[inactive_with_permissions]"), capsys)
    assert code == 0
    assert client.sent[0][256:] == _sdk_body("create_user[inactive_with_permissions]")
    code, _, _, client = run(
        [*CLUSTER, "create-topic", "0", "audit", "--partitions", "2", "--compression", "gzip",
         "--message-expiry-us", "60000000", "--max-topic-size", "10000000",
         "--segment-size", "2097152", "--durability", "persisted",
         "--messages-required-to-save", "100", "--size-of-messages-required-to-save", "4096",
         "--preallocate-segments", "true", "--option", "x-extra=1"],
        call_replies("create_topic[all_options]"), capsys)
    assert code == 0
    assert client.sent[0][256:] == _sdk_body("create_topic[all_options]")
    code, _, _, client = run(
        [*CLUSTER, "update-topic", "0", "1", "audit3", "--compression", "none",
         "--message-expiry-us", "never", "--max-topic-size", "unlimited", "--option", "y=2"],
        call_replies("update_topic[all_options]"), capsys)
    assert code == 0
    assert client.sent[0][256:] == _sdk_body("update_topic[all_options]")


def test_every_client_operation_has_a_subcommand():
    operations = {name for name, _ in inspect.getmembers(MetadataClient, inspect.isfunction)
                  if not name.startswith("_") and name not in vars(Client)}
    source = inspect.getsource(ctl)
    # login/logout: every invocation logs in and out (the `login` subcommand shows the session).
    unused = {name for name in operations if f"client.{name}(" not in source}
    assert unused == set(), unused
    assert len(ctl.COMMANDS) == len(operations) + 1  # + login
