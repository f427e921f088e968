"""The Bot API methods the sandbox speaks, registered by lower-case name."""

from __future__ import annotations

import json
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from bot.sandbox.engine import MAX_CAPTION, MAX_TEXT, Sandbox
from bot.sandbox.entities import check_entities, trim
from bot.sandbox.errors import ApiError, JsonDict, bad_request
from bot.sandbox.files import StoredFile, image_size
from bot.sandbox.html import parse_html
from bot.sandbox.markup import Markup, parse_markup
from bot.sandbox.params import Params
from bot.sandbox.state import (
    CONFLICT_WEBHOOK,
    BotState,
    CallbackRecord,
    Chat,
    StoredMessage,
    WebhookState,
)

Handler = Callable[["Call"], Awaitable[Any]]
METHODS: dict[str, Handler] = {}
CANONICAL: dict[str, str] = {}
FAULTY_PREFIXES = ("send", "edit", "delete", "answer")
SECRET_TOKEN = re.compile(r"^[A-Za-z0-9_-]{1,256}$")
COMMAND_NAME = re.compile(r"^[a-z0-9_]{1,32}$")
NOT_MODIFIED = (
    "message is not modified: specified new message content and reply markup are exactly "
    "the same as a current content and reply markup of the message"
)
QUERY_TOO_OLD = "query is too old and response timeout expired or query ID is invalid"
GIFT_TYPES = {
    "unlimited_gifts": False,
    "limited_gifts": False,
    "unique_gifts": False,
    "premium_subscription": False,
}


def method(name: str) -> Callable[[Handler], Handler]:
    """Register a handler under a Bot API method name (case-insensitive)."""

    def register(handler: Handler) -> Handler:
        """Add the handler to the method table."""
        METHODS[name.lower()] = handler
        CANONICAL[name.lower()] = name
        return handler

    return register


def faults_apply(name: str) -> bool:
    """Tell whether injected faults hit a method (sending, editing, deleting, answering)."""
    return name.lower().startswith(FAULTY_PREFIXES)


@dataclass
class Call:
    """One Bot API call: the sandbox, the bot and the parameters."""

    sandbox: Sandbox
    bot: BotState
    params: Params

    def chat(self) -> Chat:
        """Return the chat named by chat_id, or 400 "chat not found"."""
        chat_id = self.params.chat_id()
        chat = self.sandbox.world.chats.get(chat_id) if chat_id is not None else None
        if chat is None:
            raise bad_request("chat not found")
        return chat

    def check_blocked(self, chat: Chat) -> None:
        """Answer 403 when the chat's user blocked the bot (or the bot was kicked)."""
        if self.sandbox.injector.rule_for(chat.id).blocked:
            self.bot.counters.forbidden(chat.id)
            if chat.is_group:
                raise ApiError(403, "Forbidden: bot was kicked from the group chat")
            raise ApiError(403, "Forbidden: bot was blocked by the user")

    def admit(self, chat: Chat) -> None:
        """Check the blocked flag and the flood limits before sending to a chat."""
        self.check_blocked(chat)
        paid = self.params.flag("allow_paid_broadcast")
        retry_after = self.bot.flood.admit(chat.id, chat.is_group, paid)
        if retry_after:
            self.bot.counters.rate_limited(chat.id)
            raise ApiError(
                429,
                f"Too Many Requests: retry after {retry_after}",
                {"retry_after": retry_after},
            )

    def formatted(self, field: str, limit: int, required: bool) -> tuple[str, list[JsonDict]]:
        """Return text (or caption) and entities after parse_mode, checked like Telegram."""
        raw = self.params.text(field) or ""
        mode = (self.params.text("parse_mode") or "").strip().lower()
        entities_field = "entities" if field == "text" else f"{field}_entities"
        if mode == "html":
            text, entities = parse_html(raw)
        elif mode in ("", "markdown", "markdownv2"):
            text, entities = raw, []
            if self.params.has(entities_field) and not mode:
                entities = check_entities(self.params.json(entities_field), raw)
        else:
            raise bad_request("unsupported parse_mode")
        text, entities = trim(text, entities)
        if required and not text:
            raise bad_request("message text is empty")
        if len(text) > limit:
            raise bad_request(
                "message is too long" if field == "text" else "message caption is too long"
            )
        return text, entities

    def markup(self) -> Markup:
        """Return the parsed reply_markup."""
        return parse_markup(self.params.raw("reply_markup"))

    def message(self, chat: Chat) -> StoredMessage | None:
        """Return the live message named by message_id in a chat."""
        if self.params.has("inline_message_id") and not self.params.has("chat_id"):
            raise bad_request("inline messages are not supported by the sandbox")
        return self.bot.log(chat).live(self.params.integer("message_id"))

    def reply_target(self, chat: Chat) -> StoredMessage | None:
        """Return the message being replied to, if any."""
        reply = self.params.json("reply_parameters")
        message_id = reply.get("message_id") if isinstance(reply, dict) else None
        if message_id is None:
            message_id = self.params.integer("reply_to_message_id")
        if message_id is None:
            return None
        target = self.bot.log(chat).live(int(message_id))
        allow = self.params.flag("allow_sending_without_reply") or (
            isinstance(reply, dict) and reply.get("allow_sending_without_reply")
        )
        if target is None and not allow:
            raise bad_request("message to be replied not found")
        return target

    def changed(self, message: StoredMessage, kind: str) -> None:
        """Record an edit or deletion."""
        self.sandbox.touch(self.bot, self.bot.log(message.chat), message, kind)


# identity and updates ------------------------------------------------------


@method("getMe")
async def get_me(call: Call) -> JsonDict:
    """Return the bot as a User."""
    return {
        **call.bot.identity.to_api(),
        "can_join_groups": True,
        "can_read_all_group_messages": False,
        "supports_inline_queries": False,
        "can_connect_to_business": False,
        "has_main_web_app": False,
    }


@method("getUpdates")
async def get_updates(call: Call) -> list[JsonDict]:
    """Return pending updates, long polling up to `timeout` seconds."""
    updates = call.bot.updates
    if call.bot.webhook is not None:
        raise ApiError(409, CONFLICT_WEBHOOK)
    generation = updates.new_poll()
    offset = call.params.integer("offset")
    if offset:
        updates.confirm(offset)
    allowed = call.params.json("allowed_updates")
    if isinstance(allowed, list):
        updates.set_allowed(str(kind) for kind in allowed)
    limit = min(max(call.params.integer("limit") or 100, 1), 100)
    seconds = max(call.params.number("timeout") or 0.0, 0.0)
    return await updates.poll(generation, limit, seconds, lambda: call.bot.webhook is not None)


@method("setWebhook")
async def set_webhook(call: Call) -> bool:
    """Set (or with an empty url, remove) the webhook."""
    url = (call.params.text("url") or "").strip()
    if not url:
        return _remove_webhook(call)
    if not url.lower().startswith(("http://", "https://")):
        raise bad_request("bad webhook: An HTTPS URL must be provided for webhook")
    secret = call.params.text("secret_token")
    if secret is not None and not SECRET_TOKEN.match(secret):
        raise bad_request("secret token contains unallowed characters")
    if call.params.flag("drop_pending_updates"):
        call.bot.updates.clear()
    allowed = call.params.json("allowed_updates")
    if isinstance(allowed, list):
        call.bot.updates.set_allowed(str(kind) for kind in allowed)
    call.bot.webhook = WebhookState(
        url=url,
        secret_token=secret,
        max_connections=call.params.integer("max_connections") or 40,
        ip_address=call.params.text("ip_address"),
    )
    _webhook_changed(call.bot)
    return True


@method("deleteWebhook")
async def delete_webhook(call: Call) -> bool:
    """Remove the webhook, optionally dropping pending updates."""
    return _remove_webhook(call)


def _remove_webhook(call: Call) -> bool:
    """Remove the webhook, dropping pending updates if asked."""
    if call.params.flag("drop_pending_updates"):
        call.bot.updates.clear()
    call.bot.webhook = None
    _webhook_changed(call.bot)
    return True


def _webhook_changed(bot: BotState) -> None:
    """Wake the webhook pusher and any long poll."""
    bot.webhook_changed.notify()
    bot.updates.changed.notify()


@method("getWebhookInfo")
async def get_webhook_info(call: Call) -> JsonDict:
    """Return the webhook and its delivery state."""
    return webhook_info(call.bot)


def webhook_info(bot: BotState) -> JsonDict:
    """Return a WebhookInfo object for a bot."""
    hook = bot.webhook
    info: JsonDict = {
        "url": hook.url if hook else "",
        "has_custom_certificate": False,
        "pending_update_count": len(bot.updates.items),
        "allowed_updates": sorted(bot.updates.allowed),
    }
    if hook is not None:
        info["max_connections"] = hook.max_connections
        if hook.ip_address:
            info["ip_address"] = hook.ip_address
        if hook.last_error_date is not None:
            info["last_error_date"] = hook.last_error_date
            info["last_error_message"] = hook.last_error_message
    return info


# sending -------------------------------------------------------------------


@method("sendMessage")
async def send_message(call: Call) -> JsonDict:
    """Send a text message."""
    chat = call.chat()
    text, entities = call.formatted("text", MAX_TEXT, required=True)
    markup = call.markup()
    reply_to = call.reply_target(chat)
    call.admit(chat)
    message = call.sandbox.post_bot_message(
        call.bot, chat, markup, text=text, entities=entities, reply_to=reply_to
    )
    return message.to_api()


@method("sendDocument")
async def send_document(call: Call) -> JsonDict:
    """Send a document (an upload or a known file_id)."""
    return await _send_file(call, "document")


@method("sendPhoto")
async def send_photo(call: Call) -> JsonDict:
    """Send a photo (an uploaded image or a known file_id)."""
    return await _send_file(call, "photo")


async def _send_file(call: Call, kind: str) -> JsonDict:
    """Send a document or photo with an optional caption."""
    chat = call.chat()
    stored = _input_file(call, kind)
    caption, caption_entities = call.formatted("caption", MAX_CAPTION, required=False)
    markup = call.markup()
    reply_to = call.reply_target(chat)
    call.admit(chat)
    message = call.sandbox.post_bot_message(
        call.bot,
        chat,
        markup,
        file=stored,
        caption=caption or None,
        caption_entities=caption_entities,
        reply_to=reply_to,
    )
    return message.to_api()


def _input_file(call: Call, kind: str) -> StoredFile:
    """Return the file of a send call: an upload, attach://name, or a known file_id."""
    upload = call.params.upload(kind)
    reference = call.params.text(kind) or ""
    if upload is None and reference.startswith("attach://"):
        upload = call.params.upload(reference[len("attach://") :])
    if upload is not None:
        if not upload.data:
            raise bad_request("file must be non-empty")
        if kind == "photo" and image_size(upload.data) is None:
            raise bad_request("IMAGE_PROCESS_FAILED")
        return call.bot.files.add(kind, upload.file_name, upload.mime_type, upload.data)
    if not reference:
        raise bad_request(f"there is no {kind} in the request")
    known = call.bot.files.get(reference)
    if known is None:
        raise bad_request("wrong file identifier/HTTP URL specified")
    if known.kind != kind:
        raise bad_request(f"can't use file of type {known.kind.title()} as {kind.title()}")
    return known


@method("sendChatAction")
async def send_chat_action(call: Call) -> bool:
    """Accept a chat action (typing...) for a known chat."""
    chat = call.chat()
    call.check_blocked(chat)
    if not call.params.text("action"):
        raise bad_request("action is empty")
    return True


# editing -------------------------------------------------------------------


def _editable(call: Call) -> StoredMessage:
    """Return the bot message an edit call names."""
    chat = call.chat()
    message = call.message(chat)
    if message is None:
        raise bad_request("message to edit not found")
    if not message.from_bot:
        raise bad_request("message can't be edited")
    call.check_blocked(chat)
    return message


def _apply_edit(call: Call, message: StoredMessage, changes: JsonDict) -> JsonDict:
    """Apply changes to a message unless nothing changes (400 "message is not modified")."""
    if all(getattr(message, key) == value for key, value in changes.items()):
        raise bad_request(NOT_MODIFIED)
    for key, value in changes.items():
        setattr(message, key, value)
    message.edit_date = call.sandbox.now()
    call.changed(message, "edit")
    return message.to_api()


@method("editMessageText")
async def edit_message_text(call: Call) -> JsonDict:
    """Change the text (and inline keyboard) of a bot message."""
    message = _editable(call)
    if message.text is None:
        raise bad_request("there is no text in the message to edit")
    text, entities = call.formatted("text", MAX_TEXT, required=True)
    inline = call.markup().inline
    return _apply_edit(call, message, {"text": text, "entities": entities, "reply_markup": inline})


@method("editMessageCaption")
async def edit_message_caption(call: Call) -> JsonDict:
    """Change the caption (and inline keyboard) of a bot message with a file."""
    message = _editable(call)
    if message.file is None:
        raise bad_request("there is no caption in the message to edit")
    caption, entities = call.formatted("caption", MAX_CAPTION, required=False)
    changes = {"caption": caption or None, "caption_entities": entities}
    return _apply_edit(call, message, {**changes, "reply_markup": call.markup().inline})


@method("editMessageReplyMarkup")
async def edit_message_reply_markup(call: Call) -> JsonDict:
    """Change (or remove) the inline keyboard of a bot message."""
    message = _editable(call)
    return _apply_edit(call, message, {"reply_markup": call.markup().inline})


@method("deleteMessage")
async def delete_message(call: Call) -> bool:
    """Mark a message deleted."""
    chat = call.chat()
    message = call.message(chat)
    if message is None:
        raise bad_request("message to delete not found")
    message.deleted = True
    call.changed(message, "delete")
    return True


@method("answerCallbackQuery")
async def answer_callback_query(call: Call) -> bool:
    """Record the bot's answer to a button press."""
    query_id = call.params.text("callback_query_id") or ""
    record: CallbackRecord | None = call.bot.callbacks.get(query_id)
    if record is None or record.answered:
        raise bad_request(QUERY_TOO_OLD)
    text = call.params.text("text")
    if text is not None and len(text) > 200:
        raise bad_request("MESSAGE_TOO_LONG")
    record.answered = True
    record.text = text
    record.show_alert = call.params.flag("show_alert")
    record.url = call.params.text("url")
    call.sandbox.answered(call.bot, record)
    return True


# files ---------------------------------------------------------------------


@method("getFile")
async def get_file(call: Call) -> JsonDict:
    """Return the File object of a known file_id."""
    stored = call.bot.files.get(call.params.text("file_id") or "")
    if stored is None:
        raise bad_request("invalid file_id")
    return stored.to_file()


# commands and profile ------------------------------------------------------


def _commands_key(call: Call) -> str:
    """Return the storage key of a command list: its scope and language."""
    scope = call.params.json("scope") or {"type": "default"}
    return json.dumps(scope, sort_keys=True) + "|" + (call.params.text("language_code") or "")


@method("setMyCommands")
async def set_my_commands(call: Call) -> bool:
    """Store the bot's command list for a scope and language."""
    commands = call.params.json("commands")
    if not isinstance(commands, list) or len(commands) > 100:
        raise bad_request("can't parse commands JSON object")
    call.bot.commands[_commands_key(call)] = [_command(item) for item in commands]
    return True


def _command(item: Any) -> JsonDict:
    """Validate one BotCommand."""
    if not isinstance(item, dict):
        raise bad_request("can't parse BotCommand")
    name, description = item.get("command"), item.get("description")
    if not isinstance(name, str) or not COMMAND_NAME.match(name.lstrip("/")):
        raise bad_request("BOT_COMMAND_INVALID")
    if not isinstance(description, str) or not 1 <= len(description) <= 256:
        raise bad_request("BOT_COMMAND_DESCRIPTION_INVALID")
    return {"command": name.lstrip("/"), "description": description}


@method("getMyCommands")
async def get_my_commands(call: Call) -> list[JsonDict]:
    """Return the command list for a scope and language."""
    return call.bot.commands.get(_commands_key(call), [])


@method("deleteMyCommands")
async def delete_my_commands(call: Call) -> bool:
    """Forget the command list for a scope and language."""
    call.bot.commands.pop(_commands_key(call), None)
    return True


def _profile_text(name: str, limit: int) -> tuple[Handler, Handler]:
    """Build the set/get handlers of a profile text (description, short description, name)."""

    async def setter(call: Call) -> bool:
        """Store the text for a language."""
        value = call.params.text(name) or ""
        if len(value) > limit:
            raise bad_request(f"{name} is too long")
        call.bot.texts[f"{name}|{call.params.text('language_code') or ''}"] = value
        return True

    async def getter(call: Call) -> JsonDict:
        """Return the text for a language."""
        key = f"{name}|{call.params.text('language_code') or ''}"
        default = call.bot.identity.first_name if name == "name" else ""
        return {name: call.bot.texts.get(key, default)}

    return setter, getter


for _name, _method, _limit in (
    ("description", "MyDescription", 512),
    ("short_description", "MyShortDescription", 120),
    ("name", "MyName", 64),
):
    _set, _get = _profile_text(_name, _limit)
    method(f"set{_method}")(_set)
    method(f"get{_method}")(_get)


@method("setChatMenuButton")
async def set_chat_menu_button(call: Call) -> bool:
    """Accept a menu button (not shown)."""
    return True


@method("getChatMenuButton")
async def get_chat_menu_button(call: Call) -> JsonDict:
    """Return the default menu button."""
    return {"type": "commands"}


@method("getChat")
async def get_chat(call: Call) -> JsonDict:
    """Return a ChatFullInfo."""
    chat = call.chat()
    return {
        **chat.to_api(),
        "accent_color_id": 0,
        "max_reaction_count": 11,
        "accepted_gift_types": GIFT_TYPES,
    }
