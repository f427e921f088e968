"""What the web dashboard lists: directives, tasks, ratings, cases and apologies, by unit.

Every listing takes the actor and a unit code (or none): admins and leaders may ask for any unit
or all of them, a unit head gets their own unit and is refused any other. Each returns the rows
(newest first, at most `limit`) and how many there are in all.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import partial
from typing import Any, Generic, TypeVar, TypeVarTuple

from sqlalchemy import ColumnElement
from sqlmodel import col, func, select
from sqlmodel.ext.asyncio.session import AsyncSession
from sqlmodel.sql.expression import Select

from bot.models import (
    Apology,
    Directive,
    DirectiveRecipient,
    Dossier,
    FollowUpCase,
    Procedure,
    Rating,
    Role,
    Task,
    TaskAssignment,
    TaskStatus,
    Unit,
)
from bot.services.errors import InvalidInput, PermissionDenied
from bot.services.org.access import Actor, require, require_unit_scope
from bot.services.org.org import unit_by_code
from bot.services.ratings.ratings import LEVELS

WIDE_ROLES = frozenset({Role.ADMIN, Role.LEADER})
LIMIT = 200
Row = TypeVar("Row")
Shown = TypeVarTuple("Shown")  # what a listing's query selects


@dataclass(frozen=True)
class Listing(Generic[Row]):
    """Rows of one page and how many match in all."""

    unit: Unit | None  # None: every unit
    rows: list[Row]
    total: int


async def visible_unit(
    session: AsyncSession, *, actor: Actor, unit_code: str | None
) -> Unit | None:
    """Return the unit asked for if the actor may see it (None: all units); refuse otherwise."""
    require(actor, Role.ADMIN, Role.LEADER, Role.UNIT_HEAD)
    if not unit_code:
        if actor.has_any(WIDE_ROLES):
            return None
        if actor.unit is None:
            raise PermissionDenied("errors.forbidden")
        return actor.unit
    unit = await unit_by_code(session, unit_code)
    require_unit_scope(actor, unit)
    return unit


async def visible_units(session: AsyncSession, *, actor: Actor) -> list[Unit]:
    """Return the units an actor may pick from: all for leadership, their own for a head."""
    require(actor, Role.ADMIN, Role.LEADER, Role.UNIT_HEAD)
    if actor.has_any(WIDE_ROLES):
        return list((await session.exec(select(Unit).order_by(col(Unit.code)))).all())
    return [actor.unit] if actor.unit is not None else []


def _in_unit(column: Any, unit: Unit | None) -> list[ColumnElement[bool]]:
    """Return the condition 'in this unit' (none for all units)."""
    return [col(column) == unit.id] if unit is not None else []


async def _count(session: AsyncSession, stmt: Any) -> int:
    """Return how many rows a query gives."""
    return int((await session.exec(select(func.count()).select_from(stmt.subquery()))).one())


async def _page(
    session: AsyncSession,
    unit: Unit | None,
    stmt: Select[*Shown],
    order: Sequence[Any],
    limit: int,
    line: Callable[[*Shown], Row],
) -> Listing[Row]:
    """Return a listing's first `limit` rows in `order`, each made a line, and its total."""
    total = await _count(session, stmt)
    found = await session.exec(stmt.order_by(*order).limit(limit))
    return Listing(unit, [line(*row) for row in found.all()], total)


def _by_unit(stmt: Select[*Shown], unit_id: Any, unit: Unit | None) -> Select[*Shown]:
    """Return the query joined to the unit a row belongs to, in the scope's unit (or all)."""
    return stmt.join(Unit, col(Unit.id) == col(unit_id)).where(*_in_unit(unit_id, unit))


@dataclass(frozen=True)
class DirectiveLine:
    """A directive and its acknowledgements within the scope."""

    id: int
    number: str
    title: str
    issued_on: datetime
    ack_deadline: datetime
    closed: bool
    total: int
    acked: int

    @classmethod
    def of(cls, d: Directive, total: int, acked: int) -> DirectiveLine:
        """Return a directive's line."""
        closed = d.closed_at is not None
        return cls(d.id or 0, d.number, d.title, d.created_at, d.ack_deadline, closed, total, acked)


async def directives(
    session: AsyncSession, *, actor: Actor, unit_code: str | None, limit: int = LIMIT
) -> Listing[DirectiveLine]:
    """List directives sent to the scope's people, with notices sent and acknowledged."""
    unit = await visible_unit(session, actor=actor, unit_code=unit_code)
    acked = func.count(col(DirectiveRecipient.acked_at))
    stmt = (
        select(Directive, func.count(), acked)
        .join(DirectiveRecipient, col(DirectiveRecipient.directive_id) == col(Directive.id))
        .where(*_in_unit(DirectiveRecipient.unit_id, unit))
        .group_by(col(Directive.id))
    )
    return await _page(session, unit, stmt, [col(Directive.id).desc()], limit, DirectiveLine.of)


@dataclass(frozen=True)
class TaskLine:
    """One unit's assignment of a task."""

    id: int
    title: str
    unit: str
    due_at: datetime
    done_at: datetime | None
    status: str  # done, late (done after the due time), overdue, open

    @property
    def finished(self) -> bool:
        """Tell whether the unit reported it done."""
        return self.done_at is not None

    @classmethod
    def of(cls, now: datetime, a: TaskAssignment, task: Task, unit: str) -> TaskLine:
        """Return an assignment's line as it stands at `now`."""
        return cls(a.id or 0, task.title, unit, a.due_at, a.done_at, _task_state(a, now))


def _task_state(row: TaskAssignment, now: datetime) -> str:
    """Return how an assignment stands: done on time, done late, overdue or open."""
    if row.status == TaskStatus.DONE:
        late = row.done_at is not None and row.done_at > row.due_at
        return "late" if late else "done"
    return "overdue" if row.due_at < now else "open"


async def tasks(
    session: AsyncSession,
    *,
    actor: Actor,
    unit_code: str | None,
    now: datetime,
    limit: int = LIMIT,
) -> Listing[TaskLine]:
    """List task assignments in the scope, latest due first."""
    unit = await visible_unit(session, actor=actor, unit_code=unit_code)
    stmt = select(TaskAssignment, Task, Unit.name).join(
        Task, col(Task.id) == col(TaskAssignment.task_id)
    )
    order = [col(TaskAssignment.due_at).desc(), col(TaskAssignment.id).desc()]
    stmt = _by_unit(stmt, TaskAssignment.unit_id, unit)
    return await _page(session, unit, stmt, order, limit, partial(TaskLine.of, now))


@dataclass(frozen=True)
class RatingLine:
    """One citizen's rating (never their phone or who they are)."""

    created_at: datetime
    unit: str
    procedure: str | None
    overall: int
    comment: str | None

    @classmethod
    def of(cls, r: Rating, unit: str, procedure: str | None) -> RatingLine:
        """Return a rating's line."""
        return cls(r.created_at, unit, procedure, r.overall, r.comment)


async def ratings(
    session: AsyncSession,
    *,
    actor: Actor,
    unit_code: str | None,
    since: datetime,
    until: datetime,
    level: int | None,
    limit: int = LIMIT,
) -> Listing[RatingLine]:
    """List the ratings of a period in the scope, at one level or all, newest first."""
    if level is not None and level not in LEVELS:
        raise InvalidInput("dashboard.error.level")
    unit = await visible_unit(session, actor=actor, unit_code=unit_code)
    where = [col(Rating.created_at) >= since, col(Rating.created_at) < until]
    if level is not None:
        where.append(col(Rating.overall) == level)
    stmt = (
        select(Rating, Unit.name, Procedure.name)
        .outerjoin(Procedure, col(Procedure.id) == col(Rating.procedure_id))
        .where(*where)
    )
    order = [col(Rating.created_at).desc(), col(Rating.id).desc()]
    stmt = _by_unit(stmt, Rating.unit_id, unit)
    return await _page(session, unit, stmt, order, limit, RatingLine.of)


@dataclass(frozen=True)
class CaseLine:
    """The follow-up of one bad rating."""

    id: int
    unit: str
    overall: int
    status: str
    opened_at: datetime
    due_at: datetime
    answered_at: datetime | None
    closed_at: datetime | None

    @property
    def late(self) -> bool:
        """Tell whether it was closed after its due time."""
        return self.closed_at is not None and self.closed_at > self.due_at

    @classmethod
    def of(cls, c: FollowUpCase, overall: int, unit: str) -> CaseLine:
        """Return a case's line."""
        return cls(
            c.id or 0,
            unit,
            int(overall),
            str(c.status),
            c.opened_at,
            c.due_at,
            c.answered_at,
            c.closed_at,
        )


async def cases(
    session: AsyncSession, *, actor: Actor, unit_code: str | None, limit: int = LIMIT
) -> Listing[CaseLine]:
    """List follow-up cases in the scope, newest first."""
    unit = await visible_unit(session, actor=actor, unit_code=unit_code)
    stmt = select(FollowUpCase, Rating.overall, Unit.name).join(
        Rating, col(Rating.id) == col(FollowUpCase.rating_id)
    )
    stmt = _by_unit(stmt, FollowUpCase.unit_id, unit)
    return await _page(session, unit, stmt, [col(FollowUpCase.id).desc()], limit, CaseLine.of)


@dataclass(frozen=True)
class ApologyLine:
    """An apology for a late dossier."""

    id: int
    dossier: str
    unit: str
    status: str
    asked_at: datetime
    sent_at: datetime | None
    number: str | None
    new_return_at: datetime | None

    @classmethod
    def of(cls, a: Apology, dossier: str, unit: str) -> ApologyLine:
        """Return an apology's line (its number as the slip writes it: 12/2026)."""
        number = f"{a.number}/{a.number_year}" if a.number is not None else None
        return cls(
            a.id or 0, dossier, unit, str(a.status), a.asked_at, a.sent_at, number, a.new_return_at
        )


async def apologies(
    session: AsyncSession, *, actor: Actor, unit_code: str | None, limit: int = LIMIT
) -> Listing[ApologyLine]:
    """List apologies in the scope, newest first."""
    unit = await visible_unit(session, actor=actor, unit_code=unit_code)
    stmt = select(Apology, Dossier.code, Unit.name).join(
        Dossier, col(Dossier.id) == col(Apology.dossier_id)
    )
    stmt = _by_unit(stmt, Apology.unit_id, unit)
    return await _page(session, unit, stmt, [col(Apology.id).desc()], limit, ApologyLine.of)
