"""Run a job once per fire of a cron rule, whatever the number of processes and restarts.

The last fire handled is kept in the job_lease table (one row per job, its expiry holding the
fire time) and claimed with a conditional upsert in the job's own transaction, so a job that
fails rolls its claim back. After downtime the latest missed fire runs once if it is younger
than the grace period.
"""

from __future__ import annotations

from datetime import datetime, timedelta, tzinfo

from sqlalchemy.dialects import postgresql, sqlite
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from bot.cron import cron_trigger, fire_after
from bot.models import JobLease

GRACE = timedelta(hours=24)
MAX_FIRES = 2000


def latest_fire(rule: str, tz: tzinfo, *, after: datetime, until: datetime) -> datetime | None:
    """Return the rule's last fire time in (after, until], or None."""
    trigger = cron_trigger(rule, tz)
    latest = None
    fire = fire_after(trigger, after)
    for _ in range(MAX_FIRES):
        if fire is None or fire > until:
            break
        latest, fire = fire, fire_after(trigger, fire)
    return latest


async def last_handled(session: AsyncSession, marker: str) -> datetime | None:
    """Return the last fire time the job named `marker` ran for."""
    stmt = select(JobLease.expires_at).where(JobLease.name == marker)
    return (await session.exec(stmt)).first()


async def claim(session: AsyncSession, marker: str, fire: datetime, *, owner: str) -> bool:
    """Record a fire as handled unless a later or equal one is; tell whether this call did."""
    dialect = postgresql if session.get_bind().dialect.name == "postgresql" else sqlite
    stmt = (
        dialect.insert(JobLease)
        .values(name=marker, owner=owner, expires_at=fire)
        .on_conflict_do_update(
            index_elements=["name"],
            set_={"expires_at": fire, "owner": owner},
            where=col(JobLease.expires_at) < fire,
        )
        .returning(col(JobLease.name))
    )
    return (await session.exec(stmt)).first() is not None


async def due_fire(
    session: AsyncSession,
    *,
    marker: str,
    owner: str,
    now: datetime,
    cron: str,
    tz: tzinfo,
    grace: timedelta = GRACE,
) -> datetime | None:
    """Return the fire due now, claimed for this caller (once across processes), or None."""
    handled = await last_handled(session, marker)
    after = max(handled, now - grace) if handled is not None else now - grace
    fire = latest_fire(cron, tz, after=after, until=now)
    if fire is None or not await claim(session, marker, fire, owner=owner):
        return None
    return fire
