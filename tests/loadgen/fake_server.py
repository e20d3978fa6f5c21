"""A fake Iggy server with a fixed service time: the known source loadgen's numbers are checked
against.

One thread serves every request of every connection one at a time, in arrival order, each
taking exactly SERVICE seconds: request i completes at max(arrival_i, completion_{i-1}) +
SERVICE (a virtual schedule, so late wake-ups never stretch the service time). Hence, with the
queue never empty, throughput is exactly 1 / SERVICE, and a closed loop of C sessions sees a
latency of C x SERVICE.

It speaks just enough of the protocol: any login is accepted (a new session each), the code-12
roster names this server as the leader, every other request succeeds with a small payload whose
first u32 is a counter. Fault options, so the client's re-send paths are exercised:
--transient-every N answers every N-th request with 57 (TransientNotCommitted), --drop-every N
closes the connection instead of answering every N-th request, and --backup-after N answers 58
(TransientNotAccepted, "not the primary") to everything after the N-th request, as a replica
that lost its leadership does. --refuse-logins answers every Register with Eviction 9
(InvalidCredentials).

Usage: python tests/loadgen/fake_server.py --service-ms 5  (prints its port on stdout).
Never used outside the tests.
"""

from __future__ import annotations

import argparse
import collections
import selectors
import socket
import struct
import sys
import time

from net import iggy
from net.framing import FrameReader
from net.iggy import Code, Operation
from net.wire import FRAME_SIZE_MAX, FrameError, decode_header


def serve(service_s: float, transient_every: int, drop_every: int, backup_after: int,
          refuse_logins: bool) -> None:
    listener = socket.socket()
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", 0))
    listener.listen(512)
    listener.setblocking(False)
    port = listener.getsockname()[1]
    roster = iggy.cluster_metadata_body("fake", [iggy.Node("fake", "127.0.0.1", port, True)])
    selector = selectors.DefaultSelector()
    selector.register(listener, selectors.EVENT_READ, None)
    readers: dict[socket.socket, FrameReader] = {}
    queue: collections.deque = collections.deque()  # (done_at, sock, header)
    last_done = 0.0
    served = sessions = 0
    print(port, flush=True)

    def close(sock):
        selector.unregister(sock)
        readers.pop(sock, None)
        sock.close()

    while True:
        timeout = None if not queue else max(0.0, queue[0][0] - time.monotonic())
        for key, _ in selector.select(timeout):
            if key.fileobj is listener:
                conn, _ = listener.accept()
                conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                readers[conn] = FrameReader(FRAME_SIZE_MAX)
                selector.register(conn, selectors.EVENT_READ, None)
                continue
            sock = key.fileobj
            try:
                data = sock.recv(65536)
                if not data:
                    raise ConnectionError
                readers[sock].feed(data)
                frames = readers[sock].frames()
            except (OSError, FrameError):
                close(sock)
                continue
            for frame in frames:
                arrival = time.monotonic()
                last_done = max(arrival, last_done) + service_s
                queue.append((last_done, sock, decode_header(frame)))
        now = time.monotonic()
        while queue and queue[0][0] <= now:
            _, sock, header = queue.popleft()
            if sock not in readers:
                continue
            served += 1
            if drop_every and served % drop_every == 0:
                close(sock)
                continue
            if backup_after and served > backup_after:
                answer = iggy.reply_frame(header, status=iggy.STATUS_TRANSIENT_NOT_ACCEPTED)
            elif transient_every and served % transient_every == 0:
                answer = iggy.reply_frame(header, status=iggy.STATUS_TRANSIENT_NOT_COMMITTED)
            elif header.operation == Operation.REGISTER and refuse_logins:
                answer = iggy.eviction_frame(header.client, iggy.EvictionReason.INVALID_CREDENTIALS)
            elif header.operation == Operation.REGISTER:
                sessions += 1
                answer = iggy.answer_frame(header, 0, struct.pack("<IQ", 0, sessions))
            elif header.operation == Operation.NON_REPLICATED and header.code == Code.GET_CLUSTER_METADATA:
                answer = iggy.answer_frame(header, 0, roster)
            else:
                answer = iggy.answer_frame(header, 0, struct.pack("<I", served) + bytes(20))
            try:
                sock.sendall(answer)
            except OSError:
                close(sock)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--service-ms", type=float, required=True)
    parser.add_argument("--transient-every", type=int, default=0)
    parser.add_argument("--drop-every", type=int, default=0)
    parser.add_argument("--backup-after", type=int, default=0)
    parser.add_argument("--refuse-logins", action="store_true")
    args = parser.parse_args()
    serve(args.service_ms / 1000.0, args.transient_every, args.drop_every, args.backup_after,
          args.refuse_logins)


if __name__ == "__main__":
    sys.exit(main())
