"""A Zalo OA API in a test: single-use refresh tokens, CS messages, scripted errors."""

from __future__ import annotations

import asyncio
import itertools
from collections import defaultdict, deque
from typing import Any

from aiohttp import test_utils, web

from bot.config import ZaloOASettings

APP_ID = "1234567890"
OA_ID = "9876543210"
APP_SECRET = "app-secret-key-0001"
OA_SECRET = "oa-secret-key-0001"
FIRST_REFRESH = "refresh-token-initial-0001"


class FakeZalo:
    """The OAuth and OA endpoints, in memory; a spent refresh token is refused, as Zalo says."""

    def __init__(self) -> None:
        self.refresh_tokens = {FIRST_REFRESH}
        self.spent: set[str] = set()
        self.access_tokens: set[str] = set()
        self.refresh_calls = 0
        self.sent: list[dict[str, Any]] = []
        self.errors: dict[str, deque[int]] = defaultdict(deque)
        self.gate: asyncio.Event | None = None  # when set, refresh answers wait for it
        self.requested = asyncio.Event()  # a refresh request arrived
        self._ids = itertools.count(1)
        self.server: test_utils.TestServer | None = None

    async def start(self) -> str:
        """Serve on a local port; return the base URL."""
        app = web.Application()
        app.router.add_post("/v4/oa/access_token", self.oauth)
        app.router.add_post("/v3.0/oa/message/cs", self.message)
        self.server = test_utils.TestServer(app)
        await self.server.start_server()
        return str(self.server.make_url("")).rstrip("/")

    async def stop(self) -> None:
        """Stop serving."""
        if self.server is not None:
            await self.server.close()

    def issue(self, refresh: str) -> None:
        """Give the OA admin's new authorisation: a fresh refresh token."""
        self.refresh_tokens.add(refresh)

    async def oauth(self, request: web.Request) -> web.Response:
        """Refresh: check the app, spend the refresh token once, issue a new pair."""
        form = await request.post()
        self.refresh_calls += 1
        self.requested.set()
        if self.gate is not None:
            await self.gate.wait()
        if request.headers.get("secret_key") != APP_SECRET or form.get("app_id") != APP_ID:
            return web.json_response({"error": -14002, "error_name": "Invalid app"})
        token = str(form.get("refresh_token", ""))
        if form.get("grant_type") != "refresh_token" or token not in self.refresh_tokens:
            return web.json_response({"error": -14014, "error_name": "Invalid refresh token"})
        self.refresh_tokens.discard(token)
        self.spent.add(token)
        n = next(self._ids)
        access, refresh = f"access-token-{n:04d}-xyz", f"refresh-token-{n:04d}-xyz"
        self.access_tokens.add(access)
        self.refresh_tokens.add(refresh)
        return web.json_response(
            {"access_token": access, "refresh_token": refresh, "expires_in": "90000"}
        )

    async def message(self, request: web.Request) -> web.Response:
        """A customer-service message: the token checked, a scripted error, else delivered."""
        body = await request.json()
        user = body["recipient"]["user_id"]
        if request.headers.get("access_token") not in self.access_tokens:
            return web.json_response({"error": -216, "message": "Access token is invalid"})
        if self.errors[user]:
            code = self.errors[user].popleft()
            return web.json_response({"error": code, "message": f"scripted {code}"})
        self.sent.append({"user": user, "token": request.headers["access_token"], **body})
        return web.json_response(
            {"error": 0, "message": "Success", "data": {"message_id": f"zm{next(self._ids)}"}}
        )

    def texts(self, user: str) -> list[str]:
        """Return the texts a user received (a template's text included)."""
        out = []
        for item in self.sent:
            if item["user"] != user:
                continue
            message = item["message"]
            out.append(message.get("text") or message["attachment"]["payload"]["text"])
        return out


def oa_settings(base: str, **extra: Any) -> ZaloOASettings:
    """Return an enabled OA's settings pointing at the fake server."""
    values: dict[str, Any] = {
        "enabled": True,
        "app_id": APP_ID,
        "oa_id": OA_ID,
        "secret_key": APP_SECRET,
        "oa_secret_key": OA_SECRET,
        "refresh_token": FIRST_REFRESH,
        "api_base": base,
        "oauth_base": base,
    }
    values.update(extra)
    return ZaloOASettings(**values)
