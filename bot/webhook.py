"""The Telegram webhook route: secret and size checked before any of the body is read.

python-telegram-bot's own server (tornado) reads the whole body before it looks at the secret
header, so anyone could make the process hold ~100 MiB per request. This one answers 403 for a
wrong or missing secret and 413 for a declared length over the limit from the headers alone,
closing the connection without reading the body; a chunked body is read only up to the limit.
A replayed update (same update_id) is acknowledged but handled once, across worker processes.

Updates are recorded as received in batches: whatever arrived while the last batch was being
written goes in the next one transaction (on SQLite a write waits for every other writer, and
one write per request would hold up every request). An update is handled once it is recorded;
while the database fails, the updates already answered are kept and tried again, and new ones
are answered 503 so that Telegram sends them again later. On PostgreSQL the batch is recorded on
a connection of the intake's own, outside the pool, by asyncpg alone: one statement, no session,
no checkout, and never waiting behind the handlers for a pooled connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from http import HTTPStatus
from typing import Any, ClassVar

import asyncpg  # type: ignore[import-untyped]
from aiohttp import hdrs, web
from sqlalchemy.ext.asyncio import AsyncEngine
from telegram import Update
from telegram.ext import Application

from bot.clock import Clock
from bot.config import TelegramSettings
from bot.db import CONNECT_SECONDS, SessionMaker, transaction
from bot.services.delivery import seen_updates
from bot.webhook_guard import refusal, refuse
from bot.webhook_server import WebhookServer

log = logging.getLogger(__name__)
SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"
CHANNEL = "telegram"
PRUNE_EVERY = timedelta(minutes=10)
RETRY_SECONDS = 1.0  # after the database failed to record a batch
BACKLOG = 10_000  # updates answered but not yet recorded; past it, Telegram is asked to retry
AnyApp = Application[Any, Any, Any, Any, Any, Any]
# Make a Bot API call that the bot can serve without: retried in the background when it fails.
Attempt = Callable[[str, Callable[[], Awaitable[object]]], Awaitable[bool]]


class BodyTooLarge(Exception):
    """The request body is longer than the configured limit."""


async def _read_capped(request: web.Request, limit: int) -> bytes:
    """Read the body, raising BodyTooLarge as soon as it passes `limit` bytes."""
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.content.iter_any():
        size += len(chunk)
        if size > limit:
            raise BodyTooLarge
        chunks.append(chunk)
    return b"".join(chunks)


class BareConnection:
    """One asyncpg connection outside the engine's pool: opened when first needed, dropped after
    a failure (the next use opens a new one)."""

    # Options of SQLAlchemy's asyncpg dialect that asyncpg.connect does not take.
    DIALECT_ONLY = ("prepared_statement_cache_size", "prepared_statement_name_func")
    # A record is not waited for until it is on disk (the flush took ~3 ms a batch here): the
    # handler's own commit, made after it and waited for, flushes the log up to there, so a
    # handled update's record is never lost; one lost in a crash was of an update whose handling
    # was not committed either, and its redelivery is then handled rather than ignored.
    SETTINGS: ClassVar[dict[str, str]] = {"synchronous_commit": "off"}

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine
        self.conn: Any = None

    async def get(self) -> Any:
        """Return the open connection, opening one if there is none."""
        if self.conn is None or self.conn.is_closed():
            _, params = self.engine.dialect.create_connect_args(self.engine.url)
            for key in self.DIALECT_ONLY:
                params.pop(key, None)
            settings = {**params.pop("server_settings", {}), **self.SETTINGS}
            self.conn = await asyncpg.connect(
                **params, server_settings=settings, timeout=CONNECT_SECONDS
            )
        return self.conn

    async def close(self) -> None:
        """Close the connection (at once, without waiting on a server that may be gone)."""
        conn, self.conn = self.conn, None
        if conn is not None:
            conn.terminate()


def bare_connection(engine: AsyncEngine) -> BareConnection | None:
    """Return an own connection to record with on PostgreSQL; None on SQLite (the pool's)."""
    if engine.dialect.driver == "asyncpg":
        return BareConnection(engine)
    return None


class Intake:
    """Record received updates a batch at a time, then queue the new ones in the order received."""

    def __init__(self, app: AnyApp, maker: SessionMaker, clock: Clock) -> None:
        self.app, self.maker, self.clock = app, maker, clock
        self.engine: AsyncEngine = maker.kw["bind"]
        self.bare = bare_connection(self.engine)
        self.pending: list[Update] = []
        self.failing = False
        self.pruned_at: datetime | None = None
        self._wake = asyncio.Event()
        self._stopping = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        """Start recording in the background."""
        self._task = asyncio.create_task(self._run(), name="webhook-intake")

    def accepts(self) -> bool:
        """Tell whether a new update can be taken (the database works and the backlog is short)."""
        return not self.failing and len(self.pending) < BACKLOG

    def put(self, update: Update) -> None:
        """Take an update; it is handled once recorded."""
        self.pending.append(update)
        self._wake.set()

    async def stop(self) -> None:
        """Record and queue what was taken (one last try), then stop."""
        self._stopping.set()
        self._wake.set()
        task, self._task = self._task, None
        if task is not None:
            await task
        if self.pending:
            with contextlib.suppress(Exception):
                await self.record()
        if self.pending:
            log.error("stopping: %d received updates could not be recorded", len(self.pending))
        if self.bare is not None:
            await self.bare.close()

    async def _run(self) -> None:
        """Record batches until stopped; after a failure wait a little and try again."""
        while not self._stopping.is_set():
            await self._wake.wait()
            self._wake.clear()
            while self.pending and not self._stopping.is_set():
                try:
                    await self.record()
                except Exception:
                    log.exception("could not record %d webhook updates", len(self.pending))
                    self.failing = True
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._stopping.wait(), RETRY_SECONDS)

    async def record(self) -> None:
        """Record the waiting updates in one transaction and queue those no process saw before."""
        batch = list(self.pending)
        fresh = await self.first_sights([str(update.update_id) for update in batch])
        del self.pending[: len(batch)]
        self.failing = False
        for update in batch:
            key = str(update.update_id)
            if key in fresh:
                fresh.discard(key)
                await self.app.update_queue.put(update)
            else:
                log.info("update %s was received before; answered, not handled again", key)

    async def first_sights(self, update_ids: list[str]) -> set[str]:
        """Record update ids; return those no process saw before. Prune now and then (first).

        The record is one statement (insert or ignore), atomic by itself: on PostgreSQL it runs
        on the intake's own connection without BEGIN and COMMIT.
        """
        now = self.clock.now()
        if self.pruned_at is None or now - self.pruned_at >= PRUNE_EVERY:
            async with transaction(self.maker) as session:
                await seen_updates.prune(session, now=now)
            self.pruned_at = now
        if self.bare is None:  # SQLite: a Core connection, no ORM session to set up
            async with self.engine.begin() as conn:
                return await seen_updates.first_sights_on(
                    conn, channel=CHANNEL, update_ids=update_ids, now=now
                )
        try:
            return await seen_updates.first_sights_bare(
                await self.bare.get(), channel=CHANNEL, update_ids=update_ids, now=now
            )
        except BaseException:
            await self.bare.close()
            raise


class TelegramWebhook:
    """Telegram's webhook route: receive updates over HTTP, put them on the update queue."""

    def __init__(
        self, app: AnyApp, settings: TelegramSettings, maker: SessionMaker, clock: Clock
    ) -> None:
        assert settings.webhook_secret is not None
        self.app, self.settings, self.maker, self.clock = app, settings, maker, clock
        self.secret = settings.webhook_secret.get_secret_value().encode()
        self.path = "/" + settings.webhook_path.strip("/")
        self.max_body = settings.webhook_max_body_bytes
        self.intake = Intake(app, maker, clock)

    def web_app(self) -> web.Application:
        """Return an aiohttp application with this route alone (tests)."""
        server = WebhookServer(self.settings.webhook_listen, self.settings.webhook_port)
        self.add_route(server)
        return server.web_app()

    def add_route(self, server: WebhookServer) -> None:
        """Serve this route on the worker's webhook server."""
        server.route(CHANNEL, self.path, self.handle, max_body=self.max_body, expect=self.expect)

    def attach(
        self, server: WebhookServer, allowed_updates: Sequence[str], attempt: Attempt
    ) -> None:
        """Serve the route, record updates from now on, and set the webhook once listening."""
        self.add_route(server)
        self.intake.start()
        server.after_listening(lambda: self.announce(allowed_updates, attempt))

    async def announce(self, allowed_updates: Sequence[str], attempt: Attempt) -> None:
        """Tell Telegram where to post (retried in the background when it fails)."""
        url = self.settings.webhook_url
        assert url is not None
        await attempt(
            "setWebhook",
            lambda: self.app.bot.set_webhook(
                url=url, secret_token=self.secret.decode(), allowed_updates=list(allowed_updates)
            ),
        )

    async def stop(self) -> None:
        """Queue what was received (the server stopped first); the Application handles it."""
        await self.intake.stop()

    def refusal(self, request: web.Request) -> web.Response | None:
        """Return the answer to a request refused on its headers alone, or None to go on."""
        return refusal(request, header=SECRET_HEADER, secret=self.secret, max_body=self.max_body)

    async def expect(self, request: web.Request) -> web.Response | None:
        """Answer `Expect: 100-continue` only for a request that will be accepted."""
        refused = self.refusal(request)
        if refused is not None:
            return refused
        if request.headers.get(hdrs.EXPECT, "").lower() == "100-continue":
            await request.writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
        return None

    async def handle(self, request: web.Request) -> web.Response:
        """Check the request, read the body within the limit, and queue the update once."""
        refused = self.refusal(request)
        if refused is not None:
            return refused
        try:
            body = await _read_capped(request, self.max_body)
        except BodyTooLarge:
            return refuse(HTTPStatus.REQUEST_ENTITY_TOO_LARGE)
        update = self.parse(body)
        if update is None:
            return web.Response(status=HTTPStatus.BAD_REQUEST, text="Bad Request")
        if not self.intake.accepts():  # the database is down: Telegram retries a 503 later
            return web.Response(status=HTTPStatus.SERVICE_UNAVAILABLE, text="Unavailable")
        self.intake.put(update)
        return web.Response(text="OK")

    def parse(self, body: bytes) -> Update | None:
        """Return the update in a request body, or None (logged without the payload)."""
        try:
            data = json.loads(body)
            update = Update.de_json(data, self.app.bot) if isinstance(data, dict) else None
        except Exception:  # any malformed payload (bad JSON, wrong shapes, too deep) is a 400
            update = None
        if update is None or not isinstance(update.update_id, int):
            log.warning("webhook: the right secret but no valid update (%d bytes)", len(body))
            return None
        return update


@dataclass
class Standalone:
    """Telegram's webhook on a server of its own (benchmarks): stopped together."""

    server: WebhookServer
    hook: TelegramWebhook

    async def stop(self) -> None:
        """Stop accepting requests, then queue what was received."""
        await self.server.stop()
        await self.hook.stop()


async def start(
    app: AnyApp,
    settings: TelegramSettings,
    maker: SessionMaker,
    clock: Clock,
    allowed_updates: Sequence[str],
    attempt: Attempt,
) -> Standalone:
    """Start Telegram's webhook alone on telegram.webhook_port and register its URL."""
    server = WebhookServer(settings.webhook_listen, settings.webhook_port)
    hook = TelegramWebhook(app, settings, maker, clock)
    hook.attach(server, allowed_updates, attempt)
    await server.start()
    return Standalone(server, hook)
