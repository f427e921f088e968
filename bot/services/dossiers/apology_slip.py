"""The apology slip (Phiếu xin lỗi và hẹn lại ngày trả kết quả) as a printable A4 DOCX."""

from __future__ import annotations

import io
from dataclasses import dataclass
from datetime import date, datetime
from zoneinfo import ZoneInfo

from docx import Document
from docx.document import Document as DocxDocument
from docx.enum.table import WD_TABLE_ALIGNMENT
from docx.enum.text import WD_ALIGN_PARAGRAPH
from docx.shared import Cm, Pt
from docx.text.paragraph import Paragraph

from bot.i18n import t
from bot.i18n.formats import formal_time

TZ = ZoneInfo("Asia/Ho_Chi_Minh")
FONT = "Times New Roman"
BODY_PT = 13
MIME = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"


@dataclass(frozen=True)
class Issuer:
    """The agency that issues slips: its name, its symbol after PXL-, and its place name."""

    name: str | None = None
    symbol: str = ""
    place: str | None = None


@dataclass(frozen=True)
class SlipData:
    """Everything printed on one slip."""

    unit_name: str
    parent_name: str | None
    citizen_name: str
    code: str
    procedure: str | None
    received_on: date
    original_appointment_at: datetime
    reason: str
    new_return_at: datetime
    issued_on: date
    signer: str
    place: str | None = None
    agency_name: str | None = None
    number: int | None = None
    symbol: str = ""


def when(moment: datetime, tz: ZoneInfo = TZ, locale: str = "vi") -> str:
    """Format a moment as formal notices do: '17 giờ 00, ngày 07/12/2026' in local time."""
    return formal_time(moment, tz, locale)


def number_line(data: SlipData, *, locale: str = "vi") -> str:
    """Return 'Số: 12/PXL-SGDĐT' (dots where the slip has no number yet)."""
    number = f"{data.number:02d}" if data.number is not None else "…"
    return t("apology.slip.number", locale, number=number, symbol=data.symbol or "…")


def day(d: date) -> str:
    """Format a date as dd/mm/yyyy."""
    return d.strftime("%d/%m/%Y")


def slip_lines(data: SlipData, *, locale: str = "vi", tz: ZoneInfo = TZ) -> list[str]:
    """Return the body of a slip, one catalog sentence per paragraph."""
    procedure = data.procedure or t("apology.slip.no_procedure", locale)
    unit = data.unit_name
    appointment = when(data.original_appointment_at, tz, locale)
    new_date = when(data.new_return_at, tz, locale)
    return [
        t(
            "apology.slip.received",
            locale,
            unit=unit,
            day=day(data.received_on),
            procedure=procedure,
            code=data.code,
        ),
        t("apology.slip.appointment", locale, appointment=appointment),
        t("apology.slip.reason", locale, unit=unit, reason=data.reason),
        t("apology.slip.apology", locale, unit=unit, new_date=new_date),
        t("apology.slip.closing", locale),
    ]


def place_and_date(data: SlipData, *, locale: str = "vi") -> str:
    """Return the 'place, day month year' line."""
    d = data.issued_on
    line = t(
        "apology.slip.date_line", locale, day=f"{d.day:02d}", month=f"{d.month:02d}", year=d.year
    )
    return f"{data.place}, {line}" if data.place else line[:1].upper() + line[1:]


def render_docx(data: SlipData, *, locale: str = "vi", tz: ZoneInfo = TZ) -> bytes:
    """Render a slip as a DOCX document on A4 paper."""
    doc = Document()
    _page(doc)
    _header(doc, data, locale)
    _centered(doc, t("apology.slip.title", locale), bold=True, size=14, space=12)
    _para(doc, t("apology.slip.addressee", locale, name=data.citizen_name), bold=True)
    for line in slip_lines(data, locale=locale, tz=tz):
        _para(doc, line, indent=True)
    _signature(doc, data, locale)
    out = io.BytesIO()
    doc.save(out)
    return out.getvalue()


def _page(doc: DocxDocument) -> None:
    """Set A4 paper, office margins and the body font."""
    section = doc.sections[0]
    section.page_width, section.page_height = Cm(21), Cm(29.7)
    section.top_margin = section.bottom_margin = Cm(2)
    section.left_margin, section.right_margin = Cm(3), Cm(2)
    style = doc.styles["Normal"]
    style.font.name = FONT
    style.font.size = Pt(BODY_PT)


def _header(doc: DocxDocument, data: SlipData, locale: str) -> None:
    """Write the agency above the unit and the number on the left; the motto and date right."""
    table = doc.add_table(rows=1, cols=2)
    table.alignment = WD_TABLE_ALIGNMENT.CENTER
    left, right = table.rows[0].cells
    left.paragraphs[0].text = ""
    above = data.agency_name or data.parent_name
    if above and above.strip().casefold() != data.unit_name.strip().casefold():
        _cell_line(left.paragraphs[0], above.upper(), bold=False)
        _cell_line(left.add_paragraph(), data.unit_name.upper(), bold=True)
    else:
        _cell_line(left.paragraphs[0], data.unit_name.upper(), bold=True)
    _cell_line(left.add_paragraph(), number_line(data, locale=locale), bold=False)
    _cell_line(right.paragraphs[0], t("apology.slip.nation", locale), bold=True)
    _cell_line(right.add_paragraph(), t("apology.slip.motto", locale), bold=True)
    dated = right.add_paragraph()
    dated.alignment = WD_ALIGN_PARAGRAPH.CENTER
    dated.add_run(place_and_date(data, locale=locale)).italic = True


def _cell_line(paragraph: Paragraph, text: str, *, bold: bool) -> None:
    """Write one centred line in a header cell."""
    paragraph.alignment = WD_ALIGN_PARAGRAPH.CENTER
    run = paragraph.add_run(text)
    run.bold = bold
    run.font.size = Pt(12)


def _centered(doc: DocxDocument, text: str, *, bold: bool, size: int, space: int = 0) -> None:
    """Add a centred paragraph."""
    paragraph = doc.add_paragraph()
    paragraph.alignment = WD_ALIGN_PARAGRAPH.CENTER
    paragraph.paragraph_format.space_before = Pt(space)
    run = paragraph.add_run(text)
    run.bold = bold
    run.font.size = Pt(size)


def _para(doc: DocxDocument, text: str, *, bold: bool = False, indent: bool = False) -> None:
    """Add a justified body paragraph."""
    paragraph = doc.add_paragraph()
    paragraph.alignment = WD_ALIGN_PARAGRAPH.JUSTIFY
    if indent:
        paragraph.paragraph_format.first_line_indent = Cm(1)
    paragraph.add_run(text).bold = bold


def _signature(doc: DocxDocument, data: SlipData, locale: str) -> None:
    """Write the head's title, signing note and name on the right."""
    table = doc.add_table(rows=1, cols=2)
    right = table.rows[0].cells[1]
    _cell_line(right.paragraphs[0], t("apology.slip.signer_title", locale), bold=True)
    note = right.add_paragraph()
    note.alignment = WD_ALIGN_PARAGRAPH.CENTER
    note.add_run(t("apology.slip.sign_note", locale)).italic = True
    for _ in range(3):
        right.add_paragraph()
    _cell_line(right.add_paragraph(), data.signer, bold=True)


def docx_text(data: bytes) -> str:
    """Return every paragraph of a DOCX (tables included), one per line, to check or index."""
    doc = Document(io.BytesIO(data))
    lines = [p.text for p in doc.paragraphs]
    for table in doc.tables:
        for row in table.rows:
            for cell in row.cells:
                lines.extend(p.text for p in cell.paragraphs)
    return "\n".join(lines)
