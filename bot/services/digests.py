"""Weekly digests: each unit head gets their unit's open work; leadership gets every unit.

A digest runs once per fire of the configured cron rule (bot.services.reports.fires, marker row
"digest:weekly"); after downtime the latest missed fire is sent once if it is less than a day old.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta, tzinfo
from typing import Any

from sqlmodel import col, func, select
from sqlmodel.ext.asyncio.session import AsyncSession

from bot.config import Settings
from bot.messages import Items, OutboundMessage, Text
from bot.models import (
    Contact,
    Directive,
    DirectiveRecipient,
    Person,
    Task,
    TaskAssignment,
    TaskStatus,
    Unit,
)
from bot.services.calendar import WorkCalendar
from bot.services.delivery import outbox
from bot.services.delivery.contacts import leadership_contacts, unit_head_contacts
from bot.services.reports import fires

MARKER = "digest:weekly"
MARKER_OWNER = "digest"
KIND = "digest"
SOON = timedelta(days=7)
LIST_MAX = 15
UNITS_MAX = 40


@dataclass(frozen=True)
class OpenItem:
    """One unit's open part of a task, and how many working days it is overdue."""

    assignment: TaskAssignment
    task: Task
    unit: Unit
    overdue: bool
    overdue_days: int


@dataclass(frozen=True)
class PendingDirective:
    """An open directive some people of a unit have not acknowledged."""

    directive: Directive
    missing: int


@dataclass
class UnitDigest:
    """What one unit has open: tasks overdue, due within 7 days, later; directives unread."""

    unit: Unit
    overdue: list[OpenItem] = field(default_factory=list)
    soon: list[OpenItem] = field(default_factory=list)
    later: list[OpenItem] = field(default_factory=list)
    directives: list[PendingDirective] = field(default_factory=list)

    @property
    def open(self) -> int:
        """Return how many tasks the unit has open."""
        return len(self.overdue) + len(self.soon) + len(self.later)

    @property
    def overdue_days(self) -> int:
        """Return the working days overdue, summed over the unit's overdue tasks."""
        return sum(item.overdue_days for item in self.overdue)

    @property
    def unacked(self) -> int:
        """Return how many acknowledgements the unit still owes."""
        return sum(p.missing for p in self.directives)

    @property
    def empty(self) -> bool:
        """Tell whether the unit has nothing open."""
        return not self.open and not self.directives

    def rank(self) -> tuple[int, int, int, str]:
        """Sort key: most overdue working days first, then most overdue tasks, then code."""
        return (-self.overdue_days, -len(self.overdue), -len(self.soon), self.unit.code)


def _overdue_days(due_at: datetime, now: datetime, cal: WorkCalendar) -> int:
    """Return the working days from the due day to today (0 when not yet due)."""
    if now <= due_at:
        return 0
    return cal.working_days_between(cal.local(due_at).date(), cal.local(now).date())


async def open_assignments(
    session: AsyncSession, *, now: datetime, cal: WorkCalendar, unit_id: int | None = None
) -> list[OpenItem]:
    """Return the open assignments (of one unit when given), soonest due first."""
    stmt = (
        select(TaskAssignment, Task, Unit)
        .join(Task, col(Task.id) == TaskAssignment.task_id)
        .join(Unit, col(Unit.id) == TaskAssignment.unit_id)
        .where(TaskAssignment.status == TaskStatus.OPEN.value)
        .order_by(col(TaskAssignment.due_at), col(Unit.code), col(TaskAssignment.id))
    )
    if unit_id is not None:
        stmt = stmt.where(TaskAssignment.unit_id == unit_id)
    return [
        OpenItem(row, task, unit, now > row.due_at, _overdue_days(row.due_at, now, cal))
        for row, task, unit in (await session.exec(stmt)).all()
    ]


async def _pending_directives(session: AsyncSession) -> dict[int, list[PendingDirective]]:
    """Return, by unit, the open directives its active people have not acknowledged."""
    stmt = (
        select(DirectiveRecipient.unit_id, Directive, func.count())
        .join(Directive, col(Directive.id) == DirectiveRecipient.directive_id)
        .join(Person, col(Person.id) == DirectiveRecipient.person_id)
        .where(
            col(DirectiveRecipient.acked_at).is_(None),
            col(Directive.closed_at).is_(None),
            col(Person.active).is_(True),
            col(DirectiveRecipient.unit_id).is_not(None),
        )
        .group_by(col(DirectiveRecipient.unit_id), col(Directive.id))
        .order_by(col(Directive.ack_deadline), col(Directive.id))
    )
    pending: dict[int, list[PendingDirective]] = defaultdict(list)
    for unit_id, directive, missing in (await session.exec(stmt)).all():
        if unit_id is not None:
            pending[unit_id].append(PendingDirective(directive, int(missing)))
    return pending


async def unit_digests(
    session: AsyncSession, *, now: datetime, cal: WorkCalendar
) -> list[UnitDigest]:
    """Return the digest of every unit that has something open, most overdue first."""
    units = {u.id: u for u in (await session.exec(select(Unit))).all() if u.id is not None}
    digests: dict[int, UnitDigest] = {}
    for item in await open_assignments(session, now=now, cal=cal):
        digest = digests.setdefault(item.unit.id or 0, UnitDigest(item.unit))
        if item.overdue:
            digest.overdue.append(item)
        elif item.assignment.due_at <= now + SOON:
            digest.soon.append(item)
        else:
            digest.later.append(item)
    for unit_id, pending in (await _pending_directives(session)).items():
        digests.setdefault(unit_id, UnitDigest(units[unit_id])).directives = pending
    for digest in digests.values():
        digest.overdue.sort(key=lambda item: (-item.overdue_days, item.assignment.due_at))
    return sorted(digests.values(), key=UnitDigest.rank)


def _listing(key: str, rows: Sequence[dict[str, Any]], limit: int = LIST_MAX) -> Text:
    """Return a list parameter: at most `limit` rows, then how many more; or 'none'."""
    if not rows:
        return Text("digest.none")
    more = Text("digest.more", {"count": len(rows) - limit}) if len(rows) > limit else ""
    return Text("digest.list", {"lines": Items(key, tuple(rows[:limit])), "more": more})


def _task_rows(items: Iterable[OpenItem]) -> list[dict[str, Any]]:
    """Return the list rows of some tasks."""
    return [
        {
            "id": i.task.id,
            "title": i.task.title,
            "due": i.assignment.due_at,
            "days": i.overdue_days,
        }
        for i in items
    ]


def head_message(digest: UnitDigest, *, now: datetime) -> OutboundMessage:
    """Return a unit head's digest."""
    directives = [
        {
            "number": p.directive.number,
            "title": p.directive.title,
            "missing": p.missing,
            "deadline": p.directive.ack_deadline,
        }
        for p in digest.directives
    ]
    return OutboundMessage(
        "digest.unit",
        {
            "unit": digest.unit.name,
            "now": now,
            "open": digest.open,
            "overdue_count": len(digest.overdue),
            "soon_count": len(digest.soon),
            "later_count": len(digest.later),
            "directive_count": len(digest.directives),
            "overdue": _listing("digest.overdue_line", _task_rows(digest.overdue)),
            "soon": _listing("digest.task_line", _task_rows(digest.soon)),
            "later": _listing("digest.task_line", _task_rows(digest.later)),
            "directives": _listing("digest.directive_line", directives),
        },
    )


def leadership_message(digests: Sequence[UnitDigest], *, now: datetime) -> OutboundMessage:
    """Return the leadership digest: every unit with open work, most overdue first."""
    if not digests:
        return OutboundMessage("digest.leadership_clear", {"now": now})
    rows = [
        {
            "unit": d.unit.name,
            "overdue": len(d.overdue),
            "days": d.overdue_days,
            "soon": len(d.soon),
            "open": d.open,
            "unacked": d.unacked,
        }
        for d in digests
    ]
    return OutboundMessage(
        "digest.leadership",
        {
            "now": now,
            "units": len(digests),
            "late_units": sum(1 for d in digests if d.overdue),
            "open": sum(d.open for d in digests),
            "overdue": sum(len(d.overdue) for d in digests),
            "unacked": sum(d.unacked for d in digests),
            "lines": _listing("digest.unit_line", rows, UNITS_MAX),
        },
    )


async def _queue(
    session: AsyncSession,
    contacts: Iterable[Contact],
    message: OutboundMessage,
    *,
    now: datetime,
    due_at: datetime,
) -> int:
    """Queue a digest to some contacts; return how many were queued."""
    queued = 0
    for contact in contacts:
        if await outbox.enqueue(
            session, contact=contact, message=message, kind=KIND, now=now, due_at=due_at
        ):
            queued += 1
    return queued


async def weekly_digests(session: AsyncSession, *, now: datetime, cal: WorkCalendar) -> int:
    """Queue each unit head their unit's digest, and leadership the overview; return how many."""
    digests = await unit_digests(session, now=now, cal=cal)
    by_unit = {d.unit.id: d for d in digests}
    due_at = cal.deliverable_at(now)
    queued = 0
    for unit_id, contact in await unit_head_contacts(session):
        digest = by_unit.get(unit_id)
        if digest is not None and not digest.empty:
            message = head_message(digest, now=now)
            queued += await _queue(session, [contact], message, now=now, due_at=due_at)
    overview = leadership_message(digests, now=now)
    leaders = await leadership_contacts(session)
    return queued + await _queue(session, leaders, overview, now=now, due_at=due_at)


async def digest_due(session: AsyncSession, *, now: datetime, cron: str, tz: tzinfo) -> bool:
    """Tell whether a digest fire is due now, and claim it (once across processes)."""
    fire = await fires.due_fire(
        session, marker=MARKER, owner=MARKER_OWNER, now=now, cron=cron, tz=tz
    )
    return fire is not None


async def digest_sweep(session: AsyncSession, *, now: datetime, settings: Settings) -> int:
    """Send the weekly digests when the cron rule has fired since the last ones; count them."""
    rule, tz = settings.tasks.digest_cron, settings.scheduler.tz
    if not await digest_due(session, now=now, cron=rule, tz=tz):
        return 0
    return await weekly_digests(session, now=now, cal=WorkCalendar.from_settings(settings))
