"""The Zalo Official Account webhook: signed, fresh and new events only, routed like Telegram's.

Zalo signs each event: X-ZEvent-Signature is mac=sha256(app_id + raw body + timestamp + OA secret
key) in hex, the timestamp (milliseconds) being the event's own. A post without a signature is
refused with 401, a wrong mac with 403, an event older or further ahead than the replay window
with 408; a replay (the same event again) is acknowledged and handled once, across processes.
The answer goes at once (Zalo waits 2 seconds at most); the event is handled in the background.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import json
import logging
import unicodedata
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from http import HTTPStatus
from typing import Any

from aiohttp import web

from bot.channels.replies import Replies
from bot.clock import Clock
from bot.config import ZaloOASettings
from bot.db import SessionMaker, transaction
from bot.messages import InboundEvent, OutboundMessage, parse_command
from bot.services.delivery import contacts, seen_updates
from handlers import router
from handlers.context import Deps

log = logging.getLogger(__name__)
CHANNEL = "zalo_oa"
SENT_BY_USER = "user_send_"  # user_send_text, user_send_image, user_send_sticker, …
TEXT_EVENT = "user_send_text"
SIGNATURE_HEADER = "X-ZEvent-Signature"
MAX_BODY = 262_144
ID_MAX = 64
PRUNE_EVERY = timedelta(minutes=10)
FUTURE_SKEW_MS = 300_000  # clocks differ: an event may carry a time this far ahead of ours
OnEvent = Callable[[InboundEvent], Awaitable[None]]


def signature(app_id: str, body: bytes, timestamp: str, oa_secret_key: str) -> str:
    """Return the mac Zalo puts on an event: sha256 hex of app id, body, timestamp, secret."""
    data = app_id.encode() + body + timestamp.encode() + oa_secret_key.encode()
    return hashlib.sha256(data).hexdigest()


def _update_id(data: dict[str, Any], event: str, user: str, timestamp: str) -> str:
    """Return the id a replay of this event repeats: the message id, else who, what and when."""
    message = data.get("message")
    msg_id = message.get("msg_id") if isinstance(message, dict) else None
    key = str(msg_id) if msg_id else f"{event}:{user}:{timestamp}"
    return key if len(key) <= ID_MAX else hashlib.sha256(key.encode()).hexdigest()


def _user(data: dict[str, Any], event: str) -> str | None:
    """Return the Zalo user id (the OA's id for them) an event is about."""
    who = data.get("follower") if event in ("follow", "unfollow") else data.get("sender")
    user = who.get("id") if isinstance(who, dict) else None
    return str(user) if user is not None and str(user) else None


class ZaloOAWebhook:
    """Check, dedupe and hand on the events Zalo posts for one Official Account."""

    def __init__(
        self,
        settings: ZaloOASettings,
        maker: SessionMaker,
        clock: Clock,
        on_event: OnEvent,
        *,
        max_body: int = MAX_BODY,
    ) -> None:
        assert settings.app_id is not None and settings.oa_secret_key is not None
        self.settings, self.maker, self.clock, self.on_event = settings, maker, clock, on_event
        self.app_id = settings.app_id
        self.secret = settings.oa_secret_key.get_secret_value()
        self.window_ms = settings.replay_window_seconds * 1000
        self.path = "/" + settings.webhook_path.strip("/")
        self.max_body = max_body
        self.tasks: set[asyncio.Task[None]] = set()
        self.pruned_at: datetime | None = None

    async def handle(self, request: web.Request) -> web.Response:
        """Answer one post: refuse a forgery, acknowledge the rest, handle each event once."""
        given = request.headers.get(SIGNATURE_HEADER, "").strip()
        if not given:
            return web.Response(status=HTTPStatus.UNAUTHORIZED, text="Unauthorized")
        if request.content_length is not None and request.content_length > self.max_body:
            return web.Response(status=HTTPStatus.REQUEST_ENTITY_TOO_LARGE, text="Too Large")
        body = await _read_capped(request, self.max_body)  # a chunked body too: the app's
        if body is None:  # own limit is the largest of the channels' on the shared server
            return web.Response(status=HTTPStatus.REQUEST_ENTITY_TOO_LARGE, text="Too Large")
        data = _json(body)
        stamp = data.get("timestamp") if data is not None else None
        if data is None or not isinstance(stamp, str | int) or not str(stamp).isdigit():
            return web.Response(status=HTTPStatus.BAD_REQUEST, text="Bad Request")
        timestamp = str(stamp)
        mac = given.removeprefix("mac=").strip().lower()
        expected = signature(self.app_id, body, timestamp, self.secret)
        if not hmac.compare_digest(mac.encode("utf-8", "replace"), expected.encode()):
            log.warning("zalo_oa webhook: a post with a wrong signature was refused")
            return web.Response(status=HTTPStatus.FORBIDDEN, text="Forbidden")
        now_ms = int(self.clock.now().timestamp() * 1000)
        age_ms = now_ms - int(timestamp)
        if age_ms > self.window_ms or -age_ms > FUTURE_SKEW_MS:
            log.warning("zalo_oa webhook: an event outside the replay window was refused")
            return web.Response(status=HTTPStatus.REQUEST_TIMEOUT, text="Stale")
        return await self._accept(data, timestamp)

    async def _accept(self, data: dict[str, Any], timestamp: str) -> web.Response:
        """Record the event as seen; start handling it when it is new."""
        event = str(data.get("event_name", ""))
        user = _user(data, event)
        if user is None:
            return web.Response(text="OK")
        try:
            async with transaction(self.maker) as session:
                now = self.clock.now()
                fresh = await seen_updates.first_sight(
                    session,
                    channel=CHANNEL,
                    update_id=_update_id(data, event, user, timestamp),
                    now=now,
                )
                if self.pruned_at is None or now - self.pruned_at >= PRUNE_EVERY:
                    await seen_updates.prune(session, now=now)
                    self.pruned_at = now
        except Exception:  # the database is down: Zalo posts the event again later
            log.exception("zalo_oa webhook: could not record an event")
            return web.Response(status=HTTPStatus.SERVICE_UNAVAILABLE, text="Unavailable")
        if fresh:
            task = asyncio.create_task(self._dispatch(event, user, data), name="zalo-oa-event")
            self.tasks.add(task)
            task.add_done_callback(self.tasks.discard)
        return web.Response(text="OK")

    async def idle(self) -> None:
        """Wait until every event taken is handled (tests, shutdown)."""
        while self.tasks:
            await asyncio.gather(*self.tasks, return_exceptions=True)

    async def _dispatch(self, event: str, user: str, data: dict[str, Any]) -> None:
        """Turn an event into what the bot does: route a text or a follow, note an unfollow."""
        try:
            if event == "unfollow":
                async with transaction(self.maker) as session:
                    await contacts.mark_blocked(
                        session, channel=CHANNEL, external_id=user, now=self.clock.now()
                    )
                return
            inbound = to_event(event, user, data)
            if inbound is not None:
                await self.on_event(inbound)
        except Exception:
            log.exception("zalo_oa webhook: handling a %s event failed", event)


def to_event(event: str, user: str, data: dict[str, Any]) -> InboundEvent | None:
    """Return the neutral event for a text or a follow (a follow is a /start); else None."""
    if event == "follow":
        return InboundEvent(
            channel=CHANNEL, external_id=user, chat_id=user, text="/start", command="start"
        )
    if not event.startswith(SENT_BY_USER):  # the OA's own messages, reactions, consents…
        return None
    message = data.get("message")
    message = message if isinstance(message, dict) else {}
    msg_id = message.get("msg_id")
    text = message.get("text")
    if event != TEXT_EVENT or not isinstance(text, str):  # an image, a sticker, a file…
        return InboundEvent(
            channel=CHANNEL,
            external_id=user,
            chat_id=user,
            text=None,
            message_id=str(msg_id) if msg_id is not None else None,
        )
    text = unicodedata.normalize("NFC", text)  # phones may send Vietnamese decomposed
    command, args = parse_command(text.strip())
    return InboundEvent(
        channel=CHANNEL,
        external_id=user,
        chat_id=user,
        text=text,
        command=command,
        args=args,
        message_id=str(msg_id) if msg_id is not None else None,
    )


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


def _json(body: bytes) -> dict[str, Any] | None:
    """Return the body's JSON object, or None."""
    try:
        data = json.loads(body)
    except ValueError:
        return None
    return data if isinstance(data, dict) else None


async def _text_only(deps: Deps, replies: Replies, event: InboundEvent) -> None:
    """Tell a person who sent an image, a sticker or a file that the bot reads only text.

    What they sent is an interaction with the OA: it is noted, so the messaging window is open.
    """
    try:
        async with transaction(deps.maker) as session:
            contact = await contacts.touch(
                session,
                identity=contacts.Identity(CHANNEL, event.external_id, None),
                now=deps.clock.now(),
                default_locale=deps.settings.i18n.default_locale,
            )
        await replies.send(event.chat_id, OutboundMessage("zalo.text_only"), contact.locale)
    except Exception:
        log.exception("zalo_oa: could not answer a message of %s", event.chat_id)


def router_dispatch(deps: Deps, replies: Replies) -> OnEvent:
    """Return the handler that routes an event like Telegram's and sends the replies."""

    async def on_event(event: InboundEvent) -> None:
        if event.text is None:  # the bot reads only text: say so, route nothing
            await _text_only(deps, replies, event)
            return
        try:
            contact, messages = await router.handle(event, deps)
        except Exception:  # logged; the person is told, without internals
            log.exception("zalo_oa: handling a message of %s failed", event.chat_id)
            locale = deps.settings.i18n.default_locale
            with contextlib.suppress(Exception):
                await replies.send(event.chat_id, OutboundMessage("errors.internal"), locale)
            return
        outcome = await replies.deliver(event, messages, contact.locale)
        if outcome.kind == "blocked":
            async with transaction(deps.maker) as session:
                await contacts.mark_blocked(
                    session, channel=CHANNEL, external_id=event.external_id, now=deps.clock.now()
                )

    return on_event


def add_route(
    web_app: web.Application,
    settings: ZaloOASettings,
    maker: SessionMaker,
    clock: Clock,
    on_event: OnEvent,
) -> ZaloOAWebhook:
    """Add the OA's webhook route (POST <webhook_path>) to an aiohttp app; return its handler.

    Add it before any catch-all route of that app.
    """
    hook = ZaloOAWebhook(settings, maker, clock, on_event)
    web_app.router.add_post(hook.path, hook.handle)
    return hook
