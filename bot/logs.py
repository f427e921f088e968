"""Logging: text or JSON lines, with the token-bearing HTTP loggers kept quiet."""

from __future__ import annotations

import logging
import sys

from pythonjsonlogger.json import JsonFormatter

from bot.config import LoggingSettings

QUIET = ("httpx", "httpcore", "apscheduler", "aiosqlite", "asyncio")
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def configure(settings: LoggingSettings) -> None:
    """Set up the root logger once for the process."""
    handler = logging.StreamHandler(sys.stderr)
    if settings.format == "json":
        handler.setFormatter(
            JsonFormatter(
                "%(asctime)s %(levelname)s %(name)s %(message)s",
                rename_fields={"levelname": "level", "asctime": "time"},
            )
        )
    else:
        handler.setFormatter(logging.Formatter(TEXT_FORMAT))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(settings.level)
    # Request URLs carry the bot token: never log them.
    for name in QUIET:
        logging.getLogger(name).setLevel(logging.WARNING)
