"""Property test: any sequence of journal commands and restarts matches a plain dict model."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from core.storage.journal import UNLINKED, EntryFault
from core.storage.testing import make_prepare
from net.wire import HEADER_SIZE

from .conftest import BACKENDS, Dir

COMMANDS = st.lists(st.one_of(
    # Ops relative to op_max: <= 0 supersedes a held op (or fills a gap), > 0 goes above it.
    st.tuples(st.just("write"), st.lists(st.integers(-6, 3), min_size=1, max_size=6),
              st.sampled_from([256, 1000, 4096])),
    st.tuples(st.just("truncate_suffix"), st.integers(0, 10)),
    st.tuples(st.just("checkpoint"), st.integers(0, 20)),
    st.tuples(st.just("restart")),
), min_size=1, max_size=25)


def read_or_none(journal, op: int) -> bytes | None:
    try:
        return journal.read(op)
    except EntryFault:
        return None


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(commands=COMMANDS, backend=st.sampled_from(BACKENDS))
def test_the_journal_holds_exactly_what_a_dict_would(tmp_path_factory, commands, backend):
    directory = Dir(tmp_path_factory.mktemp("model") / "data", backend)
    directory.reopen()
    model: dict[int, bytes] = {}  # op -> the frame the journal must return for it
    checkpoint = 0
    version = 0
    for command in commands:
        journal = directory.journal
        if command[0] == "write":
            _, offsets, size = command
            ops = [journal.op_max + offset for offset in offsets]
            if min(ops) <= checkpoint or max(ops) > journal.op_writable_max():
                continue  # the core never writes below its checkpoint nor past the bound
            frames = []
            for op in ops:
                version += 1
                frames.append(make_prepare(op, 0, size, fill=version))
                model[op] = frames[-1]
            journal.write(frames)
            journal.sync()
        elif command[0] == "truncate_suffix":
            op = max(checkpoint, journal.op_max - command[1])
            journal.truncate_suffix(op)
            model = {o: f for o, f in model.items() if o <= op}
        elif command[0] == "checkpoint":
            op = min(max(model, default=0), checkpoint + command[1])
            if op == checkpoint or op not in model:
                continue
            superblock = directory.superblock()
            superblock.update(checkpoint_op=op, checkpoint_header=model[op][:HEADER_SIZE])
            superblock.close()
            journal.truncate_prefix(op)
            checkpoint = op
        else:
            recovery = directory.reopen()
            assert recovery.cut_ops == ()
            # Gaps below the head are faults until written; a held entry may only be
            # reported as not linking (the model's frames do not chain).
            assert all(f.op not in model or f.reason == UNLINKED for f in recovery.faults)
        journal = directory.journal
        assert journal.op_max >= max(model, default=0)
        for op in range(checkpoint + 1, journal.op_max + 3):
            assert read_or_none(journal, op) == model.get(op), op
    directory.journal.close()
