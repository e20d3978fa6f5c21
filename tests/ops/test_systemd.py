"""The systemd unit and the example configs: `systemd-analyze verify` passes on the unit, its
settings agree with the supervisor's own bounds, and every example config loads."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import pytest

from core.config import load
from core.roles import supervisor
from tools import cpu_plan, serve

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
UNIT = os.path.join(ROOT, "tools", "systemd", "metavsr@.service")
EXAMPLES = os.path.join(ROOT, "tools", "examples")
SHIPPED_EXEC = "/opt/metavsr/.venv/bin/metavsr"
EXEC_START = f"{SHIPPED_EXEC} serve --config /etc/metavsr/%i.toml"


def _settings() -> dict[str, list[str]]:
    """Key -> values of the unit's [Service] and [Unit] sections (a key may repeat)."""
    settings: dict[str, list[str]] = {}
    with open(UNIT) as unit:
        for line in unit:
            line = line.strip()
            if line and not line.startswith(("#", "[")):
                key, _, value = line.partition("=")
                settings.setdefault(key, []).append(value)
    return settings


def _seconds(text: str) -> float:
    units = {"min": 60, "s": 1}
    for suffix, factor in units.items():
        if text.endswith(suffix):
            return float(text[:-len(suffix)]) * factor
    return float(text)


def test_shipped_unit_has_the_required_settings():
    settings = _settings()
    required = {
        "Type": "notify", "NotifyAccess": "main", "Restart": "on-failure",
        "User": "metavsr", "Group": "metavsr", "KillMode": "mixed", "KillSignal": "SIGTERM",
        "ProtectSystem": "strict", "ReadWritePaths": "/var/lib/metavsr/%i",
        "ProtectHome": "yes", "NoNewPrivileges": "yes", "PrivateTmp": "yes",
        "ExecStart": EXEC_START, "SystemCallFilter": "@system-service",
    }
    for key, value in required.items():
        assert settings.get(key) == [value], key
    for key in ("WatchdogSec", "RestartSec", "TimeoutStopSec", "TimeoutStartSec", "LimitNOFILE"):
        assert len(settings.get(key, [])) == 1, key
    # A refused config or data dir (serve's exit 78) is not restarted in a loop.
    assert settings["RestartPreventExitStatus"] == [str(serve.EXIT_CONFIG)]
    # sched_setaffinity is in @resources: the [cpu] pinning needs it.
    assert not any("@resources" in v for v in settings["SystemCallFilter"])


def test_unit_bounds_agree_with_the_supervisor():
    settings = _settings()
    # The supervisor stops pinging after HEARTBEAT_STALL_S; the watchdog must not fire first.
    assert _seconds(settings["WatchdogSec"][0]) > 2 * supervisor.HEARTBEAT_STALL_S
    # Its own stop bound (roles, then kill and join) must end before systemd's SIGKILL.
    assert _seconds(settings["TimeoutStopSec"][0]) > supervisor.STOP_TIMEOUT_S + 5
    assert _seconds(settings["TimeoutStartSec"][0]) > supervisor.READY_TIMEOUT_S
    assert int(settings["LimitNOFILE"][0]) > 65_536  # limits.connections_max's top


def _verify(unit_dir, text: str) -> subprocess.CompletedProcess:
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze not installed (Debian: apt-get install -y systemd)")
    (unit_dir / "metavsr@.service").write_text(text)
    # An instance of the template, as systemctl would load it.
    return subprocess.run([analyze, "verify", str(unit_dir / "metavsr@replica-0.service")],
                          capture_output=True, text=True, timeout=120)


def test_systemd_analyze_verify_passes(tmp_path):
    # verify checks that ExecStart's program exists, so point it at this venv's metavsr.
    metavsr = os.path.join(os.path.dirname(sys.executable), "metavsr")
    assert os.access(metavsr, os.X_OK), f"{metavsr}: install metavsr in this venv (pip install -e .)"
    text = open(UNIT).read()
    assert text.count(SHIPPED_EXEC) == 1
    result = _verify(tmp_path, text.replace(SHIPPED_EXEC, metavsr))
    # verify exits 0 on unknown keys and bad values too; it only warns, so no warning either.
    complaints = [line for line in result.stderr.splitlines() + result.stdout.splitlines()
                  if "metavsr@" in line]
    assert result.returncode == 0 and not complaints, result.stderr


def test_systemd_analyze_verify_would_catch_a_mistake(tmp_path):
    metavsr = os.path.join(os.path.dirname(sys.executable), "metavsr")
    text = open(UNIT).read().replace(SHIPPED_EXEC, metavsr)
    result = _verify(tmp_path, text.replace("ProtectProc=invisible", "ProtectProc=everything"))
    assert "ProtectProc" in result.stderr or "protection mode" in result.stderr


@pytest.mark.parametrize("index", [0, 1, 2])
def test_example_configs_load(index):
    if not {0, 1} <= os.sched_getaffinity(0):
        pytest.skip("the examples pin to CPUs 0 and 1, which this process may not use")
    config = load(os.path.join(EXAMPLES, f"replica-{index}.toml"))
    first = load(os.path.join(EXAMPLES, "replica-0.toml"))
    assert config.replica == index
    assert (config.cluster_id, config.replicas) == (first.cluster_id, first.replicas)
    assert len({r.client_host for r in config.replicas}) == 3  # three hosts
    # The unit's instance name replica-N finds /etc/metavsr/replica-N.toml and may write here.
    assert config.data_dir == f"/var/lib/metavsr/replica-{index}"
    assert config.metrics_address.split(":")[0] == config.replicas[index].client_host
    tables, _ = cpu_plan.plan([0, 1], replicas=1)
    assert config.cpu == {role: tuple(cpus) for role, cpus in tables[0].items()}
