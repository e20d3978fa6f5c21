"""Property test: any sequence of journal commands and restarts matches a plain list model."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from core.storage.testing import make_chain
from net import wire

from .conftest import BACKENDS, RING_SLOTS, Dir

COMMANDS = st.lists(st.one_of(
    st.tuples(st.just("append"), st.integers(1, 7), st.sampled_from([256, 1000, 4096])),
    st.tuples(st.just("truncate_suffix"), st.integers(0, 10)),
    st.tuples(st.just("checkpoint"), st.integers(0, 20)),
    st.tuples(st.just("restart")),
), min_size=1, max_size=25)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(commands=COMMANDS, backend=st.sampled_from(BACKENDS))
def test_the_journal_holds_exactly_what_a_list_would(tmp_path_factory, commands, backend):
    directory = Dir(tmp_path_factory.mktemp("model") / "data", backend)
    directory.reopen()
    model: dict[int, bytes] = {}  # op -> frame of every op the journal must hold
    checkpoint = 0
    for command in commands:
        journal = directory.journal
        if command[0] == "append":
            _, count, size = command
            if journal.op_max + count - RING_SLOTS > checkpoint:
                continue  # the replica checkpoints before the ring could wrap onto live ops
            parent = wire.frame_checksum(model[journal.op_max]) if journal.op_max in model else 0
            frames = make_chain(journal.op_max + 1, count, size, parent=parent)
            journal.append(frames)
            journal.sync()
            model.update(zip(range(journal.op_max - count + 1, journal.op_max + 1), frames))
        elif command[0] == "truncate_suffix":
            op = max(checkpoint, journal.op_max - command[1])
            journal.truncate_suffix(op)
            model = {o: f for o, f in model.items() if o <= op}
        elif command[0] == "checkpoint":
            op = min(journal.op_max, checkpoint + command[1])
            superblock = directory.superblock()
            superblock.update(checkpoint_op=op)
            superblock.close()
            journal.truncate_prefix(op)
            checkpoint = op
        else:
            recovery = directory.reopen()
            assert recovery.faults == () and recovery.cut_ops == ()
        journal = directory.journal
        assert journal.op_max == max(model, default=0)
        for op in range(checkpoint + 1, journal.op_max + 1):
            assert journal.read(op) == model[op]
    directory.journal.close()
