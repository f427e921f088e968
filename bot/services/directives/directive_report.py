"""The directive status as a spreadsheet (XLSX) in the reader's language, and queueing it."""

from __future__ import annotations

from datetime import datetime
from io import BytesIO

from openpyxl import Workbook
from openpyxl.styles import Font
from sqlmodel.ext.asyncio.session import AsyncSession

from bot.i18n import t
from bot.messages import OutboundMessage
from bot.models import Contact
from bot.services.delivery import outbox
from bot.services.directives import attachments
from bot.services.directives.directives import Status

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


async def queue_status_xlsx(
    session: AsyncSession, *, contact: Contact, status: Status, now: datetime
) -> None:
    """Store the status as XLSX and queue it to the contact as a document."""
    name = f"cong-van-{status.directive.id}.xlsx"
    data = status_xlsx(status, locale=contact.locale)
    row = attachments.store(session, name=name, data=data, now=now)
    await session.flush()
    message = OutboundMessage(
        "directive.xlsx_caption", {"number": status.directive.number}, attachment_id=row.id
    )
    await outbox.enqueue(
        session,
        contact=contact,
        message=message,
        kind="report",
        ref_id=status.directive.id,
        now=now,
        priority=0,
    )
