"""Config keys of limits and security, and the cluster key file: each bad value is refused
with a message naming the key (or file) and what is allowed, never echoing a secret."""

from __future__ import annotations

import copy
import os
import stat

import pytest

from core import auth
from core.config import OP_REWRITE_SLACK, ConfigError, parse

GOOD = {
    "cluster_id": 7, "replica": 0, "data_dir": "data/r0",
    "replicas": [{"client": "127.0.0.1:3001", "peer": "127.0.0.1:4001"},
                 {"client": "127.0.0.1:3002", "peer": "127.0.0.1:4002"},
                 {"client": "127.0.0.1:3003", "peer": "127.0.0.1:4003"}],
}


def _with(section: str, **values) -> dict:
    raw = copy.deepcopy(GOOD)
    raw[section] = values
    return raw


def _error(section: str, **values) -> str:
    with pytest.raises(ConfigError) as info:
        parse(_with(section, **values))
    return str(info.value)


def test_limits_defaults_and_explicit_values():
    config = parse(copy.deepcopy(GOOD))
    assert config.limits.connections_max == 1024
    assert config.limits.handshake_timeout_s == 5.0
    assert config.limits.op_size_max + 256 + OP_REWRITE_SLACK <= config.limits.frame_size_max
    config = parse(_with("limits", frame_size_max=65536, connections_max=10,
                         requests_in_flight_max=2, idle_timeout_s=30, handshake_timeout_s=1.5,
                         op_size_max=4096))
    assert (config.limits.frame_size_max, config.limits.connections_max,
            config.limits.requests_in_flight_max, config.limits.idle_timeout_s,
            config.limits.handshake_timeout_s, config.limits.op_size_max) == (
        65536, 10, 2, 30.0, 1.5, 4096)


@pytest.mark.parametrize("key, value, expected", [
    ("frame_size_max", 100, "limits.frame_size_max: 100 outside the allowed range 4096..1048576"),
    ("frame_size_max", 2 << 20, "outside the allowed range 4096..1048576"),
    ("connections_max", 0, "limits.connections_max: 0 outside the allowed range 1..65536"),
    ("requests_in_flight_max", 0, "limits.requests_in_flight_max: 0 outside"),
    ("idle_timeout_s", 0, "limits.idle_timeout_s: 0 outside"),
    ("handshake_timeout_s", 1000, "limits.handshake_timeout_s: 1000 outside"),
    ("handshake_timeout_s", "5", "limits.handshake_timeout_s: '5' is not a number"),
    ("op_size_max", 10, "limits.op_size_max: 10 outside the allowed range"),
    ("op_size_max", True, "limits.op_size_max: True is not an integer"),
    ("max_frame", 1, "limits.max_frame: unknown key in limits"),
])
def test_bad_limits_are_refused_by_name(key, value, expected):
    assert expected in _error("limits", **{key: value})


def test_op_size_must_leave_room_in_a_frame_and_its_default_follows_the_frame_size():
    message = _error("limits", frame_size_max=8192, op_size_max=8000)
    assert message.startswith("limits.op_size_max: 8000 is too large for limits.frame_size_max")
    config = parse(_with("limits", frame_size_max=8192))
    assert config.limits.op_size_max == 8192 - 256 - OP_REWRITE_SLACK


def test_security_paths_are_relative_to_the_config_and_tls_needs_both_files(tmp_path):
    config = parse(_with("security", cluster_key_file="cluster.key", tls=True,
                         tls_cert_file="/etc/c.pem", tls_key_file="k.pem"),
                   base_dir=str(tmp_path))
    assert config.security.cluster_key_file == str(tmp_path / "cluster.key")
    assert config.security.tls_key_file == str(tmp_path / "k.pem")
    assert config.security.tls_cert_file == "/etc/c.pem"
    assert "needs security.tls_cert_file" in _error("security", tls=True, tls_cert_file="c")
    assert "security.tls: 1 is not a boolean" in _error("security", tls=1)
    assert "security.cluster_key: unknown key" in _error("security", cluster_key="abc")


def test_a_generated_key_file_is_private_and_loads(tmp_path):
    path = str(tmp_path / "cluster.key")
    auth.write_cluster_key(path)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    key = auth.load_cluster_key(path)
    assert len(key) == auth.CLUSTER_KEY_BYTES
    with pytest.raises(FileExistsError):  # never overwrites a cluster's key
        auth.write_cluster_key(path)


def test_bad_key_files_are_refused_without_showing_their_content(tmp_path):
    secret = "ab" * 40
    path = tmp_path / "key"
    path.write_text(secret)
    os.chmod(path, 0o644)
    with pytest.raises(ValueError) as loose:
        auth.load_cluster_key(str(path))
    assert "readable by other users" in str(loose.value) and secret not in str(loose.value)
    os.chmod(path, 0o600)
    path.write_text("ab" * 8)
    with pytest.raises(ValueError, match="holds 8 bytes; at least 32"):
        auth.load_cluster_key(str(path))
    path.write_text("not hex at all, and long enough to be a key if it were hex......")
    with pytest.raises(ValueError) as not_hex:
        auth.load_cluster_key(str(path))
    assert "is not hex" in str(not_hex.value) and "long enough" not in str(not_hex.value)
    with pytest.raises(ValueError, match="cannot be read"):
        auth.load_cluster_key(str(tmp_path / "missing"))
