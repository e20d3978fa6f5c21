"""View-change merge rules, alone (core/vsr/view_change.py)."""

from core.vsr.view_change import FAULTY, NACK, PRESENT, DoViewChange, merge
from net.wire import Command, cluster_bytes, decode_header, encode, make_header


def chain(length, salt=b"", start_parent=0, start_op=1, view=0):
    """Prepare headers op start_op.. chained by parent checksums: {op: (header, raw)}."""
    out = {}
    parent = start_parent
    for op in range(start_op, start_op + length):
        frame = encode(make_header(Command.PREPARE, cluster=cluster_bytes(1), view=view, op=op,
                                   parent=parent, request_count=0), salt)
        header = decode_header(frame)
        out[op] = (header, frame[:256])
        parent = header.checksum
    return out


def dvc(replica, log_view, headers, op=None, commit=0, status=None, wanted=None):
    status = status or {o: PRESENT for o in headers}
    return DoViewChange(replica, log_view, max(headers) if op is None else op, commit, headers,
                        status, wanted or {})


def test_highest_log_view_wins_over_a_longer_log():
    long_old = chain(8, b"old")
    short_new = chain(5, b"new")
    merged = merge([dvc(0, 1, long_old), dvc(1, 2, short_new)], quorum=2)
    assert merged.head == 5
    assert merged.headers[5][0].checksum == short_new[5][0].checksum


def test_same_log_view_takes_the_highest_op():
    log = chain(9)
    merged = merge([dvc(0, 3, {o: log[o] for o in range(1, 7)}), dvc(1, 3, log)], quorum=2)
    assert merged.head == 9


def test_unknown_head_waits_without_a_quorum_of_nacks():
    log = chain(6)
    # Replica 0 holds op 6 but lost its header (corrupt); replica 1 never had it.
    corrupt_head = dvc(0, 2, {o: log[o] for o in range(1, 6)}, op=6)
    short = dvc(1, 2, {o: log[o] for o in range(1, 6)}, op=5)
    assert merge([corrupt_head, short], quorum=2) is None


def test_unknown_head_is_cut_once_a_quorum_proves_it_was_never_prepared():
    log = chain(6)
    corrupt_head = dvc(0, 2, {o: log[o] for o in range(1, 6)}, op=6)
    short_a = dvc(1, 2, {o: log[o] for o in range(1, 6)}, op=5)
    short_b = dvc(2, 1, {o: log[o] for o in range(1, 5)}, op=4)
    merged = merge([corrupt_head, short_a, short_b], quorum=2)
    assert merged is not None and merged.head == 5


def test_merged_commit_is_the_highest_commit_seen():
    log = chain(4)
    merged = merge([dvc(0, 1, log, commit=2), dvc(1, 1, log, commit=3)], quorum=2)
    assert merged.commit == 3


def test_an_op_a_quorum_never_held_is_cut_with_everything_above_it():
    log = chain(6)
    # Op 4's only durable copy is corrupt on replica 0; replicas 1 and 2 know its header but
    # never held it durably (they nack it). Op 5 and 6 may be durable elsewhere: still cut,
    # because op 4 was never committed so nothing above it was.
    corrupt = dvc(0, 2, log, status={**{o: PRESENT for o in log}, 4: FAULTY})
    nack_a = dvc(1, 2, log, status={**{o: PRESENT for o in log}, 4: NACK})
    nack_b = dvc(2, 2, {o: log[o] for o in range(1, 4)}, op=3)
    merged = merge([corrupt, nack_a, nack_b], quorum=2)
    assert merged.head == 3


def test_a_faulty_copy_is_never_counted_as_a_nack():
    log = chain(6)
    corrupt_a = dvc(0, 2, log, status={**{o: PRESENT for o in log}, 4: FAULTY})
    corrupt_b = dvc(1, 2, log, status={**{o: PRESENT for o in log}, 4: FAULTY})
    merged = merge([corrupt_a, corrupt_b], quorum=2)
    assert merged.head == 6


def test_an_op_known_only_by_checksum_is_cut_when_a_quorum_never_held_it():
    log = chain(6)
    above = {o: log[o] for o in range(4, 7)}
    below = {o: log[o] for o in range(1, 3)}
    checksum = log[3][0].checksum
    # Every replica holds ops 4..6 and knows op 3 only by op 4's parent pointer.
    a = dvc(0, 2, {**below, **above}, wanted={3: (checksum, FAULTY)})
    b = dvc(1, 2, {**below, **above}, wanted={3: (checksum, NACK)})
    c = dvc(2, 2, {**below, **above}, wanted={3: (checksum, NACK)})
    assert merge([a, b, c], quorum=2).head == 2
    assert merge([a, b], quorum=2).head == 6  # one nack proves nothing: wait for repair


def test_an_unnamed_head_is_cut_when_a_quorum_holds_nothing_durable_there():
    log = chain(4)
    known = {o: log[o] for o in range(1, 5)}
    # Every replica's head is op 6 but nobody can name ops 5 and 6.
    holder = dvc(0, 3, known, op=6, wanted={5: (0, FAULTY), 6: (0, FAULTY)})
    empty_a = dvc(1, 3, known, op=6, wanted={5: (0, NACK), 6: (0, NACK)})
    empty_b = dvc(2, 3, known, op=6, wanted={5: (0, NACK), 6: (0, NACK)})
    assert merge([holder, empty_a], quorum=2) is None
    assert merge([holder, empty_a, empty_b], quorum=2).head == 4
