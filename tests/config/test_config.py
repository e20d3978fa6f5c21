"""Each kind of bad config is refused with a message naming the key and what is allowed."""

from __future__ import annotations

import copy
import os

import pytest

from core.config import ConfigError, load, parse


def good() -> dict:
    return {
        "cluster_id": 7,
        "replica": 1,
        "data_dir": "data/r1",
        "replicas": [
            {"client": "127.0.0.1:3001", "peer": "127.0.0.1:4001"},
            {"client": "127.0.0.1:3002", "peer": "127.0.0.1:4002"},
            {"client": "127.0.0.1:3003", "peer": "127.0.0.1:4003"},
        ],
        "journal": {"backend": "segmented"},
        "replication": {"pipeline_max": 64, "checkpoint_interval": 1024},
        "cpu": {"net": [0], "owner": [0]},
    }


def test_good_config_loads_with_defaults_and_relative_paths(tmp_path):
    path = tmp_path / "replica.toml"
    path.write_text(
        'cluster_id = 7\nreplica = 1\ndata_dir = "data/r1"\n'
        '[[replicas]]\nclient = "127.0.0.1:3001"\npeer = "127.0.0.1:4001"\n'
        '[[replicas]]\nclient = "127.0.0.1:3002"\npeer = "127.0.0.1:4002"\n'
        '[[replicas]]\nclient = "127.0.0.1:3003"\npeer = "127.0.0.1:4003"\n'
        '[cpu]\nnet = [0]\n'
    )
    config = load(str(path))
    assert config.replica_count == 3
    assert config.data_dir == os.path.join(str(tmp_path), "data/r1")
    assert config.journal.backend == "segmented"
    assert config.replication.pipeline_max == 64
    assert config.cpu == {"net": (0,)}
    assert config.replicas[2].peer_port == 4003


def _error(mutate) -> str:
    raw = copy.deepcopy(good())
    mutate(raw)
    with pytest.raises(ConfigError) as info:
        parse(raw)
    return str(info.value)


def test_missing_file_is_a_clear_error(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        load(str(tmp_path / "nope.toml"))


def test_invalid_toml_is_a_clear_error(tmp_path):
    path = tmp_path / "bad.toml"
    path.write_text("cluster_id = = 3\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load(str(path))


def test_missing_key_names_it():
    message = _error(lambda raw: raw.pop("cluster_id"))
    assert message.startswith("cluster_id: missing")


def test_wrong_type_names_key_and_range():
    message = _error(lambda raw: raw.__setitem__("replica", "one"))
    assert "replica: 'one' is not an integer" in message and "0..6" in message


def test_bool_is_not_an_integer():
    message = _error(lambda raw: raw["replication"].__setitem__("pipeline_max", True))
    assert "replication.pipeline_max" in message and "not an integer" in message


def test_out_of_range_value_names_the_range():
    message = _error(lambda raw: raw["replication"].__setitem__("pipeline_max", 0))
    assert message == "replication.pipeline_max: 0 outside the allowed range 1..255"


def test_unknown_key_is_refused():
    message = _error(lambda raw: raw["journal"].__setitem__("bakend", "ring"))
    assert message.startswith("journal.bakend: unknown key in journal")


def test_unknown_top_level_key_is_refused():
    message = _error(lambda raw: raw.__setitem__("colour", "blue"))
    assert "colour: unknown key in top level" in message


def test_bad_choice_lists_allowed_values():
    message = _error(lambda raw: raw["journal"].__setitem__("backend", "lsm"))
    assert message == "journal.backend: 'lsm' is not allowed; allowed: segmented, ring"


def test_even_replica_count_is_refused():
    message = _error(lambda raw: raw["replicas"].pop())
    assert "replicas: 2 entries; allowed: an odd count from 1 to 7" == message


def test_replica_index_beyond_roster():
    message = _error(lambda raw: raw.__setitem__("replica", 5))
    assert message.startswith("replica: 5 is not an index") and "0..2" in message


def test_bad_address_is_refused():
    message = _error(lambda raw: raw["replicas"][0].__setitem__("client", "localhost"))
    assert message.startswith("replicas[0].client: 'localhost' is not HOST:PORT")


def test_duplicate_address_is_refused():
    message = _error(lambda raw: raw["replicas"][2].__setitem__("peer", "127.0.0.1:3001"))
    assert "replicas[2].peer: 127.0.0.1:3001 is already used by replicas[0].client" == message


def test_unknown_role_in_cpu_table():
    message = _error(lambda raw: raw["cpu"].__setitem__("gpu", [0]))
    assert message.startswith("cpu.gpu: unknown key in cpu") and "owner" in message


def test_unavailable_cpu_is_refused():
    message = _error(lambda raw: raw["cpu"].__setitem__("journal", [4096]))
    assert message.startswith("cpu.journal: CPU 4096 is not available")


def test_empty_cpu_list_is_refused():
    message = _error(lambda raw: raw["cpu"].__setitem__("journal", []))
    assert message.startswith("cpu.journal: empty CPU list")


def test_ring_journal_too_small_for_checkpoint_and_pipeline():
    def mutate(raw):
        raw["journal"] = {"backend": "ring", "ring_slots": 1024}
    message = _error(mutate)
    assert message.startswith("journal.ring_slots: 1024 is too small")
    assert "1152" in message


def test_heartbeat_must_be_shorter_than_view_change_timeout():
    def mutate(raw):
        raw["replication"].update(heartbeat_ticks=50, view_change_timeout_ticks=40)
    assert "heartbeat_ticks must be below" in _error(mutate)


def test_tls_needs_certificate_and_key():
    message = _error(lambda raw: raw.__setitem__("security", {"tls": True}))
    assert message.startswith("security.tls: true needs")


def test_checkpoint_interval_shorter_than_two_pipelines_is_refused():
    def mutate(raw):
        raw["replication"] = {"checkpoint_interval": 64, "pipeline_max": 64}
    message = _error(mutate)
    assert message.startswith("replication.checkpoint_interval: 64 is below 2 x pipeline_max")


def test_journal_retention_below_the_pipeline_is_refused():
    def mutate(raw):
        raw["journal"] = {"retention_ops": 16}
        raw["replication"] = {"pipeline_max": 32}
    message = _error(mutate)
    assert message.startswith("journal.retention_ops: 16 is below pipeline_max = 32")
