"""The Telegram adapter: Update -> InboundEvent, OutboundMessage -> Bot API calls."""

from __future__ import annotations

import warnings
from datetime import timedelta
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
from telegram.error import RetryAfter

from bot.channels.render import button_label, html_escape, render, split_text
from bot.messages import (
    FileRef,
    InboundEvent,
    OutboundMessage,
    SentFile,
    StoredFile,
    parse_command,
)

CHANNEL = "telegram"
NO_PREVIEW = LinkPreviewOptions(is_disabled=True)
CAPTION_MAX = 1024


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


class TelegramSender:
    """Send and edit rendered messages through a python-telegram-bot Bot."""

    def __init__(self, bot: Bot, tz: ZoneInfo) -> None:
        self.bot = bot
        self.tz = tz

    def text(self, message: OutboundMessage, locale: str) -> str:
        """Render a message as Telegram HTML."""
        return render(message, locale, escape=html_escape, tz=self.tz)

    async def send(self, chat_id: str, message: OutboundMessage, locale: str) -> str | None:
        """Send a message (split at line breaks over 4096 characters); return the last id."""
        chunks = split_text(self.text(message, locale), MessageLimit.MAX_TEXT_LENGTH)
        last_id: str | None = None
        for i, chunk in enumerate(chunks):
            markup = keyboard(message, locale) if i == len(chunks) - 1 else None
            sent = await self.bot.send_message(
                chat_id=chat_id,
                text=chunk,
                parse_mode=ParseMode.HTML,
                reply_markup=markup,
                link_preview_options=NO_PREVIEW,
            )
            last_id = str(sent.message_id)
        return last_id

    async def edit(
        self,
        chat_id: str,
        message_id: str,
        message: OutboundMessage,
        locale: str,
        *,
        caption: bool = False,
    ) -> None:
        """Replace the text (or a file's caption) and the buttons of a message the bot sent."""
        if caption:
            text = split_text(self.text(message, locale), MessageLimit.CAPTION_LENGTH)[0]
            await self.bot.edit_message_caption(
                chat_id=chat_id,
                message_id=int(message_id),
                caption=text,
                parse_mode=ParseMode.HTML,
                reply_markup=keyboard(message, locale),
            )
            return
        text = split_text(self.text(message, locale), MessageLimit.MAX_TEXT_LENGTH)[0]
        await self.bot.edit_message_text(
            chat_id=chat_id,
            message_id=int(message_id),
            text=text,
            parse_mode=ParseMode.HTML,
            reply_markup=keyboard(message, locale),
            link_preview_options=NO_PREVIEW,
        )

    async def deliver(
        self, event: InboundEvent, replies: list[OutboundMessage], locale: str
    ) -> None:
        """Send the replies to an event, editing the pressed message where asked."""
        for reply in replies:
            if reply.edit and event.action is not None and event.message_id is not None:
                await self.edit(
                    event.chat_id,
                    event.message_id,
                    reply,
                    locale,
                    caption=event.pressed_has_caption,
                )
            else:
                await self.send(event.chat_id, reply, locale)


class OutboxSender(TelegramSender):
    """The Telegram adapter plus paid broadcasts, documents and photos."""

    async def send(
        self, chat_id: str, message: OutboundMessage, locale: str, *, paid: bool = False
    ) -> str | None:
        """Send a message (split at line breaks over 4096 characters); return the last id."""
        chunks = split_text(self.text(message, locale), MessageLimit.MAX_TEXT_LENGTH)
        last_id: str | None = None
        for i, chunk in enumerate(chunks):
            sent = await self.bot.send_message(
                chat_id=chat_id,
                text=chunk,
                parse_mode=ParseMode.HTML,
                reply_markup=keyboard(message, locale) if i == len(chunks) - 1 else None,
                link_preview_options=NO_PREVIEW,
                allow_paid_broadcast=paid or None,
            )
            last_id = str(sent.message_id)
        return last_id

    async def send_file(
        self,
        chat_id: str,
        message: OutboundMessage,
        locale: str,
        file: StoredFile,
        *,
        paid: bool = False,
    ) -> SentFile:
        """Send the file with the text as caption when it fits, else the file then the text."""
        text = self.text(message, locale)
        fits = len(text) <= CAPTION_MAX
        media: str | InputFile = file.file_id or InputFile(file.data or b"", filename=file.name)
        options: dict[str, Any] = {
            "chat_id": chat_id,
            "caption": text if fits else None,
            "parse_mode": ParseMode.HTML if fits else None,
            "reply_markup": keyboard(message, locale) if fits else None,
            "allow_paid_broadcast": paid or None,
        }
        if message.media == "photo":
            sent = await self.bot.send_photo(photo=media, **options)
        else:
            sent = await self.bot.send_document(document=media, **options)
        message_id = str(sent.message_id)
        if not fits:
            message_id = await self.send(chat_id, message, locale, paid=paid) or message_id
        return SentFile(message_id, _file_id(sent))


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
