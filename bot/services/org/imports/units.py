"""`import units`: create or update the organisation's units from a file, all or nothing."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from sqlmodel import select
from sqlmodel.ext.asyncio.session import AsyncSession

from bot.models import Unit, UnitKind
from bot.services.org.imports.report import (
    ImportReport,
    Problems,
    Progress,
    Ticker,
    record_import,
)
from bot.services.org.imports.table import ColumnSpec, Table, TableSpec
from bot.services.org.imports.values import parse_code, parse_kind, text_parser

NAME = text_parser(255)

UNITS = TableSpec(
    "units",
    (
        ColumnSpec("code", "Mã đơn vị", "code", required=True),
        ColumnSpec("name", "Tên đơn vị", "name", required=True),
        ColumnSpec("kind", "Loại đơn vị", "kind", required=True),
        ColumnSpec("parent_code", "Mã đơn vị cấp trên", "parent_code", others=("parent",)),
    ),
)


@dataclass(frozen=True)
class UnitRecord:
    """One valid unit row."""

    row: int
    code: str
    name: str
    kind: UnitKind
    parent_code: str | None


@dataclass
class UnitPlan:
    """What an import will do to the units."""

    create: list[UnitRecord] = field(default_factory=list)
    update: list[UnitRecord] = field(default_factory=list)
    unchanged: int = 0

    def report(self, *, dry_run: bool) -> ImportReport:
        """Return the counts as a report."""
        return ImportReport(len(self.create), len(self.update), self.unchanged, dry_run=dry_run)


@dataclass
class UnitState:
    """The units already in the database."""

    by_code: dict[str, Unit]
    parent_of: dict[str, str | None]


async def import_units(
    session: AsyncSession,
    *,
    table: Table,
    actor: str,
    now: datetime,
    dry_run: bool = False,
    progress: Progress | None = None,
    source: str | None = None,
) -> ImportReport:
    """Check every unit row, then create or update all of them in the session (or none)."""
    if table.spec is not UNITS:
        raise ValueError("import_units needs a table read with the UNITS spec")
    ticker = Ticker(progress, len(table.rows) * (1 if dry_run else 2))
    problems = Problems(table)
    records, codes = _parse_rows(table, problems, ticker)
    state = await _load_state(session)
    if not table.has("parent_code"):
        records = [replace(rec, parent_code=state.parent_of.get(rec.code)) for rec in records]
    _check_parents(records, codes, state, problems)
    if problems:
        return ImportReport(problems=problems.sorted(), dry_run=dry_run)
    plan = _plan(records, state)
    report = plan.report(dry_run=dry_run)
    if not dry_run:
        await _apply(session, plan=plan, state=state, now=now, ticker=ticker)
        record_import(
            session, action="import.units", report=report, actor=actor, now=now, source=source
        )
        await session.flush()
    ticker.finish()
    return report


def _parse_rows(
    table: Table, problems: Problems, ticker: Ticker
) -> tuple[list[UnitRecord], set[str]]:
    """Parse every row; return the valid ones and every code the file names."""
    records: list[UnitRecord] = []
    first_row: dict[str, int] = {}
    for row in table.rows:
        before = len(problems)
        code = problems.cell(row, "code", parse_code)
        name = problems.cell(row, "name", NAME)
        kind = problems.cell(row, "kind", parse_kind)
        parent = problems.cell(row, "parent_code", parse_code)
        problems.unique(row, code, first_row)
        if len(problems) == before and code and name and kind:
            records.append(UnitRecord(row.number, code, name, kind, parent))
        ticker.step()
    return records, set(first_row)


async def _load_state(session: AsyncSession) -> UnitState:
    """Load every unit in one query, with each one's parent code."""
    units = list((await session.exec(select(Unit))).all())
    code_of = {unit.id: unit.code for unit in units}
    parent_of = {unit.code: code_of.get(unit.parent_id) for unit in units}
    return UnitState({unit.code: unit for unit in units}, parent_of)


def _check_parents(
    records: list[UnitRecord], codes: set[str], state: UnitState, problems: Problems
) -> None:
    """Require each parent to exist (in the file or the database), not be itself, make no cycle."""
    graph = dict(state.parent_of)
    for rec in records:
        parent = graph[rec.code] = rec.parent_code
        if parent is None:
            continue
        if parent == rec.code:
            problems.add(rec.row, "parent_code", "import.error.parent_self", code=parent)
            graph[rec.code] = None
        elif parent not in codes and parent not in state.by_code:
            problems.add(rec.row, "parent_code", "import.error.unknown_parent", code=parent)
    in_cycle = find_cycles(graph)
    for rec in records:
        if rec.code in in_cycle:
            params = {"code": graph[rec.code], "chain": in_cycle[rec.code]}
            problems.add(rec.row, "parent_code", "import.error.parent_cycle", **params)


def find_cycles(graph: dict[str, str | None]) -> dict[str, str]:
    """Return each node that lies on a cycle of parent links, with the cycle written out."""
    done: set[str] = set()
    found: dict[str, str] = {}
    for start in graph:
        path: list[str] = []
        on_path: dict[str, int] = {}
        node: str | None = start
        while node is not None and node not in done and node not in on_path:
            on_path[node] = len(path)
            path.append(node)
            node = graph.get(node)
        if node is not None and node in on_path:
            loop = path[on_path[node] :]
            for member in loop:
                at = loop.index(member)
                found[member] = " → ".join([*loop[at:], *loop[:at], member])
        done.update(path)
    return found


def _plan(records: list[UnitRecord], state: UnitState) -> UnitPlan:
    """Sort the rows into new units, changed units and unchanged ones."""
    plan = UnitPlan()
    for rec in records:
        unit = state.by_code.get(rec.code)
        if unit is None:
            plan.create.append(rec)
        elif _differs(rec, unit, state):
            plan.update.append(rec)
        else:
            plan.unchanged += 1
    return plan


def _differs(rec: UnitRecord, unit: Unit, state: UnitState) -> bool:
    """Tell whether a row would change a unit."""
    old = (unit.name, unit.kind, state.parent_of.get(rec.code))
    return old != (rec.name, rec.kind, rec.parent_code)


async def _apply(
    session: AsyncSession, *, plan: UnitPlan, state: UnitState, now: datetime, ticker: Ticker
) -> None:
    """Insert new units, then set names, kinds and parents of new and changed ones."""
    fresh = {rec.code: _new_unit(rec, now) for rec in plan.create}
    session.add_all(fresh.values())
    await session.flush()
    ids: dict[str, Any] = {code: unit.id for code, unit in state.by_code.items()}
    ids.update({code: unit.id for code, unit in fresh.items()})
    for rec in plan.create:
        fresh[rec.code].parent_id = ids.get(rec.parent_code) if rec.parent_code else None
        ticker.step()
    for rec in plan.update:
        _update_unit(state.by_code[rec.code], rec, ids=ids, now=now)
        ticker.step()
    await session.flush()


def _new_unit(rec: UnitRecord, now: datetime) -> Unit:
    """Build a unit for a new row (its parent is set once every id is known)."""
    return Unit(code=rec.code, name=rec.name, kind=rec.kind, created_at=now, updated_at=now)


def _update_unit(unit: Unit, rec: UnitRecord, *, ids: dict[str, Any], now: datetime) -> None:
    """Apply a changed row to an existing unit."""
    unit.name = rec.name
    unit.kind = rec.kind
    unit.parent_id = ids.get(rec.parent_code) if rec.parent_code else None
    unit.updated_at = now
