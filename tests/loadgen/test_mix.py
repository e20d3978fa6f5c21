"""The --mix parser: presets, weights, and every way a mix can be wrong."""

from __future__ import annotations

import pytest

from tools.loadgen.mix import KINDS, PRESETS, MixError, parse_mix


def test_kind_weight_pairs_keep_their_order_and_drop_zero_weights():
    assert parse_mix("create_stream=20, get_stream=0,create_topic=30") == {
        "create_stream": 20, "create_topic": 30}


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_presets_name_known_kinds_only(name):
    assert set(parse_mix(name)) <= set(KINDS)


def test_writes_preset_is_creates_only():
    assert set(parse_mix("writes")) == {"create_stream", "create_topic"}


@pytest.mark.parametrize("text, message", [
    ("create_stream", "not kind=weight"),
    ("make_stream=3", "unknown operation kind"),
    ("create_stream=1,create_stream=2", "given twice"),
    ("create_stream=x", "not an integer"),
    ("create_stream=-1", "outside"),
    ("create_stream=0", "no operation with a positive weight"),
    ("", "no operation with a positive weight"),
])
def test_bad_mixes_say_what_is_wrong(text, message):
    with pytest.raises(MixError, match=message):
        parse_mix(text)
