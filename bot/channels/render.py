"""Turn channel-neutral messages into text: catalog lookup, escaping, dates, splitting."""

from __future__ import annotations

import html
import re
from collections.abc import Callable
from datetime import date, datetime
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from bot.i18n import t
from bot.i18n.formats import FormalTime, formal_time, format_number
from bot.messages import Button, Html, Items, OutboundMessage, Text

Escape = Callable[[str], str]
DEFAULT_TZ = ZoneInfo("Asia/Ho_Chi_Minh")


def html_escape(value: str) -> str:
    """Escape user text for Telegram's HTML parse mode."""
    return html.escape(value, quote=False)


def strip_html(value: str) -> str:
    """Turn Telegram HTML into plain text."""
    return html.unescape(re.sub(r"<[^>]+>", "", value))


def plain(value: str) -> str:
    """Leave text as it is (channels and terminals without markup)."""
    return value


def format_value(value: Any, locale: str, tz: ZoneInfo) -> str:
    """Format one parameter the way a Vietnamese office writes it."""
    if isinstance(value, FormalTime):
        return formal_time(value.moment, tz, locale)
    if isinstance(value, datetime):
        return value.astimezone(tz).strftime("%H:%M %d/%m/%Y")
    if isinstance(value, date):
        return value.strftime("%d/%m/%Y")
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, int | float | Decimal):
        return format_number(value, locale)
    return str(value)


def render_params(
    params: dict[str, Any], locale: str, *, escape: Escape, tz: ZoneInfo
) -> dict[str, str]:
    """Render every parameter: nested messages and lists as catalog text, the rest escaped."""
    out: dict[str, str] = {}
    for name, value in params.items():
        if isinstance(value, Text):
            out[name] = render_key(value.key, value.params, locale, escape=escape, tz=tz)
        elif isinstance(value, Html):
            out[name] = value.value if escape is html_escape else strip_html(value.value)
        elif isinstance(value, Items):
            out[name] = value.sep.join(
                render_key(value.key, row, locale, escape=escape, tz=tz) for row in value.rows
            )
        else:
            out[name] = escape(format_value(value, locale, tz))
    return out


def render_key(
    key: str, params: dict[str, Any], locale: str, *, escape: Escape, tz: ZoneInfo = DEFAULT_TZ
) -> str:
    """Render one catalog message with its parameters."""
    return t(key, locale, **render_params(params, locale, escape=escape, tz=tz))


def render(
    message: OutboundMessage,
    locale: str,
    *,
    escape: Escape = html_escape,
    tz: ZoneInfo = DEFAULT_TZ,
) -> str:
    """Render a message's text in a locale (its own locale wins when set)."""
    return render_key(message.key, message.params, message.locale or locale, escape=escape, tz=tz)


def button_label(button: Button, locale: str, *, escape: Escape = plain) -> str:
    """Render a button's label, with the number the user may type in its place."""
    label = render_key(button.key, button.params, locale, escape=escape)
    if button.number is None:
        return label
    return t("flow.numbered", locale, number=str(button.number), label=label)


def options_text(message: OutboundMessage, locale: str, *, escape: Escape = plain) -> str:
    """Render a message's buttons as lines of text, for channels that have no buttons."""
    loc = message.locale or locale
    return "\n".join(button_label(b, loc, escape=escape) for row in message.buttons for b in row)


def split_text(text: str, limit: int) -> list[str]:
    """Split text into chunks of at most `limit` characters, at line breaks where possible."""
    if len(text) <= limit:
        return [text]
    chunks: list[str] = []
    current = ""
    for line in text.split("\n"):
        while len(line) > limit:
            if current:
                chunks.append(current)
                current = ""
            cut = line.rfind(" ", 0, limit)
            cut = cut if cut > limit // 2 else limit
            chunks.append(line[:cut])
            line = line[cut:].lstrip(" ")
        candidate = f"{current}\n{line}" if current else line
        if len(candidate) > limit:
            chunks.append(current)
            current = line
        else:
            current = candidate
    if current:
        chunks.append(current)
    return [c for c in chunks if c.strip()]
