"""Channel-neutral messages: what adapters turn updates into, and what services return.

A leaf package: it imports nothing of the project but bot.i18n.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

CALLBACK_DATA_MAX_BYTES = 64
MAX_INBOUND_TEXT = 4096


@dataclass(frozen=True)
class Button:
    """A choice offered to the user: a label key and a namespaced action such as 'ack:12'.

    `number` is what the user may type instead of pressing (shown next to the label).
    """

    key: str
    action: str
    params: dict[str, Any] = field(default_factory=dict)
    number: int | None = None

    def __post_init__(self) -> None:
        """Refuse actions that Telegram would reject (over 64 bytes, no namespace)."""
        if len(self.action.encode("utf-8")) > CALLBACK_DATA_MAX_BYTES:
            raise ValueError(f"button action over {CALLBACK_DATA_MAX_BYTES} bytes: {self.action!r}")
        if ":" not in self.action:
            raise ValueError(f"button action needs a namespace, like 'ns:arg': {self.action!r}")


@dataclass(frozen=True)
class Items:
    """A list parameter: each row rendered with `key`, joined by `sep`."""

    key: str
    rows: tuple[dict[str, Any], ...]
    sep: str = "\n"


@dataclass(frozen=True)
class Text:
    """A parameter that is itself a catalog message (rendered, then inserted as is)."""

    key: str
    params: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Html:
    """A parameter already in Telegram HTML (from the platform's own entity rendering)."""

    value: str


@dataclass(frozen=True)
class OutboundMessage:
    """A message to send: an i18n key, its parameters and rows of buttons; never rendered text.

    `edit` asks to replace the message whose button the user pressed instead of sending anew.
    """

    key: str
    params: dict[str, Any] = field(default_factory=dict)
    buttons: tuple[tuple[Button, ...], ...] = ()
    locale: str | None = None
    edit: bool = False
    attachment_id: int | None = None
    media: str = "document"


@dataclass(frozen=True)
class FileRef:
    """A file the user sent: the channel's id for it, its name, type and size."""

    file_id: str
    name: str
    mime_type: str
    size: int


@dataclass(frozen=True)
class InboundEvent:
    """One thing a user did in a chat, whatever the channel.

    `press_id` is the platform's id of a button press, to answer it with.
    """

    channel: str
    external_id: str
    chat_id: str
    display_name: str | None = None
    language_code: str | None = None
    text: str | None = None
    html: str | None = None
    command: str | None = None
    args: tuple[str, ...] = ()
    action: str | None = None
    message_id: str | None = None
    chat_type: str = "private"
    file: FileRef | None = None
    pressed_has_caption: bool = False
    press_id: str | None = None

    @property
    def payload(self) -> str | None:
        """Return the deep-link payload of '/start <payload>'."""
        return self.args[0] if self.command == "start" and self.args else None


def parse_command(text: str, bot_username: str | None = None) -> tuple[str | None, tuple[str, ...]]:
    """Split '/cmd@bot a b' into ('cmd', ('a', 'b')); return (None, ()) for plain text."""
    if not text.startswith("/") or len(text) < 2:
        return None, ()
    head, *rest = text.split()
    name, _, target = head[1:].partition("@")
    if target and bot_username and target.lower() != bot_username.lower():
        return None, ()
    if not name or not all(c.isascii() and (c.isalnum() or c == "_") for c in name):
        return None, ()
    return name.lower(), tuple(rest)


@dataclass(frozen=True)
class StoredFile:
    """An attachment to send: its bytes for the first upload, or the platform's id once known."""

    name: str
    mime_type: str
    data: bytes | None = None
    file_id: str | None = None
