"""Network namespaces: one per replica, so every connection to it must cross the chaos proxy.

Each replica runs in its own namespace, where its configured addresses (127.0.0.1:port) are
private to it; the proxy owns the same addresses in the root namespace (client ports) and in
every other replica's namespace (that replica's view of the peer ports) and forwards into the
target namespace. Replica configs stay exactly as `metavsr cluster up` writes them, and a roster
the cluster hands a client names addresses the proxy serves. Needs root (CAP_SYS_ADMIN).
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import subprocess

_CLONE_NEWNET = 0x40000000
_libc = ctypes.CDLL(None, use_errno=True)


class NetnsError(RuntimeError):
    pass


def create(name: str) -> None:
    for command in (["ip", "netns", "add", name], ["ip", "netns", "exec", name, "ip", "link",
                                                  "set", "lo", "up"]):
        out = subprocess.run(command, capture_output=True, text=True, timeout=30)
        if out.returncode != 0:
            raise NetnsError(f"{' '.join(command)}: {out.stderr.strip()} "
                             "(metavsr chaos needs root for network namespaces)")


def delete(name: str) -> None:
    subprocess.run(["ip", "netns", "del", name], capture_output=True, timeout=30)


def pids(name: str) -> list[int]:
    """Processes still running in the namespace."""
    out = subprocess.run(["ip", "netns", "pids", name], capture_output=True, text=True,
                         timeout=30)
    return [int(pid) for pid in out.stdout.split()]


def exec_prefix(name: str) -> list[str]:
    """`ip netns exec` enters the namespace and execs the command: same pid, no extra process."""
    return ["ip", "netns", "exec", name]


@contextlib.contextmanager
def entered(name: str | None):
    """The calling thread is in namespace `name` (None: stay) for the block: a socket created
    there belongs to that namespace for its whole life."""
    if name is None:
        yield
        return
    own = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
    target = os.open(f"/run/netns/{name}", os.O_RDONLY)
    try:
        if _libc.setns(target, _CLONE_NEWNET) != 0:
            raise NetnsError(f"setns into {name}: errno {ctypes.get_errno()}")
        try:
            yield
        finally:
            if _libc.setns(own, _CLONE_NEWNET) != 0:
                raise NetnsError(f"setns back from {name}: errno {ctypes.get_errno()}")
    finally:
        os.close(target)
        os.close(own)
