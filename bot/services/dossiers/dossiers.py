"""The dossier registry: import from the one-stop system, status notices, citizens following."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import func
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from bot.messages import OutboundMessage, Text
from bot.models import (
    AuditLog,
    Contact,
    Dossier,
    DossierFollower,
    DossierStatus,
    Procedure,
)
from bot.services.calendar import WorkCalendar
from bot.services.delivery import outbox
from bot.services.errors import InvalidInput, NotFound, PermissionDenied
from bot.services.org import audit
from bot.services.org.imports.report import (
    ImportReport,
    Problems,
    Progress,
    RowProblem,
    Ticker,
    chunks,
    record_import,
    rows_by_code,
    unit_ids_by_code,
)
from bot.services.org.imports.table import ColumnSpec, SourceRow, Table, TableSpec
from bot.services.org.imports.values import FieldError, fold, parse_phone, text_parser

TZ = ZoneInfo("Asia/Ho_Chi_Minh")
DEFAULT_TIME = "17:00"
CODE_RE = re.compile(r"^[A-Za-z0-9./\-]{1,64}$")
DATE_RE = re.compile(r"^(\d{1,2})/(\d{1,2})/(\d{4})$")
ISO_RE = re.compile(r"^(\d{4})-(\d{2})-(\d{2})(?:[T ](\d{2}):(\d{2})(?::\d{2})?)?$")
TIME_RE = re.compile(r"^(\d{1,2})[:hH](\d{2})$")
NAME = text_parser(255)
MAX_FOLLOW_FAILURES = 5
OPEN = (DossierStatus.RECEIVED, DossierStatus.PROCESSING, DossierStatus.ADDITIONAL)
NOTICE_PRIORITY = 60

STATUS_LABELS: dict[str, DossierStatus] = {
    "da tiep nhan": DossierStatus.RECEIVED,
    "moi tiep nhan": DossierStatus.RECEIVED,
    "dang xu ly": DossierStatus.PROCESSING,
    "dang giai quyet": DossierStatus.PROCESSING,
    "in progress": DossierStatus.PROCESSING,
    "cho bo sung": DossierStatus.ADDITIONAL,
    "yeu cau bo sung": DossierStatus.ADDITIONAL,
    "awaiting documents": DossierStatus.ADDITIONAL,
    "da co ket qua": DossierStatus.DONE,
    "co ket qua": DossierStatus.DONE,
    "completed": DossierStatus.DONE,
    "da tra ket qua": DossierStatus.RETURNED,
    "da huy": DossierStatus.CANCELLED,
    "huy": DossierStatus.CANCELLED,
    "canceled": DossierStatus.CANCELLED,
}
STATUSES = {**{fold(s.value): s for s in DossierStatus}, **STATUS_LABELS}

DOSSIERS = TableSpec(
    "dossiers",
    (
        ColumnSpec("code", "Mã hồ sơ", "code", required=True, others=("Số biên nhận",)),
        ColumnSpec("procedure_code", "Mã TTHC", "procedure_code", others=("procedure",)),
        ColumnSpec("unit_code", "Mã đơn vị", "unit_code", others=("unit",)),
        ColumnSpec("citizen_name", "Họ và tên", "citizen_name", required=True, others=("name",)),
        ColumnSpec("phone", "Điện thoại", "phone", others=("Số điện thoại",)),
        ColumnSpec("received_on", "Ngày tiếp nhận", "received_on", required=True),
        ColumnSpec("appointment_at", "Ngày hẹn trả", "appointment_at", required=True),
        ColumnSpec("status", "Trạng thái", "status"),
    ),
)


@dataclass(frozen=True)
class DossierRecord:
    """One valid dossier row: its code and the fields the file gives."""

    row: int
    code: str
    attrs: dict[str, Any]


@dataclass
class DossierPlan:
    """What an import will do to the registry."""

    create: list[DossierRecord] = field(default_factory=list)
    update: list[tuple[Dossier, DossierRecord]] = field(default_factory=list)
    unchanged: int = 0

    def report(self, *, dry_run: bool) -> ImportReport:
        """Return the counts as a report."""
        return ImportReport(len(self.create), len(self.update), self.unchanged, dry_run=dry_run)


@dataclass(frozen=True)
class Lookups:
    """Units and procedures by code, as the database holds them."""

    units: dict[str, int]
    procedures: dict[str, tuple[int, int | None]]


def parse_dossier_code(value: str) -> str:
    """Return an upper-case receipt code of letters, digits, '.', '/' and '-' (at most 64)."""
    if not CODE_RE.fullmatch(value):
        raise FieldError("dossier.import.bad_code", value=value[:80])
    return value.upper()


def parse_day(value: str) -> date:
    """Return a date written dd/mm/yyyy (or ISO, as spreadsheets give dates)."""
    day, _ = _split_date_time(value)
    return day


def appointment_parser(tz: ZoneInfo) -> Any:
    """Return a parser of 'dd/mm/yyyy [HH:MM]' in local time (17:00 when no time is given)."""

    def parse(value: str) -> datetime:
        """Return the UTC moment of a local appointment."""
        day, wall = _split_date_time(value)
        hours, minutes = wall or (17, 0)
        return datetime(day.year, day.month, day.day, hours, minutes, tzinfo=tz)

    return parse


def _split_date_time(value: str) -> tuple[date, tuple[int, int] | None]:
    """Split a cell into its date and optional (hours, minutes)."""
    iso = ISO_RE.fullmatch(value)
    if iso:
        parts = iso.groups()
        wall = (
            (int(parts[3]), int(parts[4]))
            if parts[3] and (parts[3], parts[4]) != ("00", "00")
            else None
        )
        return _date(int(parts[0]), int(parts[1]), int(parts[2]), value), wall
    head, _, tail = value.partition(" ")
    match = DATE_RE.fullmatch(head)
    if match is None:
        raise FieldError("dossier.import.bad_date", value=value[:40])
    day = _date(int(match.group(3)), int(match.group(2)), int(match.group(1)), value)
    return day, _wall(tail.strip(), value) if tail.strip() else None


def _date(year: int, month: int, day: int, raw: str) -> date:
    """Build a date or raise the import's bad-date problem."""
    try:
        return date(year, month, day)
    except ValueError:
        raise FieldError("dossier.import.bad_date", value=raw[:40]) from None


def _wall(text: str, raw: str) -> tuple[int, int]:
    """Return (hours, minutes) of 'HH:MM', or raise the bad-date problem."""
    match = TIME_RE.fullmatch(text)
    if match is None or int(match.group(1)) > 23 or int(match.group(2)) > 59:
        raise FieldError("dossier.import.bad_date", value=raw[:40])
    return int(match.group(1)), int(match.group(2))


def parse_status(value: str) -> DossierStatus:
    """Return the status named by a Vietnamese label or an English alias."""
    status = STATUSES.get(fold(value))
    if status is None:
        raise FieldError("dossier.import.unknown_status", value=value[:40])
    return status


async def import_dossiers(
    session: AsyncSession,
    *,
    table: Table,
    actor: str,
    now: datetime,
    dry_run: bool = False,
    progress: Progress | None = None,
    source: str | None = None,
    tz: ZoneInfo = TZ,
    cal: WorkCalendar | None = None,
) -> ImportReport:
    """Check every dossier row, then create or update all of them (or none); notify followers."""
    if table.spec is not DOSSIERS:
        raise ValueError("import_dossiers needs a table read with the DOSSIERS spec")
    ticker = Ticker(progress, len(table.rows))
    problems = Problems(table)
    records = _parse_rows(table, problems, await _lookups(session), tz, ticker)
    if problems:
        return ImportReport(problems=problems.sorted(), dry_run=dry_run)
    plan = _plan(records, await rows_by_code(session, Dossier, [r.code for r in records]))
    report = plan.report(dry_run=dry_run)
    report.warnings = appointments_on_days_off(table, records, cal or WorkCalendar())
    if not dry_run:
        await _apply(session, plan=plan, now=now)
        record_import(
            session, action="import.dossiers", report=report, actor=actor, now=now, source=source
        )
        await session.flush()
    ticker.finish()
    return report


def appointments_on_days_off(
    table: Table, records: list[DossierRecord], cal: WorkCalendar
) -> list[RowProblem]:
    """Flag appointments on a weekend or holiday: kept as given on the receipt, but shown."""
    warnings = []
    for record in records:
        at = record.attrs.get("appointment_at")
        off = cal.check_working_day(cal.local(at).date()) if at is not None else None
        if off is not None:
            column = table.label("appointment_at")
            params = {"column": column, **off.params()}
            warnings.append(RowProblem(record.row, column, off.key, params))
    return warnings


async def _lookups(session: AsyncSession) -> Lookups:
    """Load every unit and procedure code, in two queries."""
    units = await unit_ids_by_code(session)
    rows = (await session.exec(select(Procedure.code, Procedure.id, Procedure.unit_id))).all()
    return Lookups(units, {c: (i, u) for c, i, u in rows if i is not None})


def _parse_rows(
    table: Table, problems: Problems, lookups: Lookups, tz: ZoneInfo, ticker: Ticker
) -> list[DossierRecord]:
    """Parse every row and flag duplicates and unknown codes; return the valid rows."""
    records: list[DossierRecord] = []
    first_row: dict[str, int] = {}
    for row in table.rows:
        before = len(problems)
        code = problems.cell(row, "code", parse_dossier_code)
        problems.unique(row, code, first_row)
        attrs = _parse_attrs(table, row, problems, lookups, tz)
        if len(problems) == before and code is not None:
            records.append(DossierRecord(row.number, code, attrs))
        ticker.step()
    return records


def _parse_attrs(
    table: Table, row: SourceRow, problems: Problems, lookups: Lookups, tz: ZoneInfo
) -> dict[str, Any]:
    """Parse a row's dossier fields; leave out optional columns the file does not have."""
    procedure_id, unit_id = _procedure_and_unit(row, problems, lookups)
    attrs: dict[str, Any] = {
        "procedure_id": procedure_id,
        "unit_id": unit_id,
        "citizen_name": problems.cell(row, "citizen_name", NAME),
        "phone": problems.cell(row, "phone", parse_phone),
        "received_on": problems.cell(row, "received_on", parse_day),
        "appointment_at": problems.cell(row, "appointment_at", appointment_parser(tz)),
        "status": problems.cell(row, "status", parse_status),
    }
    optional = {"procedure_id": "procedure_code", "phone": "phone", "status": "status"}
    kept = {k: v for k, v in attrs.items() if k not in optional or table.has(optional[k])}
    if kept.get("status", 1) is None:
        kept.pop("status")
    return kept


def _procedure_and_unit(
    row: SourceRow, problems: Problems, lookups: Lookups
) -> tuple[int | None, int | None]:
    """Return the row's procedure id and unit id (the procedure's unit when none is given)."""
    procedure = problems.cell(row, "procedure_code", str.upper)
    found = lookups.procedures.get(procedure) if procedure else None
    if procedure and found is None:
        problems.add(
            row.number, "procedure_code", "dossier.import.unknown_procedure", code=procedure
        )
    unit = problems.cell(row, "unit_code", str.upper)
    if unit:
        if unit not in lookups.units:
            problems.add(row.number, "unit_code", "import.error.unknown_unit", code=unit)
        return (found[0] if found else None), lookups.units.get(unit)
    if found is None or found[1] is None:
        if not procedure or found is not None:
            problems.add(row.number, "unit_code", "dossier.import.unit_required")
        return (found[0] if found else None), None
    return found


def _plan(records: list[DossierRecord], existing: dict[str, Dossier]) -> DossierPlan:
    """Sort the rows into new dossiers, changed ones and unchanged ones."""
    plan = DossierPlan()
    for rec in records:
        dossier = existing.get(rec.code)
        if dossier is None:
            plan.create.append(rec)
        elif any(getattr(dossier, k) != v for k, v in rec.attrs.items()):
            plan.update.append((dossier, rec))
        else:
            plan.unchanged += 1
    return plan


async def _apply(session: AsyncSession, *, plan: DossierPlan, now: datetime) -> None:
    """Insert new dossiers, update changed ones, and queue status notices to followers."""
    for rec in plan.create:
        attrs = {"status": DossierStatus.RECEIVED, **rec.attrs}
        dossier = Dossier(code=rec.code, created_at=now, updated_at=now, **attrs)
        _stamp_returned(dossier, now)
        session.add(dossier)
    changed: list[Dossier] = []
    for dossier, rec in plan.update:
        old_status = dossier.status
        for key, value in rec.attrs.items():
            setattr(dossier, key, value)
        dossier.updated_at = now
        _stamp_returned(dossier, now)
        session.add(dossier)
        if dossier.status != old_status:
            changed.append(dossier)
    await session.flush()
    await _notify_followers(session, changed, now=now)


def _stamp_returned(dossier: Dossier, now: datetime) -> None:
    """Note when a dossier's result was returned."""
    if dossier.status == DossierStatus.RETURNED and dossier.returned_at is None:
        dossier.returned_at = now


async def _notify_followers(
    session: AsyncSession, dossiers: list[Dossier], *, now: datetime
) -> None:
    """Queue a status notice to every follower of each dossier whose status changed."""
    by_id = {d.id: d for d in dossiers if d.id is not None}
    for part in chunks(list(by_id)):
        rows = await session.exec(
            select(DossierFollower, Contact)
            .join(Contact, col(Contact.id) == DossierFollower.contact_id)
            .where(col(DossierFollower.dossier_id).in_(part))
        )
        for follower, contact in rows.all():
            dossier = by_id[follower.dossier_id]
            follower.last_status = DossierStatus(dossier.status).value
            session.add(follower)
            await outbox.enqueue(
                session,
                contact=contact,
                message=status_changed_message(dossier),
                kind="dossier_status",
                ref_id=dossier.id,
                now=now,
                priority=NOTICE_PRIORITY,
            )


def status_text(status: DossierStatus | str) -> Text:
    """Return the translated label of a status."""
    return Text(f"dossier.status.{DossierStatus(status).value}")


def status_changed_message(dossier: Dossier) -> OutboundMessage:
    """Return the notice that a followed dossier's status changed."""
    params = {"code": dossier.code, "status": status_text(dossier.status)}
    return OutboundMessage("dossier.status_changed", params)


def status_message(dossier: Dossier) -> OutboundMessage:
    """Return a dossier's current status, dates included, for its follower."""
    params = {
        "code": dossier.code,
        "status": status_text(dossier.status),
        "received": dossier.received_on,
        "appointment": dossier.appointment_at,
    }
    return OutboundMessage("dossier.status_message", params)


async def follow(
    session: AsyncSession,
    *,
    contact: Contact,
    code: str,
    last4: str,
    now: datetime,
    tz: ZoneInfo = TZ,
) -> Dossier:
    """Let a chat account follow a dossier once it confirms the phone's last 4 digits.

    A failed attempt is added to the session before the error is raised: commit the session
    when catching InvalidInput or NotFound here, or the daily limit cannot count it.
    """
    actor = f"contact:{contact.id}"
    if await failures_today(session, actor=actor, now=now, tz=tz) >= MAX_FOLLOW_FAILURES:
        raise PermissionDenied("dossier.follow.too_many", limit=MAX_FOLLOW_FAILURES)
    wanted = code.strip().upper()
    dossier = (await session.exec(select(Dossier).where(Dossier.code == wanted))).first()
    if dossier is None:
        await _fail(session, actor=actor, subject=wanted, now=now)
        raise NotFound("dossier.follow.not_found", code=wanted[:64])
    if not dossier.phone:
        raise InvalidInput("dossier.follow.no_phone", code=dossier.code)
    if last4.strip() != dossier.phone[-4:]:
        await _fail(session, actor=actor, subject=wanted, now=now)
        left = max(
            0, MAX_FOLLOW_FAILURES - await failures_today(session, actor=actor, now=now, tz=tz)
        )
        raise InvalidInput("dossier.follow.wrong_digits", left=left)
    await _add_follower(session, dossier=dossier, contact=contact, now=now)
    audit.record(session, actor=actor, action="dossier.follow", now=now, subject=dossier.code)
    await session.flush()
    return dossier


async def _fail(session: AsyncSession, *, actor: str, subject: str, now: datetime) -> None:
    """Record one failed follow attempt."""
    audit.record(
        session, actor=actor, action="dossier.follow_failed", now=now, subject=subject[:255]
    )
    await session.flush()


async def failures_today(
    session: AsyncSession, *, actor: str, now: datetime, tz: ZoneInfo = TZ
) -> int:
    """Count an account's failed follow attempts since local midnight."""
    local = now.astimezone(tz)
    midnight = datetime(local.year, local.month, local.day, tzinfo=tz)
    return await _count_actions(
        session, actor=actor, action="dossier.follow_failed", since=midnight
    )


async def _count_actions(session: AsyncSession, *, actor: str, action: str, since: datetime) -> int:
    """Count an actor's audit rows of one action in the day from `since`."""
    query = (
        select(func.count())
        .select_from(AuditLog)
        .where(
            AuditLog.actor == actor,
            AuditLog.action == action,
            col(AuditLog.at) >= since,
            col(AuditLog.at) < since + timedelta(days=1),
        )
    )
    return int((await session.exec(query)).one())


async def _add_follower(
    session: AsyncSession, *, dossier: Dossier, contact: Contact, now: datetime
) -> None:
    """Add (or refresh) the link between a dossier and a chat account."""
    key = (dossier.id, contact.id)
    follower = await session.get(DossierFollower, key)
    if follower is None:
        follower = DossierFollower(
            dossier_id=dossier.id or 0, contact_id=contact.id or 0, verified_at=now
        )
    follower.verified_at = now
    follower.last_status = DossierStatus(dossier.status).value
    session.add(follower)


async def followers(session: AsyncSession, *, dossier_id: int) -> list[Contact]:
    """Return the chat accounts that follow a dossier."""
    rows = await session.exec(
        select(Contact)
        .join(DossierFollower, col(DossierFollower.contact_id) == Contact.id)
        .where(DossierFollower.dossier_id == dossier_id)
        .order_by(col(Contact.id))
    )
    return list(rows.all())
