"""`metavsr ctl`: run one metadata operation against a cluster and print its result.

Usage: metavsr ctl [--cluster HOST:PORT,...] [--dir D] [--username U --password-file F |
       --token-file F] [--json] [--stale] OPERATION [ARGS]     (`metavsr ctl -h` lists them)

Owns: the command line of every operation in docs/OPERATIONS.md (one subcommand each; names
from argv to net/operations.py's typed methods), where the cluster and the credentials come
from, and exit codes. Must never encode a body or render a result itself (net/operations.py
and tools/ctl_render.py do) nor print a secret.

Cluster: --cluster, else the local cluster's D/cluster.json (tools/cluster_files.py describes
the files; D = --dir, default .metavsr/cluster). Credentials, first found: --token-file (log in
by personal access token); --username or METAVSR_USERNAME with --password-file or
METAVSR_PASSWORD; the local cluster's D/credentials. Each invocation logs in, runs the
operation and logs out (so join-group only lasts as long as the invocation).

Identifiers: a stream, topic, group or user is given by id or by name; digits only means an id.

Output: human-readable lines and tables by default; --json prints one JSON document (the typed
result; `{"ok": true}` for a write without a result; `null` when a get finds nothing;
`{"error": {"name": ..., "code": ...}}` on an error). Errors also print one line
`metavsr ctl: NAME (code N)` on stderr.

Exit codes: 0 ok; 1 the cluster answered an error, or a get found nothing; 2 bad arguments or
local files; 3 no replica answered (the outcome of a write is unknown).
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass

import orjson

from domains import permissions as P
from domains import users_wire as uw
from domains.codec import U64_MAX, MalformedResult
from net.client import ClientError, SessionLost, Unavailable
from net.operations import MetadataClient, OperationError
from tools import cluster_files, ctl_render
from tools.cluster_files import ClusterFilesError

HELP = "run one metadata operation against a cluster (human output, or --json)"

EXIT_OK, EXIT_ERROR, EXIT_USAGE, EXIT_UNAVAILABLE = 0, 1, 2, 3
ENV_USERNAME, ENV_PASSWORD = "METAVSR_USERNAME", "METAVSR_PASSWORD"
STATUSES = {"active": uw.STATUS_ACTIVE, "inactive": uw.STATUS_INACTIVE}


@dataclass(frozen=True)
class Command:
    help: str
    arguments: tuple[tuple[tuple[str, ...], dict], ...]
    run: Callable[[MetadataClient, argparse.Namespace], object]
    # What a None result means: a write done, or a get that found nothing.
    missing: str | None = None


COMMANDS: dict[str, Command] = {}


def command(name: str, help_text: str, *arguments, missing: str | None = None):
    def register(run):
        COMMANDS[name] = Command(help_text, arguments, run, missing)
        return run
    return register


def arg(*names: str, **options) -> tuple[tuple[str, ...], dict]:
    return names, options


# ---- argument types ----------------------------------------------------------------------

def key_value(text: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"{text!r} is not KEY=VALUE")
    return key, value


def u64(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if not 0 <= value <= U64_MAX:
        raise argparse.ArgumentTypeError(f"{value} outside 0..{U64_MAX}")
    return value


def u64_or(word: str):
    """An integer 0..u64::MAX, or `word` standing for u64::MAX (never, unlimited)."""
    def parse(text: str) -> int:
        return U64_MAX if text == word else u64(text)
    parse.__name__ = f"integer or {word}"
    return parse


def boolean(text: str) -> bool:
    if text not in ("true", "false"):
        raise argparse.ArgumentTypeError(f"{text!r} is not true or false")
    return text == "true"


def flag_list(level: tuple[str, ...]):
    def parse(text: str) -> int:
        try:
            return P.bits_of([name for name in text.split(",") if name], level)
        except ValueError as error:
            raise argparse.ArgumentTypeError(str(error)) from None
    parse.__name__ = "flags"
    return parse


def scoped_flags(level: tuple[str, ...], parts: int):
    """`ID:FLAGS` (stream) or `STREAM/TOPIC:FLAGS` (topic) -> (ids, bits)."""
    flags = flag_list(level)

    def parse(text: str) -> tuple[tuple[int, ...], int]:
        scope, sep, names = text.partition(":")
        ids = scope.split("/")
        if not sep or len(ids) != parts or not all(i.isascii() and i.isdigit() for i in ids):
            shape = "STREAM_ID:FLAGS" if parts == 1 else "STREAM_ID/TOPIC_ID:FLAGS"
            raise argparse.ArgumentTypeError(f"{text!r} is not {shape}")
        return tuple(int(i) for i in ids), flags(names)
    parse.__name__ = "scoped flags"
    return parse


# ---- shared arguments ----------------------------------------------------------------------

STREAM = arg("stream", help="stream id or name")
TOPIC = arg("topic", help="topic id or name")
GROUP = arg("group", help="consumer group id or name")
USER = arg("user", help="user id or username")
OPTION = arg("--option", action="append", type=key_value, default=[], metavar="KEY=VALUE",
             help="a free-form String option (repeatable)")
PERMISSIONS = (
    arg("--global", dest="global_flags", type=flag_list(P.GLOBAL_NAMES), default=0,
        metavar="FLAGS", help=f"global flags, comma-separated: {','.join(P.GLOBAL_NAMES)}"),
    arg("--stream", dest="stream_flags", action="append", default=[],
        type=scoped_flags(P.STREAM_NAMES, 1), metavar="ID:FLAGS",
        help=f"flags on one stream (repeatable): {','.join(P.STREAM_NAMES)}"),
    arg("--topic", dest="topic_flags", action="append", default=[],
        type=scoped_flags(P.TOPIC_NAMES, 2), metavar="SID/TID:FLAGS",
        help=f"flags on one topic (repeatable): {','.join(P.TOPIC_NAMES)}"),
)


def topic_settings(defaults: bool) -> tuple:
    """Flags for the documented topic options; with defaults=False only given ones are sent."""
    durability = "replicated" if defaults else None
    return (
        arg("--compression", dest="compression_algorithm", choices=("none", "gzip")),
        arg("--message-expiry-us", dest="message_expiry", type=u64_or("never"),
            help="µs; 0 = server default, never = never expire"),
        arg("--max-topic-size", dest="max_topic_size", type=u64_or("unlimited"),
            help="bytes; 0 = server default, unlimited"),
        arg("--segment-size", dest="segment_size", type=u64, help="bytes"),
        arg("--durability", choices=("replicated", "persisted"), default=durability),
        arg("--consumer-offset-durability", dest="consumer_offset_durability",
            choices=("replicated", "persisted"), default=durability),
        arg("--messages-required-to-save", dest="messages_required_to_save", type=int),
        arg("--size-of-messages-required-to-save", dest="size_of_messages_required_to_save",
            type=u64),
        arg("--preallocate-segments", dest="preallocate_segments", type=boolean,
            metavar="true|false"),
        OPTION,
    )


TOPIC_SETTING_KEYS = ("compression_algorithm", "message_expiry", "max_topic_size", "segment_size",
                      "durability", "consumer_offset_durability", "messages_required_to_save",
                      "size_of_messages_required_to_save", "preallocate_segments")


def _settings(args: argparse.Namespace) -> dict:
    return {key: getattr(args, key) for key in TOPIC_SETTING_KEYS
            if getattr(args, key) is not None}


def _permissions(args: argparse.Namespace) -> P.Permissions | None:
    """The permissions the flags describe; None when no flag was given."""
    if not (args.global_flags or args.stream_flags or args.topic_flags):
        return None
    streams: dict[int, tuple[int, dict[int, int]]] = {}
    for (sid,), bits in args.stream_flags:
        stream_bits, topics = streams.get(sid, (0, {}))
        streams[sid] = (stream_bits | bits, topics)
    for (sid, tid), bits in args.topic_flags:
        stream_bits, topics = streams.setdefault(sid, (0, {}))
        topics[tid] = topics.get(tid, 0) | bits
    return args.global_flags, streams


# ---- the operations -----------------------------------------------------------------------

@command("login", "log in (password or token), show the session, log out")
def _login(client, args):
    return {"user_id": client.user_id, "session": client.session}


@command("create-stream", "create a stream", arg("name"), OPTION)
def _create_stream(client, args):
    return client.create_stream(args.name, dict(args.option))


@command("get-stream", "show a stream and its topics", STREAM, missing="stream")
def _get_stream(client, args):
    return client.get_stream(args.stream, stale=args.stale)


@command("list-streams", "list the streams")
def _list_streams(client, args):
    return client.get_streams(stale=args.stale)


@command("update-stream", "rename a stream, patch its options", STREAM, arg("name"), OPTION)
def _update_stream(client, args):
    return client.update_stream(args.stream, args.name, dict(args.option))


@command("delete-stream", "delete a stream with its topics and groups", STREAM)
def _delete_stream(client, args):
    return client.delete_stream(args.stream)


@command("purge-stream", "purge a stream's messages (bumps its purge generation)", STREAM)
def _purge_stream(client, args):
    return client.purge_stream(args.stream)


@command("create-topic", "create a topic", STREAM, arg("name"),
         arg("--partitions", type=int, default=1, help="partitions (default 1)"),
         *topic_settings(defaults=True))
def _create_topic(client, args):
    return client.create_topic(args.stream, args.name, args.partitions,
                               options=dict(args.option), **_settings(args))


@command("get-topic", "show a topic and its partitions", STREAM, TOPIC, missing="topic")
def _get_topic(client, args):
    return client.get_topic(args.stream, args.topic, stale=args.stale)


@command("list-topics", "list a stream's topics", STREAM)
def _list_topics(client, args):
    return client.get_topics(args.stream, stale=args.stale)


@command("update-topic", "rename a topic; change only the settings given", STREAM, TOPIC,
         arg("name"), *topic_settings(defaults=False))
def _update_topic(client, args):
    return client.update_topic(args.stream, args.topic, args.name, options=dict(args.option),
                               **_settings(args))


@command("delete-topic", "delete a topic with its partitions and groups", STREAM, TOPIC)
def _delete_topic(client, args):
    return client.delete_topic(args.stream, args.topic)


@command("purge-topic", "purge a topic's messages", STREAM, TOPIC)
def _purge_topic(client, args):
    return client.purge_topic(args.stream, args.topic)


@command("create-partitions", "add partitions to a topic", STREAM, TOPIC, arg("count", type=int))
def _create_partitions(client, args):
    return client.create_partitions(args.stream, args.topic, args.count)


@command("delete-partitions", "remove a topic's highest partitions", STREAM, TOPIC,
         arg("count", type=int))
def _delete_partitions(client, args):
    return client.delete_partitions(args.stream, args.topic, args.count)


@command("create-group", "create a consumer group", STREAM, TOPIC, arg("name"))
def _create_group(client, args):
    return client.create_consumer_group(args.stream, args.topic, args.name)


@command("get-group", "show a consumer group, its members and their partitions", STREAM,
         TOPIC, GROUP, missing="consumer group")
def _get_group(client, args):
    return client.get_consumer_group(args.stream, args.topic, args.group, stale=args.stale)


@command("list-groups", "list a topic's consumer groups", STREAM, TOPIC)
def _list_groups(client, args):
    return client.get_consumer_groups(args.stream, args.topic, stale=args.stale)


@command("join-group", "join a consumer group (for this invocation's session)", STREAM, TOPIC,
         GROUP)
def _join_group(client, args):
    return client.join_consumer_group(args.stream, args.topic, args.group)


@command("leave-group", "leave a consumer group", STREAM, TOPIC, GROUP)
def _leave_group(client, args):
    return client.leave_consumer_group(args.stream, args.topic, args.group)


@command("delete-group", "delete a consumer group", STREAM, TOPIC, GROUP)
def _delete_group(client, args):
    return client.delete_consumer_group(args.stream, args.topic, args.group)


@command("create-user", "create a user", arg("new_username", metavar="USERNAME"),
         arg("--password-file", dest="new_password_file", required=True, metavar="FILE",
             help="file whose first line is the new user's password"),
         arg("--status", choices=tuple(STATUSES), default="active"), *PERMISSIONS, OPTION)
def _create_user(client, args):
    password = cluster_files.read_secret_file(args.new_password_file)
    return client.create_user(args.new_username, password, STATUSES[args.status],
                              _permissions(args), dict(args.option))


@command("get-user", "show a user and its permissions", USER, missing="user")
def _get_user(client, args):
    return client.get_user(args.user, stale=args.stale)


@command("list-users", "list the users")
def _list_users(client, args):
    return client.get_users(stale=args.stale)


@command("update-user", "rename a user or change its status", USER,
         arg("--new-username", metavar="USERNAME"), arg("--status", choices=tuple(STATUSES)),
         OPTION)
def _update_user(client, args):
    status = STATUSES[args.status] if args.status else None
    return client.update_user(args.user, args.new_username, status, dict(args.option))


@command("update-permissions", "replace a user's permissions (--none: no permissions)", USER,
         *PERMISSIONS, arg("--none", action="store_true", help="remove every permission"))
def _update_permissions(client, args):
    perms = _permissions(args)
    if (perms is None) != args.none:
        raise ValueError("give either permission flags (--global/--stream/--topic) or --none")
    return client.update_permissions(args.user, perms)


@command("change-password", "change a user's password", USER,
         arg("--current-password-file", required=True, metavar="FILE"),
         arg("--new-password-file", required=True, metavar="FILE"))
def _change_password(client, args):
    return client.change_password(args.user,
                                  cluster_files.read_secret_file(args.current_password_file),
                                  cluster_files.read_secret_file(args.new_password_file))


@command("delete-user", "delete a user with its tokens and sessions", USER)
def _delete_user(client, args):
    return client.delete_user(args.user)


@command("create-token", "create a personal access token of the logged-in user (printed once)",
         arg("name"), arg("--expiry-s", type=int, default=0, help="seconds; 0 = never expires"))
def _create_token(client, args):
    if args.expiry_s < 0:
        raise ValueError("--expiry-s must be 0 (never) or positive")
    return client.create_token(args.name, args.expiry_s * 1_000_000)


@command("list-tokens", "list the logged-in user's personal access tokens")
def _list_tokens(client, args):
    return client.get_tokens(stale=args.stale)


@command("delete-token", "delete a personal access token of the logged-in user", arg("name"))
def _delete_token(client, args):
    return client.delete_token(args.name)


# ---- command line ---------------------------------------------------------------------------

GLOBAL_OPTIONS = (
    arg("--cluster", default=None, metavar="HOST:PORT,...",
        help="replica client addresses (default: the local cluster's)"),
    arg("--dir", default=cluster_files.DEFAULT_DIR, metavar="D",
        help=f"local cluster dir for the defaults (default: {cluster_files.DEFAULT_DIR})"),
    arg("--username", default=None, help="log in as this user"),
    arg("--password-file", default=None, metavar="FILE",
        help="file whose first line is the login password"),
    arg("--token-file", default=None, metavar="FILE",
        help="log in with the personal access token in FILE"),
    arg("--json", action="store_true", default=False, help="print one JSON document"),
    arg("--stale", action="store_true", default=False,
        help="reads may be answered from a replica's own state (may lag)"),
    arg("--timeout-s", type=float, default=30.0,
        help="give up after this long without an answer (default 30)"),
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    for names, options in GLOBAL_OPTIONS:
        parser.add_argument(*names, **options)
    sub = parser.add_subparsers(dest="operation", metavar="OPERATION")
    sub.required = True
    for name, spec in COMMANDS.items():
        op_parser = sub.add_parser(name, help=spec.help, description=spec.help)
        for names, options in spec.arguments:
            op_parser.add_argument(*names, **options)
        # The global options are also accepted after the operation's name. That copy has no
        # defaults, so it never overrides the copy before the name; an option the operation
        # defines itself (create-user's --password-file) keeps the operation's meaning.
        taken = {name for names, _ in spec.arguments for name in names}
        for names, options in GLOBAL_OPTIONS:
            if not taken.intersection(names):
                op_parser.add_argument(*names, **{**options, "default": argparse.SUPPRESS})


def addresses(args: argparse.Namespace) -> list[tuple[str, int]]:
    if args.cluster:
        return cluster_files.parse_addresses(args.cluster)
    return cluster_files.cluster_addresses(args.dir)


def login(client: MetadataClient, args: argparse.Namespace) -> None:
    """Log in with the first credentials found (see the module docstring for the order)."""
    if args.token_file:
        client.login_with_token(cluster_files.read_secret_file(args.token_file))
        return
    username = args.username or os.environ.get(ENV_USERNAME)
    if username:
        if args.password_file:
            password = cluster_files.read_secret_file(args.password_file)
        elif os.environ.get(ENV_PASSWORD):
            password = os.environ[ENV_PASSWORD]
        else:
            raise ClusterFilesError(f"no password for {username!r}: give --password-file or "
                                    f"set {ENV_PASSWORD}")
    else:
        username, password = cluster_files.read_credentials(args.dir)
    client.login(username, password)


def _emit(args: argparse.Namespace, document, text: str | None) -> None:
    if args.json:
        sys.stdout.write(orjson.dumps(document).decode() + "\n")
    elif text is not None:
        print(text)


def _fail(args: argparse.Namespace, name: str, code: int | None, detail: str,
          exit_code: int) -> int:
    print(f"metavsr ctl: {name}" + (f" (code {code})" if code is not None else "")
          + (f": {detail}" if detail else ""), file=sys.stderr)
    _emit(args, {"error": {"name": name, "code": code, "detail": detail}}, None)
    return exit_code


def run(args: argparse.Namespace, client_type=MetadataClient) -> int:
    spec = COMMANDS[args.operation]
    try:
        client = client_type(addresses(args), deadline_s=args.timeout_s)
    except ClusterFilesError as error:
        return _fail(args, "bad_cluster", None, str(error), EXIT_USAGE)
    try:
        login(client, args)
        result = spec.run(client, args)
    except OperationError as error:
        return _fail(args, error.name, error.code, "", EXIT_ERROR)
    except Unavailable as error:
        return _fail(args, "unavailable", None, str(error), EXIT_UNAVAILABLE)
    except SessionLost as error:
        return _fail(args, "session_lost", None, str(error), EXIT_UNAVAILABLE)
    except MalformedResult as error:
        return _fail(args, "malformed_result", None, str(error), EXIT_ERROR)
    except ClusterFilesError as error:
        return _fail(args, "bad_file", None, str(error), EXIT_USAGE)
    except ValueError as error:
        return _fail(args, "invalid_argument", None, str(error), EXIT_USAGE)
    finally:
        _logout(client)
    if result is None and spec.missing:
        print(f"metavsr ctl: not_found: no such {spec.missing}", file=sys.stderr)
        _emit(args, None, None)
        return EXIT_ERROR
    document = {"ok": True} if result is None else ctl_render.jsonable(result)
    _emit(args, document, ctl_render.human(result))
    return EXIT_OK


def _logout(client: MetadataClient) -> None:
    """End the session so it does not hold a slot of the client table; best effort, since the
    table evicts the oldest session anyway."""
    try:
        if client.session:
            client.logout()
    except ClientError:
        pass
    finally:
        client.close()
