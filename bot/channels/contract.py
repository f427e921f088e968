"""The channel contract: what every adapter offers, and the neutral outcomes it answers with.

jobs/ and bot/services reach a channel only through this module; an adapter (bot/channels/<name>.py)
implements `Channel` and never raises for what the platform answered: it returns an `Outcome`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Collection, Sequence
from dataclasses import dataclass
from typing import Literal, Protocol

from bot.messages import OutboundMessage, StoredFile

Kind = Literal["sent", "retry", "flood", "failed", "blocked"]
Scope = Literal["chat", "bot"]
STALE_FILE = "stale_file"  # the platform no longer knows a file id: upload the bytes again
NOT_MODIFIED = "not_modified"  # an edit that changed nothing (the message already says it)
PACED = "paced"  # a message in parts stopped between two parts: the next waits for its own slot
# told how many parts of a message are out so far; answering False stops the send there (PACED)
Progress = Callable[[int], Awaitable[bool | None]]


@dataclass(frozen=True)
class Outcome:
    """What one call to a channel gave.

    sent: `message_id` (and `file_id` for a file); retry: try again after `delay` seconds (code
    PACED: a send in parts stopped between two parts, to be resumed when its pacing allows);
    flood: the platform's rate limit for `scope` ("chat" or the whole "bot"), wait `delay`;
    blocked: the person blocked the bot; failed: never to be retried, `error` says why and
    `code` says it to machines (e.g. STALE_FILE). `attempted` is False when nothing was sent.
    `parts`: how many parts of a message sent in parts (a long text, a file and then its text)
    are out, counting those a resumed send skipped; on a failure, the parts before it.
    """

    kind: Kind
    message_id: str | None = None
    error: str = ""
    delay: float = 0.0
    attempted: bool = True
    file_id: str | None = None
    scope: Scope = "chat"
    code: str = ""
    parts: int = 0

    @classmethod
    def sent(cls, message_id: str | None, file_id: str | None = None, code: str = "") -> Outcome:
        """Return a delivery."""
        return cls("sent", message_id, file_id=file_id, code=code)

    @classmethod
    def retry(cls, error: str, delay: float = 0.0) -> Outcome:
        """Return a passing fault (network, server error): try again later."""
        return cls("retry", error=error, delay=delay)

    @classmethod
    def flood(cls, delay: float, scope: Scope = "chat", error: str = "") -> Outcome:
        """Return a rate-limit answer: nothing more to `scope` for `delay` seconds."""
        reason = error or f"flood control: retry after {delay:g} s"
        return cls("flood", error=reason, delay=delay, scope=scope)

    @classmethod
    def paced(cls, parts: int) -> Outcome:
        """Return a send in parts stopped after `parts` parts: resume there when paced."""
        return cls(
            "retry", error=f"paced: part {parts + 1} waits for its slot", code=PACED, parts=parts
        )

    @classmethod
    def blocked(cls, error: str = "blocked") -> Outcome:
        """Return that the recipient blocked the bot (or it may not write to the group)."""
        return cls("blocked", error=error)

    @classmethod
    def failed(cls, error: str, code: str = "") -> Outcome:
        """Return a permanent failure with its reason."""
        return cls("failed", error=error, code=code)

    def with_parts(self, parts: int) -> Outcome:
        """Return this outcome saying `parts` parts are out (a copy; cheaper than replace)."""
        if parts == self.parts:
            return self
        return Outcome(
            self.kind,
            self.message_id,
            self.error,
            self.delay,
            self.attempted,
            self.file_id,
            self.scope,
            self.code,
            parts,
        )

    @property
    def ok(self) -> bool:
        """Tell whether the call reached the person."""
        return self.kind == "sent"


Part = Callable[[], Awaitable[Outcome]]  # one call of a message sent in parts


async def send_parts(
    parts: Sequence[Part], *, first: int = 0, progress: Progress | None = None
) -> Outcome:
    """Send a message's parts in order from part `first`; stop at the first that fails.

    After each part but the last, `progress` is told how many are out, so that a retry (or a
    process that takes over after a crash) resumes after them; it may wait there for the next
    part's pacing slot, or answer False to stop (a PACED outcome: the caller sends the rest later,
    from `parts`). A `first` past the end (the text was split differently this time) sends the
    last part again rather than nothing.
    """
    if not parts:
        return Outcome.sent(None)
    outcome = Outcome.sent(None)
    start = max(0, min(first, len(parts) - 1))
    for i in range(start, len(parts)):
        outcome = await parts[i]()
        if not outcome.ok:
            return outcome.with_parts(i)
        if progress is not None and i + 1 < len(parts) and await progress(i + 1) is False:
            return Outcome.paced(i + 1)
    return outcome.with_parts(len(parts))


@dataclass(frozen=True)
class Limits:
    """A channel's rates (messages per second) and sizes; `paid` is None where there is none."""

    overall: float
    per_chat: float
    per_group: float
    paid: float | None = None
    text_max: int = 4096
    caption_max: int = 1024


class Channel(Protocol):
    """A chat platform, as the dispatcher and the reply path see it."""

    @property
    def name(self) -> str:
        """Return the channel's name as rows and contacts store it ('telegram', 'zalo')."""
        ...

    @property
    def limits(self) -> Limits:
        """Return the rates and sizes the platform allows."""
        ...

    async def open(self) -> None:
        """Get ready to send (connections); safe to call again."""
        ...

    async def close(self) -> None:
        """Release what `open` took."""
        ...

    async def claimed(self, chat_ids: Collection[str]) -> None:
        """Hear which chats a batch the dispatcher claimed is for (to read their state at once)."""
        ...

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
        """Send a message (in parts where it is too long) from part `first` (see send_parts).

        sent carries the last message's id; every outcome carries the parts out (`parts`).
        """
        ...

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
        """Send a file (by the channel's id, else its bytes) with the message; sent has file_id.

        A text too long for a caption follows the file as parts of its own (the file is part 0);
        an outcome after a new upload carries its file_id even when a later part failed.
        """
        ...

    async def edit(
        self,
        chat_id: str,
        message_id: str,
        message: OutboundMessage,
        locale: str,
        *,
        caption: bool = False,
    ) -> Outcome:
        """Replace a sent message's text (or a file's caption) and buttons."""
        ...

    async def answer(self, press_id: str) -> Outcome:
        """Acknowledge a button press, so the platform stops showing it as pending."""
        ...
