"""The Telegram adapter: Update -> InboundEvent, OutboundMessage -> Bot API calls -> Outcome."""

from __future__ import annotations

import contextlib
import functools
import json
import warnings
from collections import OrderedDict
from collections.abc import Awaitable, Collection
from dataclasses import replace
from datetime import timedelta
from http import HTTPStatus
from typing import Any
from zoneinfo import ZoneInfo

from telegram import (
    Bot,
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    InputFile,
    LinkPreviewOptions,
    Message,
    Update,
)
from telegram.constants import ChatMemberStatus, MessageLimit, ParseMode
from telegram.error import (
    BadRequest,
    ChatMigrated,
    Conflict,
    Forbidden,
    InvalidToken,
    NetworkError,
    RetryAfter,
    TelegramError,
)
from telegram.request import BaseRequest
from telegram.warnings import PTBUserWarning

from bot.channels.contract import (
    NOT_MODIFIED,
    STALE_FILE,
    Limits,
    Outcome,
    Part,
    Progress,
    send_parts,
)
from bot.channels.http import AiohttpRequest
from bot.channels.render import button_label, html_escape, render, split_text
from bot.config import DeliverySettings, Settings
from bot.messages import (
    FileRef,
    InboundEvent,
    OutboundMessage,
    StoredFile,
    parse_command,
)

CHANNEL = "telegram"
NO_PREVIEW = LinkPreviewOptions(is_disabled=True)
CAPTION_MAX = MessageLimit.CAPTION_LENGTH
OUTBOX_POOL = 136  # connections of the dispatcher's Bot: its sends in flight, and a few more
TOO_LONG = "too_long"  # an edit whose new text does not fit the message it replaces
BODIES = 512  # encoded sendMessage bodies kept, by message object, locale and paid


def _callback_event(update: Update) -> InboundEvent | None:
    """Turn a button press into an event."""
    query = update.callback_query
    if query is None or query.from_user.is_bot:
        return None
    message = query.message
    chat_id = message.chat.id if message else query.from_user.id
    return InboundEvent(
        channel=CHANNEL,
        external_id=str(query.from_user.id),
        chat_id=str(chat_id),
        display_name=query.from_user.full_name,
        language_code=query.from_user.language_code,
        action=query.data or "",
        message_id=str(message.message_id) if message else None,
        chat_type=message.chat.type if message else "private",
        pressed_has_caption=isinstance(message, Message) and message.caption is not None,
        press_id=query.id,
    )


def to_event(update: Update, bot_username: str | None = None) -> InboundEvent | None:
    """Turn a Telegram update into a channel-neutral event; None for what the bot ignores."""
    if update.callback_query is not None:
        return _callback_event(update)
    message = update.message
    user = message.from_user if message else None
    if message is None or user is None or user.is_bot:
        return None
    text = message.text if message.text is not None else message.caption
    html = (
        message.text_html
        if message.text is not None
        else (message.caption_html if message.caption is not None else None)
    )
    command, args = parse_command(text, bot_username) if text else (None, ())
    return InboundEvent(
        channel=CHANNEL,
        external_id=str(user.id),
        chat_id=str(message.chat.id),
        display_name=user.full_name,
        language_code=user.language_code,
        text=text,
        html=html,
        command=command,
        args=args,
        message_id=str(message.message_id),
        chat_type=message.chat.type,
        file=_file_ref(message),
    )


def _file_ref(message: Message) -> FileRef | None:
    """Describe the document (or largest photo) a message carries."""
    if message.document is not None:
        doc = message.document
        return FileRef(
            doc.file_id,
            doc.file_name or "file",
            doc.mime_type or "application/octet-stream",
            doc.file_size or 0,
        )
    if message.photo:
        photo = message.photo[-1]
        return FileRef(photo.file_id, "photo.jpg", "image/jpeg", photo.file_size or 0)
    return None


def blocked_change(update: Update) -> bool | None:
    """Tell whether a my_chat_member update means the user blocked (True) or restarted (False)."""
    change = update.my_chat_member
    if change is None or change.chat.type != "private":
        return None
    status = change.new_chat_member.status
    if status in (ChatMemberStatus.BANNED, ChatMemberStatus.LEFT):
        return True
    return False if status == ChatMemberStatus.MEMBER else None


# Texts, edits and button answers go out as JSON posted straight through the Bot's aiohttp session,
# a bulk text's body encoded once per message and locale, the answer read only for its message id
# (else through python-telegram-bot): its request building and its Message objects cost a bulk
# sender most of its CPU, and a reply a good share of it.
warnings.filterwarnings("ignore", message=r"Please use 'Bot\.sendMessage'", category=PTBUserWarning)


def keyboard(message: OutboundMessage, locale: str) -> InlineKeyboardMarkup | None:
    """Render the message's buttons as an inline keyboard."""
    if not message.buttons:
        return None
    loc = message.locale or locale
    return InlineKeyboardMarkup(
        [
            [InlineKeyboardButton(button_label(b, loc), callback_data=b.action) for b in row]
            for row in message.buttons
        ]
    )


def keyboard_json(message: OutboundMessage, locale: str) -> dict[str, Any] | None:
    """Render the message's buttons as the Bot API's inline keyboard, as JSON values."""
    if not message.buttons:
        return None
    loc = message.locale or locale
    return {
        "inline_keyboard": [
            [{"text": button_label(b, loc), "callback_data": b.action} for b in row]
            for row in message.buttons
        ]
    }


def error_of(status: int, payload: bytes) -> TelegramError:
    """Return the error python-telegram-bot raises for a Bot API answer that is not 2xx."""
    try:
        message = f"{HTTPStatus(status).phrase} ({status})"
    except ValueError:
        message = f"Unknown HTTPError ({status})"
    try:
        data = json.loads(payload.decode("utf-8", "replace"))
    except ValueError:
        return NetworkError(f"{message}. Parsing the server response {payload!r} failed")
    message = data.get("description") or message
    parameters = data.get("parameters")
    if parameters:
        if parameters.get("migrate_to_chat_id"):
            return ChatMigrated(parameters["migrate_to_chat_id"])
        if parameters.get("retry_after"):
            return RetryAfter(parameters["retry_after"])
        message += f". The server response contained unknown parameters: {parameters}"
    errors: dict[int, type[TelegramError]] = {
        HTTPStatus.FORBIDDEN: Forbidden,
        HTTPStatus.NOT_FOUND: InvalidToken,
        HTTPStatus.UNAUTHORIZED: InvalidToken,
        HTTPStatus.BAD_REQUEST: BadRequest,
        HTTPStatus.CONFLICT: Conflict,
    }
    return errors.get(status, NetworkError)(message)


def result_of(status: int, payload: bytes) -> Any:
    """Return a Bot API answer's result; raise python-telegram-bot's error if not 2xx."""
    if not HTTPStatus.OK <= status <= 299:
        raise error_of(status, payload)
    return BaseRequest.parse_json_payload(payload)["result"]


def sent_id(status: int, payload: bytes) -> str:
    """Return a sendMessage answer's message id; raise python-telegram-bot's error if not 2xx."""
    return str(result_of(status, payload)["message_id"])


def _dumps(value: Any) -> bytes:
    """Encode a request body compactly, as UTF-8."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode()


def limits_of(delivery: DeliverySettings) -> Limits:
    """Return Telegram's limits as configured (paid broadcasts only when enabled)."""
    return Limits(
        overall=delivery.global_rate,
        per_chat=delivery.chat_rate,
        per_group=delivery.group_per_minute / 60.0,
        paid=delivery.paid_rate if delivery.paid_broadcast else None,
        text_max=MessageLimit.MAX_TEXT_LENGTH,
        caption_max=MessageLimit.CAPTION_LENGTH,
    )


def make_bot(settings: Settings, *, pool_size: int = OUTBOX_POOL) -> Bot:
    """Return a Bot of its own: no client-side rate limiter, a pool for parallel sends.

    Its requests go through aiohttp: httpx costs a bulk sender about four times the CPU.
    """
    token = settings.telegram.token
    if token is None:
        raise ValueError("no bot token configured")
    request = AiohttpRequest(connection_pool_size=pool_size, pool_timeout=10.0)
    return Bot(
        token.get_secret_value(),
        base_url=settings.telegram.api_base_url,
        base_file_url=settings.telegram.api_file_url,
        request=request,
    )


def outbox_channel(settings: Settings) -> TelegramChannel:
    """Return the dispatcher's Telegram channel, with a Bot it opens and closes itself."""
    bot = make_bot(settings)
    return TelegramChannel(bot, settings.scheduler.tz, limits_of(settings.delivery), owns_bot=True)


def outcome_of(exc: TelegramError) -> Outcome:
    """Map python-telegram-bot's error to a neutral outcome."""
    if isinstance(exc, RetryAfter):
        return Outcome.flood(retry_seconds(exc), error=f"flood control: {exc.message}")
    if isinstance(exc, Forbidden):
        return Outcome.blocked(f"forbidden: {exc}")
    if isinstance(exc, ChatMigrated):
        return Outcome.failed(f"chat migrated to {exc.new_chat_id}", code="chat_migrated")
    if isinstance(exc, BadRequest):
        text = str(exc).lower()
        if "file identifier" in text or "wrong file id" in text:
            return Outcome.failed(f"bad request: {exc}", code=STALE_FILE)
        if "message is not modified" in text:
            return Outcome.sent(None, code=NOT_MODIFIED)
        return Outcome.failed(f"bad request: {exc}", code="bad_request")
    return Outcome.retry(f"{type(exc).__name__}: {exc}")  # timeouts, network, 5xx


async def _guard(call: Awaitable[Outcome]) -> Outcome:
    """Await a Bot API call; turn the platform's errors into outcomes."""
    try:
        return await call
    except TelegramError as exc:
        return outcome_of(exc)


class TelegramChannel:
    """Send, edit and answer through a python-telegram-bot Bot; Telegram's errors as outcomes."""

    name = CHANNEL

    def __init__(
        self,
        bot: Bot,
        tz: ZoneInfo,
        limits: Limits | None = None,
        *,
        owns_bot: bool = False,
    ) -> None:
        self.bot, self.tz, self.owns_bot = bot, tz, owns_bot
        self.limits = limits or limits_of(DeliverySettings())
        self._bodies: OrderedDict[tuple[int, str, bool], tuple[OutboundMessage, list[bytes]]]
        self._bodies = OrderedDict()

    def _direct(self) -> AiohttpRequest | None:
        """Return the Bot's aiohttp backend when texts may be posted through it directly.

        Only a plain Bot qualifies: one with defaults, a callback-data cache or a rate limiter
        changes what it sends or when, and another backend (tests' fakes) is left to
        python-telegram-bot.
        """
        request = self.bot.request
        if not isinstance(request, AiohttpRequest) or request.session is None:
            return None
        extras = ("defaults", "callback_data_cache", "rate_limiter")
        if any(getattr(self.bot, name, None) is not None for name in extras):
            return None
        return request

    def _tails(self, message: OutboundMessage, locale: str, paid: bool) -> list[bytes]:
        """Return each chunk's sendMessage body after the chat id, encoded once per message."""
        key = (id(message), locale, paid)
        hit = self._bodies.get(key)
        if hit is not None and hit[0] is message:
            self._bodies.move_to_end(key)
            return hit[1]
        chunks = split_text(self.text(message, locale), self.limits.text_max)
        markup = keyboard_json(message, locale)
        tails: list[bytes] = []
        for i, chunk in enumerate(chunks):
            call: dict[str, Any] = {
                "text": chunk,
                "parse_mode": ParseMode.HTML.value,
                "link_preview_options": {"is_disabled": True},
            }
            if markup is not None and i == len(chunks) - 1:
                call["reply_markup"] = markup
            if paid:
                call["allow_paid_broadcast"] = True
            tails.append(b"," + _dumps(call)[1:])
        self._bodies[key] = (message, tails)
        if len(self._bodies) > BODIES:
            self._bodies.popitem(last=False)
        return tails

    async def open(self) -> None:
        """Initialise the Bot when this channel owns it (the Application does otherwise)."""
        if self.owns_bot:
            await self.bot.initialize()

    async def close(self) -> None:
        """Shut the Bot down when this channel owns it."""
        if self.owns_bot:
            with contextlib.suppress(Exception):
                await self.bot.shutdown()

    async def claimed(self, chat_ids: Collection[str]) -> None:
        """Nothing to read ahead."""

    def text(self, message: OutboundMessage, locale: str) -> str:
        """Render a message as Telegram HTML."""
        return render(message, locale, escape=html_escape, tz=self.tz)

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
        """Send a message (split at line breaks over 4096 characters) from part `first`."""
        return await send_parts(
            self._text_parts(chat_id, message, locale, paid), first=first, progress=progress
        )

    def _text_parts(
        self, chat_id: str, message: OutboundMessage, locale: str, paid: bool
    ) -> list[Part]:
        """Return one call per chunk of the text; the buttons go with the last."""
        direct = self._direct()
        if direct is not None:
            url = f"{self.bot.base_url}/sendMessage"
            head = b'{"chat_id":' + _dumps(chat_id)
            tails = self._tails(message, locale, paid)
            return [functools.partial(self._post, direct, url, head + tail) for tail in tails]
        chunks = split_text(self.text(message, locale), self.limits.text_max)
        calls: list[Part] = []
        for i, chunk in enumerate(chunks):
            call: dict[str, Any] = {
                "chat_id": chat_id,
                "text": chunk,
                "parse_mode": ParseMode.HTML,
                "link_preview_options": NO_PREVIEW,
            }
            markup = keyboard(message, locale) if i == len(chunks) - 1 else None
            if markup is not None:
                call["reply_markup"] = markup
            if paid:
                call["allow_paid_broadcast"] = True
            calls.append(functools.partial(self._send_chunk, call))
        return calls

    async def _send_chunk(self, call: dict[str, Any]) -> Outcome:
        """Send one chunk through python-telegram-bot."""
        try:
            sent = await self.bot.do_api_request("sendMessage", api_kwargs=call)
        except TelegramError as exc:
            return outcome_of(exc)
        return Outcome.sent(str(sent["message_id"]))

    async def _post(self, request: AiohttpRequest, url: str, body: bytes) -> Outcome:
        """Post one chunk's body; read only the answer's message id."""
        try:
            return Outcome.sent(sent_id(*await request.post_json(url, body)))
        except TelegramError as exc:
            return outcome_of(exc)

    async def _call(self, request: AiohttpRequest, method: str, call: dict[str, Any]) -> None:
        """Post a Bot API call as JSON; a non-2xx answer raises python-telegram-bot's error."""
        result_of(*await request.post_json(f"{self.bot.base_url}/{method}", _dumps(call)))

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
        """Send the file with the text as caption when it fits, else the file then the text.

        A text too long for a caption follows the file in parts of its own, its buttons under
        the last: the file is part 0, so a retry after a failed text never sends it again.
        """
        text = self.text(message, locale)
        fits = len(text) <= self.limits.caption_max
        uploaded: list[str] = []

        async def upload() -> Outcome:
            outcome = await _guard(self._send_file(chat_id, message, locale, file, paid, fits))
            if outcome.file_id and outcome.file_id != file.file_id:
                uploaded.append(outcome.file_id)
            return outcome

        parts: list[Part] = [upload]
        if not fits:
            parts += self._text_parts(chat_id, message, locale, paid)
        outcome = await send_parts(parts, first=first, progress=progress)
        file_id = uploaded[0] if uploaded else (file.file_id if outcome.ok else None)
        return replace(outcome, file_id=file_id)

    async def _send_file(
        self,
        chat_id: str,
        message: OutboundMessage,
        locale: str,
        file: StoredFile,
        paid: bool,
        fits: bool,
    ) -> Outcome:
        """Send a document or photo by id or bytes, with the text as caption when it fits."""
        media: str | InputFile = file.file_id or InputFile(file.data or b"", filename=file.name)
        options: dict[str, Any] = {
            "chat_id": chat_id,
            "caption": self.text(message, locale) if fits else None,
            "parse_mode": ParseMode.HTML if fits else None,
            "reply_markup": keyboard(message, locale) if fits else None,
            "allow_paid_broadcast": paid or None,
        }
        if message.media == "photo":
            sent = await self.bot.send_photo(photo=media, **options)
        else:
            sent = await self.bot.send_document(document=media, **options)
        return Outcome.sent(str(sent.message_id), _file_id(sent))

    async def edit(
        self,
        chat_id: str,
        message_id: str,
        message: OutboundMessage,
        locale: str,
        *,
        caption: bool = False,
    ) -> Outcome:
        """Replace the text (or a file's caption) and the buttons of a message the bot sent."""
        outcome = await _guard(self._edit(chat_id, message_id, message, locale, caption))
        if outcome.code == NOT_MODIFIED:
            return Outcome.sent(message_id, code=NOT_MODIFIED)
        return outcome

    async def _edit(
        self, chat_id: str, message_id: str, message: OutboundMessage, locale: str, caption: bool
    ) -> Outcome:
        """Call editMessageCaption or editMessageText; fail unsent when the text does not fit.

        A new text longer than the caption (or message) it replaces would be cut: the reply
        path sends it anew instead, in parts, with its buttons under the last.
        """
        limit = self.limits.caption_max if caption else self.limits.text_max
        text = self.text(message, locale)
        if len(text) > limit:
            error = f"{'caption' if caption else 'text'} over {limit} characters: sent anew"
            return Outcome("failed", error=error, attempted=False, code=TOO_LONG)
        direct = self._direct()
        if direct is not None:
            call: dict[str, Any] = {
                "chat_id": chat_id,
                "message_id": int(message_id),
                "caption" if caption else "text": text,
                "parse_mode": ParseMode.HTML.value,
            }
            if not caption:
                call["link_preview_options"] = {"is_disabled": True}
            markup = keyboard_json(message, locale)
            if markup is not None:
                call["reply_markup"] = markup
            await self._call(direct, "editMessageCaption" if caption else "editMessageText", call)
        elif caption:
            await self.bot.edit_message_caption(
                chat_id=chat_id,
                message_id=int(message_id),
                caption=text,
                parse_mode=ParseMode.HTML,
                reply_markup=keyboard(message, locale),
            )
        else:
            await self.bot.edit_message_text(
                chat_id=chat_id,
                message_id=int(message_id),
                text=text,
                parse_mode=ParseMode.HTML,
                reply_markup=keyboard(message, locale),
                link_preview_options=NO_PREVIEW,
            )
        return Outcome.sent(message_id)

    async def answer(self, press_id: str) -> Outcome:
        """Answer a callback query (the button stops spinning)."""
        return await _guard(self._answer(press_id))

    async def _answer(self, press_id: str) -> Outcome:
        """Call answerCallbackQuery."""
        direct = self._direct()
        if direct is not None:
            await self._call(direct, "answerCallbackQuery", {"callback_query_id": press_id})
        else:
            await self.bot.answer_callback_query(press_id)
        return Outcome.sent(None)


def _file_id(sent: Message) -> str | None:
    """Return the file id of the document or photo a message carries."""
    if sent.document is not None:
        return sent.document.file_id
    return sent.photo[-1].file_id if sent.photo else None


def retry_seconds(exc: RetryAfter) -> float:
    """Return a 429's retry_after in seconds, whatever type python-telegram-bot uses."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        value = exc.retry_after
    return value.total_seconds() if isinstance(value, timedelta) else float(value)
