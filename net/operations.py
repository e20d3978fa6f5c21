"""Typed metadata operations: every operation of docs/OPERATIONS.md as a client method.

Owns: `MetadataClient`, a net.client.Client whose methods take typed arguments, build the Iggy
request bodies with the domains' encoders, and return the domains' typed results
(domains/streams_wire.py, domains/users_wire.py); and `OperationError`, an error code with its
catalogue name (domains/errors.py) so callers match on `error.name`. Must never frame, send or
retry anything itself (net/client.py does) nor define an encoding (each domain owns its own).

Identifiers: a stream, topic, group or user is named by id (int) or by name (str). As the Iggy
Python SDK does, a str of ASCII digits is sent as a numeric id: "1" is id 1, and a name made
only of digits cannot be looked up by name.

Reads are linearizable by default; `stale=True` lets a replica answer from its own state
(cheaper, may lag). A single-object read of something missing returns None; lists may be empty.

Errors: `OperationError` (a catalogue code: `.code`, `.name`, `.text`), `Unavailable` and
`SessionLost` from the transport, `codec.MalformedResult` for a result that does not follow its
layout, ValueError/TypeError for arguments that cannot be encoded (nothing is sent then).
"""

from __future__ import annotations

import contextlib

from domains import codec, topic_options
from domains import streams_wire as sw
from domains import users_wire as uw
from domains.codec import KIND_STRING, MalformedResult, Options
from domains.errors import CATALOGUE
from domains.permissions import Permissions
from net.client import Client, ClientError, SessionLost, Unavailable
from net.iggy import Code, Operation

U32_MAX = (1 << 32) - 1
NAME_BYTES_MAX = 255


class OperationError(ClientError):
    """The cluster answered an error code: `name` is its catalogue name, `text` the SDK's."""

    def __init__(self, code: int) -> None:
        self.name, self.text = CATALOGUE.get(code, (f"error_{code}", "Error"))
        super().__init__(code, f"{self.name} (code {code})")


@contextlib.contextmanager
def _named_errors():
    try:
        yield
    except (OperationError, Unavailable, SessionLost):
        raise
    except ClientError as error:
        raise OperationError(error.code) from None


def ident(value: int | str) -> codec.Identifier:
    """An Identifier argument, checked so that it encodes (ValueError/TypeError otherwise)."""
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise TypeError(f"an identifier is an int or a str, not {type(value).__name__}")
    if isinstance(value, str):
        if value.isascii() and value.isdigit():
            value = int(value)
        elif not 1 <= len(value.encode()) <= NAME_BYTES_MAX:
            raise ValueError(f"identifier name {value!r} is not 1..{NAME_BYTES_MAX} bytes")
        else:
            return value
    if not 0 <= value <= U32_MAX:
        raise ValueError(f"identifier {value} outside 0..{U32_MAX}")
    return value


def u32(count: int) -> int:
    """A count argument (partitions), checked so that it encodes; the server bounds it."""
    if not 0 <= count <= U32_MAX:
        raise ValueError(f"count {count} outside 0..{U32_MAX}")
    return count


def string_options(options: dict[str, str] | None) -> Options:
    """Free-form options (streams, users, extra topic keys) are String-valued."""
    return {key: (KIND_STRING, value.encode()) for key, value in (options or {}).items()}


def topic_settings(settings: dict[str, codec.OptionValue], extra: dict[str, str] | None
                   ) -> Options:
    """Documented topic options by key (topic_options.DOCUMENTED gives each key's kind), plus
    free-form String options."""
    options = string_options(extra)
    for key, value in settings.items():
        kind = topic_options.DOCUMENTED.get(key)
        if kind is None:
            raise TypeError(f"unknown topic setting {key!r}; one of: "
                            f"{', '.join(topic_options.DOCUMENTED)}")
        options[key] = (kind, codec.option_bytes(kind, value))
    return options


def _no_result(payload: bytes) -> None:
    if payload:
        raise MalformedResult(f"{len(payload)} unexpected result bytes")


# What the SDK's create_topic always sends, even with no arguments (iggy-protocol.md 7).
CREATE_TOPIC_DEFAULTS = {"durability": "replicated", "consumer_offset_durability": "replicated"}


class MetadataClient(Client):
    """A client session with one typed method per metadata operation."""

    # --- transport, with catalogue names on errors ----------------------------------------

    def call(self, operation: int, body: bytes = b"") -> bytes:
        with _named_errors():
            return super().call(operation, body)

    def read(self, code: int, body: bytes = b"", *, stale: bool = False) -> bytes:
        with _named_errors():
            return super().read(code, body, stale=stale)

    def login(self, username: str, password: str) -> int:
        """Register by password; returns the user id."""
        with _named_errors():
            return super().login(username, password)

    def login_with_token(self, token: str) -> int:
        """Register by personal access token; returns the user id."""
        with _named_errors():
            return super().login_with_token(token)

    def _get(self, code: int, body: bytes, decode, stale: bool):
        payload = self.read(code, body, stale=stale)
        return decode(payload) if payload else None

    # --- streams ----------------------------------------------------------------------------

    def create_stream(self, name: str, options: dict[str, str] | None = None) -> sw.StreamDetails:
        body = sw.encode_create_stream(name, string_options(options))
        return sw.decode_stream_details(self.call(Operation.CREATE_STREAM, body))

    def update_stream(self, stream: int | str, name: str,
                      options: dict[str, str] | None = None) -> None:
        body = sw.encode_update_stream(ident(stream), name, string_options(options))
        _no_result(self.call(Operation.UPDATE_STREAM, body))

    def delete_stream(self, stream: int | str) -> None:
        _no_result(self.call(Operation.DELETE_STREAM, sw.encode_ids(ident(stream))))

    def purge_stream(self, stream: int | str) -> None:
        _no_result(self.call(Operation.PURGE_STREAM, sw.encode_ids(ident(stream))))

    def get_stream(self, stream: int | str, *, stale: bool = False) -> sw.StreamDetails | None:
        return self._get(Code.GET_STREAM, sw.encode_ids(ident(stream)),
                         sw.decode_stream_details, stale)

    def get_streams(self, *, stale: bool = False) -> list[sw.StreamHeader]:
        return sw.decode_stream_list(self.read(Code.GET_STREAMS, stale=stale))

    # --- topics and partitions ----------------------------------------------------------------

    def create_topic(self, stream: int | str, name: str, partitions: int = 1, *,
                     options: dict[str, str] | None = None,
                     **settings: codec.OptionValue) -> sw.TopicDetails:
        """`settings` are the documented topic options by key, e.g. compression_algorithm="gzip",
        message_expiry=60_000_000 (µs), max_topic_size=10**9 (bytes), segment_size=...;
        durability and consumer_offset_durability default to "replicated" as the SDK sends."""
        merged = {**CREATE_TOPIC_DEFAULTS, **settings}
        body = sw.encode_create_topic(ident(stream), u32(partitions), name,
                                      topic_settings(merged, options))
        return sw.decode_topic_details(self.call(Operation.CREATE_TOPIC, body))

    def update_topic(self, stream: int | str, topic: int | str, name: str, *,
                     options: dict[str, str] | None = None,
                     **settings: codec.OptionValue) -> None:
        """Only the settings and options given change (the SDK sends only those)."""
        body = sw.encode_update_topic(ident(stream), ident(topic), name,
                                      topic_settings(settings, options))
        _no_result(self.call(Operation.UPDATE_TOPIC, body))

    def delete_topic(self, stream: int | str, topic: int | str) -> None:
        body = sw.encode_ids(ident(stream), ident(topic))
        _no_result(self.call(Operation.DELETE_TOPIC, body))

    def purge_topic(self, stream: int | str, topic: int | str) -> None:
        body = sw.encode_ids(ident(stream), ident(topic))
        _no_result(self.call(Operation.PURGE_TOPIC, body))

    def get_topic(self, stream: int | str, topic: int | str, *,
                  stale: bool = False) -> sw.TopicDetails | None:
        return self._get(Code.GET_TOPIC, sw.encode_ids(ident(stream), ident(topic)),
                         sw.decode_topic_details, stale)

    def get_topics(self, stream: int | str, *, stale: bool = False) -> list[sw.TopicHeader]:
        payload = self.read(Code.GET_TOPICS, sw.encode_ids(ident(stream)), stale=stale)
        # metavsr sends a zero count for no topics; an Iggy server may send an empty body.
        return sw.decode_topic_list(payload) if payload else []

    def create_partitions(self, stream: int | str, topic: int | str, count: int) -> None:
        body = sw.encode_partitions(ident(stream), ident(topic), u32(count))
        _no_result(self.call(Operation.CREATE_PARTITIONS, body))

    def delete_partitions(self, stream: int | str, topic: int | str, count: int) -> None:
        body = sw.encode_partitions(ident(stream), ident(topic), u32(count))
        _no_result(self.call(Operation.DELETE_PARTITIONS, body))

    # --- consumer groups ------------------------------------------------------------------------

    def create_consumer_group(self, stream: int | str, topic: int | str,
                              name: str) -> sw.ConsumerGroupDetails:
        body = sw.encode_create_group(ident(stream), ident(topic), name)
        return sw.decode_group_details(self.call(Operation.CREATE_CONSUMER_GROUP, body))

    def delete_consumer_group(self, stream: int | str, topic: int | str,
                              group: int | str) -> None:
        body = sw.encode_ids(ident(stream), ident(topic), ident(group))
        _no_result(self.call(Operation.DELETE_CONSUMER_GROUP, body))

    def join_consumer_group(self, stream: int | str, topic: int | str, group: int | str) -> None:
        """This session becomes a member (until it leaves, logs out or is evicted)."""
        body = sw.encode_ids(ident(stream), ident(topic), ident(group))
        _no_result(self.call(Operation.JOIN_CONSUMER_GROUP, body))

    def leave_consumer_group(self, stream: int | str, topic: int | str, group: int | str) -> None:
        body = sw.encode_ids(ident(stream), ident(topic), ident(group))
        _no_result(self.call(Operation.LEAVE_CONSUMER_GROUP, body))

    def get_consumer_group(self, stream: int | str, topic: int | str, group: int | str, *,
                           stale: bool = False) -> sw.ConsumerGroupDetails | None:
        body = sw.encode_ids(ident(stream), ident(topic), ident(group))
        return self._get(Code.GET_CONSUMER_GROUP, body, sw.decode_group_details, stale)

    def get_consumer_groups(self, stream: int | str, topic: int | str, *,
                            stale: bool = False) -> list[sw.ConsumerGroupHeader]:
        body = sw.encode_ids(ident(stream), ident(topic))
        return sw.decode_group_list(self.read(Code.GET_CONSUMER_GROUPS, body, stale=stale))

    # --- users and permissions ------------------------------------------------------------------

    def create_user(self, username: str, password: str, status: int = uw.STATUS_ACTIVE,
                    permissions: Permissions | None = None,
                    options: dict[str, str] | None = None) -> uw.UserDetails:
        body = uw.encode_create_user_request(username, password, status, permissions,
                                             string_options(options))
        return uw.decode_user_details(self.call(Operation.CREATE_USER, body))

    def update_user(self, user: int | str, username: str | None = None,
                    status: int | None = None, options: dict[str, str] | None = None) -> None:
        body = uw.encode_update_user(ident(user), username, status, string_options(options))
        _no_result(self.call(Operation.UPDATE_USER, body))

    def update_permissions(self, user: int | str, permissions: Permissions | None) -> None:
        """Replace the user's permissions (None: none at all)."""
        body = uw.encode_update_permissions(ident(user), permissions)
        _no_result(self.call(Operation.UPDATE_PERMISSIONS, body))

    def change_password(self, user: int | str, current: str, new: str) -> None:
        body = uw.encode_change_password_request(ident(user), current, new)
        _no_result(self.call(Operation.CHANGE_PASSWORD, body))

    def delete_user(self, user: int | str) -> None:
        _no_result(self.call(Operation.DELETE_USER, codec.identifier(ident(user))))

    def get_user(self, user: int | str, *, stale: bool = False) -> uw.UserDetails | None:
        return self._get(Code.GET_USER, codec.identifier(ident(user)), uw.decode_user_details,
                         stale)

    def get_users(self, *, stale: bool = False) -> list[uw.UserHeader]:
        return uw.decode_user_list(self.read(Code.GET_USERS, stale=stale))

    # --- personal access tokens -----------------------------------------------------------------

    def create_token(self, name: str, expiry_us: int = 0) -> str:
        """A new token of the logged-in user, valid `expiry_us` µs (0 = never). The token is
        returned once; the cluster keeps only its hash."""
        if not 0 <= expiry_us <= codec.U64_MAX:
            raise ValueError(f"token expiry {expiry_us} µs outside 0..{codec.U64_MAX}")
        body = uw.encode_create_token_request(name, expiry_us)
        return uw.decode_token_created(self.call(Operation.CREATE_PERSONAL_ACCESS_TOKEN, body))

    def delete_token(self, name: str) -> None:
        body = uw.encode_delete_token(name)
        _no_result(self.call(Operation.DELETE_PERSONAL_ACCESS_TOKEN, body))

    def get_tokens(self, *, stale: bool = False) -> list[uw.TokenInfo]:
        return uw.decode_token_list(self.read(Code.GET_PERSONAL_ACCESS_TOKENS, stale=stale))
