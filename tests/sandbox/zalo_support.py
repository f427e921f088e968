"""Helpers for the Zalo sandbox tests: a started server on fake clocks, raw calls, and a
webhook receiver that records what Zalo posts."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from aiohttp import web

from bot.sandbox import FakeTime, RetryPolicy, SandboxServer
from bot.sandbox.zalo import DEFAULT_ZALO_TOKEN, ZaloSandbox

WALL_START = 1_767_225_600.0  # 01/01/2026 00:00 UTC
JsonDict = dict[str, Any]


@dataclass
class ZaloEnv:
    """A running sandbox with Zalo, its clocks and a client."""

    server: SandboxServer
    zalo: ZaloSandbox
    clock: FakeTime
    wall: FakeTime
    http: aiohttp.ClientSession

    async def call(
        self, method: str, token: str = DEFAULT_ZALO_TOKEN, **params: Any
    ) -> tuple[int, JsonDict]:
        """POST a Bot API method with JSON; return the HTTP status and the body."""
        async with self.http.post(f"/zalo/bot{token}/{method}", json=params) as resp:
            return resp.status, await resp.json()

    async def result(self, method: str, **params: Any) -> Any:
        """Call a method that must succeed; return its result."""
        status, body = await self.call(method, **params)
        assert (status, body["ok"]) == (200, True), body
        return body["result"]

    async def user(self, method: str, path: str, body: Any = None) -> Any:
        """Call the Zalo user API; return the result (failing on an error)."""
        async with self.http.request(method, "/zalo/sandbox/api" + path, json=body) as resp:
            data = await resp.json()
        assert data["ok"], data
        return data["result"]

    async def bot_messages(self, chat_id: str) -> list[JsonDict]:
        """Return what the chat shows (both directions)."""
        result = await self.user("GET", f"/chats/{chat_id}/messages")
        messages: list[JsonDict] = result["messages"]
        return messages

    async def oa_messages(self, user_id: str) -> list[JsonDict]:
        """Return the OA conversation with a user."""
        result = await self.user("GET", f"/oa/users/{user_id}/messages")
        messages: list[JsonDict] = result["messages"]
        return messages

    async def cs(self, token: str, body: Any) -> tuple[int, JsonDict]:
        """POST a customer-service message; return the HTTP status and the body."""
        headers = {"access_token": token}
        async with self.http.post("/zalo/oa/v3.0/oa/message/cs", json=body, headers=headers) as r:
            return r.status, await r.json()

    async def refresh(
        self, refresh_token: str, *, secret: str | None = None, **form: str
    ) -> JsonDict:
        """Call the OAuth refresh with the sandbox's app id and secret unless told otherwise."""
        settings = self.zalo.oa.settings
        data = {
            "refresh_token": refresh_token,
            "app_id": settings.app_id,
            "grant_type": "refresh_token",
            **form,
        }
        headers = {"secret_key": settings.app_secret if secret is None else secret}
        async with self.http.post(
            "/zalo/oauth/v4/oa/access_token", data=data, headers=headers
        ) as r:
            assert r.status == 200
            body: JsonDict = await r.json()
            return body


@asynccontextmanager
async def zalo_env(**options: Any) -> AsyncIterator[ZaloEnv]:
    """Start a sandbox with a Zalo side on fake clocks (quick webhook retries)."""
    clock, wall = FakeTime(), FakeTime(WALL_START)
    zalo = ZaloSandbox(clock=clock, wall=wall, **options)
    server = SandboxServer(
        clock=clock, webhook_retry=RetryPolicy(base=0.01, maximum=0.05, timeout=2.0), zalo=zalo
    )
    await server.start()
    try:
        async with aiohttp.ClientSession(base_url=server.origin) as http:
            yield ZaloEnv(server, zalo, clock, wall, http)
    finally:
        await server.stop()


@dataclass
class Posted:
    """One request the receiver got."""

    headers: dict[str, str]
    body: bytes


@dataclass
class Receiver:
    """A webhook endpoint that records posts and answers the statuses it is given."""

    url: str = ""
    posts: asyncio.Queue[Posted] = field(default_factory=asyncio.Queue)
    statuses: list[int] = field(default_factory=list)

    async def handle(self, request: web.Request) -> web.Response:
        """Record the post; answer the next planned status (200 when none)."""
        await self.posts.put(Posted(dict(request.headers), await request.read()))
        return web.Response(status=self.statuses.pop(0) if self.statuses else 200)

    async def next(self) -> Posted:
        """Return the next post (waiting a little for it)."""
        return await asyncio.wait_for(self.posts.get(), 5)


@asynccontextmanager
async def receiver() -> AsyncIterator[Receiver]:
    """Serve a webhook receiver on a free port."""
    sink = Receiver()
    app = web.Application()
    app.router.add_post("/hook", sink.handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    sink.url = f"http://127.0.0.1:{runner.addresses[0][1]}/hook"
    try:
        yield sink
    finally:
        await runner.cleanup()
