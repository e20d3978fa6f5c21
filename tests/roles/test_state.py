"""The owner starts from the checkpoint format wrote (root's credential included)."""

from __future__ import annotations

import pytest

from core import auth
from core.roles.state import load_state_machine
from core.storage.datadir import format_data_dir
from core.storage.errors import DataDirError
from domains.mux import MuxStateMachine


def test_owner_state_comes_from_the_initial_checkpoint(tmp_path):
    root_hash = auth.hash_secret("format-time-password", n_log2=10)
    initial = MuxStateMachine(root_hash)
    format_data_dir(str(tmp_path / "r0"), cluster=77, replica=0, replica_count=3,
                    initial_sections=initial.snapshot())
    mux, op = load_state_machine(str(tmp_path / "r0"), 77, 0)
    assert op == 0 and mux.digest() == initial.digest()
    user_id, status, stored = mux.user_credentials("iggy")
    assert user_id == 0 and auth.verify_secret(stored, "format-time-password")


def test_a_data_dir_of_another_replica_is_refused(tmp_path):
    format_data_dir(str(tmp_path / "r1"), cluster=77, replica=1, replica_count=3,
                    initial_sections=MuxStateMachine().snapshot())
    with pytest.raises(DataDirError, match="replica 1"):
        load_state_machine(str(tmp_path / "r1"), 77, 0)
