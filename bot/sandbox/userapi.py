"""The user side: a JSON API under /sandbox/api to act as users and read the chats."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Awaitable, Callable
from functools import partial
from typing import Any
from urllib.parse import quote

from aiohttp import web

from bot.sandbox.engine import Sandbox
from bot.sandbox.errors import ApiError, JsonDict, bad_request, not_found
from bot.sandbox.faults import FaultRule, Faults
from bot.sandbox.methods import webhook_info
from bot.sandbox.state import ChatLog

API = "/sandbox/api"
SANDBOX: web.AppKey[Sandbox] = web.AppKey("sandbox", Sandbox)
MAX_WAIT = 60.0
PING_SECONDS = 15.0
dumps = partial(json.dumps, ensure_ascii=False)
routes = web.RouteTableDef()


def ok(result: Any, status: int = 200) -> web.Response:
    """Answer {"ok": true, "result": ...}."""
    return web.json_response({"ok": True, "result": result}, status=status, dumps=dumps)


def error_response(exc: ApiError) -> web.Response:
    """Answer an error in Telegram's shape, with the matching HTTP status."""
    return web.json_response(exc.to_json(), status=exc.code, dumps=dumps)


@web.middleware
async def api_errors(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    """Turn ApiError raised by a user API handler into a JSON error answer."""
    try:
        return await handler(request)
    except ApiError as exc:
        return error_response(exc)


def sandbox_of(request: web.Request) -> Sandbox:
    """Return the sandbox behind the app."""
    return request.app[SANDBOX]


def bot_key(request: web.Request) -> str | None:
    """Return the bot named by ?bot= (token or username), or None for the default bot."""
    return request.query.get("bot") or None


def int_arg(value: Any, name: str) -> int:
    """Convert a path, query or body value to int (400 when it is not one)."""
    try:
        if isinstance(value, bool):
            raise ValueError(value)
        return int(value)
    except (TypeError, ValueError):
        raise bad_request(f"{name} must be an integer") from None


def float_arg(value: str, name: str) -> float:
    """Convert a query value to float (400 when it is not a number)."""
    try:
        return float(value)
    except ValueError:
        raise bad_request(f"{name} must be a number") from None


def chat_id_of(request: web.Request) -> int:
    """Return the chat id in the path."""
    return int_arg(request.match_info["chat_id"], "chat_id")


async def body_of(request: web.Request) -> JsonDict:
    """Read a JSON object body (empty body = {})."""
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


def optional_int(data: JsonDict, name: str) -> int | None:
    """Return an optional integer field of a body."""
    value = data.get(name)
    return None if value is None or value == "" else int_arg(value, name)


# overview ------------------------------------------------------------------


@routes.get(API + "/info")
async def info(request: web.Request) -> web.Response:
    """Describe the hosted bots, limits and faults."""
    sandbox = sandbox_of(request)
    bots = [
        {**state.identity.to_api(), "token": state.identity.token}
        for state in sandbox.bots.values()
    ]
    faults_now = sandbox.injector.faults.to_json()
    return ok({"bots": bots, "limits": sandbox.limits.to_json(), "faults": faults_now})


@routes.get(API + "/personas")
async def personas(request: web.Request) -> web.Response:
    """List the personas of the page's picker."""
    return ok([persona.to_json() for persona in sandbox_of(request).world.personas])


@routes.put(API + "/personas")
async def put_personas(request: web.Request) -> web.Response:
    """Replace the personas (a JSON array)."""
    raw = await request.read()
    try:
        items = json.loads(raw or b"[]")
    except ValueError:
        raise bad_request("body is not JSON") from None
    if not isinstance(items, list) or not all(isinstance(item, dict) for item in items):
        raise bad_request("personas must be an array of objects")
    loaded = sandbox_of(request).set_personas(items)
    return ok([persona.to_json() for persona in loaded])


# users and chats -----------------------------------------------------------


@routes.get(API + "/users")
async def users(request: web.Request) -> web.Response:
    """List the users."""
    return ok([user.to_api() for user in sandbox_of(request).world.users.values()])


@routes.post(API + "/users")
async def create_user(request: web.Request) -> web.Response:
    """Create a user (and its private chat)."""
    data = await body_of(request)
    user = sandbox_of(request).create_user(
        str(data.get("first_name") or ""),
        user_id=optional_int(data, "id"),
        last_name=data.get("last_name"),
        username=data.get("username"),
        language_code=data.get("language_code", "vi"),
    )
    return ok(user.to_api(), status=201)


@routes.get(API + "/chats")
async def chats(request: web.Request) -> web.Response:
    """List the chats."""
    return ok([chat.to_json() for chat in sandbox_of(request).world.chats.values()])


@routes.post(API + "/chats")
async def create_chat(request: web.Request) -> web.Response:
    """Create a group: {"title", "members": [user ids], "id"?, "supergroup"?}."""
    data = await body_of(request)
    members = data.get("members") or []
    if not isinstance(members, list):
        raise bad_request("members must be an array of user ids")
    chat = sandbox_of(request).create_group(
        str(data.get("title") or "Group"),
        [int_arg(member, "members") for member in members],
        chat_id=optional_int(data, "id"),
        supergroup=bool(data.get("supergroup")),
    )
    return ok(chat.to_json(), status=201)


@routes.get(API + "/chats/{chat_id}")
async def chat(request: web.Request) -> web.Response:
    """Return a chat with its current reply keyboard."""
    return ok(sandbox_of(request).chat_view(chat_id_of(request), bot_key(request)))


# messages ------------------------------------------------------------------


@routes.get(API + "/chats/{chat_id}/messages")
async def messages(request: web.Request) -> web.Response:
    """Return messages changed after ?since=VERSION, waiting up to ?wait=SECONDS for one."""
    sandbox = sandbox_of(request)
    log = sandbox.bot(bot_key(request)).log(sandbox.chat(chat_id_of(request)))
    since = int_arg(request.query.get("since", "0"), "since")
    wait = min(max(float_arg(request.query.get("wait") or "0", "wait"), 0.0), MAX_WAIT)
    found = await _wait_changes(log, since, wait)
    return ok({"version": log.version, "messages": [sandbox.message_view(m) for m in found]})


async def _wait_changes(log: ChatLog, since: int, wait: float) -> list[Any]:
    """Return the messages changed after a version, long polling when there are none."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + wait
    while not (found := log.since(since)) and (remaining := deadline - loop.time()) > 0:
        if not await log.changed.wait(remaining):
            break
    return found


@routes.post(API + "/chats/{chat_id}/messages")
async def send_message(request: web.Request) -> web.Response:
    """Send text as a user: {"text", "from_id"?}."""
    data = await body_of(request)
    sandbox, chat_id, key = sandbox_of(request), chat_id_of(request), bot_key(request)
    text = data.get("text")
    if not isinstance(text, str):
        raise bad_request("text must be a string")
    update_id = sandbox.send_text(chat_id, text, from_id=optional_int(data, "from_id"), bot=key)
    return ok(_action(sandbox, chat_id, key, update_id), status=201)


def _action(sandbox: Sandbox, chat_id: int, key: str | None, update_id: int) -> JsonDict:
    """Describe a user action: the update id and the message it created."""
    log = sandbox.bot(key).log(sandbox.chat(chat_id))
    return {"update_id": update_id, "message_id": log.next_id - 1}


@routes.post(API + "/chats/{chat_id}/documents")
async def send_document(request: web.Request) -> web.Response:
    """Send a document as a user (multipart: file, caption?, from_id?)."""
    sandbox, chat_id, key = sandbox_of(request), chat_id_of(request), bot_key(request)
    if not request.content_type.startswith("multipart/"):
        raise bad_request("send the document as multipart/form-data")
    form = await request.post()
    upload = form.get("file")
    if not isinstance(upload, web.FileField):
        raise bad_request("multipart field 'file' is missing")
    caption = form.get("caption")
    update_id = sandbox.send_document(
        chat_id,
        upload.file.read(),
        upload.filename or "file",
        mime_type=upload.content_type,
        caption=caption if isinstance(caption, str) and caption else None,
        from_id=optional_int(dict(form), "from_id"),
        bot=key,
    )
    return ok(_action(sandbox, chat_id, key, update_id), status=201)


@routes.post(API + "/chats/{chat_id}/callbacks")
async def press_button(request: web.Request) -> web.Response:
    """Press an inline button: {"message_id", "data", "from_id"?}."""
    data = await body_of(request)
    sandbox, chat_id, key = sandbox_of(request), chat_id_of(request), bot_key(request)
    update_id = sandbox.press_button(
        chat_id,
        int_arg(data.get("message_id"), "message_id"),
        str(data.get("data") or ""),
        from_id=optional_int(data, "from_id"),
        bot=key,
    )
    record = sandbox.callback_answer(update_id, key)
    query_id = record.id if record else None
    return ok({"update_id": update_id, "callback_query_id": query_id}, status=201)


@routes.get(API + "/callbacks/{query_id}")
async def callback(request: web.Request) -> web.Response:
    """Return a button press and the bot's answer (by query id or update id)."""
    raw = request.match_info["query_id"]
    sandbox, key = sandbox_of(request), bot_key(request)
    record = sandbox.callback_answer(raw, key) or (
        sandbox.callback_answer(int(raw), key) if raw.isdigit() else None
    )
    if record is None:
        raise not_found(f"no callback query {raw}")
    return ok(record.to_json())


@routes.get(API + "/chats/{chat_id}/stream")
async def stream(request: web.Request) -> web.StreamResponse:
    """Stream the chat's events as server-sent events until the page leaves."""
    sandbox = sandbox_of(request)
    state, chat_ = sandbox.bot(bot_key(request)), sandbox.chat(chat_id_of(request))
    key = (state.identity.id, chat_.id)
    queue = sandbox.hub.subscribe(key)
    response = web.StreamResponse(
        headers={
            "Content-Type": "text/event-stream; charset=utf-8",
            "Cache-Control": "no-cache",
            "X-Accel-Buffering": "no",
        }
    )
    try:
        await response.prepare(request)
        await response.write(b"retry: 1000\n\n")
        with contextlib.suppress(ConnectionResetError):
            await _pump(queue, response)
    finally:
        sandbox.hub.unsubscribe(key, queue)
    return response


async def _pump(queue: asyncio.Queue[JsonDict | None], response: web.StreamResponse) -> None:
    """Write events to the stream, with a comment line as keep-alive."""
    while True:
        try:
            event = await asyncio.wait_for(queue.get(), PING_SECONDS)
        except TimeoutError:
            await response.write(b": ping\n\n")
            continue
        if event is None:
            return
        payload = dumps(event).replace("\n", "\\n")
        await response.write(f"event: {event['type']}\ndata: {payload}\n\n".encode())


# state, counters, faults, limits ------------------------------------------


@routes.get(API + "/updates")
async def updates(request: web.Request) -> web.Response:
    """Return the bot's pending updates (not confirmed yet)."""
    state = sandbox_of(request).bot(bot_key(request))
    return ok([update.to_api() for update in state.updates.items])


@routes.get(API + "/webhook")
async def webhook(request: web.Request) -> web.Response:
    """Return the bot's webhook info."""
    return ok(webhook_info(sandbox_of(request).bot(bot_key(request))))


@routes.get(API + "/counters")
async def counters(request: web.Request) -> web.Response:
    """Return the bot's counters."""
    return ok(sandbox_of(request).bot(bot_key(request)).counters.to_json())


@routes.post(API + "/reset")
async def reset(request: web.Request) -> web.Response:
    """Forget users, chats, messages, updates and counters (personas stay)."""
    sandbox_of(request).reset()
    return ok(True)


@routes.get(API + "/faults")
async def faults(request: web.Request) -> web.Response:
    """Return the faults in force."""
    return ok(sandbox_of(request).injector.faults.to_json())


@routes.put(API + "/faults")
async def put_faults(request: web.Request) -> web.Response:
    """Replace the faults (random sequence restarts from the seed)."""
    sandbox = sandbox_of(request)
    sandbox.set_faults(Faults.from_json(await body_of(request)))
    return ok(sandbox.injector.faults.to_json())


@routes.put(API + "/chats/{chat_id}/faults")
async def put_chat_faults(request: web.Request) -> web.Response:
    """Set one chat's fault rule: {"blocked"?, "error_rate"?, "delay_ms"?, "drop_rate"?}."""
    sandbox = sandbox_of(request)
    sandbox.set_chat_faults(chat_id_of(request), FaultRule.from_json(await body_of(request)))
    return ok(sandbox.injector.faults.to_json())


@routes.delete(API + "/chats/{chat_id}/faults")
async def delete_chat_faults(request: web.Request) -> web.Response:
    """Clear one chat's fault rule."""
    sandbox = sandbox_of(request)
    sandbox.set_chat_faults(chat_id_of(request), None)
    return ok(sandbox.injector.faults.to_json())


@routes.get(API + "/limits")
async def limits(request: web.Request) -> web.Response:
    """Return the flood limits."""
    return ok(sandbox_of(request).limits.to_json())


@routes.put(API + "/limits")
async def put_limits(request: web.Request) -> web.Response:
    """Change some flood limits (buckets start full)."""
    sandbox = sandbox_of(request)
    sandbox.set_limits(sandbox.limits.updated(await body_of(request)))
    return ok(sandbox.limits.to_json())


@routes.get(API + "/files/{file_id}")
async def file(request: web.Request) -> web.Response:
    """Serve an uploaded file (add ?download=1 to save it)."""
    stored = sandbox_of(request).find_file(request.match_info["file_id"])
    if stored is None:
        raise not_found("no such file")
    disposition = "attachment" if request.query.get("download") else "inline"
    header = f"{disposition}; filename*=UTF-8''{quote(stored.file_name)}"
    return web.Response(
        body=stored.data,
        content_type=stored.mime_type,
        headers={"Content-Disposition": header},
    )


def add_user_api(app: web.Application, sandbox: Sandbox) -> None:
    """Mount the user API on an app."""
    app[SANDBOX] = sandbox
    app.router.add_routes(routes)
