"""A fake Bot API in process: an httpx MockTransport that records calls and queues results."""

from __future__ import annotations

import itertools
import json
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl

import httpx

BOT_ID = 777000111
BOT_USERNAME = "reformbot_test_bot"
TOKEN = "777000111:TEST-TOKEN-abcdefghijklmnopqrstuvwxyz"


@dataclass
class Call:
    """One Bot API request the bot made."""

    method: str
    params: dict[str, Any]


@dataclass
class FakeBotAPI:
    """Record requests; answer like Telegram; fail on demand (like aiogram's mocked session)."""

    calls: list[Call] = field(default_factory=list)
    failures: dict[str, list[tuple[int, str, dict[str, Any]]]] = field(default_factory=dict)
    _ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1000))

    def transport(self) -> httpx.MockTransport:
        """Return the transport to give python-telegram-bot's HTTPXRequest."""
        return httpx.MockTransport(self._handle)

    def fail_next(self, method: str, code: int, description: str, **parameters: Any) -> None:
        """Make the next call of a method fail with a Telegram error."""
        self.failures.setdefault(method, []).append((code, description, parameters))

    def sent(self, method: str = "sendMessage") -> list[dict[str, Any]]:
        """Return the parameters of every call of a method."""
        return [c.params for c in self.calls if c.method == method]

    def texts(self, chat_id: int | None = None) -> list[str]:
        """Return the texts sent (and edited in), optionally to one chat."""
        return [
            str(c.params["text"])
            for c in self.calls
            if c.method in ("sendMessage", "editMessageText")
            and (chat_id is None or int(c.params["chat_id"]) == chat_id)
        ]

    def clear(self) -> None:
        """Forget the calls made so far."""
        self.calls.clear()

    def _handle(self, request: httpx.Request) -> httpx.Response:
        """Answer one Bot API request."""
        method = request.url.path.rsplit("/", 1)[-1]
        params = self._params(request)
        self.calls.append(Call(method, params))
        if self.failures.get(method):
            code, description, parameters = self.failures[method].pop(0)
            body: dict[str, Any] = {"ok": False, "error_code": code, "description": description}
            if parameters:
                body["parameters"] = parameters
            return httpx.Response(code, json=body)
        return httpx.Response(200, json={"ok": True, "result": self._result(method, params)})

    @staticmethod
    def _params(request: httpx.Request) -> dict[str, Any]:
        """Decode form or JSON parameters, JSON-decoding nested values."""
        raw = request.content.decode("utf-8") if request.content else ""
        ctype = request.headers.get("content-type", "")
        pairs: dict[str, Any] = json.loads(raw) if "json" in ctype and raw else dict(parse_qsl(raw))
        out: dict[str, Any] = {}
        for key, value in pairs.items():
            try:
                out[key] = json.loads(value) if isinstance(value, str) else value
            except ValueError:
                out[key] = value
        return out

    def _result(self, method: str, params: dict[str, Any]) -> Any:
        """Return a plausible result for a method."""
        bot = {"id": BOT_ID, "is_bot": True, "first_name": "Reformbot", "username": BOT_USERNAME}
        if method == "getMe":
            return {
                **bot,
                "can_join_groups": True,
                "can_read_all_group_messages": False,
                "supports_inline_queries": False,
            }
        if method == "getUpdates":
            return []
        if method in ("sendMessage", "editMessageText", "sendDocument", "sendPhoto"):
            chat_id = int(params.get("chat_id", 0))
            mid = int(params["message_id"]) if "message_id" in params else next(self._ids)
            message = {
                "message_id": mid,
                "date": int(time.time()),
                "from": bot,
                "chat": {"id": chat_id, "type": "private", "first_name": "User"},
                "text": str(params.get("text", "")),
            }
            if "reply_markup" in params:
                message["reply_markup"] = params["reply_markup"]
            return message
        return True
