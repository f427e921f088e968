"""What the admins must know about the Zalo Official Account: that it must be authorised again."""

from __future__ import annotations

from datetime import datetime

from sqlmodel import select
from sqlmodel.ext.asyncio.session import AsyncSession

from bot.messages import OutboundMessage
from bot.models import Outbox, Role
from bot.services.delivery import outbox
from bot.services.delivery import zalo_oa_tokens as tokens
from bot.services.org import access

REAUTH_KIND = "zalo_oa_reauth"
REAUTH_PRIORITY = 10  # ahead of bulk messages


async def tell_admins_reauth(session: AsyncSession, *, oa_id: str, now: datetime) -> int:
    """Queue, once per refused token pair, a message telling the admins to authorise again.

    Return how many admins it was queued to (0 when the account is fine or they were told).
    """
    row = await tokens.read(session, oa_id)
    if row is None or not row.needs_reauth:
        return 0
    told = select(Outbox.id).where(Outbox.kind == REAUTH_KIND, Outbox.ref_id == row.version)
    if (await session.exec(told.limit(1))).first() is not None:
        return 0
    admins = await access.contacts_with_role(session, Role.ADMIN)
    message = OutboundMessage(
        "zalo_oa.reauth_admin", {"oa_id": oa_id, "error": row.last_error or ""}
    )
    return await outbox.enqueue_all(
        session,
        contacts=admins,
        message=message,
        kind=REAUTH_KIND,
        now=now,
        ref_id=row.version,
        priority=REAUTH_PRIORITY,
    )
