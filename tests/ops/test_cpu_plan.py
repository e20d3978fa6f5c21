"""`metavsr cpu-plan`: its tables parse as TOML and pass the config's [cpu] validation on this
machine, the placement keeps the busiest ring pairs apart on any number of CPUs, and a
supervisor given the planned table pins every role to it (read back from /proc)."""

from __future__ import annotations

import contextlib
import io
import json
import os
import signal
import tomllib

import pytest

from core.config import ROLES, parse
from core.roles.wiring import ROLES as ROLE_PROCESSES
from tests.ops.metric_roles import start_supervisor, wait_for_event
from tools import cli
from tools.cpu_plan import HOT_ROLES, plan

REPLICA_SECTION = "# --- replica "


def _cpu_plan(*argv: str) -> tuple[int, str]:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = cli.main(["cpu-plan", *argv])
    return code, out.getvalue()


def _config_with(cpu: dict) -> dict:
    return {"cluster_id": 1, "replica": 0, "data_dir": "/var/lib/metavsr/replica-0",
            "replicas": [{"client": "127.0.0.1:8090", "peer": "127.0.0.1:8091"}], "cpu": cpu}


@pytest.mark.parametrize("replicas", [1, 2, 3])
def test_printed_tables_parse_and_pass_config_validation(replicas):
    code, text = _cpu_plan("--replicas", str(replicas))
    assert code == 0
    header, *sections = text.split(REPLICA_SECTION)
    assert len(sections) == replicas
    assert header.strip() and all(line.startswith("#") for line in header.strip().splitlines())
    available = os.sched_getaffinity(0)
    for section in sections:
        document = tomllib.loads("# " + section)
        assert set(document) == {"cpu"} and set(document["cpu"]) == set(ROLES)
        config = parse(_config_with(document["cpu"]))
        assert {cpu for cpus in config.cpu.values() for cpu in cpus} <= available
    if replicas == 1:
        assert tomllib.loads(text) == document  # one replica: the whole output is the table


def test_an_oversubscribed_host_is_told_to_leave_pinning_out():
    from tools.cpu_plan import render
    assert "leave [cpu] out" in render([0, 1], 3)
    assert "leave [cpu] out" not in render(list(range(16)), 1)


def test_bad_replica_count_is_refused():
    assert _cpu_plan("--replicas", "0")[0] == 2
    assert _cpu_plan("--replicas", "8")[0] == 2


@pytest.mark.parametrize("cpu_count", range(1, 17))
@pytest.mark.parametrize("replicas", range(1, 8))
def test_placement_on_any_number_of_cpus(cpu_count, replicas):
    cpus = [2 * i + 1 for i in range(cpu_count)]  # odd, not from 0: only the given CPUs are used
    tables, loadgen = plan(cpus, replicas)
    assert len(tables) == replicas and loadgen and set(loadgen) <= set(cpus)
    claimed: list[set[int]] = []
    for table in tables:
        assert set(table) == set(ROLES)
        assert all(len(table[role]) == 1 for role in HOT_ROLES)
        own = {cpu for role_cpus in table.values() for cpu in role_cpus}
        assert own <= set(cpus)
        assert table["supervisor"] == table["snapshot"] == sorted(own)  # cold roles float
        if len(own) >= 2:  # the busiest pairs on different cores
            assert table["net"] != table["replication"]
            assert table["replication"] != table["journal"]
        if len(own) >= 4:
            assert len({table[role][0] for role in HOT_ROLES}) == 4
        claimed.append(own)
    if cpu_count - 1 >= replicas and cpu_count > 2:  # enough CPUs: nobody shares
        everything = claimed + [set(loadgen)]
        assert sum(map(len, everything)) == len(set().union(*everything))
    if cpu_count <= 2 and replicas > 1:  # sharing: hot roles rotated, not stacked
        assert len({table["net"][0] for table in tables}) == cpu_count


def _allowed_cpus(pid: int) -> list[int]:
    with open(f"/proc/{pid}/status") as status:
        text = next(line for line in status if line.startswith("Cpus_allowed_list:"))
    cpus: list[int] = []
    for part in text.split(":")[1].strip().split(","):
        low, _, high = part.partition("-")
        cpus.extend(range(int(low), int(high or low) + 1))
    return cpus


def test_supervisor_pins_every_role_to_the_planned_table(tmp_path):
    table = plan(sorted(os.sched_getaffinity(0)), replicas=1)[0][0]
    cpu = {role: tuple(cpus) for role, cpus in table.items()}
    process, log_path = start_supervisor(tmp_path, 9204, "", roles=ROLE_PROCESSES, cpu=cpu)
    try:
        wait_for_event(log_path, "replica_ready")
        spawned = {}
        with open(log_path) as log_file:
            for line in log_file:
                if '"event":"role_spawned"' in line:
                    event = json.loads(line)
                    spawned[event["role_name"]] = event["pid"]
        assert set(spawned) == set(ROLE_PROCESSES)
        for role, pid in spawned.items():
            assert _allowed_cpus(pid) == table[role], role
        assert _allowed_cpus(process.pid) == table["supervisor"]
    finally:
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=30) == 0
