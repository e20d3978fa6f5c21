"""The root user's password is set at format time, never defaulted, stored only hashed."""

from __future__ import annotations

from core import auth
from core.roles.state import load_state_machine
from tools.cli import main


def _format(root, replica: int, *extra: str) -> int:
    return main(["format", "--cluster", "4242", "--replica", str(replica), "--replica-count", "3",
                 *extra, str(root)])


def test_format_refuses_without_a_root_password(tmp_path, monkeypatch, capsys):
    monkeypatch.delenv("METAVSR_ROOT_PASSWORD", raising=False)
    assert _format(tmp_path / "r0", 0) == 2
    assert "no root password" in capsys.readouterr().err
    assert not (tmp_path / "r0").exists()


def test_root_password_from_a_file_is_stored_only_as_a_hash_identical_on_every_replica(tmp_path):
    secret = tmp_path / "root-pw"
    secret.write_text("correct horse battery\n")
    for replica in range(3):
        assert _format(tmp_path / f"r{replica}", replica, "--root-password-file", str(secret)) == 0
    states = [load_state_machine(str(tmp_path / f"r{i}"), 4242, i)[0] for i in range(3)]
    assert len({state.digest() for state in states}) == 1
    _, _, stored = states[0].user_credentials("iggy")
    assert auth.verify_secret(stored, "correct horse battery")
    for path in tmp_path.rglob("*"):
        if path.is_file() and path != secret:
            assert b"correct horse battery" not in path.read_bytes()


def test_a_too_short_root_password_is_refused(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("METAVSR_ROOT_PASSWORD", "short")
    assert _format(tmp_path / "r0", 0) == 2
    assert "8..100" in capsys.readouterr().err


def test_format_can_write_a_new_cluster_key_and_never_overwrites_one(tmp_path, monkeypatch,
                                                                     capsys):
    import os
    import stat
    monkeypatch.setenv("METAVSR_ROOT_PASSWORD", "correct horse battery")
    key = tmp_path / "cluster.key"
    assert _format(tmp_path / "r0", 0, "--new-cluster-key", str(key)) == 0
    assert stat.S_IMODE(os.stat(key).st_mode) == 0o600
    assert len(auth.load_cluster_key(str(key))) == auth.CLUSTER_KEY_BYTES
    out = capsys.readouterr().out
    assert key.read_text().strip() not in out
    before = key.read_text()
    assert _format(tmp_path / "r1", 1, "--new-cluster-key", str(key)) == 2
    assert key.read_text() == before and not (tmp_path / "r1").exists()
