"""The local cluster's files, as client tools read them (`metavsr ctl`, `loadgen`, `status`).

Owns: reading a local cluster's client addresses and credentials, and parsing HOST:PORT
addresses and secret files. Must never write these files (`metavsr cluster up` does) and never
print or log a secret it read.

Formats, in the cluster's data dir D (default `.metavsr/cluster`, relative to the working
directory, as `metavsr cluster up --dir D`):

  D/cluster.json   {"replicas": [{"client": "127.0.0.1:3001", ...}, ...]}
                   one object per replica in replica order; "client" (the address
                   clients connect to) and "metrics" (its GET /metrics address, absent in
                   clusters created before it existed) are read here, other keys ignored.
  D/credentials    exactly two lines, `username=NAME` and `password=SECRET` (no quoting; the
                   value is everything after the first '='), mode 0600. A file that group or
                   others can read is refused: it holds a secret.

A secret file given on the command line (--password-file) holds the secret on its first line;
one trailing newline is not part of it.
"""

from __future__ import annotations

import os
import stat

import orjson

DEFAULT_DIR = os.path.join(".metavsr", "cluster")
CLUSTER_FILE = "cluster.json"
CREDENTIALS_FILE = "credentials"
FILE_BYTES_MAX = 1 << 20  # far above any real file; a bound so a wrong path cannot eat memory
PORT_MAX = 65535


class ClusterFilesError(Exception):
    """A missing or malformed file or address; the message says which and why."""


def parse_address(text: str) -> tuple[str, int]:
    """`HOST:PORT` (an IPv6 host in brackets: `[::1]:3001`)."""
    host, sep, port = text.strip().rpartition(":")
    host = host.removeprefix("[").removesuffix("]")
    if not sep or not host or not port.isdigit() or not 1 <= int(port) <= PORT_MAX:
        raise ClusterFilesError(f"address {text!r} is not HOST:PORT (port 1..{PORT_MAX})")
    return host, int(port)


def parse_addresses(text: str) -> list[tuple[str, int]]:
    """A comma-separated list of HOST:PORT, as --cluster takes it."""
    addresses = [parse_address(part) for part in text.split(",") if part.strip()]
    if not addresses:
        raise ClusterFilesError("no address given")
    return addresses


def _read_text(path: str) -> str:
    try:
        return _read(path).decode("utf-8")
    except UnicodeDecodeError:
        raise ClusterFilesError(f"{path}: not UTF-8") from None


def _read(path: str) -> bytes:
    try:
        with open(path, "rb") as source:
            data = source.read(FILE_BYTES_MAX + 1)
    except OSError as error:
        raise ClusterFilesError(f"{path}: {error.strerror or error}") from None
    if len(data) > FILE_BYTES_MAX:
        raise ClusterFilesError(f"{path}: larger than {FILE_BYTES_MAX} bytes")
    return data


def cluster_addresses(directory: str = DEFAULT_DIR) -> list[tuple[str, int]]:
    path = os.path.join(directory, CLUSTER_FILE)
    try:
        document = orjson.loads(_read(path))
        replicas = document["replicas"]
        addresses = [parse_address(replica["client"]) for replica in replicas]
    except (orjson.JSONDecodeError, KeyError, TypeError, AttributeError) as error:
        raise ClusterFilesError(f"{path}: not {{\"replicas\": [{{\"client\": \"HOST:PORT\"}}, "
                                f"...]}} ({type(error).__name__}: {error})") from None
    if not addresses:
        raise ClusterFilesError(f"{path}: no replicas")
    return addresses


def metrics_addresses(directory: str = DEFAULT_DIR) -> list[tuple[str, int] | None]:
    """Each replica's metrics address, in replica order; None where cluster.json has none."""
    path = os.path.join(directory, CLUSTER_FILE)
    try:
        replicas = orjson.loads(_read(path))["replicas"]
        addresses = [parse_address(replica["metrics"]) if "metrics" in replica else None
                     for replica in replicas]
    except (orjson.JSONDecodeError, KeyError, TypeError, AttributeError) as error:
        raise ClusterFilesError(f"{path}: not {{\"replicas\": [{{\"metrics\": \"HOST:PORT\"}}, "
                                f"...]}} ({type(error).__name__}: {error})") from None
    if not addresses:
        raise ClusterFilesError(f"{path}: no replicas")
    return addresses


def read_credentials(directory: str = DEFAULT_DIR) -> tuple[str, str]:
    """(username, password) from D/credentials."""
    path = os.path.join(directory, CREDENTIALS_FILE)
    try:
        mode = os.stat(path).st_mode
    except OSError as error:
        raise ClusterFilesError(f"{path}: {error.strerror or error}") from None
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise ClusterFilesError(f"{path}: readable by group or others (mode "
                                f"{stat.S_IMODE(mode):04o}); chmod 600 it")
    values = {}
    for line in _read_text(path).splitlines():
        if not line.strip():
            continue
        key, sep, value = line.partition("=")
        if not sep or key.strip() not in ("username", "password") or key.strip() in values:
            raise ClusterFilesError(f"{path}: expected two lines, username=... and password=...")
        values[key.strip()] = value
    if set(values) != {"username", "password"} or not all(values.values()):
        raise ClusterFilesError(f"{path}: expected two lines, username=... and password=...")
    return values["username"], values["password"]


def read_secret_file(path: str) -> str:
    """The secret on the first line of `path` (one trailing newline removed)."""
    secret = _read_text(path).split("\n", 1)[0].removesuffix("\r")
    if not secret:
        raise ClusterFilesError(f"{path}: empty first line, expected the secret")
    return secret
