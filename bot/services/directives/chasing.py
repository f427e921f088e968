"""Chasing unacknowledged directives: reminders, then the unit head, then the administrators."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol

from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from bot.config import DirectiveSettings
from bot.messages import Items, OutboundMessage, Text
from bot.models import Contact, Directive, DirectiveRecipient, Person, Role, Unit
from bot.services.delivery import outbox
from bot.services.delivery.contacts import reachable
from bot.services.org.access import contacts_with_role
from bot.services.org.names import by_name

CLOSE_AFTER_DEADLINE = timedelta(days=30)
PRIORITY = 20


class WorkingTime(Protocol):
    """The calendar operations chasing needs."""

    def working_hours_between(self, a: datetime, b: datetime) -> float:
        """Return working hours from a to b."""
        ...

    def deliverable_at(self, t: datetime) -> datetime:
        """Return the first moment at or after t outside quiet hours and days off."""
        ...


@dataclass
class ChaseResult:
    """What one sweep queued."""

    reminders: int = 0
    head_alerts: int = 0
    admin_alerts: int = 0
    closed: int = 0


async def _contacts(session: AsyncSession, person_ids: set[int]) -> dict[int, Contact]:
    """Return each person's usable chat account (one each)."""
    return await reachable(session, person_ids)


def _common(d: Directive) -> dict[str, object]:
    """Return the parameters every chasing message shares."""
    return {"number": d.number, "title": d.title, "deadline": d.ack_deadline}


async def _remind(
    session: AsyncSession,
    d: Directive,
    pending: list[tuple[DirectiveRecipient, Person]],
    step: int,
    now: datetime,
    result: ChaseResult,
) -> None:
    """Send the current reminder step once to each recipient behind it."""
    due = [(r, p) for r, p in pending if r.reminders_sent < step]
    contacts = await _contacts(session, {p.id for _, p in due if p.id is not None})
    for r, p in due:
        r.reminders_sent, r.last_reminder_at = step, now
        session.add(r)
        contact = contacts.get(p.id or 0)
        if contact is not None and await outbox.enqueue(
            session,
            contact=contact,
            message=OutboundMessage("directive.reminder", _common(d)),
            kind="directive_reminder",
            ref_id=r.id,
            now=now,
            priority=PRIORITY,
        ):
            result.reminders += 1


async def _alert_heads(
    session: AsyncSession,
    d: Directive,
    pending: list[tuple[DirectiveRecipient, Person]],
    units: dict[int, Unit],
    now: datetime,
    result: ChaseResult,
) -> None:
    """Tell each unit head who in their unit has not acknowledged (once per recipient)."""
    by_unit: dict[int, list[tuple[DirectiveRecipient, Person]]] = defaultdict(list)
    for r, p in pending:
        if r.head_escalated_at is None and r.unit_id is not None:
            by_unit[r.unit_id].append((r, p))
    for unit_id, rows in by_unit.items():
        names = Items(
            "directive.escalate_head_line",
            tuple(
                {
                    "name": p.full_name,
                    "unreachable": Text("directive.unreachable_mark")
                    if r.contact_id is None
                    else "",
                }
                for r, p in rows
            ),
        )
        message = OutboundMessage(
            "directive.escalate_head",
            {**_common(d), "count": len(rows), "unit": units[unit_id].name, "names": names},
        )
        heads = await contacts_with_role(session, Role.UNIT_HEAD, unit_id=unit_id)
        result.head_alerts += await outbox.enqueue_all(
            session,
            contacts=heads,
            message=message,
            kind="directive_head",
            ref_id=d.id,
            now=now,
            priority=PRIORITY,
        )
        for r, _ in rows:
            r.head_escalated_at = now
            session.add(r)


async def _alert_admins(
    session: AsyncSession,
    d: Directive,
    rows: list[tuple[DirectiveRecipient, Person]],
    units: dict[int, Unit],
    now: datetime,
    result: ChaseResult,
) -> None:
    """Tell the administrators which units are still behind (once per directive)."""
    totals: dict[int, list[int]] = defaultdict(lambda: [0, 0])
    for r, _ in rows:
        if r.unit_id is not None:
            totals[r.unit_id][0] += 1
            totals[r.unit_id][1] += r.acked_at is not None
    behind = [(u, t) for u, t in totals.items() if t[1] < t[0]]
    lines = Items(
        "directive.escalate_admins_line",
        tuple({"unit": units[u].name, "acked": t[1], "total": t[0]} for u, t in sorted(behind)),
    )
    message = OutboundMessage(
        "directive.escalate_admins",
        {
            **_common(d),
            "behind": len(behind),
            "acked": sum(t[1] for t in totals.values()),
            "total": len(rows),
            "lines": lines,
        },
    )
    admins = await contacts_with_role(session, Role.ADMIN)
    result.admin_alerts += await outbox.enqueue_all(
        session,
        contacts=admins,
        message=message,
        kind="directive_admins",
        ref_id=d.id,
        now=now,
        priority=PRIORITY,
    )
    d.admins_escalated_at = now
    session.add(d)


async def chase(
    session: AsyncSession, *, now: datetime, calendar: WorkingTime, settings: DirectiveSettings
) -> ChaseResult:
    """Run one sweep over open directives; after downtime, send only the current step once."""
    result = ChaseResult()
    if calendar.deliverable_at(now) > now:
        return result
    directives = (
        await session.exec(select(Directive).where(col(Directive.closed_at).is_(None)))
    ).all()
    units = {u.id: u for u in (await session.exec(select(Unit))).all() if u.id is not None}
    for d in directives:
        rows = by_name(
            (
                await session.exec(
                    select(DirectiveRecipient, Person)
                    .join(Person, col(Person.id) == DirectiveRecipient.person_id)
                    .where(DirectiveRecipient.directive_id == d.id)
                )
            ).all(),
            lambda row: row[1].full_name,
        )
        pending = [(r, p) for r, p in rows if r.acked_at is None]
        if not pending or now > d.ack_deadline + CLOSE_AFTER_DEADLINE:
            d.closed_at = now
            session.add(d)
            result.closed += 1
            continue
        elapsed = calendar.working_hours_between(d.created_at, now)
        step = sum(1 for h in settings.remind_after_hours if elapsed >= h)
        if step:
            await _remind(session, d, pending, step, now, result)
        if elapsed >= settings.escalate_head_after_hours:
            await _alert_heads(session, d, pending, units, now, result)
        if elapsed >= settings.escalate_admins_after_hours and d.admins_escalated_at is None:
            await _alert_admins(session, d, rows, units, now, result)
    return result
