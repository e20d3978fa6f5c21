"""Applying one committed prepare to a state machine, exactly once per client request.

Owns the loop over a prepare's batch and the client-table lookup that makes retries
idempotent: a request the client table already answered gets its cached reply and is not
executed again. Used by the owner process and the simulator; it never touches the replica's
protocol state and never does I/O.

State machine interface (implemented by domains.MuxStateMachine and the simulator's KV):
  apply(op, timestamp_us, client, session, request, user_id, operation, body) -> (status, result)
  query(code, body, user_id) -> (status, result)
  client_reply(client, request) -> (status, result) | None   (cached reply of a request the
      table already holds: request <= the client's last one)
  snapshot() -> {section: (version, bytes)};  restore(sections);  digest() -> bytes
"""

from __future__ import annotations

from core.vsr.messages import AppliedEntry
from net.batch import decode_batch
from net.wire import HEADER_SIZE, decode_header


def apply_prepare(state_machine, frame: bytes) -> tuple[int, list[AppliedEntry]]:
    header = decode_header(frame)
    entries = decode_batch(memoryview(frame)[HEADER_SIZE:], header.request_count)
    results = []
    for entry in entries:
        cached = state_machine.client_reply(entry.client, entry.request)
        if cached is None:
            # The state machine interface takes bytes (domains decode with bytes methods).
            status, result = state_machine.apply(
                header.op, header.timestamp, entry.client, entry.session, entry.request,
                entry.user_id, entry.operation, bytes(entry.body))
        else:
            status, result = cached
        results.append(AppliedEntry(entry.client, entry.request, entry.operation, status,
                                    bytes(result)))
    return header.op, results
