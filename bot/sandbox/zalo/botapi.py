"""The Zalo Bot API: POST /zalo/bot<TOKEN>/<method> with JSON, answered {ok, result} or
{ok: false, error_code, description} (HTTP 200 for most errors, as Zalo does)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any
from urllib.parse import urlsplit

from aiohttp import web

from bot.sandbox.errors import JsonDict
from bot.sandbox.zalo.engine import MAX_TEXT, ZaloSandbox
from bot.sandbox.zalo.errors import BotApiError, bad_request
from bot.sandbox.zalo.world import GROUP, ZaloWebhook, flood_key

MAX_POLL = 60.0
DEFAULT_POLL = 30.0
SECRET_MIN, SECRET_MAX = 8, 256
CHAT_ACTIONS = frozenset({"typing", "upload_photo"})
SENDING = frozenset({"sendmessage", "sendphoto", "sendchataction"})


@dataclass
class BotCall:
    """One Bot API call: the sandbox and the parameters."""

    zalo: ZaloSandbox
    params: JsonDict

    def string(self, name: str, *, required: bool = True) -> str | None:
        """Return a string parameter (400 when missing or not a string)."""
        value = self.params.get(name)
        if value is None:
            if required:
                raise bad_request(f"{name} is required")
            return None
        if not isinstance(value, str):
            raise bad_request(f"{name} must be a string")
        return value

    def text(self, name: str, *, required: bool = True, low: int = 1) -> str | None:
        """Return a text parameter of low..2000 characters."""
        value = self.string(name, required=required)
        if value is not None and not low <= len(value) <= MAX_TEXT:
            raise bad_request(f"{name} must be {low}-{MAX_TEXT} characters, got {len(value)}")
        return value

    def chat_id(self) -> str:
        """Return the chat_id of a send (400 for an unknown chat, 403 for a blocked user)."""
        chat_id = self.string("chat_id") or ""
        if chat_id not in self.zalo.chats:
            raise bad_request("chat not found")
        if self.zalo.injector.rule_for(flood_key(chat_id)).blocked:
            self.zalo.bot.counters.forbidden_total += 1
            raise BotApiError(403, "Forbidden: the user has blocked the bot")
        return chat_id

    def admit(self, chat_id: str) -> None:
        """Apply the flood limits to one send (429 in the body when over)."""
        bot = self.zalo.bot
        is_group = self.zalo.chats[chat_id].chat_type == GROUP
        wait = bot.flood.admit(flood_key(chat_id), is_group)
        if wait:
            bot.counters.rate_limited_total += 1
            raise BotApiError(429, f"Too Many Requests: retry after {wait}")
        bot.counters.accepted_total += 1
        bot.counters.accepted_by_chat[chat_id] += 1


Handler = Callable[[BotCall], Awaitable[Any]]


async def get_me(call: BotCall) -> Any:
    """getMe: the bot's identity."""
    return call.zalo.bot.to_api()


async def get_updates(call: BotCall) -> Any:
    """getUpdates: wait up to `timeout` seconds for one update; 408 when none came."""
    bot = call.zalo.bot
    if bot.webhook is not None:
        raise BotApiError(409, "Conflict: a webhook is set; delete it before calling getUpdates")
    seconds = _timeout(call.params.get("timeout"))
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    outbox = bot.updates
    while not outbox.items and not outbox.closed and bot.webhook is None:
        remaining = deadline - loop.time()
        if remaining <= 0 or not await outbox.changed.wait(remaining):
            break
    if not outbox.items or bot.webhook is not None:
        raise BotApiError(408, "Request timeout")
    return outbox.items.popleft()


def _timeout(value: Any) -> float:
    """Read getUpdates' timeout (seconds, a number or a string of one)."""
    if value is None:
        return DEFAULT_POLL
    try:
        if isinstance(value, bool):
            raise ValueError(value)
        seconds = float(value)
    except (TypeError, ValueError):
        raise bad_request("timeout must be a number of seconds") from None
    if seconds < 0:
        raise bad_request("timeout must not be negative")
    return min(seconds, MAX_POLL)


async def set_webhook(call: BotCall) -> Any:
    """setWebhook: an http(s) URL and a secret token of 8-256 characters."""
    url = call.string("url") or ""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise bad_request("url must be an http(s) URL")
    secret = call.string("secret_token") or ""
    if not SECRET_MIN <= len(secret) <= SECRET_MAX:
        raise bad_request(f"secret_token must be {SECRET_MIN}-{SECRET_MAX} characters")
    bot = call.zalo.bot
    bot.webhook = ZaloWebhook(url, secret, call.zalo.now_ms())
    bot.updates.changed.notify()
    return {"url": url, "updated_at": bot.webhook.updated_at}


async def get_webhook_info(call: BotCall) -> Any:
    """getWebhookInfo: the URL, when it was set, pending updates and the last error."""
    hook = call.zalo.bot.webhook
    pending = len(call.zalo.bot.updates.items)
    if hook is None:
        return {"url": "", "updated_at": None, "pending_update_count": pending}
    info: JsonDict = {"url": hook.url, "updated_at": hook.updated_at}
    info["pending_update_count"] = pending
    if hook.last_error:
        info["last_error_message"] = hook.last_error
    return info


async def delete_webhook(call: BotCall) -> Any:
    """deleteWebhook: back to getUpdates."""
    bot = call.zalo.bot
    bot.webhook = None
    bot.updates.changed.notify()
    return {"url": "", "updated_at": call.zalo.now_ms()}


async def send_message(call: BotCall) -> Any:
    """sendMessage: text of 1-2000 characters to a chat."""
    chat_id = call.chat_id()
    text = call.text("text") or ""
    call.admit(chat_id)
    message = call.zalo.post_bot_message(chat_id, text=text)
    return {"message_id": message.message_id, "date": message.date}


async def send_photo(call: BotCall) -> Any:
    """sendPhoto: a photo by URL with a caption of at most 2000 characters."""
    chat_id = call.chat_id()
    photo = call.string("photo") or ""
    if urlsplit(photo).scheme not in ("http", "https"):
        raise bad_request("photo must be an http(s) URL")
    caption = call.text("caption", required=False, low=0)
    call.admit(chat_id)
    message = call.zalo.post_bot_message(chat_id, photo=photo, caption=caption or None)
    return {"message_id": message.message_id, "date": message.date}


async def send_chat_action(call: BotCall) -> Any:
    """sendChatAction: show "typing" (or "upload_photo") for a few seconds."""
    chat_id = call.chat_id()
    action = call.string("action") or ""
    if action not in CHAT_ACTIONS:
        raise bad_request(f"action must be one of {', '.join(sorted(CHAT_ACTIONS))}")
    call.zalo.set_typing(call.zalo.chat_log(chat_id))
    return True


METHODS: dict[str, tuple[str, Handler]] = {
    name.lower(): (name, handler)
    for name, handler in (
        ("getMe", get_me),
        ("getUpdates", get_updates),
        ("setWebhook", set_webhook),
        ("getWebhookInfo", get_webhook_info),
        ("deleteWebhook", delete_webhook),
        ("sendMessage", send_message),
        ("sendPhoto", send_photo),
        ("sendChatAction", send_chat_action),
    )
}


def answer(result: Any) -> web.Response:
    """Answer {"ok": true, "result": ...}."""
    return web.json_response({"ok": True, "result": result}, dumps=_dumps)


def refuse(exc: BotApiError) -> web.Response:
    """Answer an error body with its HTTP status."""
    return web.json_response(exc.to_json(), status=exc.status, dumps=_dumps)


def _dumps(data: Any) -> str:
    """Write JSON keeping Vietnamese letters."""
    return json.dumps(data, ensure_ascii=False)


async def read_params(request: web.Request) -> JsonDict:
    """Read the parameters: a JSON object body (form or query accepted too)."""
    if request.content_type == "application/json":
        raw = await request.read()
        if not raw.strip():
            return {}
        try:
            data = json.loads(raw)
        except ValueError:
            raise bad_request("body is not JSON") from None
        if not isinstance(data, dict):
            raise bad_request("body must be a JSON object")
        return data
    form = await request.post() if request.can_read_body else {}
    return {**request.query, **{k: v for k, v in form.items() if isinstance(v, str)}}


class BotApi:
    """The HTTP face of the Bot API, with limits and faults."""

    def __init__(self, zalo: ZaloSandbox) -> None:
        self.zalo = zalo

    async def handle(self, request: web.Request) -> web.StreamResponse:
        """Answer one Bot API call."""
        zalo = self.zalo
        if request.match_info["token"] != zalo.bot.token:
            return refuse(BotApiError(401, "Unauthorized: invalid bot token"))
        entry = METHODS.get(request.match_info["method"].lower())
        if entry is None:
            return refuse(BotApiError(404, "Not Found: unknown method"))
        name, handler = entry
        counters = zalo.bot.counters
        counters.requests_total += 1
        counters.by_method[name] += 1
        try:
            status = zalo.injector.method_fault(name)
            if status is not None:
                counters.method_faults_total += 1
                raise self._fault(status)
            params = await read_params(request)
            if name.lower() in SENDING and await self._chat_faults(params, request):
                return web.Response()
            result = await handler(BotCall(zalo, params))
        except BotApiError as exc:
            return refuse(exc)
        return answer(result)

    def _fault(self, status: int) -> BotApiError:
        """Return an injected failure: HTTP status, or ok=false in an HTTP 200 when soft."""
        phrase = HTTPStatus(status).phrase
        if self.zalo.soft_faults:
            self.zalo.bot.counters.soft_errors_total += 1
            return BotApiError(status, phrase)
        return BotApiError(status, phrase, status=status)

    async def _chat_faults(self, params: JsonDict, request: web.Request) -> bool:
        """Apply jitter and the chat's faults; return True when the connection was dropped."""
        zalo, counters = self.zalo, self.zalo.bot.counters
        delay = zalo.bot.flood.jitter()
        if delay > 0:
            await asyncio.sleep(delay)
        chat_id = params.get("chat_id")
        rule = zalo.injector.rule_for(flood_key(chat_id) if isinstance(chat_id, str) else None)
        if zalo.injector.roll(rule.drop_rate):
            counters.dropped_total += 1
            if request.transport is not None:
                request.transport.close()
            return True
        if rule.delay_ms:
            counters.delayed_total += 1
            await asyncio.sleep(rule.delay_ms / 1000)
        if zalo.injector.roll(rule.error_rate):
            counters.server_errors_total += 1
            raise self._fault(500)
        return False
