"""Logging setup: key=value lines for people, JSON lines for machines.

Secrets and message bodies never reach a log: keys named like a credential or a body are
redacted whatever the caller passes in `extra`.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from typing import Any, Literal

__all__ = ["LogFormat", "kv", "setup_logging"]

LogFormat = Literal["text", "json"]

_REDACT = ("password", "passwd", "secret", "token", "authorization", "body", "literal")
_STD_ATTRS = set(vars(logging.makeLogRecord({}))) | {"message", "asctime", "taskName"}


def _redacted(key: str, value: Any) -> Any:
    k = key.lower()
    return "***" if any(r in k for r in _REDACT) else value


def _fields(record: logging.LogRecord) -> dict[str, Any]:
    return {k: _redacted(k, v) for k, v in vars(record).items() if k not in _STD_ATTRS}


def _fmt_value(v: Any) -> str:
    s = str(v)
    if s == "" or any(c in s for c in ' ="\n'):
        return json.dumps(s)
    return s


class KeyValueFormatter(logging.Formatter):
    """`ts=... level=info logger=cpmsync.daemon msg="synced" folders=3`."""

    def format(self, record: logging.LogRecord) -> str:
        ts = time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(record.created))
        parts = [
            f"ts={ts}.{int(record.msecs):03d}",
            f"level={record.levelname.lower()}",
            f"logger={record.name}",
            f"msg={_fmt_value(record.getMessage())}",
        ]
        parts += [f"{k}={_fmt_value(v)}" for k, v in _fields(record).items()]
        if record.exc_info:
            parts.append(f"exc={_fmt_value(self.formatException(record.exc_info))}")
        return " ".join(parts)


class JsonFormatter(logging.Formatter):
    """One JSON object per line, for journald/Loki style collectors."""

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "ts": record.created,
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        out.update(_fields(record))
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        return json.dumps(out, default=str)


def setup_logging(fmt: LogFormat = "text", level: str | int = "INFO") -> None:
    """Install one stderr handler on the root logger (idempotent: replaces earlier ones)."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else KeyValueFormatter())
    root = logging.getLogger()
    for h in list(root.handlers):
        root.removeHandler(h)
    root.addHandler(handler)
    root.setLevel(level if isinstance(level, int) else level.upper())


def kv(**fields: Any) -> dict[str, Any]:
    """`log.info("synced", extra=kv(folders=3))` reads better than a bare dict."""
    return fields
