"""Smoke test of `metavsr bench apply` at a tiny scale: it runs, reports flat figures, and its
restored checkpoint matches (run() raises otherwise). Measurements themselves are not asserted."""

from __future__ import annotations

import argparse

from tools.bench import apply


def test_bench_apply_runs_at_tiny_scale(capsys):
    parser = argparse.ArgumentParser()
    apply.add_arguments(parser)
    figures = apply.run(parser.parse_args(["--scale", "0.001", "--ops", "2000"]))
    assert figures["catalogue_partitions"] == 1000 and figures["mix_ops"] == 2000
    assert figures["mix_state_errors_fraction"] < 0.05
    assert all(isinstance(value, float) for value in figures.values())
    assert "applied ops/s" in capsys.readouterr().out
