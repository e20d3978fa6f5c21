"""The `metavsr` command line: one entry point, one module per subcommand.

Each subcommand lives in its own module exposing HELP (one line), add_arguments(parser) and
run(args) -> exit code, and is imported only when it is used, so `metavsr --help` stays fast
and a broken subcommand cannot break the others.
"""

from __future__ import annotations

import argparse
import importlib
import sys

# name -> module; add a line when a subcommand lands (never a placeholder).
SUBCOMMANDS: dict[str, str] = {
    "bench": "tools.bench",
    "cluster": "tools.cluster",
    "serve": "tools.serve",
    "sim": "tools.sim",
    "format": "tools.format",
    "inspect": "tools.inspect_data",  # not tools/inspect.py: it would shadow the stdlib module
    "loadgen": "tools.loadgen.command",
    "check": "tools.check",
    "chaos": "tools.chaos.command",
    "cpu-plan": "tools.cpu_plan",
    "ctl": "tools.ctl",
    "status": "tools.status",
}


def _load(name: str):
    return importlib.import_module(SUBCOMMANDS[name])


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="metavsr",
        description="metavsr: a replicated metadata store speaking Apache Iggy's protocol.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for name in sorted(SUBCOMMANDS):
        module = _load(name)
        command_parser = sub.add_parser(name, help=module.HELP, description=module.HELP)
        module.add_arguments(command_parser)
        command_parser.set_defaults(_module=module)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args._module.run(args) or 0)
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
