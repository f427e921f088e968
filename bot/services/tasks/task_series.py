"""Recurring tasks: a crontab rule for due moments, an occurrence created ahead of each one.

An occurrence is created `lead_days` working days before its due moment, once the sweep runs in
deliverable time (a working day, outside the quiet hours), so that the whole reminder ladder
(7, 3, 1 working days before) still lies ahead. After downtime, only occurrences whose due
moment is still in the future are created; a due moment that passed while the bot was down is
skipped (an audit row says so), since a task cannot be assigned with a past due time.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import date, datetime, timedelta, tzinfo
from zoneinfo import ZoneInfo

from apscheduler.triggers.cron import CronTrigger
from sqlalchemy import update
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from bot.config import TaskSettings
from bot.cron import cron_trigger, fire_after
from bot.models import Role, TaskSeries, Unit
from bot.services.calendar import WorkCalendar
from bot.services.directives.directives import Target, resolve_units
from bot.services.errors import InvalidInput, NotFound
from bot.services.org import audit
from bot.services.org.access import Actor, require, system_actor
from bot.services.tasks import tasks

log = logging.getLogger(__name__)
DEFAULT_TZ = ZoneInfo("Asia/Ho_Chi_Minh")
CRON_MAX = 64
LEAD_DAYS_MAX = 60
MIN_SPACING = timedelta(hours=24)
MAX_STEPS = 400


def _both_days(expr: str) -> bool:
    """Tell whether a rule restricts both the day of month and the day of week (ambiguous)."""
    fields = expr.split()
    return len(fields) == 5 and fields[2] != "*" and fields[4] != "*"


def parse_cron(expr: str, tz: tzinfo, *, now: datetime) -> tuple[CronTrigger, datetime]:
    """Check a rule: valid, firing, at most daily; return it and its first due moment."""
    expr = " ".join(expr.split())
    try:
        if len(expr) > CRON_MAX or _both_days(expr):
            raise ValueError("too long, or both a day of month and a day of week")
        trigger = cron_trigger(expr, tz)
    except ValueError:
        raise InvalidInput("series.error.cron", cron=expr) from None
    first = fire_after(trigger, now)
    if first is None:
        raise InvalidInput("series.error.never", cron=expr)
    second = fire_after(trigger, first)
    if second is not None and second - first < MIN_SPACING:
        raise InvalidInput("series.error.too_often", cron=expr)
    return trigger, first


@dataclass(frozen=True)
class NewSeries:
    """A recurring task as an administrator wrote it."""

    title: str
    details: str
    cron: str
    unit_codes: tuple[str, ...]
    lead_days: int


def _validate(new: NewSeries) -> None:
    """Refuse a series with a missing or oversize field, no unit or a bad lead time."""
    if not new.title:
        raise InvalidInput("task.error.required", field="title")
    if len(new.title) > tasks.TITLE_MAX or len(new.details) > tasks.DETAILS_MAX:
        raise InvalidInput("task.error.too_long", limit=tasks.TITLE_MAX)
    if not new.unit_codes:
        raise InvalidInput("series.error.no_unit")
    if not 0 <= new.lead_days <= LEAD_DAYS_MAX:
        raise InvalidInput("series.error.lead_days", max=LEAD_DAYS_MAX)


async def create_series(
    session: AsyncSession,
    *,
    actor: Actor,
    title: str,
    details: str,
    cron: str,
    unit_codes: tuple[str, ...] | list[str],
    lead_days: int,
    now: datetime,
    tz: tzinfo = DEFAULT_TZ,
) -> TaskSeries:
    """Register a recurring task (administrators); its rule is read in the time zone `tz`."""
    require(actor, Role.ADMIN)
    codes = tuple(c.strip().upper() for c in unit_codes if c.strip())
    new = NewSeries(title.strip(), details.strip(), " ".join(cron.split()), codes, lead_days)
    _validate(new)
    _, first = parse_cron(new.cron, tz, now=now)
    units = await resolve_units(session, Target(units=new.unit_codes))
    row = TaskSeries(
        title=new.title,
        details=new.details,
        cron=new.cron,
        unit_codes=",".join(u.code for u in units),
        lead_days=new.lead_days,
        next_due_at=first,
        created_by=actor.label,
        created_at=now,
    )
    session.add(row)
    await session.flush()
    audit.record(
        session,
        actor=actor.label,
        action="series.create",
        now=now,
        subject=new.title[:255],
        count=len(units),
        detail=f"series={row.id} cron={new.cron} lead_days={new.lead_days}",
    )
    return row


async def list_series(session: AsyncSession) -> list[TaskSeries]:
    """Return every series, active ones first, then by id."""
    stmt = select(TaskSeries).order_by(col(TaskSeries.active).desc(), col(TaskSeries.id))
    return list((await session.exec(stmt)).all())


async def stop_series(
    session: AsyncSession, *, actor: Actor, series_id: int, now: datetime
) -> TaskSeries:
    """Stop a series: no more occurrences (those already created stay open)."""
    require(actor, Role.ADMIN)
    row = await session.get(TaskSeries, series_id)
    if row is None:
        raise NotFound("series.error.unknown", id=series_id)
    if not row.active:
        raise InvalidInput("series.error.stopped", id=series_id)
    row.active = False
    session.add(row)
    audit.record(session, actor=actor.label, action="series.stop", now=now, subject=row.title[:255])
    return row


def spawn_moment(due_at: datetime, lead_days: int, cal: WorkCalendar) -> datetime:
    """Return when an occurrence is created: local midnight, lead_days working days before."""
    day: date = cal.local(due_at).date()
    counted = 0
    while counted < lead_days:
        day -= timedelta(days=1)
        counted += cal.is_working_day(day)
    return cal.at_local(day, "00:00")


async def _claim(session: AsyncSession, row: TaskSeries, new_next: datetime | None) -> bool:
    """Move a series' next due moment on, unless another run did already; tell who won."""
    assert row.id is not None
    stmt = (
        update(TaskSeries)
        .where(col(TaskSeries.id) == row.id, col(TaskSeries.next_due_at) == row.next_due_at)
        .values(next_due_at=new_next)
        .execution_options(synchronize_session=False)
    )
    result = await session.exec(stmt)
    if int(result.rowcount) != 1:
        return False
    row.next_due_at = new_next
    return True


async def _active_codes(session: AsyncSession, row: TaskSeries) -> tuple[str, ...]:
    """Return the series' unit codes that still name an active unit."""
    codes = [c for c in row.unit_codes.split(",") if c]
    stmt = select(Unit.code).where(col(Unit.code).in_(codes), col(Unit.active).is_(True))
    return tuple(sorted((await session.exec(stmt)).all()))


async def _occur(
    session: AsyncSession,
    row: TaskSeries,
    due_at: datetime,
    *,
    now: datetime,
    cal: WorkCalendar,
    settings: TaskSettings,
) -> bool:
    """Create one occurrence of a series; tell whether one was created."""
    codes = await _active_codes(session, row)
    if not codes:
        log.warning("series %s: no active unit left; occurrence due %s skipped", row.id, due_at)
        return False
    new = tasks.NewTask(row.title, codes, due_at, row.details)
    await tasks.create(
        session,
        actor=system_actor(f"series:{row.id}"),
        new=new,
        now=now,
        cal=cal,
        settings=settings,
        series_id=row.id,
    )
    return True


def _skipped(session: AsyncSession, row: TaskSeries, due_at: datetime, now: datetime) -> None:
    """Record that an occurrence's due moment passed while nobody could create it."""
    log.warning("series %s: due moment %s passed during downtime; skipped", row.id, due_at)
    audit.record(
        session,
        actor=f"series:{row.id}",
        action="series.skip",
        now=now,
        subject=row.title[:255],
        detail=f"due={due_at.isoformat()}",
    )


async def _spawn_one(
    session: AsyncSession,
    row: TaskSeries,
    *,
    now: datetime,
    cal: WorkCalendar,
    settings: TaskSettings,
) -> int:
    """Create the occurrences of one series that are due to be created; return how many."""
    trigger = cron_trigger(row.cron, cal.tz)
    created = 0
    for _ in range(MAX_STEPS):
        due_at = row.next_due_at
        if due_at is None or spawn_moment(due_at, row.lead_days, cal) > now:
            break
        if not await _claim(session, row, fire_after(trigger, due_at)):
            break
        if due_at <= now:
            _skipped(session, row, due_at, now)
        elif await _occur(session, row, due_at, now=now, cal=cal, settings=settings):
            created += 1
    return created


async def spawn_due(
    session: AsyncSession, *, now: datetime, cal: WorkCalendar, settings: TaskSettings
) -> int:
    """Create the occurrences whose time has come, once per due moment; return how many."""
    if cal.deliverable_at(now) != now:
        return 0
    stmt = (
        select(TaskSeries)
        .where(col(TaskSeries.active).is_(True), col(TaskSeries.next_due_at).is_not(None))
        .order_by(col(TaskSeries.next_due_at), col(TaskSeries.id))
    )
    created = 0
    for row in (await session.exec(stmt)).all():
        created += await _spawn_one(session, row, now=now, cal=cal, settings=settings)
    return created
