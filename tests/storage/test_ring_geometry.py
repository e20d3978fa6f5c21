"""A ring journal's geometry against the config: the retention it can keep, and a ring too
small for the config refused by `metavsr serve` with exit 78 before anything starts."""

from __future__ import annotations

import subprocess
import sys

from core.storage.datadir import format_data_dir
from core.storage.journal_writer import retention_for, ring_geometry_problem
from domains.mux import MuxStateMachine

ROOT = __file__.rsplit("/tests/", 1)[0]


def test_a_ring_keeps_only_the_retention_it_has_room_for():
    assert retention_for(4096, 0, 2048, 64) == 4096  # segmented: all of it
    assert retention_for(4096, 4096, 2048, 64) == 4096 - 2048 - 2 * 64
    assert retention_for(100, 4096, 2048, 64) == 100
    assert ring_geometry_problem(4096, 2048, 64) == ""
    assert "2240 are needed" in ring_geometry_problem(2048, 2048, 64)
    assert ring_geometry_problem(0, 2048, 64) == ""  # segmented


def test_serve_refuses_a_ring_too_small_for_the_config(tmp_path):
    data_dir = tmp_path / "r0"
    format_data_dir(str(data_dir), cluster=5, replica=0, replica_count=1,
                    journal_backend="ring", ring_slots=2048,
                    initial_sections=MuxStateMachine().snapshot())
    config = tmp_path / "r0.toml"
    config.write_text(f'cluster_id = 5\nreplica = 0\ndata_dir = "{data_dir}"\n'
                      '[[replicas]]\nclient = "127.0.0.1:1"\npeer = "127.0.0.1:2"\n')
    out = subprocess.run([sys.executable, "-m", "tools.cli", "serve", "--config", str(config)],
                         cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert out.returncode == 78, out.stderr
    assert "the ring journal has 2048 slots" in out.stderr
