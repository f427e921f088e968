"""The Zalo user side: a JSON API under /zalo/sandbox/api to act as Zalo users (to the bot or
to the Official Account), read the conversations, and set limits, faults and the OA."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from functools import wraps
from typing import Any

from aiohttp import web

from bot.sandbox.errors import ApiError, JsonDict
from bot.sandbox.faults import FaultRule, Faults
from bot.sandbox.zalo.engine import ZaloSandbox
from bot.sandbox.zalo.errors import BotApiError, bad_request
from bot.sandbox.zalo.world import Conversation

API = "/zalo/sandbox/api"
ZALO: web.AppKey[ZaloSandbox] = web.AppKey("zalo", ZaloSandbox)
MAX_WAIT = 60.0
Handler = Callable[[web.Request], Awaitable[Any]]
routes = web.RouteTableDef()


def ok(result: Any, status: int = 200) -> web.Response:
    """Answer {"ok": true, "result": ...}."""
    body = json.dumps({"ok": True, "result": result}, ensure_ascii=False)
    return web.Response(text=body, status=status, content_type="application/json")


def _error(code: int, description: str) -> web.Response:
    """Answer an error with its HTTP status."""
    body = json.dumps({"ok": False, "error_code": code, "description": description})
    return web.Response(text=body, status=code, content_type="application/json")


def action(status: int = 200) -> Callable[[Handler], Callable[[web.Request], Awaitable[Any]]]:
    """Wrap a handler: its result becomes an ok answer, its errors error answers."""

    def wrap(handler: Handler) -> Callable[[web.Request], Awaitable[Any]]:
        @wraps(handler)
        async def run(request: web.Request) -> web.Response:
            try:
                return ok(await handler(request), status)
            except ApiError as exc:
                return _error(exc.code, exc.description)
            except BotApiError as exc:
                return _error(exc.code, exc.description)

        return run

    return wrap


def zalo_of(request: web.Request) -> ZaloSandbox:
    """Return the Zalo sandbox behind the app."""
    return request.app[ZALO]


async def body_of(request: web.Request) -> JsonDict:
    """Read a JSON object body (empty = {})."""
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


def text_of(data: JsonDict) -> str:
    """Return the text field of a body."""
    text = data.get("text")
    if not isinstance(text, str):
        raise bad_request("text must be a string")
    return text


def optional_id(data: JsonDict, name: str) -> str | None:
    """Return an optional id field as a string."""
    value = data.get(name)
    return None if value is None or value == "" else str(value)


async def changes(log: Conversation, since: int, wait: float) -> list[Any]:
    """Return the messages added after a version, long polling when there are none."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + wait
    while not (found := log.since(since)) and (remaining := deadline - loop.time()) > 0:
        if not await log.changed.wait(remaining):
            break
    return found


async def conversation(request: web.Request, log: Conversation) -> JsonDict:
    """Answer a conversation's messages after ?since=, waiting up to ?wait= seconds."""
    try:
        since = int(request.query.get("since", "0"))
        wait = min(max(float(request.query.get("wait") or "0"), 0.0), MAX_WAIT)
    except ValueError:
        raise bad_request("since and wait must be numbers") from None
    found = await changes(log, since, wait)
    zalo = zalo_of(request)
    return {
        "version": log.version,
        "typing": zalo.typing(log),
        "messages": [message.view() for message in found],
    }


# overview -------------------------------------------------------------------


@routes.get(API + "/info")
@action()
async def info(request: web.Request) -> Any:
    """Describe the bot, the OA (with its sandbox secrets), limits and faults."""
    zalo = zalo_of(request)
    settings = zalo.oa.settings
    return {
        "bot": {**zalo.bot.to_api(), "token": zalo.bot.token},
        "oa": {
            "app_id": settings.app_id,
            "app_secret": settings.app_secret,
            "oa_id": settings.oa_id,
            "oa_secret_key": settings.oa_secret_key,
            "window_seconds": settings.window,
            "webhook_url": zalo.oa.webhook_url,
            "last_webhook_error": zalo.oa.last_webhook_error,
        },
        "limits": zalo.limits.to_json(),
        "faults": zalo.injector.faults.to_json(),
        "soft_faults": zalo.soft_faults,
    }


@routes.get(API + "/personas")
@action()
async def personas(request: web.Request) -> Any:
    """List the Zalo personas of the page's picker."""
    return [persona.to_json() for persona in zalo_of(request).personas]


@routes.put(API + "/personas")
@action()
async def put_personas(request: web.Request) -> Any:
    """Replace the Zalo personas (a JSON array)."""
    try:
        items = json.loads(await request.read() or b"[]")
    except ValueError:
        raise bad_request("body is not JSON") from None
    if not isinstance(items, list) or not all(isinstance(item, dict) for item in items):
        raise bad_request("personas must be an array of objects")
    return [persona.to_json() for persona in zalo_of(request).set_personas(items)]


@routes.get(API + "/users")
@action()
async def users(request: web.Request) -> Any:
    """List the Zalo users."""
    return [user.to_api() for user in zalo_of(request).users.values()]


@routes.post(API + "/users")
@action(201)
async def create_user(request: web.Request) -> Any:
    """Create a Zalo user: {"display_name", "id"?}."""
    data = await body_of(request)
    name = str(data.get("display_name") or "")
    return zalo_of(request).create_user(name, user_id=optional_id(data, "id")).to_api()


@routes.get(API + "/chats")
@action()
async def chats(request: web.Request) -> Any:
    """List the Bot API chats."""
    return [chat.to_json() for chat in zalo_of(request).chats.values()]


@routes.post(API + "/chats")
@action(201)
async def create_chat(request: web.Request) -> Any:
    """Create a group: {"title", "members": [user ids], "id"?}."""
    data = await body_of(request)
    members = data.get("members") or []
    if not isinstance(members, list):
        raise bad_request("members must be an array of user ids")
    chat = zalo_of(request).create_group(
        str(data.get("title") or "Group"),
        [str(member) for member in members],
        chat_id=optional_id(data, "id"),
    )
    return chat.to_json()


# the bot's chats --------------------------------------------------------------


@routes.get(API + "/chats/{chat_id}/messages")
@action()
async def chat_messages(request: web.Request) -> Any:
    """Return a chat's messages changed after ?since=, waiting up to ?wait= seconds."""
    log = zalo_of(request).chat_log(request.match_info["chat_id"])
    return await conversation(request, log)


@routes.post(API + "/chats/{chat_id}/messages")
@action(201)
async def send_chat_text(request: web.Request) -> Any:
    """Send text to the bot as a user: {"text", "from_id"?}."""
    data = await body_of(request)
    zalo = zalo_of(request)
    update = zalo.send_text(
        request.match_info["chat_id"], text_of(data), from_id=optional_id(data, "from_id")
    )
    return {"message_id": update["message"]["message_id"], "update": update}


@routes.post(API + "/chats/{chat_id}/others")
@action(201)
async def send_chat_other(request: web.Request) -> Any:
    """Send what is not text: {"kind": image|sticker|unsupported, "photo"?, "caption"?,
    "sticker"?, "from_id"?}."""
    data = await body_of(request)
    content = {k: str(data[k]) for k in ("photo", "caption", "sticker") if data.get(k)}
    update = zalo_of(request).send_other(
        request.match_info["chat_id"],
        str(data.get("kind") or ""),
        from_id=optional_id(data, "from_id"),
        **content,
    )
    return {"message_id": update["message"]["message_id"], "update": update}


@routes.get(API + "/updates")
@action()
async def updates(request: web.Request) -> Any:
    """Return the bot's pending updates."""
    return list(zalo_of(request).bot.updates.items)


@routes.get(API + "/webhook")
@action()
async def webhook(request: web.Request) -> Any:
    """Return the bot's webhook (with its secret, this is the sandbox)."""
    hook = zalo_of(request).bot.webhook
    return None if hook is None else vars(hook)


# the Official Account ----------------------------------------------------------


@routes.post(API + "/oa/tokens")
@action(201)
async def oa_tokens(request: web.Request) -> Any:
    """Issue a fresh access/refresh pair, as the developer console does."""
    zalo = zalo_of(request)
    return zalo.oa.issue(zalo.wall())


@routes.post(API + "/oa/expire-access")
@action()
async def oa_expire(request: web.Request) -> Any:
    """End every access token now (refresh tokens stay)."""
    return {"expired": zalo_of(request).expire_access_tokens()}


@routes.put(API + "/oa/webhook")
@action()
async def oa_webhook(request: web.Request) -> Any:
    """Set (or clear with null) the OA's webhook URL, as in the developer console."""
    data = await body_of(request)
    url = data.get("url")
    if url is not None and not isinstance(url, str):
        raise bad_request("url must be a string or null")
    zalo = zalo_of(request)
    zalo.oa.webhook_url = url or None
    zalo.oa.events.changed.notify()
    return {"url": zalo.oa.webhook_url}


@routes.get(API + "/oa/events")
@action()
async def oa_events(request: web.Request) -> Any:
    """Return the OA events not delivered yet."""
    return list(zalo_of(request).oa.events.items)


@routes.get(API + "/oa/users/{user_id}/messages")
@action()
async def oa_messages(request: web.Request) -> Any:
    """Return the OA conversation with a user after ?since=, waiting up to ?wait= seconds."""
    log = zalo_of(request).oa_log(request.match_info["user_id"])
    return await conversation(request, log)


@routes.post(API + "/oa/users/{user_id}/messages")
@action(201)
async def oa_send_text(request: web.Request) -> Any:
    """Send text to the OA as a user: {"text"}."""
    data = await body_of(request)
    event = zalo_of(request).oa_send_text(request.match_info["user_id"], text_of(data))
    return {"message_id": event["message"]["msg_id"], "event": event}


@routes.post(API + "/oa/users/{user_id}/follow")
@action(201)
async def oa_follow(request: web.Request) -> Any:
    """Follow the OA as a user."""
    return zalo_of(request).oa_follow(request.match_info["user_id"])


@routes.post(API + "/oa/users/{user_id}/unfollow")
@action(201)
async def oa_unfollow(request: web.Request) -> Any:
    """Unfollow the OA as a user."""
    return zalo_of(request).oa_follow(request.match_info["user_id"], follow=False)


@routes.put(API + "/oa/users/{user_id}")
@action()
async def oa_user(request: web.Request) -> Any:
    """Move a user's last interaction: {"last_interaction_ms"}."""
    data = await body_of(request)
    when = data.get("last_interaction_ms")
    if isinstance(when, bool) or not isinstance(when, int):
        raise bad_request("last_interaction_ms must be an integer")
    follower = zalo_of(request).set_last_interaction(request.match_info["user_id"], when)
    return vars(follower)


# counters, limits, faults --------------------------------------------------------


@routes.get(API + "/counters")
@action()
async def counters(request: web.Request) -> Any:
    """Return the bot's and the OA's counters."""
    zalo = zalo_of(request)
    return {"bot": zalo.bot.counters.to_json(), "oa": zalo.oa.counters.to_json()}


@routes.post(API + "/reset")
@action()
async def reset(request: web.Request) -> Any:
    """Forget users, chats, messages, updates, events, tokens and counters (personas stay)."""
    zalo_of(request).reset()
    return True


@routes.get(API + "/limits")
@action()
async def limits(request: web.Request) -> Any:
    """Return the flood limits."""
    return zalo_of(request).limits.to_json()


@routes.put(API + "/limits")
@action()
async def put_limits(request: web.Request) -> Any:
    """Change some flood limits (buckets start full)."""
    zalo = zalo_of(request)
    zalo.set_limits(zalo.limits.updated(await body_of(request)))
    return zalo.limits.to_json()


@routes.get(API + "/faults")
@action()
async def faults(request: web.Request) -> Any:
    """Return the faults in force."""
    return zalo_of(request).injector.faults.to_json()


@routes.put(API + "/faults")
@action()
async def put_faults(request: web.Request) -> Any:
    """Replace the faults (methods: getUpdates, sendMessage, message/cs, oauth/access_token...)."""
    zalo = zalo_of(request)
    zalo.set_faults(Faults.from_json(await body_of(request)))
    return zalo.injector.faults.to_json()


@routes.put(API + "/chats/{chat_id}/faults")
@action()
async def put_chat_faults(request: web.Request) -> Any:
    """Set one chat's (or OA user's) fault rule."""
    zalo = zalo_of(request)
    rule = FaultRule.from_json(await body_of(request))
    zalo.set_chat_faults(request.match_info["chat_id"], rule)
    return zalo.injector.faults.to_json()


@routes.delete(API + "/chats/{chat_id}/faults")
@action()
async def delete_chat_faults(request: web.Request) -> Any:
    """Clear one chat's fault rule."""
    zalo = zalo_of(request)
    zalo.set_chat_faults(request.match_info["chat_id"], None)
    return zalo.injector.faults.to_json()
