"""Every command's --help prints (argparse formats help strings: a stray % breaks it)."""

from __future__ import annotations

import contextlib
import io

import pytest

from tools import cli
from tools.bench import KINDS


def _help(argv: list[str]) -> str:
    out = io.StringIO()
    with contextlib.redirect_stdout(out), pytest.raises(SystemExit) as exit_info:
        cli.build_parser().parse_args(argv + ["--help"])
    assert exit_info.value.code == 0
    return out.getvalue()


@pytest.mark.parametrize("command", [[]] + [[name] for name in sorted(cli.SUBCOMMANDS)]
                         + [["bench", kind] for kind in sorted(KINDS)])
def test_help_prints_for_every_command(command):
    assert "usage: metavsr" in _help(command)
