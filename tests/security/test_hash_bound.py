"""The net role bounds its queue of scrypt jobs: past the bound a login is told to retry (58)
at once instead of waiting behind seconds of hashing, and the refusal is counted."""

from __future__ import annotations

import socket
import time

from core import auth
from core.roles import records
from core.roles.records import Kind
from net import iggy, wire
from net.iggy import Operation
from tests.security.test_peer_auth import KEY, _recv_frame, _Replica, _replicas


def _queries(node: _Replica, count: int) -> list[int]:
    """Connection ids of `count` credentials lookups the net role sent to the owner."""
    consumer = node.owner.consumers["owner_net"]
    conns = []
    deadline = time.monotonic() + 10
    while len(conns) < count:
        assert time.monotonic() < deadline, f"{len(conns)} of {count} lookups arrived"
        for record in consumer.pop(16):
            if records.kind_of(record) == Kind.CREDENTIALS_QUERY:
                conns.append(records.read_credentials_query(record)[0])
            del record
        consumer.release()
        time.sleep(0.002)
    return conns


def test_logins_beyond_the_hash_job_bound_are_told_to_retry():
    replicas = _replicas()
    node = _Replica(0, replicas, KEY)
    try:
        held = []
        node.role.hash_jobs_max = 1
        node.role._jobs.submit = lambda fn, job: held.append(job)  # jobs never finish
        socks = []
        for index in range(3):
            sock = socket.create_connection((replicas[0].client_host, replicas[0].client_port),
                                            timeout=10)
            sock.sendall(iggy.request_frame(bytes([index + 1]) * 16, 0, 0, Operation.REGISTER,
                                            iggy.login_body("alice", "alice-password")))
            socks.append(sock)
        stored = auth.hash_secret("alice-password", n_log2=10)
        for conn in _queries(node, 3):
            node.owner.producers["replies"].push(records.credentials(conn, True, 7, True, stored))
        statuses = []
        for sock in socks:
            sock.settimeout(1.0)  # the refusals come at once; one socket gets no answer
            try:
                statuses.append(wire.decode_header(_recv_frame(sock)).status)
            except socket.timeout:
                statuses.append(None)  # its job is the one held
        assert sorted(statuses, key=str) == sorted(
            [iggy.STATUS_TRANSIENT_NOT_ACCEPTED] * 2 + [None], key=str)
        assert len(held) == 1 and node.role.gateway.counters.refused_busy == 2
        for sock in socks:
            sock.close()
    finally:
        node.stop()
