"""The XLSX reports in the administrative layout: letterhead, merged headers, figures, print setup.

The scoreboard is the seeded November 2026 of tests/test_reports_scoreboard.py.
"""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from io import BytesIO

import pytest
from openpyxl import load_workbook
from openpyxl.utils import get_column_letter

from bot.config import Settings
from bot.i18n import t
from bot.services.reports import render
from bot.services.reports.scoreboard import scoreboard
from bot.services.reports.xlsx import data_rows, date_line, header_row
from tests.test_reports_scoreboard import NOVEMBER, NOW, SETTINGS, seeded  # noqa: F401

LETTERHEAD = Settings(
    agency={"name": "Sở Giáo dục và Đào tạo tỉnh An Phú", "place": "An Phú"},
    reports={
        "agency_parent": "UBND tỉnh An Phú",
        "agency_name": "Sở Giáo dục và Đào tạo",
        "signer_title": "Giám đốc",
        "signer_name": "Nguyễn Văn An",
        "min_ratings": 2,
    },
)
DAY = date(2026, 12, 1)


async def board(maker):
    async with maker() as s:
        return await scoreboard(s, window=NOVEMBER, now=NOW, settings=SETTINGS)


def book_of(data: bytes):
    return load_workbook(BytesIO(data))


def nation_cell(sheet):
    """Return the first filled cell of row 1 after A1: the national name's."""
    return next(c for c in sheet[1][1:] if c.value is not None)


def texts(sheet) -> list[str]:
    return [str(c.value) for row in sheet.iter_rows() for c in row if c.value is not None]


@pytest.mark.parametrize(
    ("day", "place", "line"),
    [
        (date(2026, 3, 5), "An Phú", "An Phú, ngày 05 tháng 3 năm 2026"),
        (date(2026, 1, 19), "An Phú", "An Phú, ngày 19 tháng 01 năm 2026"),
        (date(2026, 2, 8), None, "Ngày 08 tháng 02 năm 2026"),
        (date(2026, 12, 31), "An Phú", "An Phú, ngày 31 tháng 12 năm 2026"),
    ],
)
def test_the_date_line_follows_decree_30(day, place, line):
    assert date_line(day, place, "vi") == line


async def test_the_scoreboard_sheet_has_the_administrative_layout(maker, seeded):  # noqa: F811
    result = await board(maker)
    book = book_of(render.scoreboard_xlsx(result, locale="vi", settings=LETTERHEAD, day=DAY))
    assert book.sheetnames == ["Thi đua", "Mức độ hài lòng"]
    sheet = book["Thi đua"]
    # Top left the managing authority and the agency; top right the national name and motto.
    assert sheet["A1"].value == "UBND TỈNH AN PHÚ"
    assert sheet["A2"].value == "SỞ GIÁO DỤC VÀ ĐÀO TẠO"
    assert sheet["A2"].font.b
    assert not sheet["A1"].font.b
    right = nation_cell(sheet)
    assert right.value == "CỘNG HÒA XÃ HỘI CHỦ NGHĨA VIỆT NAM"
    assert right.font.b
    assert sheet.cell(2, right.column).value == "Độc lập - Tự do - Hạnh phúc"
    # The left block takes about 2/5 of the table's width, the right block the rest.
    merged = {str(r) for r in sheet.merged_cells.ranges}
    left_end = get_column_letter(right.column - 1)
    assert {f"A1:{left_end}1", f"A2:{left_end}2", f"{right.column_letter}1:W1"} <= merged
    assert {f"{right.column_letter}2:W2", "A5:W5"} <= merged
    widths = [sheet.column_dimensions[c].width for c in "ABCDEFGHIJKLMNOPQRSTUVW"]
    share = sum(widths[: right.column - 1]) / sum(widths)
    assert 0.3 < share < 0.5
    assert sheet["A5"].value == t("report.xlsx.title", "vi").upper()
    assert sheet["A6"].value == "Từ ngày 01/11/2026 đến ngày 30/11/2026"
    assert sheet["A7"].value == "So sánh với kỳ trước: từ ngày 02/10/2026 đến ngày 31/10/2026"
    # Two header rows: a group merged across, a lone column merged down.
    top = header_row(sheet) - 1
    assert top == 10  # after the title, three lines (period, previous period, weights), a blank
    assert {"A10:A11", "B10:B11", "C10:E10", "F10:I10", "J10:M10", "N10:O10", "P10:R10"} <= merged
    assert "S10:W10" in merged
    assert sheet["C10"].value == "Điểm thi đua"
    assert [sheet.cell(11, c).value for c in (3, 4, 5)] == [
        "Điểm",
        "Xếp hạng",
        "Tăng (+), giảm (-) so với kỳ trước",
    ]
    texts_found = texts(sheet)
    assert "An Phú, ngày 01 tháng 12 năm 2026" in texts_found
    assert "GIÁM ĐỐC" in texts_found
    assert "Nguyễn Văn An" in texts_found


async def test_the_scoreboard_figures_match_the_database(maker, seeded):  # noqa: F811
    result = await board(maker)
    sheet = book_of(render.scoreboard_xlsx(result, locale="vi", settings=LETTERHEAD, day=DAY))[
        "Thi đua"
    ]
    rows = data_rows(sheet)
    assert [r[:4] for r in rows[:-1]] == [
        (1, "Đơn vị B", 100.0, 1),
        (2, "Đơn vị C", 100.0, 1),
        (3, "Đơn vị A", 45.83, 3),
        (4, "Đơn vị D", None, "Chưa đủ lượt đánh giá"),
        (5, "Đơn vị E", 100.0, "Chưa đủ lượt đánh giá"),
    ]
    a = rows[2]
    assert a[4] == pytest.approx(33.33)  # the change since October
    assert a[5:9] == (4, 2, 0.5, 2.0)  # notices, acked, 50,0 %, median 2 hours
    assert a[9:13] == (3, 1, pytest.approx(0.333), 1)  # tasks due, on time, 33,3 %, overdue
    assert a[13:15] == (4, 0.5)
    assert a[15:18] == (2, 1, 0.5)
    assert a[18:23] == (6, 2, 3, 0.5, 1)
    totals = rows[-1]
    assert totals[1] == "Tổng cộng"
    assert totals[5:9] == (6, 4, pytest.approx(0.667), 2.5)
    assert totals[13:15] == (9, pytest.approx(0.778))
    # Numbers are numbers, shown with formats (Excel writes the decimal comma in Vietnamese).
    cell = sheet.cell(header_row(sheet) + 3, 8)
    assert cell.value == 0.5
    assert cell.number_format == "0.0%"
    assert sheet.cell(header_row(sheet) + 3, 3).number_format == "0.00"
    assert sheet.cell(header_row(sheet) + 3, 6).number_format == "#,##0"
    levels = data_rows(
        book_of(render.scoreboard_xlsx(result, locale="vi", settings=LETTERHEAD))["Mức độ hài lòng"]
    )
    assert levels[2][:9] == (3, "Đơn vị A", 1, 1, 0, 1, 1, 4, 0.5)
    assert levels[2][9] == float(Decimal("4.00"))
    assert levels[-1][2:8] == (3, 4, 0, 1, 1, 9)


async def test_print_setup_is_a4_landscape_fitted_to_width_with_repeated_headers(maker, seeded):  # noqa: F811
    result = await board(maker)
    book = book_of(render.scoreboard_xlsx(result, locale="vi", settings=LETTERHEAD, day=DAY))
    for sheet in book.worksheets:
        setup = sheet.page_setup
        assert setup.paperSize == 9  # A4
        assert setup.orientation == "landscape"
        assert (setup.fitToWidth, setup.fitToHeight) == (1, 0)
        assert sheet.sheet_properties.pageSetUpPr.fitToPage
        assert sheet.print_title_rows == "$10:$11" if sheet.title == "Thi đua" else "$8:$9"
        assert sheet.page_margins.left == pytest.approx(30 / 25.4)
        assert sheet.page_margins.right == pytest.approx(15 / 25.4)
        assert sheet.column_dimensions["B"].width == 32


async def test_a_head_s_scoreboard_has_one_unit_and_no_totals_row(maker, seeded):  # noqa: F811
    result = (await board(maker)).only(seeded["A"].id)
    sheet = book_of(render.scoreboard_xlsx(result, locale="en", settings=LETTERHEAD, day=DAY))[
        "Scoreboard"
    ]
    assert sheet["A1"].value == "UBND TỈNH AN PHÚ"
    assert nation_cell(sheet).value == "SOCIALIST REPUBLIC OF VIETNAM"
    assert [r[:4] for r in data_rows(sheet)] == [(1, "Đơn vị A", 45.83, 3)]


def test_rows_are_made_tall_enough_for_their_wrapped_text():
    from bot.services.reports.xlsx import lines_needed

    assert lines_needed("Tỷ lệ", 9) == 1
    assert lines_needed("Không bị đánh giá không hài lòng, phản ánh, trễ hạn", 13) == 4
    assert lines_needed("", 10) == 1


async def test_header_rows_are_tall_enough_and_the_totals_row_is_bold(maker, seeded):  # noqa: F811
    result = await board(maker)
    sheet = book_of(render.scoreboard_xlsx(result, locale="vi", settings=LETTERHEAD, day=DAY))[
        "Thi đua"
    ]
    lower = header_row(sheet)
    assert sheet.row_dimensions[lower].height >= 4 * 15  # "Không bị đánh giá …" in 4 lines
    totals = lower + len(data_rows(sheet))
    assert sheet.cell(totals, 2).value == "Tổng cộng"
    assert sheet.cell(totals, 2).font.b
    assert sheet.cell(totals, 2).border.top.style == "thin"
