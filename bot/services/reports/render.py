"""XLSX documents rendered from report results, all in the administrative report layout.

One function per document, each returning the file's bytes:
scoreboard_xlsx (the per-unit scoreboard), status_xlsx (a directive's acknowledgements) and
stats_xlsx (the satisfaction statistics). `settings` gives the letterhead ([reports], [agency]);
`day` dates the place-and-date line (today in the agency's time zone when None).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date
from decimal import Decimal
from typing import Any

from openpyxl import Workbook

from bot.config import Settings
from bot.i18n import t
from bot.services.directives.directives import Status
from bot.services.ratings.ratings import ELEMENTS, LEVELS
from bot.services.reports.scoreboard import INDICATORS, Figures, Scoreboard, UnitRow
from bot.services.reports.stats import ProcedureRow, Stats, Tally, percent, trend_label, unit_label
from bot.services.reports.xlsx import Column, Kind, Letterhead, new_book, table_sheet, to_bytes


def rate(value: Decimal | None) -> float | None:
    """Return a rate in percent (45.8) as the fraction a percent-formatted cell holds (0.458)."""
    return float(value / 100) if value is not None else None


def number(value: Decimal | None) -> float | None:
    """Return a decimal as a spreadsheet number."""
    return float(value) if value is not None else None


def hours(seconds: float | None) -> float | None:
    """Return seconds as hours, two decimals."""
    return round(seconds / 3600, 2) if seconds is not None else None


def _share(part: int, whole: int) -> Decimal | None:
    """Return part/whole in percent with one decimal (None when whole is 0)."""
    return percent(part, whole) if whole else None


def _period(first: date, last: date, locale: str) -> str:
    """Return 'Từ ngày dd/mm/yyyy đến ngày dd/mm/yyyy'."""
    return t("report.xlsx.period", locale, since=f"{first:%d/%m/%Y}", until=f"{last:%d/%m/%Y}")


def _col(
    key: str, width: float, kind: Any = "count", group: str | None = None, *, loc: str
) -> Column:
    """Return a column whose header is the catalog's report.xlsx.col.<key>."""
    label = t(f"report.xlsx.col.{key}", loc)
    return Column(label, width, kind, t(f"report.xlsx.group.{group}", loc) if group else None)


# The scoreboard ---------------------------------------------------------------------------------


def _score_columns(loc: str) -> list[Column]:
    """Return the scoreboard table's columns under their merged groups."""
    return [
        _col("no", 5, "rank", loc=loc),
        _col("unit", 32, "text", loc=loc),
        _col("score", 9, "score", "score", loc=loc),
        _col("rank", 19, "rank", "score", loc=loc),
        _col("change", 11, "score", "score", loc=loc),
        _col("notices", 9, "count", "ack", loc=loc),
        _col("acked", 10, "count", "ack", loc=loc),
        _col("rate", 9, "percent", "ack", loc=loc),
        _col("median_hours", 11, "decimal", "ack", loc=loc),
        _col("tasks_due", 9, "count", "tasks", loc=loc),
        _col("on_time", 10, "count", "tasks", loc=loc),
        _col("rate", 9, "percent", "tasks", loc=loc),
        _col("overdue", 9, "count", "tasks", loc=loc),
        _col("ratings", 9, "count", "satisfaction", loc=loc),
        _col("satisfied_rate", 10, "percent", "satisfaction", loc=loc),
        _col("feedback", 9, "count", "feedback", loc=loc),
        _col("feedback_on_time", 10, "count", "feedback", loc=loc),
        _col("rate", 9, "percent", "feedback", loc=loc),
        _col("dossiers", 9, "count", "dossiers", loc=loc),
        _col("late", 9, "count", "dossiers", loc=loc),
        _col("clean", 13, "count", "dossiers", loc=loc),
        _col("rate", 9, "percent", "dossiers", loc=loc),
        _col("apologies", 10, "count", "dossiers", loc=loc),
    ]


def _figure_cells(f: Figures) -> list[Any]:
    """Return one unit's (or the totals') figures in the scoreboard's column order."""
    return [
        f.notices,
        f.acked,
        rate(f.ack_rate),
        hours(f.ack_median_seconds),
        f.tasks_due,
        f.tasks_on_time,
        rate(f.on_time_rate),
        f.tasks_overdue,
        f.ratings,
        rate(f.satisfied_share),
        f.feedback,
        f.feedback_on_time,
        rate(f.feedback_rate),
        f.dossiers,
        f.dossiers_late,
        f.dossiers_clean,
        rate(f.dossier_rate),
        f.apologies_sent,
    ]


def rank_cell(row: UnitRow, locale: str) -> int | str:
    """Return a unit's rank, or why it has none."""
    if row.standing.rank is not None:
        return row.standing.rank
    key = "not_enough" if not row.standing.enough_data else "no_score"
    return t(f"report.{key}", locale)


def _score_row(index: int, row: UnitRow, locale: str) -> list[Any]:
    """Return one unit's line of the scoreboard."""
    standing = [number(row.standing.score), rank_cell(row, locale), number(row.score_change)]
    return [index, row.unit.name, *standing, *_figure_cells(row.figures)]


def _level_columns(loc: str) -> list[Column]:
    """Return the satisfaction sheet's columns: the five levels, the share, the five elements."""
    levels = [
        Column(t(f"rating.level.{v}", loc), 10, "count", t("report.xlsx.group.levels", loc))
        for v in LEVELS
    ]
    elements = [
        Column(t(f"rating.element.{e}", loc), 14, "decimal", t("report.xlsx.group.elements", loc))
        for e in ELEMENTS
    ]
    return [
        _col("no", 5, "rank", loc=loc),
        _col("unit", 32, "text", loc=loc),
        *levels,
        _col("ratings", 9, "count", loc=loc),
        _col("satisfied_rate", 10, "percent", loc=loc),
        *elements,
    ]


def _level_cells(f: Figures) -> list[Any]:
    """Return a unit's counts per level, its total and share satisfied, its element averages."""
    levels = [f.levels[v] for v in LEVELS]
    elements = [number(f.element_average(e)) for e in ELEMENTS]
    return [*levels, f.ratings, rate(f.satisfied_share), *elements]


def _weights_line(board: Scoreboard, locale: str) -> str:
    """Return how the score is made: the weights and the minimum of ratings."""
    total = sum(board.weights.values()) or 1.0
    parts = ", ".join(
        t(
            "report.xlsx.weight",
            locale,
            name=t(f"report.xlsx.group.{k}", locale),
            share=f"{100 * board.weights.get(k, 0.0) / total:.0f}",
        )
        for k in INDICATORS
    )
    return t("report.xlsx.weights", locale, weights=parts, min=board.min_ratings)


def scoreboard_xlsx(
    board: Scoreboard, *, locale: str, settings: Settings, day: date | None = None
) -> bytes:
    """Return the scoreboard as XLSX: the ranking with every figure, then satisfaction."""
    head = Letterhead.from_settings(settings, day)
    book = new_book()
    w, before = board.window, board.previous_window
    lines = [
        _period(w.first_day, w.last_day, locale),
        t(
            "report.xlsx.previous",
            locale,
            since=f"{before.first_day:%d/%m/%Y}",
            until=f"{before.last_day:%d/%m/%Y}",
        ),
        _weights_line(board, locale),
    ]
    several = len(board.rows) > 1
    total_label = t("report.xlsx.totals", locale)
    table_sheet(
        book,
        name=t("report.xlsx.sheet.scoreboard", locale),
        head=head,
        title=t("report.xlsx.title", locale),
        lines=lines,
        columns=_score_columns(locale),
        rows=[_score_row(i, r, locale) for i, r in enumerate(board.rows, 1)],
        totals=[None, total_label, None, None, None, *_figure_cells(board.totals)]
        if several
        else None,
        locale=locale,
    )
    table_sheet(
        book,
        name=t("report.xlsx.sheet.satisfaction", locale),
        head=head,
        title=t("report.xlsx.satisfaction_title", locale),
        lines=lines[:1],
        columns=_level_columns(locale),
        rows=[[i, r.unit.name, *_level_cells(r.figures)] for i, r in enumerate(board.rows, 1)],
        totals=[None, total_label, *_level_cells(board.totals)] if several else None,
        locale=locale,
    )
    return to_bytes(book)


# A directive's acknowledgements -----------------------------------------------------------------


def status_xlsx(
    status: Status, *, locale: str, settings: Settings, day: date | None = None
) -> bytes:
    """Return a directive's per-unit acknowledgements, and every recipient, as XLSX."""
    head = Letterhead.from_settings(settings, day)
    d = status.directive
    lines = [
        t("report.xlsx.directive", locale, number=d.number, day=f"{d.issued_on:%d/%m/%Y}"),
        d.title,
    ]
    acks = t("report.xlsx.group.directive_ack", locale)
    names = t("report.xlsx.group.names", locale)

    def col(key: str, width: float, kind: Kind, group: str | None) -> Column:
        """Return a column headed from the directive catalog."""
        return Column(t(f"directive.xlsx.{key}", locale), width, kind, group)

    columns = [
        _col("no", 5, "rank", loc=locale),
        col("unit", 36, "text", None),
        col("total", 11, "count", acks),
        col("acked", 11, "count", acks),
        col("rate", 9, "percent", acks),
        col("median", 14, "decimal", acks),
        col("missing", 40, "text", names),
        col("unreached", 40, "text", names),
    ]
    rows = [
        [
            i,
            u.unit.name,
            u.total,
            u.acked,
            rate(_share(u.acked, u.total)),
            hours(u.median_seconds),
            "; ".join(u.missing),
            "; ".join(u.unreached),
        ]
        for i, u in enumerate(status.units, 1)
    ]
    overall = rate(_share(status.acked, status.total))
    totals = [None, t("report.xlsx.totals", locale), status.total, status.acked, overall]
    book = new_book()
    table_sheet(
        book,
        name=t("directive.xlsx.sheet", locale),
        head=head,
        title=t("report.xlsx.directive_title", locale),
        lines=lines,
        columns=columns,
        rows=rows,
        totals=[*totals, None, None, None],
        locale=locale,
    )
    _people_sheet(book, status, head, lines, locale)
    return to_bytes(book)


def _people_sheet(
    book: Workbook, status: Status, head: Letterhead, lines: Sequence[str], locale: str
) -> None:
    """Add a sheet listing every recipient and the channels they were reached and answered on."""

    def name(channel: str | None) -> str | None:
        """Return a channel's name in the reader's language (None for none)."""
        return t(f"channel.{channel}", locale) if channel else None

    channels = t("report.xlsx.group.channels", locale)
    columns = [
        _col("no", 5, "rank", loc=locale),
        Column(t("directive.xlsx.unit", locale), 36, "text"),
        Column(t("directive.xlsx.name", locale), 30, "text"),
        Column(t("directive.xlsx.sent_on", locale), 18, "text", channels),
        Column(t("directive.xlsx.acked_on", locale), 18, "text", channels),
    ]
    people = [(u.unit.name, p) for u in status.units for p in u.people]
    table_sheet(
        book,
        name=t("directive.xlsx.people_sheet", locale),
        head=head,
        title=t("report.xlsx.people_title", locale),
        lines=lines,
        columns=columns,
        rows=[
            [i, unit, p.name, name(p.channel), name(p.acked_on)]
            for i, (unit, p) in enumerate(people, 1)
        ],
        totals=None,
        locale=locale,
    )


# The satisfaction statistics --------------------------------------------------------------------


def _tally_cells(tally: Tally) -> list[Any]:
    """Return a tally's count, average and satisfied share as spreadsheet cells."""
    return [tally.count, number(tally.average), rate(tally.satisfied_share)]


def _tally_columns(locale: str, first: Sequence[Column]) -> list[Column]:
    """Return some leading columns, then count, average and share under one merged header."""
    group = t("report.xlsx.group.results", locale)
    return [
        _col("no", 5, "rank", loc=locale),
        *first,
        Column(t("stats.xlsx.col.count", locale), 10, "count", group),
        Column(t("stats.xlsx.col.average", locale), 12, "decimal", group),
        Column(t("stats.xlsx.col.satisfied", locale), 12, "percent", group),
    ]


def stats_xlsx(result: Stats, *, locale: str, settings: Settings, day: date | None = None) -> bytes:
    """Return the statistics as XLSX: levels, elements, units, procedures, officers, trend."""
    head = Letterhead.from_settings(settings, day)
    lines = [unit_label(result, locale), _period(result.first_day, result.last_day, locale)]
    title = t("report.xlsx.stats_title", locale)
    book = new_book()

    def sheet(
        name: str, first: Sequence[Column], rows: list[list[Any]], totals: Any = None
    ) -> None:
        """Add one sheet of the statistics."""
        table_sheet(
            book,
            name=t(f"stats.xlsx.sheet.{name}", locale),
            head=head,
            title=title,
            lines=lines,
            columns=first,
            rows=rows,
            totals=totals,
            locale=locale,
        )

    def text(key: str, width: float = 40) -> Column:
        """Return a text column headed from the stats catalog."""
        return Column(t(f"stats.xlsx.col.{key}", locale), width, "text")

    share = [
        Column(t("stats.xlsx.col.count", locale), 12, "count"),
        Column(t("stats.xlsx.col.share", locale), 12, "percent"),
    ]
    levels = [
        [i, t(f"rating.level.{v}", locale), result.levels[v], rate(result.share(result.levels[v]))]
        for i, v in enumerate(LEVELS, 1)
    ]
    folded = [
        [None, t(f"stats.fold.{fold}", locale), count, rate(result.share(count))]
        for fold, count in result.folded.items()
    ]
    whole = 1.0 if result.total else None
    sheet(
        "summary",
        [_col("no", 5, "rank", loc=locale), text("level"), *share],
        levels + folded,
        [None, t("stats.xlsx.col.total", locale), result.total, whole],
    )
    sheet(
        "elements",
        _tally_columns(locale, [text("element", 48)]),
        [
            [i, t(f"rating.element.{n}", locale), *_tally_cells(tally)]
            for i, (n, tally) in enumerate(result.elements.items(), 1)
        ],
    )
    if result.units:
        sheet(
            "units",
            _tally_columns(locale, [text("unit_code", 14), text("unit", 40)]),
            [
                [i, u.unit.code, u.unit.name, *_tally_cells(u.tally)]
                for i, u in enumerate(result.units, 1)
            ],
            [None, None, t("stats.xlsx.col.total", locale), *_tally_cells(_sum(result))],
        )
    sheet(
        "procedures",
        _tally_columns(locale, [text("code", 14), text("procedure", 48)]),
        [
            [i, p.code, _procedure(p, locale), *_tally_cells(p.tally)]
            for i, p in enumerate(result.procedures, 1)
        ],
    )
    sheet(
        "officers",
        _tally_columns(locale, [text("officer", 36)]),
        [[i, o.name, *_tally_cells(o.tally)] for i, o in enumerate(result.officers, 1)],
    )
    group = result.period.group
    sheet(
        "trend",
        _tally_columns(locale, [text(group, 18)]),
        [[i, trend_label(r, group), *_tally_cells(r.tally)] for i, r in enumerate(result.trend, 1)],
    )
    return to_bytes(book)


def _procedure(row: ProcedureRow, locale: str) -> str | None:
    """Return a procedure's name, or 'not stated'."""
    return row.name if row.code is not None else t("stats.no_procedure", locale)


def _sum(result: Stats) -> Tally:
    """Return the tally of all the units' ratings."""
    total = Tally()
    for row in result.units:
        total = total + row.tally
    return total
