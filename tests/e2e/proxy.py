"""A small reverse proxy for the e2e tests: round-robin over webhook workers, as nginx does.

It passes Telegram's, the Zalo Bot API's and the Official Account's webhook paths (and their
guard headers) to the same port of each worker, as deploy/nginx/reformbot.conf does.
"""

from __future__ import annotations

import json
from collections import Counter

import aiohttp
from aiohttp import web

from bot.webhook import SECRET_HEADER

FORWARDED = (SECRET_HEADER, "X-Bot-Api-Secret-Token", "X-ZEvent-Signature", "Content-Type")
PATH = "/telegram"
PATHS = (PATH, "/zalo", "/zalo-oa")


class RoundRobinProxy:
    """Forward each POST to the next worker in turn; skip a worker that refuses the connection.

    As nginx does with `proxy_next_upstream error`, a request a dead worker cannot take goes to
    the next one. For tests of redelivery, the answer to chosen updates can be "lost" once: the
    worker handled the request, but the Bot API server is told 502 and so sends it again.
    """

    def __init__(self) -> None:
        self.upstreams: list[int] = []
        self.hits: Counter[int] = Counter()
        self.hits_by_path: Counter[tuple[int, str]] = Counter()
        self.lose_answer_once: set[int] = set()
        self._next = 0
        self._runner: web.AppRunner | None = None
        self._session: aiohttp.ClientSession | None = None
        self.port = 0

    @property
    def url(self) -> str:
        """Return the webhook URL the workers register with the Bot API server."""
        return self.url_of(PATH)

    def url_of(self, path: str) -> str:
        """Return the public URL of a webhook path."""
        return f"http://127.0.0.1:{self.port}{path}"

    async def start(self) -> None:
        """Listen on a free loopback port."""
        app = web.Application(client_max_size=1_048_576)
        for path in PATHS:
            app.router.add_post(path, self.forward)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = int(self._runner.addresses[0][1])
        self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30))

    async def stop(self) -> None:
        """Stop listening and close the upstream connections."""
        if self._session is not None:
            await self._session.close()
        if self._runner is not None:
            await self._runner.cleanup()

    def _order(self) -> list[int]:
        """Return the workers starting with the next one in turn; advance the turn."""
        ports = list(self.upstreams)
        if not ports:
            return []
        start = self._next % len(ports)
        self._next += 1
        return ports[start:] + ports[:start]

    async def forward(self, request: web.Request) -> web.Response:
        """Send the request to a worker; answer with the worker's status (502 if none took it)."""
        assert self._session is not None
        body = await request.read()
        headers = {k: request.headers[k] for k in FORWARDED if k in request.headers}
        for port in self._order():
            url = f"http://127.0.0.1:{port}{request.path}"
            try:
                async with self._session.post(url, data=body, headers=headers) as answer:
                    text = await answer.text()
                    status = answer.status
            except aiohttp.ClientConnectionError:
                continue  # a dead worker: the next one gets the request
            self.hits[port] += 1
            self.hits_by_path[port, request.path] += 1
            if status == 200 and self._lose(body):
                return web.Response(status=502, text="Bad Gateway")
            return web.Response(status=status, text=text)
        return web.Response(status=502, text="Bad Gateway")

    def _lose(self, body: bytes) -> bool:
        """Tell whether this answer is to be lost (once per chosen update id)."""
        try:
            update_id = json.loads(body).get("update_id")
        except (ValueError, AttributeError):
            return False
        if update_id in self.lose_answer_once:
            self.lose_answer_once.discard(update_id)
            return True
        return False
