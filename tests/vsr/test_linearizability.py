"""The linearizability checker alone, on hand-written histories."""

from tools.simulator.linearizability import RegisterModel, check_history
from tools.simulator.streams_workload import StreamNameModel
from tools.simulator.workload import Operation


def op(kind, key, invoke, complete, value=None, result=None):
    return Operation(0, kind, key, value, invoke, complete, result=result)


def test_read_of_the_latest_completed_write_is_linearizable():
    history = [op("write", 1, 0, 10, b"a"), op("write", 1, 11, 20, b"b"),
               op("read", 1, 21, 30, result=b"b")]
    assert check_history(history, RegisterModel) is None


def test_stale_read_after_a_completed_write_is_not_linearizable():
    history = [op("write", 1, 0, 10, b"a"), op("write", 1, 11, 20, b"b"),
               op("read", 1, 21, 30, result=b"a")]
    assert check_history(history, RegisterModel) is not None


def test_concurrent_write_may_be_seen_or_not_and_a_pending_write_may_take_effect():
    history = [op("write", 1, 0, 10, b"a"), op("write", 1, 5, None, b"b"),
               op("read", 1, 20, 30, result=b"b"), op("read", 1, 31, 40, result=b"b")]
    assert check_history(history, RegisterModel) is None


def test_keys_are_checked_independently():
    history = [op("write", 1, 0, 10, b"a"), op("read", 2, 11, 20, result=b"a")]
    assert "key 2" in check_history(history, RegisterModel)


def test_stream_created_twice_successfully_is_not_linearizable():
    history = [op("create", "s", 0, 10, result=True), op("create", "s", 11, 20, result=True)]
    assert check_history(history, StreamNameModel) is not None
    history[1] = op("create", "s", 11, 20, result=False)
    assert check_history(history, StreamNameModel) is None
