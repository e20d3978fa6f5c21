"""`metavsr cluster up`: a local cluster on loopback, for a first try and for tests.

The first run on a dir D creates the cluster: a random cluster id, a random root password in
D/credentials (mode 0600), a random cluster key in D/cluster.key (mode 0600; every replica's
config names it, and peers prove they hold it before they talk), one formatted data dir and one
TOML config per replica, and
D/cluster.json with the replicas' addresses (formats: tools/cluster_files.py). Every run then
starts one `metavsr serve` per replica, prints each replica's address, and prints `ready` once a
client can log in (a Register is a replicated op, so the cluster has a primary and commits).
It runs in the foreground until Ctrl-C or SIGTERM, which stop the replicas cleanly; running it
again on the same D resumes the same cluster with its data. With --demo S it runs the load
generator for S seconds once ready, prints its table, and stops.
"""

from __future__ import annotations

import argparse
import os
import secrets
import signal
import subprocess
import sys
import time

import orjson

from core import auth
from core.storage import datadir
from net.client import ClientError
from net.operations import MetadataClient
from tools import cluster_files
from tools.format import initial_state

HELP = "run a local cluster on 127.0.0.1 (created on first use, resumed after)"
READY_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 20.0
PEER_PORT_OFFSET = 100
METRICS_PORT_OFFSET = 200  # GET /metrics, which `metavsr status` reads too
ROOT_USERNAME = "iggy"
CLUSTER_KEY_FILE = "cluster.key"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="action", metavar="ACTION")
    sub.required = True
    up = sub.add_parser("up", help=HELP, description=HELP)
    up.add_argument("--replicas", type=int, default=3, choices=(1, 3, 5),
                    help="replica count when the cluster is created (default 3)")
    up.add_argument("--dir", default=cluster_files.DEFAULT_DIR,
                    help=f"cluster dir (default {cluster_files.DEFAULT_DIR})")
    up.add_argument("--base-port", type=int, default=3001,
                    help=f"client ports P, P+1, ...; peer ports P+{PEER_PORT_OFFSET}, ...; "
                         f"metrics ports P+{METRICS_PORT_OFFSET}, ...")
    up.add_argument("--journal", choices=("segmented", "ring"), default="segmented",
                    help="journal backend when the cluster is created")
    up.add_argument("--demo", type=float, metavar="SECONDS", default=0.0,
                    help="once ready, run the load generator this long, then stop")


def run(args: argparse.Namespace) -> int:
    directory = os.path.abspath(args.dir)
    configs = _create_or_resume(directory, args)
    processes = [_start(directory, index, config) for index, config in enumerate(configs)]
    stopping = []
    previous = {sig: signal.signal(sig, lambda *_: stopping.append(True))
                for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        addresses = cluster_files.cluster_addresses(directory)
        for index, (host, port) in enumerate(addresses):
            print(f"replica {index}: {host}:{port}", flush=True)
        if not _wait_ready(directory, addresses, processes, stopping):
            return 1
        print("ready", flush=True)
        if args.demo:
            return _demo(directory, args.demo)
        while not stopping:
            for index, process in enumerate(processes):
                if process.poll() is not None:
                    print(f"replica {index} exited with {process.returncode}; "
                          f"log: {_log_path(directory, index)}", file=sys.stderr, flush=True)
                    processes[index] = _start(directory, index, configs[index])
            time.sleep(0.2)
        return 0
    finally:
        _stop(processes)
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _create_or_resume(directory: str, args: argparse.Namespace) -> list[str]:
    cluster_path = os.path.join(directory, cluster_files.CLUSTER_FILE)
    if os.path.exists(cluster_path):
        document = orjson.loads(open(cluster_path, "rb").read())
        return [replica["config"] for replica in document["replicas"]]
    os.makedirs(directory, exist_ok=True)
    cluster_id = int.from_bytes(secrets.token_bytes(8), "little") | 1
    password = secrets.token_urlsafe(18)
    credentials = os.path.join(directory, cluster_files.CREDENTIALS_FILE)
    fd = os.open(credentials, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(f"username={ROOT_USERNAME}\npassword={password}\n")
    auth.write_cluster_key(os.path.join(directory, CLUSTER_KEY_FILE))
    sections = initial_state(cluster_id, password)
    replicas = []
    for index in range(args.replicas):
        data_dir = os.path.join(directory, f"replica-{index}")
        datadir.format_data_dir(data_dir, cluster=cluster_id, replica=index,
                                replica_count=args.replicas, journal_backend=args.journal,
                                initial_sections=sections)
        replicas.append({"client": f"127.0.0.1:{args.base_port + index}",
                         "peer": f"127.0.0.1:{args.base_port + PEER_PORT_OFFSET + index}",
                         "metrics": f"127.0.0.1:{args.base_port + METRICS_PORT_OFFSET + index}",
                         "data_dir": data_dir,
                         "config": os.path.join(directory, f"replica-{index}.toml")})
    for index, replica in enumerate(replicas):
        with open(replica["config"], "w") as out:
            out.write(_config_text(cluster_id, index, replica["data_dir"], replicas,
                                   args.journal))
    # Written last: its presence means the cluster exists (a half-created dir is refused).
    with open(cluster_path + ".partial", "wb") as out:
        out.write(orjson.dumps({"cluster_id": cluster_id, "replicas": replicas},
                               option=orjson.OPT_INDENT_2))
    os.replace(cluster_path + ".partial", cluster_path)
    print(f"created cluster {cluster_id} in {directory}; root credentials in {credentials}, "
          f"cluster key in {os.path.join(directory, CLUSTER_KEY_FILE)}", flush=True)
    return [replica["config"] for replica in replicas]


RING_CHECKPOINT_INTERVAL = 2048


def _config_text(cluster_id: int, index: int, data_dir: str, replicas: list[dict],
                 journal: str) -> str:
    lines = [f"cluster_id = {cluster_id}", f"replica = {index}", f'data_dir = "{data_dir}"',
             'log_level = "info"', f'metrics_address = "{replicas[index]["metrics"]}"', ""]
    for replica in replicas:
        lines += ["[[replicas]]", f'client = "{replica["client"]}"',
                  f'peer = "{replica["peer"]}"', ""]
    lines += ["[shm]", "ring_size_bytes = 4194304", ""]
    lines += ["[security]", f'cluster_key_file = "{CLUSTER_KEY_FILE}"', ""]
    if journal == "ring":
        # The ring format holds RING_SLOTS_DEFAULT slots: checkpoints often enough to fit it.
        lines += ["[journal]", 'backend = "ring"', f"ring_slots = {datadir.RING_SLOTS_DEFAULT}",
                  "", "[replication]", f"checkpoint_interval = {RING_CHECKPOINT_INTERVAL}", ""]
    return "\n".join(lines)


def _log_path(directory: str, index: int) -> str:
    return os.path.join(directory, f"replica-{index}.log")


def _start(directory: str, index: int, config: str) -> subprocess.Popen:
    log = open(_log_path(directory, index), "ab")
    return subprocess.Popen([sys.executable, "-m", "tools.cli", "serve", "--config", config],
                            stdout=log, stderr=log, stdin=subprocess.DEVNULL,
                            start_new_session=True)


def _wait_ready(directory: str, addresses, processes, stopping) -> bool:
    username, password = cluster_files.read_credentials(directory)
    deadline = time.monotonic() + READY_TIMEOUT_S
    while time.monotonic() < deadline and not stopping:
        client = MetadataClient(addresses, timeout_s=1.0, deadline_s=2.0)
        try:
            client.login(username, password)
            client.logout()
            return True
        except (ClientError, OSError):
            time.sleep(0.2)
        finally:
            client.close()
    print(f"the cluster did not accept a login within {READY_TIMEOUT_S:.0f} s; logs: "
          f"{directory}/replica-*.log", file=sys.stderr)
    return False


def _demo(directory: str, seconds: float) -> int:
    return subprocess.call([sys.executable, "-m", "tools.cli", "loadgen", "--dir", directory,
                            "--processes", "1", "--clients", "8", "--duration", str(seconds)])


def _stop(processes: list[subprocess.Popen]) -> None:
    for process in processes:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + STOP_TIMEOUT_S
    for process in processes:
        try:
            process.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
