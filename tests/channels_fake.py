"""A second channel for tests: implements the channel contract in memory, answers from a script."""

from __future__ import annotations

import functools
import itertools
from collections import defaultdict, deque
from collections.abc import Callable, Collection
from dataclasses import dataclass, replace
from datetime import datetime
from zoneinfo import ZoneInfo

from bot.channels.contract import STALE_FILE, Limits, Outcome, Part, Progress, send_parts
from bot.channels.render import plain, render, split_text
from bot.messages import OutboundMessage, StoredFile

TZ = ZoneInfo("Asia/Ho_Chi_Minh")
FAKE_LIMITS = Limits(overall=50.0, per_chat=5.0, per_group=1.0, text_max=2000, caption_max=500)


@dataclass(frozen=True)
class Delivered:
    """What the fake channel's user saw: the chat, the text, the file (name, id), when."""

    chat_id: str
    text: str
    message_id: str
    at: datetime | None
    file_name: str | None = None
    file_id: str | None = None


class FakeChannel:
    """A chat platform in memory: what it delivered, and scripted answers per chat and method."""

    def __init__(
        self,
        name: str = "fake",
        limits: Limits = FAKE_LIMITS,
        now: Callable[[], datetime] | None = None,
    ) -> None:
        self.name, self.limits, self.now = name, limits, now
        self.delivered: list[Delivered] = []
        self.edits: list[tuple[str, str, str]] = []
        self.answered: list[str] = []
        self.calls: list[tuple[str, str]] = []
        self.files: dict[str, bytes] = {}
        self.uploads = 0
        self.opened = self.closed = 0
        self.claims: list[set[str]] = []
        self._script: dict[tuple[str, str], deque[Outcome | None]] = defaultdict(deque)
        self._ids = itertools.count(1)

    def script(self, chat_id: str, *outcomes: Outcome | None, method: str = "send") -> None:
        """Answer the next calls of `method` to a chat with these outcomes (then normally).

        Each part of a message sent in parts is one call; None answers a call normally.
        """
        self._script[method, chat_id].extend(outcomes)

    def texts(self, chat_id: str) -> list[str]:
        """Return the texts a chat received, in order."""
        return [d.text for d in self.delivered if d.chat_id == chat_id]

    async def open(self) -> None:
        """Count an open."""
        self.opened += 1

    async def close(self) -> None:
        """Count a close."""
        self.closed += 1

    async def claimed(self, chat_ids: Collection[str]) -> None:
        """Remember the chats of each claimed batch."""
        self.claims.append(set(chat_ids))

    def _scripted(self, method: str, chat_id: str) -> Outcome | None:
        """Record the call; return its scripted outcome when there is one."""
        self.calls.append((method, chat_id))
        queue = self._script.get((method, chat_id))
        return queue.popleft() if queue else None

    def _deliver(self, chat_id: str, text: str, **file: str | None) -> str:
        """Keep what the user saw; return its message id."""
        message_id = f"m{next(self._ids)}"
        at = self.now() if self.now else None
        self.delivered.append(Delivered(chat_id, text, message_id, at, **file))
        return message_id

    def text(self, message: OutboundMessage, locale: str) -> str:
        """Render a message as plain text (this channel has no markup)."""
        return render(message, locale, escape=plain, tz=TZ)

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
        """Deliver a text in parts of at most text_max, unless the script says otherwise."""
        parts = self._text_parts(chat_id, self.text(message, locale))
        return await send_parts(parts, first=first, progress=progress)

    def _text_parts(self, chat_id: str, text: str) -> list[Part]:
        """Return one call per part of a text."""
        return [
            functools.partial(self._send_part, chat_id, part)
            for part in split_text(text, self.limits.text_max)
        ]

    async def _send_part(self, chat_id: str, text: str) -> Outcome:
        """Deliver one part, unless the script says otherwise."""
        scripted = self._scripted("send", chat_id)
        if scripted is not None:
            return scripted
        return Outcome.sent(self._deliver(chat_id, text))

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
        """Deliver a file by its id (stale ids fail) or its bytes (a new id is issued).

        The text is its caption when it fits caption_max, else it follows in parts of its own.
        """
        text = self.text(message, locale)
        fits = len(text) <= self.limits.caption_max
        uploaded: list[str] = []

        async def upload() -> Outcome:
            outcome = await self._file(chat_id, file, text if fits else "")
            if outcome.file_id and outcome.file_id != file.file_id:
                uploaded.append(outcome.file_id)
            return outcome

        parts: list[Part] = [upload, *([] if fits else self._text_parts(chat_id, text))]
        outcome = await send_parts(parts, first=first, progress=progress)
        file_id = uploaded[0] if uploaded else (file.file_id if outcome.ok else None)
        return replace(outcome, file_id=file_id)

    async def _file(self, chat_id: str, file: StoredFile, caption: str) -> Outcome:
        """Deliver the file itself."""
        scripted = self._scripted("send_file", chat_id)
        if scripted is not None:
            return scripted
        if file.file_id is not None:
            if file.file_id not in self.files:
                return Outcome.failed("unknown file id", code=STALE_FILE)
            file_id = file.file_id
        else:
            self.uploads += 1
            file_id = f"fake-file-{self.uploads}"
            self.files[file_id] = file.data or b""
        message_id = self._deliver(chat_id, caption, file_name=file.name, file_id=file_id)
        return Outcome.sent(message_id, file_id)

    async def edit(
        self,
        chat_id: str,
        message_id: str,
        message: OutboundMessage,
        locale: str,
        *,
        caption: bool = False,
    ) -> Outcome:
        """Record an edit, unless the script says otherwise."""
        scripted = self._scripted("edit", chat_id)
        if scripted is not None:
            return scripted
        self.edits.append((chat_id, message_id, self.text(message, locale)))
        return Outcome.sent(message_id)

    async def answer(self, press_id: str) -> Outcome:
        """Record a button press answered."""
        scripted = self._scripted("answer", press_id)
        if scripted is not None:
            return scripted
        self.answered.append(press_id)
        return Outcome.sent(None)
