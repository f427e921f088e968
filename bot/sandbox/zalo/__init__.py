"""The Zalo side of the sandbox: the Zalo Bot API, the Official Account endpoints the bot uses,
and a user side, all under /zalo on the sandbox's server."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import aiohttp
from aiohttp import web

from bot.sandbox.webhook import RetryPolicy
from bot.sandbox.zalo.botapi import BotApi
from bot.sandbox.zalo.engine import DEFAULT_ZALO_NAME, DEFAULT_ZALO_TOKEN, ZALO_LIMITS, ZaloSandbox
from bot.sandbox.zalo.oa import OaApi
from bot.sandbox.zalo.push import oa_signature, run_pushers
from bot.sandbox.zalo.userapi import ZALO, routes
from bot.sandbox.zalo.world import OaSettings, ZaloPersona

PREFIX = "/zalo"

__all__ = [
    "DEFAULT_ZALO_NAME",
    "DEFAULT_ZALO_TOKEN",
    "PREFIX",
    "ZALO_LIMITS",
    "OaSettings",
    "ZaloPersona",
    "ZaloSandbox",
    "mount_zalo",
    "oa_signature",
]


def mount_zalo(app: web.Application, zalo: ZaloSandbox, policy: RetryPolicy) -> None:
    """Add the Zalo routes under /zalo and run its webhook pushers while the app runs."""
    bot_api, oa_api = BotApi(zalo), OaApi(zalo)
    app[ZALO] = zalo
    app.router.add_post(PREFIX + "/bot{token}/{method}", bot_api.handle)
    app.router.add_post(PREFIX + "/oa/v3.0/oa/message/cs", oa_api.message_cs)
    app.router.add_post(PREFIX + "/oauth/v4/oa/access_token", oa_api.access_token)
    app.router.add_routes(routes)

    async def lifespan(app: web.Application) -> AsyncIterator[None]:
        """Run the pushers from startup to cleanup."""
        zalo.bot.updates.closed = False
        async with aiohttp.ClientSession() as session:
            tasks = await run_pushers(zalo, session, policy)
            yield
            zalo.close()
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    async def shutdown(app: web.Application) -> None:
        """End the long polls before the server waits for its handlers."""
        zalo.close()

    app.cleanup_ctx.append(lifespan)
    app.on_shutdown.append(shutdown)
