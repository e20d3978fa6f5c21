"""`metavsr bench cluster` and `metavsr bench scale` at smoke size, as a user runs them.

Real processes: the command starts a real metavsr cluster (and, when etcd is installed, a real
3-member etcd), drives them, prints, writes JSON and must stop everything it started. What is
checked is that the figures are there and that nothing is left running, never how fast
anything was (speed is what the commands measure, not what tests assert).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import orjson
import pytest

from tools.bench import etcd
from tools.bench.cluster import PHASES
from tools.bench.replicas import ROLES

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
# 1.5 s: the CPU per role is measured from the first whole second of load to the end.
SMOKE = ["--duration", "1.5", "--warmup", "0", "--processes", "1", "--clients", "2"]


def metavsr(*argv: str, env: dict | None = None, timeout: float = 120.0):
    return subprocess.run([sys.executable, "-m", "tools.cli", *argv], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=timeout, check=False)


def processes_mentioning(text: str) -> list[str]:
    """Command lines of live processes that mention text (every server the command starts
    has its config or data dir under the dir the test hands it)."""
    found = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as source:
                cmdline = source.read().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue  # gone meanwhile
        if text in cmdline and int(pid) != os.getpid():
            found.append(f"{pid}: {cmdline}")
    return found


def test_bench_cluster_writes_every_row_and_leaves_nothing_running(tmp_path):
    work = tmp_path / "work"
    work.mkdir()
    out = tmp_path / "cluster.json"
    with_etcd = shutil.which("etcd") is not None
    result = metavsr("bench", "cluster", *SMOKE, "--dir", str(work), "--json", str(out),
                     *(["--vs", "etcd"] if with_etcd else []))
    assert result.returncode == 0, result.stderr
    figures = orjson.loads(out.read_bytes())
    systems = ["metavsr", "etcd"] if with_etcd else ["metavsr"]
    for system in systems:
        for phase in PHASES:
            assert figures[f"{system}_{phase.name}_ops_per_s"] > 0, (system, phase.name)
            assert figures[f"{system}_{phase.name}_errors"] == 0, (system, phase.name)
        # the open-loop phases were offered a fraction of that system's own saturation
        saturation = figures[f"{system}_writes_saturation_ops_per_s"]
        assert figures[f"{system}_writes_at_50pct_target_ops_per_s"] == pytest.approx(
            saturation / 2, rel=0.01)
        assert figures[f"{system}_reads80_saturation_reads_ops_per_s"] > 0
    if with_etcd:
        assert figures["ratio_writes_saturation_ops_per_s"] == pytest.approx(
            figures["metavsr_writes_saturation_ops_per_s"]
            / figures["etcd_writes_saturation_ops_per_s"], rel=0.01)
    for role in ROLES:  # CPU per role at saturation: every role of every replica was found
        assert figures[f"metavsr_writes_saturation_primary_{role}_cpu_pct"] >= 0.0
        assert figures[f"metavsr_writes_saturation_backups_{role}_cpu_pct"] >= 0.0
    for system in systems:  # the servers' CPU at saturation: every member was measured
        assert figures[f"{system}_writes_saturation_server_cpu_pct"] > 0.0
        assert figures[f"{system}_writes_saturation_machine_cpu_pct"] > 0.0
        assert figures[f"{system}_writes_saturation_loadgen_cpu_pct"] > 0.0
    for phase in PHASES:
        assert phase.label in result.stdout
    assert processes_mentioning(str(work)) == []
    assert os.listdir(work) == []  # its temp dir (data, logs) is gone too


def test_bench_cluster_vs_etcd_without_etcd_says_how_to_install_it(tmp_path):
    empty = tmp_path / "empty-path"
    empty.mkdir()
    work = tmp_path / "work"
    work.mkdir()
    result = metavsr("bench", "cluster", "--vs", "etcd", "--dir", str(work),
                     env={**os.environ, "PATH": str(empty)}, timeout=30.0)
    assert result.returncode == 2
    assert etcd.INSTALL_HINT in result.stderr
    assert "apt-get install -y etcd-server" in result.stderr
    assert os.listdir(work) == []  # refused before creating or starting anything


def test_bench_scale_smoke_has_every_figure_and_leaves_nothing_running(tmp_path):
    work = tmp_path / "work"
    work.mkdir()
    out = tmp_path / "scale.json"
    result = metavsr("bench", "scale", "--sizes", "1000", "--duration", "1", "--warmup", "0",
                     "--processes", "1", "--clients", "2", "--dir", str(work),
                     "--json", str(out))
    assert result.returncode == 0, result.stderr
    figures = orjson.loads(out.read_bytes())
    for key in ("writes_per_s", "memory_bytes_per_object", "checkpoint_bytes",
                "checkpoint_write_s", "checkpoint_load_s", "restore_s", "cluster_start_s",
                "owner_rss_bytes"):
        assert figures[f"objects_1000_{key}"] > 0, key
    assert figures["objects_1000_write_errors"] == 0
    assert processes_mentioning(str(work)) == []
    assert os.listdir(work) == []
