"""One way to store a rendered document and deliver it to a chat through the outbox."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlmodel.ext.asyncio.session import AsyncSession

from bot.config import Settings
from bot.messages import OutboundMessage, Text
from bot.models import Attachment, Contact
from bot.services.delivery import outbox
from bot.services.directives import attachments
from bot.services.directives.directives import Status
from bot.services.reports import render
from bot.services.reports.stats import Stats

KIND = "report"
PRIORITY = 0  # a document someone just asked for goes before bulk sends


async def send_document(
    session: AsyncSession,
    *,
    contact: Contact,
    name: str,
    data: bytes,
    caption: str,
    params: dict[str, Any],
    now: datetime,
    ref_id: int | None = None,
    due_at: datetime | None = None,
    media: str = "document",
    priority: int = PRIORITY,
) -> Attachment:
    """Store a document (or a 'photo') and queue it to a contact with a caption; return its row."""
    row = attachments.store(session, name=name, data=data, now=now)
    await session.flush()
    message = OutboundMessage(caption, params, attachment_id=row.id, media=media)
    await outbox.enqueue(
        session,
        contact=contact,
        message=message,
        kind=KIND,
        ref_id=ref_id,
        now=now,
        due_at=due_at,
        priority=priority,
    )
    return row


def _day(now: datetime, settings: Settings) -> date:
    """Return the local day a document is dated."""
    return now.astimezone(settings.scheduler.tz).date()


async def queue_status_xlsx(
    session: AsyncSession, *, contact: Contact, status: Status, now: datetime, settings: Settings
) -> None:
    """Queue a directive's acknowledgement status to the contact as XLSX."""
    await send_document(
        session,
        contact=contact,
        name=f"cong-van-{status.directive.id}.xlsx",
        data=render.status_xlsx(
            status, locale=contact.locale, settings=settings, day=_day(now, settings)
        ),
        caption="directive.xlsx_caption",
        params={"number": status.directive.number},
        ref_id=status.directive.id,
        now=now,
    )


async def queue_stats_xlsx(
    session: AsyncSession, *, contact: Contact, result: Stats, now: datetime, settings: Settings
) -> None:
    """Queue the satisfaction statistics to the contact as XLSX."""
    scope = result.unit.code if result.unit is not None else "all"
    first, last = result.first_day, result.last_day
    unit = result.unit.name if result.unit is not None else Text("stats.all_units")
    await send_document(
        session,
        contact=contact,
        name=f"hai-long-{scope}-{first:%Y%m%d}-{last:%Y%m%d}.xlsx",
        data=render.stats_xlsx(
            result, locale=contact.locale, settings=settings, day=_day(now, settings)
        ),
        caption="stats.xlsx_caption",
        params={"unit": unit, "since": first, "until": last},
        now=now,
    )
