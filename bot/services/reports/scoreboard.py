"""The per-unit scoreboard (thi đua) of a period: figures, emulation score, ranking, change.

Every figure is counted in the database (bot.services.reports.queries); this module only adds
up per-unit aggregates, weighs the five rates and ranks the units.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, time, timedelta
from decimal import ROUND_HALF_UP, Decimal
from fractions import Fraction
from zoneinfo import ZoneInfo

from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from bot.config import ReportSettings
from bot.models import Role, Unit
from bot.services.errors import PermissionDenied
from bot.services.org.access import Actor, require
from bot.services.ratings.ratings import ELEMENTS, LEVELS
from bot.services.reports import queries
from bot.services.reports.queries import Span

INDICATORS = ("ack", "tasks", "satisfaction", "feedback", "dossiers")  # the weights' names
WIDE_ROLES = frozenset({Role.ADMIN, Role.LEADER})


def _percent(part: int, whole: int) -> Decimal | None:
    """Return part/whole in percent, one decimal, rounded half up (None when whole is 0)."""
    if not whole:
        return None
    return (Decimal(100 * part) / Decimal(whole)).quantize(Decimal("0.1"), ROUND_HALF_UP)


def _round(value: Fraction, places: int) -> Decimal:
    """Return an exact fraction rounded half up to some decimals."""
    exact = Decimal(value.numerator) / Decimal(value.denominator)
    return exact.quantize(Decimal(1).scaleb(-places), ROUND_HALF_UP)


@dataclass(frozen=True)
class Window:
    """A report period: [since, until) in UTC, read in the agency's time zone."""

    since: datetime
    until: datetime
    tz: ZoneInfo

    @classmethod
    def days(cls, first: date, last: date, tz: ZoneInfo) -> Window:
        """Return the period from a local day's midnight to the midnight after another."""
        start = datetime.combine(first, time(), tzinfo=tz).astimezone(UTC)
        end = datetime.combine(last + timedelta(days=1), time(), tzinfo=tz).astimezone(UTC)
        return cls(start, end, tz)

    @classmethod
    def month(cls, year: int, month: int, tz: ZoneInfo) -> Window:
        """Return a calendar month in local time."""
        nxt = date(year + month // 12, month % 12 + 1, 1)
        return cls.days(date(year, month, 1), nxt - timedelta(days=1), tz)

    @property
    def first_day(self) -> date:
        """Return the first local day."""
        return self.since.astimezone(self.tz).date()

    @property
    def last_day(self) -> date:
        """Return the last local day (the one holding the last moment before `until`)."""
        return (self.until - timedelta(microseconds=1)).astimezone(self.tz).date()

    def previous(self) -> Window:
        """Return the period of the same length just before this one."""
        return Window(self.since - (self.until - self.since), self.since, self.tz)

    def span(self, now: datetime) -> Span:
        """Return what the queries count, overdue judged at `now` (or the end, if earlier)."""
        return Span(self.since, self.until, self.first_day, self.last_day, min(now, self.until))


@dataclass(frozen=True)
class Figures:
    """The counts of one unit (or all units) over a period, and the rates made from them."""

    notices: int = 0  # directive notices sent to the unit's people
    acked: int = 0  # of those, acknowledged before the period ended
    ack_median_seconds: float | None = None
    tasks_due: int = 0  # assignments due in the period
    tasks_counted: int = 0  # of those, done or past due: the on-time rate's denominator
    tasks_on_time: int = 0
    tasks_overdue: int = 0  # still open past their due time
    levels: dict[int, int] = field(default_factory=lambda: dict.fromkeys(LEVELS, 0))
    element_counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(ELEMENTS, 0))
    element_sums: dict[str, int] = field(default_factory=lambda: dict.fromkeys(ELEMENTS, 0))
    feedback: int = 0  # follow-up cases opened
    feedback_on_time: int = 0  # closed by their due time
    dossiers: int = 0  # received, not cancelled
    dossiers_clean: int = 0  # neither rated unsatisfied, nor complained about, nor late
    dossiers_late: int = 0
    apologies_sent: int = 0

    @property
    def ratings(self) -> int:
        """Return the number of ratings."""
        return sum(self.levels.values())

    @property
    def satisfied(self) -> int:
        """Return the ratings 'Hài lòng' or better."""
        return self.levels[5] + self.levels[4]

    @property
    def ack_rate(self) -> Decimal | None:
        """Return the acknowledged share of notices, in percent."""
        return _percent(self.acked, self.notices)

    @property
    def on_time_rate(self) -> Decimal | None:
        """Return the share of tasks done on time among those done or past due, in percent."""
        return _percent(self.tasks_on_time, self.tasks_counted)

    @property
    def satisfied_share(self) -> Decimal | None:
        """Return the share of satisfied ratings, in percent."""
        return _percent(self.satisfied, self.ratings)

    @property
    def feedback_rate(self) -> Decimal | None:
        """Return feedback handled on time / all feedback, in percent (Decision 766)."""
        return _percent(self.feedback_on_time, self.feedback)

    @property
    def dossier_rate(self) -> Decimal | None:
        """Return clean dossiers / all dossiers, in percent (Decision 766)."""
        return _percent(self.dossiers_clean, self.dossiers)

    def level_share(self, level: int) -> Decimal | None:
        """Return a level's share of the ratings, in percent."""
        return _percent(self.levels[level], self.ratings)

    def element_average(self, name: str) -> Decimal | None:
        """Return an element's average score, two decimals (None when nobody scored it)."""
        count = self.element_counts[name]
        return _round(Fraction(self.element_sums[name], count), 2) if count else None

    def fractions(self) -> dict[str, Fraction | None]:
        """Return the five weighed rates as exact fractions (None: nothing to judge by)."""
        pairs = {
            "ack": (self.acked, self.notices),
            "tasks": (self.tasks_on_time, self.tasks_counted),
            "satisfaction": (self.satisfied, self.ratings),
            "feedback": (self.feedback_on_time, self.feedback),
            "dossiers": (self.dossiers_clean, self.dossiers),
        }
        return {k: Fraction(p, w) if w else None for k, (p, w) in pairs.items()}

    def __add__(self, other: Figures) -> Figures:
        """Add the counts of two units (medians cannot be added: left None)."""
        plain = {
            name: getattr(self, name) + getattr(other, name)
            for name in self.__dataclass_fields__
            if name not in ("ack_median_seconds", "levels", "element_counts", "element_sums")
        }
        return Figures(
            **plain,
            levels={k: self.levels[k] + other.levels[k] for k in LEVELS},
            element_counts={k: self.element_counts[k] + other.element_counts[k] for k in ELEMENTS},
            element_sums={k: self.element_sums[k] + other.element_sums[k] for k in ELEMENTS},
        )


def score(figures: Figures, weights: dict[str, float]) -> Decimal | None:
    """Return the weighted average of the rates a unit has data for, 0–100, two decimals."""
    total, weight = Fraction(0), Fraction(0)
    for name, rate in figures.fractions().items():
        w = Fraction(weights.get(name, 0.0))
        if rate is not None and w > 0:
            total += w * rate
            weight += w
    return _round(100 * total / weight, 2) if weight else None


@dataclass(frozen=True)
class Standing:
    """A unit's score and place in one period (rank None: not ranked)."""

    score: Decimal | None
    enough_data: bool
    rank: int | None


@dataclass(frozen=True)
class UnitRow:
    """One unit on the scoreboard: this period and the one before."""

    unit: Unit
    figures: Figures
    standing: Standing
    previous_figures: Figures
    previous: Standing

    @property
    def score_change(self) -> Decimal | None:
        """Return the score's change since the previous period (None without both scores)."""
        if self.standing.score is None or self.previous.score is None:
            return None
        return self.standing.score - self.previous.score

    @property
    def rank_change(self) -> int | None:
        """Return the places gained since the previous period (positive: moved up)."""
        if self.standing.rank is None or self.previous.rank is None:
            return None
        return self.previous.rank - self.standing.rank


@dataclass(frozen=True)
class Scoreboard:
    """Every unit's figures, score and rank over a period, with the previous period's."""

    window: Window
    previous_window: Window
    rows: tuple[UnitRow, ...]  # ranked units by rank then code, then the others by code
    totals: Figures
    previous_totals: Figures
    weights: dict[str, float]
    min_ratings: int

    @property
    def ranked(self) -> tuple[UnitRow, ...]:
        """Return the ranked rows."""
        return tuple(r for r in self.rows if r.standing.rank is not None)

    def row_for(self, unit_id: int) -> UnitRow | None:
        """Return a unit's row."""
        return next((r for r in self.rows if r.unit.id == unit_id), None)

    def only(self, unit_id: int) -> Scoreboard:
        """Return the scoreboard cut down to one unit (its rank among all kept)."""
        row = self.row_for(unit_id)
        if row is None:
            return replace(self, rows=(), totals=Figures(), previous_totals=Figures())
        return replace(self, rows=(row,), totals=row.figures, previous_totals=row.previous_figures)


def _figures(unit_id: int, found: dict[str, queries.Counts], medians: dict[int, float]) -> Figures:
    """Build one unit's figures from the per-unit query results."""

    def get(source: str, size: int) -> tuple[int, ...]:
        """Return a unit's counts from one source (zeros when it has none)."""
        return tuple(int(v or 0) for v in found[source].get(unit_id, (0,) * size))

    rated = get("ratings", 5 + 2 * len(ELEMENTS))
    notices, acked = get("directives", 2)
    due, counted, on_time, overdue = get("tasks", 4)
    cases, cases_on_time = get("feedback", 2)
    dossiers, late, clean = get("dossiers", 3)
    (apologies,) = get("apologies", 1)
    pairs = rated[5:]
    return Figures(
        notices=notices,
        acked=acked,
        ack_median_seconds=medians.get(unit_id),
        tasks_due=due,
        tasks_counted=counted,
        tasks_on_time=on_time,
        tasks_overdue=overdue,
        levels={level: rated[level - 1] for level in LEVELS},
        element_counts={n: pairs[2 * i] for i, n in enumerate(ELEMENTS)},
        element_sums={n: pairs[2 * i + 1] for i, n in enumerate(ELEMENTS)},
        feedback=cases,
        feedback_on_time=cases_on_time,
        dossiers=dossiers,
        dossiers_clean=clean,
        dossiers_late=late,
        apologies_sent=apologies,
    )


async def unit_figures(
    session: AsyncSession, units: list[Unit], span: Span
) -> tuple[dict[int, Figures], Figures]:
    """Return every unit's figures over a span, and the totals (with their overall median)."""
    ids = [u.id for u in units if u.id is not None]
    found = {
        "ratings": await queries.ratings(session, span, ids),
        "directives": await queries.directives(session, span),
        "tasks": await queries.tasks(session, span, ids),
        "feedback": await queries.feedback(session, span, ids),
        "dossiers": await queries.dossiers(session, span, ids),
        "apologies": await queries.apologies(session, span),
    }
    medians, overall = await queries.ack_medians(session, span)
    by_unit = {u: _figures(u, found, medians) for u in ids}
    totals = sum(by_unit.values(), Figures())
    return by_unit, replace(totals, ack_median_seconds=overall)


def standings(
    figures: dict[int, Figures], *, weights: dict[str, float], min_ratings: int
) -> dict[int, Standing]:
    """Score every unit and rank those with enough ratings (equal scores share a place)."""
    scores = {u: score(f, weights) for u, f in figures.items()}
    enough = {u: f.ratings >= min_ratings for u, f in figures.items()}
    ranked = sorted((s for u, s in scores.items() if enough[u] and s is not None), reverse=True)
    place: dict[Decimal, int] = {}
    for index, value in enumerate(ranked):
        place.setdefault(value, index + 1)
    return {
        u: Standing(s, enough[u], place[s] if enough[u] and s is not None else None)
        for u, s in scores.items()
    }


def _order(row: UnitRow) -> tuple[bool, int, str]:
    """Sort key: ranked units by rank, then the others; by code within."""
    rank = row.standing.rank
    return (rank is None, rank or 0, row.unit.code)


async def scoreboard(
    session: AsyncSession, *, window: Window, now: datetime, settings: ReportSettings
) -> Scoreboard:
    """Return every unit's scoreboard row for a period and the period before it."""
    await queries.prepare(session)
    units = list((await session.exec(select(Unit).order_by(col(Unit.code)))).all())
    before = window.previous()
    current, totals = await unit_figures(session, units, window.span(now))
    previous, previous_totals = await unit_figures(session, units, before.span(now))
    weights = settings.weights.as_dict()
    now_standing = standings(current, weights=weights, min_ratings=settings.min_ratings)
    old_standing = standings(previous, weights=weights, min_ratings=settings.min_ratings)
    rows = [
        UnitRow(u, current[u.id], now_standing[u.id], previous[u.id], old_standing[u.id])
        for u in units
        if u.id is not None
    ]
    return Scoreboard(
        window=window,
        previous_window=before,
        rows=tuple(sorted(rows, key=_order)),
        totals=totals,
        previous_totals=previous_totals,
        weights=weights,
        min_ratings=settings.min_ratings,
    )


async def scoreboard_for(
    session: AsyncSession,
    *,
    actor: Actor,
    window: Window,
    now: datetime,
    settings: ReportSettings,
) -> Scoreboard:
    """Return the scoreboard an actor may see: leadership all units, a head their own."""
    require(actor, Role.ADMIN, Role.LEADER, Role.UNIT_HEAD)
    if not actor.has_any(WIDE_ROLES) and (actor.unit is None or actor.unit.id is None):
        raise PermissionDenied("errors.forbidden")
    board = await scoreboard(session, window=window, now=now, settings=settings)
    if actor.has_any(WIDE_ROLES):
        return board
    assert actor.unit is not None and actor.unit.id is not None
    return board.only(actor.unit.id)
