"""The chaos cluster: 3 replicas, each in its own network namespace behind the proxy, and the
faults done to their processes and disks.

Owns creating the cluster (files as `metavsr cluster up` makes them; the disk-full replica's
data dir on a size-limited tmpfs mounted before formatting), the replica processes (started
with `ip netns exec`, each its own process group, every pid remembered), kill -9 / SIGSTOP /
SIGCONT of a whole replica or one role, filling and freeing the tmpfs, the proxy's links, and
the teardown that proves no process is left behind. Never decides when a fault happens
(nemesis.py) or checks results (verify.py).
"""

from __future__ import annotations

import argparse
import errno
import os
import shutil
import signal
import subprocess
import sys
import time

import orjson

from tools import cluster as cluster_tool
from tools import cluster_files
from tools.chaos import netns
from tools.chaos.proxy import Proxy
from tools.ports import free_ports

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
REPLICAS = 3
STOP_TIMEOUT_S = 20.0
FILL_CHUNK_BYTES = 1 << 20
ROLE_PIDS_TIMEOUT_S = 10.0


class ChaosCluster:
    def __init__(self, directory: str, disk_full_replica: int | None, tmpfs_bytes: int,
                 checkpoint_interval: int | None = None):
        self.directory = os.path.abspath(directory)
        self.tag = f"mvchaos-{os.getpid()}"
        self.namespaces = [f"{self.tag}-{i}" for i in range(REPLICAS)]
        self.processes: list[subprocess.Popen | None] = [None] * REPLICAS
        self.started_pids: list[int] = []
        self.stopped: set[int] = set()  # replicas SIGSTOPped as a whole
        self.stopped_roles: list[int] = []
        self.mounted: str | None = None
        self.disk_full_replica = disk_full_replica
        self.filler: str | None = None
        self.proxy = Proxy()
        self.configs: list[str] = []
        try:
            self._create(tmpfs_bytes, checkpoint_interval)
        except BaseException:
            self.close()  # nothing half-made stays behind: namespaces, mount, listeners
            raise

    def _create(self, tmpfs_bytes: int, checkpoint_interval: int | None) -> None:
        disk_full_replica = self.disk_full_replica
        os.makedirs(self.directory, exist_ok=True)
        if os.path.exists(os.path.join(self.directory, cluster_files.CLUSTER_FILE)):
            raise RuntimeError(f"{self.directory} already holds a cluster; chaos needs a fresh dir")
        if disk_full_replica is not None:
            data_dir = os.path.join(self.directory, f"replica-{disk_full_replica}")
            os.makedirs(data_dir)
            out = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={tmpfs_bytes}",
                                  "tmpfs", data_dir], capture_output=True, text=True)
            if out.returncode != 0:
                raise RuntimeError(f"mount tmpfs on {data_dir}: {out.stderr.strip()} "
                                   "(disk-full needs root; leave it out of --faults)")
            self.mounted = data_dir
        args = argparse.Namespace(replicas=REPLICAS, base_port=free_ports(list(range(REPLICAS))),
                                  journal="segmented")
        self.configs = cluster_tool._create_or_resume(self.directory, args)
        if checkpoint_interval is not None:
            for config in self.configs:
                with open(config, "a") as out:
                    out.write(f"\n[replication]\ncheckpoint_interval = {checkpoint_interval}\n")
        document = orjson.loads(open(os.path.join(self.directory, cluster_files.CLUSTER_FILE),
                                     "rb").read())
        self.replicas = document["replicas"]
        self.addresses = cluster_files.cluster_addresses(self.directory)
        self.credentials = cluster_files.read_credentials(self.directory)
        for name in self.namespaces:
            netns.create(name)
        for j, replica in enumerate(self.replicas):
            client = _address(replica["client"])
            peer = _address(replica["peer"])
            self.proxy.add_link(f"client->{j}", None, client, self.namespaces[j], client)
            for i in range(REPLICAS):
                if i != j:
                    self.proxy.add_link(f"{i}->{j}", self.namespaces[i], peer,
                                        self.namespaces[j], peer)
        self.proxy.start()

    # --- processes ------------------------------------------------------------------------

    def log_path(self, index: int) -> str:
        return os.path.join(self.directory, f"replica-{index}.log")

    def start(self, index: int) -> None:
        assert not self.alive(index), f"replica {index} is already running"
        with open(self.log_path(index), "ab") as log:
            process = subprocess.Popen(
                netns.exec_prefix(self.namespaces[index])
                + [sys.executable, "-m", "tools.cli", "serve", "--config", self.configs[index]],
                cwd=ROOT, stdout=log, stderr=log, stdin=subprocess.DEVNULL,
                start_new_session=True)
        self.processes[index] = process
        self.started_pids.append(process.pid)

    def wait_gone(self, index: int, timeout_s: float) -> list[int]:
        """Wait until no process is left in the replica's namespace (after a kill of its
        supervisor its roles die by PDEATHSIG, a moment later); the pids still there."""
        self.processes[index].wait(timeout=timeout_s)
        deadline = time.monotonic() + timeout_s
        while (left := netns.pids(self.namespaces[index])) and time.monotonic() < deadline:
            time.sleep(0.05)
        return left

    def alive(self, index: int) -> bool:
        process = self.processes[index]
        return process is not None and process.poll() is None

    def exit_code(self, index: int) -> int | None:
        process = self.processes[index]
        return None if process is None else process.poll()

    def role_pids(self, index: int) -> dict[int, str]:
        """pid -> role name of the running replica's roles (empty while it starts)."""
        process = self.processes[index]
        out = subprocess.run(["pgrep", "-P", str(process.pid)], capture_output=True, text=True)
        pids = {int(pid) for pid in out.stdout.split()}
        names = {}
        with open(self.log_path(index), "rb") as log:
            for line in log:
                if line.startswith(b"{") and b'"role_spawned"' in line:
                    entry = orjson.loads(line)
                    if entry.get("pid") in pids:
                        names[entry["pid"]] = entry.get("role_name", "role")
        return {pid: names.get(pid, "role") for pid in pids}

    def kill_group(self, index: int) -> None:
        """kill -9 of every process of the replica at once (a crash of its machine)."""
        process = self.processes[index]
        _signal_group(process.pid, signal.SIGKILL)
        process.wait(timeout=STOP_TIMEOUT_S)
        self.stopped.discard(index)

    def kill_pid(self, pid: int) -> None:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass

    def pause_group(self, index: int) -> None:
        _signal_group(self.processes[index].pid, signal.SIGSTOP)
        self.stopped.add(index)

    def pause_pid(self, pid: int) -> None:
        os.kill(pid, signal.SIGSTOP)
        self.stopped_roles.append(pid)

    def resume_all(self) -> None:
        for index in list(self.stopped):
            if self.alive(index):
                _signal_group(self.processes[index].pid, signal.SIGCONT)
        self.stopped.clear()
        for pid in self.stopped_roles:
            try:
                os.kill(pid, signal.SIGCONT)
            except ProcessLookupError:
                pass
        self.stopped_roles.clear()

    # --- disk -----------------------------------------------------------------------------

    def fill_disk(self) -> int:
        """Fill the tmpfs of the disk-full replica; returns the bytes written."""
        assert self.mounted is not None
        self.filler = os.path.join(self.mounted, "chaos-filler")
        written = 0
        chunk = b"\0" * FILL_CHUNK_BYTES
        with open(self.filler, "wb", buffering=0) as out:
            while True:
                try:
                    written += out.write(chunk)
                except OSError as exc:
                    if exc.errno != errno.ENOSPC:
                        raise
                    break
        return written

    def free_disk(self) -> None:
        if self.filler is not None and os.path.exists(self.filler):
            os.remove(self.filler)
        self.filler = None

    # --- teardown -------------------------------------------------------------------------

    def stop(self) -> list[int | None]:
        """SIGTERM every running replica (after SIGCONT); their exit codes."""
        self.resume_all()
        for process in self.processes:
            if process is not None and process.poll() is None:
                process.send_signal(signal.SIGTERM)
        codes = []
        deadline = time.monotonic() + STOP_TIMEOUT_S
        for process in self.processes:
            if process is None:
                codes.append(None)
                continue
            try:
                codes.append(process.wait(timeout=max(0.1, deadline - time.monotonic())))
            except subprocess.TimeoutExpired:
                _signal_group(process.pid, signal.SIGKILL)
                codes.append(process.wait())
        return codes

    def leftovers(self) -> dict[str, list[int]]:
        """Processes still alive in the replicas' namespaces or started by us."""
        found = {name: netns.pids(name) for name in self.namespaces}
        found["started"] = [pid for pid in self.started_pids if _exists(pid)]
        return {name: pids for name, pids in found.items() if pids}

    def close(self) -> None:
        """Tear down whatever is left: processes, proxy, namespaces, the tmpfs."""
        for process in self.processes:
            if process is not None and process.poll() is None:
                _signal_group(process.pid, signal.SIGCONT)
                _signal_group(process.pid, signal.SIGKILL)
                process.wait()
        self.proxy.stop()
        for name in self.namespaces:
            for pid in netns.pids(name):  # never expected; killed so the namespace can go
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            netns.delete(name)
        if self.mounted is not None:
            self.free_disk()
            # The tmpfs goes with the unmount: keep a copy for the post-mortem.
            shutil.copytree(self.mounted, self.mounted + ".saved", dirs_exist_ok=True)
            subprocess.run(["umount", self.mounted], capture_output=True)
            self.mounted = None


def _address(text: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    return host, int(port)


def _signal_group(pgid: int, sig: int) -> None:
    try:
        os.killpg(pgid, sig)
    except ProcessLookupError:
        pass


def _exists(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().split(")")[-1].split()[0] != "Z"
    except OSError:
        return False
