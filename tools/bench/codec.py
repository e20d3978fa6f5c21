"""`metavsr bench codec`: the checksum choice and the frame codec's cost.

Measures zlib.crc32 against xxHash3-64 (the xxhash package, the wire checksum) on the frame
sizes the system actually sends, and frames encoded/decoded per second, so a regression in the
codec shows up as a number rather than a guess.
"""

from __future__ import annotations

import argparse
import os
import time
import zlib

import xxhash

from net import wire
from tools.bench.report import print_table

HELP = "checksum (zlib.crc32 vs xxHash3) and frame encode/decode throughput"
SIZES_BYTES = (256, 4096, 65536)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--seconds", type=float, default=0.5,
                        help="time per measurement (default 0.5)")


def _rate(fn, payload, seconds: float) -> float:
    count = 0
    deadline = time.perf_counter() + seconds
    start = time.perf_counter()
    while time.perf_counter() < deadline:
        for _ in range(200):
            fn(payload)
        count += 200
    return count / (time.perf_counter() - start)


def run(args: argparse.Namespace) -> dict[str, float]:
    figures: dict[str, float] = {}
    rows = []
    for size in SIZES_BYTES:
        payload = os.urandom(size)
        crc = _rate(zlib.crc32, payload, args.seconds) * size / 1e6
        xxh = _rate(xxhash.xxh3_64_intdigest, payload, args.seconds) * size / 1e6
        figures[f"crc32_{size}b_mb_per_s"] = crc
        figures[f"xxh3_{size}b_mb_per_s"] = xxh
        rows.append((f"checksum {size} B", crc, xxh, xxh / crc))
    print_table(("measure", "zlib.crc32 MB/s", "xxh3-64 MB/s", "xxh3/crc32"), rows)
    print()
    body = os.urandom(200)
    header = wire.make_header(wire.Command.PREPARE, op=1, cluster=wire.cluster_bytes(1))
    frame = wire.encode(header, body)
    encode_rate = _rate(lambda b: wire.encode(header, b), body, args.seconds)
    decode_rate = _rate(wire.decode, frame, args.seconds)
    figures["encode_200b_frames_per_s"] = encode_rate
    figures["decode_verify_200b_frames_per_s"] = decode_rate
    print_table(("frame 256+200 B", "frames/s"),
                [("encode (with checksums)", encode_rate), ("decode (verified)", decode_rate)])
    return figures
