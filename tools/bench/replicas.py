"""A metavsr cluster a benchmark owns: created in a fresh dir, started, found, stopped.

Exists so `bench cluster` and `bench scale` run the same local cluster `metavsr cluster up`
runs (tools/cluster.py's creation, configs and `metavsr serve` processes), on free ports, and
always stop it (tools/bench/local.py). `bench scale` starts from a catalogue it built: the
replicas' data dirs are then formatted again with that state as their op-0 checkpoint, which
is how the root user's state reaches a new cluster too (core/storage/datadir.format_data_dir).
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
from collections.abc import Callable

import orjson

from core.storage import datadir
from net import iggy
from net.client import ClientError, _parse_roster
from net.iggy import Code
from net.operations import MetadataClient
from tools import cluster as cluster_tool
from tools import cluster_files
from tools.bench import BenchError, local
from tools.ports import free_ports

STOP_TIMEOUT_S = 20.0
ROLES = ("net", "replication", "journal", "owner", "snapshot")

# (cluster id, root password) -> the replicas' initial checkpoint sections.
Sections = Callable[[int, str], dict]


class MetavsrCluster:
    def __init__(self, directory: str, replicas: int = 3, journal: str = "segmented"):
        self.directory = directory
        self.replicas = replicas
        self.journal = journal
        self.processes: list[subprocess.Popen] = []
        self.configs: list[str] = []
        self.addresses: list[tuple[str, int]] = []
        self.cluster_id = 0

    def create(self, sections: Sections | None = None) -> None:
        """Create the cluster as `cluster up` does; with `sections`, then re-format every data
        dir with the state it builds (same cluster id, replica, backend), so only the initial
        state differs from a cluster `cluster up` made."""
        offsets = []
        for offset in (0, cluster_tool.PEER_PORT_OFFSET, cluster_tool.METRICS_PORT_OFFSET):
            offsets += range(offset, offset + self.replicas)
        args = argparse.Namespace(replicas=self.replicas, base_port=free_ports(offsets),
                                  journal=self.journal)
        self.configs = cluster_tool._create_or_resume(self.directory, args)
        self.addresses = cluster_files.cluster_addresses(self.directory)
        with open(os.path.join(self.directory, cluster_files.CLUSTER_FILE), "rb") as source:
            document = orjson.loads(source.read())
        self.cluster_id = document["cluster_id"]
        if sections is None:
            return
        initial = sections(self.cluster_id, self.credentials()[1])
        for index, replica in enumerate(document["replicas"]):
            shutil.rmtree(replica["data_dir"])
            datadir.format_data_dir(replica["data_dir"], cluster=self.cluster_id, replica=index,
                                    replica_count=self.replicas, journal_backend=self.journal,
                                    initial_sections=initial)

    def start(self) -> None:
        """Start every replica and wait until a client can log in (BenchError if not)."""
        for index, config in enumerate(self.configs):
            self.processes.append(cluster_tool._start(self.directory, index, config))
        if not cluster_tool._wait_ready(self.directory, self.addresses, self.processes, []):
            raise BenchError(f"the metavsr cluster did not start; logs: "
                             f"{self.directory}/replica-*.log")

    def credentials(self) -> tuple[str, str]:
        return cluster_files.read_credentials(self.directory)

    def login_body(self) -> bytes:
        return iggy.login_body(*self.credentials())

    def primary(self) -> int:
        """The index of the replica the roster names as leader."""
        client = MetadataClient(list(self.addresses), timeout_s=2.0, deadline_s=10.0)
        try:
            client.login(*self.credentials())
            roster = _parse_roster(client.read(Code.GET_CLUSTER_METADATA))
            client.logout()
        except ClientError as exc:
            raise BenchError(f"cannot read the roster: {exc}") from None
        finally:
            client.close()
        for node in roster:
            if node.leader:
                return self.addresses.index((node.ip, node.tcp_port))
        raise BenchError("the roster names no leader")

    def role_pids(self, index: int) -> dict[str, int]:
        """Role name -> pid of replica `index`'s current run (from its supervisor's log)."""
        pids: dict[str, int] = {}
        with open(os.path.join(self.directory, f"replica-{index}.log"), "rb") as log:
            for line in log:
                if b"role_spawned" not in line:
                    continue
                try:
                    event = orjson.loads(line)
                except orjson.JSONDecodeError:
                    continue
                if event.get("event") == "role_spawned":
                    pids[event["role_name"]] = event["pid"]  # a later run replaces earlier
        return pids

    def stop(self) -> None:
        local.stop_all(self.processes, STOP_TIMEOUT_S)
