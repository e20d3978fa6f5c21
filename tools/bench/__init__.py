"""`metavsr bench KIND`: benchmark commands (measurements are commands, never timed tests).

Every kind prints a table and, with --json FILE, writes the same figures as flat JSON with the
unit in each key name (tools/bench/report.py).
"""

from __future__ import annotations

import argparse
import importlib


class BenchError(Exception):
    """The benchmark cannot run (a missing tool, a server that did not start): the message
    says why and what to do; the command exits 2 after everything it started is stopped."""


HELP = "run a benchmark and print its table (--json FILE for machine-readable figures)"

# kind -> module exposing HELP, add_arguments(parser), run(args) -> dict of flat figures.
KINDS: dict[str, str] = {
    "apply": "tools.bench.apply",
    "checkpoint": "tools.bench.checkpoint",
    "journal": "tools.bench.journal",
    "ring": "tools.bench.ring",
    "codec": "tools.bench.codec",
    "cluster": "tools.bench.cluster",
    "scale": "tools.bench.scale",
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="kind", metavar="KIND")
    sub.required = True
    for name in sorted(KINDS):
        module = importlib.import_module(KINDS[name])
        # argparse %-formats help strings (not descriptions): a literal % must be doubled.
        kind_parser = sub.add_parser(name, help=module.HELP.replace("%", "%%"),
                                     description=module.HELP)
        kind_parser.add_argument("--json", metavar="FILE", help="also write the figures as JSON")
        module.add_arguments(kind_parser)
        kind_parser.set_defaults(_bench=module)


def run(args: argparse.Namespace) -> int:
    import sys

    from tools.bench.report import write_json

    try:
        figures = args._bench.run(args)
    except BenchError as exc:
        print(f"metavsr bench {args.kind}: {exc}", file=sys.stderr)
        return 2
    if args.json:
        write_json(args.json, figures)
    return 0
