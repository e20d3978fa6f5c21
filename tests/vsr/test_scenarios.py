"""Targeted fault scenarios, each a seeded simulation with scripted faults and all checkers."""

from core.vsr.messages import Append
from net.wire import HEADER_SIZE, frame_checksum
from tools.simulator.cluster import Cluster

from tests.vsr.helpers import every_tick, once, primary_index

TICKS = 2000
# Checkpoints rare enough that every prepare stays in the journals: repair, not state transfer.
NO_STATE_TRANSFER = dict(checkpoint_interval=4096, journal_retention_ops=2048)


def assert_ok(result):
    assert result.ok, "\n".join(result.failures)


def test_primary_crash_with_a_full_pipeline_loses_nothing_acknowledged():
    config = dict(pipeline_max=4, batch_max=1, checkpoint_interval=64, journal_retention_ops=16,
                  view_headers_max=16)
    full = lambda c: (primary_index(c) is not None and
                      len(c.nodes[primary_index(c)].replica.pipeline) == 4)
    crash = once(full, lambda c: c.crash(primary_index(c), 300))
    cluster = Cluster(1, 3, TICKS, "none", config=config, clients=16,
                      schedule=every_tick(crash, 200, 1000))
    result = cluster.run()
    assert crash.fired, "the pipeline never filled"
    assert_ok(result)
    assert max(n.replica.view for n in cluster.nodes) >= 1


def test_primary_partitioned_away_is_replaced_and_rejoins():
    isolate = once(lambda c: primary_index(c) is not None,
                   lambda c: c.isolate([primary_index(c)], 400))
    cluster = Cluster(2, 3, TICKS, "none", schedule={300: [isolate]})
    result = cluster.run()
    assert_ok(result)
    views = {n.replica.view for n in cluster.nodes}
    assert len(views) == 1 and views.pop() >= 1


def test_view_change_discards_a_divergent_uncommitted_suffix():
    """The old primary keeps its clients but loses its backups: it prepares ops nobody else
    has; the new view commits other ops at those numbers, so the old suffix must go."""
    cluster = Cluster(3, 3, TICKS, "none")
    state = {"suffix": {}}

    def cut_backups(c):
        p = primary_index(c)
        state["old_primary"] = p
        c.network.partition([p], [r for r in range(c.replica_count) if r != p])
        c.partition_until = c.now + 300

    execute = cluster._execute

    def spy(index, node, action):
        if isinstance(action, Append) and index == state.get("old_primary") and \
                cluster.partition_until and node.replica.is_primary and \
                node.replica.view == 0:
            state["suffix"][action.op] = frame_checksum(action.frame)
        return execute(index, node, action)
    cluster._execute = spy
    cluster.schedule = {300: [cut_backups]}
    assert_ok(cluster.run())
    suffix = state["suffix"]
    assert suffix, "the isolated primary prepared nothing"
    old = cluster.nodes[state["old_primary"]].replica
    assert old.commit_min > max(suffix)
    for op, checksum in suffix.items():
        assert cluster.committed_checksums[op] != checksum


def _corrupt_backup_entry(keep_header):
    state = {}

    def corrupt_and_crash(c):
        p = primary_index(c)
        backup = (p + 1) % c.replica_count
        storage = c.storages[backup]
        ops = sorted(o for o, f in storage.durable.items() if f and len(f) > HEADER_SIZE)
        op = ops[len(ops) // 2]
        frame = storage.durable[op]
        storage.durable[op] = frame[:HEADER_SIZE] if keep_header else None
        state.update(backup=backup, op=op, checksum=frame[:8])
        c.crash(backup, 20)
    return state, corrupt_and_crash


def test_backup_with_a_corrupt_body_repairs_it_from_a_peer():
    state, event = _corrupt_backup_entry(keep_header=True)
    cluster = Cluster(4, 3, TICKS, "none", config=NO_STATE_TRANSFER, schedule={400: [event]})
    assert_ok(cluster.run())
    replica = cluster.nodes[state["backup"]].replica
    assert replica.commit_min > state["op"]
    assert replica.log.frames[state["op"]][:8] == state["checksum"]


def test_backup_with_a_wholly_corrupt_entry_repairs_it_by_the_hash_chain():
    state, event = _corrupt_backup_entry(keep_header=False)
    cluster = Cluster(5, 3, TICKS, "none", config=NO_STATE_TRANSFER, schedule={400: [event]})
    assert_ok(cluster.run())
    replica = cluster.nodes[state["backup"]].replica
    assert replica.commit_min > state["op"]
    assert replica.log.frames[state["op"]][:8] == state["checksum"]


def test_replica_restarted_in_the_middle_of_a_view_change():
    crash_primary = once(lambda c: primary_index(c) is not None,
                         lambda c: c.crash(primary_index(c), 200))
    in_view_change = lambda c: any(n is not None and n.replica.status == "view_change"
                                   for n in c.nodes)

    def crash_voter(c):
        voter = next(i for i, n in enumerate(c.nodes)
                     if n is not None and n.replica.status == "view_change")
        c.crash(voter, 15)
    crash_mid = once(in_view_change, crash_voter)
    schedule = {300: [crash_primary]}
    for tick in range(301, 700):
        schedule.setdefault(tick, []).append(crash_mid)
    cluster = Cluster(6, 3, TICKS, "none", schedule=schedule)
    assert_ok(cluster.run())
    assert crash_mid.fired


def test_duplicate_request_after_commit_gets_the_cached_reply():
    from core.vsr.messages import Append, Receive, ReplyFromTable
    from net.wire import Command, decode, encode, make_header

    cluster = Cluster(7, 3, 600, "none")
    assert_ok(cluster.run())
    client = next(c for c in cluster.clients if any(k[0] == c.id for k in cluster.acked))
    request = max(r for cid, r in cluster.acked if cid == client.id)
    node = cluster.nodes[primary_index(cluster)]
    header = make_header(Command.REQUEST, client=client.id, request=request, operation=128,
                         session=client.session)
    h, body = decode(encode(header, b"\x00retry", checksums=False), verify=False)
    actions = node.replica.step(Receive(h, body))
    assert any(isinstance(a, ReplyFromTable) for a in actions)
    assert not any(isinstance(a, Append) for a in actions)
    assert node.state_machine.client_reply(client.id, request) is not None


def test_five_replicas_keep_committing_with_two_replicas_down():
    progress = {}

    def crash_two(c):
        p = primary_index(c)
        c.crash(p, 800)
        c.crash((p + 1) % 5, 800)
        progress["start"] = max(n.replica.commit_min for n in c.nodes if n)

    def measure(c):
        progress["during"] = max(n.replica.commit_min for n in c.nodes if n)
        progress["down"] = sum(1 for n in c.nodes if n is None)

    cluster = Cluster(8, 5, TICKS, "none", schedule={300: [crash_two], 1000: [measure]})
    assert_ok(cluster.run())
    assert progress["down"] == 2
    assert progress["during"] > progress["start"] + 20


def test_whole_cluster_restart_recovers_every_acknowledged_write_from_disk():
    def crash_all(c):
        for index in range(c.replica_count):
            c.crash(index, 30 + 7 * index, torn=True)
    cluster = Cluster(9, 3, TICKS, "none", schedule={400: [crash_all]})
    assert_ok(cluster.run())
    assert min(n.replica.commit_min for n in cluster.nodes) > 0
