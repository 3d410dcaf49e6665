"""Logging setup: every record carries the transcript id and principal of the stream or
call it concerns (from context variables, so no call site has to pass them), as text
for people or as one JSON object per line for log pipelines.

Transcript text is never logged at INFO or above: records say what happened to which
transcript (ids, sizes, durations, codes), not what was said.
"""

from __future__ import annotations

import json
import logging
import sys
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any

from service.auth import current_principal

current_transcript: ContextVar[str] = ContextVar("transcript_id", default="")
"""Set by a stream once its transcript exists; tasks it starts inherit it."""

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s [%(transcript_id)s %(principal)s] %(message)s"


class ContextFilter(logging.Filter):
    """Adds `transcript_id` and `principal` to every record passing a handler."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.transcript_id = current_transcript.get() or "-"
        record.principal = current_principal()
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per record, with the context fields as their own keys."""

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        tid = getattr(record, "transcript_id", "-")
        if tid != "-":
            out["transcript_id"] = tid
        out["principal"] = getattr(record, "principal", "")
        if record.exc_info:
            out["exception"] = self.formatException(record.exc_info)
        return json.dumps(out, ensure_ascii=False)


def handler_for(fmt: str, stream: Any = None) -> logging.Handler:
    """A stream handler in `fmt` ("text" or "json") with the context filter attached."""
    if fmt not in ("text", "json"):
        raise ValueError(f"log format must be text or json, not {fmt!r}")
    handler = logging.StreamHandler(stream if stream is not None else sys.stderr)
    handler.addFilter(ContextFilter())
    handler.setFormatter(JsonFormatter() if fmt == "json" else logging.Formatter(TEXT_FORMAT))
    return handler


def configure(level: str, fmt: str) -> None:
    """Root logging for the server process (called once, from main)."""
    root = logging.getLogger()
    root.handlers[:] = [handler_for(fmt)]
    root.setLevel(level.upper())
