"""The Zalo Official Account in `reformbot run`: its webhook server, its lane, its token check.

With [zalo.oa] enabled, `start` opens the channel for replies (storing the configured refresh
token and finishing a refresh a crash left unfinished), serves the signed webhook on the path
`zalo.oa.webhook_path` of the worker's one webhook server (bot/webhook_server.py, on
telegram.webhook_port, beside the other channels' paths, each with its own checks), and routes
each event like a Telegram update, one person's events in order. The dispatcher gets a
"zalo_oa" lane (`outbox_channels`), and the job runner checks the access token every
`token_check_seconds` (`register`): it is refreshed ahead of its expiry, and the admins are
told once when the OA must authorise the app again.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

from bot.channels.replies import Replies
from bot.channels.shown import OnChoices
from bot.channels.zalo_oa import CHANNEL, LIMITS, ZaloOAChannel
from bot.clock import Clock
from bot.config import Settings
from bot.db import SessionMaker, transaction
from bot.messages import InboundEvent
from bot.runtime import Runtime
from bot.services import zalo_oa_status
from bot.services.delivery import choices
from bot.webhook_server import WebhookServer
from bot.zalo_oa_webhook import OnEvent, ZaloOAWebhook, router_dispatch
from handlers.context import Deps
from jobs.pacing import PACERS_KEY, Pacer
from jobs.runner import JobRunner

log = logging.getLogger(__name__)
KEY = "zalo_oa"  # where the started side lives in runtime.extra
SWEEP = "zalo-oa-tokens"


def recorder(maker: SessionMaker, clock: Clock) -> OnChoices:
    """Return the callback that keeps the list of choices an OA user saw last."""
    return choices.Recorder(maker, clock, CHANNEL)


def make_channel(settings: Settings, maker: SessionMaker, clock: Clock) -> ZaloOAChannel:
    """Return an OA channel with a client (and a token keeper) of its own."""
    return ZaloOAChannel(
        settings.zalo.oa,
        maker,
        clock,
        tz=settings.scheduler.tz,
        on_choices=recorder(maker, clock),
    )


def in_order(on_event: OnEvent) -> OnEvent:
    """Wrap an event handler so that one person's events are handled one after the other."""
    locks: dict[str, tuple[asyncio.Lock, int]] = {}

    async def handle(event: InboundEvent) -> None:
        lock, users = locks.get(event.chat_id) or (asyncio.Lock(), 0)
        locks[event.chat_id] = (lock, users + 1)
        try:
            async with lock:
                await on_event(event)
        finally:
            lock, users = locks[event.chat_id]
            if users <= 1:
                del locks[event.chat_id]
            else:
                locks[event.chat_id] = (lock, users - 1)

    return handle


@dataclass
class OASide:
    """What `start` started: the reply channel, the dispatcher's channel and the webhook route."""

    channel: ZaloOAChannel
    outbox: ZaloOAChannel
    webhook: ZaloOAWebhook
    server: WebhookServer | None = None  # a server of its own, when none was given

    async def stop(self) -> None:
        """Stop accepting events, finish those received, close the reply channel."""
        if self.server is not None:
            await self.server.stop()
        await self.webhook.idle()
        await self.channel.close()


async def start(rt: Runtime, server: WebhookServer | None = None) -> OASide:
    """Start the OA side of a running bot and keep it in runtime.extra (see the module doc).

    The route goes on `server` (the worker's, which the caller opens); without one, on a server
    of its own on telegram.webhook_port.
    """
    settings, maker, clock = rt.settings, rt.maker, rt.clock
    oa = settings.zalo.oa
    pacers = rt.extra.get(PACERS_KEY)
    if pacers is not None:  # replies and the outbox share one budget, as on the other channels
        pacers.setdefault(CHANNEL, Pacer(LIMITS))
    channel = make_channel(settings, maker, clock)
    await channel.open()  # stores the configured refresh token; resumes an unfinished refresh
    replies = Replies(channel, budget=pacers.get(CHANNEL) if pacers is not None else None)
    on_event = in_order(router_dispatch(Deps(maker, settings, clock), replies))
    hook = ZaloOAWebhook(oa, maker, clock, on_event)
    side = OASide(channel, make_channel(settings, maker, clock), hook)
    if server is None:
        tg = settings.telegram
        server = side.server = WebhookServer(tg.webhook_listen, tg.webhook_port)
    server.route(CHANNEL, hook.path, hook.handle, max_body=hook.max_body)
    if side.server is not None:
        try:
            await side.server.start()
        except BaseException:
            await channel.close()
            raise
    rt.extra[KEY] = side
    return side


def outbox_channels(rt: Runtime) -> dict[str, ZaloOAChannel]:
    """Return the dispatcher's "zalo_oa" lane when the OA side was started (else nothing)."""
    side = rt.extra.get(KEY)
    return {CHANNEL: side.outbox} if isinstance(side, OASide) else {}


async def check_tokens(rt: Runtime, channel: ZaloOAChannel) -> int:
    """Refresh the access token when it is due; tell the admins once if Zalo refused it.

    Return how many admins were told.
    """
    await channel.keeper.access_token()  # refreshes within the margin; resumes a lapsed journal
    oa_id = rt.settings.zalo.oa.oa_id or ""
    async with transaction(rt.maker) as session:
        told = await zalo_oa_status.tell_admins_reauth(session, oa_id=oa_id, now=rt.clock.now())
    if told:
        log.warning("zalo_oa: the OA must authorise the app again; %d admins told", told)
    return told


def register(runner: JobRunner, rt: Runtime) -> None:
    """Add the token check to the job runner's sweeps when the OA side was started."""
    side = rt.extra.get(KEY)
    if isinstance(side, OASide):
        every = rt.settings.zalo.oa.token_check_seconds
        runner.add_sweep(SWEEP, lambda: check_tokens(rt, side.outbox), every)
