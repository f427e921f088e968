"""Service points citizens rate: procedures and counters, their import and deep-link payloads."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal, TypeVar

from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from bot.models import Procedure, ServiceCounter, Unit
from bot.services.errors import InvalidInput, NotFound
from bot.services.org.imports.report import (
    ImportReport,
    Problems,
    Progress,
    Ticker,
    record_import,
    rows_by_code,
    unit_ids_by_code,
)
from bot.services.org.imports.table import ColumnSpec, Table, TableSpec
from bot.services.org.imports.values import CODE_RE, FieldError, parse_code, text_parser

Kind = Literal["counter", "unit", "procedure"]
Model = TypeVar("Model", Procedure, ServiceCounter)

PROCEDURE_RE = re.compile(r"^[0-9]+(?:\.[0-9A-Z]+)*$")
MAX_CODE = 32
MAX_PAYLOAD = 64
PREFIX = "rate"
LETTER: dict[Kind, str] = {"counter": "c", "unit": "u", "procedure": "p"}
KIND_OF: dict[str, Kind] = {letter: kind for kind, letter in LETTER.items()}
ENCODE = str.maketrans({".": "-", "-": "h"})
DECODE = str.maketrans({"-": ".", "h": "-"})
PAYLOAD_RE = re.compile(r"^rate_([cup])_([A-Z0-9_h\-]{1,32})$")

PROCEDURES = TableSpec(
    "procedures",
    (
        ColumnSpec("code", "Mã TTHC", "code", required=True, others=("Mã thủ tục",)),
        ColumnSpec("name", "Tên thủ tục", "name", required=True, others=("Tên TTHC",)),
        ColumnSpec("unit_code", "Mã đơn vị", "unit_code", required=True),
    ),
)
COUNTERS = TableSpec(
    "counters",
    (
        ColumnSpec("code", "Mã quầy", "code", required=True),
        ColumnSpec("name", "Tên quầy", "name", required=True),
        ColumnSpec("unit_code", "Mã đơn vị", "unit_code", required=True),
    ),
)


def parse_procedure_code(value: str) -> str:
    """Return a procedure code (mã TTHC): digits, then dot-separated parts, at most 32 chars."""
    code = value.upper()
    if len(code) > MAX_CODE or not PROCEDURE_RE.fullmatch(code):
        raise FieldError("points.error.bad_procedure_code", value=value)
    return code


# --- import -------------------------------------------------------------------------------


@dataclass(frozen=True)
class PointRecord:
    """One valid procedure or counter row."""

    row: int
    code: str
    name: str
    unit_id: int


@dataclass
class PointPlan:
    """What an import will do: new rows, changed rows, and how many stay as they are."""

    create: list[PointRecord] = field(default_factory=list)
    update: list[PointRecord] = field(default_factory=list)
    unchanged: int = 0

    def report(self, *, dry_run: bool) -> ImportReport:
        """Return the counts as a report."""
        return ImportReport(len(self.create), len(self.update), self.unchanged, dry_run=dry_run)


async def import_procedures(
    session: AsyncSession,
    *,
    table: Table,
    actor: str,
    now: datetime,
    dry_run: bool = False,
    progress: Progress | None = None,
    source: str | None = None,
) -> ImportReport:
    """Check every procedure row, then create or update all of them (or none)."""
    if table.spec is not PROCEDURES:
        raise ValueError("import_procedures needs a table read with the PROCEDURES spec")
    return await _import(
        session,
        Procedure,
        table,
        actor=actor,
        now=now,
        dry_run=dry_run,
        progress=progress,
        source=source,
    )


async def import_counters(
    session: AsyncSession,
    *,
    table: Table,
    actor: str,
    now: datetime,
    dry_run: bool = False,
    progress: Progress | None = None,
    source: str | None = None,
) -> ImportReport:
    """Check every counter row, then create or update all of them (or none)."""
    if table.spec is not COUNTERS:
        raise ValueError("import_counters needs a table read with the COUNTERS spec")
    return await _import(
        session,
        ServiceCounter,
        table,
        actor=actor,
        now=now,
        dry_run=dry_run,
        progress=progress,
        source=source,
    )


async def _import(
    session: AsyncSession,
    model: type[Model],
    table: Table,
    *,
    actor: str,
    now: datetime,
    dry_run: bool,
    progress: Progress | None,
    source: str | None,
) -> ImportReport:
    """Validate the whole table, then write every row of it in the session, or nothing."""
    ticker = Ticker(progress, len(table.rows) * (1 if dry_run else 2))
    problems = Problems(table)
    unit_ids = await unit_ids_by_code(session)
    records = _parse_rows(table, problems, unit_ids, ticker)
    if problems:
        return ImportReport(problems=problems.sorted(), dry_run=dry_run)
    existing = await rows_by_code(session, model, [rec.code for rec in records])
    plan = _plan(records, existing)
    report = plan.report(dry_run=dry_run)
    if not dry_run:
        _apply(session, model, plan=plan, existing=existing, now=now, ticker=ticker)
        action = f"import.{table.spec.name}"
        record_import(session, action=action, report=report, actor=actor, now=now, source=source)
        await session.flush()
    ticker.finish()
    return report


def _parse_rows(
    table: Table, problems: Problems, unit_ids: dict[str, int], ticker: Ticker
) -> list[PointRecord]:
    """Parse every row, flag duplicates and unknown units; return the valid rows."""
    parse = parse_procedure_code if table.spec is PROCEDURES else parse_code
    name_parser = text_parser(500 if table.spec is PROCEDURES else 255)
    records: list[PointRecord] = []
    first_row: dict[str, int] = {}
    for row in table.rows:
        before = len(problems)
        code = problems.cell(row, "code", parse)
        problems.unique(row, code, first_row)
        name = problems.cell(row, "name", name_parser)
        unit_code = problems.cell(row, "unit_code", parse_code)
        if unit_code is not None and unit_code not in unit_ids:
            problems.add(row.number, "unit_code", "import.error.unknown_unit", code=unit_code)
        if len(problems) == before and code and name and unit_code:
            records.append(PointRecord(row.number, code, name, unit_ids[unit_code]))
        ticker.step()
    return records


def _plan(records: list[PointRecord], existing: dict[str, Model]) -> PointPlan:
    """Sort the rows into new, changed and unchanged ones."""
    plan = PointPlan()
    for rec in records:
        old = existing.get(rec.code)
        if old is None:
            plan.create.append(rec)
        elif (old.name, old.unit_id) != (rec.name, rec.unit_id):
            plan.update.append(rec)
        else:
            plan.unchanged += 1
    return plan


def _apply(
    session: AsyncSession,
    model: type[Model],
    *,
    plan: PointPlan,
    existing: dict[str, Model],
    now: datetime,
    ticker: Ticker,
) -> None:
    """Add the new rows and change the changed ones."""
    for rec in plan.create:
        fields = {"code": rec.code, "name": rec.name, "unit_id": rec.unit_id}
        session.add(model.model_validate({**fields, "created_at": now, "updated_at": now}))
        ticker.step()
    for rec in plan.update:
        old = existing[rec.code]
        old.name, old.unit_id, old.updated_at = rec.name, rec.unit_id, now
        ticker.step()


# --- deep links ---------------------------------------------------------------------------


def encode_code(code: str) -> str:
    """Make a code safe for a /start payload: '.' becomes '-', '-' becomes 'h'."""
    return code.translate(ENCODE)


def decode_code(text: str) -> str:
    """Undo encode_code."""
    return text.translate(DECODE)


def payload_for(kind: Kind, code: str) -> str:
    """Return the /start payload that opens the rating of one service point."""
    if not _valid_code(kind, code):
        raise InvalidInput("points.error.bad_code", code=code)
    return f"{PREFIX}_{LETTER[kind]}_{encode_code(code)}"


def payload_for_counter(code: str) -> str:
    """Return the /start payload of a counter."""
    return payload_for("counter", code)


def payload_for_unit(code: str) -> str:
    """Return the /start payload of a unit."""
    return payload_for("unit", code)


def payload_for_procedure(code: str) -> str:
    """Return the /start payload of a procedure."""
    return payload_for("procedure", code)


def parse_payload(payload: str) -> tuple[Kind, str] | None:
    """Return the kind and code a /start payload names, or None when it is not a rating link."""
    match = PAYLOAD_RE.fullmatch(payload.strip())
    if match is None:
        return None
    kind, code = KIND_OF[match[1]], decode_code(match[2])
    return (kind, code) if _valid_code(kind, code) else None


def _valid_code(kind: Kind, code: str) -> bool:
    """Tell whether a code is one the imports accept for its kind."""
    pattern = PROCEDURE_RE if kind == "procedure" else CODE_RE
    return len(code) <= MAX_CODE and pattern.fullmatch(code) is not None


def deep_link(username: str, payload: str) -> str:
    """Return the t.me link that opens the bot with a /start payload."""
    return f"https://t.me/{username.lstrip('@')}?start={payload}"


# --- resolving ----------------------------------------------------------------------------


@dataclass(frozen=True)
class ServicePoint:
    """What a rating is about: a unit, and maybe the counter or the procedure within it."""

    unit: Unit
    counter: ServiceCounter | None = None
    procedure: Procedure | None = None

    @property
    def kind(self) -> Kind:
        """Return which kind of point this is."""
        if self.counter is not None:
            return "counter"
        return "procedure" if self.procedure is not None else "unit"

    @property
    def code(self) -> str:
        """Return the code of the counter, the procedure or the unit."""
        item = self.counter or self.procedure or self.unit
        return item.code

    @property
    def payload(self) -> str:
        """Return the /start payload that leads to this point."""
        return payload_for(self.kind, self.code)


async def resolve(session: AsyncSession, payload: str) -> ServicePoint:
    """Return the active service point a /start payload names; raise NotFound otherwise."""
    parsed = parse_payload(payload)
    if parsed is None:
        raise NotFound("points.error.bad_link")
    return await find_point(session, *parsed)


async def find_point(session: AsyncSession, kind: Kind, code: str) -> ServicePoint:
    """Return the active service point of a kind and code; raise NotFound otherwise."""
    code = code.strip().upper()
    if kind == "counter":
        counter, unit = await _active_with_unit(session, ServiceCounter, code)
        return _point_or_raise(kind, code, unit, counter=counter)
    if kind == "procedure":
        procedure, unit = await _active_with_unit(session, Procedure, code)
        return _point_or_raise(kind, code, unit, procedure=procedure)
    found = (await session.exec(select(Unit).where(Unit.code == code))).first()
    return _point_or_raise(kind, code, found if found and found.active else None)


def _point_or_raise(
    kind: Kind,
    code: str,
    unit: Unit | None,
    *,
    counter: ServiceCounter | None = None,
    procedure: Procedure | None = None,
) -> ServicePoint:
    """Build the point, or raise the kind's NotFound when its unit was not found."""
    if unit is None:
        raise NotFound(f"points.error.unknown_{kind}", code=code)
    return ServicePoint(unit, counter, procedure)


async def _active_with_unit(
    session: AsyncSession, model: type[Model], code: str
) -> tuple[Model | None, Unit | None]:
    """Return the active row of a counter or procedure with a code and its active unit (one
    join: a citizen's scan reads both at once), each None when not found or not active."""
    found = (
        await session.exec(
            select(model, Unit)
            .join(Unit, col(Unit.id) == col(model.unit_id))
            .where(col(model.code) == code)
        )
    ).first()
    if found is None or not found[0].active:
        return None, None
    row, unit = found
    return row, unit if unit.active else None


async def active_counters(session: AsyncSession) -> list[ServicePoint]:
    """Return every active counter of an active unit, by code."""
    query = (
        select(ServiceCounter, Unit)
        .join(Unit, col(Unit.id) == ServiceCounter.unit_id)
        .where(col(ServiceCounter.active), col(Unit.active))
        .order_by(col(ServiceCounter.code))
    )
    rows = (await session.exec(query)).all()
    return [ServicePoint(unit, counter=counter) for counter, unit in rows]
