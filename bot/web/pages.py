"""The dashboard's pages and downloads: each reads through a service that checks the actor.

Pages take `unit` (a unit code) and `period` (7d, 30d, 90d, month, year) in the query string;
a unit head asking for another unit is refused by the service (403). To offer another report
for download, add a `Report` to REPORTS: it is listed on the downloads page and served at
/download/<key>.xlsx.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import date
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from bot.i18n import t
from bot.models import Unit
from bot.services.dashboard.auth import WIDE_ROLES
from bot.services.directives import broadcasts, directives
from bot.services.errors import NotFound
from bot.services.ratings.ratings import LEVELS
from bot.services.reports import listings, render
from bot.services.reports import stats as rating_stats
from bot.services.reports.scoreboard import Scoreboard, Window, scoreboard_for
from bot.web import charts, surveys
from bot.web.page import PERIODS, Page

XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


async def _filters(
    page: Page, unit: Unit | None, *, period: bool = True, level: bool = False
) -> dict[str, Any]:
    """Return what the filter form shows: the units one may pick, the choices made."""
    units = await listings.visible_units(page.session, actor=page.signed.actor)
    return {
        "units": units,
        "all_units": page.signed.actor.has_any(WIDE_ROLES),
        "unit_code": unit.code if unit is not None else "",
        "periods": PERIODS if period else (),
        "period_name": page.param("period") or rating_stats.DEFAULT_PERIOD,
        "levels": sorted(LEVELS, reverse=True) if level else (),
        "level": page.param("level") or "",
    }


async def _unit(page: Page) -> Unit | None:
    """Return the unit asked for (None: all), refused when the actor may not see it."""
    return await listings.visible_unit(
        page.session, actor=page.signed.actor, unit_code=page.param("unit")
    )


def score_chart(board: Scoreboard, locale: str) -> Any:
    """Return the ranking's bars: each ranked unit's emulation score out of 100."""
    from bot.i18n.formats import format_number

    scored = sorted(
        ((r.standing.score, r.unit) for r in board.rows if r.standing.score is not None),
        key=lambda pair: (-pair[0], pair[1].code),
    )
    bars = [
        charts.Bar(unit.name, score, format_number(score, locale, digits=2))
        for score, unit in scored
    ]
    return charts.bars(bars, title=t("web.overview.score_chart", locale), top=100)


def levels_chart(levels: dict[int, int], locale: str) -> Any:
    """Return the bars of the five satisfaction levels (count and share)."""
    from bot.i18n.formats import format_number

    total = sum(levels.values())
    bars = []
    for level in sorted(LEVELS, reverse=True):
        count = levels.get(level, 0)
        share = 100 * count / total if total else 0
        shown = f"{format_number(count, locale)} ({format_number(share, locale)}%)"
        label = t(f"rating.level.{level}", locale)
        bars.append(charts.Bar(label, count, shown, charts.COLOURS[level]))
    return charts.bars(bars, title=t("web.overview.levels_chart", locale))


async def overview(request: Request, page: Page) -> Response:
    """The scoreboard of the period: figures, ranking and charts (a head: their unit)."""
    unit = await _unit(page)
    _, period = page.period()
    window = Window(period.since, period.until, page.settings.scheduler.tz)
    board = await scoreboard_for(
        page.session,
        actor=page.signed.actor,
        window=window,
        now=page.now,
        settings=page.settings.reports,
    )
    if unit is not None and unit.id is not None:
        board = board.only(unit.id)
    return page.render(
        "overview.html",
        board=board,
        score_chart=score_chart(board, page.locale),
        levels_chart=levels_chart(board.totals.levels, page.locale),
        **await _filters(page, unit),
    )


async def directive_list(request: Request, page: Page) -> Response:
    """Directives sent to the scope and how many acknowledged."""
    found = await listings.directives(
        page.session, actor=page.signed.actor, unit_code=page.param("unit")
    )
    return page.render(
        "directives.html", listing=found, **await _filters(page, found.unit, period=False)
    )


def _id(request: Request) -> int:
    """Return the id in the address (the route only matches digits)."""
    value = int(request.path_params["item"])
    if not 0 < value < 2**31:
        raise NotFound("directive.error.unknown")
    return value


async def directive_detail(request: Request, page: Page) -> Response:
    """One directive's acknowledgement, unit by unit (a head: their unit's only)."""
    status = await directives.status(
        page.session, actor=page.signed.actor, directive_id=_id(request)
    )
    return page.render("directive.html", ack=status)


async def task_list(request: Request, page: Page) -> Response:
    """Task assignments in the scope and how they stand."""
    found = await listings.tasks(
        page.session, actor=page.signed.actor, unit_code=page.param("unit"), now=page.now
    )
    return page.render(
        "tasks.html", listing=found, **await _filters(page, found.unit, period=False)
    )


def _level(page: Page) -> int | None:
    """Return the level filter (None: all); a non-number is refused by the service."""
    value = page.param("level")
    if value is None:
        return None
    return int(value) if value.isdigit() and len(value) == 1 else 0


async def rating_list(request: Request, page: Page) -> Response:
    """Ratings of the period, filtered by unit and level, with the levels' distribution."""
    _, period = page.period()
    found = await listings.ratings(
        page.session,
        actor=page.signed.actor,
        unit_code=page.param("unit"),
        since=period.since,
        until=period.until,
        level=_level(page),
    )
    summary = await rating_stats.stats(
        page.session,
        actor=page.signed.actor,
        unit_code=found.unit.code if found.unit is not None else None,
        since=period.since,
        until=period.until,
        group=period.group,
        tz=page.settings.scheduler.tz,
    )
    return page.render(
        "ratings.html",
        listing=found,
        summary=summary,
        levels_chart=levels_chart(summary.levels, page.locale),
        **await _filters(page, found.unit, level=True),
    )


async def case_list(request: Request, page: Page) -> Response:
    """Follow-up cases of bad ratings in the scope."""
    found = await listings.cases(
        page.session, actor=page.signed.actor, unit_code=page.param("unit")
    )
    return page.render(
        "cases.html", listing=found, **await _filters(page, found.unit, period=False)
    )


async def apology_list(request: Request, page: Page) -> Response:
    """Apologies for late dossiers in the scope."""
    found = await listings.apologies(
        page.session, actor=page.signed.actor, unit_code=page.param("unit")
    )
    return page.render(
        "apologies.html", listing=found, **await _filters(page, found.unit, period=False)
    )


async def broadcast_list(request: Request, page: Page) -> Response:
    """The latest broadcasts and how far they went (leadership only)."""
    found = await broadcasts.recent(page.session, actor=page.signed.actor)
    return page.render("broadcasts.html", rows=found)


def _xlsx(name: str, data: bytes) -> Response:
    """Return a spreadsheet as a download."""
    return Response(
        data, media_type=XLSX, headers={"content-disposition": f'attachment; filename="{name}"'}
    )


async def stats_report(page: Page) -> tuple[str, bytes]:
    """Build the satisfaction statistics XLSX of the scope and period asked for."""
    unit = await _unit(page)
    _, period = page.period()
    result = await rating_stats.stats(
        page.session,
        actor=page.signed.actor,
        unit_code=unit.code if unit is not None else None,
        since=period.since,
        until=period.until,
        group=period.group,
        tz=page.settings.scheduler.tz,
    )
    scope = unit.code if unit is not None else "all"
    name = f"hai-long-{scope}-{result.first_day:%Y%m%d}-{result.last_day:%Y%m%d}.xlsx"
    return name, render.stats_xlsx(
        result, locale=page.locale, settings=page.settings, day=_today(page)
    )


def _today(page: Page) -> date:
    """Return the local day a document is dated."""
    return page.now.astimezone(page.settings.scheduler.tz).date()


async def scoreboard_report(page: Page) -> tuple[str, bytes]:
    """Build the per-unit scoreboard XLSX of the period asked for (a head: their unit)."""
    unit = await _unit(page)
    _, period = page.period()
    board = await scoreboard_for(
        page.session,
        actor=page.signed.actor,
        window=Window(period.since, period.until, page.settings.scheduler.tz),
        now=page.now,
        settings=page.settings.reports,
    )
    if unit is not None and unit.id is not None:
        board = board.only(unit.id)
    scope = unit.code if unit is not None else "all"
    w = board.window
    name = f"thi-dua-{scope}-{w.first_day:%Y%m%d}-{w.last_day:%Y%m%d}.xlsx"
    data = render.scoreboard_xlsx(
        board, locale=page.locale, settings=page.settings, day=_today(page)
    )
    return name, data


@dataclass(frozen=True)
class Report:
    """A report offered for download at /download/<key>.xlsx, for the unit and period chosen."""

    key: str
    label: str  # catalog key
    build: Callable[[Page], Awaitable[tuple[str, bytes]]]


REPORTS: tuple[Report, ...] = (
    Report("scoreboard", "web.downloads.scoreboard", scoreboard_report),
    Report("stats", "web.downloads.stats", stats_report),
)


async def download(request: Request, page: Page) -> Response:
    """Serve one of REPORTS."""
    key = request.path_params["key"]
    report = next((r for r in REPORTS if r.key == key), None)
    if report is None:
        raise NotFound("web.error.not_found_text")
    return _xlsx(*await report.build(page))


async def directive_download(request: Request, page: Page) -> Response:
    """Serve one directive's acknowledgement status as XLSX (a head: their unit's rows)."""
    status = await directives.status(
        page.session, actor=page.signed.actor, directive_id=_id(request)
    )
    return _xlsx(
        f"cong-van-{status.directive.id}.xlsx",
        render.status_xlsx(status, locale=page.locale, settings=page.settings, day=_today(page)),
    )


async def downloads(request: Request, page: Page) -> Response:
    """List the reports one may download, for the unit and period chosen."""
    unit = await _unit(page)
    found = await listings.directives(
        page.session, actor=page.signed.actor, unit_code=page.param("unit"), limit=20
    )
    query = request.url.query
    return page.render(
        "downloads.html",
        reports=REPORTS,
        query=f"?{query}" if query else "",
        directives=found.rows,
        **await _filters(page, unit),
    )


PAGES: tuple[tuple[str, Callable[[Request, Page], Awaitable[Response]]], ...] = (
    ("/", overview),
    ("/directives", directive_list),
    ("/directives/{item:int}", directive_detail),
    ("/tasks", task_list),
    ("/ratings", rating_list),
    ("/cases", case_list),
    ("/apologies", apology_list),
    ("/broadcasts", broadcast_list),
    ("/downloads", downloads),
    ("/download/{key:str}.xlsx", download),
    ("/download/directive/{item:int}.xlsx", directive_download),
    *surveys.PAGES,
)
