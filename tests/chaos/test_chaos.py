"""A CI-sized `metavsr chaos` run: real replicas in network namespaces behind the proxy, every
fault kind once (seed 6 plans kill, disk-full, pause and partition in 50 s), then the checks.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import orjson
import pytest

from tests.integration.test_cluster import ROOT

pytestmark = pytest.mark.skipif(os.geteuid() != 0 or shutil.which("ip") is None,
                                reason="metavsr chaos needs root and iproute2")


def test_a_short_chaos_run_with_every_fault_kind_passes_every_check(tmp_path):
    summary_path = tmp_path / "summary.json"
    out = subprocess.run(
        [sys.executable, "-m", "tools.cli", "chaos", "--duration", "50", "--seed", "6",
         "--faults", "kill,pause,partition,disk-full",
         "--dir", str(tmp_path / "run"), "--json", str(summary_path)],
        cwd=ROOT, capture_output=True, text=True, timeout=300)
    summary = orjson.loads(summary_path.read_bytes())
    assert out.returncode == 0, out.stdout + out.stderr
    assert summary["passed"] and summary["problems"] == []
    assert set(summary["faults_injected"]) == {"kill", "pause", "partition", "disk-full"}
    assert summary["linearizable"] and summary["ops_ok"] > 1000
    assert summary["digests_compared"] == 3 and summary["digests_equal"]
    assert summary["acked_writes_checked"] > 100
    assert summary["leftover_processes"] == {} and summary["unexpected_exits"] == []
    assert summary["view_changes"] >= 1  # the primary was killed
    # The run left no namespace and no mount behind.
    namespaces = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    assert not set(summary["namespaces"]) & set(namespaces.split())
    with open("/proc/mounts") as mounts:
        assert str(tmp_path) not in mounts.read()
