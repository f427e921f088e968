"""Start-up: optional Bot API calls that never stop the bot, and faults told without a traceback."""

from __future__ import annotations

import asyncio
import errno
import logging
import socket
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.engine.url import make_url
from sqlalchemy.exc import SQLAlchemyError
from telegram import Bot, InputFile
from telegram.error import BadRequest, Forbidden, InvalidToken, RetryAfter, TelegramError
from telegram.ext import Updater

from bot.config import Settings, webhook_paths
from bot.zalo_app import ZaloStartFault

log = logging.getLogger(__name__)
BACKOFF_FIRST = 5.0
BACKOFF_MAX = 600.0
Sleep = Callable[[float], Awaitable[object]]


class OptionalCalls:
    """Bot API calls the bot can serve without: tried at start, retried in the background."""

    def __init__(
        self,
        *,
        first: float = BACKOFF_FIRST,
        maximum: float = BACKOFF_MAX,
        sleep: Sleep | None = None,
    ) -> None:
        self.first, self.maximum = first, maximum
        self.sleep: Sleep = sleep or asyncio.sleep
        self.retrying: dict[str, asyncio.Task[None]] = {}

    async def attempt(self, name: str, call: Callable[[], Awaitable[object]]) -> bool:
        """Make the call once; on a passing failure, warn and keep retrying it with backoff."""
        delay = await self._once(name, call, self.first)
        if delay is None:
            return True
        if delay > 0 and name not in self.retrying:
            task = asyncio.create_task(self._retry(name, call, delay), name=f"retry:{name}")
            self.retrying[name] = task
            task.add_done_callback(lambda _: self.retrying.pop(name, None))
        return False

    async def _once(
        self, name: str, call: Callable[[], Awaitable[object]], delay: float
    ) -> float | None:
        """Call; return None when done, 0 to give up, else the seconds to wait before retrying."""
        try:
            await call()
        except RetryAfter as exc:
            after = exc.retry_after
            wait = max(delay, after if isinstance(after, int | float) else after.total_seconds())
            log.warning("Bot API %s: flood limit, retrying in %.0f s", name, wait)
            return float(wait)
        except InvalidToken as exc:  # 404 (a method the server lacks) or 401
            log.warning("Bot API %s refused (%s): going on without it", name, exc.message)
            return 0
        except (BadRequest, Forbidden) as exc:
            log.warning("Bot API %s refused (%s): going on without it", name, exc.message)
            return 0
        except TelegramError as exc:  # network errors, timeouts, 5xx
            log.warning("Bot API %s failed (%s): retrying in %.0f s", name, exc.message, delay)
            return delay
        return None

    async def _retry(self, name: str, call: Callable[[], Awaitable[object]], delay: float) -> None:
        """Retry until the call succeeds or is refused for good, doubling the wait each time."""
        while True:
            await self.sleep(delay)
            next_delay = min(self.maximum, delay * 2)
            outcome = await self._once(name, call, next_delay)
            if outcome is None:
                log.info("Bot API %s succeeded after retrying", name)
                return
            if outcome == 0:
                return
            delay = outcome

    async def close(self) -> None:
        """Stop every retry under way."""
        tasks = list(self.retrying.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


class TolerantUpdater(Updater):
    """An Updater whose deleteWebhook (polling) and setWebhook (webhook) never stop the bot."""

    def __init__(self, bot: Bot, update_queue: asyncio.Queue[object], optional: OptionalCalls):
        super().__init__(bot, update_queue)
        self.optional = optional

    async def _bootstrap(
        self,
        max_retries: int,
        webhook_url: str | None,
        allowed_updates: Sequence[str] | None,
        drop_pending_updates: bool | None = None,
        cert: bytes | None = None,
        bootstrap_interval: float = 1,
        ip_address: str | None = None,
        max_connections: int = 40,
        secret_token: str | None = None,
    ) -> None:
        """Delete or set the webhook as python-telegram-bot does, as optional calls."""
        if drop_pending_updates or not webhook_url:
            await self.optional.attempt(
                "deleteWebhook",
                lambda: self.bot.delete_webhook(drop_pending_updates=drop_pending_updates),
            )
        if webhook_url:
            certificate = InputFile(cert) if cert else None
            await self.optional.attempt(
                "setWebhook",
                lambda: self.bot.set_webhook(
                    url=webhook_url,
                    certificate=certificate,
                    allowed_updates=allowed_updates,
                    ip_address=ip_address,
                    drop_pending_updates=drop_pending_updates,
                    max_connections=max_connections,
                    secret_token=secret_token,
                ),
            )


@dataclass
class StartupFault(Exception):
    """A foreseeable fault at start: a catalog key and its parameters, told without traceback."""

    key: str
    params: dict[str, Any] = field(default_factory=dict)

    def __str__(self) -> str:
        """Return the catalog key, for logs."""
        return self.key

    def message(self, locale: str | None) -> str:
        """Return the fault told in a language, with what went wrong and the key to look at."""
        from bot.i18n import t

        params = dict(self.params)
        if "fault" in params:
            params["reason"] = t(params.pop("fault"), locale, detail=params.pop("detail", ""))
        return t(self.key, locale, **params)


def _chain(exc: BaseException) -> Iterator[BaseException]:
    """Yield the exception, its causes and contexts, and the members of exception groups."""
    seen: set[int] = set()
    todo = [exc]
    while todo:
        e = todo.pop(0)
        if id(e) in seen:
            continue
        seen.add(id(e))
        yield e
        if isinstance(e, BaseExceptionGroup):
            todo.extend(e.exceptions)
        orig = getattr(e, "orig", None)  # SQLAlchemy's DBAPIError wraps the driver's error
        for nxt in (orig, e.__cause__, e.__context__):
            if isinstance(nxt, BaseException):
                todo.append(nxt)


def _db_fault(chain: list[BaseException]) -> str | None:
    """Name the database fault in a chain of exceptions (a catalog key), or None."""
    names = {type(e).__name__ for e in chain}
    if "InvalidCatalogNameError" in names:
        return "run.db.missing"
    if names & {"InvalidPasswordError", "InvalidAuthorizationSpecificationError"}:
        return "run.db.auth"
    for e in chain:
        if isinstance(e, socket.gaierror):
            return "run.db.unknown_host"
        if isinstance(e, ConnectionRefusedError):
            return "run.db.refused"
        if isinstance(e, TimeoutError) or (
            isinstance(e, OSError) and e.errno in (errno.EHOSTUNREACH, errno.ENETUNREACH)
        ):
            return "run.db.unreachable"
        if isinstance(e, PermissionError):
            return "run.db.permission"
        if isinstance(e, FileNotFoundError | NotADirectoryError):
            return "run.db.cannot_open"
    if any("unable to open database file" in str(e) for e in chain):
        return "run.db.cannot_open"
    if any(isinstance(e, SQLAlchemyError | OSError) for e in chain):
        return "run.db.other"
    return None


def _detail(chain: list[BaseException]) -> str:
    """Return the innermost error's first line, short."""
    text = str(chain[-1]) or type(chain[-1]).__name__
    return text.splitlines()[0][:200] if text else ""


def _zalo_fault(chain: list[BaseException], settings: Settings) -> StartupFault | None:
    """Name a Zalo fault at start (token refused, API unreachable), or None."""
    zs = settings.zalo
    for e in chain:
        if not isinstance(e, ZaloStartFault):
            continue
        if e.what == "token":
            return StartupFault("run.zalo.token_rejected", {"api": zs.api_base})
        return StartupFault("run.zalo.api_unreachable", {"api": zs.api_base, "detail": e.detail})
    return None


def classify(exc: BaseException, settings: Settings) -> StartupFault | None:
    """Turn a foreseeable start-up failure into a StartupFault naming its key; None otherwise."""
    chain = list(_chain(exc))
    zalo = _zalo_fault(chain, settings)
    if zalo is not None:
        return zalo
    tg = settings.telegram
    api = tg.api_base_url
    serves_webhooks = bool(webhook_paths(settings))
    for e in chain:
        if isinstance(e, StartupFault):  # told already by the part that failed
            return e
        if isinstance(e, InvalidToken):
            return StartupFault("run.token_rejected", {"api": api})
        if isinstance(e, OSError) and (
            e.errno in (errno.EADDRINUSE, errno.EADDRNOTAVAIL)
            or (e.errno == errno.EACCES and e.filename is None and serves_webhooks)
        ):  # binding the worker's webhook port (a file error names its file)
            return StartupFault(
                "run.port_busy", {"listen": tg.webhook_listen, "port": tg.webhook_port}
            )
    for e in chain:
        if isinstance(e, TelegramError):
            return StartupFault("run.api_unreachable", {"api": api, "detail": e.message[:200]})
    fault = _db_fault(chain)
    if fault is not None:
        url = make_url(settings.database.url).render_as_string(hide_password=True)
        return StartupFault("run.db_failed", {"url": url, "fault": fault, "detail": _detail(chain)})
    return None
