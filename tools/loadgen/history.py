"""The `--history FILE` of the load generator: one JSON object per line per operation.

Owns the format (below), the batched writing of one worker's part file and the joining of the
parts into FILE. Must never decide what is sent or measure latency.

Format (the input of a later linearizability checker). Each line is one operation that was
issued (warm-up included), written when it completed or was given up:

    {"process": 0, "session": 3, "op": "create_topic", "key": "lg-k3x9-0-3-s1/t2",
     "invoke_ns": 81234567, "complete_ns": 82345678, "status": "ok", "code": 0,
     "result": {"id": 2, "bytes": 98}}

- `process`, `session`: the worker process index and the session index within it; together
  they name one client session, whose operations are sequential (one in flight).
- `op`: the operation kind (tools/loadgen/mix.py KINDS); `key`: the names it targets, joined by
  "/" (stream, stream/topic, stream/topic/group, or the username); "" for get_streams.
- `invoke_ns`: when the operation's frame was first sent; `complete_ns`: when its answer
  arrived, or null when no answer came before its deadline (status "unknown": it may or may
  not have taken effect, at any time after invoke_ns). Both are nanoseconds since the run's
  start on CLOCK_MONOTONIC, which every process of one host shares, so times of different
  processes compare. Retries (re-sends of the same frame) are inside [invoke_ns, complete_ns].
- `status`: "ok", the error's name (domains/errors.py, e.g. "stream_name_already_exists"),
  "evicted" or "unknown"; `code`: the Iggy error code (0 for ok, -1 unknown, -2 evicted).
- `result`: for "ok", `id` = the first u32 of the reply payload (the created or read object's
  id; null when the payload is empty, which for a get_* means "not found") and `bytes` = the
  payload's length; null otherwise.

Lines are grouped by process (each process's lines in completion order); sort by `invoke_ns`
for a global order.
"""

from __future__ import annotations

import os
import struct

import orjson

from tools.loadgen.metrics import UNAVAILABLE, code_name

# Lines a worker buffers before one write (bounds its memory; about 200 bytes a line).
BATCH_LINES = 4096
_U32 = struct.Struct("<I")


def part_path(path: str, process: int) -> str:
    return f"{path}.part{process}"


class HistoryWriter:
    """One worker's history lines, appended to its part file in batches."""

    def __init__(self, path: str, process: int, start_ns: int):
        self.path = part_path(path, process)
        self.process = process
        self.start_ns = start_ns
        self._lines: list[bytes] = []
        self._file = open(self.path, "wb")

    def add(self, session: int, kind: str, key: str, invoke_ns: int, complete_ns: int | None,
            code: int, payload: bytes) -> None:
        if code == UNAVAILABLE:
            status, complete = "unknown", None
        else:
            status, complete = ("ok" if code == 0 else code_name(code)), complete_ns - self.start_ns
        result = None
        if code == 0:
            result = {"id": _U32.unpack_from(payload)[0] if len(payload) >= 4 else None,
                      "bytes": len(payload)}
        self._lines.append(orjson.dumps({
            "process": self.process, "session": session, "op": kind, "key": key,
            "invoke_ns": invoke_ns - self.start_ns, "complete_ns": complete,
            "status": status, "code": code, "result": result}))
        if len(self._lines) >= BATCH_LINES:
            self.flush()

    def flush(self) -> None:
        if self._lines:
            self._file.write(b"\n".join(self._lines) + b"\n")
            self._file.flush()  # one write per batch: a crashed worker loses one batch at most
            self._lines.clear()

    def close(self) -> None:
        self.flush()
        self._file.close()


def join_parts(path: str, processes: int) -> None:
    """Concatenate the workers' part files into `path` (in process order) and remove them."""
    with open(path, "wb") as out:
        for process in range(processes):
            part = part_path(path, process)
            if not os.path.exists(part):
                continue
            with open(part, "rb") as source:
                while chunk := source.read(1 << 20):
                    out.write(chunk)
            os.remove(part)
