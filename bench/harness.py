"""Drive a python-telegram-bot Application against the sandbox and count updates per second."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from telegram.ext import Application

from bot.sandbox import Limits, SandboxServer
from bot.sandbox.server import DEFAULT_TOKEN

AnyApp = Application[Any, Any, Any, Any, Any, Any]
AppFactory = Callable[[SandboxServer], Awaitable[AnyApp]]
SECRET = "bench-secret-token-0123456789"


@dataclass(frozen=True)
class Result:
    """One measured run."""

    name: str
    mode: str
    updates: int
    seconds: float

    @property
    def per_second(self) -> float:
        """Return updates handled per second, end to end."""
        return self.updates / self.seconds


def free_port() -> int:
    """Return a free loopback port."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def start_app(app: AnyApp, mode: str) -> None:
    """Start the application receiving by polling or by webhook, reformbot as `reformbot run` does.

    The echo bot polls with python-telegram-bot's defaults (no pause between getUpdates calls).
    """
    assert app.updater is not None
    await app.initialize()
    if app.post_init is not None:
        await app.post_init(app)
    if mode == "webhook" and "runtime" in app.bot_data:
        await _start_reformbot_webhook(app)
    elif "runtime" in app.bot_data:  # polling as `reformbot run` polls
        from bot.app import ALLOWED_UPDATES, POLL_INTERVAL, POLL_TIMEOUT

        await app.updater.start_polling(
            timeout=POLL_TIMEOUT, poll_interval=POLL_INTERVAL, allowed_updates=ALLOWED_UPDATES
        )
    elif mode == "webhook":
        port = free_port()
        await app.updater.start_webhook(
            listen="127.0.0.1",
            port=port,
            url_path="hook",
            webhook_url=f"http://127.0.0.1:{port}/hook",
            secret_token=SECRET,
        )
    else:
        await app.updater.start_polling(timeout=10, poll_interval=0.0)
    await app.start()


async def _start_reformbot_webhook(app: AnyApp) -> None:
    """Serve the webhook with reformbot's own server, as `reformbot run` does."""
    from pydantic import SecretStr

    from bot import webhook
    from bot.app import ALLOWED_UPDATES

    rt = app.bot_data["runtime"]
    port = free_port()
    tg = rt.settings.telegram.model_copy(
        update={
            "mode": "webhook",
            "webhook_url": f"http://127.0.0.1:{port}/hook",
            "webhook_secret": SecretStr(SECRET),
            "webhook_listen": "127.0.0.1",
            "webhook_port": port,
            "webhook_path": "hook",
        }
    )
    attempt = rt.optional.attempt
    rt.extra["webhook"] = await webhook.start(app, tg, rt.maker, rt.clock, ALLOWED_UPDATES, attempt)


async def stop_app(app: AnyApp) -> None:
    """Stop the application."""
    assert app.updater is not None
    if "runtime" in app.bot_data and "webhook" in app.bot_data["runtime"].extra:
        await app.bot_data["runtime"].extra.pop("webhook").stop()
    if app.updater.running:
        await app.updater.stop()
    await app.stop()
    await app.shutdown()


async def measure(
    name: str, factory: AppFactory, *, mode: str, users: int, messages: int, text: str
) -> Result:
    """Have `users` users send `messages` texts each; time until every one has its reply."""
    server = SandboxServer(limits=Limits.off())
    await server.start("127.0.0.1", 0)
    app = await factory(server)
    await start_app(app, mode)
    uids = [900_000 + i for i in range(users)]
    for uid in uids:
        server.create_user(f"Người dùng {uid}", user_id=uid)
    try:
        started = time.perf_counter()
        for _ in range(messages):
            for uid in uids:
                server.send_text(uid, text)
        await asyncio.gather(
            *(server.wait_for_messages(uid, messages, seconds=600) for uid in uids)
        )
        elapsed = time.perf_counter() - started
    finally:
        await stop_app(app)
        await server.stop()
    return Result(name, mode, users * messages, elapsed)


def bot_kwargs(server: SandboxServer) -> dict[str, str]:
    """Return the token and Bot API addresses of the sandbox."""
    return {
        "token": DEFAULT_TOKEN,
        "base_url": server.base_url,
        "base_file_url": server.file_base_url,
    }
