"""SandboxServer: the HTTP face of the sandbox (Bot API, file downloads, user API, page)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import time
from collections.abc import Iterable, Mapping
from http import HTTPStatus
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

from bot.sandbox.counters import Counters
from bot.sandbox.engine import Sandbox
from bot.sandbox.errors import ApiError, JsonDict
from bot.sandbox.faults import FaultRule, Faults
from bot.sandbox.limits import Limits, TimeSource
from bot.sandbox.methods import CANONICAL, METHODS, Call, faults_apply
from bot.sandbox.params import Params
from bot.sandbox.state import BotState, CallbackRecord, Chat, Persona, User
from bot.sandbox.userapi import add_user_api, api_errors, error_response, ok
from bot.sandbox.webhook import RetryPolicy, WebhookPusher
from bot.sandbox.zalo import ZaloSandbox, mount_zalo

LOGGER = logging.getLogger(__name__)
DEFAULT_TOKEN = "123456:SANDBOX-TOKEN-000000000000000000"
DEFAULT_USERNAME = "reformbot_sandbox_bot"
DEFAULT_FIRST_NAME = "ReformBot Sandbox"
MAX_UPLOAD = 50 * 1024 * 1024
STATIC_DIR = Path(__file__).with_name("static")
WILDCARD_HOSTS = ("", "0.0.0.0", "::")


class SandboxServer:
    """A local Telegram Bot API with a user side, a chat page, limits and faults."""

    def __init__(
        self,
        token: str = DEFAULT_TOKEN,
        username: str = DEFAULT_USERNAME,
        *,
        first_name: str = DEFAULT_FIRST_NAME,
        limits: Limits | None = None,
        faults: Faults | None = None,
        clock: TimeSource | None = None,
        webhook_retry: RetryPolicy | None = None,
        zalo: ZaloSandbox | None = None,
    ) -> None:
        self.zalo = zalo
        self.sandbox = Sandbox(limits=limits, faults=faults, clock=clock or time.monotonic)
        self.sandbox.add_bot(token, username, first_name)
        self.webhook_retry = webhook_retry or RetryPolicy()
        self._runner: web.AppRunner | None = None
        self._session: aiohttp.ClientSession | None = None
        self._pushers: dict[str, asyncio.Task[None]] = {}
        self._host = "127.0.0.1"
        self._port: int | None = None

    # lifecycle ------------------------------------------------------------

    def make_app(self) -> web.Application:
        """Build the aiohttp application with every route."""
        app = web.Application(client_max_size=MAX_UPLOAD, middlewares=[api_errors])
        app.router.add_route("*", "/bot{token}/{method}", self._bot_api)
        app.router.add_get("/file/bot{token}/{file_path:.+}", self._file_download)
        add_user_api(app, self.sandbox)
        if self.zalo is not None:
            mount_zalo(app, self.zalo, self.webhook_retry)
        app.router.add_get("/", self._index)
        app.router.add_static("/static/", STATIC_DIR)
        return app

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> int:
        """Start serving on host:port (0 picks a free port); return the bound port."""
        if self._runner is not None:
            raise RuntimeError("the sandbox server is already running")
        runner = web.AppRunner(self.make_app(), access_log=None, shutdown_timeout=1.0)
        await runner.setup()
        try:
            await web.TCPSite(runner, host, port).start()
        except OSError:
            await runner.cleanup()
            raise
        self._runner, self._host = runner, host
        self._port = int(runner.addresses[0][1])
        self._session = aiohttp.ClientSession()
        for state in self.sandbox.bots.values():
            state.updates.closed = False
            self._start_pusher(state.identity.token)
        identity = self.sandbox.bot().identity
        LOGGER.info("Telegram sandbox for @%s listening on %s", identity.username, self.url)
        return self._port

    async def stop(self) -> None:
        """Stop serving: end long polls and streams, stop webhook pushes, close the port."""
        if self._runner is None:
            return
        self.sandbox.close()
        for task in self._pushers.values():
            task.cancel()
        await asyncio.gather(*self._pushers.values(), return_exceptions=True)
        self._pushers.clear()
        await self._runner.cleanup()
        self._runner = None
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def serve_forever(
        self,
        host: str = "127.0.0.1",
        port: int = 8081,
        stop: asyncio.Event | None = None,
        *,
        ready: asyncio.Event | None = None,
    ) -> None:
        """Serve until SIGINT/SIGTERM (or `stop` is set); set `ready` once listening."""
        stop = stop or asyncio.Event()
        loop = asyncio.get_running_loop()
        installed = []
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
                loop.add_signal_handler(sig, stop.set)
                installed.append(sig)
        try:
            await self.start(host, port)
            if ready is not None:
                ready.set()
            await stop.wait()
        finally:
            await self.stop()
            for sig in installed:
                loop.remove_signal_handler(sig)
            LOGGER.info("Telegram sandbox stopped")

    def _start_pusher(self, token: str) -> None:
        """Start the webhook pusher of a bot."""
        if self._session is None:
            return
        pusher = WebhookPusher(self.sandbox, token, self._session, self.webhook_retry)
        task = asyncio.create_task(pusher.run(), name=f"sandbox-webhook-{token[:6]}")
        self._pushers[token] = task

    # addresses ------------------------------------------------------------

    @property
    def port(self) -> int:
        """Return the bound port (after start)."""
        if self._port is None:
            raise RuntimeError("the sandbox server is not started")
        return self._port

    @property
    def origin(self) -> str:
        """Return http://host:port."""
        host = "127.0.0.1" if self._host in WILDCARD_HOSTS else self._host
        host = f"[{host}]" if ":" in host else host
        return f"http://{host}:{self.port}"

    @property
    def base_url(self) -> str:
        """Return the Bot API base URL for python-telegram-bot (token is appended)."""
        return f"{self.origin}/bot"

    @property
    def zalo_base_url(self) -> str:
        """Return the Zalo APIs' base URL (the Bot API is <base>/bot<token>/<method>)."""
        return f"{self.origin}/zalo"

    @property
    def file_base_url(self) -> str:
        """Return the file download base URL for python-telegram-bot."""
        return f"{self.origin}/file/bot"

    @property
    def url(self) -> str:
        """Return the chat simulator page's URL."""
        return f"{self.origin}/"

    # HTTP handlers --------------------------------------------------------

    async def _bot_api(self, request: web.Request) -> web.StreamResponse:
        """Answer a Bot API call."""
        bot = self.sandbox.bots.get(request.match_info["token"])
        if bot is None:
            return error_response(ApiError(401, "Unauthorized"))
        name = request.match_info["method"]
        handler = METHODS.get(name.lower())
        if handler is None:
            return error_response(ApiError(404, "Not Found"))
        bot.counters.requests_total += 1
        bot.counters.by_method[CANONICAL[name.lower()]] += 1
        try:
            status = self.sandbox.injector.method_fault(CANONICAL[name.lower()])
            if status is not None:
                bot.counters.method_faults_total += 1
                retry = {"retry_after": 1} if status == HTTPStatus.TOO_MANY_REQUESTS else None
                raise ApiError(status, HTTPStatus(status).phrase, retry)
            params = await Params.from_request(request)
            if faults_apply(name):
                delay = bot.flood.jitter()
                if delay > 0:
                    await asyncio.sleep(delay)
                if await self._inject_faults(bot, params, request):
                    return web.Response()
            result = await handler(Call(self.sandbox, bot, params))
        except ApiError as exc:
            if exc.code == HTTPStatus.CONFLICT:
                bot.counters.conflicts_total += 1
            return error_response(exc)
        return ok(result)

    async def _inject_faults(self, bot: BotState, params: Params, request: web.Request) -> bool:
        """Apply the chat's faults; return True when the connection was dropped."""
        injector = self.sandbox.injector
        rule = injector.rule_for(params.peek_chat_id())
        if injector.roll(rule.drop_rate):
            bot.counters.dropped_total += 1
            if request.transport is not None:
                request.transport.close()
            return True
        if rule.delay_ms:
            bot.counters.delayed_total += 1
            await asyncio.sleep(rule.delay_ms / 1000)
        if injector.roll(rule.error_rate):
            bot.counters.server_errors_total += 1
            raise ApiError(500, "Internal Server Error")
        return False

    async def _file_download(self, request: web.Request) -> web.Response:
        """Serve /file/bot<token>/<file_path> like Telegram's file server."""
        bot = self.sandbox.bots.get(request.match_info["token"])
        if bot is None:
            return error_response(ApiError(401, "Unauthorized"))
        stored = bot.files.by_path(request.match_info["file_path"])
        if stored is None:
            return error_response(ApiError(404, "Not Found"))
        return web.Response(body=stored.data, content_type=stored.mime_type)

    async def _index(self, request: web.Request) -> web.FileResponse:
        """Serve the chat simulator page."""
        return web.FileResponse(STATIC_DIR / "index.html")

    # Python API -----------------------------------------------------------

    def add_bot(self, token: str, username: str, first_name: str = DEFAULT_FIRST_NAME) -> None:
        """Host one more bot token."""
        self.sandbox.add_bot(token, username, first_name)
        self._start_pusher(token)

    def set_personas(self, personas: Iterable[Persona | Mapping[str, Any]]) -> list[Persona]:
        """Set the page's personas (id, label, role, unit, user_id[, chat_id]); users are made."""
        return self.sandbox.set_personas(personas)

    def create_user(
        self,
        first_name: str,
        *,
        user_id: int | None = None,
        last_name: str | None = None,
        username: str | None = None,
        language_code: str | None = "vi",
    ) -> User:
        """Create a user and its private chat (chat id = user id)."""
        return self.sandbox.create_user(
            first_name,
            user_id=user_id,
            last_name=last_name,
            username=username,
            language_code=language_code,
        )

    def create_group(
        self,
        title: str,
        member_ids: Iterable[int] = (),
        *,
        chat_id: int | None = None,
        supergroup: bool = False,
    ) -> Chat:
        """Create a group chat (negative id) with some users as members."""
        return self.sandbox.create_group(title, member_ids, chat_id=chat_id, supergroup=supergroup)

    def send_text(
        self, chat_id: int, text: str, *, from_id: int | None = None, bot: str | None = None
    ) -> int:
        """Send text as a user; return the update id."""
        return self.sandbox.send_text(chat_id, text, from_id=from_id, bot=bot)

    def send_document(
        self,
        chat_id: int,
        data: bytes,
        file_name: str,
        *,
        mime_type: str | None = None,
        caption: str | None = None,
        from_id: int | None = None,
        bot: str | None = None,
    ) -> int:
        """Send a document as a user; return the update id."""
        return self.sandbox.send_document(
            chat_id, data, file_name, mime_type=mime_type, caption=caption, from_id=from_id, bot=bot
        )

    def press_button(
        self,
        chat_id: int,
        message_id: int,
        data: str,
        *,
        from_id: int | None = None,
        bot: str | None = None,
    ) -> int:
        """Press an inline button of a bot message; return the update id."""
        return self.sandbox.press_button(chat_id, message_id, data, from_id=from_id, bot=bot)

    def callback_answer(self, key: int | str, bot: str | None = None) -> CallbackRecord | None:
        """Return a button press and the bot's answer, by update id or callback query id."""
        return self.sandbox.callback_answer(key, bot)

    def messages(self, chat_id: int, bot: str | None = None) -> list[JsonDict]:
        """Return a chat's messages (both directions, current text/markup, deleted marked)."""
        return self.sandbox.messages(chat_id, bot)

    async def wait_for_messages(
        self, chat_id: int, count: int, *, seconds: float = 5.0, bot: str | None = None
    ) -> list[JsonDict]:
        """Wait until the bot has sent `count` messages to a chat; return them."""
        return await self.sandbox.wait_for_messages(chat_id, count, seconds=seconds, bot=bot)

    def pending_updates(self, bot: str | None = None) -> list[JsonDict]:
        """Return the updates the bot has not confirmed yet."""
        return [update.to_api() for update in self.sandbox.bot(bot).updates.items]

    def counters(self, bot: str | None = None) -> Counters:
        """Return a bot's counters (live object)."""
        return self.sandbox.bot(bot).counters

    def set_limits(self, limits: Limits) -> None:
        """Change the flood limits at runtime."""
        self.sandbox.set_limits(limits)

    def set_faults(self, faults: Faults) -> None:
        """Change the faults at runtime."""
        self.sandbox.set_faults(faults)

    def set_chat_faults(self, chat_id: int, rule: FaultRule | None) -> None:
        """Set (or clear with None) the fault rule of one chat."""
        self.sandbox.set_chat_faults(chat_id, rule)

    def reset(self) -> None:
        """Forget users, chats, messages, updates, webhooks and counters (personas stay)."""
        self.sandbox.reset()


def run_sandbox(
    host: str = "127.0.0.1",
    port: int = 8081,
    token: str = DEFAULT_TOKEN,
    username: str = DEFAULT_USERNAME,
    limits: Limits | None = None,
    faults: Faults | None = None,
    personas: Iterable[Persona | Mapping[str, Any]] = (),
    zalo: ZaloSandbox | None = None,
) -> None:
    """Run a sandbox server in the foreground until SIGINT/SIGTERM (with Zalo when given)."""
    server = SandboxServer(token, username, limits=limits, faults=faults, zalo=zalo)
    server.set_personas(personas)
    asyncio.run(server.serve_forever(host, port))
