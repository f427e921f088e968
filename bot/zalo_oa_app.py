"""The Zalo Official Account in `reformbot run`: its webhook server, its lane, its token check.

With [zalo.oa] enabled, `start` opens the channel for replies (storing the configured refresh
token and finishing a refresh a crash left unfinished), serves the signed webhook on a port of
its own (`zalo.oa.webhook_listen`:`webhook_port`, path `webhook_path`), and routes each event
like a Telegram update, one person's events in order. The dispatcher gets a "zalo_oa" lane
(`outbox_channels`), and the job runner checks the access token every `token_check_seconds`
(`register`): it is refreshed ahead of its expiry, and the admins are told once when the OA
must authorise the app again.

The webhook has its own port because the OA needs it whatever the Zalo Bot API side does
(polling, webhook, or not enabled), and its checks (signature, replay window) differ from the
Bot API's secret header; the reverse proxy sends the OA's path to this port.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from http import HTTPStatus

from aiohttp import web

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
from bot.startup import StartupFault
from bot.zalo_oa_webhook import MAX_BODY, OnEvent, ZaloOAWebhook, add_route, router_dispatch
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


async def _not_found(request: web.Request) -> web.Response:
    """Answer any other path with 404."""
    return web.Response(status=HTTPStatus.NOT_FOUND, text="Not Found")


@dataclass
class OASide:
    """What `start` started: the reply channel, the dispatcher's channel and the webhook."""

    channel: ZaloOAChannel
    outbox: ZaloOAChannel
    webhook: ZaloOAWebhook
    runner: web.AppRunner

    async def stop(self) -> None:
        """Stop accepting events, finish those received, close the reply channel."""
        await self.runner.cleanup()
        await self.webhook.idle()
        await self.channel.close()


async def start(rt: Runtime) -> OASide:
    """Start the OA side of a running bot and keep it in runtime.extra (see the module doc)."""
    settings, maker, clock = rt.settings, rt.maker, rt.clock
    oa = settings.zalo.oa
    pacers = rt.extra.get(PACERS_KEY)
    if pacers is not None:  # replies and the outbox share one budget, as on the other channels
        pacers.setdefault(CHANNEL, Pacer(LIMITS))
    channel = make_channel(settings, maker, clock)
    await channel.open()  # stores the configured refresh token; resumes an unfinished refresh
    replies = Replies(channel, budget=pacers.get(CHANNEL) if pacers is not None else None)
    on_event = in_order(router_dispatch(Deps(maker, settings, clock), replies))
    web_app = web.Application(client_max_size=MAX_BODY)
    hook = add_route(web_app, oa, maker, clock, on_event)
    web_app.router.add_route("*", "/{tail:.*}", _not_found)
    runner = web.AppRunner(web_app, access_log=None, handle_signals=False)
    await runner.setup()
    try:
        await web.TCPSite(runner, oa.webhook_listen, oa.webhook_port).start()
    except BaseException as exc:
        await runner.cleanup()
        await channel.close()
        if isinstance(exc, OSError):  # not the Telegram port: say which key to look at
            where = {"listen": oa.webhook_listen, "port": oa.webhook_port}
            raise StartupFault("run.oa_port_busy", where) from exc
        raise
    log.info("zalo_oa webhook listening on %s:%s%s", oa.webhook_listen, oa.webhook_port, hook.path)
    side = OASide(channel, make_channel(settings, maker, clock), hook, runner)
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
