"""The Zalo Bot API adapter: updates -> InboundEvent, OutboundMessage -> Bot API calls -> Outcome.

Every call is POST <base>/bot<TOKEN>/<method> with a JSON body; the answer is
{"ok": bool, "result": ..., "error_code": int, "description": str}, and an HTTP 200 may still
carry ok=false. The Bot API has no buttons, no edits, no markup and no document upload: texts go
out plain (buttons as a numbered list, see bot/channels/render.py), an edit fails so the reply
path sends anew, and a file goes as its name and where to get it (a photo only by URL).
"""

from __future__ import annotations

import functools
import json
import logging
import unicodedata
from collections.abc import Collection
from dataclasses import dataclass, replace
from typing import Any
from zoneinfo import ZoneInfo

import aiohttp

from bot.channels import shown
from bot.channels.contract import Limits, Outcome, Part, Progress
from bot.channels.render import plain_text, split_text
from bot.channels.shown import OnChoices
from bot.config import Settings, ZaloSettings
from bot.i18n import t
from bot.messages import InboundEvent, OutboundMessage, StoredFile, parse_command

log = logging.getLogger(__name__)
CHANNEL = "zalo"
TEXT_MAX = 2000
CAPTION_MAX = 2000
TEXT_EVENT = "message.text.received"
IMAGE_EVENT = "message.image.received"
NOTHING_NEW = 408  # getUpdates: the long poll ended without an update
NO_EDIT = "no_edit"
DEFAULT_FLOOD_SECONDS = 1.0
POOL = 32
CALL_SECONDS = 10.0


@dataclass(frozen=True)
class Answer:
    """The Bot API's answer to one call: HTTP status, ok, result, error code and description."""

    status: int
    ok: bool
    result: Any = None
    error_code: int | None = None
    description: str = ""
    retry_after: float | None = None

    @property
    def network(self) -> bool:
        """Tell whether the call never got an answer (status 0)."""
        return self.status == 0


def _answer(status: int, body: bytes) -> Answer:
    """Read a Bot API body; a body that is not the API's JSON is an error with its status."""
    try:
        data = json.loads(body)
    except ValueError:
        data = None
    if not isinstance(data, dict):
        return Answer(status, False, error_code=status, description=f"HTTP {status}")
    code = data.get("error_code")
    params = data.get("parameters")
    retry = params.get("retry_after") if isinstance(params, dict) else None
    return Answer(
        status,
        data.get("ok") is True and status < 400,
        data.get("result"),
        _int(code),
        str(data.get("description") or ""),
        float(retry) if isinstance(retry, int | float) else None,
    )


def _int(value: Any) -> int | None:
    """Return an error code as an int (the API may send it as a string), else None."""
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


class ZaloApi:
    """A thin aiohttp client of the Zalo Bot API: one method call, one `Answer`, never raising."""

    def __init__(self, token: str, base: str, *, pool: int = POOL) -> None:
        self.url = f"{base.rstrip('/')}/bot{token}/"
        self.pool = pool
        self._session: aiohttp.ClientSession | None = None

    async def open(self) -> None:
        """Open the client session (once)."""
        if self._session is None or self._session.closed:
            connector = aiohttp.TCPConnector(limit=self.pool, limit_per_host=0)
            self._session = aiohttp.ClientSession(connector=connector)

    async def close(self) -> None:
        """Close the client session."""
        if self._session is not None and not self._session.closed:
            await self._session.close()

    async def call(
        self, method: str, params: dict[str, Any] | None = None, *, seconds: float = CALL_SECONDS
    ) -> Answer:
        """POST one method with a JSON body; a network fault or a timeout is status 0."""
        await self.open()
        assert self._session is not None
        try:
            async with self._session.post(
                self.url + method,
                json=params or {},
                timeout=aiohttp.ClientTimeout(total=seconds),
            ) as reply:
                return _answer(reply.status, await reply.read())
        except (TimeoutError, aiohttp.ClientError) as exc:
            return Answer(0, False, description=f"network: {type(exc).__name__}")

    async def get_me(self) -> Answer:
        """Call getMe."""
        return await self.call("getMe")

    async def get_updates(self, wait: int) -> Answer:
        """Long-poll getUpdates for up to `wait` seconds (error 408: nothing new)."""
        return await self.call("getUpdates", {"timeout": str(wait)}, seconds=wait + 10.0)

    async def set_webhook(self, url: str, secret_token: str) -> Answer:
        """Call setWebhook with the public URL and the secret the API sends back."""
        return await self.call("setWebhook", {"url": url, "secret_token": secret_token})

    async def get_webhook_info(self) -> Answer:
        """Call getWebhookInfo."""
        return await self.call("getWebhookInfo")

    async def delete_webhook(self) -> Answer:
        """Call deleteWebhook."""
        return await self.call("deleteWebhook")

    async def send_message(self, chat_id: str, text: str) -> Answer:
        """Call sendMessage (1-2000 characters)."""
        return await self.call("sendMessage", {"chat_id": chat_id, "text": text})

    async def send_photo(self, chat_id: str, photo: str, caption: str = "") -> Answer:
        """Call sendPhoto with a photo URL and a caption of at most 2000 characters."""
        params = {"chat_id": chat_id, "photo": photo}
        if caption:
            params["caption"] = caption
        return await self.call("sendPhoto", params)

    async def send_chat_action(self, chat_id: str, action: str = "typing") -> Answer:
        """Call sendChatAction."""
        return await self.call("sendChatAction", {"chat_id": chat_id, "action": action})


def outcome_of(answer: Answer) -> Outcome:
    """Map a Bot API answer to a neutral outcome (an HTTP 200 with ok=false is an error)."""
    if answer.ok:
        result = answer.result if isinstance(answer.result, dict) else {}
        message_id = result.get("message_id")
        return Outcome.sent(None if message_id is None else str(message_id))
    code = answer.error_code or answer.status
    reason = f"zalo {code}: {answer.description or 'error'}"
    if answer.network:
        return Outcome.retry(answer.description)
    if code == 429 or answer.status == 429:
        return Outcome.flood(answer.retry_after or DEFAULT_FLOOD_SECONDS, "bot", reason)
    if 500 <= code < 600 or answer.status >= 500 or code == NOTHING_NEW:  # not any code > 500
        return Outcome.retry(reason)
    text = answer.description.lower()
    if code == 403 or "block" in text:
        return Outcome.blocked(reason)
    if code == 401:
        return Outcome.failed(reason, code="unauthorized")
    return Outcome.failed(reason, code="bad_request")


def limits_of(zalo: ZaloSettings) -> Limits:
    """Return Zalo's limits as configured; texts and captions of at most 2000 characters."""
    return Limits(
        overall=zalo.rate,
        per_chat=zalo.chat_rate,
        per_group=zalo.chat_rate,
        text_max=TEXT_MAX,
        caption_max=CAPTION_MAX,
    )


class ZaloChannel:
    """Send through the Zalo Bot API; edits fail (sent anew), presses need no answer."""

    name = CHANNEL

    def __init__(
        self,
        api: ZaloApi,
        tz: ZoneInfo,
        limits: Limits,
        *,
        on_choices: OnChoices | None = None,
    ) -> None:
        self.api, self.tz, self.limits, self.on_choices = api, tz, limits, on_choices

    async def open(self) -> None:
        """Open the HTTP client."""
        await self.api.open()

    async def close(self) -> None:
        """Close the HTTP client."""
        await self.api.close()

    async def claimed(self, chat_ids: Collection[str]) -> None:
        """Nothing to read ahead."""

    def text(self, message: OutboundMessage, locale: str) -> str:
        """Render a message as plain text, its buttons as a numbered list."""
        return plain_text(message, locale, tz=self.tz)

    async def send(
        self,
        chat_id: str,
        message: OutboundMessage,
        locale: str,
        *,
        paid: bool = False,
        first: int = 0,
        progress: Progress | None = None,
    ) -> Outcome:
        """Send the text in parts of at most 2000 characters, in order, from part `first`."""
        parts = self._text_parts(chat_id, self.text(message, locale))
        return await self._finish(chat_id, message, parts, first, progress)

    def _text_parts(self, chat_id: str, text: str) -> list[Part]:
        """Return one sendMessage call per part of the text (split at line breaks)."""
        return [
            functools.partial(self._message, chat_id, part)
            for part in split_text(text, self.limits.text_max)
        ]

    async def _message(self, chat_id: str, text: str) -> Outcome:
        """Call sendMessage once."""
        return outcome_of(await self.api.send_message(chat_id, text))

    async def _finish(
        self,
        chat_id: str,
        message: OutboundMessage,
        parts: list[Part],
        first: int,
        progress: Progress | None,
    ) -> Outcome:
        """Send the parts; once all are out, remember the list of choices the chat was shown."""
        return await shown.send_parts_then_tell(
            self.on_choices, CHANNEL, chat_id, message, parts, first=first, progress=progress
        )

    async def send_file(
        self,
        chat_id: str,
        message: OutboundMessage,
        locale: str,
        file: StoredFile,
        *,
        paid: bool = False,
        first: int = 0,
        progress: Progress | None = None,
    ) -> Outcome:
        """Send a photo by URL with the text as caption; any other file as its name and a note.

        A text over 2000 characters follows the photo (part 0) in parts of its own. The Bot API
        cannot upload a document or a photo's bytes, so the text says which file goes with the
        message and where to get it.
        """
        text = self.text(message, locale)
        url = file.file_id
        if url and url.startswith(("https://", "http://")):
            fits = len(text) <= self.limits.caption_max
            photo = functools.partial(self._photo, chat_id, url, text if fits else "")
            parts: list[Part] = [photo]
            if not fits:
                parts += self._text_parts(chat_id, text)
            outcome = await self._finish(chat_id, message, parts, first, progress)
            return replace(outcome, file_id=url) if outcome.ok else outcome
        note = t("zalo.file_note", message.locale or locale, name=file.name)
        parts = self._text_parts(chat_id, f"{text}\n\n{note}")
        return await self._finish(chat_id, message, parts, first, progress)

    async def _photo(self, chat_id: str, url: str, caption: str) -> Outcome:
        """Call sendPhoto once."""
        return outcome_of(await self.api.send_photo(chat_id, url, caption))

    async def edit(
        self,
        chat_id: str,
        message_id: str,
        message: OutboundMessage,
        locale: str,
        *,
        caption: bool = False,
    ) -> Outcome:
        """Fail without a call: the Bot API cannot edit, so the reply path sends anew."""
        return Outcome("failed", error="zalo cannot edit a message", attempted=False, code=NO_EDIT)

    async def answer(self, press_id: str) -> Outcome:
        """Nothing to answer: Zalo has no buttons."""
        return Outcome.sent(None)


def _as_str(value: Any) -> str | None:
    """Return an id as a string (None stays None)."""
    return None if value is None else str(value)


def to_event(update: dict[str, Any]) -> InboundEvent | None:
    """Turn a Zalo update into a channel-neutral event; None for what the bot ignores.

    An image's caption is read as the message's text (the image itself is not kept): a person
    who sends a photo with "5" under it during a rating means the 5. An update without a sender
    is logged, by its event and message id only, and dropped.
    """
    message = update.get("message")
    if not isinstance(message, dict):
        return None
    chat = message.get("chat") if isinstance(message.get("chat"), dict) else {}
    sender = message.get("from") if isinstance(message.get("from"), dict) else {}
    assert isinstance(chat, dict) and isinstance(sender, dict)
    chat_id, user_id = _as_str(chat.get("id")), _as_str(sender.get("id"))
    if not chat_id or not user_id:
        log.warning(
            "zalo update %s (message %s) has no %s: dropped",
            _label(update.get("event_name")),
            _label(message.get("message_id")),
            "chat" if not chat_id else "sender",
        )
        return None
    if sender.get("is_bot") is True:
        return None
    text = text_of(update)
    # phones may send Vietnamese decomposed (NFD): store and compare it composed
    text = unicodedata.normalize("NFC", text) if text is not None else None
    command, args = parse_command(text.strip()) if text else (None, ())
    chat_type = str(chat.get("chat_type") or "PRIVATE").lower()
    name = sender.get("display_name") or sender.get("name")
    return InboundEvent(
        channel=CHANNEL,
        external_id=user_id,
        chat_id=chat_id,
        display_name=str(name)[:255] if name else None,
        text=text,
        command=command,
        args=args,
        message_id=_as_str(message.get("message_id")),
        chat_type="private" if chat_type == "private" else "group",
    )


def _label(value: Any) -> str:
    """Return an event name or a message id for a log line: short, printable, never personal."""
    text = str(value) if isinstance(value, str | int) else "?"
    return "".join(c if c.isprintable() else "?" for c in text[:64])


def text_of(update: dict[str, Any]) -> str | None:
    """Return what the person wrote: a text message's text, or an image's caption when it has one.

    A sticker, an image without a caption or an unsupported message carries no text (None).
    """
    message = update.get("message")
    if not isinstance(message, dict):
        return None
    name = update.get("event_name")
    text = message.get("text")
    if name in (None, TEXT_EVENT):
        return text if isinstance(text, str) else None
    caption = message.get("caption")
    if name == IMAGE_EVENT and isinstance(caption, str) and caption.strip():
        return caption
    return None


def is_text(update: dict[str, Any]) -> bool:
    """Tell whether an update carries text: a text message, or an image with a caption."""
    return text_of(update) is not None


def updates_of(answer: Answer) -> list[dict[str, Any]]:
    """Return the updates a getUpdates answer carries (one object, or a list of them)."""
    result = answer.result
    if isinstance(result, dict):
        return [result]
    if isinstance(result, list):
        return [u for u in result if isinstance(u, dict)]
    return []


def make_api(settings: Settings) -> ZaloApi:
    """Return a Zalo Bot API client for the configured token and base URL."""
    token = settings.zalo.bot_token
    if token is None:
        raise ValueError("no zalo bot token configured")
    return ZaloApi(token.get_secret_value(), settings.zalo.api_base)


def outbox_channel(settings: Settings, on_choices: OnChoices | None = None) -> ZaloChannel:
    """Return the dispatcher's Zalo channel, with a client of its own."""
    return ZaloChannel(
        make_api(settings),
        settings.scheduler.tz,
        limits_of(settings.zalo),
        on_choices=on_choices,
    )
