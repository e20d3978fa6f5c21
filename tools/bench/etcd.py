"""A local 3-member etcd on 127.0.0.1 for `metavsr bench cluster --vs etcd`.

Owns finding the etcd binary (with the install command when it is missing), starting the
members with fresh data dirs under a directory the caller owns, waiting until they have a
leader, naming the leader's client address, and stopping every member (tools/bench/local.py).
etcd runs with its defaults, fsync on: the comparison is with a durable store.
"""

from __future__ import annotations

import http.client
import os
import secrets
import shutil
import subprocess
import time

import orjson

from tools.bench import local
from tools.ports import free_ports

INSTALL_HINT = ("install it with: apt-get update && apt-get install -y etcd-server "
                "(the Debian package of etcd, which provides /usr/bin/etcd)")
READY_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 15.0
STATUS_TIMEOUT_S = 2.0
PEER_OFFSET = 50  # member i: client port B + i, peer port B + PEER_OFFSET + i


class EtcdMissing(Exception):
    """No etcd binary; the message says how to install it."""


class EtcdFailed(Exception):
    """The members did not come up; the message names their logs."""


def find_binary(path: str | None = None) -> str:
    """The etcd binary on `path` (default: $PATH), or EtcdMissing saying how to install it."""
    binary = shutil.which("etcd", path=path)
    if binary is None:
        raise EtcdMissing(f"etcd is not installed (no `etcd` on PATH); {INSTALL_HINT}")
    return binary


def status(address: tuple[str, int]) -> dict:
    """The member's /v3/maintenance/status answer (raises OSError or ValueError)."""
    connection = http.client.HTTPConnection(*address, timeout=STATUS_TIMEOUT_S)
    try:
        connection.request("POST", "/v3/maintenance/status", body=b"{}",
                           headers={"Content-Type": "application/json"})
        response = connection.getresponse()
        body = response.read()
        if response.status != 200:
            raise ValueError(f"status {response.status}")
        return orjson.loads(body)
    finally:
        connection.close()


class EtcdCluster:
    def __init__(self, binary: str, directory: str, members: int = 3):
        self.binary = binary
        self.directory = directory
        self.members = members
        base = free_ports([*range(members), *range(PEER_OFFSET, PEER_OFFSET + members)])
        self.clients = [("127.0.0.1", base + i) for i in range(members)]
        self.peers = [("127.0.0.1", base + PEER_OFFSET + i) for i in range(members)]
        self.processes: list[subprocess.Popen] = []

    def start(self) -> None:
        token = f"bench-{secrets.token_hex(4)}"
        initial = ",".join(f"m{i}=http://{h}:{p}" for i, (h, p) in enumerate(self.peers))
        for i in range(self.members):
            client = "http://{}:{}".format(*self.clients[i])
            peer = "http://{}:{}".format(*self.peers[i])
            with open(os.path.join(self.directory, f"etcd-m{i}.log"), "ab") as log:
                self.processes.append(subprocess.Popen(
                    [self.binary, "--name", f"m{i}",
                     "--data-dir", os.path.join(self.directory, f"etcd-m{i}"),
                     "--listen-client-urls", client, "--advertise-client-urls", client,
                     "--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer,
                     "--initial-cluster", initial, "--initial-cluster-state", "new",
                     "--initial-cluster-token", token],
                    stdout=log, stderr=log, stdin=subprocess.DEVNULL, start_new_session=True))

    def wait_leader(self, timeout_s: float = READY_TIMEOUT_S) -> tuple[str, int]:
        """Wait until every member answers and names the same leader; its client address."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            for i, process in enumerate(self.processes):
                if process.poll() is not None:
                    raise EtcdFailed(f"etcd member m{i} exited with {process.returncode}; "
                                     f"log: {self.directory}/etcd-m{i}.log")
            try:
                answers = [status(address) for address in self.clients]
            except (OSError, ValueError):
                time.sleep(0.2)
                continue
            leaders = {answer.get("leader") for answer in answers}
            if len(leaders) == 1 and None not in leaders and "0" not in leaders:
                leader = leaders.pop()
                for address, answer in zip(self.clients, answers):
                    if answer["header"]["member_id"] == leader:
                        return address
            time.sleep(0.2)
        raise EtcdFailed(f"etcd has no leader after {timeout_s:.0f} s; logs: "
                         f"{self.directory}/etcd-m*.log")

    def version(self) -> str:
        return str(status(self.clients[0]).get("version", "?"))

    def stop(self) -> None:
        local.stop_all(self.processes, STOP_TIMEOUT_S)
