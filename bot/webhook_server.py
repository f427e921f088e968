"""One webhook server per worker: every channel's webhook path on one address and port.

Telegram's path, the Zalo Bot API's and the Official Account's are routes of one aiohttp
application on `telegram.webhook_listen`:`telegram.webhook_port`; each route keeps its own
guard (secret header, signature, size). Any other path is answered 404 without reading the body.
Routes are added before `listen`; what must happen once the port is open (telling a platform
where to post) is added with `after_listening` and run by `announce`.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from http import HTTPStatus

from aiohttp import web

from bot.webhook_guard import refuse

log = logging.getLogger(__name__)
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
Expect = Callable[[web.Request], Awaitable[web.StreamResponse | None]]
MIN_BODY = 1024


@dataclass(frozen=True)
class Route:
    """One channel's webhook: its path, its handler (guard included) and its body limit."""

    name: str
    path: str
    handler: Handler
    max_body: int
    expect: Expect | None = None


async def _not_found(request: web.Request) -> web.Response:
    """Answer any other path with 404, without reading the body."""
    return refuse(HTTPStatus.NOT_FOUND)


class WebhookServer:
    """The worker's webhook server: the routes of the channels on, everything else 404."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.routes: list[Route] = []
        self._after: list[Callable[[], Awaitable[object]]] = []
        self.runner: web.AppRunner | None = None

    def route(
        self,
        name: str,
        path: str,
        handler: Handler,
        *,
        max_body: int,
        expect: Expect | None = None,
    ) -> None:
        """Add a channel's webhook path (before `listen`)."""
        path = "/" + path.strip("/")
        if any(r.path == path for r in self.routes):
            raise ValueError(f"webhook path {path} is served twice")
        self.routes.append(Route(name, path, handler, max_body, expect))

    def after_listening(self, call: Callable[[], Awaitable[object]]) -> None:
        """Run `call` once the port is open (by `announce`)."""
        self._after.append(call)

    def web_app(self) -> web.Application:
        """Return the aiohttp application: one route per channel, everything else 404."""
        biggest = max([MIN_BODY, *(r.max_body for r in self.routes)])
        app = web.Application(client_max_size=biggest)
        for r in self.routes:
            app.router.add_route("*", r.path, r.handler, expect_handler=r.expect)
        app.router.add_route("*", "/{tail:.*}", _not_found)
        return app

    @property
    def needed(self) -> bool:
        """Tell whether any channel posts to this worker."""
        return bool(self.routes)

    async def listen(self) -> None:
        """Open the port (an OSError when it cannot be: taken, not this machine's, privileged)."""
        runner = web.AppRunner(self.web_app(), access_log=None, handle_signals=False)
        await runner.setup()
        try:
            await web.TCPSite(runner, self.host, self.port).start()
        except BaseException:
            await runner.cleanup()
            raise
        self.runner = runner
        paths = ", ".join(f"{r.path} ({r.name})" for r in self.routes)
        log.info("webhooks listening on %s:%s: %s", self.host, self.port, paths)

    async def announce(self) -> None:
        """Run what waits for the open port, in the order it was added."""
        calls, self._after = self._after, []
        for call in calls:
            await call()

    async def start(self) -> None:
        """Open the port, then announce."""
        await self.listen()
        await self.announce()

    async def stop(self) -> None:
        """Stop accepting requests (the routes then finish what they took)."""
        runner, self.runner = self.runner, None
        if runner is not None:
            await runner.cleanup()
