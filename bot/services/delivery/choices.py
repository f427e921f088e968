"""The choices a chat without buttons was shown last: typed answers ('1', a label) map to them."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.dialects import postgresql, sqlite
from sqlmodel.ext.asyncio.session import AsyncSession

from bot.messages import OutboundMessage, codec
from bot.models import ShownChoices

KEY = "choices"


async def remember(
    session: AsyncSession, *, channel: str, chat_id: str, message: OutboundMessage, now: datetime
) -> None:
    """Keep a message's buttons as the chat's current list (replacing the one before)."""
    payload = codec.dumps(OutboundMessage(KEY, buttons=message.buttons, locale=message.locale))
    dialect = postgresql if session.get_bind().dialect.name == "postgresql" else sqlite
    stmt = dialect.insert(ShownChoices).values(
        channel=channel, chat_id=chat_id, payload=payload, shown_at=now
    )
    stmt = stmt.on_conflict_do_update(
        index_elements=["channel", "chat_id"],
        set_={"payload": stmt.excluded.payload, "shown_at": stmt.excluded.shown_at},
    )
    await session.exec(stmt)


async def last(session: AsyncSession, *, channel: str, chat_id: str) -> OutboundMessage | None:
    """Return the list the chat saw last (as a message carrying its buttons), if any."""
    row = await session.get(ShownChoices, (channel, chat_id))
    return None if row is None else codec.loads(row.payload)
