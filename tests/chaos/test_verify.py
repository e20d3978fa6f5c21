"""The offline verdict of a chaos run on a real cluster's data dirs: equal digests at one op,
and an acknowledged write that is not in the state is reported."""

from __future__ import annotations

import os

from tests.integration.test_cluster import Cluster
from tools.chaos.verify import verify
from tools.check import Op


def acked(kind: str, names: str, line: int) -> Op:
    return Op(kind, names.split("/")[0], names, 0, 1, "ok", None, 0, 0, line)


def run_cluster(directory: str, work) -> list[str]:
    """Start a real 3-replica cluster, run work(cluster, client), stop it; its data dirs."""
    cluster = Cluster(directory)
    for index in range(3):
        cluster.start(index)
    try:
        client = cluster.client(timeout_s=1.0, deadline_s=30.0)
        work(cluster, client)
        client.close()
    finally:
        cluster.stop()
    return [os.path.join(cluster.directory, f"replica-{i}") for i in range(3)]


def test_replicas_replay_to_equal_digests_and_a_missing_acked_write_is_reported(tmp_path):
    def work(cluster, client):
        for i in range(30):
            client.create_stream(f"s{i}")
        client.create_topic("s0", "t", 1)
        client.delete_stream("s1")

    data_dirs = run_cluster(str(tmp_path / "cluster"), work)
    history = [acked("create_stream", f"s{i}", i) for i in range(30)]
    history += [acked("create_topic", "s0/t", 30), acked("delete_stream", "s1", 31)]
    result = verify(data_dirs, history)
    assert result.problems == [] and result.behind == [] and len(result.digests) == 3
    assert len(set(result.digests)) == 1 and result.acked_checked == 31  # s1's create skipped
    lost = verify(data_dirs, history + [acked("create_topic", "s2/never", 32),
                                        acked("delete_stream", "s3", 33)])
    assert len(lost.problems) == 2
    assert "s2/never" in lost.problems[0] and "s3" in lost.problems[1]


def test_a_replica_left_behind_is_not_taken_for_lost_writes(tmp_path):
    # Seen in CI: a stuck replica's short journal set the common op, and the writes after it
    # were reported as acknowledged-but-lost. They are looked up on the replica furthest ahead.
    def work(cluster, client):
        for i in range(5):
            client.create_stream(f"early{i}")
        cluster.kill(2)
        for i in range(20):
            client.create_stream(f"late{i}")

    data_dirs = run_cluster(str(tmp_path / "cluster"), work)
    history = [acked("create_stream", f"early{i}", i) for i in range(5)]
    history += [acked("create_stream", f"late{i}", 5 + i) for i in range(20)]
    result = verify(data_dirs, history)
    assert result.problems == [] and result.acked_checked == 25
    assert result.acked_op >= result.op + 20 and len(set(result.digests)) == 1
    lost = verify(data_dirs, history + [acked("create_stream", "never", 25)])
    assert len(lost.problems) == 1 and "never" in lost.problems[0]
