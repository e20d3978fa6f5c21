"""Free loopback listen ports for the servers our tools and tests start on this machine.

One way to pick them for benchmarks, the chaos run and the integration tests: below the
ephemeral range (an outgoing connection must never take a listen port) and probed by binding.
"""

from __future__ import annotations

import random
import socket

PORT_LOW = 10_000
PORT_TRIES = 200


def _ephemeral_low() -> int:
    with open("/proc/sys/net/ipv4/ip_local_port_range") as source:
        return int(source.read().split()[0])


def free_ports(offsets: list[int]) -> int:
    """A base port B such that B + each offset is free on 127.0.0.1, all below the ephemeral
    range."""
    rng = random.Random()
    high = _ephemeral_low() - max(offsets) - 1
    assert high > PORT_LOW, "the ephemeral port range leaves no room for listen ports"
    for _ in range(PORT_TRIES):
        base = rng.randrange(PORT_LOW, high)
        try:
            for offset in offsets:
                with socket.socket() as probe:
                    probe.bind(("127.0.0.1", base + offset))
        except OSError:
            continue
        return base
    raise RuntimeError(f"no free ports for offsets {offsets} after {PORT_TRIES} tries")
