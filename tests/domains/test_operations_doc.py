"""docs/OPERATIONS.md stays in step with the code: every operation, read and error code (with
its name) of domains/ appears in it."""

from __future__ import annotations

import os
import re

from domains import operations as O
from domains.errors import CATALOGUE
from domains.admit import ADMIT

DOC = os.path.join(os.path.dirname(__file__), "..", "..", "docs", "OPERATIONS.md")


def _rows(errors: bool) -> dict[int, str]:
    """First column -> second column of the tables before (operations) or after (errors) the
    "Error catalogue" heading; operation numbers and error codes overlap, so never mixed."""
    with open(DOC) as source:
        text = source.read()
    operations, _, catalogue = text.partition("## Error catalogue")
    text = catalogue if errors else operations
    rows: dict[int, str] = {}
    for line in text.splitlines():
        match = re.match(r"\|\s*(\d+)\s*\|\s*([^|]+?)\s*\|", line)
        if match:
            rows.setdefault(int(match.group(1)), match.group(2))
    return rows


def test_every_operation_and_read_is_documented():
    rows = _rows(errors=False)
    for number, name in {**O.NAMES, **O.READ_NAMES}.items():
        assert number in rows and rows[number].startswith(name), (number, name)
    assert set(ADMIT) <= set(rows)


def test_every_error_code_is_documented_with_its_name():
    rows = _rows(errors=True)
    for code, (name, _) in CATALOGUE.items():
        assert rows.get(code) == name, (code, name)
    assert set(rows) == set(CATALOGUE)  # and nothing the code cannot answer
