"""structlog configuration shared by the control process and the workers.

Caller-supplied strings (numbers, display names, headers) reach log lines,
so every string value is escaped: a control character can't forge a line
or move a terminal's cursor.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import MutableMapping
from typing import Any, Literal

import structlog

_LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING, "error": logging.ERROR}
_UNSAFE = {i: f"\\x{i:02x}" for i in [*range(0x20), 0x7F] if i not in (0x09,)}


def escape_control(text: str) -> str:
    return text.translate(_UNSAFE)


def _escape_values(_logger: Any, _name: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    for key, value in event.items():
        if isinstance(value, str) and key not in ("exception",):
            event[key] = escape_control(value)
    return event


def configure_logging(fmt: Literal["console", "json"] = "console", level: str = "info") -> None:
    threshold = _LEVELS.get(level, logging.INFO)
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        _escape_values,
    ]
    if fmt == "json":
        processors = [*shared, structlog.processors.format_exc_info, structlog.processors.JSONRenderer()]
    else:
        processors = [*shared, structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty())]
    structlog.configure(
        processors=processors,
        wrapper_class=structlog.make_filtering_bound_logger(threshold),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=True,
    )
    # asyncio reports slow callbacks (debug mode) and unhandled task errors
    # through stdlib logging: route it to stderr in the same process.
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr, format="%(levelname)s %(name)s: %(message)s")
