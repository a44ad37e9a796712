"""Logging setup: structlog over the standard library, one line per event.

Levels follow LOG_LEVEL (error, warn, info, debug).  Component prefixes from the guide
(`[CampaignWorker]`, `[CallFlow]`, `[CARE_AUDIT]`) are part of the messages themselves so
the guide's grep recipes work on our logs.
"""

from __future__ import annotations

import logging
import sys

import structlog

from aisha_server.config import LogLevel

_LEVELS = {
    LogLevel.ERROR: logging.ERROR,
    LogLevel.WARN: logging.WARNING,
    LogLevel.INFO: logging.INFO,
    LogLevel.DEBUG: logging.DEBUG,
}


def configure_logging(level: LogLevel) -> None:
    processors: list[structlog.typing.Processor] = [
        structlog.stdlib.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=processors,
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            structlog.dev.ConsoleRenderer(colors=False),
        ],
    )
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(_LEVELS[level])
    for noisy in ("aiohttp.access", "alembic", "alembic.runtime.migration"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, _LEVELS[level]))
    structlog.configure(
        processors=[*processors, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        cache_logger_on_first_use=True,
    )
