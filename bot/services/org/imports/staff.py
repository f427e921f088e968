"""`import staff`: create or update people and their roles from a file, all or nothing."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import delete, insert
from sqlmodel import col, func, select
from sqlmodel.ext.asyncio.session import AsyncSession

from bot.models import Person, PersonRole, Role
from bot.services.org.imports.report import (
    ImportReport,
    Problems,
    Progress,
    Ticker,
    chunks,
    record_import,
    rows_by_code,
    unit_ids_by_code,
)
from bot.services.org.imports.table import ColumnSpec, SourceRow, Table, TableSpec
from bot.services.org.imports.values import (
    parse_code,
    parse_email,
    parse_flag,
    parse_locale,
    parse_phone,
    parse_roles,
    text_parser,
)

TEXT = text_parser(255)
DEFAULT_ROLES = frozenset({Role.STAFF})
DEFAULTS: dict[str, Any] = {"title": None, "phone": None, "email": None, "locale": "vi"}
OPTIONAL = ("title", "phone", "email", "locale", "active")
WRITE_CHUNK = 1000
WHOLE_TABLE_SHARE = 4  # read a whole table when the file names over a quarter of it

STAFF = TableSpec(
    "staff",
    (
        ColumnSpec("code", "Mã cán bộ", "code", required=True, others=("staff_code",)),
        ColumnSpec("full_name", "Họ và tên", "full_name", required=True, others=("Họ tên",)),
        ColumnSpec("unit_code", "Mã đơn vị", "unit_code", required=True),
        ColumnSpec("title", "Chức vụ", "title"),
        ColumnSpec("roles", "Vai trò", "roles"),
        ColumnSpec("phone", "Điện thoại", "phone", others=("Số điện thoại",)),
        ColumnSpec("email", "Email", "email", others=("Thư điện tử", "e-mail")),
        ColumnSpec("locale", "Ngôn ngữ", "locale", others=("language",)),
        ColumnSpec("active", "Đang công tác", "active"),
    ),
)


@dataclass(frozen=True)
class StaffRecord:
    """One valid staff row: the person's fields the file gives, and the roles (None: keep)."""

    row: int
    code: str
    attrs: dict[str, Any]
    roles: frozenset[Role] | None


@dataclass
class StaffPlan:
    """What an import will do to people and their roles."""

    create: list[StaffRecord] = field(default_factory=list)
    update: list[tuple[Person, StaffRecord]] = field(default_factory=list)
    new_roles: dict[str, frozenset[Role]] = field(default_factory=dict)
    unchanged: int = 0

    def report(self, *, dry_run: bool) -> ImportReport:
        """Return the counts as a report."""
        return ImportReport(len(self.create), len(self.update), self.unchanged, dry_run=dry_run)


@dataclass
class StaffState:
    """The people the file names, as the database holds them."""

    people: dict[str, Person]
    roles: dict[int, frozenset[Role]]


async def import_staff(
    session: AsyncSession,
    *,
    table: Table,
    actor: str,
    now: datetime,
    dry_run: bool = False,
    progress: Progress | None = None,
    source: str | None = None,
) -> ImportReport:
    """Check every staff row, then create or update all of them in the session (or none)."""
    if table.spec is not STAFF:
        raise ValueError("import_staff needs a table read with the STAFF spec")
    ticker = Ticker(progress, len(table.rows) * (1 if dry_run else 2))
    problems = Problems(table)
    unit_ids = await unit_ids_by_code(session)
    records = _parse_rows(table, problems, unit_ids, ticker)
    if problems:
        return ImportReport(problems=problems.sorted(), dry_run=dry_run)
    state = await _load_state(session, codes=[r.code for r in records])
    plan = _plan(records, state)
    report = plan.report(dry_run=dry_run)
    if not dry_run:
        await _apply(session, plan=plan, now=now, ticker=ticker)
        record_import(
            session, action="import.staff", report=report, actor=actor, now=now, source=source
        )
        await session.flush()
    ticker.finish()
    return report


def _parse_rows(
    table: Table, problems: Problems, unit_ids: dict[str, int], ticker: Ticker
) -> list[StaffRecord]:
    """Parse every row, flag duplicates and unknown units; return the valid rows."""
    records: list[StaffRecord] = []
    first_row: dict[str, int] = {}
    for row in table.rows:
        before = len(problems)
        code = problems.cell(row, "code", parse_code)
        problems.unique(row, code, first_row)
        attrs = _parse_attrs(table, row, problems, unit_ids)
        roles = _roles(table, row, problems)
        if len(problems) == before and code is not None:
            records.append(StaffRecord(row.number, code, attrs, roles))
        ticker.step()
    return records


def _roles(table: Table, row: SourceRow, problems: Problems) -> frozenset[Role] | None:
    """Return a row's roles: staff when the cell is empty, None (keep) without the column."""
    if not table.has("roles"):
        return None
    return problems.cell(row, "roles", parse_roles) or DEFAULT_ROLES


def _parse_attrs(
    table: Table, row: SourceRow, problems: Problems, unit_ids: dict[str, int]
) -> dict[str, Any]:
    """Parse a row's person fields; leave out optional columns the file does not have."""
    attrs: dict[str, Any] = {
        "full_name": problems.cell(row, "full_name", TEXT),
        "unit_id": _unit_id(row, problems, unit_ids),
        "title": problems.cell(row, "title", TEXT),
        "phone": problems.cell(row, "phone", parse_phone),
        "email": problems.cell(row, "email", parse_email),
        "locale": problems.cell(row, "locale", parse_locale) or "vi",
        "active": problems.cell(row, "active", parse_flag),
    }
    if attrs["active"] is None:
        attrs["active"] = True
    return {k: v for k, v in attrs.items() if k not in OPTIONAL or table.has(k)}


def _unit_id(row: SourceRow, problems: Problems, unit_ids: dict[str, int]) -> int | None:
    """Return the id of the row's unit, recording a problem when it is not in the database."""
    code = problems.cell(row, "unit_code", str.upper)
    if code is None:
        return None
    if code not in unit_ids:
        problems.add(row.number, "unit_code", "import.error.unknown_unit", code=code)
        return None
    return unit_ids[code]


async def _load_state(session: AsyncSession, *, codes: Sequence[str]) -> StaffState:
    """Load the people the file names and their roles: all at once, or by chunks of codes."""
    total = (await session.exec(select(func.count()).select_from(Person))).one()
    whole = len(codes) * WHOLE_TABLE_SHARE >= total
    people = await _load_people(session, codes, whole=whole)
    ids = [p.id for p in people.values() if p.id is not None]
    return StaffState(people, await _load_roles(session, ids, whole=whole))


async def _load_people(
    session: AsyncSession, codes: Sequence[str], *, whole: bool
) -> dict[str, Person]:
    """Return the people with some codes, reading the whole table when most are wanted."""
    if whole:
        wanted = set(codes)
        found = (await session.exec(select(Person))).all()
        return {p.code: p for p in found if p.code in wanted}
    people: dict[str, Person] = await rows_by_code(session, Person, codes)
    return people


async def _load_roles(
    session: AsyncSession, ids: Sequence[int], *, whole: bool
) -> dict[int, frozenset[Role]]:
    """Return the roles of some people, reading the whole table when most are wanted."""
    query = select(PersonRole.person_id, PersonRole.role)
    parts = [None] if whole else chunks(ids)
    wanted = set(ids)
    held: dict[int, set[Role]] = {}
    for part in parts:
        narrowed = query if part is None else query.where(col(PersonRole.person_id).in_(part))
        for person_id, role in await session.exec(narrowed):
            if person_id in wanted:
                held.setdefault(person_id, set()).add(Role(role))
    return {person_id: frozenset(roles) for person_id, roles in held.items()}


def _plan(records: list[StaffRecord], state: StaffState) -> StaffPlan:
    """Sort the rows into new people, changed people and unchanged ones."""
    plan = StaffPlan()
    for rec in records:
        person = state.people.get(rec.code)
        if person is None:
            plan.create.append(rec)
            plan.new_roles[rec.code] = rec.roles or DEFAULT_ROLES
            continue
        old_roles = state.roles.get(person.id or 0, frozenset())
        roles_changed = rec.roles is not None and rec.roles != old_roles
        if roles_changed and rec.roles is not None:
            plan.new_roles[rec.code] = rec.roles
        if roles_changed or any(getattr(person, k) != v for k, v in rec.attrs.items()):
            plan.update.append((person, rec))
        else:
            plan.unchanged += 1
    return plan


async def _apply(session: AsyncSession, *, plan: StaffPlan, now: datetime, ticker: Ticker) -> None:
    """Insert new people, update changed ones, then replace the roles that changed."""
    ids = await _insert_people(session, plan.create, now=now, ticker=ticker)
    for person, rec in plan.update:
        for key, value in rec.attrs.items():
            setattr(person, key, value)
        person.updated_at = now
        if person.id is not None:
            ids[person.code] = person.id
        ticker.step()
    await session.flush()
    roles = {ids[code]: held for code, held in plan.new_roles.items()}
    await _replace_roles(session, roles, old=[p.id for p, _ in plan.update if p.id is not None])


async def _insert_people(
    session: AsyncSession, records: list[StaffRecord], *, now: datetime, ticker: Ticker
) -> dict[str, int]:
    """Insert new people in batches; return their ids by code."""
    ids: dict[str, int] = {}
    statement = insert(Person).returning(col(Person.code), col(Person.id))
    for part in chunks(records, WRITE_CHUNK):
        rows = [_new_person(rec, now) for rec in part]
        result = await session.exec(statement, params=rows)
        ids.update({code: person_id for code, person_id in result.all()})
        ticker.step(len(part))
    return ids


def _new_person(rec: StaffRecord, now: datetime) -> dict[str, Any]:
    """Return the column values of a new person, with defaults for the columns the file lacks."""
    return {
        **DEFAULTS,
        "active": True,
        **rec.attrs,
        "code": rec.code,
        "created_at": now,
        "updated_at": now,
    }


async def _replace_roles(
    session: AsyncSession, roles: dict[int, frozenset[Role]], *, old: Sequence[int]
) -> None:
    """Delete the roles of existing people whose roles change, then insert the new roles."""
    ids = [person_id for person_id in old if person_id in roles]
    for part in chunks(ids):
        await session.exec(delete(PersonRole).where(col(PersonRole.person_id).in_(part)))
    rows = [{"person_id": pid, "role": role.value} for pid, held in roles.items() for role in held]
    for batch in chunks(rows, WRITE_CHUNK):
        await session.exec(insert(PersonRole), params=list(batch))
