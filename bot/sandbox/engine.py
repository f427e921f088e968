"""The simulated Telegram without HTTP: bots, users, chats, user actions, limits, faults."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable, Mapping
from typing import Any

from bot.sandbox.entities import command_entities
from bot.sandbox.errors import JsonDict, bad_request, not_found
from bot.sandbox.events import EventHub
from bot.sandbox.faults import FaultInjector, FaultRule, Faults
from bot.sandbox.files import StoredFile
from bot.sandbox.limits import Limits, TimeSource
from bot.sandbox.markup import Markup
from bot.sandbox.state import (
    BotIdentity,
    BotState,
    CallbackRecord,
    Chat,
    ChatLog,
    Persona,
    StoredMessage,
    User,
    World,
)

MAX_TEXT = 4096
MAX_CAPTION = 1024
FILES_PREFIX = "/sandbox/api/files/"


class Sandbox:
    """The state of the simulated Telegram and the actions users take in it."""

    def __init__(
        self,
        *,
        limits: Limits | None = None,
        faults: Faults | None = None,
        clock: TimeSource = time.monotonic,
        wall: TimeSource = time.time,
    ) -> None:
        self.world = World()
        self.bots: dict[str, BotState] = {}
        self.limits = limits or Limits()
        self.injector = FaultInjector(faults or Faults())
        self.hub = EventHub()
        self.clock = clock
        self.wall = wall

    # bots -----------------------------------------------------------------

    def add_bot(self, token: str, username: str, first_name: str) -> BotState:
        """Host a bot token (its state is kept apart from other bots)."""
        state = BotState(
            BotIdentity(token, username.lstrip("@"), first_name), self.limits, self.clock
        )
        self.bots[token] = state
        return state

    def bot(self, key: str | None = None) -> BotState:
        """Return a bot by token or username; the first bot when `key` is None."""
        if key is None:
            return next(iter(self.bots.values()))
        if key in self.bots:
            return self.bots[key]
        for state in self.bots.values():
            if state.identity.username.lower() == key.lstrip("@").lower():
                return state
        raise not_found(f"no bot {key!r}")

    def now(self) -> int:
        """Return the current Unix time in seconds, for message dates."""
        return int(self.wall())

    # world ----------------------------------------------------------------

    def create_user(
        self,
        first_name: str,
        *,
        user_id: int | None = None,
        last_name: str | None = None,
        username: str | None = None,
        language_code: str | None = "vi",
    ) -> User:
        """Create (or replace) a user and its private chat."""
        if not first_name.strip():
            raise bad_request("first_name is empty")
        user_id = user_id if user_id is not None else self.world.new_user_id()
        if user_id <= 0:
            raise bad_request("user id must be positive")
        user = User(user_id, first_name.strip(), last_name, username, language_code)
        return self.world.add_user(user)

    def create_group(
        self,
        title: str,
        member_ids: Iterable[int] = (),
        *,
        chat_id: int | None = None,
        supergroup: bool = False,
    ) -> Chat:
        """Create (or replace) a group chat with some users as members."""
        members = list(member_ids)
        for member in members:
            self.user(member)
        chat_id = chat_id if chat_id is not None else self.world.new_group_id(supergroup)
        if chat_id >= 0:
            raise bad_request("group ids must be negative")
        kind = "supergroup" if supergroup else "group"
        return self.world.add_group(Chat(chat_id, kind, title=title, members=members))

    def user(self, user_id: int) -> User:
        """Return a user or raise 404."""
        user = self.world.users.get(user_id)
        if user is None:
            raise not_found(f"no user {user_id}")
        return user

    def chat(self, chat_id: int) -> Chat:
        """Return a chat or raise 404."""
        chat = self.world.chats.get(chat_id)
        if chat is None:
            raise not_found(f"no chat {chat_id}")
        return chat

    def set_personas(self, personas: Iterable[Persona | Mapping[str, Any]]) -> list[Persona]:
        """Set the page's personas, creating their users when missing."""
        loaded = [Persona.from_json(item) for item in personas]
        for persona in loaded:
            if persona.user_id not in self.world.users:
                self.create_user(
                    persona.first_name or persona.label,
                    user_id=persona.user_id,
                    last_name=persona.last_name,
                    username=persona.username,
                    language_code=persona.language_code,
                )
        self.world.personas = loaded
        return loaded

    # user actions ---------------------------------------------------------

    def _sender(self, chat: Chat, from_id: int | None) -> User:
        """Return the user acting in a chat (the chat's user in private chats)."""
        if chat.user is not None:
            if from_id is not None and from_id != chat.user.id:
                raise bad_request("in a private chat only its user can write")
            return chat.user
        if from_id is None:
            raise bad_request("from_id is needed in a group")
        user = self.user(from_id)
        if from_id not in chat.members:
            chat.members.append(from_id)
        return user

    def _user_message(self, bot: BotState, chat: Chat, user: User, **content: Any) -> StoredMessage:
        """Store a message a user sent and return it."""
        log = bot.log(chat)
        message = StoredMessage(log.new_id(), chat, user.to_api(), False, self.now(), **content)
        if log.reply_keyboard and log.reply_keyboard.get("one_time_keyboard"):
            log.reply_keyboard = None
        self.touch(bot, log, message, "message")
        return message

    def send_text(
        self, chat_id: int, text: str, *, from_id: int | None = None, bot: str | None = None
    ) -> int:
        """Send text as a user; /commands become bot_command entities. Return the update id."""
        state, chat = self.bot(bot), self.chat(chat_id)
        if not text.strip():
            raise bad_request("message text is empty")
        if len(text) > MAX_TEXT:
            raise bad_request("message is too long")
        user = self._sender(chat, from_id)
        message = self._user_message(state, chat, user, text=text, entities=command_entities(text))
        return state.updates.push("message", message.to_api())

    def send_document(
        self,
        chat_id: int,
        data: bytes,
        file_name: str,
        *,
        mime_type: str | None = None,
        caption: str | None = None,
        from_id: int | None = None,
        bot: str | None = None,
    ) -> int:
        """Send a document as a user. Return the update id."""
        state, chat = self.bot(bot), self.chat(chat_id)
        if not data:
            raise bad_request("file must be non-empty")
        if caption is not None and len(caption) > MAX_CAPTION:
            raise bad_request("message caption is too long")
        user = self._sender(chat, from_id)
        stored = state.files.add("document", file_name or "file", mime_type, data)
        message = self._user_message(state, chat, user, file=stored, caption=caption or None)
        return state.updates.push("message", message.to_api())

    def press_button(
        self,
        chat_id: int,
        message_id: int,
        data: str,
        *,
        from_id: int | None = None,
        bot: str | None = None,
    ) -> int:
        """Press an inline button of a bot message. Return the update id."""
        state, chat = self.bot(bot), self.chat(chat_id)
        message = state.log(chat).live(message_id)
        if message is None or not message.from_bot:
            raise not_found(f"no bot message {message_id} in chat {chat_id}")
        if not _has_button(message.reply_markup, data):
            raise bad_request(f"message {message_id} has no button with callback_data {data!r}")
        user = self._sender(chat, from_id)
        query_id = f"{state.identity.id}{state.updates.next_id:010d}"
        payload = {
            "id": query_id,
            "from": user.to_api(),
            "message": message.to_api(),
            "chat_instance": str(abs(hash((state.identity.id, chat.id))) % 10**18),
            "data": data,
        }
        update_id = state.updates.push("callback_query", payload)
        record = CallbackRecord(query_id, update_id, chat.id, message_id, user.id, data)
        state.callbacks[query_id] = record
        state.callback_by_update[update_id] = query_id
        return update_id

    def callback_answer(self, key: int | str, bot: str | None = None) -> CallbackRecord | None:
        """Return a button press record by update id or callback query id."""
        state = self.bot(bot)
        query_id = state.callback_by_update.get(key) if isinstance(key, int) else key
        return state.callbacks.get(query_id) if query_id is not None else None

    # bot side -------------------------------------------------------------

    def post_bot_message(
        self, bot: BotState, chat: Chat, markup: Markup, **content: Any
    ) -> StoredMessage:
        """Store a message the bot sent and count it."""
        log = bot.log(chat)
        message = StoredMessage(
            log.new_id(),
            chat,
            bot.identity.to_api(),
            True,
            self.now(),
            reply_markup=markup.inline,
            **content,
        )
        if markup.keyboard is not None:
            log.reply_keyboard = markup.keyboard
        elif markup.remove_keyboard:
            log.reply_keyboard = None
        bot.counters.accepted(chat.id)
        self.touch(bot, log, message, "message")
        return message

    def touch(self, bot: BotState, log: ChatLog, message: StoredMessage, kind: str) -> None:
        """Record a new, edited or deleted message and tell the page."""
        log.touch(message)
        event = {
            "type": kind,
            "chat_id": log.chat.id,
            "message": self.message_view(message),
            "reply_keyboard": log.reply_keyboard,
        }
        self.hub.publish((bot.identity.id, log.chat.id), event)

    def answered(self, bot: BotState, record: CallbackRecord) -> None:
        """Tell the page that the bot answered a button press."""
        event = {"type": "callback_answer", "chat_id": record.chat_id, "callback": record.to_json()}
        self.hub.publish((bot.identity.id, record.chat_id), event)

    # reading --------------------------------------------------------------

    def message_view(self, message: StoredMessage) -> JsonDict:
        """Return a message for the user API: the Message object plus sandbox fields."""
        data = message.to_api()
        data["sender"] = "bot" if message.from_bot else "user"
        data["deleted"] = message.deleted
        data["version"] = message.version
        if message.file is not None:
            data["file_url"] = FILES_PREFIX + message.file.file_id
        return data

    def messages(self, chat_id: int, bot: str | None = None, since: int = 0) -> list[JsonDict]:
        """Return the messages of a chat (both directions, deleted ones marked)."""
        log = self.bot(bot).log(self.chat(chat_id))
        return [self.message_view(message) for message in log.since(since)]

    def chat_view(self, chat_id: int, bot: str | None = None) -> JsonDict:
        """Return a chat with the reply keyboard currently shown in it."""
        log = self.bot(bot).log(self.chat(chat_id))
        return {**log.chat.to_json(), "reply_keyboard": log.reply_keyboard, "version": log.version}

    async def wait_for_messages(
        self, chat_id: int, count: int, *, seconds: float = 5.0, bot: str | None = None
    ) -> list[JsonDict]:
        """Wait until a chat has `count` bot messages; return them (raise TimeoutError)."""
        log = self.bot(bot).log(self.chat(chat_id))
        async with asyncio.timeout(seconds):
            while len(found := [m for m in log.since(0) if m.from_bot]) < count:
                await log.changed.wait(None)
        return [self.message_view(message) for message in found]

    def find_file(self, file_id: str) -> StoredFile | None:
        """Return a file known to any bot."""
        for state in self.bots.values():
            stored = state.files.get(file_id)
            if stored is not None:
                return stored
        return None

    # control --------------------------------------------------------------

    def set_limits(self, limits: Limits) -> None:
        """Apply new flood limits to every bot (buckets start full)."""
        self.limits = limits
        for state in self.bots.values():
            state.flood.configure(limits)

    def set_faults(self, faults: Faults) -> None:
        """Apply new faults (the random sequence restarts from their seed)."""
        self.injector.configure(faults)

    def set_chat_faults(self, chat_id: int, rule: FaultRule | None) -> None:
        """Set or clear the fault rule of one chat."""
        self.injector.set_chat(chat_id, rule)

    def reset(self) -> None:
        """Forget users, chats, messages, updates, webhooks and counters; keep bots and personas."""
        personas = self.world.personas
        self.world = World()
        self.set_personas(personas)
        for state in self.bots.values():
            state.reset()
        self.injector.configure(self.injector.faults)

    def close(self) -> None:
        """Wake long polls and end streams before shutdown."""
        for state in self.bots.values():
            state.updates.closed = True
            state.updates.changed.notify()
        self.hub.close()


def _has_button(markup: JsonDict | None, data: str) -> bool:
    """Tell whether an inline keyboard has a button with this callback data."""
    rows = (markup or {}).get("inline_keyboard", [])
    return any(button.get("callback_data") == data for row in rows for button in row)
