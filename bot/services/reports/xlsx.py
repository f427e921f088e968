"""The layout of a Vietnamese administrative report in a worksheet (Decree 30/2020/NĐ-CP).

Top left the managing authority and the agency, top right the national name and motto; then
the title, the period, a table under two levels of merged headers, a totals row, and at the
foot the place-and-date line and the signature block. Numbers stay numbers: counts, rates and
dates carry number formats, so Excel shows them in the reader's locale (45,8% in Vietnamese).
Printed on A4 landscape, fitted to the page's width, the header rows repeated on every page.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import date, datetime
from io import BytesIO
from typing import Any, Literal

from openpyxl import Workbook
from openpyxl.styles import Alignment, Border, Font, Side
from openpyxl.utils import get_column_letter
from openpyxl.worksheet.properties import PageSetupProperties
from openpyxl.worksheet.worksheet import Worksheet

from bot.config import Settings
from bot.i18n import t

Kind = Literal["text", "count", "percent", "score", "decimal", "date", "rank"]
FONT = "Times New Roman"
FORMATS: dict[Kind, str] = {
    "text": "@",
    "count": "#,##0",
    "percent": "0.0%",
    "score": "0.00",
    "decimal": "0.00",
    "date": "dd/mm/yyyy",
    "rank": "0",
}
THIN = Side(style="thin")
BOX = Border(left=THIN, right=THIN, top=THIN, bottom=THIN)
MM = 1 / 25.4  # inches per millimetre
HEADER_ROWS = 2
CHARS_PER_WIDTH = 1.1  # Times New Roman 11 pt characters per unit of column width, roughly
LINE_POINTS = 15.0  # the height of one line of 11–12 pt text
NATION_WIDTH = 42  # the column width "CỘNG HÒA XÃ HỘI CHỦ NGHĨA VIỆT NAM" takes in 12 pt bold
AGENCY_WIDTH = 32  # and the agency's name ("SỞ GIÁO DỤC VÀ ĐÀO TẠO"), give or take


@dataclass(frozen=True)
class Letterhead:
    """Who issues a report and who signs it, and the day it is dated."""

    agency: str
    day: date
    parent: str | None = None
    place: str | None = None
    signer_title: str = "GIÁM ĐỐC"
    signer_name: str | None = None

    @classmethod
    def from_settings(cls, settings: Settings, day: date | None = None) -> Letterhead:
        """Read the letterhead from [reports] and [agency]; date it today in the agency's zone."""
        reports = settings.reports
        today = day or datetime.now(settings.scheduler.tz).date()
        return cls(
            agency=reports.agency_name or settings.agency.name,
            day=today,
            parent=reports.agency_parent,
            place=settings.agency.place,
            signer_title=reports.signer_title,
            signer_name=reports.signer_name,
        )


@dataclass(frozen=True)
class Column:
    """One column of the table: its header, the merged header above it, its width and kind."""

    label: str
    width: float
    kind: Kind = "count"
    group: str | None = None


def date_line(day: date, place: str | None, locale: str) -> str:
    """Return '<Place>, ngày 05 tháng 3 năm 2026': days below 10 and months 1–2 take a zero."""
    month = f"{day.month:02d}" if day.month < 3 else str(day.month)
    line = t("report.xlsx.date_line", locale, day=f"{day.day:02d}", month=month, year=day.year)
    return f"{place}, {line}" if place else line[:1].upper() + line[1:]


def new_book() -> Workbook:
    """Return an empty workbook (its first sheet is filled by the first `table_sheet`)."""
    return Workbook()


def to_bytes(book: Workbook) -> bytes:
    """Return a workbook's XLSX bytes."""
    out = BytesIO()
    book.save(out)
    return out.getvalue()


def _font(size: int = 12, *, bold: bool = False, italic: bool = False) -> Font:
    """Return the documents' font (Times New Roman, Decree 30/2020)."""
    return Font(name=FONT, size=size, bold=bold, italic=italic)


def _put(
    sheet: Worksheet,
    row: int,
    first: int,
    last: int,
    value: Any,
    font: Font,
    *,
    align: str = "center",
) -> None:
    """Write a value across merged columns first..last of a row."""
    if last > first:
        sheet.merge_cells(start_row=row, start_column=first, end_row=row, end_column=last)
    cell = sheet.cell(row=row, column=first, value=value)
    cell.font = font
    cell.alignment = Alignment(horizontal=align, vertical="center", wrap_text=True)


def split_at(columns: Sequence[Column]) -> int:
    """Return how many columns the left header block (the agency) takes.

    The split nearest 2/5 of the width among those leaving both blocks wide enough; else the one
    that comes closest to wide enough (`fit_letterhead` then widens the narrow block).
    """
    widths = [c.width for c in columns]
    total = sum(widths)
    if len(widths) < 2:
        return 1

    def room(split: int) -> float:
        """Return how well the narrower block fits its text (1 or more: fits)."""
        left, right = sum(widths[:split]), sum(widths[split:])
        return min(left / AGENCY_WIDTH, right / NATION_WIDTH)

    splits = range(1, len(widths))
    fitting = [n for n in splits if room(n) >= 1]
    if fitting:
        return min(fitting, key=lambda n: abs(sum(widths[:n]) - total * 2 / 5))
    return max(splits, key=room)


def fit_letterhead(columns: Sequence[Column]) -> list[Column]:
    """Widen the columns of a header block too narrow for its text (a narrow table's)."""
    out = list(columns)
    if len(out) < 2:
        return out
    split = split_at(out)
    for first, last, need in ((0, split, AGENCY_WIDTH), (split, len(out), NATION_WIDTH)):
        short = need - sum(c.width for c in out[first:last])
        if short > 0:
            extra = short / (last - first)
            out[first:last] = [replace(c, width=c.width + extra) for c in out[first:last]]
    return out


def _halves(columns: Sequence[Column]) -> tuple[tuple[int, int], tuple[int, int]]:
    """Return the first and last columns (from 1) of the left and right header blocks."""
    split = split_at(columns)
    return (1, split), (split + 1, max(split + 1, len(columns)))


def _letterhead(sheet: Worksheet, head: Letterhead, columns: Sequence[Column], locale: str) -> None:
    """Write the agency (left) and the national name and motto (right) in rows 1–3."""
    (l1, l2), (r1, r2) = _halves(columns)
    left = sum(c.width for c in columns[l1 - 1 : l2])
    right = sum(c.width for c in columns[r1 - 1 : r2])
    agency = [(head.parent.upper(), _font(12))] if head.parent else []
    agency += [(head.agency.upper(), _font(12, bold=True)), ("―" * 8, _font(12))]
    nation = [
        (t("report.xlsx.nation", locale), _font(12, bold=True)),
        (t("report.xlsx.motto", locale), _font(13, bold=True)),
        ("―" * 14, _font(12)),
    ]
    for row, (text, font) in enumerate(agency, 1):
        _put(sheet, row, l1, l2, text, font)
    for row, (text, font) in enumerate(nation, 1):
        _put(sheet, row, r1, r2, text, font)
    for row in (1, 2):
        texts = [(agency[row - 1][0], left), (nation[row - 1][0], right)]
        fit_height(sheet, row, texts)


def _headers(sheet: Worksheet, top: int, columns: Sequence[Column]) -> None:
    """Write two header rows: a group's label merged over its columns, the rest merged down."""
    upper: list[tuple[str, float]] = []
    lower = [(c.label, c.width) for c in columns if c.group is not None]
    alone = [(c.label, c.width) for c in columns if c.group is None]
    index = 0
    while index < len(columns):
        column = columns[index]
        first = index + 1
        if column.group is None:
            sheet.merge_cells(start_row=top, start_column=first, end_row=top + 1, end_column=first)
            _header_cell(sheet, top, first, column.label)
            _header_cell(sheet, top + 1, first, None)
            index += 1
            continue
        last = index
        while last + 1 < len(columns) and columns[last + 1].group == column.group:
            last += 1
        upper.append((column.group, sum(c.width for c in columns[index : last + 1])))
        if last > index:
            sheet.merge_cells(start_row=top, start_column=first, end_row=top, end_column=last + 1)
        for number in range(first, last + 2):
            _header_cell(sheet, top, number, column.group if number == first else None)
            _header_cell(sheet, top + 1, number, columns[number - 1].label)
        index = last + 1
    fit_height(sheet, top, upper)
    fit_height(sheet, top + 1, lower)
    if alone and lower:  # a column merged down shares the two rows' height
        need = max(lines_needed(text, width) for text, width in alone) * LINE_POINTS + 3
        have = sum(sheet.row_dimensions[r].height or LINE_POINTS for r in (top, top + 1))
        if need > have:
            sheet.row_dimensions[top + 1].height = need - (
                sheet.row_dimensions[top].height or LINE_POINTS
            )


def _header_cell(sheet: Worksheet, row: int, column: int, value: str | None) -> None:
    """Write one boxed, bold, centred header cell."""
    cell = sheet.cell(row=row, column=column)
    if value is not None:
        cell.value = value
    cell.font = _font(11, bold=True)
    cell.border = BOX
    cell.alignment = Alignment(horizontal="center", vertical="center", wrap_text=True)


def _body_row(
    sheet: Worksheet, row: int, columns: Sequence[Column], values: Sequence[Any], *, bold: bool
) -> None:
    """Write one boxed table row, each cell with its column's number format."""
    for number, (column, value) in enumerate(zip(columns, values, strict=True), 1):
        cell = sheet.cell(row=row, column=number, value=value)
        cell.font = _font(11, bold=bold)
        cell.border = BOX
        numeric = isinstance(value, int | float) and not isinstance(value, bool)
        if isinstance(value, date | datetime):
            cell.number_format = FORMATS["date"]
        elif numeric:
            cell.number_format = FORMATS[column.kind]
        horizontal = "left" if column.kind == "text" or not (numeric or value is None) else "right"
        if isinstance(value, date | datetime) or column.kind == "rank":
            horizontal = "center"
        cell.alignment = Alignment(horizontal=horizontal, vertical="center", wrap_text=True)
    texts = [(str(v), c.width) for c, v in zip(columns, values, strict=True) if isinstance(v, str)]
    fit_height(sheet, row, texts)


def lines_needed(text: str, width: float) -> int:
    """Return how many lines a text takes in a column of some width, wrapped at spaces."""
    per_line = max(1, int(width * CHARS_PER_WIDTH) - 1)
    lines, used = 1, 0
    for word in text.split():
        if used and used + 1 + len(word) > per_line:
            lines, used = lines + 1, len(word)
        else:
            used += len(word) + (1 if used else 0)
        lines += max(0, (len(word) - 1) // per_line)
    return lines


def fit_height(sheet: Worksheet, row: int, texts: Sequence[tuple[str, float]]) -> None:
    """Make a row tall enough for its longest wrapped text (Excel does not on opening)."""
    lines = max((lines_needed(text, width) for text, width in texts), default=1)
    if lines > 1:
        sheet.row_dimensions[row].height = LINE_POINTS * lines + 3


def _signature(
    sheet: Worksheet, row: int, head: Letterhead, columns: Sequence[Column], locale: str
) -> None:
    """Write the place-and-date line and the signer (right), the compiler's note (left)."""
    (l1, l2), (r1, r2) = _halves(columns)
    _put(sheet, row, r1, r2, date_line(head.day, head.place, locale), _font(12, italic=True))
    _put(sheet, row + 1, r1, r2, head.signer_title.upper(), _font(12, bold=True))
    _put(sheet, row + 1, l1, l2, t("report.xlsx.compiler", locale), _font(12, bold=True))
    _put(sheet, row + 2, r1, r2, t("report.xlsx.sign_note", locale), _font(11, italic=True))
    if head.signer_name:
        _put(sheet, row + 6, r1, r2, head.signer_name, _font(12, bold=True))


def _print_setup(sheet: Worksheet, header_top: int) -> None:
    """A4 landscape, fitted to one page wide, header rows repeated, Decree 30 margins."""
    sheet.page_setup.paperSize = sheet.PAPERSIZE_A4
    sheet.page_setup.orientation = sheet.ORIENTATION_LANDSCAPE
    sheet.page_setup.fitToWidth = 1
    sheet.page_setup.fitToHeight = 0
    sheet.sheet_properties.pageSetUpPr = PageSetupProperties(fitToPage=True)
    sheet.print_title_rows = f"{header_top}:{header_top + HEADER_ROWS - 1}"
    sheet.print_options.horizontalCentered = True
    margins = sheet.page_margins
    margins.left, margins.right = 30 * MM, 15 * MM
    margins.top, margins.bottom = 20 * MM, 20 * MM
    margins.header, margins.footer = 8 * MM, 8 * MM
    footer = sheet.oddFooter
    if footer is not None and footer.center is not None:
        footer.center.text = "&P/&N"


def table_sheet(
    book: Workbook,
    *,
    name: str,
    head: Letterhead,
    title: str,
    lines: Sequence[str],
    columns: Sequence[Column],
    rows: Sequence[Sequence[Any]],
    totals: Sequence[Any] | None,
    locale: str,
) -> Worksheet:
    """Add (or fill the first empty) sheet laid out as an administrative report; return it."""
    sheet = book.active
    if not isinstance(sheet, Worksheet) or sheet.max_row > 1 or sheet["A1"].value is not None:
        sheet = book.create_sheet()
    sheet.title = name[:31]
    columns = fit_letterhead(columns)
    width = len(columns)
    _letterhead(sheet, head, columns, locale)
    _put(sheet, 5, 1, width, title.upper(), _font(14, bold=True))
    total_width = sum(c.width for c in columns)
    for offset, line in enumerate(lines):
        _put(sheet, 6 + offset, 1, width, line, _font(12, italic=True))
        fit_height(sheet, 6 + offset, [(line, total_width)])
    top = 7 + len(lines)
    _headers(sheet, top, columns)
    row = top + HEADER_ROWS
    for values in rows:
        _body_row(sheet, row, columns, values, bold=False)
        row += 1
    if totals is not None:
        _body_row(sheet, row, columns, totals, bold=True)
        row += 1
    _signature(sheet, row + 1, head, columns, locale)
    for number, column in enumerate(columns, 1):
        sheet.column_dimensions[get_column_letter(number)].width = column.width
    sheet.row_dimensions[5].height = 22
    _print_setup(sheet, top)
    return sheet


def header_row(sheet: Worksheet) -> int:
    """Return the row of a table sheet's lower header (the one above the first data row)."""
    top = int(str(sheet.print_title_rows).split(":")[0].lstrip("$"))
    return top + HEADER_ROWS - 1


def data_rows(sheet: Worksheet) -> list[tuple[Any, ...]]:
    """Return a table sheet's body rows (totals included), as values, up to the first blank."""
    out = []
    for values in sheet.iter_rows(min_row=header_row(sheet) + 1, values_only=True):
        if all(v is None for v in values):
            break
        out.append(values)
    return out
