"""Admission's static checks: decode an operation's body with every bound, or refuse it.

Owns: the table operation -> canonical re-encoding of its (post-admission) body. Pure and
cheap: no state, so the primary runs it before an operation gets an op number and a refused
body costs no log slot. The canonical form (e.g. option keys sorted) is what the log carries.
Must never look at state (existence, uniqueness and permissions are apply's state checks).
"""

from __future__ import annotations

from collections.abc import Callable

from domains import operations as O
from domains import sessions_wire
from domains import streams_wire as sw
from domains import users_wire as uw
from domains.codec import identifier, name8
from domains.errors import FEATURE_UNAVAILABLE, INVALID_COMMAND, DomainError


def _canonical(decode: Callable, encode: Callable) -> Callable[[bytes], bytes]:
    return lambda body: encode(*decode(body))


def _ids(count: int) -> Callable[[bytes], bytes]:
    return lambda body: sw.encode_ids(*sw.decode_ids(body, count))


def _refuse(code: int) -> Callable[[bytes], bytes]:
    def refuse(body: bytes) -> bytes:
        raise DomainError(code)
    return refuse


def _empty(body: bytes) -> bytes:
    uw.decode_empty(body)
    return b""


# operation -> static check returning the canonical log body (post-admission form).
ADMIT: dict[int, Callable[[bytes], bytes]] = {
    O.REGISTER: _canonical(sessions_wire.decode_register, sessions_wire.encode_register),
    O.LOGOUT: _empty,
    O.CREATE_STREAM: _canonical(sw.decode_create_stream, sw.encode_create_stream),
    O.UPDATE_STREAM: _canonical(sw.decode_update_stream, sw.encode_update_stream),
    O.DELETE_STREAM: _ids(1),
    O.PURGE_STREAM: _ids(1),
    O.CREATE_TOPIC: _canonical(sw.decode_create_topic, sw.encode_create_topic),
    O.UPDATE_TOPIC: _canonical(sw.decode_update_topic, sw.encode_update_topic),
    O.DELETE_TOPIC: _ids(2),
    O.PURGE_TOPIC: _ids(2),
    O.CREATE_PARTITIONS: _canonical(sw.decode_partitions, sw.encode_partitions),
    O.DELETE_PARTITIONS: _canonical(sw.decode_partitions, sw.encode_partitions),
    # Segments belong to the partition plane, not to the metadata log.
    O.DELETE_SEGMENTS: _refuse(FEATURE_UNAVAILABLE),
    O.CREATE_CONSUMER_GROUP: _canonical(sw.decode_create_group, sw.encode_create_group),
    O.DELETE_CONSUMER_GROUP: _ids(3),
    O.JOIN_CONSUMER_GROUP: _ids(3),
    O.LEAVE_CONSUMER_GROUP: _ids(3),
    O.CREATE_USER: _canonical(uw.decode_create_user, uw.encode_create_user),
    O.UPDATE_USER: _canonical(uw.decode_update_user, uw.encode_update_user),
    O.DELETE_USER: lambda body: identifier(uw.decode_user_id(body)),
    O.CHANGE_PASSWORD: _canonical(uw.decode_change_password, uw.encode_change_password),
    O.UPDATE_PERMISSIONS: _canonical(uw.decode_update_permissions, uw.encode_update_permissions),
    O.CREATE_PAT: _canonical(uw.decode_create_token, uw.encode_create_token),
    O.DELETE_PAT: lambda body: name8(uw.decode_delete_token(body)),
}


def admit(operation: int, body: bytes) -> bytes:
    """The canonical log body of `operation`, or DomainError(code) for a bad body."""
    check_body = ADMIT.get(operation)
    if check_body is None:
        raise DomainError(INVALID_COMMAND)
    return check_body(body)
