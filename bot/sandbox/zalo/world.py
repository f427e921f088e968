"""The Zalo sandbox's state: users, chats and their messages, the bot's queue and webhook,
the Official Account's followers, tokens and events, and the personas of the page."""

from __future__ import annotations

import secrets
import time
import zlib
from collections import Counter, deque
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from bot.sandbox.errors import JsonDict
from bot.sandbox.limits import FloodControl, Limits, TimeSource
from bot.sandbox.state import Notifier
from bot.sandbox.zalo.errors import bad_request

PRIVATE, GROUP = "PRIVATE", "GROUP"
SURFACES = ("bot", "oa")
FIRST_USER_ID = 7_100_000_000_000_000_001


def flood_key(value: str) -> int:
    """Return the integer key of an id for the limits and faults (the id itself when digits)."""
    return int(value) if value.isdigit() else zlib.crc32(value.encode())


@dataclass
class ZaloUser:
    """A Zalo user the sandbox plays."""

    id: str
    display_name: str

    def to_api(self) -> JsonDict:
        """Return the sender object of an update."""
        return {"id": self.id, "display_name": self.display_name, "is_bot": False}


@dataclass
class ZaloChat:
    """A private chat with the bot (id = the user's id) or a group."""

    id: str
    chat_type: str
    title: str | None = None
    members: list[str] = field(default_factory=list)

    def to_api(self) -> JsonDict:
        """Return the chat object of an update."""
        return {"id": self.id, "chat_type": self.chat_type}

    def to_json(self) -> JsonDict:
        """Return the chat for the user API."""
        return {**self.to_api(), "title": self.title, "members": list(self.members)}


@dataclass
class ZaloMessage:
    """A message in a conversation, from the bot/OA or from a user."""

    message_id: str
    from_bot: bool
    sender_id: str
    date: int
    text: str | None = None
    photo: str | None = None
    caption: str | None = None
    buttons: list[JsonDict] = field(default_factory=list)
    version: int = 0

    def view(self) -> JsonDict:
        """Return the message for the user API and the page."""
        data: JsonDict = {
            "message_id": self.message_id,
            "sender": "bot" if self.from_bot else "user",
            "from_id": self.sender_id,
            "date": self.date,
            "version": self.version,
        }
        for name in ("text", "photo", "caption"):
            value = getattr(self, name)
            if value is not None:
                data[name] = value
        if self.buttons:
            data["buttons"] = self.buttons
        return data


class Conversation:
    """The messages of one chat (Bot API) or one follower (OA), with a growing version."""

    def __init__(self) -> None:
        self.messages: list[ZaloMessage] = []
        self.version = 0
        self.changed = Notifier()
        self.typing_until = 0.0

    def add(self, message: ZaloMessage) -> ZaloMessage:
        """Store a message and wake the watchers."""
        self.version += 1
        message.version = self.version
        self.messages.append(message)
        self.changed.notify()
        return message

    def since(self, version: int) -> list[ZaloMessage]:
        """Return the messages added after a version."""
        return [m for m in self.messages if m.version > version]


@dataclass
class ZaloWebhook:
    """The webhook a bot set."""

    url: str
    secret_token: str
    updated_at: int
    last_error: str | None = None


@dataclass
class ZaloCounters:
    """What the Zalo side met: requests, accepted sends, 429s, 403s, faults, webhook posts."""

    requests_total: int = 0
    accepted_total: int = 0
    accepted_by_chat: Counter[str] = field(default_factory=Counter)
    rate_limited_total: int = 0
    forbidden_total: int = 0
    refused_window_total: int = 0
    server_errors_total: int = 0
    soft_errors_total: int = 0
    dropped_total: int = 0
    delayed_total: int = 0
    method_faults_total: int = 0
    webhook_posts_total: int = 0
    webhook_failures_total: int = 0
    by_method: Counter[str] = field(default_factory=Counter)

    def to_json(self) -> JsonDict:
        """Return the counters as JSON."""
        data = asdict(self)
        data["accepted_by_chat"] = dict(self.accepted_by_chat)
        data["by_method"] = dict(self.by_method)
        return data


class Outbox:
    """Events waiting to be read (getUpdates) or pushed to a webhook, oldest first."""

    def __init__(self) -> None:
        self.items: deque[JsonDict] = deque()
        self.changed = Notifier()
        self.closed = False

    def push(self, event: JsonDict) -> None:
        """Queue an event and wake the readers."""
        self.items.append(event)
        self.changed.notify()

    def drop(self, event: JsonDict) -> None:
        """Remove a delivered event if it is still first."""
        if self.items and self.items[0] is event:
            self.items.popleft()


class ZaloBot:
    """One bot of the Zalo Bot API: identity, pending updates, webhook, limits, counters."""

    def __init__(self, token: str, name: str, limits: Limits, clock: TimeSource) -> None:
        self.token = token
        self.id = token.partition(":")[0] or token
        self.name = name
        self.updates = Outbox()
        self.webhook: ZaloWebhook | None = None
        self.flood = FloodControl(limits, clock)
        self.counters = ZaloCounters()

    def to_api(self) -> JsonDict:
        """Return getMe's result."""
        return {
            "id": self.id,
            "account_name": self.name,
            "display_name": self.name,
            "account_type": "BASIC",
            "can_join_groups": True,
        }


@dataclass
class Follower:
    """A user as the Official Account sees them."""

    user_id: str
    followed: bool = True
    last_interaction: float = 0.0
    unfollowed: bool = False


@dataclass
class RefreshToken:
    """A refresh token: when it expires and whether it was spent."""

    expires_at: float
    used: bool = False


@dataclass
class OaSettings:
    """The Official Account's fixed settings and lifetimes (seconds)."""

    app_id: str = "1122334455667788990"
    app_secret: str = "SANDBOX-APP-SECRET-0000"
    oa_id: str = "4433221100998877665"
    oa_secret_key: str = "SANDBOX-OA-SECRET-KEY-0000"
    access_lifetime: float = 25 * 3600.0
    refresh_lifetime: float = 90 * 86400.0
    window: float = 7 * 86400.0


class OfficialAccount:
    """The Official Account: followers, their conversations, tokens, pending webhook events."""

    def __init__(self, settings: OaSettings, limits: Limits, clock: TimeSource) -> None:
        self.settings = settings
        self.followers: dict[str, Follower] = {}
        self.access: dict[str, float] = {}
        self.refresh: dict[str, RefreshToken] = {}
        self.webhook_url: str | None = None
        self.last_webhook_error: str | None = None
        self.events = Outbox()
        self.flood = FloodControl(limits, clock)
        self.counters = ZaloCounters()

    def issue(self, now: float) -> JsonDict:
        """Make a new access/refresh pair and return it as the OAuth answer."""
        access, refresh = secrets.token_urlsafe(24), secrets.token_urlsafe(24)
        self.access[access] = now + self.settings.access_lifetime
        self.refresh[refresh] = RefreshToken(now + self.settings.refresh_lifetime)
        lifetime = int(self.settings.access_lifetime)
        return {"access_token": access, "refresh_token": refresh, "expires_in": str(lifetime)}


@dataclass(frozen=True)
class ZaloPersona:
    """A demo user on Zalo shown in the page's picker (surface: bot or oa)."""

    id: str
    label: str
    role: str
    unit: str
    user_id: str
    display_name: str | None = None
    surface: str = "bot"

    @classmethod
    def from_json(cls, data: ZaloPersona | Mapping[str, Any]) -> ZaloPersona:
        """Build a persona from a mapping (ids become strings)."""
        if isinstance(data, ZaloPersona):
            return data
        known = {key: data[key] for key in data if key in cls.__dataclass_fields__}
        for name in ("id", "label", "role", "unit", "user_id"):
            if name not in known:
                raise bad_request(f"persona field {name} is missing")
        known["user_id"] = str(known["user_id"])
        if known.get("surface", "bot") not in SURFACES:
            raise bad_request("persona field surface must be bot or oa")
        return cls(**known)

    def to_json(self) -> JsonDict:
        """Return the persona as JSON."""
        return {**asdict(self), "channel": "zalo", "chat_id": self.user_id}


def now_ms(wall: TimeSource = time.time) -> int:
    """Return a wall time in milliseconds."""
    return int(wall() * 1000)
