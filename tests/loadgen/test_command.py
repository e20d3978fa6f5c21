"""loadgen's command line: where the cluster and credentials come from, bounds, --ops shares."""

from __future__ import annotations

import argparse
import os

import pytest

from net import iggy
from tools.cluster_files import ClusterFilesError
from tools.loadgen import command, coordinator, mix
from tools.loadgen.command import UsageError, _config
from tools.loadgen.worker import WorkerConfig


def parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    command.add_arguments(parser)
    return parser.parse_args(argv)


@pytest.fixture
def cluster_dir(tmp_path, monkeypatch):
    monkeypatch.delenv("METAVSR_USERNAME", raising=False)
    monkeypatch.delenv("METAVSR_PASSWORD", raising=False)
    (tmp_path / "cluster.json").write_text(
        '{"replicas": [{"client": "127.0.0.1:3001"}, {"client": "127.0.0.1:3002"}]}')
    credentials = tmp_path / "credentials"
    credentials.write_text("username=root\npassword=s3cret\n")
    os.chmod(credentials, 0o600)
    return str(tmp_path)


def test_local_cluster_files_are_the_default(cluster_dir):
    config = _config(parse("--dir", cluster_dir, "--processes", "2", "--clients", "3"), mix)
    assert config.addresses == (("127.0.0.1", 3001), ("127.0.0.1", 3002))
    assert config.login_body == iggy.login_body("root", "s3cret")
    assert "s3cret" not in repr(config)
    assert (config.duration_s, config.ops, config.rate) == (command.DURATION_DEFAULT_S, None, None)


def test_flags_and_environment_come_before_the_files(cluster_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("METAVSR_USERNAME", "alice")
    monkeypatch.setenv("METAVSR_PASSWORD", "alicepw")
    config = _config(parse("--dir", cluster_dir, "--cluster", "10.0.0.1:9000", "--ops", "10"),
                     mix)
    assert config.addresses == (("10.0.0.1", 9000),)
    assert config.login_body == iggy.login_body("alice", "alicepw")
    assert (config.duration_s, config.ops) == (None, 10)


def test_ops_are_shared_out_exactly():
    shares = WorkerConfig((("h", 1),), b"", 3, 4, {"get_streams": 1}, 1, "r", None, None, 1001,
                          0.0, False, None, 1.0)
    quotas = [shares.quota(p, s) for p in range(3) for s in range(4)]
    assert sum(quotas) == 1001 and max(quotas) - min(quotas) == 1


@pytest.mark.parametrize("argv", [("--processes", "0"), ("--clients", "100000")])
def test_process_and_session_bounds(cluster_dir, argv):
    with pytest.raises(coordinator.RunFailed):
        coordinator.check_bounds(_config(parse("--dir", cluster_dir, *argv), mix))


@pytest.mark.parametrize("argv, error", [
    (("--ops", "0"), UsageError), (("--duration", "-1"), UsageError),
    (("--rate", "0"), UsageError), (("--warmup", "-1"), UsageError),
    (("--cluster", "nohost"), ClusterFilesError), (("--mix", "x=1"), mix.MixError),
])
def test_bad_arguments_are_refused_before_anything_starts(cluster_dir, argv, error):
    with pytest.raises(error):
        _config(parse("--dir", cluster_dir, *argv), mix)


def test_no_credentials_anywhere_is_an_error(tmp_path, monkeypatch):
    monkeypatch.delenv("METAVSR_USERNAME", raising=False)
    with pytest.raises(ClusterFilesError):
        _config(parse("--dir", str(tmp_path), "--cluster", "127.0.0.1:1"), mix)
