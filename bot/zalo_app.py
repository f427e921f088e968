"""Zalo inbound: the getUpdates polling loop and the webhook route, routed like Telegram's updates.

Each update becomes an InboundEvent(channel="zalo"), goes through handlers/router.py, and the
replies go back through the channel contract (bot/channels/replies.py). Updates of one chat are
handled in order, different chats at once. One process polls per database (a lease); in webhook
mode every request must carry the secret in X-Bot-Api-Secret-Token (compared in constant time),
on the path zalo.webhook_path of the worker's one webhook server (bot/webhook_server.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any

from aiohttp import web

from bot.channels import zalo
from bot.channels.contract import Channel
from bot.channels.replies import Budget, Replies
from bot.channels.shown import OnChoices
from bot.clock import Clock
from bot.config import Settings
from bot.db import SessionMaker, transaction
from bot.messages import InboundEvent, OutboundMessage
from bot.services.delivery import choices, contacts, seen_updates
from bot.services.delivery.lease import ADVISORY_KEY, Lease
from bot.webhook_guard import refusal, refuse
from bot.webhook_server import WebhookServer
from handlers import router
from handlers.context import Deps

log = logging.getLogger(__name__)
SECRET_HEADER = "X-Bot-Api-Secret-Token"
LEASE_NAME = "zalo-polling"
LEASE_KEY = ADVISORY_KEY + 2
CONCURRENT = 16  # updates of different chats handled at once
BACKOFF_FIRST, BACKOFF_MAX = 1.0, 60.0
Sleep = Callable[[float], Awaitable[None]]


def recorder(maker: SessionMaker, clock: Clock) -> OnChoices:
    """Return the callback that keeps the list of choices a Zalo chat saw last."""
    return choices.Recorder(maker, clock, zalo.CHANNEL)


def outbox_channels(settings: Settings, maker: SessionMaker, clock: Clock) -> dict[str, Channel]:
    """Return the dispatcher's Zalo lane when Zalo is enabled (else nothing)."""
    if not settings.zalo.enabled:
        return {}
    return {zalo.CHANNEL: zalo.outbox_channel(settings, recorder(maker, clock))}


@dataclass
class Inbound:
    """Handle Zalo updates: each chat's in order, up to CONCURRENT chats at once."""

    deps: Deps
    replies: Replies
    _locks: dict[str, tuple[asyncio.Lock, int]] = field(default_factory=dict)
    _slots: asyncio.Semaphore = field(default_factory=lambda: asyncio.Semaphore(CONCURRENT))
    _tasks: set[asyncio.Task[None]] = field(default_factory=set)

    def submit(self, update: dict[str, Any]) -> None:
        """Handle an update in the background (in its chat's order)."""
        task = asyncio.create_task(self.handle(update))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def drain(self) -> None:
        """Wait for the updates already received."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    async def handle(self, update: dict[str, Any]) -> None:
        """Turn an update into an event, route it and deliver the replies, in the chat's order."""
        event = zalo.to_event(update)
        if event is None:
            return
        if not zalo.is_text(update):
            if event.chat_type == "private":  # in a group, only text for the bot is answered
                await self._text_only(event)
            return
        lock, users = self._locks.get(event.chat_id) or (asyncio.Lock(), 0)
        self._locks[event.chat_id] = (lock, users + 1)
        try:
            async with self._slots, lock:
                await self._route(event)
        finally:
            lock, users = self._locks[event.chat_id]
            if users <= 1:
                del self._locks[event.chat_id]
            else:
                self._locks[event.chat_id] = (lock, users - 1)

    async def _text_only(self, event: InboundEvent) -> None:
        """Tell the sender the bot reads only text (an image or a sticker is not kept)."""
        locale: str = self.deps.settings.i18n.default_locale
        try:
            async with transaction(self.deps.maker) as session:
                contact = await contacts.find(
                    session, channel=zalo.CHANNEL, external_id=event.external_id
                )
            locale = contact.locale if contact is not None else locale
            await self.replies.send(event.chat_id, OutboundMessage("zalo.text_only"), locale)
        except Exception:
            log.exception("could not answer zalo message %s", event.message_id)

    async def _route(self, event: InboundEvent) -> None:
        """Route one event; on a failure log it and tell the person, without internals."""
        try:
            contact, replies = await router.handle(event, self.deps)
        except Exception:
            log.exception("zalo message %s failed", event.message_id)
            locale = self.deps.settings.i18n.default_locale
            with contextlib.suppress(Exception):
                await self.replies.send(event.chat_id, OutboundMessage("errors.internal"), locale)
            return
        outcome = await self.replies.deliver(event, replies, contact.locale)
        if outcome.kind == "blocked" and event.chat_type == "private":
            async with transaction(self.deps.maker) as session:
                await contacts.mark_blocked(
                    session,
                    channel=zalo.CHANNEL,
                    external_id=event.external_id,
                    now=self.deps.clock.now(),
                )


class Poller:
    """Long-poll getUpdates while this process holds the Zalo polling lease."""

    def __init__(
        self,
        api: zalo.ZaloApi,
        inbound: Inbound,
        lease: Lease | None,
        *,
        timeout: int,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        self.api, self.inbound, self.lease, self.timeout = api, inbound, lease, timeout
        self.sleep = sleep
        self._stop = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        """Start the loop in the background."""
        self._task = asyncio.create_task(self.run(), name="zalo-polling")

    async def stop(self) -> None:
        """Stop polling, finish the updates received, give the lease back."""
        self._stop.set()
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self.inbound.drain()
        if self.lease is not None:
            with contextlib.suppress(Exception):
                await self.lease.release()

    async def _leading(self) -> bool:
        """Tell whether this process may poll now (takes or renews the lease)."""
        if self.lease is None:
            return True
        try:
            return await (self.lease.renew() if self.lease.held else self.lease.acquire())
        except Exception:
            log.exception("zalo polling lease check failed")
            return False

    async def run(self) -> None:
        """Poll until stopped: 408 means nothing new, a fault waits (doubling) and tries again."""
        backoff = BACKOFF_FIRST
        checked = -1.0
        loop = asyncio.get_running_loop()
        while not self._stop.is_set():
            if self.lease is not None and loop.time() - checked >= self.lease.seconds / 3:
                checked = loop.time()
                if not await self._leading():
                    await self.sleep(min(5.0, self.lease.seconds / 2))
                    checked = -1.0
                    continue
            backoff = await self.poll_once(backoff)

    async def poll_once(self, backoff: float = BACKOFF_FIRST) -> float:
        """Make one getUpdates call and hand its updates over; return the next fault's wait.

        A long poll never outlasts a third of the lease, so the lease is renewed in time.
        """
        seconds = self.timeout
        if self.lease is not None:
            seconds = max(1, min(seconds, int(self.lease.seconds / 3)))
        answer = await self.api.get_updates(seconds)
        if answer.ok:
            for update in zalo.updates_of(answer):
                self.inbound.submit(update)
            return BACKOFF_FIRST
        if answer.error_code == zalo.NOTHING_NEW or answer.status == zalo.NOTHING_NEW:
            return BACKOFF_FIRST
        outcome = zalo.outcome_of(answer)
        wait = max(backoff, outcome.delay)
        log.warning("zalo getUpdates failed (%s): again in %.0f s", outcome.error, wait)
        await self.sleep(wait)
        return min(BACKOFF_MAX, wait * 2)


async def _read_capped(request: web.Request, limit: int) -> bytes | None:
    """Read the body; None as soon as it passes `limit` bytes."""
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.content.iter_any():
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
    return b"".join(chunks)


class Webhook:
    """The Zalo webhook route: the secret checked first, a replay handled once, then routed."""

    def __init__(
        self, settings: Settings, inbound: Inbound, maker: SessionMaker, clock: Clock
    ) -> None:
        zs = settings.zalo
        assert zs.webhook_secret is not None
        self.settings, self.inbound, self.maker, self.clock = settings, inbound, maker, clock
        self.secret = zs.webhook_secret.get_secret_value().encode()
        self.path = "/" + zs.webhook_path.strip("/")
        self.max_body = zs.webhook_max_body_bytes

    def web_app(self) -> web.Application:
        """Return an aiohttp application with this route alone (tests)."""
        server = WebhookServer("127.0.0.1", 0)
        self.add_route(server)
        return server.web_app()

    def add_route(self, server: WebhookServer) -> None:
        """Serve this route on the worker's webhook server."""
        server.route(zalo.CHANNEL, self.path, self.handle, max_body=self.max_body)

    async def stop(self) -> None:
        """Finish the updates already received (the server stopped accepting first)."""
        await self.inbound.drain()

    def refusal(self, request: web.Request) -> web.Response | None:
        """Return the answer to a request refused on its headers alone, or None to go on."""
        return refusal(request, header=SECRET_HEADER, secret=self.secret, max_body=self.max_body)

    async def handle(self, request: web.Request) -> web.Response:
        """Check the secret, read the body within the limit, and route the update once."""
        refused = self.refusal(request)
        if refused is not None:
            return refused
        body = await _read_capped(request, self.max_body)
        if body is None:
            return refuse(HTTPStatus.REQUEST_ENTITY_TOO_LARGE)
        update = parse(body)
        if update is None:
            log.warning("zalo webhook: the right secret but no update (%d bytes)", len(body))
            return web.Response(status=HTTPStatus.BAD_REQUEST, text="Bad Request")
        message = update.get("message")
        message_id = message.get("message_id") if isinstance(message, dict) else None
        if message_id is not None:
            try:
                async with transaction(self.maker) as session:
                    fresh = await seen_updates.first_sight(
                        session,
                        channel=zalo.CHANNEL,
                        update_id=str(message_id)[:64],
                        now=self.clock.now(),
                    )
            except Exception:  # the database is down: the platform retries later
                log.exception("could not record zalo message %s", message_id)
                return web.Response(status=HTTPStatus.SERVICE_UNAVAILABLE, text="Unavailable")
            if not fresh:
                return web.Response(text="OK")
        self.inbound.submit(update)
        return web.Response(text="OK")


def parse(body: bytes) -> dict[str, Any] | None:
    """Return the update a webhook body carries (bare, or inside 'result'), else None."""
    try:
        data = json.loads(body)
    except ValueError:
        return None
    if isinstance(data, dict) and "message" not in data and isinstance(data.get("result"), dict):
        data = data["result"]
    return data if isinstance(data, dict) and isinstance(data.get("message"), dict) else None


class ZaloStartFault(Exception):
    """Zalo could not start: `what` is 'token' (getMe refused it) or 'api'."""

    def __init__(self, what: str, detail: str = "") -> None:
        super().__init__(f"zalo {what}: {detail}")
        self.what, self.detail = what, detail


async def _check_token(api: zalo.ZaloApi) -> None:
    """Call getMe; raise ZaloStartFault when the token is refused or the API cannot be reached."""
    me = await api.get_me()
    if me.ok:
        return
    await api.close()
    refused = me.error_code == HTTPStatus.UNAUTHORIZED or me.status == HTTPStatus.UNAUTHORIZED
    detail = me.description or (f"HTTP {me.status}" if me.status else "no answer")
    raise ZaloStartFault("token" if refused else "api", detail[:200])


@dataclass
class ZaloSide:
    """What `start` started: the client, the inbound and the receiver (poller or webhook)."""

    api: zalo.ZaloApi
    channel: zalo.ZaloChannel
    inbound: Inbound
    poller: Poller | None = None
    webhook: Webhook | None = None
    tasks: list[asyncio.Task[None]] = field(default_factory=list)
    server: WebhookServer | None = None  # a server of its own, when none was given

    async def stop(self) -> None:
        """Stop receiving, finish what was received, close the client."""
        for task in self.tasks:
            task.cancel()
        if self.poller is not None:
            await self.poller.stop()
        if self.server is not None:
            await self.server.stop()
        if self.webhook is not None:
            await self.webhook.stop()
        await self.channel.close()


async def _keep_trying(name: str, call: Callable[[], Awaitable[zalo.Answer]]) -> None:
    """Make a set-up call until it succeeds or is refused for good, doubling the wait."""
    delay = BACKOFF_FIRST
    while True:
        outcome = zalo.outcome_of(await call())
        if outcome.ok:
            log.info("zalo %s done", name)
            return
        if outcome.kind not in ("retry", "flood"):
            log.warning("zalo %s refused (%s): going on without it", name, outcome.error)
            return
        log.warning("zalo %s failed (%s): again in %.0f s", name, outcome.error, delay)
        await asyncio.sleep(max(delay, outcome.delay))
        delay = min(BACKOFF_MAX, delay * 2)


async def start(
    settings: Settings,
    maker: SessionMaker,
    clock: Clock,
    *,
    budgets: Mapping[str, Budget] | None = None,
    server: WebhookServer | None = None,
) -> ZaloSide:
    """Start Zalo inbound as configured: polling under a lease, or the webhook route.

    In webhook mode the route goes on `server` (the worker's, which the caller opens; setWebhook
    follows once it listens); without one, on a server of its own on telegram.webhook_port.
    """
    zs = settings.zalo
    api = zalo.make_api(settings)
    await _check_token(api)
    channel = zalo.ZaloChannel(
        api, settings.scheduler.tz, zalo.limits_of(zs), on_choices=recorder(maker, clock)
    )
    await channel.open()
    deps = Deps(maker, settings, clock)
    replies = Replies(channel, budget=(budgets or {}).get(zalo.CHANNEL))
    side = ZaloSide(api, channel, Inbound(deps, replies))
    if zs.mode == "webhook":
        assert zs.webhook_url is not None and zs.webhook_secret is not None
        side.webhook = Webhook(settings, side.inbound, maker, clock)
        own = server is None
        if server is None:
            tg = settings.telegram
            server = side.server = WebhookServer(tg.webhook_listen, tg.webhook_port)
        side.webhook.add_route(server)
        url, secret = zs.webhook_url, zs.webhook_secret.get_secret_value()

        async def announce() -> None:
            call = lambda: api.set_webhook(url, secret)  # noqa: E731
            side.tasks.append(asyncio.create_task(_keep_trying("setWebhook", call)))

        server.after_listening(announce)
        if own:
            try:
                await server.start()
            except BaseException:
                await channel.close()
                raise
    else:
        # the API serves a webhook or getUpdates, not both: remove any webhook (in the background)
        side.tasks.append(asyncio.create_task(_keep_trying("deleteWebhook", api.delete_webhook)))
        lease = Lease(
            maker,
            clock=clock,
            seconds=settings.delivery.lease_seconds,
            name=LEASE_NAME,
            key=LEASE_KEY,
        )
        side.poller = Poller(api, side.inbound, lease, timeout=zs.poll_timeout)
        side.poller.start()
    log.info("zalo receiving (%s mode)", zs.mode)
    return side
