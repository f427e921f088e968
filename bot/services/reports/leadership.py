"""The scoreboard report in chat: /report on demand, and the monthly report sent on its own.

A report is a short summary, a chart (PNG) and the XLSX. A unit head gets their unit (its rank
among all kept); leaders and administrators every unit, or one unit they name. The permission
is checked here (scoreboard_for), whatever the chat shows.

Files go through the outbox and the channel contract. Only Telegram takes a document or a
photo's bytes: the Zalo Bot API sends a photo only by URL and no document, and the Zalo OA
adapter sends no file; there the summary says where to get the chart and the XLSX instead.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from sqlmodel.ext.asyncio.session import AsyncSession

from bot.config import Settings
from bot.i18n import t
from bot.messages import Items, OutboundMessage, Text
from bot.models import Channel, Contact, Role, Unit
from bot.services.calendar import WorkCalendar
from bot.services.delivery import outbox
from bot.services.delivery.contacts import leadership_contacts, unit_head_contacts
from bot.services.org.access import Actor, require, require_unit_scope, system_actor
from bot.services.org.org import unit_by_code
from bot.services.reports import chart, documents, fires, render
from bot.services.reports.chart import TrendPoint
from bot.services.reports.scoreboard import (
    Figures,
    Scoreboard,
    UnitRow,
    Window,
    score,
    scoreboard_for,
)

FILE_CHANNELS = frozenset({Channel.TELEGRAM.value})  # channels that take a document's bytes
MARKER = "report:monthly"
MARKER_OWNER = "report"
KIND = documents.KIND
BULK = 100  # the monthly report waits behind what people asked for (the outbox's default)
WIDE_ROLES = frozenset({Role.ADMIN, Role.LEADER})
NAMES_MAX = 15  # unranked units named in the summary
TOP = 10  # ranked units listed in the summary; the chart and the XLSX have them all


@dataclass(frozen=True)
class Report:
    """What one reader gets: the scoreboard they may see, its trend, and whose it is."""

    board: Scoreboard
    trend: tuple[TrendPoint, ...]
    unit: Unit | None  # None: every unit

    @property
    def scope(self) -> str | Text:
        """Return the unit's name, or 'all units'."""
        return self.unit.name if self.unit is not None else Text("stats.all_units")


def window_label(window: Window) -> str:
    """Return a period's short label: 'mm/yyyy' for a calendar month, else 'dd/mm–dd/mm'."""
    first, last = window.first_day, window.last_day
    if first.day == 1 and (last + timedelta(days=1)).day == 1 and first.month == last.month:
        return f"{first:%m/%Y}"
    return (
        f"{first:%d/%m}–{last:%d/%m/%Y}"
        if first.year != last.year
        else f"{first:%d/%m}–{last:%d/%m}"
    )


async def history(
    session: AsyncSession, *, actor: Actor, window: Window, now: datetime, settings: Settings
) -> list[Scoreboard]:
    """Return the scoreboards of a period and the ones before it, enough for the trend.

    Each scoreboard holds its period and the one before, so every other period is asked for.
    """
    boards: list[Scoreboard] = []
    current = window
    while 2 * len(boards) < settings.reports.trend_periods:
        board = await scoreboard_for(
            session, actor=actor, window=current, now=now, settings=settings.reports
        )
        boards.append(board)
        current = current.previous().previous()
    return boards


def trend(boards: list[Scoreboard], *, unit_id: int | None, periods: int) -> tuple[TrendPoint, ...]:
    """Return the score of one unit (or of all units together) per period, oldest first."""
    points: list[TrendPoint] = []
    for board in boards:
        if unit_id is None:
            current = score(board.totals, board.weights)
            before = score(board.previous_totals, board.weights)
        else:
            row = board.row_for(unit_id)
            current = row.standing.score if row is not None else None
            before = row.previous.score if row is not None else None
        points.append(TrendPoint(window_label(board.window), current))
        points.append(TrendPoint(window_label(board.previous_window), before))
    return tuple(reversed(points[:periods]))


def narrow(boards: list[Scoreboard], unit: Unit | None, periods: int) -> Report:
    """Return the report of one unit (or of all units) from the scoreboards of every unit."""
    if unit is None or unit.id is None:
        return Report(boards[0], trend(boards, unit_id=None, periods=periods), None)
    board = boards[0].only(unit.id)
    return Report(board, trend(boards, unit_id=unit.id, periods=periods), unit)


async def report_for(
    session: AsyncSession,
    *,
    actor: Actor,
    window: Window,
    now: datetime,
    settings: Settings,
    unit_code: str | None = None,
) -> Report:
    """Return the report an actor may see: a head their unit, leadership every unit or one."""
    require(actor, Role.ADMIN, Role.LEADER, Role.UNIT_HEAD)
    unit: Unit | None = None
    if unit_code is not None:
        unit = await unit_by_code(session, unit_code)
        require_unit_scope(actor, unit)
    boards = await history(session, actor=actor, window=window, now=now, settings=settings)
    if not actor.has_any(WIDE_ROLES):
        unit = actor.unit
    return narrow(boards, unit, settings.reports.trend_periods)


# The summary ------------------------------------------------------------------------------------


def decimal(value: Decimal) -> Text:
    """Return a non-negative number with its decimals, written with the reader's separator."""
    whole, _, fraction = str(abs(value)).partition(".")
    return Text("stats.decimal", {"whole": int(whole), "fraction": fraction or "0"})


def _rate(value: Decimal | None) -> Text:
    """Return a rate as '45,8%', or 'no figures yet'."""
    if value is None:
        return Text("report.no_rate")
    return Text("report.percent", {"value": decimal(value)})


def _change(row: UnitRow) -> Text | str:
    """Return the score's change since the previous period, or nothing."""
    change = row.score_change
    if change is None:
        return ""
    if change == 0:
        return Text("report.change_same")
    key = "report.change_up" if change > 0 else "report.change_down"
    return Text(key, {"value": decimal(change)})


def _overall(f: Figures) -> Text:
    """Return the five indicators of some figures, one a line."""
    return Text(
        "report.overall",
        {
            "acked": f.acked,
            "notices": f.notices,
            "ack_rate": _rate(f.ack_rate),
            "on_time": f.tasks_on_time,
            "counted": f.tasks_counted,
            "on_time_rate": _rate(f.on_time_rate),
            "overdue": f.tasks_overdue,
            "satisfied": f.satisfied,
            "ratings": f.ratings,
            "satisfied_rate": _rate(f.satisfied_share),
            "feedback_on_time": f.feedback_on_time,
            "feedback": f.feedback,
            "feedback_rate": _rate(f.feedback_rate),
            "clean": f.dossiers_clean,
            "dossiers": f.dossiers,
            "dossier_rate": _rate(f.dossier_rate),
            "late": f.dossiers_late,
            "apologies": f.apologies_sent,
        },
    )


def _standing(report: Report) -> Text:
    """Return one unit's place: its rank and score, or why it is not ranked."""
    board = report.board
    row = board.rows[0] if board.rows else None
    if row is None or row.standing.score is None:
        return Text("report.standing_none")
    if row.standing.rank is None:
        params = {"ratings": row.figures.ratings, "min": board.min_ratings}
        return Text("report.standing_unranked", {**params, "score": decimal(row.standing.score)})
    return Text(
        "report.standing_ranked",
        {
            "rank": row.standing.rank,
            "score": decimal(row.standing.score),
            "change": _change(row),
        },
    )


def _ranking(board: Scoreboard) -> dict[str, Any]:
    """Return the ranked units' lines (the first few), and the units left unranked."""
    ranked = board.ranked
    lines: Items | Text = Text("report.none_ranked")
    if ranked:
        lines = Items(
            "report.rank_line",
            tuple(
                {
                    "rank": r.standing.rank,
                    "unit": r.unit.name,
                    "score": decimal(r.standing.score or Decimal(0)),
                    "change": _change(r),
                }
                for r in ranked[:TOP]
            ),
        )
    more = Text("report.more", {"count": len(ranked) - TOP}) if len(ranked) > TOP else ""
    others = [r.unit.name for r in board.rows if r.standing.rank is None]
    unranked: Text | str = ""
    if others:
        rest = len(others) - NAMES_MAX
        names = ", ".join(others[:NAMES_MAX])
        tail = Text("report.and_more", {"count": rest}) if rest > 0 else ""
        unranked = Text("report.unranked", {"min": board.min_ratings, "units": names, "tail": tail})
    return {"lines": lines, "more": more, "unranked": unranked, "units": len(board.rows)}


def summary(report: Report, *, files: bool, monthly: bool = False) -> OutboundMessage:
    """Return the report's summary text; `files` tells whether the chart and XLSX follow."""
    board = report.board
    w, before = board.window, board.previous_window
    heading = (
        Text("report.heading_monthly", {"month": f"{w.first_day:%m/%Y}"})
        if monthly
        else Text("report.heading")
    )
    params: dict[str, Any] = {
        "heading": heading,
        "scope": report.scope,
        "since": w.first_day,
        "until": w.last_day,
        "prev_since": before.first_day,
        "prev_until": before.last_day,
        "overall": _overall(board.totals),
        "files": Text("report.files_follow" if files else "report.files_elsewhere"),
    }
    if report.unit is not None:
        return OutboundMessage("report.summary_unit", {**params, "standing": _standing(report)})
    ranking = _ranking(board)
    return OutboundMessage("report.summary_all", {**params, **ranking, "ranked": len(board.ranked)})


# Delivery ---------------------------------------------------------------------------------------


def takes_files(contact: Contact) -> bool:
    """Tell whether the contact's channel takes a document or a photo's bytes."""
    return str(contact.channel) in FILE_CHANNELS


def _file_stem(report: Report) -> str:
    """Return the files' name stem: scope and period."""
    scope = report.unit.code if report.unit is not None else "all"
    w = report.board.window
    return f"{scope}-{w.first_day:%Y%m%d}-{w.last_day:%Y%m%d}"


@dataclass(frozen=True)
class Rendered:
    """A report's chart and XLSX in one language."""

    chart: bytes
    xlsx: bytes


Cache = dict[tuple[int | None, str], Rendered]


def render_files(
    report: Report, *, locale: str, settings: Settings, now: datetime, cache: Cache | None = None
) -> Rendered:
    """Render a report's chart and XLSX in a language (once per unit and language in a cache)."""
    key = (report.unit.id if report.unit is not None else None, locale)
    if cache is not None and key in cache:
        return cache[key]
    scope = report.unit.name if report.unit is not None else t("stats.all_units", locale)
    day = now.astimezone(settings.scheduler.tz).date()
    rendered = Rendered(
        chart=chart.scoreboard_png(report.board, report.trend, scope=scope, locale=locale),
        xlsx=render.scoreboard_xlsx(report.board, locale=locale, settings=settings, day=day),
    )
    if cache is not None:
        cache[key] = rendered
    return rendered


async def queue_files(
    session: AsyncSession,
    *,
    contact: Contact,
    report: Report,
    files: Rendered,
    now: datetime,
    due_at: datetime | None = None,
    priority: int = documents.PRIORITY,
) -> None:
    """Queue the chart (as a photo) and the XLSX to a contact."""
    w = report.board.window
    params = {"scope": report.scope, "since": w.first_day, "until": w.last_day}
    stem = _file_stem(report)
    for name, data, caption, media in (
        (f"bieu-do-thi-dua-{stem}.png", files.chart, "report.chart_caption", "photo"),
        (f"thi-dua-{stem}.xlsx", files.xlsx, "report.xlsx_caption", "document"),
    ):
        await documents.send_document(
            session,
            contact=contact,
            name=name,
            data=data,
            caption=caption,
            params=params,
            now=now,
            due_at=due_at,
            media=media,
            priority=priority,
        )


async def deliver(
    session: AsyncSession,
    *,
    contact: Contact,
    report: Report,
    now: datetime,
    settings: Settings,
    due_at: datetime | None = None,
    monthly: bool = False,
    cache: Cache | None = None,
    priority: int = documents.PRIORITY,
) -> OutboundMessage:
    """Queue the chart and XLSX where the channel takes files; return the summary to send."""
    files = takes_files(contact)
    if files:
        rendered = render_files(
            report, locale=contact.locale, settings=settings, now=now, cache=cache
        )
        await queue_files(
            session,
            contact=contact,
            report=report,
            files=rendered,
            now=now,
            due_at=due_at,
            priority=priority,
        )
    return summary(report, files=files, monthly=monthly)


# The monthly report -----------------------------------------------------------------------------


def previous_month(day: date, tz: ZoneInfo) -> Window:
    """Return the calendar month before the one a day is in."""
    last = day.replace(day=1) - timedelta(days=1)
    return Window.month(last.year, last.month, tz)


async def _send(
    session: AsyncSession,
    contacts: Iterable[Contact],
    report: Report,
    *,
    now: datetime,
    due_at: datetime,
    settings: Settings,
    cache: Cache,
) -> int:
    """Queue a report (its summary first, then its files) to some contacts; count them."""
    queued = 0
    for contact in contacts:
        if contact.blocked_at is not None:
            continue
        row = await outbox.enqueue(
            session,
            contact=contact,
            message=summary(report, files=takes_files(contact), monthly=True),
            kind=KIND,
            now=now,
            due_at=due_at,
            priority=BULK,
        )
        await session.flush()  # the summary's id comes before its files'
        await deliver(
            session,
            contact=contact,
            report=report,
            now=now,
            settings=settings,
            due_at=due_at,
            cache=cache,
            priority=BULK,
        )
        queued += row is not None
    return queued


async def monthly_reports(
    session: AsyncSession, *, fire: datetime, now: datetime, settings: Settings
) -> int:
    """Queue the previous month's report to every head (their unit) and leader (every unit)."""
    tz = settings.scheduler.tz
    window = previous_month(fire.astimezone(tz).date(), tz)
    actor = system_actor(MARKER_OWNER)
    boards = await history(session, actor=actor, window=window, now=now, settings=settings)
    periods = settings.reports.trend_periods
    due_at = WorkCalendar.from_settings(settings).deliverable_at(now)
    cache: Cache = {}
    queued = 0
    units = {r.unit.id: r.unit for r in boards[0].rows}
    for unit_id, contact in await unit_head_contacts(session):
        unit = units.get(unit_id)
        if unit is not None:
            report = narrow(boards, unit, periods)
            queued += await _send(
                session, [contact], report, now=now, due_at=due_at, settings=settings, cache=cache
            )
    overview = narrow(boards, None, periods)
    leaders = await leadership_contacts(session)
    return queued + await _send(
        session, leaders, overview, now=now, due_at=due_at, settings=settings, cache=cache
    )


async def monthly_sweep(session: AsyncSession, *, now: datetime, settings: Settings) -> int:
    """Send the monthly report when [reports] monthly_cron has fired since the last; count them."""
    fire = await fires.due_fire(
        session,
        marker=MARKER,
        owner=MARKER_OWNER,
        now=now,
        cron=settings.reports.monthly_cron,
        tz=settings.scheduler.tz,
    )
    if fire is None:
        return 0
    return await monthly_reports(session, fire=fire, now=now, settings=settings)
