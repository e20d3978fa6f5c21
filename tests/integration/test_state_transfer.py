"""A backup that was down while the others checkpointed and released their journal prefix
catches up by state transfer (real processes, real files, real sockets).

The cluster checkpoints every 128 ops and keeps only 64 ops of journal below a checkpoint, so a
few hundred writes while one backup is down leave no peer journal holding what it missed.
"""

from __future__ import annotations

import glob
import os
import time
import urllib.request

import orjson

from net.client import ClientError
from net.operations import MetadataClient
from tests.integration.test_cluster import Cluster

CHECKPOINT_INTERVAL = 128
RETENTION_OPS = 64
WRITES_WHILE_DOWN = 4 * CHECKPOINT_INTERVAL
CATCH_UP_TIMEOUT_S = 60.0


def _small_checkpoints(config_path: str) -> None:
    with open(config_path, "a") as out:
        out.write(f"\n[replication]\ncheckpoint_interval = {CHECKPOINT_INTERVAL}\n"
                  f"\n[journal]\nretention_ops = {RETENTION_OPS}\n")


def _log_events(directory: str, index: int, event: str) -> list[str]:
    with open(os.path.join(directory, f"replica-{index}.log"), errors="replace") as log:
        return [line for line in log if f'"{event}"' in line]


def _listing(cluster: Cluster, index: int, client: MetadataClient) -> tuple:
    """What replica `index` has applied, read from it alone (stale read)."""
    replica = MetadataClient([cluster.addresses[index]], timeout_s=1.0, deadline_s=30.0)
    replica.session, replica.client_id, replica.user_id = (
        client.session, client.client_id, client.user_id)
    try:
        streams = replica.get_streams(stale=True)
        return tuple(sorted((s.name, s.topics_count) for s in streams))
    finally:
        replica.close()


def _linearizable_listing(client: MetadataClient) -> tuple:
    """What the cluster has committed (a stale read of a backup may lag behind it)."""
    return tuple(sorted((s.name, s.topics_count) for s in client.get_streams()))


def _figures(cluster: Cluster, index: int) -> str:
    """The replica's op figures from its /metrics (to explain a failure)."""
    served = _log_events(cluster.directory, index, "metrics_serving")
    if not served:
        return "no metrics"
    port = orjson.loads(served[-1])["port"]
    try:
        text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read()
    except OSError as error:
        return f"metrics unreachable: {error}"
    return ", ".join(line for line in text.decode().splitlines()
                     if line.startswith(("metavsr_op ", "metavsr_commit_op ",
                                         "metavsr_applied_op ", "metavsr_checkpoint_op ")))


def test_a_backup_behind_released_journals_catches_up_by_state_transfer(tmp_path):
    cluster = Cluster(str(tmp_path / "cluster"))
    for config in cluster.configs:
        _small_checkpoints(config)
    try:
        for index in range(3):
            cluster.start(index)
        client = cluster.client(timeout_s=2.0, deadline_s=30.0)
        client.create_stream("before")
        backup = (cluster.primary(client) + 1) % 3
        cluster.kill(backup)

        acked = []
        for i in range(WRITES_WHILE_DOWN):
            acked.append(client.create_stream(f"while-down-{i}").name)
        client.create_topic("while-down-0", "events", 2)
        # The live replicas checkpointed past what the backup has and released the ops below.
        live = [i for i in range(3) if i != backup]
        deadline = time.monotonic() + CATCH_UP_TIMEOUT_S
        while not all(_log_events(cluster.directory, i, "checkpoint_written")
                      and len(_log_events(cluster.directory, i, "checkpoint_written")) >= 3
                      for i in live):
            assert time.monotonic() < deadline, "the live replicas never checkpointed"
            time.sleep(0.1)

        cluster.start(backup)
        expected = _linearizable_listing(client)
        assert {name for name, _ in expected} >= set(acked) | {"before"}
        deadline = time.monotonic() + CATCH_UP_TIMEOUT_S
        while True:
            try:
                last = _listing(cluster, backup, client)
                if last == expected:
                    break
                last = sorted(set(expected) ^ set(last))
            except (ClientError, OSError) as error:  # not caught up: the session is unknown there
                last = error
            assert time.monotonic() < deadline, (
                f"backup {backup} never caught up (last: {last!r}; {_figures(cluster, backup)}); "
                f"see {cluster.directory}/replica-{backup}.log")
            time.sleep(0.2)

        # It got there by state transfer, not by replaying a journal.
        assert _log_events(cluster.directory, backup, "state_transfer_installed")
        snapshots = os.path.join(cluster.directory, f"replica-{backup}", "snapshots")
        assert not glob.glob(os.path.join(snapshots, "receive-*")), "a .part file was left"

        # It takes part again: a new write reaches it, and it survives a restart from its
        # installed checkpoint plus the journal written after it.
        client.create_stream("after")
        cluster.kill(backup)
        cluster.start(backup)
        expected = _linearizable_listing(client)
        deadline = time.monotonic() + CATCH_UP_TIMEOUT_S
        while True:
            try:
                listing = _listing(cluster, backup, client)
            except (ClientError, OSError):
                listing = None
            if listing == expected:
                break
            assert time.monotonic() < deadline, f"backup {backup} lost state after restart"
            time.sleep(0.2)
        assert ("after", 0) in expected
    finally:
        cluster.stop()
