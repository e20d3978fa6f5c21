"""Codec properties: admission never fails on arbitrary bytes with anything but DomainError,
its canonical body is a fixed point, and the permissions layout round-trips."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from domains import permissions as P
from domains.errors import CATALOGUE, DomainError
from domains.admit import ADMIT
from domains.mux import MuxStateMachine

OPERATIONS = sorted(ADMIT)


@settings(max_examples=1500, deadline=None)
@given(st.sampled_from(OPERATIONS), st.binary(max_size=64))
def test_admission_of_arbitrary_bytes_is_a_domain_error_or_a_fixed_point(operation, body):
    try:
        canonical = MuxStateMachine.admit(operation, body)
    except DomainError as error:
        assert error.code in CATALOGUE
        return
    assert MuxStateMachine.admit(operation, canonical) == canonical


@settings(max_examples=500, deadline=None)
@given(st.sampled_from(OPERATIONS), st.binary(max_size=64))
def test_apply_of_arbitrary_bodies_answers_with_a_catalogue_code(operation, body):
    mux = MuxStateMachine()
    client = b"c" * 16
    mux.apply(1, 1, client, 0, 0, 0, 1, b"\0\0\0\0\0")
    status, _ = mux.apply(2, 2, client, 1, 1, 0, operation, body)
    assert status == 0 or status in CATALOGUE


flags = st.integers(min_value=0, max_value=1023)
perms_strategy = st.tuples(
    flags,
    st.dictionaries(st.integers(0, 2**32 - 1),
                    st.tuples(st.integers(0, 63),
                              st.dictionaries(st.integers(0, 2**32 - 1), st.integers(0, 15),
                                              max_size=4)),
                    max_size=4))


@settings(max_examples=300, deadline=None)
@given(perms_strategy)
def test_permissions_round_trip(perms):
    assert P.decode(P.encode(perms)) == perms
