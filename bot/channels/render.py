"""Turn channel-neutral messages into text: catalog lookup, escaping, dates, splitting."""

from __future__ import annotations

import html
import re
from collections import OrderedDict
from collections.abc import Callable
from datetime import date, datetime
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from bot.i18n import has_key, t
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


class RenderCache:
    """The texts of the messages rendered last, by message object, locale, escape and zone.

    Messages are immutable values; the outbox dispatcher hands the same object for every row
    of one payload, so a directive or broadcast to thousands is rendered once per locale. An
    entry keeps its message alive, so an id is never reused while its text is cached.
    """

    def __init__(self, size: int = 512) -> None:
        self.size = size
        self._texts: OrderedDict[tuple[int, str, Escape, ZoneInfo], tuple[Any, str]] = OrderedDict()

    def text(self, message: OutboundMessage, locale: str, escape: Escape, tz: ZoneInfo) -> str:
        """Return the message's text, rendering it only when it is not cached."""
        key = (id(message), locale, escape, tz)
        hit = self._texts.get(key)
        if hit is not None and hit[0] is message:
            self._texts.move_to_end(key)
            return hit[1]
        text = render_key(message.key, message.params, locale, escape=escape, tz=tz)
        self._texts[key] = (message, text)
        if len(self._texts) > self.size:
            self._texts.popitem(last=False)
        return text


TEXTS = RenderCache()


def render(
    message: OutboundMessage,
    locale: str,
    *,
    escape: Escape = html_escape,
    tz: ZoneInfo = DEFAULT_TZ,
) -> str:
    """Render a message's text in a locale (its own locale wins when set); cached by message."""
    return TEXTS.text(message, message.locale or locale, escape, tz)


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


# --- plain text, for channels without markup or buttons (Zalo) ---------------------------------

TAG_RE = re.compile(
    r"</?(?:b|strong|i|em|u|ins|s|strike|del|code|pre|span|tg-spoiler|blockquote)(?:\s[^>]*)?>",
    re.IGNORECASE,
)
LINK_RE = re.compile(r"<a\s+href=\"([^\"]*)\"[^>]*>(.*?)</a>", re.IGNORECASE | re.DOTALL)
FLOW_PREFIX = "flow:"  # the namespace of an open flow's buttons (handlers/flows.py)
TYPED_SUFFIX = "_typed"  # a key's wording for channels without buttons (see typed_key)
PREVIEW_SUFFIX = ":preview"  # a preview's buttons do nothing (bot/services/directives)
BREAK_RE = re.compile(r"<br\s*/?>", re.IGNORECASE)


def _link(match: re.Match[str]) -> str:
    """Write a link as its label and, when they differ, its address."""
    url, label = match[1], match[2]
    return label if html.unescape(label) == html.unescape(url) else f"{label} ({url})"


def html_to_plain(value: str) -> str:
    """Turn Telegram HTML (the catalogs' tags, escaped user text) into plain text.

    Only the tags Telegram knows are removed, so a placeholder such as '<số nhiệm vụ>' stays.
    """
    value = LINK_RE.sub(_link, value)
    value = BREAK_RE.sub("\n", value)
    return html.unescape(TAG_RE.sub("", value))


def numbered(message: OutboundMessage) -> list[tuple[int | None, Button]]:
    """Number a message's buttons as a typed list: the numbers given, else 1, 2, … in order.

    A flow's step numbers its own choices; its other buttons ('back', 'cancel') stay unnumbered,
    answered by their words, so a step that asks for text still takes '1' as text.
    """
    buttons = [b for row in message.buttons for b in row]
    if any(b.number is not None or b.action.startswith(FLOW_PREFIX) for b in buttons):
        return [(b.number, b) for b in buttons]
    return [(i, b) for i, b in enumerate(buttons, start=1)]


def options_lines(message: OutboundMessage, locale: str) -> list[str]:
    """Render the buttons as lines: '1. Label' for a number, '– Label' for a word."""
    loc = message.locale or locale
    lines = []
    for number, b in numbered(message):
        label = render_key(b.key, b.params, loc, escape=plain)
        if number is None:
            lines.append(t("typed.word_line", loc, label=label))
        else:
            lines.append(t("flow.numbered", loc, number=str(number), label=label))
    return lines


def is_preview(message: OutboundMessage) -> bool:
    """Tell whether a message's buttons are a preview's (shown, not answerable)."""
    buttons = [b for row in message.buttons for b in row]
    return bool(buttons) and all(b.action.endswith(PREVIEW_SUFFIX) for b in buttons)


def _preview_lines(message: OutboundMessage, locale: str) -> list[str]:
    """Render a preview's choices unnumbered, so only the step after it has numbers."""
    loc = message.locale or locale
    labels = [
        render_key(b.key, b.params, loc, escape=plain) for row in message.buttons for b in row
    ]
    return [t("typed.preview_intro", loc), *(t("typed.preview_line", loc, label=x) for x in labels)]


def typed_key(key: str) -> str:
    """Return the catalog's wording of a key for people who type their answers, when it has one.

    A key whose text says "press «…»" has a sibling '<key>_typed' saying "type «…»".
    """
    variant = key + TYPED_SUFFIX
    return variant if has_key(variant) else key


def typed_params(params: dict[str, Any]) -> dict[str, Any]:
    """Return the parameters with every sentence inserted in them in its typed wording too.

    A hint or a footer that comes from another catalog entry ('me.channel_hint' inside the /me
    profile) says "type" on a typed channel just as the message's own text does.
    """
    out: dict[str, Any] = {}
    for name, value in params.items():
        if isinstance(value, Text):
            value = Text(typed_key(value.key), typed_params(value.params))
        elif isinstance(value, Items):
            rows = tuple(typed_params(row) for row in value.rows)
            value = Items(typed_key(value.key), rows, value.sep)
        out[name] = value
    return out


def _typed_anywhere(params: dict[str, Any]) -> bool:
    """Tell whether any sentence inserted in the parameters has a typed wording."""
    for value in params.values():
        if isinstance(value, Text) and (
            typed_key(value.key) != value.key or _typed_anywhere(value.params)
        ):
            return True
        if isinstance(value, Items) and (
            typed_key(value.key) != value.key or any(_typed_anywhere(r) for r in value.rows)
        ):
            return True
    return False


def _plain(message: OutboundMessage, locale: str, tz: ZoneInfo) -> str:
    """Render a message as plain text with its list of choices (uncached).

    The message's own text and every sentence inserted in it use their typed wording.
    """
    key = typed_key(message.key)
    if key == message.key and not _typed_anywhere(message.params):
        text = html_to_plain(render(message, locale, escape=html_escape, tz=tz))
    else:
        loc = message.locale or locale
        params = typed_params(message.params)
        text = html_to_plain(render_key(key, params, loc, escape=html_escape, tz=tz))
    if is_preview(message):
        return "\n".join([text, "", *_preview_lines(message, locale)])
    lines = options_lines(message, locale)
    if not lines:
        return text
    intro = t("typed.options_intro", message.locale or locale)
    return "\n".join([text, "", intro, *lines])


class PlainCache:
    """The plain texts rendered last, by message object, locale and zone (like RenderCache)."""

    def __init__(self, size: int = 512) -> None:
        self.size = size
        self._texts: OrderedDict[tuple[int, str, ZoneInfo], tuple[Any, str]] = OrderedDict()

    def text(self, message: OutboundMessage, locale: str, tz: ZoneInfo) -> str:
        """Return the message's plain text, rendering it only when it is not cached."""
        key = (id(message), locale, tz)
        hit = self._texts.get(key)
        if hit is not None and hit[0] is message:
            self._texts.move_to_end(key)
            return hit[1]
        text = _plain(message, locale, tz)
        self._texts[key] = (message, text)
        if len(self._texts) > self.size:
            self._texts.popitem(last=False)
        return text


PLAIN_TEXTS = PlainCache()


def plain_text(message: OutboundMessage, locale: str, *, tz: ZoneInfo = DEFAULT_TZ) -> str:
    """Render a message as plain text, its buttons as a list to answer by number or words.

    Cached by message object, so a directive or broadcast is rendered once per locale.
    """
    return PLAIN_TEXTS.text(message, message.locale or locale, tz)
