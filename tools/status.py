"""`metavsr status`: one line per replica (role in the view, view, op, commit, applied,
checkpoint, lag, health), read from each replica's metrics endpoint.

Usage: metavsr status [--cluster HOST:PORT,...] [--dir D] [--json] [--timeout S] [--lag-warn N]

Owns: asking every replica at once, turning their figures into one table, and the exit code.
Must never change a replica nor need a credential: it reads the same GET /metrics Prometheus
scrapes (core/roles/metrics.py names every figure), so it costs a replica no log entry and
no login, and tells an operator nothing Prometheus does not (why: docs/OPERATIONS.md).

Cluster: --cluster lists the replicas' metrics addresses (`metrics_address` of each config) in
replica order; else the local cluster's D/cluster.json ("metrics" of each replica, see
tools/cluster_files.py; D = --dir, default .metavsr/cluster).

Columns: role is primary/backup while the replica is in normal status, `-` otherwise; lag is
the highest commit any replica reports minus this replica's applied op (how far its state is
behind the cluster). Health, first that applies: down (no answer within --timeout), starting
(a role is not ready yet), view-change, recovering, old-view (normal in a lower view than
another replica's normal view), lagging (lag above --lag-warn), ok.

Exit codes: 0 every replica ok; 1 some replica is not; 2 bad arguments or local files.
"""

from __future__ import annotations

import argparse
import http.client
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass

import orjson

from core.roles.metrics import VIEW_STATUS_NAMES
from tools import cluster_files
from tools.cluster_files import ClusterFilesError

HELP = "show every replica's role, view, op, commit, applied, checkpoint, lag and health"
EXIT_OK, EXIT_UNHEALTHY, EXIT_USAGE = 0, 1, 2
TIMEOUT_S = 2.0
LAG_WARN_OPS = 10_000
RESPONSE_BYTES_MAX = 1 << 20  # a replica's exposition is a few KiB; a bound against a wrong port
COLUMNS = ("replica", "address", "role", "view", "op", "commit", "applied", "checkpoint", "lag",
           "health")


@dataclass
class Row:
    replica: int
    address: str
    up: bool
    role: str = "-"
    view: int | None = None
    status: str = "down"
    op: int | None = None
    commit: int | None = None
    applied: int | None = None
    checkpoint: int | None = None
    lag: int | None = None
    health: str = "down"
    error: str = ""
    roles_ready: bool = False


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--cluster", help="metrics addresses HOST:PORT,... in replica order "
                                          "(default: the local cluster's D/cluster.json)")
    parser.add_argument("--dir", default=cluster_files.DEFAULT_DIR,
                        help=f"local cluster dir (default {cluster_files.DEFAULT_DIR})")
    parser.add_argument("--json", action="store_true", help="one JSON document")
    parser.add_argument("--timeout", type=float, default=TIMEOUT_S, metavar="S",
                        help=f"a replica silent this long is down (default {TIMEOUT_S})")
    parser.add_argument("--lag-warn", type=int, default=LAG_WARN_OPS, metavar="N",
                        help=f"lag above N ops is unhealthy (default {LAG_WARN_OPS})")


def run(args: argparse.Namespace) -> int:
    try:
        addresses = (cluster_files.parse_addresses(args.cluster) if args.cluster
                     else cluster_files.metrics_addresses(args.dir))
    except ClusterFilesError as error:
        print(f"metavsr status: {error}", file=sys.stderr)
        return EXIT_USAGE
    if args.timeout <= 0 or args.lag_warn < 0:
        print("metavsr status: --timeout must be positive and --lag-warn not negative",
              file=sys.stderr)
        return EXIT_USAGE
    rows = survey(addresses, args.timeout, args.lag_warn)
    if args.json:
        print(orjson.dumps({"replicas": [asdict(row) for row in rows]},
                           option=orjson.OPT_INDENT_2).decode())
    else:
        print(render(rows))
    return EXIT_OK if all(row.health == "ok" for row in rows) else EXIT_UNHEALTHY


def survey(addresses: list[tuple[str, int] | None], timeout_s: float,
           lag_warn: int = LAG_WARN_OPS) -> list[Row]:
    """Ask every replica at once (a down one costs the timeout once, not per replica)."""
    with ThreadPoolExecutor(max_workers=max(1, len(addresses))) as pool:
        answers = list(pool.map(lambda address: _ask(address, timeout_s), addresses))
    rows = [_row(index, address, answer)
            for index, (address, answer) in enumerate(zip(addresses, answers))]
    _judge(rows, lag_warn)
    return rows


def _ask(address: tuple[str, int] | None, timeout_s: float) -> dict[str, float] | str:
    """The replica's samples by `name` or `name{labels}`, or why it did not answer."""
    if address is None:
        return "no metrics address in cluster.json"
    connection = http.client.HTTPConnection(*address, timeout=timeout_s)
    try:
        connection.request("GET", "/metrics")
        response = connection.getresponse()
        body = response.read(RESPONSE_BYTES_MAX + 1)
        if response.status != 200:
            return f"HTTP {response.status}"
        if len(body) > RESPONSE_BYTES_MAX:
            return f"answer larger than {RESPONSE_BYTES_MAX} bytes"
        return _samples(body.decode("utf-8", "replace"))
    except (OSError, http.client.HTTPException) as error:
        return f"{type(error).__name__}: {error}"
    finally:
        connection.close()


def _samples(text: str) -> dict[str, float]:
    samples = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            key, _, value = line.rpartition(" ")
            try:
                samples[key] = float(value)
            except ValueError:
                continue  # not a sample we read; the rest of the answer still counts
    return samples


def _row(index: int, address: tuple[str, int] | None, answer: dict[str, float] | str) -> Row:
    shown = "-" if address is None else f"{address[0]}:{address[1]}"
    if isinstance(answer, str) or "metavsr_view" not in answer:
        error = answer if isinstance(answer, str) else "answer without metavsr_view"
        return Row(replica=index, address=shown, up=False, error=error)

    def figure(name: str) -> int | None:
        return int(answer[name]) if name in answer else None

    status = VIEW_STATUS_NAMES.get(figure("metavsr_view_status") or 0, "unknown")
    replica = figure("metavsr_replica")
    primary = figure("metavsr_primary")
    row = Row(replica=index if replica is None else replica, address=shown, up=True,
              view=figure("metavsr_view"), status=status, op=figure("metavsr_op"),
              commit=figure("metavsr_commit_op"), applied=figure("metavsr_applied_op"),
              checkpoint=figure("metavsr_checkpoint_op"),
              roles_ready=all(value == 1 for key, value in answer.items()
                              if key.startswith("metavsr_role_ready{")))
    if status == "normal":
        row.role = "primary" if primary == row.replica else "backup"
    return row


def _judge(rows: list[Row], lag_warn: int) -> None:
    up = [row for row in rows if row.up]
    commit_max = max((row.commit or 0 for row in up), default=0)
    # A replica in a view change counts a view nobody may have started yet: only views in
    # normal status say which one the cluster runs.
    view_max = max((row.view or 0 for row in up if row.status == "normal"), default=0)
    for row in up:
        if row.applied is not None:
            row.lag = max(0, commit_max - row.applied)
        if not row.roles_ready or row.status == "starting":
            row.health = "starting"
        elif row.status != "normal":
            row.health = row.status.replace("_", "-")
        elif (row.view or 0) < view_max:
            row.health = "old-view"
        elif row.lag is not None and row.lag > lag_warn:
            row.health = "lagging"
        else:
            row.health = "ok"


def render(rows: list[Row]) -> str:
    def cell(value) -> str:
        return "-" if value is None else str(value)

    table = [COLUMNS] + [tuple(cell(getattr(row, column)) for column in COLUMNS) for row in rows]
    widths = [max(len(line[i]) for line in table) for i in range(len(COLUMNS))]
    lines = ["  ".join(value.ljust(width) for value, width in zip(line, widths)).rstrip()
             for line in table]
    primaries = sorted(row.replica for row in rows if row.role == "primary")
    views = sorted({row.view for row in rows if row.up})
    lines.append(f"{sum(row.up for row in rows)}/{len(rows)} up; primary "
                 f"{','.join(map(str, primaries)) or 'none'}; "
                 f"view {','.join(map(str, views)) or '-'}")
    for row in rows:
        if row.error:
            lines.append(f"replica {row.replica}: {row.error}")
    return "\n".join(lines)

