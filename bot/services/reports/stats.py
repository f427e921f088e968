"""Satisfaction statistics behind /stats: levels, elements, procedures, officers, trend."""

from __future__ import annotations

import re
import unicodedata
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import Any, Literal
from zoneinfo import ZoneInfo

from sqlalchemy import ColumnElement, case, literal
from sqlmodel import col, func, select
from sqlmodel.ext.asyncio.session import AsyncSession

from bot.i18n import t
from bot.messages import Text
from bot.models import Procedure, Rating, Role, Unit
from bot.services.errors import InvalidInput, PermissionDenied
from bot.services.org.access import Actor, require, require_unit_scope
from bot.services.org.names import name_sort_key
from bot.services.org.org import unit_by_code
from bot.services.ratings.ratings import ELEMENTS, LEVELS

Group = Literal["week", "month"]
FOLDS: dict[str, tuple[int, ...]] = {"satisfied": (5, 4), "neutral": (3,), "unsatisfied": (2, 1)}
SATISFIED = 4  # Hài lòng or better
PERIOD_DAYS = {"7d": 7, "30d": 30, "90d": 90}
DEFAULT_PERIOD = "30d"
WEEK_MAX = timedelta(days=90)
MAX_SPAN = timedelta(days=3 * 366)
RANGE_RE = re.compile(r"^(\d{1,2})/(\d{1,2})/(\d{4})-(\d{1,2})/(\d{1,2})/(\d{4})$")
WIDE_ROLES = frozenset({Role.ADMIN, Role.LEADER})


def quantize(numerator: int, denominator: int, places: int) -> Decimal | None:
    """Return numerator/denominator rounded half up to `places` decimals (None when 0/0)."""
    if not denominator:
        return None
    exponent = Decimal(1).scaleb(-places)
    return (Decimal(numerator) / Decimal(denominator)).quantize(exponent, ROUND_HALF_UP)


def percent(part: int, whole: int) -> Decimal:
    """Return part as a percentage of whole with one decimal (0.0 when whole is 0)."""
    return quantize(100 * part, whole, 1) or Decimal("0.0")


@dataclass(frozen=True)
class Tally:
    """Scores counted together: how many, their sum, how many were satisfied."""

    count: int = 0
    score_sum: int = 0
    satisfied: int = 0

    @property
    def average(self) -> Decimal | None:
        """Return the average score with two decimals (None when nothing was scored)."""
        return quantize(self.score_sum, self.count, 2)

    @property
    def satisfied_share(self) -> Decimal | None:
        """Return the share of satisfied scores in percent, one decimal."""
        return quantize(100 * self.satisfied, self.count, 1)

    def __add__(self, other: Tally) -> Tally:
        """Add two tallies."""
        return Tally(
            self.count + other.count,
            self.score_sum + other.score_sum,
            self.satisfied + other.satisfied,
        )


@dataclass(frozen=True)
class ProcedureRow:
    """Ratings of one procedure (code and name are None for ratings naming none)."""

    code: str | None
    name: str | None
    tally: Tally


@dataclass(frozen=True)
class OfficerRow:
    """Ratings naming one officer (names grouped case- and space-insensitively)."""

    name: str
    tally: Tally


@dataclass(frozen=True)
class UnitTally:
    """Ratings of one unit (the per-unit table leaders see)."""

    unit: Unit
    tally: Tally


@dataclass(frozen=True)
class TrendRow:
    """Ratings of one week or month; `start` is its first local day within the period."""

    start: date
    tally: Tally


@dataclass(frozen=True)
class Period:
    """A time range [since, until) and how its trend is grouped."""

    since: datetime
    until: datetime
    group: Group


@dataclass(frozen=True)
class Stats:
    """Satisfaction statistics of one unit (or all units) over a period."""

    unit: Unit | None
    period: Period
    tz: ZoneInfo
    levels: dict[int, int]
    elements: dict[str, Tally]
    procedures: tuple[ProcedureRow, ...]
    officers: tuple[OfficerRow, ...]
    trend: tuple[TrendRow, ...]
    units: tuple[UnitTally, ...] = ()  # every unit, most rated first; only for all units

    @property
    def total(self) -> int:
        """Return the number of ratings."""
        return sum(self.levels.values())

    @property
    def folded(self) -> dict[str, int]:
        """Return the counts folded to three levels: satisfied, neutral, unsatisfied."""
        return {fold: sum(self.levels[v] for v in values) for fold, values in FOLDS.items()}

    def share(self, count: int) -> Decimal:
        """Return a count as a percentage of all ratings, one decimal."""
        return percent(count, self.total)

    @property
    def first_day(self) -> date:
        """Return the period's first local day."""
        return self.period.since.astimezone(self.tz).date()

    @property
    def last_day(self) -> date:
        """Return the period's last local day."""
        return (self.period.until - timedelta(microseconds=1)).astimezone(self.tz).date()


def _usage_error() -> InvalidInput:
    """Return the error that shows the command's usage."""
    return InvalidInput("errors.usage", usage=Text("stats.usage"))


def _local_midnight(day: date, tz: ZoneInfo) -> datetime:
    """Return the UTC moment a local day starts."""
    return datetime.combine(day, time(), tzinfo=tz).astimezone(UTC)


def _make_period(since: datetime, until: datetime) -> Period:
    """Return a period grouped by week when at most 90 days long, else by month."""
    if until <= since or until - since > MAX_SPAN:
        raise _usage_error()
    return Period(since, until, "week" if until - since <= WEEK_MAX else "month")


def _date_range(match: re.Match[str], tz: ZoneInfo) -> Period:
    """Return the period of a typed 'dd/mm/yyyy-dd/mm/yyyy', both days included."""
    d1, m1, y1, d2, m2, y2 = (int(g) for g in match.groups())
    try:
        first, last = date(y1, m1, d1), date(y2, m2, d2)
    except ValueError:
        raise _usage_error() from None
    return _make_period(_local_midnight(first, tz), _local_midnight(last + timedelta(days=1), tz))


def parse_period(text: str | None, *, now: datetime, tz: ZoneInfo) -> Period:
    """Read 7d, 30d, 90d, month, year or dd/mm/yyyy-dd/mm/yyyy (30d when None)."""
    token = (text or DEFAULT_PERIOD).strip().lower()
    today = now.astimezone(tz).date()
    if token in PERIOD_DAYS:
        start = today - timedelta(days=PERIOD_DAYS[token] - 1)
        return _make_period(_local_midnight(start, tz), now)
    if token in ("month", "year"):
        start = today.replace(day=1) if token == "month" else today.replace(month=1, day=1)
        return _make_period(_local_midnight(start, tz), now)
    match = RANGE_RE.match(token)
    if match is None:
        raise _usage_error()
    return _date_range(match, tz)


def looks_like_period(token: str) -> bool:
    """Tell whether a typed word is meant as a period (valid or not)."""
    low = token.lower()
    return low in ("month", "year") or bool(re.fullmatch(r"\d+d|[\d/.\-]+", low))


def _next_start(day: date, group: Group) -> date:
    """Return the first day of the next week (Monday) or month."""
    if group == "week":
        return day + timedelta(days=7 - day.weekday())
    return date(day.year + day.month // 12, day.month % 12 + 1, 1)


def buckets(period: Period, tz: ZoneInfo) -> list[tuple[date, datetime]]:
    """Return each week's or month's first local day and UTC start within the period."""
    day = period.since.astimezone(tz).date()
    out = [(day, period.since)]
    while True:
        day = _next_start(day, period.group)
        start = _local_midnight(day, tz)
        if start >= period.until:
            return out
        out.append((day, start))


async def _scope(session: AsyncSession, *, actor: Actor, unit_code: str | None) -> Unit | None:
    """Return the unit the actor may see (None: all units); refuse anything else."""
    require(actor, Role.ADMIN, Role.LEADER, Role.UNIT_HEAD)
    if unit_code is None:
        if actor.has_any(WIDE_ROLES):
            return None
        if actor.unit is None:
            raise PermissionDenied("errors.forbidden")
        return actor.unit
    unit = await unit_by_code(session, unit_code)
    require_unit_scope(actor, unit)
    return unit


def _filters(unit: Unit | None, period: Period) -> list[ColumnElement[bool]]:
    """Return the WHERE conditions of the ratings counted."""
    conditions = [
        col(Rating.created_at) >= period.since,
        col(Rating.created_at) < period.until,
    ]
    if unit is not None:
        conditions.append(col(Rating.unit_id) == unit.id)
    return conditions


def _satisfied(score: Any) -> Any:
    """Return SUM(score >= 4) as an SQL expression."""
    return func.coalesce(func.sum(case((score >= SATISFIED, 1), else_=0)), 0)


def _tally(count: Any, total: Any, satisfied: Any = 0) -> Tally:
    """Build a tally from SQL aggregates (sums may be None)."""
    return Tally(int(count or 0), int(total or 0), int(satisfied or 0))


async def _levels(session: AsyncSession, where: list[ColumnElement[bool]]) -> dict[int, int]:
    """Count the ratings per overall level."""
    stmt = select(Rating.overall, func.count()).where(*where).group_by(col(Rating.overall))
    counts = dict.fromkeys(LEVELS, 0)
    for level, count in (await session.exec(stmt)).all():
        counts[int(level)] = int(count)
    return counts


async def _elements(session: AsyncSession, where: list[ColumnElement[bool]]) -> dict[str, Tally]:
    """Count and sum each SIPAS element's scores, skipped answers left out."""
    columns: list[Any] = []
    for name in ELEMENTS:
        score = col(getattr(Rating, name))
        columns += [func.count(score), func.sum(score), _satisfied(score)]
    row = (await session.exec(select(*columns).where(*where))).one()
    return {name: _tally(*row[3 * i : 3 * i + 3]) for i, name in enumerate(ELEMENTS)}


async def _procedures(
    session: AsyncSession, where: list[ColumnElement[bool]]
) -> tuple[ProcedureRow, ...]:
    """Count ratings per procedure, most rated first."""
    overall = col(Rating.overall)
    columns: list[Any] = [
        Procedure.code,
        Procedure.name,
        func.count(),
        func.sum(overall),
        _satisfied(overall),
    ]
    stmt = (
        select(*columns)
        .select_from(Rating)
        .outerjoin(Procedure, col(Procedure.id) == col(Rating.procedure_id))
        .where(*where)
        .group_by(col(Rating.procedure_id), col(Procedure.code), col(Procedure.name))
    )
    rows = [ProcedureRow(c, n, _tally(k, s, h)) for c, n, k, s, h in (await session.exec(stmt))]
    return tuple(sorted(rows, key=lambda r: (-r.tally.count, r.code is None, r.code or "")))


def officer_key(name: str) -> str:
    """Return the grouping key of an officer's name: NFC, spaces collapsed, case folded."""
    return " ".join(unicodedata.normalize("NFC", name).split()).casefold()


async def _officers(
    session: AsyncSession, where: list[ColumnElement[bool]]
) -> tuple[OfficerRow, ...]:
    """Count ratings per officer named, grouping spellings that differ in case or spaces."""
    overall = col(Rating.overall)
    stmt = (
        select(Rating.officer, func.count(), func.sum(overall), _satisfied(overall))
        .where(*where, col(Rating.officer).is_not(None))
        .group_by(col(Rating.officer))
    )
    tallies: dict[str, Tally] = {}
    spellings: dict[str, Counter[str]] = {}
    for raw, count, total, satisfied in await session.exec(stmt):
        key = officer_key(raw or "")
        if not key:
            continue
        tallies[key] = tallies.get(key, Tally()) + _tally(count, total, satisfied)
        shown = " ".join(unicodedata.normalize("NFC", raw or "").split())
        spellings.setdefault(key, Counter())[shown] += int(count)
    rows = [OfficerRow(_commonest(spellings[k]), tallies[k]) for k in tallies]
    return tuple(sorted(rows, key=lambda r: (-r.tally.count, name_sort_key(r.name))))


def _commonest(spellings: Counter[str]) -> str:
    """Return the most used spelling of a name (alphabetically first on a tie)."""
    return min(spellings, key=lambda s: (-spellings[s], s))


async def _units(session: AsyncSession, where: list[ColumnElement[bool]]) -> tuple[UnitTally, ...]:
    """Count ratings per unit, every unit listed (those without ratings last), by code within."""
    overall = col(Rating.overall)
    stmt = (
        select(col(Rating.unit_id), func.count(), func.sum(overall), _satisfied(overall))
        .where(*where)
        .group_by(col(Rating.unit_id))
    )
    found = {int(u): _tally(k, s, h) for u, k, s, h in (await session.exec(stmt)).all()}
    units = (await session.exec(select(Unit))).all()
    rows = [UnitTally(u, found.get(u.id or 0, Tally())) for u in units]
    return tuple(sorted(rows, key=lambda r: (-r.tally.count, r.unit.code)))


async def _trend(
    session: AsyncSession, where: list[ColumnElement[bool]], period: Period, tz: ZoneInfo
) -> tuple[TrendRow, ...]:
    """Count ratings per local week or month, every bucket of the period listed."""
    starts = buckets(period, tz)
    created = col(Rating.created_at)
    whens = [(created < start, i) for i, (_, start) in enumerate(starts[1:])]
    bucket = case(*whens, else_=len(starts) - 1) if whens else literal(0)
    sub: Any = select(bucket.label("bucket"), col(Rating.overall).label("overall")).where(*where)
    inner = sub.subquery()
    stmt = select(
        inner.c.bucket, func.count(), func.sum(inner.c.overall), _satisfied(inner.c.overall)
    ).group_by(inner.c.bucket)
    found = {int(b): _tally(k, s, h) for b, k, s, h in (await session.exec(stmt)).all()}
    return tuple(TrendRow(day, found.get(i, Tally())) for i, (day, _) in enumerate(starts))


async def stats(
    session: AsyncSession,
    *,
    actor: Actor,
    unit_code: str | None,
    since: datetime,
    until: datetime,
    group: Group,
    tz: ZoneInfo,
) -> Stats:
    """Return the satisfaction statistics a head (own unit) or a leader (any unit) may see."""
    unit = await _scope(session, actor=actor, unit_code=unit_code)
    period = Period(since, until, group)
    where = _filters(unit, period)
    return Stats(
        unit=unit,
        period=period,
        tz=tz,
        levels=await _levels(session, where),
        elements=await _elements(session, where),
        procedures=await _procedures(session, where),
        officers=await _officers(session, where),
        trend=await _trend(session, where, period, tz),
        units=await _units(session, where) if unit is None else (),
    )


def unit_label(result: Stats, locale: str) -> str:
    """Return the unit's name, or 'all units' in the reader's language."""
    return result.unit.name if result.unit is not None else t("stats.all_units", locale)


def trend_label(row: TrendRow, group: Group) -> str:
    """Return a week's first day (dd/mm/yyyy) or a month (mm/yyyy)."""
    return row.start.strftime("%d/%m/%Y" if group == "week" else "%m/%Y")
