"""Logging: text or JSON lines; token-bearing HTTP loggers kept quiet, every secret masked."""

from __future__ import annotations

import logging
import sys
import weakref
from collections.abc import Iterable
from types import TracebackType

from pythonjsonlogger.json import JsonFormatter

from bot.config import LoggingSettings, Settings

QUIET = ("httpx", "httpcore", "apscheduler", "aiosqlite", "asyncio")
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
MASK = "[redacted]"
MIN_SECRET = 8  # shorter strings are not worth masking (and would mask ordinary words)


def secrets_of(settings: Settings) -> list[str]:
    """Return the strings no log may show: the bot token, its secret half, the webhook secret."""
    found: list[str] = []
    tg = settings.telegram
    if tg.token is not None:
        token = tg.token.get_secret_value()
        found += [token, token.partition(":")[2]]
    if tg.webhook_secret is not None:
        found.append(tg.webhook_secret.get_secret_value())
    zalo = settings.zalo
    if zalo.bot_token is not None:
        token = zalo.bot_token.get_secret_value()
        found += [token, token.partition(":")[2]]
    if zalo.webhook_secret is not None:
        found.append(zalo.webhook_secret.get_secret_value())
    if settings.zalo.oa_access_token is not None:
        found.append(settings.zalo.oa_access_token.get_secret_value())
    if settings.zalo.app_secret is not None:
        found.append(settings.zalo.app_secret.get_secret_value())
    oa = settings.zalo.oa
    keys = (oa.secret_key, oa.oa_secret_key, oa.refresh_token)
    found += [key.get_secret_value() for key in keys if key is not None]
    return found


class Redactor(logging.Filter):
    """Replace every secret in a record (message, arguments, traceback, stack) with a mask."""

    def __init__(self, secrets: Iterable[str]) -> None:
        super().__init__()
        # Longest first, so the whole token is masked before its secret half.
        self.secrets = sorted({s for s in secrets if len(s) >= MIN_SECRET}, key=len, reverse=True)
        self._formatter = logging.Formatter()
        REDACTORS.add(self)

    def add(self, secret: str) -> None:
        """Mask one more secret from now on (one learnt at run time)."""
        if len(secret) >= MIN_SECRET and secret not in self.secrets:
            self.secrets = sorted([*self.secrets, secret], key=len, reverse=True)

    def redact(self, text: str) -> str:
        """Return the text with every secret masked."""
        for secret in self.secrets:
            text = text.replace(secret, MASK)
        return text

    def filter(self, record: logging.LogRecord) -> bool:
        """Mask the secrets in place; never drop the record."""
        if not self.secrets:
            return True
        try:
            message = record.getMessage()
        except (TypeError, ValueError):
            message = f"{record.msg} {record.args}"
        record.msg, record.args = self.redact(message), None
        if record.exc_info:
            text = record.exc_text or self._formatter.formatException(record.exc_info)
            record.exc_text, record.exc_info = self.redact(text), None
        elif record.exc_text:
            record.exc_text = self.redact(record.exc_text)
        if record.stack_info:
            record.stack_info = self.redact(record.stack_info)
        return True


REDACTORS: weakref.WeakSet[Redactor] = weakref.WeakSet()


def mask(*secrets: str) -> None:
    """Have every redactor mask these too (tokens a platform issues while the bot runs)."""
    for redactor in list(REDACTORS):
        for secret in secrets:
            redactor.add(secret)


def configure(settings: LoggingSettings, *, secrets: Iterable[str] = ()) -> None:
    """Set up the root logger once for the process; `secrets` never reach the output."""
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
    handler.addFilter(Redactor(secrets))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(settings.level)
    # Request URLs carry the bot token: keep these loggers quiet (the filter masks it anyway).
    for name in QUIET:
        logging.getLogger(name).setLevel(logging.WARNING)
    sys.excepthook = _log_uncaught


def _log_uncaught(kind: type[BaseException], exc: BaseException, tb: TracebackType | None) -> None:
    """Print an uncaught exception through the logging handler, hence redacted."""
    if issubclass(kind, KeyboardInterrupt):
        sys.__excepthook__(kind, exc, tb)
        return
    logging.getLogger("bot").critical("unexpected failure", exc_info=(kind, exc, tb))
