"""Result decoders against the domains' result encoders: random model objects encode and decode
back to their fields; any damage to a body (truncation, trailing bytes, random bytes) raises
MalformedResult and nothing else."""

from __future__ import annotations

import struct

from hypothesis import given, settings
from hypothesis import strategies as st

from domains import permissions as P
from domains import streams_wire as sw
from domains import users_wire as uw
from domains.codec import (
    KIND_BOOL,
    KIND_STRING,
    U64_MAX,
    VALUE_WIDTH,
    MalformedResult,
    encode_options,
)
from domains.streams import Group, Stream, Topic
from domains.users import User
from net import iggy

EXAMPLES = settings(max_examples=60, deadline=None)

u32 = st.integers(0, (1 << 32) - 1)
u64 = st.integers(0, U64_MAX)
names = st.text(min_size=1, max_size=20).filter(lambda s: len(s.encode()) <= 255)


@st.composite
def option_values(draw):
    kind = draw(st.sampled_from(sorted(VALUE_WIDTH)))
    width = VALUE_WIDTH[kind]
    if kind == KIND_STRING:
        return kind, draw(names).encode()
    if kind == KIND_BOOL:
        return kind, bytes((draw(st.integers(0, 1)),))
    if width is None:
        return kind, draw(st.binary(min_size=1, max_size=12))
    return kind, draw(st.binary(min_size=width, max_size=width))


options = st.dictionaries(names, option_values(), max_size=4)


@st.composite
def topics(draw, ident=None):
    opts = draw(options)
    topic = Topic(draw(u32) if ident is None else ident, draw(names), draw(u64),
                  encode_options(opts), (draw(st.sampled_from((1, 2))), draw(u64), draw(u64)))
    for count, created_at in draw(st.lists(st.tuples(st.integers(1, 4), u64), max_size=3)):
        topic.add_partitions(count, created_at)
    return topic, opts


@st.composite
def streams(draw):
    opts = draw(options)
    stream = Stream(draw(u32), draw(names), draw(u64), encode_options(opts))
    for ident in draw(st.sets(st.integers(0, 50), max_size=3)):
        stream.topics[ident] = draw(topics(ident))[0]
    return stream, opts


@st.composite
def groups(draw):
    group = Group(draw(u32), draw(names))
    member_ids = draw(st.lists(u32, unique=True, max_size=4))
    for i, member in enumerate(member_ids):
        group.members[i.to_bytes(16, "little")] = member
    return group, draw(st.integers(0, 12))


permissions = st.one_of(st.none(), st.tuples(
    st.integers(0, 1023),
    st.dictionaries(u32, st.tuples(st.integers(0, 63),
                                   st.dictionaries(u32, st.integers(0, 15), max_size=3)),
                    max_size=3)))


@st.composite
def users(draw):
    opts = draw(options)
    user = User(draw(u32), draw(names), draw(u64), draw(st.sampled_from(uw.STATUSES)), b"h",
                encode_options(opts))
    user.perms = draw(permissions)
    user.perms_raw = b"" if user.perms is None else P.encode(user.perms)
    return user, opts


def _check_topic(decoded: sw.TopicHeader, topic: Topic, opts) -> None:
    assert (decoded.id, decoded.name, decoded.created_at, decoded.partitions_count) == (
        topic.id, topic.name, topic.created_at, topic.partitions)
    assert (decoded.compression, decoded.message_expiry, decoded.max_topic_size) == (
        topic.compression, topic.expiry, topic.max_size)
    assert (decoded.size, decoded.messages_count, decoded.options, decoded.derived_options) == (
        0, 0, opts, {})


def _damaged(payload: bytes, decode, whole_items: bool) -> None:
    """Every strict prefix and a trailing byte fail with MalformedResult (a list decoder may
    accept a prefix that ends on an item boundary: `whole_items`)."""
    for end in range(len(payload)):
        try:
            decode(payload[:end])
        except MalformedResult:
            continue
        assert whole_items, f"prefix of {end} bytes decoded"
    if not whole_items:
        try:
            decode(payload + b"\x00")
        except MalformedResult:
            return
        raise AssertionError("a trailing byte was accepted")


@EXAMPLES
@given(streams())
def test_stream_round_trip(case):
    stream, opts = case
    header = sw.decode_stream_header(sw.stream_header(stream))
    assert (header.id, header.name, header.created_at, header.topics_count, header.options) == (
        stream.id, stream.name, stream.created_at, len(stream.topics), opts)
    details = sw.decode_stream_details(sw.stream_details(stream))
    assert details.topics_count == len(details.topics) == len(stream.topics)
    for decoded, ident in zip(details.topics, sorted(stream.topics)):
        topic = stream.topics[ident]
        assert decoded.id == ident and decoded.partitions_count == topic.partitions
    listed = sw.decode_stream_list(sw.stream_header(stream) * 2)
    assert listed == [header, header]
    _damaged(sw.stream_details(stream), sw.decode_stream_details, whole_items=False)


@EXAMPLES
@given(topics())
def test_topic_round_trip(case):
    topic, opts = case
    _check_topic(sw.decode_topic_header(sw.topic_header(topic)), topic, opts)
    details = sw.decode_topic_details(sw.topic_details(topic))
    _check_topic(details, topic, opts)
    created = [created_at for count, created_at in topic.runs for _ in range(count)]
    assert [(p.id, p.created_at) for p in details.partitions] == list(enumerate(created))
    assert all((p.segments_count, p.current_offset, p.size, p.messages_count) == (1, 0, 0, 0)
               for p in details.partitions)
    for partition in details.partitions:
        raw = struct.pack("<IQIQQQ", partition.id, partition.created_at, 1, 0, 0, 0)
        assert sw.decode_partition(raw) == partition
    counted = struct.pack("<I", 2) + sw.topic_header(topic) * 2
    assert len(sw.decode_topic_list(counted)) == 2
    _damaged(sw.topic_details(topic), sw.decode_topic_details, whole_items=False)
    _damaged(counted, sw.decode_topic_list, whole_items=False)


@EXAMPLES
@given(groups())
def test_group_round_trip(case):
    group, partitions = case
    header = sw.decode_group_header(sw.group_header(group, partitions))
    assert (header.id, header.name, header.partitions_count, header.members_count) == (
        group.id, group.name, partitions, len(group.members))
    details = sw.decode_group_details(sw.group_details(group, partitions))
    expected = sw.assignment(sorted(group.members.values()), partitions)
    assert [(m.id, list(m.partitions)) for m in details.members] == expected
    assert sw.decode_group_list(sw.group_header(group, partitions) * 3) == [header] * 3
    _damaged(sw.group_details(group, partitions), sw.decode_group_details, whole_items=False)


@EXAMPLES
@given(users())
def test_user_round_trip(case):
    user, opts = case
    header = uw.decode_user_header(uw.user_header(user))
    assert (header.id, header.username, header.created_at, header.status, header.options) == (
        user.id, user.username, user.created_at, user.status, opts)
    details = uw.decode_user_details(uw.user_details(user))
    # Permissions decode to the domain's canonical value (empty topic maps and all).
    assert details.permissions == (None if user.perms is None else P.decode(user.perms_raw))
    assert uw.decode_user_list(uw.user_header(user) * 2) == [header, header]
    _damaged(uw.user_details(user), uw.decode_user_details, whole_items=False)
    _damaged(uw.user_header(user) * 2, uw.decode_user_list, whole_items=True)


@EXAMPLES
@given(st.dictionaries(names, st.tuples(st.just(b"h"), u64), max_size=5),
       st.text(min_size=1, max_size=100))
def test_tokens_round_trip(tokens, token):
    listed = uw.decode_token_list(uw.token_list(tokens))
    assert listed == [uw.TokenInfo(name, tokens[name][1]) for name in sorted(tokens)]
    assert uw.decode_token_created(uw.encode_token_created(token)) == token
    _damaged(uw.encode_token_created(token), uw.decode_token_created, whole_items=False)


@EXAMPLES
@given(u32, st.integers(1, U64_MAX))
def test_login_reply_round_trip(user_id, session):
    login = iggy.parse_login_reply(iggy.login_reply_body(user_id, session)[4:])
    assert (login.user_id, login.session, login.server_version) == (
        user_id, session, iggy.SERVER_VERSION)


DECODERS = (sw.decode_stream_header, sw.decode_stream_details, sw.decode_stream_list,
            sw.decode_topic_header, sw.decode_topic_details, sw.decode_topic_list,
            sw.decode_partition, sw.decode_group_header, sw.decode_group_details,
            sw.decode_group_list, uw.decode_user_header, uw.decode_user_details,
            uw.decode_user_list, uw.decode_token_list, uw.decode_token_created)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=120), st.sampled_from(DECODERS))
def test_random_bytes_raise_only_malformed_result(data, decode):
    try:
        decode(data)
    except MalformedResult:
        pass


def test_a_huge_count_in_a_short_body_is_malformed_at_once():
    with_count = struct.pack("<I", 0xFFFFFFFF)
    for decode, body in ((sw.decode_topic_list, with_count),
                         (sw.decode_group_details,
                          struct.pack("<III", 0, 1, 1) + b"\x01g" + struct.pack("<II", 7,
                                                                                0xFFFFFFFF))):
        try:
            decode(body)
        except MalformedResult as error:
            assert decode.__name__ in str(error)
        else:
            raise AssertionError("decoded")


def test_a_compression_the_sdk_rejects_is_malformed():
    topic = Topic(1, "t", 0, b"", (1, 0, 0))
    raw = bytearray(sw.topic_header(topic))
    raw[24] = 0  # compression byte: offset 4 + 8 + 4 + 8
    try:
        sw.decode_topic_header(bytes(raw))
    except MalformedResult:
        return
    raise AssertionError("compression 0 decoded")
