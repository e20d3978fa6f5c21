"""Shared output of the benchmark commands: an aligned text table and flat JSON figures."""

from __future__ import annotations

from collections.abc import Sequence

import orjson


def print_table(headers: Sequence[str], rows: Sequence[Sequence[object]], title: str = "") -> None:
    """Print rows under headers, columns aligned; floats shown with thousands separators."""
    cells = [[_fmt(value) for value in row] for row in rows]
    widths = [len(h) for h in headers]
    for row in cells:
        widths = [max(w, len(c)) for w, c in zip(widths, row)]
    if title:
        print(title)
    print("  ".join(h.ljust(w) for h, w in zip(headers, widths)))
    print("  ".join("-" * w for w in widths))
    for row in cells:
        print("  ".join(c.rjust(w) if i else c.ljust(w) for i, (c, w) in enumerate(zip(row, widths))))


def _fmt(value: object) -> str:
    if isinstance(value, float):
        if value >= 100:
            return f"{value:,.0f}"
        return f"{value:.3g}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def write_json(path: str, figures: dict[str, object]) -> None:
    """Write flat figures (units in key names, e.g. ring_batch64_records_per_s) to path."""
    for key, value in figures.items():
        if isinstance(value, (dict, list)):
            raise ValueError(f"benchmark figure {key!r} is not flat")
    with open(path, "wb") as out:
        out.write(orjson.dumps(figures, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS))
