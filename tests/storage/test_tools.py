"""`metavsr format` and `metavsr inspect`: what an operator sees, exit statuses, JSON."""

from __future__ import annotations

import orjson
import pytest

from core.storage.datadir import open_data_dir, open_journal
from core.storage.testing import CLUSTER_TEST, make_chain
from core.storage.superblock import COPY_STRIDE_BYTES
from net.wire import HEADER_SIZE
from tools.cli import main

from .test_datadir_superblock import flip_bit

RING_ARGS = ["--journal", "ring", "--ring-slots", "64", "--ring-slot-size-bytes", "4096"]


def format_cli(root, *extra) -> int:
    return main(["format", "--cluster", str(CLUSTER_TEST), "--replica", "0",
                 "--replica-count", "3", *extra, str(root)])


def inspect_json(capsys, what: str, root, *extra: str) -> tuple[int, dict]:
    capsys.readouterr()
    status = main(["inspect", what, str(root), "--json", *extra])
    return status, orjson.loads(capsys.readouterr().out)


@pytest.mark.parametrize("extra", [[], RING_ARGS], ids=["segmented", "ring"])
def test_format_then_inspect_everything_verifies(tmp_path, capsys, extra):
    root = tmp_path / "d"
    assert format_cli(root, *extra) == 0
    assert "formatted" in capsys.readouterr().out
    assert format_cli(root, *extra) == 1
    assert "already formatted" in capsys.readouterr().err
    status, report = inspect_json(capsys, "superblock", root)
    assert status == 0 and report["chosen"]["cluster"] == CLUSTER_TEST
    assert (report["chosen"]["view_op"], report["chosen"]["view_headers"],
            report["chosen"]["checkpoint_header"]) == (0, [], None)
    assert [c["valid"] for c in report["copies"]] == [True] * 4
    status, report = inspect_json(capsys, "journal", root)
    assert status == 0 and report["op_max"] == 0
    status, report = inspect_json(capsys, "snapshot", root)
    assert status == 0 and report["checkpoint_op"] == 0


def test_inspect_names_a_bad_superblock_copy(tmp_path, capsys):
    root = tmp_path / "d"
    format_cli(root)
    flip_bit(root / "superblock", COPY_STRIDE_BYTES + 33)
    status, report = inspect_json(capsys, "superblock", root)
    assert status == 1
    assert [c["valid"] for c in report["copies"]] == [True, False, True, True]


@pytest.mark.parametrize("extra", [[], RING_ARGS], ids=["segmented", "ring"])
def test_inspect_journal_reports_a_fault_and_changes_nothing(tmp_path, capsys, extra):
    root = tmp_path / "d"
    format_cli(root, *extra)
    superblock = open_data_dir(str(root), cluster=CLUSTER_TEST, replica=0)
    journal, _ = open_journal(str(root), superblock.state, 8)
    frames = make_chain(1, 30)
    for start in range(0, 30, 3):
        journal.write(frames[start:start + 3])
        journal.sync()
    path, offset = journal.locate(4)
    journal.close()
    flip_bit(path, offset + 300)
    before = open(path, "rb").read()
    status, report = inspect_json(capsys, "journal", root, "--in-flight-ops", "8")
    assert status == 1 and [f["op"] for f in report["faults"]] == [4]
    assert report["op_max"] == 30
    assert open(path, "rb").read() == before


def test_inspect_of_a_missing_dir_is_an_error(tmp_path, capsys):
    assert main(["inspect", "superblock", str(tmp_path / "nope")]) == 2


def test_inspect_superblock_shows_view_headers_and_the_checkpoint_header(tmp_path, capsys):
    root = tmp_path / "d"
    format_cli(root)
    frames = make_chain(1, 12)
    superblock = open_data_dir(str(root), cluster=CLUSTER_TEST, replica=0)
    superblock.update(view=1, log_view=1, view_op=12,
                      view_headers=[frame[:HEADER_SIZE] for frame in frames[9:]],
                      checkpoint_op=4, checkpoint_header=frames[3][:HEADER_SIZE])
    superblock.close()
    status, report = inspect_json(capsys, "superblock", root)
    assert status == 0 and report["chosen"]["view_op"] == 12
    assert [h["op"] for h in report["chosen"]["view_headers"]] == [10, 11, 12]
    assert report["chosen"]["checkpoint_header"]["op"] == 4
    main(["inspect", "superblock", str(root)])
    assert "view_headers" in capsys.readouterr().out
