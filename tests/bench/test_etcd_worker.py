"""The etcd backend of the load generator against a fake etcd gateway in a thread.

The fake speaks the two calls the backend uses (POST /v3/kv/put, /v3/kv/range) over HTTP/1.1
keep-alive and keeps the keys it was given, so the test knows exactly what a correct backend
must report: every operation answered and counted once per kind, every range finding a key put
before it; and when the fake forgets what was put, every range counted as the not-found error.
"""

from __future__ import annotations

import base64
import socket
import threading

import orjson
import pytest

from tools.bench import etcd_load
from tools.loadgen import coordinator
from tools.loadgen.worker import WorkerConfig


class FakeGateway:
    def __init__(self, forget: bool):
        self.forget = forget
        self.keys: set[bytes] = set()
        self.requests = {"/v3/kv/put": 0, "/v3/kv/range": 0}
        self.lock = threading.Lock()
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.address = self.listener.getsockname()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        buffer = b""
        with conn:
            while True:
                while b"\r\n\r\n" not in buffer:
                    data = conn.recv(65536)
                    if not data:
                        return
                    buffer += data
                head, _, buffer = buffer.partition(b"\r\n\r\n")
                lines = head.decode().split("\r\n")
                length = next(int(line.split(":")[1]) for line in lines
                              if line.lower().startswith("content-length"))
                while len(buffer) < length:
                    buffer += conn.recv(65536)
                body, buffer = orjson.loads(buffer[:length]), buffer[length:]
                path = lines[0].split()[1]
                key = base64.b64decode(body["key"])
                with self.lock:
                    self.requests[path] += 1
                    if path == "/v3/kv/put":
                        assert len(base64.b64decode(body["value"])) == etcd_load.VALUE_BYTES
                        if not self.forget:
                            self.keys.add(key)
                        answer = {"header": {"revision": "1"}}
                    else:
                        answer = ({"header": {}, "kvs": [{"key": body["key"]}], "count": "1"}
                                  if key in self.keys else {"header": {}})
                out = orjson.dumps(answer)
                conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                             b"Content-Length: %d\r\n\r\n%s" % (len(out), out))

    def close(self) -> None:
        self.listener.close()


def run(gateway: FakeGateway, ops: int):
    config = WorkerConfig(addresses=(gateway.address,), login_body=b"", processes=2, clients=3,
                          mix={"put": 1, "range": 1}, seed=1, run="t", rate=None,
                          duration_s=None, ops=ops, warmup_s=0.0, stale_reads=False,
                          history=None, drain_s=10.0)
    return coordinator.run(config, None, etcd_load.main).totals


@pytest.mark.parametrize("forget", [False, True])
def test_every_operation_is_counted_once_by_kind(forget):
    gateway = FakeGateway(forget)
    try:
        totals = run(gateway, 200)
    finally:
        gateway.close()
    puts, ranges = totals.completed["put"], totals.completed["range"]
    assert puts + ranges == 200
    assert gateway.requests == {"/v3/kv/put": puts, "/v3/kv/range": ranges}
    assert ranges > 30  # a 1:1 mix; ranges only wait for the first put of each process
    assert totals.histograms["put"].total == puts
    if forget:
        not_found = etcd_load.HTTP_CODE_BASE + 404
        assert dict(totals.errors) == {("range", f"code_{not_found}"): ranges}
    else:
        assert not totals.errors
