"""ZaloSandbox's model: the bot, the Official Account, users, chats, personas, user actions."""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Iterable, Mapping
from dataclasses import replace
from typing import Any

from bot.sandbox.errors import JsonDict, not_found
from bot.sandbox.faults import FaultInjector, FaultRule, Faults
from bot.sandbox.limits import Limits, TimeSource
from bot.sandbox.zalo.errors import bad_request
from bot.sandbox.zalo.world import (
    FIRST_USER_ID,
    GROUP,
    PRIVATE,
    Conversation,
    Follower,
    OaSettings,
    OfficialAccount,
    ZaloBot,
    ZaloChat,
    ZaloMessage,
    ZaloPersona,
    ZaloUser,
    flood_key,
)

DEFAULT_ZALO_TOKEN = "1234567890123456789:SANDBOX-ZALO-TOKEN-00000000"
DEFAULT_ZALO_NAME = "ReformBot Zalo Sandbox"
# Zalo publishes no flood figures for the Bot API; the sandbox's choice: 20 sends a second per
# bot (burst 20), 1 a second per chat (burst 3), 20 a minute per group.
ZALO_LIMITS = Limits(global_rate=20.0, global_burst=20, chat_rate=1.0, chat_burst=3)
MAX_TEXT = 2000
TYPING_SECONDS = 5.0
TEXT_EVENT = "message.text.received"
# what a Zalo user may send besides text (the Bot API's event names); the bot gets no text
OTHER_EVENTS = {
    "image": "message.image.received",
    "sticker": "message.sticker.received",
    "unsupported": "message.unsupported.received",
}


class ZaloSandbox:
    """The simulated Zalo: one Bot API bot and one Official Account, with their users."""

    def __init__(
        self,
        token: str = DEFAULT_ZALO_TOKEN,
        name: str = DEFAULT_ZALO_NAME,
        *,
        limits: Limits | None = None,
        faults: Faults | None = None,
        oa: OaSettings | None = None,
        clock: TimeSource = time.monotonic,
        wall: TimeSource = time.time,
        soft_faults: bool = False,
        wrap_webhook: bool = True,
    ) -> None:
        self.limits = limits or ZALO_LIMITS
        self.injector = FaultInjector(faults or Faults())
        self.clock, self.wall = clock, wall
        self.soft_faults, self.wrap_webhook = soft_faults, wrap_webhook
        self.bot = ZaloBot(token, name, self.limits, clock)
        self.oa = OfficialAccount(oa or OaSettings(), self.limits, clock)
        self.personas: list[ZaloPersona] = []
        self._clear()

    def _clear(self) -> None:
        """Start with no users, chats or messages."""
        self.users: dict[str, ZaloUser] = {}
        self.chats: dict[str, ZaloChat] = {}
        self.chat_logs: dict[str, Conversation] = {}
        self.oa_logs: dict[str, Conversation] = {}
        self._user_ids = itertools.count(FIRST_USER_ID)
        self._message_ids = itertools.count(1)

    # time -----------------------------------------------------------------

    def now_ms(self) -> int:
        """Return the wall time in milliseconds (message dates, OA timestamps)."""
        return int(self.wall() * 1000)

    def new_message_id(self) -> str:
        """Return a fresh message id (a string, like Zalo's)."""
        return f"{next(self._message_ids):020x}"

    # world ----------------------------------------------------------------

    def create_user(self, display_name: str, *, user_id: str | None = None) -> ZaloUser:
        """Create a user and its private chat with the bot (chat id = user id)."""
        if user_id is None:
            user_id = str(next(self._user_ids))
            while user_id in self.users or user_id in self.chats:
                user_id = str(next(self._user_ids))
        if not user_id or not display_name.strip():
            raise bad_request("a user needs an id and a display name")
        user = self.users.get(user_id) or ZaloUser(user_id, display_name.strip())
        self.users[user_id] = user
        self.chats.setdefault(user_id, ZaloChat(user_id, PRIVATE))
        return user

    def create_group(
        self, title: str, member_ids: Iterable[str], *, chat_id: str | None = None
    ) -> ZaloChat:
        """Create a group chat with the bot and some users."""
        members = [self.user(member).id for member in member_ids]
        chat_id = chat_id or f"g{next(self._user_ids)}"
        chat = ZaloChat(chat_id, GROUP, title, members)
        self.chats[chat_id] = chat
        return chat

    def user(self, user_id: str) -> ZaloUser:
        """Return a user (404 when unknown)."""
        user = self.users.get(user_id)
        if user is None:
            raise not_found(f"no Zalo user {user_id}")
        return user

    def chat(self, chat_id: str) -> ZaloChat:
        """Return a chat (404 when unknown)."""
        chat = self.chats.get(chat_id)
        if chat is None:
            raise not_found(f"no Zalo chat {chat_id}")
        return chat

    def chat_log(self, chat_id: str) -> Conversation:
        """Return (creating it) the conversation of a Bot API chat."""
        return self.chat_logs.setdefault(self.chat(chat_id).id, Conversation())

    def oa_log(self, user_id: str) -> Conversation:
        """Return (creating it) the conversation of the OA with a user."""
        return self.oa_logs.setdefault(self.user(user_id).id, Conversation())

    def set_personas(
        self, personas: Iterable[ZaloPersona | Mapping[str, Any]]
    ) -> list[ZaloPersona]:
        """Set the page's Zalo personas, creating their users (OA personas follow the OA)."""
        loaded = [ZaloPersona.from_json(item) for item in personas]
        for persona in loaded:
            self.create_user(persona.display_name or persona.label, user_id=persona.user_id)
            if persona.surface == "oa" and persona.user_id not in self.oa.followers:
                self.oa.followers[persona.user_id] = Follower(persona.user_id, True, self.wall())
        self.personas = loaded
        return loaded

    # Bot API: user side ---------------------------------------------------

    def send_text(self, chat_id: str, text: str, *, from_id: str | None = None) -> JsonDict:
        """Send text to the bot as a user; queue the update and return it."""
        chat = self.chat(chat_id)
        if not text.strip():
            raise bad_request("text must not be empty")
        sender = self.user(from_id or (chat.id if chat.chat_type == PRIVATE else ""))
        if chat.chat_type == GROUP and sender.id not in chat.members:
            raise bad_request(f"user {sender.id} is not a member of chat {chat.id}")
        message = ZaloMessage(self.new_message_id(), False, sender.id, self.now_ms(), text=text)
        self.chat_log(chat.id).add(message)
        update: JsonDict = {
            "message": {
                "from": sender.to_api(),
                "chat": chat.to_api(),
                "text": text,
                "message_id": message.message_id,
                "date": message.date,
            },
            "event_name": TEXT_EVENT,
        }
        self.bot.updates.push(update)
        return update

    def send_other(
        self, chat_id: str, kind: str, *, from_id: str | None = None, **content: str
    ) -> JsonDict:
        """Send an image, a sticker or an unsupported message to the bot (no text in it)."""
        if kind not in OTHER_EVENTS:
            raise bad_request(f"kind must be one of {', '.join(OTHER_EVENTS)}")
        chat = self.chat(chat_id)
        sender = self.user(from_id or (chat.id if chat.chat_type == PRIVATE else ""))
        if chat.chat_type == GROUP and sender.id not in chat.members:
            raise bad_request(f"user {sender.id} is not a member of chat {chat.id}")
        message = ZaloMessage(
            self.new_message_id(),
            False,
            sender.id,
            self.now_ms(),
            photo=content.get("photo") or None,
            caption=content.get("caption") or None,
        )
        self.chat_log(chat.id).add(message)
        body: JsonDict = {
            "from": sender.to_api(),
            "chat": chat.to_api(),
            "message_id": message.message_id,
            "date": message.date,
        }
        body.update(
            {k: v for k, v in content.items() if k in ("photo", "caption", "sticker") and v}
        )
        update: JsonDict = {"message": body, "event_name": OTHER_EVENTS[kind]}
        self.bot.updates.push(update)
        return update

    # Bot API: bot side ----------------------------------------------------

    def post_bot_message(self, chat_id: str, **content: Any) -> ZaloMessage:
        """Store a message the bot sent and stop its typing indicator."""
        log = self.chat_log(chat_id)
        log.typing_until = 0.0
        message = ZaloMessage(self.new_message_id(), True, self.bot.id, self.now_ms(), **content)
        return log.add(message)

    def set_typing(self, log: Conversation) -> None:
        """Show the typing indicator for a few seconds."""
        log.typing_until = self.clock() + TYPING_SECONDS
        log.changed.notify()

    def typing(self, log: Conversation) -> bool:
        """Tell whether the typing indicator is on."""
        return log.typing_until > self.clock()

    # Official Account: user side ------------------------------------------

    def _event(self, name: str, user_id: str, **extra: Any) -> JsonDict:
        """Build an OA webhook event (timestamp in ms, as a string) and queue it."""
        settings = self.oa.settings
        event: JsonDict = {
            "app_id": settings.app_id,
            "user_id_by_app": user_id,
            "event_name": name,
            "timestamp": str(self.now_ms()),
            **extra,
        }
        self.oa.events.push(event)
        return event

    def _touch(self, user_id: str, **changes: Any) -> Follower:
        """Record a user's interaction with the OA."""
        follower = self.oa.followers.get(user_id) or Follower(user_id, False)
        follower = replace(follower, last_interaction=self.wall(), **changes)
        self.oa.followers[user_id] = follower
        return follower

    def oa_send_text(self, user_id: str, text: str) -> JsonDict:
        """Send text to the OA as a user; queue the user_send_text event and return it."""
        user = self.user(user_id)
        if not text.strip():
            raise bad_request("text must not be empty")
        self._touch(user.id)
        message = ZaloMessage(self.new_message_id(), False, user.id, self.now_ms(), text=text)
        self.oa_log(user.id).add(message)
        return self._event(
            "user_send_text",
            user.id,
            sender={"id": user.id},
            recipient={"id": self.oa.settings.oa_id},
            message={"text": text, "msg_id": message.message_id},
        )

    def oa_follow(self, user_id: str, follow: bool = True) -> JsonDict:
        """Follow (or unfollow) the OA as a user; queue the event and return it."""
        user = self.user(user_id)
        if follow:
            self._touch(user.id, followed=True, unfollowed=False)
        else:
            self.oa.followers[user.id] = replace(
                self.oa.followers.get(user.id) or Follower(user.id),
                followed=False,
                unfollowed=True,
            )
        return self._event(
            "follow" if follow else "unfollow",
            user.id,
            oa_id=self.oa.settings.oa_id,
            follower={"id": user.id},
            source="oa_profile",
        )

    def set_last_interaction(self, user_id: str, when_ms: int) -> Follower:
        """Move a user's last interaction (to test the messaging window)."""
        follower = self.oa.followers.get(self.user(user_id).id)
        if follower is None:
            raise not_found(f"user {user_id} never interacted with the OA")
        follower.last_interaction = when_ms / 1000
        return follower

    def expire_access_tokens(self) -> int:
        """End every access token now; return how many there were."""
        count = len(self.oa.access)
        now = self.wall()
        self.oa.access = dict.fromkeys(self.oa.access, now)
        return count

    # reading, for tests -----------------------------------------------------

    def messages(self, chat_id: str, *, surface: str = "bot") -> list[JsonDict]:
        """Return a conversation's messages (both directions) as the page shows them."""
        log = self.oa_log(chat_id) if surface == "oa" else self.chat_log(chat_id)
        return [message.view() for message in log.messages]

    async def wait_for_messages(
        self, chat_id: str, count: int, *, surface: str = "bot", seconds: float = 5.0
    ) -> list[JsonDict]:
        """Wait until the bot (or the OA) has sent `count` messages to a chat; return them."""
        log = self.oa_log(chat_id) if surface == "oa" else self.chat_log(chat_id)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + seconds
        while len(sent := [m.view() for m in log.messages if m.from_bot]) < count:
            remaining = deadline - loop.time()
            if remaining <= 0 or not await log.changed.wait(remaining):
                raise TimeoutError(f"{len(sent)} of {count} messages came to {chat_id}")
        return sent

    # settings -------------------------------------------------------------

    def set_limits(self, limits: Limits) -> None:
        """Change the flood limits (buckets start full)."""
        self.limits = limits
        self.bot.flood.configure(limits)
        self.oa.flood.configure(limits)

    def set_faults(self, faults: Faults) -> None:
        """Change the faults (the random sequence restarts from the seed)."""
        self.injector.configure(faults)

    def set_chat_faults(self, chat_id: str, rule: FaultRule | None) -> None:
        """Set or clear the fault rule of one chat (or OA user)."""
        self.injector.set_chat(flood_key(chat_id), rule)

    def reset(self) -> None:
        """Forget users, chats, messages, updates, events, webhooks, tokens and counters."""
        personas = self.personas
        self._clear()
        bot, oa = self.bot, self.oa
        bot.updates.items.clear()
        bot.webhook = None
        bot.counters = type(bot.counters)()
        bot.flood.configure(self.limits)
        oa.events.items.clear()
        oa.followers.clear()
        oa.access.clear()
        oa.refresh.clear()
        oa.counters = type(oa.counters)()
        oa.flood.configure(self.limits)
        bot.updates.changed.notify()
        oa.events.changed.notify()
        self.set_personas(personas)

    def close(self) -> None:
        """End long polls (on shutdown)."""
        self.bot.updates.closed = True
        self.bot.updates.changed.notify()
