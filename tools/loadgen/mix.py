"""The load generator's operation kinds and the `--mix` parser.

Owns: the names of the kinds a workload can draw (`KINDS`), the named presets and the parsing
of `kind=weight,...` into a weight table. Must never build frames or know the catalogue: what
an operation sends is tools/loadgen/workload.py's job.
"""

from __future__ import annotations

# Every kind the workload knows, in the order tables print them.
KINDS = (
    "create_stream", "create_topic", "create_consumer_group", "create_user",
    "join_consumer_group", "leave_consumer_group", "delete_stream",
    "get_stream", "get_streams", "get_topic", "get_consumer_group", "get_user",
)

# Named mixes. `writes` is the saturation mix (creates only: every op commits a prepare);
# `reads80` is the 80%-reads mix of `bench cluster`; `default` touches every common path and
# leaves out create_user (a scrypt hash per op on the server) and get_streams (its reply grows
# with the catalogue).
PRESETS: dict[str, str] = {
    "default": ("create_stream=10,create_topic=15,create_consumer_group=5,"
                "join_consumer_group=4,leave_consumer_group=3,delete_stream=1,"
                "get_stream=30,get_topic=27,get_consumer_group=5"),
    "writes": "create_stream=40,create_topic=60",
    "reads80": "create_stream=8,create_topic=12,get_stream=40,get_topic=40",
}

WEIGHT_MAX = 1_000_000


class MixError(ValueError):
    """A --mix that cannot be used; the message says what is wrong and what is allowed."""


def parse_mix(text: str) -> dict[str, int]:
    """`kind=weight,...` or a preset name -> {kind: weight} with only positive weights."""
    text = PRESETS.get(text.strip(), text)
    mix: dict[str, int] = {}
    for item in text.split(","):
        item = item.strip()
        if not item:
            continue
        kind, sep, weight = item.partition("=")
        kind = kind.strip()
        if not sep:
            raise MixError(f"mix item {item!r} is not kind=weight "
                           f"(or use a preset: {', '.join(sorted(PRESETS))})")
        if kind not in KINDS:
            raise MixError(f"unknown operation kind {kind!r}; known: {', '.join(KINDS)}")
        if kind in mix:
            raise MixError(f"operation kind {kind!r} given twice")
        try:
            value = int(weight)
        except ValueError:
            raise MixError(f"weight of {kind!r} is {weight.strip()!r}, not an integer") from None
        if not 0 <= value <= WEIGHT_MAX:
            raise MixError(f"weight of {kind!r} is {value}, outside 0..{WEIGHT_MAX}")
        if value:
            mix[kind] = value
    if not mix:
        raise MixError("the mix has no operation with a positive weight")
    return mix
