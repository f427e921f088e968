"""The sandbox's world: users, chats, personas, and per bot: messages, updates, files."""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from bot.sandbox.counters import Counters
from bot.sandbox.errors import ApiError, JsonDict, bad_request
from bot.sandbox.files import FileStore, StoredFile
from bot.sandbox.limits import FloodControl, Limits, TimeSource

DEFAULT_ALLOWED = frozenset(
    {
        "message",
        "edited_message",
        "channel_post",
        "edited_channel_post",
        "callback_query",
        "inline_query",
        "chosen_inline_result",
        "my_chat_member",
        "poll",
        "poll_answer",
        "shipping_query",
        "pre_checkout_query",
        "chat_join_request",
    }
)
CONFLICT_OTHER_POLL = (
    "Conflict: terminated by other getUpdates request; "
    "make sure that only one bot instance is running"
)
CONFLICT_WEBHOOK = (
    "Conflict: can't use getUpdates method while webhook is active; "
    "use deleteWebhook to delete the webhook first"
)


def _present(**values: Any) -> JsonDict:
    """Return the given fields that are not None."""
    return {key: value for key, value in values.items() if value is not None}


@dataclass
class User:
    """A Telegram user the sandbox plays."""

    id: int
    first_name: str
    last_name: str | None = None
    username: str | None = None
    language_code: str | None = None

    def to_api(self) -> JsonDict:
        """Return the User object."""
        return {
            "id": self.id,
            "is_bot": False,
            "first_name": self.first_name,
            **_present(
                last_name=self.last_name,
                username=self.username,
                language_code=self.language_code,
            ),
        }


@dataclass
class Chat:
    """A private chat (id = the user's id) or a group."""

    id: int
    type: str
    title: str | None = None
    user: User | None = None
    members: list[int] = field(default_factory=list)

    @property
    def is_group(self) -> bool:
        """Tell whether this is a group or supergroup."""
        return self.type in ("group", "supergroup")

    def to_api(self) -> JsonDict:
        """Return the Chat object."""
        if self.user is not None:
            user = self.user
            return {
                "id": self.id,
                "type": self.type,
                "first_name": user.first_name,
                **_present(last_name=user.last_name, username=user.username),
            }
        return {"id": self.id, "type": self.type, "title": self.title}

    def to_json(self) -> JsonDict:
        """Return the chat for the user API (with members)."""
        return {**self.to_api(), "members": list(self.members)}


@dataclass(frozen=True)
class Persona:
    """A demo user shown in the page's picker."""

    id: str
    label: str
    role: str
    unit: str
    user_id: int
    chat_id: int | None = None
    first_name: str | None = None
    last_name: str | None = None
    username: str | None = None
    language_code: str = "vi"

    @classmethod
    def from_json(cls, data: Persona | Mapping[str, Any]) -> Persona:
        """Build a persona from a mapping (or pass one through)."""
        if isinstance(data, Persona):
            return data
        try:
            return cls(**{key: data[key] for key in data if key in cls.__dataclass_fields__})
        except TypeError as exc:
            raise bad_request(f"bad persona: {exc}") from None

    def to_json(self) -> JsonDict:
        """Return the persona as JSON, with chat_id filled in."""
        return {**asdict(self), "chat_id": self.chat_id or self.user_id}


@dataclass
class StoredMessage:
    """A message in a chat, sent by the bot or by a user."""

    message_id: int
    chat: Chat
    sender: JsonDict
    from_bot: bool
    date: int
    text: str | None = None
    entities: list[JsonDict] = field(default_factory=list)
    caption: str | None = None
    caption_entities: list[JsonDict] = field(default_factory=list)
    file: StoredFile | None = None
    reply_markup: JsonDict | None = None
    reply_to: StoredMessage | None = None
    edit_date: int | None = None
    deleted: bool = False
    version: int = 0

    def to_api(self, nested: bool = True) -> JsonDict:
        """Return the Message object."""
        data: JsonDict = {
            "message_id": self.message_id,
            "from": self.sender,
            "chat": self.chat.to_api(),
            "date": self.date,
        }
        if self.edit_date is not None:
            data["edit_date"] = self.edit_date
        if nested and self.reply_to is not None:
            data["reply_to_message"] = self.reply_to.to_api(nested=False)
        data.update(self._content())
        if self.reply_markup is not None:
            data["reply_markup"] = self.reply_markup
        return data

    def _content(self) -> JsonDict:
        """Return the text, file and caption fields."""
        data: JsonDict = {}
        if self.text is not None:
            data["text"] = self.text
            if self.entities:
                data["entities"] = self.entities
        if self.file is not None:
            if self.file.kind == "photo":
                data["photo"] = self.file.to_photo()
            else:
                data["document"] = self.file.to_document()
        if self.caption:
            data["caption"] = self.caption
            if self.caption_entities:
                data["caption_entities"] = self.caption_entities
        return data


class Notifier:
    """Wakes every waiter when something changes."""

    def __init__(self) -> None:
        self._event = asyncio.Event()

    def current(self) -> asyncio.Event:
        """Return the event the next change will set."""
        return self._event

    def notify(self) -> None:
        """Wake the current waiters."""
        self._event.set()
        self._event = asyncio.Event()

    async def wait(self, seconds: float | None) -> bool:
        """Wait for the next change; return False when `seconds` ran out first."""
        event = self._event
        try:
            async with asyncio.timeout(seconds):
                await event.wait()
        except TimeoutError:
            return False
        return True


class ChatLog:
    """The messages of one chat with one bot, with a version that grows on every change."""

    def __init__(self, chat: Chat) -> None:
        self.chat = chat
        self.messages: dict[int, StoredMessage] = {}
        self.next_id = 1
        self.version = 0
        self.changed = Notifier()
        self.reply_keyboard: JsonDict | None = None

    def new_id(self) -> int:
        """Return the next message id of this chat."""
        self.next_id += 1
        return self.next_id - 1

    def touch(self, message: StoredMessage) -> None:
        """Store a new or changed message and wake the watchers."""
        self.version += 1
        message.version = self.version
        self.messages[message.message_id] = message
        self.changed.notify()

    def live(self, message_id: int | None) -> StoredMessage | None:
        """Return a message that exists and is not deleted."""
        message = self.messages.get(message_id) if message_id is not None else None
        return None if message is None or message.deleted else message

    def since(self, version: int) -> list[StoredMessage]:
        """Return the messages changed after a version, in id order."""
        return [m for m in sorted(self.messages.values(), key=_message_id) if m.version > version]


def _message_id(message: StoredMessage) -> int:
    """Sort key: the message id."""
    return message.message_id


@dataclass
class Update:
    """One queued update."""

    update_id: int
    kind: str
    payload: JsonDict

    def to_api(self) -> JsonDict:
        """Return the Update object."""
        return {"update_id": self.update_id, self.kind: self.payload}


class UpdateQueue:
    """Pending updates of one bot, read by getUpdates or pushed to the webhook."""

    def __init__(self) -> None:
        self.items: deque[Update] = deque()
        self.next_id = 1
        self.changed = Notifier()
        self.poll_generation = 0
        self.allowed: frozenset[str] = DEFAULT_ALLOWED
        self.closed = False

    def push(self, kind: str, payload: JsonDict) -> int:
        """Queue an update (dropped if its type is not allowed) and return its id."""
        update_id = self.next_id
        self.next_id += 1
        if kind in self.allowed:
            self.items.append(Update(update_id, kind, payload))
            self.changed.notify()
        return update_id

    def confirm(self, offset: int) -> None:
        """Forget updates below `offset`; a negative offset keeps only the last -offset."""
        if offset < 0:
            while len(self.items) > -offset:
                self.items.popleft()
            return
        while self.items and self.items[0].update_id < offset:
            self.items.popleft()

    def take(self, limit: int) -> list[JsonDict]:
        """Return up to `limit` pending updates without removing them."""
        return [update.to_api() for update, _ in zip(self.items, range(limit), strict=False)]

    def clear(self) -> None:
        """Drop every pending update."""
        self.items.clear()
        self.changed.notify()

    def set_allowed(self, kinds: Iterable[str] | None) -> None:
        """Remember the allowed update types (an empty list means the default set)."""
        if kinds is not None:
            self.allowed = frozenset(kinds) or DEFAULT_ALLOWED

    def new_poll(self) -> int:
        """Start a getUpdates call, ending any older one with a conflict."""
        self.poll_generation += 1
        self.changed.notify()
        return self.poll_generation

    async def poll(
        self, generation: int, limit: int, seconds: float, interrupted: Callable[[], bool]
    ) -> list[JsonDict]:
        """Wait up to `seconds` for updates (long polling) unless `interrupted()` turns true."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + seconds
        while True:
            if generation != self.poll_generation:
                raise ApiError(409, CONFLICT_OTHER_POLL)
            found = self.take(limit)
            remaining = deadline - loop.time()
            if found or remaining <= 0 or self.closed or interrupted():
                return found
            await self.changed.wait(remaining)


@dataclass
class CallbackRecord:
    """A button press and the bot's answer to it."""

    id: str
    update_id: int
    chat_id: int
    message_id: int
    from_id: int
    data: str
    answered: bool = False
    text: str | None = None
    show_alert: bool = False
    url: str | None = None

    def to_json(self) -> JsonDict:
        """Return the record as JSON."""
        return asdict(self)


@dataclass
class WebhookState:
    """A webhook set by the bot, and how delivery went."""

    url: str
    secret_token: str | None = None
    max_connections: int = 40
    ip_address: str | None = None
    last_error_date: int | None = None
    last_error_message: str | None = None


@dataclass(frozen=True)
class BotIdentity:
    """A bot the sandbox hosts."""

    token: str
    username: str
    first_name: str

    @property
    def id(self) -> int:
        """Return the bot's user id (the number before the colon of the token)."""
        head = self.token.split(":", 1)[0]
        return int(head) if head.isdigit() else abs(hash(head)) % 10**9

    def to_api(self) -> JsonDict:
        """Return the bot as a User object."""
        return {
            "id": self.id,
            "is_bot": True,
            "first_name": self.first_name,
            "username": self.username,
        }


class BotState:
    """Everything the sandbox keeps for one bot token."""

    updates: UpdateQueue

    def __init__(self, identity: BotIdentity, limits: Limits, clock: TimeSource) -> None:
        self.identity = identity
        self.flood = FloodControl(limits, clock)
        self.reset()

    def reset(self) -> None:
        """Forget messages, updates, webhook, files, commands and counters."""
        self.logs: dict[int, ChatLog] = {}
        if hasattr(self, "updates"):
            self.updates.closed = True
            self.updates.changed.notify()
        self.updates = UpdateQueue()
        self.webhook: WebhookState | None = None
        self.webhook_changed = Notifier()
        self.files = FileStore(self.identity.id)
        self.commands: dict[str, list[JsonDict]] = {}
        self.texts: dict[str, str] = {}
        self.callbacks: dict[str, CallbackRecord] = {}
        self.callback_by_update: dict[int, str] = {}
        self.counters = Counters()
        self.flood.configure(self.flood.limits)

    def log(self, chat: Chat) -> ChatLog:
        """Return (creating it) the log of a chat."""
        log = self.logs.get(chat.id)
        if log is None:
            log = self.logs[chat.id] = ChatLog(chat)
        return log


class World:
    """Users, chats and personas, shared by every bot."""

    def __init__(self) -> None:
        self.users: dict[int, User] = {}
        self.chats: dict[int, Chat] = {}
        self.personas: list[Persona] = []
        self.next_user_id = 100000001
        self.next_group_id = -100001

    def add_user(self, user: User) -> User:
        """Add or replace a user and its private chat."""
        self.users[user.id] = user
        self.chats[user.id] = Chat(user.id, "private", user=user, members=[user.id])
        self.next_user_id = max(self.next_user_id, user.id + 1)
        return user

    def new_user_id(self) -> int:
        """Return a user id not taken yet."""
        while self.next_user_id in self.users:
            self.next_user_id += 1
        return self.next_user_id

    def add_group(self, chat: Chat) -> Chat:
        """Add or replace a group."""
        self.chats[chat.id] = chat
        return chat

    def new_group_id(self, supergroup: bool) -> int:
        """Return a group id not taken yet (supergroups start with -100)."""
        while True:
            self.next_group_id -= 1
            candidate = int(f"-100{-self.next_group_id}") if supergroup else self.next_group_id
            if candidate not in self.chats:
                return candidate
