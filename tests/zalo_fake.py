"""A small Zalo Bot API server for tests (aiohttp), served under /zalo like the sandbox's."""

from __future__ import annotations

import itertools
import json
from collections import defaultdict, deque
from dataclasses import dataclass
from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestServer

TOKEN = "1234567890:zalo-test-token_abc"
_ids = itertools.count(1)


@dataclass
class Call:
    """One call the bot made: the method and its JSON body."""

    method: str
    params: dict[str, Any]


def update(
    uid: str | int,
    text: str,
    *,
    chat_type: str = "PRIVATE",
    name: str | None = "Người dùng",
    message_id: str | None = None,
) -> dict[str, Any]:
    """Return a Zalo update carrying a text message (ids as the API gives them)."""
    sender: dict[str, Any] = {"id": str(uid)}
    if name is not None:
        sender["display_name"] = name
    return {
        "event_name": "message.text.received",
        "message": {
            "message_id": message_id or f"mid{next(_ids)}",
            "date": 1_764_464_400_000,
            "chat": {"id": str(uid), "chat_type": chat_type},
            "from": sender,
            "text": text,
        },
    }


class FakeZaloApi:
    """Answers Bot API calls, records them, and returns scripted answers when told to."""

    def __init__(self) -> None:
        self.calls: list[Call] = []
        self.updates: deque[dict[str, Any]] = deque()
        self._script: defaultdict[str, deque[tuple[int, Any]]] = defaultdict(deque)
        self.server: TestServer | None = None

    @property
    def base(self) -> str:
        """Return the api_base the bot is configured with."""
        assert self.server is not None
        return str(self.server.make_url("/zalo"))

    async def start(self) -> None:
        """Listen on a free local port."""
        app = web.Application()
        app.router.add_post("/zalo/bot{token}/{method}", self._handle)
        self.server = TestServer(app)
        await self.server.start_server()

    async def close(self) -> None:
        """Stop listening."""
        if self.server is not None:
            await self.server.close()

    def script(self, method: str, status: int, body: Any, *, chat_id: str | None = None) -> None:
        """Answer the next call of `method` (to one chat, if given) with this status and body."""
        self._script[method if chat_id is None else f"{method}:{chat_id}"].append((status, body))

    def sent(self, method: str = "sendMessage") -> list[dict[str, Any]]:
        """Return the bodies of the calls of one method."""
        return [c.params for c in self.calls if c.method == method]

    def texts(self, chat_id: str | int | None = None) -> list[str]:
        """Return the texts sent (to one chat), in order."""
        return [
            str(p["text"])
            for p in self.sent()
            if chat_id is None or str(p.get("chat_id")) == str(chat_id)
        ]

    def clear(self) -> None:
        """Forget the calls so far."""
        self.calls.clear()

    async def _handle(self, request: web.Request) -> web.Response:
        """Record the call; answer from the script, else as the Bot API would."""
        method = request.match_info["method"]
        if request.match_info["token"] != TOKEN:
            return web.json_response(
                {"ok": False, "error_code": 401, "description": "Unauthorized"}
            )
        params = json.loads(await request.read() or b"{}")
        self.calls.append(Call(method, params))
        key = f"{method}:{params.get('chat_id')}"
        queue = self._script[key] or self._script[method]
        if queue:
            status, body = queue.popleft()
            return web.Response(
                status=status, text=json.dumps(body), content_type="application/json"
            )
        if method == "getUpdates":
            if not self.updates:
                return web.json_response(
                    {"ok": False, "error_code": 408, "description": "Request timeout"}
                )
            return web.json_response({"ok": True, "result": self.updates.popleft()})
        if method in ("sendMessage", "sendPhoto"):
            text = params.get("text", params.get("caption", ""))
            if method == "sendMessage" and not 1 <= len(text) <= 2000:
                return web.json_response(
                    {"ok": False, "error_code": 400, "description": "text length 1-2000"}
                )
            result = {"message_id": f"z{next(_ids)}", "date": 1_764_464_400_000}
            return web.json_response({"ok": True, "result": result})
        return web.json_response({"ok": True, "result": {}})
