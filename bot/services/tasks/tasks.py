"""Deadline tasks: assignment to units, the reminder ladder, done reports, reopening."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from bot.config import TaskSettings
from bot.messages import Button, OutboundMessage
from bot.models import (
    Contact,
    Directive,
    Person,
    PersonRole,
    Role,
    Task,
    TaskAssignee,
    TaskAssignment,
    TaskLog,
    TaskStatus,
    Unit,
)
from bot.services.calendar import WorkCalendar
from bot.services.delivery import outbox
from bot.services.delivery.contacts import reachable
from bot.services.directives.directives import Target, resolve_units
from bot.services.errors import InvalidInput, NotFound, PermissionDenied
from bot.services.org import audit
from bot.services.org.access import Actor, contacts_with_role, require, require_staff

TITLE_MAX, DETAILS_MAX, NOTE_MAX = 500, 3000, 2000
PRIORITY = 30
DUE_STEP, BEFORE, OVERDUE = "due", "before:", "overdue:"
MAX_OVERDUE_STEPS = 366


@dataclass(frozen=True)
class Ladder:
    """When a unit is reminded: working days before, on the due day, then daily while overdue."""

    before_days: tuple[int, ...] = (7, 3, 1)
    remind_at: str = "08:00"
    overdue_daily: bool = True

    @classmethod
    def of(cls, settings: TaskSettings, override: str | None = None) -> Ladder:
        """Return the task's own ladder ('7,3,1') or the configured one."""
        days = tuple(settings.before_days)
        if override:
            days = tuple(sorted({int(x) for x in override.split(",") if x.strip()}, reverse=True))
        return cls(days, settings.remind_at, settings.overdue_daily)


@dataclass(frozen=True)
class Step:
    """One rung of the ladder: its name and when it is due."""

    name: str
    at: datetime


def _working_days_back(cal: WorkCalendar, day: date, n: int) -> date:
    """Return the working day n working days before `day`."""
    count = 0
    while count < n:
        day -= timedelta(days=1)
        if cal.is_working_day(day):
            count += 1
    return day


def steps(due_at: datetime, ladder: Ladder, cal: WorkCalendar) -> Iterator[Step]:
    """Yield the ladder's steps in time order (overdue steps up to a year)."""
    due_day = cal.local(due_at).date()
    for n in ladder.before_days:
        at = cal.at_local(_working_days_back(cal, due_day, n), ladder.remind_at)
        if at < due_at:
            yield Step(f"{BEFORE}{n}", at)
    day_step = cal.deliverable_at(cal.at_local(due_day, ladder.remind_at))
    yield Step(DUE_STEP, min(day_step, due_at) if day_step.date() == due_at.date() else day_step)
    if ladder.overdue_daily:
        day = due_day
        for k in range(1, MAX_OVERDUE_STEPS):
            day = cal.next_working_day(day)
            yield Step(f"{OVERDUE}{k}", cal.at_local(day, ladder.remind_at))


def current_and_next(
    due_at: datetime, ladder: Ladder, cal: WorkCalendar, now: datetime
) -> tuple[Step | None, Step | None]:
    """Return the latest step at or before now, and the first one after now."""
    current = None
    for step in steps(due_at, ladder, cal):
        if step.at > now:
            return current, step
        current = step
    return current, None


@dataclass(frozen=True)
class NewTask:
    """A task as an administrator wrote it."""

    title: str
    units: tuple[str, ...]
    due_at: datetime
    details: str = ""
    directive_id: int | None = None
    ladder: str | None = None
    assignees: tuple[str, ...] = ()


def validate(new: NewTask, *, now: datetime) -> None:
    """Refuse a task with a missing or oversize field, no unit, or a due time in the past."""
    if not new.title.strip():
        raise InvalidInput("task.error.required", field="title")
    if len(new.title) > TITLE_MAX or len(new.details) > DETAILS_MAX:
        raise InvalidInput("task.error.too_long", limit=TITLE_MAX)
    if not new.units:
        raise InvalidInput("directive.error.no_target")
    if new.due_at <= now:
        raise InvalidInput("task.error.due_past")
    if new.ladder is not None and not re.fullmatch(r"\s*\d{1,2}(\s*,\s*\d{1,2})*\s*", new.ladder):
        raise InvalidInput("task.error.ladder", value=new.ladder[:40])


async def create(
    session: AsyncSession,
    *,
    actor: Actor,
    new: NewTask,
    now: datetime,
    cal: WorkCalendar,
    settings: TaskSettings,
    series_id: int | None = None,
) -> tuple[Task, list[TaskAssignment]]:
    """Assign a task to units, tell each unit's head (and assignees), schedule the ladder."""
    require(actor, Role.ADMIN)
    validate(new, now=now)
    if series_id is None:  # a series' schedule (cron) picks its own days
        cal.require_working_day(new.due_at)
    if new.directive_id is not None and await session.get(Directive, new.directive_id) is None:
        raise NotFound("directive.error.unknown")
    units = await resolve_units(session, Target(units=new.units))
    task = Task(
        title=new.title.strip(),
        details=new.details.strip(),
        directive_id=new.directive_id,
        series_id=series_id,
        ladder=new.ladder,
        created_by=actor.label,
        created_at=now,
    )
    session.add(task)
    await session.flush()
    ladder = Ladder.of(settings, new.ladder)
    rows = []
    for unit in units:
        assert unit.id is not None and task.id is not None
        _, nxt = current_and_next(new.due_at, ladder, cal, now)
        row = TaskAssignment(
            task_id=task.id,
            unit_id=unit.id,
            due_at=new.due_at,
            next_step_at=nxt.at if nxt else None,
        )
        session.add(row)
        await session.flush()
        await _add_assignees(session, row, unit, new.assignees)
        await _notify(session, row, task, unit, "task.assigned", now)
        rows.append(row)
    audit.record(
        session,
        actor=actor.label,
        action="task.create",
        now=now,
        subject=task.title[:255],
        count=len(rows),
    )
    return task, rows


async def _add_assignees(
    session: AsyncSession, row: TaskAssignment, unit: Unit, codes: tuple[str, ...]
) -> None:
    """Name the people of the unit who are responsible (codes of other units are ignored)."""
    if not codes:
        return
    people = (
        await session.exec(
            select(Person).where(
                col(Person.code).in_([c.upper() for c in codes]), Person.unit_id == unit.id
            )
        )
    ).all()
    for p in people:
        assert row.id is not None and p.id is not None
        session.add(TaskAssignee(assignment_id=row.id, person_id=p.id))


async def recipients_of(
    session: AsyncSession, rows: list[TaskAssignment]
) -> dict[int, list[Contact]]:
    """Return, per assignment id, the chat accounts of its unit's heads and named assignees."""
    unit_ids = {r.unit_id for r in rows}
    ids = [r.id for r in rows if r.id is not None]
    heads = (
        await session.exec(
            select(Person.id, Person.unit_id)
            .join(PersonRole, col(PersonRole.person_id) == Person.id)
            .where(
                PersonRole.role == Role.UNIT_HEAD.value,
                col(Person.unit_id).in_(unit_ids),
                col(Person.active).is_(True),
            )
        )
    ).all()
    named = (
        await session.exec(
            select(TaskAssignee.assignment_id, TaskAssignee.person_id)
            .join(Person, col(Person.id) == TaskAssignee.person_id)
            .where(col(TaskAssignee.assignment_id).in_(ids), col(Person.active).is_(True))
        )
    ).all()
    people = {p for p, _ in heads} | {p for _, p in named}
    reach = await reachable(session, people)
    by_unit: dict[int, set[int]] = {}
    for person_id, unit_id in heads:
        by_unit.setdefault(unit_id or 0, set()).add(person_id or 0)
    out: dict[int, list[Contact]] = {}
    for r in rows:
        who = by_unit.get(r.unit_id, set()) | {p for a, p in named if a == r.id}
        out[r.id or 0] = [reach[p] for p in sorted(who) if p in reach]
    return out


async def recipients(session: AsyncSession, row: TaskAssignment) -> list[Contact]:
    """Return the chat accounts of the unit's heads and the named assignees."""
    return (await recipients_of(session, [row]))[row.id or 0]


def message(
    key: str, row: TaskAssignment, task: Task, unit: Unit, **extra: object
) -> OutboundMessage:
    """Return a task message with its 'done' button."""
    assert row.id is not None
    return OutboundMessage(
        key,
        {
            "title": task.title,
            "details": task.details or "–",
            "unit": unit.name,
            "due": row.due_at,
            **extra,
        },
        buttons=((Button("task.done_button", f"task:{row.id}"),),),
    )


async def _notify(
    session: AsyncSession,
    row: TaskAssignment,
    task: Task,
    unit: Unit,
    key: str,
    now: datetime,
    *,
    to: list[Contact] | None = None,
    **extra: object,
) -> int:
    """Queue a message to the unit's heads and assignees; return how many were queued."""
    queued = 0
    for contact in to if to is not None else await recipients(session, row):
        if await outbox.enqueue(
            session,
            contact=contact,
            message=message(key, row, task, unit, **extra),
            kind="task",
            ref_id=row.id,
            now=now,
            priority=PRIORITY,
        ):
            queued += 1
    return queued


@dataclass
class SweepResult:
    """What one sweep did."""

    reminders: int = 0
    leadership: int = 0
    assignments: int = 0


def _step_key(step: Step) -> tuple[str, dict[str, object]]:
    """Return the message key and parameters of a ladder step."""
    if step.name.startswith(BEFORE):
        return "task.reminder_before", {"days": int(step.name.removeprefix(BEFORE))}
    if step.name == DUE_STEP:
        return "task.reminder_due", {}
    return "task.reminder_overdue", {"days": int(step.name.removeprefix(OVERDUE))}


async def sweep(
    session: AsyncSession,
    *,
    now: datetime,
    cal: WorkCalendar,
    settings: TaskSettings,
    limit: int = 500,
) -> SweepResult:
    """Send each due assignment its current step once (not the ones missed while down)."""
    result = SweepResult()
    due = (
        await session.exec(
            select(TaskAssignment, Task, Unit)
            .join(Task, col(Task.id) == TaskAssignment.task_id)
            .join(Unit, col(Unit.id) == TaskAssignment.unit_id)
            .where(
                TaskAssignment.status == TaskStatus.OPEN.value,
                col(TaskAssignment.next_step_at) <= now,
            )
            .order_by(col(TaskAssignment.next_step_at))
            .limit(limit)
        )
    ).all()
    who = await recipients_of(session, [row for row, _, _ in due])
    deliverable = cal.deliverable_at(now) == now
    for row, task, unit in due:
        result.assignments += 1
        current, nxt = current_and_next(row.due_at, Ladder.of(settings, task.ladder), cal, now)
        if current is not None and current.name != row.last_step and deliverable:
            key, extra = _step_key(current)
            result.reminders += await _notify(
                session, row, task, unit, key, now, to=who[row.id or 0], **extra
            )
            row.last_step = current.name
        elif not deliverable:
            nxt = Step("wait", cal.deliverable_at(now))
        await _leadership(session, row, task, unit, now, cal, settings, result)
        row.next_step_at = nxt.at if nxt else None
        session.add(row)
    return result


async def _leadership(
    session: AsyncSession,
    row: TaskAssignment,
    task: Task,
    unit: Unit,
    now: datetime,
    cal: WorkCalendar,
    settings: TaskSettings,
    result: SweepResult,
) -> None:
    """Tell leadership once when a unit is overdue by the configured working days."""
    if row.leadership_alerted_at is not None or now <= row.due_at:
        return
    overdue = cal.working_days_between(cal.local(row.due_at).date(), cal.local(now).date())
    if overdue < settings.leadership_after_days:
        return
    msg = OutboundMessage(
        "task.leadership_overdue",
        {"title": task.title, "unit": unit.name, "due": row.due_at, "days": overdue},
    )
    result.leadership += await outbox.enqueue_all(
        session,
        contacts=await contacts_with_role(session, Role.LEADER),
        message=msg,
        kind="task_leadership",
        ref_id=row.id,
        now=now,
        priority=PRIORITY,
    )
    row.leadership_alerted_at = now


async def _assignment(
    session: AsyncSession, assignment_id: int
) -> tuple[TaskAssignment, Task, Unit]:
    """Return an assignment with its task and unit, or raise NotFound."""
    row = await session.get(TaskAssignment, assignment_id)
    if row is None:
        raise NotFound("task.error.unknown")
    task = await session.get(Task, row.task_id)
    unit = await session.get(Unit, row.unit_id)
    assert task is not None and unit is not None
    return row, task, unit


async def find_assignment(
    session: AsyncSession, *, actor: Actor, task_id: int, text: str = ""
) -> tuple[int, str]:
    """Return the assignment a task number means, and the text left after an optional unit code.

    People name a task by its number (the one every screen shows); the unit is the actor's own,
    the only one, or a unit code typed first (administrators, for a task given to several units).
    """
    rows = (
        await session.exec(
            select(TaskAssignment, Unit)
            .join(Unit, col(Unit.id) == TaskAssignment.unit_id)
            .where(TaskAssignment.task_id == task_id)
            .order_by(col(Unit.code))
        )
    ).all()
    if not rows:
        raise NotFound("task.error.unknown")
    first, _, rest = text.strip().partition(" ")
    by_code = {unit.code.casefold(): row for row, unit in rows}
    if first and first.casefold() in by_code:
        row = by_code[first.casefold()]
        assert row.id is not None
        return row.id, rest.strip()
    own = [row for row, unit in rows if actor.unit is not None and unit.id == actor.unit.id]
    if own or len(rows) == 1:
        row = (own or [rows[0][0]])[0]
        assert row.id is not None
        return row.id, text.strip()
    if not actor.has_any(frozenset({Role.ADMIN})):
        raise PermissionDenied("task.error.not_your_unit")
    codes = ", ".join(unit.code for _, unit in rows)
    raise InvalidInput("task.error.which_unit", id=task_id, codes=codes)


def _may_report(actor: Actor, row: TaskAssignment) -> None:
    """Allow the unit's own staff, and administrators, to act on its part of a task."""
    if actor.has_any(frozenset({Role.ADMIN})):
        return
    require_staff(actor)
    if actor.unit is None or actor.unit.id != row.unit_id:
        raise PermissionDenied("task.error.not_your_unit")


async def check_reportable(
    session: AsyncSession, *, actor: Actor, assignment_id: int
) -> tuple[TaskAssignment, Task, Unit]:
    """Return an open assignment the actor may report done, or raise why not."""
    row, task, unit = await _assignment(session, assignment_id)
    _may_report(actor, row)
    if row.status == TaskStatus.DONE:
        raise InvalidInput("task.error.already_done", at=row.done_at)
    return row, task, unit


async def mark_done(
    session: AsyncSession,
    *,
    actor: Actor,
    assignment_id: int,
    now: datetime,
    note: str | None = None,
    attachment_id: int | None = None,
) -> tuple[TaskAssignment, Task, Unit]:
    """Record that a unit finished its part (late when after the due time); once only."""
    row, task, unit = await _assignment(session, assignment_id)
    _may_report(actor, row)
    if row.status == TaskStatus.DONE:
        raise InvalidInput("task.error.already_done", at=row.done_at)
    if note and len(note) > NOTE_MAX:
        raise InvalidInput("task.error.too_long", limit=NOTE_MAX)
    row.status, row.done_at, row.done_by = TaskStatus.DONE, now, actor.label
    row.done_note, row.done_attachment_id, row.late = note, attachment_id, now > row.due_at
    row.next_step_at = None
    session.add(row)
    assert row.id is not None
    session.add(TaskLog(assignment_id=row.id, at=now, actor=actor.label, action="done", note=note))
    return row, task, unit


async def reopen(
    session: AsyncSession,
    *,
    actor: Actor,
    assignment_id: int,
    reason: str,
    now: datetime,
    cal: WorkCalendar,
    settings: TaskSettings,
) -> tuple[TaskAssignment, Task, Unit]:
    """Reopen a unit's finished part, with a reason: its head or an administrator."""
    row, task, unit = await _assignment(session, assignment_id)
    require(actor, Role.ADMIN, Role.UNIT_HEAD)
    if not actor.has_any(frozenset({Role.ADMIN})) and (
        actor.unit is None or actor.unit.id != row.unit_id
    ):
        raise PermissionDenied("task.error.not_your_unit")
    if row.status != TaskStatus.DONE:
        raise InvalidInput("task.error.not_done")
    if not reason.strip():
        raise InvalidInput("task.error.reason")
    _, nxt = current_and_next(row.due_at, Ladder.of(settings, task.ladder), cal, now)
    row.status, row.done_at, row.late, row.last_step = TaskStatus.OPEN, None, None, None
    row.next_step_at = now if now > row.due_at else (nxt.at if nxt else None)
    session.add(row)
    assert row.id is not None
    session.add(
        TaskLog(
            assignment_id=row.id, at=now, actor=actor.label, action="reopen", note=reason[:NOTE_MAX]
        )
    )
    await _notify(session, row, task, unit, "task.reopened", now, reason=reason[:NOTE_MAX])
    return row, task, unit


async def open_for_unit(
    session: AsyncSession, *, actor: Actor, unit_id: int | None = None
) -> list[tuple[TaskAssignment, Task]]:
    """List a unit's open tasks, soonest due first (staff: their own unit)."""
    require_staff(actor)
    if unit_id is None or not actor.has_any(frozenset({Role.ADMIN, Role.LEADER})):
        unit_id = actor.unit.id if actor.unit else -1
    stmt = (
        select(TaskAssignment, Task)
        .join(Task, col(Task.id) == TaskAssignment.task_id)
        .where(TaskAssignment.unit_id == unit_id, TaskAssignment.status == TaskStatus.OPEN.value)
        .order_by(col(TaskAssignment.due_at))
    )
    return list((await session.exec(stmt)).all())
