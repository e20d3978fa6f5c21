"""Random operation sequences over a small name space (so names collide and ids get reused),
shared by the model test and the determinism properties."""

from __future__ import annotations

import random

from domains import streams_wire as sw
from domains import users_wire as uw
from domains.codec import U64, identifier, name8
from tests.domains.decode import GLOBAL, STREAM, TOPIC

STREAM_NAMES = ("a", "b", "c")
TOPIC_NAMES = ("x", "y")
GROUP_NAMES = ("g", "h")
USER_NAMES = ("alice", "bob", "carol")
TOKEN_NAMES = ("tk1", "tk2", "tk3")
SLOTS = 4

WRITES = {
    "create_stream": 128, "update_stream": 129, "delete_stream": 130, "purge_stream": 131,
    "create_topic": 132, "update_topic": 133, "delete_topic": 134, "purge_topic": 135,
    "create_partitions": 136, "delete_partitions": 137,
    "create_group": 139, "delete_group": 140, "join_group": 148, "leave_group": 149,
    "create_user": 141, "update_user": 142, "delete_user": 143, "change_password": 144,
    "update_permissions": 145, "create_token": 146, "delete_token": 147, "logout": 3,
}
# Relative frequency of each write: creates outweigh deletes so the catalogue stays populated.
WEIGHTS = {
    "create_stream": 10, "update_stream": 2, "delete_stream": 1, "purge_stream": 1,
    "create_topic": 6, "update_topic": 2, "delete_topic": 1, "purge_topic": 1,
    "create_partitions": 3, "delete_partitions": 2,
    "create_group": 5, "delete_group": 1, "join_group": 6, "leave_group": 3,
    "create_user": 3, "update_user": 2, "delete_user": 1, "change_password": 1,
    "update_permissions": 2, "create_token": 2, "delete_token": 1, "logout": 1,
}
READS = {
    "get_stream": 200, "get_streams": 201, "get_topic": 300, "get_topics": 301,
    "get_group": 600, "get_groups": 601, "get_user": 31, "get_users": 32, "get_tokens": 41,
}


def to_domain_perms(perms):
    """Neutral permissions (flag-name sets) -> the domain's bitmask tuple."""
    if perms is None:
        return None
    glob, streams = perms

    def bits(names, order):
        return sum(1 << i for i, n in enumerate(order) if n in names)

    return (bits(glob, GLOBAL),
            {sid: (bits(sf, STREAM), {tid: bits(tf, TOPIC) for tid, tf in topics.items()})
             for sid, (sf, topics) in streams.items()})


def encode(kind: str, args: tuple) -> tuple[int, bytes]:
    if kind in READS:
        code = READS[kind]
        if kind in ("get_user",):
            return code, identifier(args[0])
        return code, sw.encode_ids(*args)
    operation = WRITES[kind]
    if kind == "create_stream":
        body = sw.encode_create_stream(args[0], {})
    elif kind == "update_stream":
        sid, name, opts = args
        body = sw.encode_update_stream(sid, name, {k: (2, v.encode()) for k, v in opts.items()})
    elif kind == "create_topic":
        sid, parts, name, opts = args
        body = sw.encode_create_topic(sid, parts, name, _topic_opts(opts))
    elif kind == "update_topic":
        sid, tid, name, opts = args
        body = sw.encode_update_topic(sid, tid, name, _topic_opts(opts))
    elif kind in ("create_partitions", "delete_partitions"):
        body = sw.encode_partitions(*args)
    elif kind == "create_group":
        body = sw.encode_create_group(*args)
    elif kind == "create_user":
        name, status, perms = args
        body = uw.encode_create_user(name, b"hash-" + name.encode(), status,
                                     to_domain_perms(perms), {})
    elif kind == "update_user":
        body = uw.encode_update_user(*args, {})
    elif kind == "delete_user":
        body = identifier(args[0])
    elif kind == "change_password":
        body = uw.encode_change_password(args[0], args[1])
    elif kind == "update_permissions":
        body = uw.encode_update_permissions(args[0], to_domain_perms(args[1]))
    elif kind == "create_token":
        body = uw.encode_create_token(*args)
    elif kind == "delete_token":
        body = name8(args[0])
    elif kind == "logout":
        body = b""
    else:
        body = sw.encode_ids(*args)
    return operation, body


def _topic_opts(opts: dict) -> dict:
    out = {}
    for key, value in opts.items():
        out[key] = (12, U64.pack(value)) if isinstance(value, int) else (2, value.encode())
    return out


def _ident(rng: random.Random, names) -> int | str:
    return rng.randrange(len(names)) if rng.random() < 0.4 else rng.choice(names)


def _perms(rng: random.Random):
    if rng.random() < 0.2:
        return None
    glob = frozenset(n for n in GLOBAL if rng.random() < 0.15)
    streams = {}
    for sid in range(3):
        if rng.random() < 0.4:
            topics = {tid: frozenset(n for n in TOPIC if rng.random() < 0.4)
                      for tid in range(2) if rng.random() < 0.5}
            streams[sid] = (frozenset(n for n in STREAM if rng.random() < 0.3), topics)
    return glob, streams


TOPIC_OPTION_CHOICES = (
    {}, {"compression_algorithm": "gzip"}, {"message_expiry": 60_000_000},
    {"max_topic_size": 1 << 30, "x-extra": "1"}, {"compression_algorithm": "none"},
)


def random_steps(rng: random.Random, count: int) -> list[tuple]:
    """Steps: ("login", slot, user_id), ("login_token", slot, token_hash),
    ("write", slot, kind, args), ("retry", slot), ("read", slot, kind, args). Writes and
    reads act as the slot's logged-in user."""
    steps: list[tuple] = [("login", 0, 0)]
    token_serial = 0
    for _ in range(count):
        slot = rng.randrange(SLOTS)
        roll = rng.random()
        if roll < 0.12:
            if token_serial and rng.random() < 0.25:
                steps.append(("login_token", slot, b"tok%d" % rng.randint(1, token_serial)))
            else:
                steps.append(("login", slot, rng.choice((0, 0, 0, 0, 1, 2, 3))))
            continue
        if roll < 0.15:
            steps.append(("retry", slot))
            continue
        if roll < 0.35:
            kind = rng.choice(tuple(READS))
            s, t, g = (_ident(rng, STREAM_NAMES), _ident(rng, TOPIC_NAMES),
                       _ident(rng, GROUP_NAMES))
            args = {"get_stream": (s,), "get_streams": (), "get_topic": (s, t),
                    "get_topics": (s,), "get_group": (s, t, g), "get_groups": (s, t),
                    "get_user": (_ident(rng, USER_NAMES),), "get_users": (),
                    "get_tokens": ()}[kind]
            steps.append(("read", slot, kind, args))
            continue
        kind = rng.choices(tuple(WEIGHTS), tuple(WEIGHTS.values()))[0]
        s, t, g = _ident(rng, STREAM_NAMES), _ident(rng, TOPIC_NAMES), _ident(rng, GROUP_NAMES)
        u = _ident(rng, USER_NAMES)
        if kind == "create_stream":
            args = (rng.choice(STREAM_NAMES),)
        elif kind == "update_stream":
            opts = rng.choice(({}, {"k": "v1"}, {"k": "v2", "z": "1"}))
            args = (s, rng.choice(STREAM_NAMES), opts)
        elif kind in ("delete_stream", "purge_stream"):
            args = (s,)
        elif kind == "create_topic":
            args = (s, rng.randrange(4), rng.choice(TOPIC_NAMES), rng.choice(TOPIC_OPTION_CHOICES))
        elif kind == "update_topic":
            args = (s, t, rng.choice(TOPIC_NAMES), rng.choice(TOPIC_OPTION_CHOICES))
        elif kind in ("delete_topic", "purge_topic"):
            args = (s, t)
        elif kind in ("create_partitions", "delete_partitions"):
            args = (s, t, rng.randrange(1, 4))
        elif kind == "create_group":
            args = (s, t, rng.choice(GROUP_NAMES))
        elif kind in ("delete_group", "join_group", "leave_group"):
            args = (s, t, g)
        elif kind == "create_user":
            args = (rng.choice(USER_NAMES), rng.choice((1, 1, 1, 2)), _perms(rng))
        elif kind == "update_user":
            args = (u, rng.choice((None, rng.choice(USER_NAMES))), rng.choice((None, 1, 2)))
        elif kind == "delete_user":
            args = (u,)
        elif kind == "change_password":
            args = (u, rng.choice((b"h1", b"h2")))
        elif kind == "update_permissions":
            args = (rng.choice((0, u)), _perms(rng))
        elif kind == "create_token":
            token_serial += 1
            args = (rng.choice(TOKEN_NAMES), rng.choice((0, 0, 50, 500)),
                    b"tok%d" % (token_serial if rng.random() < 0.95 else 1))
        elif kind == "delete_token":
            args = (rng.choice(TOKEN_NAMES),)
        else:
            args = ()
        steps.append(("write", slot, kind, args))
    return steps
