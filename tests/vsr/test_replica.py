"""The sans-IO replica alone: feed inputs by hand, read the actions (no simulator)."""

import random

import pytest

from core.check import InvariantError
from core.vsr.messages import (
    Append, Applied, AppliedEntry, Apply, Checkpoint, CheckpointDone, Durable, PersistView,
    Query, Receive, Reply, ReplyFromTable, Send, Tick, VsrConfig,
)
from core.vsr.replica import Replica
from net.batch import decode_batch
from net.wire import (
    HEADER_SIZE, Command, body_checksum, cluster_bytes, decode, encode, make_header,
)

CLIENT = b"C" * 16


def config(**overrides):
    return VsrConfig(replica_count=3, **overrides)


def request(number, operation=128, body=b"\x01v", session=5, code=0):
    header = make_header(Command.REQUEST, client=CLIENT, request=number, operation=operation,
                         session=session, code=code, request_checksum=body_checksum(body))
    frame = encode(header, body, checksums=False)
    h, b = decode(frame, verify=False)
    return Receive(h, b)


def peer(command, sender, view=0, body=b"", **fields):
    frame = encode(make_header(command, cluster=cluster_bytes(1), view=view, replica=sender,
                               **fields), body)
    h, b = decode(frame)
    return Receive(h, b, frame=frame)


def sends(actions, command=None):
    out = []
    for action in actions:
        if isinstance(action, Send):
            h, b = decode(action.frame)
            if command is None or h.command == command:
                out.append((action.to, h, b))
    return out


def of(actions, kind):
    return [a for a in actions if isinstance(a, kind)]


def primary_with_one_prepare():
    primary = Replica(config(), 0, random.Random(1))
    actions = primary.step(request(1))
    return primary, actions


def test_primary_prepares_a_request_appends_and_sends_to_every_backup():
    primary, actions = primary_with_one_prepare()
    appends = of(actions, Append)
    assert [a.op for a in appends] == [1]
    prepares = sends(actions, Command.PREPARE)
    assert sorted(to for to, _, _ in prepares) == [1, 2]
    _, header, body = prepares[0]
    assert header.op == 1 and header.request_count == 1
    assert header.parent == primary.log.headers[0].checksum  # hash-chained to the root
    assert decode_batch(body, 1)[0].request == 1


def test_primary_commits_only_with_a_quorum_including_its_own_durable_copy():
    primary, actions = primary_with_one_prepare()
    checksum = primary.log.headers[1].checksum
    ok = peer(Command.PREPARE_OK, 1, prepare_checksum=checksum, op=1)
    assert not of(primary.step(ok), Apply)  # backup alone: primary's copy not durable yet
    applied = of(primary.step(Durable(of(actions, Append)[0].seq)), Apply)
    assert [a.op for a in applied] == [1]


def test_prepare_ok_for_another_checksum_is_not_counted():
    primary, actions = primary_with_one_prepare()
    primary.step(Durable(of(actions, Append)[0].seq))
    assert not of(primary.step(peer(Command.PREPARE_OK, 1, prepare_checksum=12345, op=1)), Apply)


def test_reply_is_sent_after_apply_and_a_retry_after_commit_is_answered_from_the_table():
    primary, actions = primary_with_one_prepare()
    primary.step(Durable(of(actions, Append)[0].seq))
    checksum = primary.log.headers[1].checksum
    primary.step(peer(Command.PREPARE_OK, 1, prepare_checksum=checksum, op=1))
    replies = of(primary.step(Applied(1, [AppliedEntry(CLIENT, 1, 128, 0, b"r")])), Reply)
    assert len(replies) == 1 and replies[0].client == CLIENT
    reply = replies[0]
    assert (reply.header.request, reply.op, reply.status, reply.result) == (1, 1, 0, b"r")
    retry = primary.step(request(1))
    assert len(of(retry, ReplyFromTable)) == 1 and not of(retry, Append)


def test_a_retry_in_flight_is_dropped():
    primary, _ = primary_with_one_prepare()
    assert primary.step(request(1)) == []


def test_requests_queued_behind_a_full_pipeline_are_batched_into_one_prepare():
    primary = Replica(config(pipeline_max=1, checkpoint_interval=64, journal_retention_ops=8,
                             view_headers_max=8), 0, random.Random(1))
    first = primary.step(request(1))
    for number, client in ((1, b"A" * 16), (1, b"B" * 16)):
        h = make_header(Command.REQUEST, client=client, request=number, operation=128, session=1)
        header, body = decode(encode(h, b"\x02x", checksums=False), verify=False)
        assert not of(primary.step(Receive(header, body)), Append)  # pipeline full: queued
    primary.step(Durable(of(first, Append)[0].seq))
    checksum = primary.log.headers[1].checksum
    actions = primary.step(peer(Command.PREPARE_OK, 1, prepare_checksum=checksum, op=1))
    prepares = sends(actions, Command.PREPARE)
    assert prepares and prepares[0][1].op == 2 and prepares[0][1].request_count == 2


def test_backup_acks_only_after_its_copy_is_durable():
    primary, actions = primary_with_one_prepare()
    frame = of(actions, Send)[0].frame
    backup = Replica(config(), 1, random.Random(2))
    h, b = decode(frame)
    got = backup.step(Receive(h, b, frame=frame))
    assert of(got, Append) and not sends(got, Command.PREPARE_OK)
    acks = sends(backup.step(Durable(of(got, Append)[0].seq)), Command.PREPARE_OK)
    assert [(to, h.op) for to, h, _ in acks] == [(0, 1)]


def test_backup_applies_what_the_primary_says_is_committed():
    primary, actions = primary_with_one_prepare()
    frame = of(actions, Send)[0].frame
    backup = Replica(config(), 1, random.Random(2))
    h, b = decode(frame)
    backup.step(Receive(h, b, frame=frame))
    commit = peer(Command.COMMIT, 0, commit=1, heartbeat=1)
    actions = backup.step(commit)
    assert [a.op for a in of(actions, Apply)] == [1]
    assert sends(actions, Command.COMMIT_ACK)


def test_backup_without_primary_starts_a_view_change_persisting_the_view_first():
    backup = Replica(config(), 1, random.Random(2))
    actions = []
    for _ in range(config().normal_timeout_ticks):
        actions = backup.step(Tick())
        if actions and sends(actions, Command.START_VIEW_CHANGE):
            break
    kinds = [type(a) for a in actions]
    assert kinds[0] is PersistView and actions[0].view == 1
    assert backup.status == "view_change"


def test_linearizable_read_waits_for_a_quorum_round_started_after_it_arrived():
    primary = Replica(config(), 0, random.Random(1))
    actions = primary.step(request(1, operation=2, body=b"\x01", code=1))
    beats = sends(actions, Command.COMMIT)
    assert beats and not of(actions, Query)
    round_number = beats[0][1].heartbeat
    stale_ack = peer(Command.COMMIT_ACK, 1, heartbeat=round_number - 1)
    assert not of(primary.step(stale_ack), Query)
    answered = of(primary.step(peer(Command.COMMIT_ACK, 1, heartbeat=round_number)), Query)
    assert len(answered) == 1


def test_reads_arriving_during_a_round_share_the_next_one():
    primary = Replica(config(), 0, random.Random(1))
    read = dict(operation=2, body=b"\x01", code=1)
    round_one = sends(primary.step(request(1, **read)), Command.COMMIT)[0][1].heartbeat
    # Two reads while round one is in flight start no round of their own.
    assert not sends(primary.step(request(2, **read)), Command.COMMIT)
    assert not sends(primary.step(request(3, **read)), Command.COMMIT)
    actions = primary.step(peer(Command.COMMIT_ACK, 1, heartbeat=round_one))
    assert len(of(actions, Query)) == 1  # the read that round one was for
    beats = sends(actions, Command.COMMIT)
    assert {h.heartbeat for _, h, _ in beats} == {round_one + 1}  # one round for both
    assert len(of(primary.step(peer(Command.COMMIT_ACK, 2, heartbeat=round_one + 1)), Query)) == 2


def test_stale_read_is_answered_at_once_by_a_backup():
    backup = Replica(config(), 1, random.Random(2))
    h = request(1, operation=2, body=b"\x01", code=1)
    h.stale = True
    assert len(of(backup.step(h), Query)) == 1


def test_checkpoint_is_requested_every_checkpoint_interval_ops():
    cfg = config(pipeline_max=2, checkpoint_interval=4, journal_retention_ops=2,
                 view_headers_max=4, batch_max=1)
    primary = Replica(cfg, 0, random.Random(1))
    checkpoints = []
    for number in range(1, 9):
        h = make_header(Command.REQUEST, client=bytes([number]) * 16, request=1,
                        operation=128, session=1)
        header, body = decode(encode(h, b"\x01a", checksums=False), verify=False)
        for action in primary.step(Receive(header, body)):
            if isinstance(action, Append):
                primary.step(Durable(action.seq))
                checksum = primary.log.headers[action.op].checksum
                for a in primary.step(peer(Command.PREPARE_OK, 1, prepare_checksum=checksum,
                                           op=action.op)):
                    if isinstance(a, Checkpoint):
                        checkpoints.append(a.op)
                        primary.step(CheckpointDone(a.op))
    assert checkpoints == [4, 8]


def test_bounds_are_checked_in_the_config():
    with pytest.raises(InvariantError):
        VsrConfig(replica_count=4)
    with pytest.raises(InvariantError):
        VsrConfig(replica_count=3, pipeline_max=0)
    with pytest.raises(InvariantError):
        VsrConfig(replica_count=3, pipeline_max=64, view_headers_max=32)


def test_a_one_replica_cluster_answers_linearizable_reads():
    from core.vsr.messages import Query, Receive, VsrConfig
    from core.vsr.replica import Replica
    from net import iggy
    from net.wire import decode_client_frame
    import random

    replica = Replica(VsrConfig(replica_count=1), 0, random.Random(1))
    frame = iggy.request_frame(b"\x01" * 16, 1, 1, iggy.Operation.NON_REPLICATED, b"",
                               code=iggy.Code.GET_STREAMS)
    header, body = decode_client_frame(frame, 1024)
    actions = replica.step(Receive(header, body, frame=frame))
    assert any(type(action) is Query for action in actions)


def _prepares_of(primary, count):
    frames = []
    for number in range(1, count + 1):
        h = make_header(Command.REQUEST, client=bytes([number]) * 16, request=1,
                        operation=128, session=1)
        header, body = decode(encode(h, b"\x01a", checksums=False), verify=False)
        frames += [s.frame for s in of(primary.step(Receive(header, body)), Send) if s.to == 1]
    return frames


def test_nothing_goes_past_what_the_journal_accepts():
    # A primary prepares no further than journal_ops_ahead_max above what it applied.
    bounded = Replica(config(journal_ops_ahead_max=4, batch_max=1), 0, random.Random(1))
    assert len(_prepares_of(bounded, 10)) == 4 and bounded.log.head == 4
    # A backup far behind stores (and appends) no prepare past the bound either.
    frames = _prepares_of(Replica(config(batch_max=1), 0, random.Random(1)), 10)
    assert len(frames) == 10
    backup = Replica(config(journal_ops_ahead_max=4), 1, random.Random(2))
    appended = []
    for frame in frames:
        h, body = decode(frame)
        appended += [a.op for a in of(backup.step(Receive(h, body, frame=frame)), Append)]
    assert appended == [1, 2, 3, 4]
    # A ring journal: nothing past its released op (checkpoint - retention, here 0) + slots.
    ring = Replica(config(journal_slots=3, batch_max=1), 0, random.Random(3))
    assert len(_prepares_of(ring, 10)) == 3 and ring.log.head == 3


def test_a_backup_far_behind_keeps_headers_past_the_bound_and_applies_below_it():
    frames = _prepares_of(Replica(config(batch_max=1), 0, random.Random(1)), 10)
    backup = Replica(config(journal_ops_ahead_max=4), 1, random.Random(2))
    # The backup missed ops 1-2 and sees 3..10: it keeps frames 3-4 (within the bound) and
    # only the identities of 5..10, whose chain vouches for 3-4.
    for frame in frames[2:]:
        h, body = decode(frame)
        backup.step(Receive(h, body, frame=frame))
    assert sorted(backup.log.frames) == [0, 3, 4]  # 0: the shared root
    assert all(op in backup.log.headers for op in range(3, 11))
    applied = []
    for frame in frames[:2]:  # repair brings 1-2
        h, body = decode(frame)
        for action in backup.step(Receive(h, body, frame=frame)):
            applied += [a.op for a in [action] if isinstance(a, Apply)]
    # With a commit number covering them, everything up to the bound applies.
    commit = peer(Command.COMMIT, 0, commit=10, heartbeat=1)
    applied += [a.op for a in of(backup.step(commit), Apply)]
    assert applied == [1, 2, 3, 4]


def _prepare(op, parent, view, body=b""):
    header = make_header(Command.PREPARE, cluster=cluster_bytes(1), view=view,
                         replica=view % 3, parent=parent, op=op, timestamp=op)
    return encode(header, body)


def test_a_backup_far_behind_repairs_a_replaced_header_past_the_bound():
    # Seen in a chaos run: a backup far behind held the header of an uncommitted op past its
    # journal bound; a later view replaced that op, the chain walk dropped the stale header
    # and kept only the checksum the new child demands; repair skipped every op past the
    # bound, so the chain from the head never verified down to what it could apply.
    frames = _prepares_of(Replica(config(batch_max=1), 0, random.Random(1)), 8)
    backup = Replica(config(journal_ops_ahead_max=4), 1, random.Random(2))
    for frame in frames[2:]:  # ops 3..8 of view 0; 1-2 missed
        h, body = decode(frame)
        backup.step(Receive(h, body, frame=frame))
    a5 = decode(frames[4])[0]
    # A later view committed other prepares at 6..8 (a peer sends their headers).
    b6 = _prepare(6, a5.checksum, 2, b"six")
    b7 = _prepare(7, decode(b6)[0].checksum, 2)
    b8 = _prepare(8, decode(b7)[0].checksum, 2)
    raws = b"".join(frame[:HEADER_SIZE] for frame in (b7, b8))
    backup.step(peer(Command.HEADERS, 2, body=raws, op_min=7, op_max=8, commit=8))
    assert 6 not in backup.log.headers and backup.log.wanted[6] == decode(b6)[0].checksum
    asked = []
    for _ in range(backup.config.repair_ticks * 2):
        asked += [(h.prepare_op, h.prepare_checksum)
                  for _, h, _ in sends(backup.step(Tick()), Command.REQUEST_PREPARE)]
    assert (6, decode(b6)[0].checksum) in asked
    applied = []
    for frame in [b6, frames[0], frames[1]]:
        h, body = decode(frame)
        backup.step(Receive(h, body, frame=frame))
    applied += [a.op for a in of(backup.step(peer(Command.COMMIT, 0, commit=8, heartbeat=1)),
                                 Apply)]
    assert applied == [1, 2, 3, 4]
