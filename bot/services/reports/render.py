"""Documents rendered from report queries: the directive status and the satisfaction XLSX."""

from __future__ import annotations

from decimal import Decimal
from io import BytesIO
from typing import Any

from openpyxl import Workbook
from openpyxl.styles import Font
from openpyxl.worksheet.worksheet import Worksheet

from bot.i18n import t
from bot.services.directives.directives import Status
from bot.services.ratings.ratings import LEVELS
from bot.services.reports.stats import Stats, Tally, trend_label, unit_label

COLUMNS = ("unit", "total", "acked", "rate", "median", "missing", "unreached")
PEOPLE_COLUMNS = ("unit", "name", "sent_on", "acked_on")


def status_xlsx(status: Status, *, locale: str) -> bytes:
    """Return the per-unit acknowledgement table of a directive as XLSX bytes."""
    book = Workbook()
    sheet = book.active
    assert sheet is not None
    sheet.title = t("directive.xlsx.sheet", locale)[:31]
    d = status.directive
    sheet.append([f"{d.number} – {d.title}"])
    sheet["A1"].font = Font(bold=True)
    sheet.append([t(f"directive.xlsx.{c}", locale) for c in COLUMNS])
    for cell in sheet[2]:
        cell.font = Font(bold=True)
    for u in status.units:
        rate = round(100 * u.acked / u.total, 1) if u.total else 0.0
        median = round(u.median_seconds / 3600, 2) if u.median_seconds is not None else None
        missing, unreached = "; ".join(u.missing), "; ".join(u.unreached)
        sheet.append([u.unit.name, u.total, u.acked, rate, median, missing, unreached])
    for column, width in zip("ABCDEFG", (48, 14, 14, 12, 22, 60, 60), strict=True):
        sheet.column_dimensions[column].width = width
    _people_sheet(book, status, locale=locale)
    out = BytesIO()
    book.save(out)
    return out.getvalue()


def _people_sheet(book: Workbook, status: Status, *, locale: str) -> None:
    """Add a sheet listing every recipient and the channels they were reached and answered on."""
    sheet = book.create_sheet(t("directive.xlsx.people_sheet", locale)[:31])
    sheet.append([t(f"directive.xlsx.{c}", locale) for c in PEOPLE_COLUMNS])
    for cell in sheet[1]:
        cell.font = Font(bold=True)

    def name(channel: str | None) -> str:
        """Return a channel's name in the reader's language (empty for none)."""
        return t(f"channel.{channel}", locale) if channel else ""

    for u in status.units:
        for p in u.people:
            sheet.append([u.unit.name, p.name, name(p.channel), name(p.acked_on)])
    for column, width in zip("ABCD", (48, 36, 20, 20), strict=True):
        sheet.column_dimensions[column].width = width


def _number(value: Decimal | None) -> float | None:
    """Return a decimal as a spreadsheet number."""
    return float(value) if value is not None else None


def _header(sheet: Worksheet, locale: str, *columns: str) -> None:
    """Append a bold header row from the catalog."""
    sheet.append([t(f"stats.xlsx.col.{c}", locale) for c in columns])
    for cell in sheet[sheet.max_row]:
        cell.font = Font(bold=True)


def _sheet(book: Workbook, name: str, locale: str, *columns: str) -> Worksheet:
    """Add a sheet titled from the catalog with its header row."""
    sheet = book.create_sheet(t(f"stats.xlsx.sheet.{name}", locale)[:31])
    assert isinstance(sheet, Worksheet)
    _header(sheet, locale, *columns)
    for index in range(len(columns)):
        sheet.column_dimensions[chr(ord("A") + index)].width = 40 if index < 2 else 16
    return sheet


def _summary_sheet(book: Workbook, result: Stats, locale: str) -> None:
    """Fill the summary sheet: the scope, the five levels and the three folded ones."""
    sheet = book.active
    assert isinstance(sheet, Worksheet)
    sheet.title = t("stats.xlsx.sheet.summary", locale)[:31]
    first, last = result.first_day.strftime("%d/%m/%Y"), result.last_day.strftime("%d/%m/%Y")
    sheet.append([t("stats.xlsx.title", locale, unit=unit_label(result, locale))])
    sheet.append([t("stats.xlsx.period", locale, since=first, until=last)])
    sheet["A1"].font = Font(bold=True)
    _header(sheet, locale, "level", "count", "share")
    for level in LEVELS:
        count = result.levels[level]
        sheet.append([t(f"rating.level.{level}", locale), count, float(result.share(count))])
    for fold, count in result.folded.items():
        sheet.append([t(f"stats.fold.{fold}", locale), count, float(result.share(count))])
    sheet.append([t("stats.xlsx.col.total", locale), result.total, 100.0 if result.total else 0.0])
    sheet.column_dimensions["A"].width = 40


def stats_xlsx(result: Stats, *, locale: str) -> bytes:
    """Return the statistics as XLSX: summary, elements, procedures, officers, trend."""
    book = Workbook()
    _summary_sheet(book, result, locale)
    sheet = _sheet(book, "elements", locale, "element", "count", "average", "satisfied")
    for name, tally in result.elements.items():
        row = [tally.count, _number(tally.average), _number(tally.satisfied_share)]
        sheet.append([t(f"rating.element.{name}", locale), *row])
    sheet = _sheet(book, "procedures", locale, "code", "procedure", "count", "average", "satisfied")
    for p in result.procedures:
        title = p.name if p.code is not None else t("stats.no_procedure", locale)
        sheet.append([p.code or "", title, *_tally_cells(p.tally)])
    sheet = _sheet(book, "officers", locale, "officer", "count", "average", "satisfied")
    for o in result.officers:
        sheet.append([o.name, *_tally_cells(o.tally)])
    sheet = _sheet(book, "trend", locale, result.period.group, "count", "average", "satisfied")
    for r in result.trend:
        sheet.append([trend_label(r, result.period.group), *_tally_cells(r.tally)])
    out = BytesIO()
    book.save(out)
    return out.getvalue()


def _tally_cells(tally: Tally) -> list[Any]:
    """Return a tally's count, average and satisfied share as spreadsheet cells."""
    return [tally.count, _number(tally.average), _number(tally.satisfied_share)]
