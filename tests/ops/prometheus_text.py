"""A strict reader of the Prometheus text format 0.0.4, for checking what metavsr serves.

Stricter than Prometheus on purpose: every sample needs a TYPE line before it, a family's
lines must be consecutive, a family has one HELP and one TYPE, and a histogram's buckets must
be cumulative, end with le="+Inf" and agree with _count.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field

_NAME = r"[a-zA-Z_:][a-zA-Z0-9_:]*"
_SAMPLE = re.compile(rf"^({_NAME})(\{{(.*)\}})? (\S+)$")
_LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"(,|$)')
_HISTOGRAM_SUFFIXES = ("_bucket", "_sum", "_count")


@dataclass
class Family:
    name: str
    kind: str = ""
    help: str = ""
    samples: list[tuple[str, dict[str, str], float]] = field(default_factory=list)

    def value(self, **labels: str) -> float:
        matches = [v for name, l, v in self.samples if name == self.name and l == labels]
        assert len(matches) == 1, f"{self.name}{labels}: {len(matches)} samples"
        return matches[0]


def _unescape(text: str) -> str:
    return re.sub(r"\\(.)", lambda m: "\n" if m.group(1) == "n" else m.group(1), text)


def _labels(text: str | None, line: str) -> dict[str, str]:
    labels: dict[str, str] = {}
    position = 0
    while text and position < len(text):
        match = _LABEL.match(text, position)
        assert match, f"bad labels in {line!r}"
        assert match.group(1) not in labels, f"repeated label in {line!r}"
        labels[match.group(1)] = _unescape(match.group(2))
        position = match.end()
    return labels


def _family_of(sample_name: str, families: dict[str, Family]) -> Family:
    if sample_name in families:
        return families[sample_name]
    for suffix in _HISTOGRAM_SUFFIXES:
        base = sample_name.removesuffix(suffix)
        if base != sample_name and base in families and families[base].kind == "histogram":
            return families[base]
    raise AssertionError(f"sample {sample_name} has no TYPE line before it")


def parse(text: str) -> dict[str, Family]:
    assert text.endswith("\n"), "the exposition ends with a newline"
    families: dict[str, Family] = {}
    current: Family | None = None
    finished: set[str] = set()  # families whose lines have ended: they may not come back

    def enter(family: Family, line: str) -> Family:
        if current is not None and current is not family:
            finished.add(current.name)
        assert family.name not in finished, f"{family.name} is split: {line!r}"
        return family

    for line in text[:-1].split("\n"):
        if line.startswith("# HELP ") or line.startswith("# TYPE "):
            _, keyword, name, rest = line.split(" ", 3)
            assert re.fullmatch(_NAME, name), line
            family = enter(families.setdefault(name, Family(name)), line)
            if keyword == "HELP":
                assert not family.help, f"second HELP for {name}"
                family.help = _unescape(rest)
            else:
                assert not family.kind, f"second TYPE for {name}"
                assert rest in ("counter", "gauge", "histogram", "summary", "untyped"), line
                family.kind = rest
            current = family
            continue
        assert line and not line.startswith("#"), f"unexpected line {line!r}"
        match = _SAMPLE.match(line)
        assert match, f"not a sample line: {line!r}"
        family = enter(_family_of(match.group(1), families), line)
        value = float(match.group(4))  # Go's ParseFloat accepts what Python's float does here
        family.samples.append((match.group(1), _labels(match.group(3), line), value))
        current = family
    for family in families.values():
        assert family.kind and family.help and family.samples, f"{family.name} is incomplete"
        if family.kind == "counter":
            assert all(v >= 0 for _, _, v in family.samples), f"{family.name} negative"
        if family.kind == "histogram":
            _check_histogram(family)
    return families


def _check_histogram(family: Family) -> None:
    buckets = [(labels["le"], v) for name, labels, v in family.samples
               if name == family.name + "_bucket"]
    bounds = [float(le) for le, _ in buckets]
    counts = [v for _, v in buckets]
    assert buckets and buckets[-1][0] == "+Inf", f"{family.name}: last bucket must be +Inf"
    assert bounds == sorted(bounds) and len(set(bounds)) == len(bounds), f"{family.name}: le order"
    assert counts == sorted(counts), f"{family.name}: buckets are not cumulative"
    count = [v for name, _, v in family.samples if name == family.name + "_count"]
    total = [v for name, _, v in family.samples if name == family.name + "_sum"]
    assert count == [counts[-1]] and len(total) == 1 and not math.isnan(total[0]), family.name
