"""The choices a chat without buttons was shown last: typed answers ('1', a label) map to them."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from sqlalchemy.dialects import postgresql, sqlite
from sqlmodel.ext.asyncio.session import AsyncSession

from bot.clock import Clock
from bot.db import SessionMaker, transaction
from bot.messages import OutboundMessage, codec
from bot.models import ShownChoices

KEY = "choices"


def _payload(message: OutboundMessage) -> str:
    """Return what is stored of a message: its buttons and locale."""
    return codec.dumps(OutboundMessage(KEY, buttons=message.buttons, locale=message.locale))


async def remember_many(
    session: AsyncSession, *, channel: str, shown: Mapping[str, OutboundMessage], now: datetime
) -> None:
    """Keep each chat's list (chat id -> the message whose buttons it saw), in one statement."""
    if not shown:
        return
    dialect: Any = postgresql if session.get_bind().dialect.name == "postgresql" else sqlite
    stmt = dialect.insert(ShownChoices)
    stmt = stmt.on_conflict_do_update(
        index_elements=["channel", "chat_id"],
        set_={"payload": stmt.excluded.payload, "shown_at": stmt.excluded.shown_at},
    )
    rows = [
        {"channel": channel, "chat_id": chat_id, "payload": _payload(message), "shown_at": now}
        for chat_id, message in shown.items()
    ]
    conn = await session.connection()  # Core, one executemany: no ORM bookkeeping per row
    await conn.execute(stmt, rows)


async def remember(
    session: AsyncSession, *, channel: str, chat_id: str, message: OutboundMessage, now: datetime
) -> None:
    """Keep a message's buttons as the chat's current list (replacing the one before)."""
    await remember_many(session, channel=channel, shown={chat_id: message}, now=now)


class Recorder:
    """Keeps the lists chats were shown, many sends sharing one transaction (a group commit).

    A caller returns once its list is committed, so a typed answer that follows maps to it.
    """

    def __init__(self, maker: SessionMaker, clock: Clock, channel: str) -> None:
        """Record for one channel through `maker`."""
        self.maker, self.clock, self.channel = maker, clock, channel
        self._pending: dict[str, OutboundMessage] = {}
        self._waiters: list[asyncio.Future[None]] = []
        self._flushing: asyncio.Task[None] | None = None

    async def __call__(self, chat_id: str, message: OutboundMessage) -> None:
        """Keep `message`'s buttons as `chat_id`'s list; return once that is committed."""
        self._pending[chat_id] = message  # a later list for the same chat replaces the earlier
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append(done)
        if self._flushing is None or self._flushing.done():
            self._flushing = asyncio.create_task(self._flush())
        await done

    async def _flush(self) -> None:
        """Write what is pending, batch after batch, until nothing is."""
        while self._pending:
            shown, waiters = self._pending, self._waiters
            self._pending, self._waiters = {}, []
            failure: BaseException | None = None
            try:
                async with transaction(self.maker) as session:
                    await remember_many(
                        session, channel=self.channel, shown=shown, now=self.clock.now()
                    )
            except Exception as exc:  # each caller logs its own failure
                failure = exc
            for waiter in waiters:
                if waiter.done():
                    continue
                if failure is None:
                    waiter.set_result(None)
                else:
                    waiter.set_exception(failure)


async def last(session: AsyncSession, *, channel: str, chat_id: str) -> OutboundMessage | None:
    """Return the list the chat saw last (as a message carrying its buttons), if any."""
    row = await session.get(ShownChoices, (channel, chat_id))
    return None if row is None else codec.loads(row.payload)
