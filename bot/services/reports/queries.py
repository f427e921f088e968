"""The scoreboard's SQL: one GROUP BY query per source table, counted per unit in the database.

Ratings are read per UTC day from rating_daily (kept as each rating is stored) and, for the
part-days at a period's ends, from the ratings. The other tables are read through their report
indexes, one range of the period per unit. Medians use percentile_cont on PostgreSQL; SQLite,
which has no median, gives the delays (worked out exactly in SQL) and Python takes their
medians; both give the same value (the mean of the two middle ones when their number is even).
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from sqlalchemy import (
    BigInteger,
    ColumnElement,
    and_,
    case,
    cast,
    literal_column,
    not_,
    or_,
    text,
    union_all,
)
from sqlmodel import col, func, select
from sqlmodel.ext.asyncio.session import AsyncSession

from bot.models import (
    Apology,
    ApologyStatus,
    CaseStatus,
    Directive,
    DirectiveRecipient,
    Dossier,
    DossierStatus,
    FollowUpCase,
    Rating,
    TaskAssignment,
    TaskStatus,
)
from bot.services.ratings import daily

SATISFIED = 4  # Hài lòng or better
UNSATISFIED = 2  # Không hài lòng or worse
# Open dossiers the unit is late on once their appointment has passed (chờ bổ sung waits on
# the citizen, so it is not the unit's delay).
UNIT_OPEN = (DossierStatus.RECEIVED.value, DossierStatus.PROCESSING.value)

Counts = dict[int, tuple[Any, ...]]
LATE, FAULTED, CLEAN = 2, 1, 0  # a dossier's state, worked out once per row


@dataclass(frozen=True)
class Span:
    """What the queries count: [since, until) in UTC, its local days, and 'now' for overdue."""

    since: datetime
    until: datetime
    first_day: date
    last_day: date
    as_of: datetime


async def prepare(session: AsyncSession) -> None:
    """Turn PostgreSQL's JIT off for this transaction: compiling costs more than these take."""
    if session.get_bind().dialect.name == "postgresql":
        await (await session.connection()).execute(text("SET LOCAL jit = off"))


def _sum(condition: ColumnElement[bool]) -> Any:
    """Return SUM(CASE WHEN condition THEN 1 ELSE 0 END), 0 on no rows."""
    return func.coalesce(func.sum(case((condition, 1), else_=0)), 0)


async def _grouped(session: AsyncSession, stmt: Any) -> Counts:
    """Run a query whose first column is the unit id; return the other columns by unit."""
    return {int(row[0]): tuple(row[1:]) for row in (await session.exec(stmt)).all()}


def _of_units(column: Any, units: Sequence[int]) -> ColumnElement[bool]:
    """Return 'column IN (the units)'.

    The report indexes lead with the unit: with the units listed, both databases read one
    range of the period per unit rather than the whole index (all of history).
    """
    return col(column).in_(list(units))


def _between(column: Any, span: Span) -> list[ColumnElement[bool]]:
    """Return since <= column < until."""
    return _range(column, span.since, span.until)


def _range(column: Any, since: datetime, until: datetime) -> list[ColumnElement[bool]]:
    """Return since <= column < until."""
    return [col(column) >= since, col(column) < until]


def _whole_days(span: Span) -> tuple[date, date]:
    """Return the UTC days wholly inside the span, [first, end) (first == end: none)."""
    since, until = span.since.astimezone(UTC), span.until.astimezone(UTC)
    first = since.date() + timedelta(days=0 if since.time() == time() else 1)
    return first, max(first, until.date())


def _midnight(day: date) -> datetime:
    """Return the UTC midnight a day starts at."""
    return datetime.combine(day, time(), tzinfo=UTC)


def _raw_ratings(units: Sequence[int], since: datetime, until: datetime) -> Any:
    """Count the ratings of [since, until) per unit from the rows: levels, element counts, sums."""
    overall = col(Rating.overall)
    columns: list[Any] = [col(Rating.unit_id).label("unit_id")]
    columns += [func.sum(case((overall == level, 1), else_=0)) for level in daily.LEVEL_COLUMNS]
    for name in daily.ELEMENTS:
        score = col(getattr(Rating, name))
        columns += [func.count(score), func.coalesce(func.sum(score), 0)]
    stmt = select(*columns).where(
        _of_units(Rating.unit_id, units), *_range(Rating.created_at, since, until)
    )
    return stmt.group_by(col(Rating.unit_id))


async def ratings(session: AsyncSession, span: Span, units: Sequence[int]) -> Counts:
    """Count ratings per unit: each level 1–5, then each element's count and sum.

    Whole UTC days come from rating_daily; the part-days at either end from the ratings.
    """
    first, end = _whole_days(span)
    days = daily.TABLE.c
    parts: list[Any] = []
    if first < end:
        summed = [days.unit_id, *(days[c] for c in daily.COUNTS)]
        parts.append(select(*summed).where(days.day >= first, days.day < end))
        edges = [(span.since, _midnight(first)), (_midnight(end), span.until)]
    else:
        edges = [(span.since, span.until)]
    parts += [_raw_ratings(units, since, until) for since, until in edges if since < until]
    if not parts:  # an empty span
        return {}
    together: Any = parts[0] if len(parts) == 1 else union_all(*parts)
    both = together.subquery()
    unit, *counts = list(both.c)
    stmt: Any = select(unit, *(func.sum(c) for c in counts)).group_by(unit)
    return await _grouped(session, stmt)


def _recipients(span: Span) -> list[ColumnElement[bool]]:
    """Return the conditions of the notices counted: directives issued in the span, to units."""
    return [*_between(Directive.created_at, span), col(DirectiveRecipient.unit_id).is_not(None)]


def _acked(span: Span) -> ColumnElement[bool]:
    """Return 'acknowledged before the span ended'."""
    return and_(
        col(DirectiveRecipient.acked_at).is_not(None), col(DirectiveRecipient.acked_at) < span.until
    )


async def directives(session: AsyncSession, span: Span) -> Counts:
    """Count notices sent and acknowledged per unit."""
    stmt = (
        select(col(DirectiveRecipient.unit_id), func.count(), _sum(_acked(span)))
        .join(Directive, col(Directive.id) == col(DirectiveRecipient.directive_id))
        .where(*_recipients(span))
        .group_by(col(DirectiveRecipient.unit_id))
    )
    return await _grouped(session, stmt)


def _microseconds(session: AsyncSession, later: Any, earlier: Any) -> Any:
    """Return the whole microseconds between two timestamp columns, exactly, as SQL."""
    if session.get_bind().dialect.name == "postgresql":
        return cast(func.extract("epoch", later - earlier) * 1_000_000, BigInteger)

    def micros(column: Any) -> Any:
        """Return a stored 'YYYY-MM-DD HH:MM:SS.ffffff' as microseconds since 1970."""
        seconds = cast(func.strftime("%s", column), BigInteger)
        return seconds * 1_000_000 + cast(func.substr(column, 21, 6), BigInteger)

    return micros(later) - micros(earlier)


async def _medians(session: AsyncSession, base: Any) -> tuple[dict[int, float], float | None]:
    """Return the median of `base`'s microseconds d per unit and over all, in whole seconds."""
    sub = base.subquery()
    if session.get_bind().dialect.name == "postgresql":
        return await _pg_medians(session, sub)
    return await _sqlite_medians(session, sub)


async def _pg_medians(session: AsyncSession, sub: Any) -> tuple[dict[int, float], float | None]:
    """Return the medians with percentile_cont, per unit and over all in one GROUPING SETS."""
    median = func.percentile_cont(0.5).within_group(sub.c.d)
    stmt = select(sub.c.unit_id, func.grouping(sub.c.unit_id), median).group_by(
        func.grouping_sets(sub.c.unit_id, text("()"))
    )
    per_unit: dict[int, float] = {}
    overall = None
    for unit_id, is_total, value in (await session.exec(stmt)).all():
        if is_total:
            overall = None if value is None else _seconds(value)
        else:
            per_unit[int(unit_id)] = _seconds(value)
    return per_unit, overall


async def _sqlite_medians(session: AsyncSession, sub: Any) -> tuple[dict[int, float], float | None]:
    """Return the medians of the delays SQL worked out, taken here (SQLite has no median).

    Sorting a period's delays in Python costs less than SQLite's two window sorts.
    """
    delays: dict[int, list[int]] = {}
    for unit_id, d in (await session.exec(select(sub.c.unit_id, sub.c.d))).all():
        delays.setdefault(int(unit_id), []).append(int(d))
    per_unit = {u: _seconds(statistics.median(ds)) for u, ds in delays.items()}
    everyone = [d for ds in delays.values() for d in ds]
    return per_unit, _seconds(statistics.median(everyone)) if everyone else None


def _seconds(micros: Any) -> float:
    """Return microseconds as whole seconds (rounded as Python's round() does)."""
    return float(round(float(micros) / 1_000_000))


async def ack_medians(session: AsyncSession, span: Span) -> tuple[dict[int, float], float | None]:
    """Return the median seconds from a directive's issue to its acknowledgement: per unit, all."""
    delay = _microseconds(session, col(DirectiveRecipient.acked_at), col(Directive.created_at))
    base: Any = (
        select(col(DirectiveRecipient.unit_id).label("unit_id"), delay.label("d"))
        .join(Directive, col(Directive.id) == col(DirectiveRecipient.directive_id))
        .where(*_recipients(span), _acked(span))
    )
    return await _medians(session, base)


async def tasks(session: AsyncSession, span: Span, units: Sequence[int]) -> Counts:
    """Count per unit the assignments due in the span: all, counted, on time, overdue."""
    done = col(TaskAssignment.status) == TaskStatus.DONE.value
    due_at, done_at = col(TaskAssignment.due_at), col(TaskAssignment.done_at)
    columns: list[Any] = [
        col(TaskAssignment.unit_id),
        func.count(),
        _sum(or_(done, due_at < span.as_of)),
        _sum(and_(done, done_at.is_not(None), done_at <= due_at)),
        _sum(and_(not_(done), due_at < span.as_of)),
    ]
    stmt = select(*columns).where(
        _of_units(TaskAssignment.unit_id, units), *_between(TaskAssignment.due_at, span)
    )
    return await _grouped(session, stmt.group_by(col(TaskAssignment.unit_id)))


async def feedback(session: AsyncSession, span: Span, units: Sequence[int]) -> Counts:
    """Count per unit the follow-up cases opened in the span, and those closed by their due time."""
    closed_at = col(FollowUpCase.closed_at)
    on_time = and_(
        col(FollowUpCase.status) == CaseStatus.CLOSED.value,
        closed_at.is_not(None),
        closed_at <= col(FollowUpCase.due_at),
    )
    stmt = select(col(FollowUpCase.unit_id), func.count(), _sum(on_time)).where(
        _of_units(FollowUpCase.unit_id, units), *_between(FollowUpCase.opened_at, span)
    )
    return await _grouped(session, stmt.group_by(col(FollowUpCase.unit_id)))


def _dossier_late(span: Span) -> ColumnElement[bool]:
    """Return 'late': returned after the appointment, still open past it, or apologised for."""
    returned, appointment = col(Dossier.returned_at), col(Dossier.appointment_at)
    apologised = select(col(Apology.dossier_id)).where(
        col(Apology.status) == ApologyStatus.SENT.value
    )
    return or_(
        and_(returned.is_not(None), returned > appointment),
        and_(returned.is_(None), col(Dossier.status).in_(UNIT_OPEN), appointment < span.as_of),
        col(Dossier.id).in_(apologised),
    )


def _dossier_faulted() -> ColumnElement[bool]:
    """Return 'rated unsatisfied or complained about' (a follow-up case on its rating).

    The unsatisfied ones are read from ix_rating_dossier_bad, which holds only those (its
    condition is written out as literals, as the index's is, so both databases use it); the
    case from the dossier's rating, outer-joined (a dossier has at most one rating and a
    rating at most one case, so no dossier is counted twice).
    """
    unsatisfied = select(col(Rating.dossier_id)).where(
        col(Rating.overall) <= literal_column(str(UNSATISFIED)), col(Rating.dossier_id).is_not(None)
    )
    return or_(col(Dossier.id).in_(unsatisfied), col(FollowUpCase.id).is_not(None))


async def dossiers(session: AsyncSession, span: Span, units: Sequence[int]) -> Counts:
    """Count per unit the dossiers received in the span (not cancelled): all, late, clean."""
    state = case((_dossier_late(span), LATE), (_dossier_faulted(), FAULTED), else_=CLEAN)
    received = col(Dossier.received_on)
    each = (
        select(col(Dossier.unit_id).label("unit_id"), state.label("state"))
        .select_from(Dossier)
        .outerjoin(Rating, col(Rating.dossier_id) == col(Dossier.id))
        .outerjoin(FollowUpCase, col(FollowUpCase.rating_id) == col(Rating.id))
        .where(
            _of_units(Dossier.unit_id, units),
            received >= span.first_day,
            received <= span.last_day,
            col(Dossier.status) != DossierStatus.CANCELLED.value,
        )
        .subquery()
    )
    stmt = select(
        each.c.unit_id, func.count(), _sum(each.c.state == LATE), _sum(each.c.state == CLEAN)
    ).group_by(each.c.unit_id)
    return await _grouped(session, stmt)


async def apologies(session: AsyncSession, span: Span) -> Counts:
    """Count per unit the apologies sent in the span."""
    stmt = select(col(Apology.unit_id), func.count()).where(
        col(Apology.status) == ApologyStatus.SENT.value, *_between(Apology.sent_at, span)
    )
    return await _grouped(session, stmt.group_by(col(Apology.unit_id)))
