"""The workload's requests, run through the real domains (admission, apply, reads): every one
succeeds and every read finds what it asks for, so loadgen's errors on a cluster are the
cluster's, never the workload's."""

from __future__ import annotations

from domains.mux import MuxStateMachine
from net.iggy import Operation
from tests.domains.helpers import Driver, admit_sdk
from tools.loadgen.mix import KINDS
from tools.loadgen.workload import Catalogue, Workload

SESSIONS, OPS_PER_SESSION = 3, 700


def test_every_operation_of_an_all_kinds_mix_succeeds_against_the_domains():
    mux = MuxStateMachine()
    driver = Driver(mux)
    workloads, shared = [], Catalogue()
    for session in range(SESSIONS):
        client = bytes([session + 1]) * 16
        assert driver.login(client, user_id=0)[0] == 0
        workloads.append((client, Workload({kind: 1 for kind in KINDS}, seed=7, run="t",
                                           process=0, session=session, shared=shared)))
    seen = set()
    for _ in range(OPS_PER_SESSION):
        for client, workload in workloads:  # interleaved, as concurrent sessions are
            op = workload.next_op()
            if op.operation == Operation.NON_REPLICATED:
                status, payload = mux.query(op.code, op.body, 0)
                assert payload, f"{op.kind} {op.key} found nothing"
            else:
                body = admit_sdk(mux, op.operation, op.body, 0)
                status, payload = driver.write(client, op.operation, body)
            assert status == 0, (op.kind, op.key, status)
            workload.completed(op, status)
            seen.add(op.kind)
    assert seen == set(KINDS)
