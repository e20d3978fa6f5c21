"""`metavsr serve --config replica.toml`: run one replica (the supervisor and its five roles).

Refuses a data dir that is missing or not formatted (a replica that lost its disk must not
rejoin as if new); creates the rings, forks the roles, and runs until SIGTERM/SIGINT (exit 0)
or a role failure (exit 1: fail-stop, systemd restarts it and recovery starts from disk).
"""

from __future__ import annotations

import argparse
import os
import sys

from core import config as config_mod
from core.roles import metrics, wiring
from core.roles.supervisor import RoleSpec, Supervisor
from core.storage.datadir import open_data_dir
from core.storage.errors import StorageError
from core.storage.journal_writer import ring_geometry_problem

HELP = "run one replica from its TOML config"
EXIT_CONFIG = 78  # EX_CONFIG: systemd's RestartPreventExitStatus can stop restart loops on it

ROLES = (
    RoleSpec("journal", "core.roles.journal:run"),
    RoleSpec("snapshot", "core.roles.snapshot:run"),
    RoleSpec("owner", "core.roles.owner:run"),
    RoleSpec("replication", "core.roles.replication:run"),
    RoleSpec("net", "core.roles.net:run"),
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", required=True, help="the replica's TOML config")


def run(args: argparse.Namespace) -> int:
    try:
        config = config_mod.load(args.config)
        superblock = open_data_dir(config.data_dir, cluster=config.cluster_id,
                                   replica=config.replica)
        count = superblock.state.replica_count
        slots = superblock.state.journal_slots
        superblock.close()
    except (config_mod.ConfigError, StorageError) as exc:
        print(f"metavsr serve: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    problem = ring_geometry_problem(slots, config.replication.checkpoint_interval,
                                    config.replication.pipeline_max)
    if problem:
        print(f"metavsr serve: {config.data_dir}: {problem}", file=sys.stderr)
        return EXIT_CONFIG
    if count != config.replica_count:
        print(f"metavsr serve: {config.data_dir} was formatted for {count} replicas, the config "
              f"names {config.replica_count}", file=sys.stderr)
        return EXIT_CONFIG
    geometry = wiring.geometry_of(config)

    def prepare():
        cleanup, event_fd = wiring.create(geometry)
        return cleanup, {"net_event_fd": event_fd}

    supervisor = Supervisor(
        cluster_id=config.cluster_id, replica=config.replica, roles=ROLES, cpu=config.cpu,
        log_level=config.log_level, settings={"config_path": os.path.abspath(args.config)},
        extra_counters=metrics.COUNTER_NAMES, prepare=prepare,
        status=metrics.status_line, joined=metrics.joined_view,
        metrics_address=config.metrics_address)
    return supervisor.run()
