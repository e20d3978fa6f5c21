"""Structured logs: one JSON object per line on stderr (journald keeps them as they are).

Every event has a timestamp, a level, the emitting role and replica, an event name and its
fields. Callers pass values, never secrets: nothing here inspects them, so the rule is kept at
the call sites (passwords and tokens never reach a log call; see docs/SECURITY.md).
"""

from __future__ import annotations

import os
import sys
import time

import orjson

LEVELS = {"debug": 10, "info": 20, "warning": 30, "error": 40}

_context: dict[str, object] = {}
_threshold = LEVELS["info"]


def configure(level: str = "info", **context: object) -> None:
    """Set the level and the fields stamped on every line (role, replica, ...)."""
    global _threshold
    _threshold = LEVELS[level]
    _context.clear()
    _context.update(context)
    _context["pid"] = os.getpid()


def log(level: str, event: str, **fields: object) -> None:
    if LEVELS[level] < _threshold:
        return
    record = {"ts": round(time.time(), 6), "level": level, **_context, "event": event, **fields}
    try:
        sys.stderr.buffer.write(orjson.dumps(record, default=str) + b"\n")
        sys.stderr.buffer.flush()
    except (OSError, ValueError):
        pass  # a closed stderr must never take a role down


def info(event: str, **fields: object) -> None:
    log("info", event, **fields)


def warning(event: str, **fields: object) -> None:
    log("warning", event, **fields)


def error(event: str, **fields: object) -> None:
    log("error", event, **fields)


def debug(event: str, **fields: object) -> None:
    log("debug", event, **fields)
