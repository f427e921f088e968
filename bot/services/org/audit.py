"""The audit trail of administrative actions."""

from __future__ import annotations

from datetime import datetime

from sqlmodel.ext.asyncio.session import AsyncSession

from bot.models import AuditLog


def record(
    session: AsyncSession,
    *,
    actor: str,
    action: str,
    now: datetime,
    subject: str | None = None,
    count: int | None = None,
    detail: str | None = None,
) -> AuditLog:
    """Add one audit row to the session's transaction."""
    row = AuditLog(at=now, actor=actor, action=action, subject=subject, count=count, detail=detail)
    session.add(row)
    return row
