"""`task import`: assign many tasks from a CSV or XLSX file, all or nothing.

Rows with the same title and due moment become one task assigned to every unit they name.
The whole file is checked first; any bad row stops the import before anything is written.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import date, datetime
from functools import partial
from pathlib import Path

from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from bot.config import TaskSettings
from bot.models import Directive, Person, Task, TaskAssignment, Unit
from bot.services.calendar import WorkCalendar
from bot.services.errors import InvalidInput
from bot.services.org import audit
from bot.services.org.access import Actor
from bot.services.org.imports.report import Problems, RowProblem, chunks
from bot.services.org.imports.table import ColumnSpec, SourceRow, Table, TableSpec, read_table
from bot.services.org.imports.values import FieldError, parse_code, squeeze, text_parser
from bot.services.tasks import tasks

DEFAULT_TIME = "17:00"
DAYS_MAX = 365
TITLE = text_parser(tasks.TITLE_MAX)
DMY_RE = re.compile(
    r"(\d{1,2})[/.\-](\d{1,2})[/.\-](\d{4})(?:\s+(?:lúc\s+)?(\d{1,2})\s*[:hHg]\s*(\d{2})?)?"
)
ISO_RE = re.compile(r"(\d{4})-(\d{2})-(\d{2})(?:[T ](\d{2}):(\d{2})(?::\d{2}(?:\.\d+)?)?)?")
CODE_SPLIT_RE = re.compile(r"[,;]")

TASKS = TableSpec(
    "tasks",
    (
        ColumnSpec("unit_code", "Mã đơn vị", "unit_code", required=True, others=("unit",)),
        ColumnSpec("title", "Nhiệm vụ", "title", required=True, others=("Tên nhiệm vụ", "task")),
        ColumnSpec(
            "due", "Hạn", "due", required=True, others=("Hạn hoàn thành", "deadline", "due_at")
        ),
        ColumnSpec("details", "Nội dung", "details", others=("Nội dung nhiệm vụ", "description")),
        ColumnSpec(
            "assignees", "Người thực hiện", "assignees", others=("Cán bộ thực hiện", "staff")
        ),
        ColumnSpec("directive", "Công văn", "directive", others=("directive_id", "Số công văn")),
    ),
)


def read_tasks(path: Path | str) -> Table:
    """Read a task file; raise ImportFileError when it cannot be used."""
    return read_table(path, spec=TASKS)


def due_in_working_days(days: int, *, now: datetime, cal: WorkCalendar) -> datetime:
    """Return 17:00 on the n-th working day from today (local time)."""
    return cal.at_local(cal.add_working_days(cal.local(now).date(), days), DEFAULT_TIME)


def _wall_time(hours: str | None, minutes: str | None) -> str:
    """Return 'HH:MM' from the parts of a written time (17:00 when none is written)."""
    if hours is None:
        return DEFAULT_TIME
    hh, mm = int(hours), int(minutes or 0)
    if hh > 23 or mm > 59:
        raise ValueError("no such time")
    return f"{hh:02d}:{mm:02d}"


def _local_moment(text: str) -> tuple[date, str]:
    """Parse 'dd/mm/yyyy [HH:MM]' (or an ISO date from a spreadsheet cell); ValueError if bad."""
    dmy = DMY_RE.fullmatch(text)
    if dmy is not None:
        day, month, year, hours, minutes = dmy.groups()
        return date(int(year), int(month), int(day)), _wall_time(hours, minutes)
    iso = ISO_RE.fullmatch(text)
    if iso is None:
        raise ValueError("not a date")
    year, month, day, hours, minutes = iso.groups()
    if hours == "00" and minutes == "00":  # a date cell of a spreadsheet: no time written
        hours = minutes = None
    return date(int(year), int(month), int(day)), _wall_time(hours, minutes)


def parse_due(value: str, *, now: datetime, cal: WorkCalendar, move: bool = False) -> datetime:
    """Return a due moment on a working day (a day off is refused, or moved when asked)."""
    text = squeeze(value)
    if text.isdigit():
        if int(text) > DAYS_MAX:
            raise FieldError("task_import.error.days_range", value=value, max=DAYS_MAX)
        due = due_in_working_days(int(text), now=now, cal=cal)
    else:
        try:
            day, wall = _local_moment(text)
        except ValueError:
            raise FieldError("task_import.error.bad_due", value=value) from None
        due = cal.at_local(day, wall)
    if due <= now:
        raise FieldError("task_import.error.due_past", value=value)
    off = cal.check_working_day(cal.local(due).date())
    if off is not None and not move:
        raise FieldError(off.key, **off.params())
    return cal.require_working_day(due, move=True)


def parse_details(value: str) -> str:
    """Return details with each line trimmed, refusing over-long text."""
    text = "\n".join(squeeze(line) for line in value.splitlines()).strip()
    if len(text) > tasks.DETAILS_MAX:
        raise FieldError("import.error.too_long", max=tasks.DETAILS_MAX, length=len(text))
    return text


def parse_codes(value: str) -> tuple[str, ...]:
    """Return the staff codes of a cell separated by commas or semicolons, each once."""
    codes = (parse_code(part.strip()) for part in CODE_SPLIT_RE.split(value) if part.strip())
    return tuple(dict.fromkeys(codes))


@dataclass(frozen=True)
class Lookup:
    """What the file's rows refer to, as the database holds it."""

    units: dict[str, Unit]
    people: dict[str, Person]
    directive_ids: set[int]
    directive_numbers: dict[str, list[int]]


@dataclass(frozen=True)
class TaskRow:
    """One valid row of a task file."""

    row: int
    unit: Unit
    title: str
    due_at: datetime
    details: str
    assignees: tuple[str, ...]
    directive_id: int | None


@dataclass
class PlannedTask:
    """One task to create: the rows that name it and the units they assign it to."""

    first_row: int
    title: str
    due_at: datetime
    details: str
    directive_id: int | None
    unit_rows: dict[str, int] = field(default_factory=dict)
    assignees: list[str] = field(default_factory=list)
    task_id: int | None = None

    @property
    def units(self) -> tuple[str, ...]:
        """Return the codes of the units, sorted."""
        return tuple(sorted(self.unit_rows))


@dataclass
class TaskImportReport:
    """What an import did, or would do in a dry run; `problems` stop it from writing."""

    tasks: list[PlannedTask] = field(default_factory=list)
    problems: list[RowProblem] = field(default_factory=list)
    dry_run: bool = False
    unreached: set[str] = field(default_factory=set)

    @property
    def ok(self) -> bool:
        """Tell whether the file had no bad rows."""
        return not self.problems

    @property
    def assignments(self) -> int:
        """Return how many unit assignments the tasks make."""
        return sum(len(task.unit_rows) for task in self.tasks)

    @property
    def bad_rows(self) -> int:
        """Return how many distinct rows have a problem."""
        return len({problem.row for problem in self.problems})


async def import_tasks(
    session: AsyncSession,
    *,
    table: Table,
    actor: Actor,
    now: datetime,
    cal: WorkCalendar,
    settings: TaskSettings,
    dry_run: bool = False,
    source: str | None = None,
    next_working_day: bool = False,
) -> TaskImportReport:
    """Check every row, then create every task in the session (or none, on any problem)."""
    if table.spec is not TASKS:
        raise ValueError("import_tasks needs a table read with the TASKS spec")
    problems = Problems(table)
    lookup = await _lookup(session, table)
    due = partial(parse_due, now=now, cal=cal, move=next_working_day)
    rows = [r for r in (_parse_row(row, problems, lookup, due) for row in table.rows) if r]
    planned = _group(rows, problems)
    await _flag_existing(session, planned, problems)
    if problems:
        return TaskImportReport(problems=problems.sorted(), dry_run=dry_run)
    report = TaskImportReport(tasks=planned, dry_run=dry_run)
    if not dry_run:
        await _apply(session, report, actor=actor, now=now, cal=cal, settings=settings)
        _audit(session, report, actor=actor, now=now, source=source)
        await session.flush()
    return report


def _cells(table: Table, name: str) -> set[str]:
    """Return the non-empty values of one column."""
    return {row.get(name) for row in table.rows if row.get(name)}


def _loose_codes(values: Iterable[str]) -> list[str]:
    """Return every code-like word of some cells, upper-case (for loading what they name)."""
    return sorted({part.strip().upper() for v in values for part in CODE_SPLIT_RE.split(v)})


async def _lookup(session: AsyncSession, table: Table) -> Lookup:
    """Load the units, people and directives the file names, in a few queries."""
    units = {u.code: u for u in (await session.exec(select(Unit))).all()}
    people: dict[str, Person] = {}
    for part in chunks(_loose_codes(_cells(table, "assignees"))):
        found = await session.exec(select(Person).where(col(Person.code).in_(part)))
        people.update({p.code: p for p in found.all()})
    ids, numbers = await _directives(session, _cells(table, "directive"))
    return Lookup(units, people, ids, numbers)


async def _directives(
    session: AsyncSession, refs: set[str]
) -> tuple[set[int], dict[str, list[int]]]:
    """Return the ids of the directives some cells cite, and the ids of each number cited."""
    if not refs:
        return set(), {}
    ids = sorted({int(r.lstrip("#")) for r in refs if r.lstrip("#").isdigit()})
    stmt = select(Directive.id, Directive.number).where(
        col(Directive.id).in_(ids) | col(Directive.number).in_(sorted(refs))
    )
    found: set[int] = set()
    by_number: dict[str, list[int]] = {}
    for directive_id, number in (await session.exec(stmt)).all():
        assert directive_id is not None
        found.add(directive_id)
        if number in refs:
            by_number.setdefault(number, []).append(directive_id)
    return found, by_number


def _parse_row(
    row: SourceRow, problems: Problems, lookup: Lookup, due: Callable[[str], datetime]
) -> TaskRow | None:
    """Parse and check one row; return it when every cell is good."""
    before = len(problems)
    unit = _unit(row, problems, lookup)
    title = problems.cell(row, "title", TITLE)
    due_at = problems.cell(row, "due", due)
    details = problems.cell(row, "details", parse_details) or ""
    assignees = problems.cell(row, "assignees", parse_codes) or ()
    if unit is not None:
        _check_people(row, problems, lookup, unit, assignees)
    directive_id = _directive(row, problems, lookup)
    if len(problems) > before or unit is None or not title or due_at is None:
        return None
    return TaskRow(row.number, unit, title, due_at, details, assignees, directive_id)


def _unit(row: SourceRow, problems: Problems, lookup: Lookup) -> Unit | None:
    """Return the row's unit, recording a problem when it is unknown or no longer active."""
    code = problems.cell(row, "unit_code", parse_code)
    if code is None:
        return None
    unit = lookup.units.get(code)
    if unit is None:
        problems.add(row.number, "unit_code", "task_import.error.unknown_unit", code=code)
    elif not unit.active:
        problems.add(row.number, "unit_code", "task_import.error.inactive_unit", code=code)
        return None
    return unit


def person_problem(person: Person | None, code: str, units: dict[int, Unit]) -> str | None:
    """Return why a staff code cannot be named for a task of some units, or None when it can."""
    if person is None or not person.active:
        return "task_import.error.unknown_person"
    if person.unit_id not in units:
        return "task_import.error.person_elsewhere"
    return None


def _check_people(
    row: SourceRow, problems: Problems, lookup: Lookup, unit: Unit, codes: tuple[str, ...]
) -> None:
    """Record each named person who is unknown, inactive, or not of the row's unit."""
    assert unit.id is not None
    for code in codes:
        key = person_problem(lookup.people.get(code), code, {unit.id: unit})
        if key is not None:
            problems.add(row.number, "assignees", key, code=code, unit=unit.code)


def _directive(row: SourceRow, problems: Problems, lookup: Lookup) -> int | None:
    """Return the id of the directive a row cites (by id or by number), if any."""
    ref = row.get("directive")
    if not ref:
        return None
    if ref.lstrip("#").isdigit() and int(ref.lstrip("#")) in lookup.directive_ids:
        return int(ref.lstrip("#"))
    found = lookup.directive_numbers.get(ref, [])
    if len(found) == 1:
        return found[0]
    key = (
        "task_import.error.ambiguous_directive" if found else "task_import.error.unknown_directive"
    )
    problems.add(row.number, "directive", key, value=ref)
    return None


def _group(rows: list[TaskRow], problems: Problems) -> list[PlannedTask]:
    """Merge rows with the same title and due moment into one task of several units."""
    groups: dict[tuple[str, datetime], PlannedTask] = {}
    for rec in rows:
        key = (rec.title.casefold(), rec.due_at)
        plan = groups.get(key)
        if plan is None:
            groups[key] = plan = PlannedTask(
                rec.row, rec.title, rec.due_at, rec.details, rec.directive_id
            )
        elif not _merge(plan, rec, problems):
            continue
        plan.unit_rows[rec.unit.code] = rec.row
        plan.assignees.extend(c for c in rec.assignees if c not in plan.assignees)
    return sorted(groups.values(), key=lambda p: p.first_row)


def _merge(plan: PlannedTask, rec: TaskRow, problems: Problems) -> bool:
    """Check that a row agrees with the earlier rows of its task; fill what they left out."""
    first = plan.unit_rows.get(rec.unit.code)
    if first is not None:
        problems.add(rec.row, "unit_code", "task_import.error.repeated", first_row=first)
        return False
    if rec.details and plan.details and rec.details != plan.details:
        problems.add(rec.row, "details", "task_import.error.conflict", first_row=plan.first_row)
        return False
    if rec.directive_id and plan.directive_id and rec.directive_id != plan.directive_id:
        problems.add(rec.row, "directive", "task_import.error.conflict", first_row=plan.first_row)
        return False
    plan.details = plan.details or rec.details
    plan.directive_id = plan.directive_id or rec.directive_id
    return True


async def _flag_existing(
    session: AsyncSession, planned: list[PlannedTask], problems: Problems
) -> None:
    """Refuse a row whose unit already has a task of the same title and due moment."""
    dues = sorted({p.due_at for p in planned})
    wanted = {(p.title.casefold(), p.due_at): p for p in planned}
    for part in chunks(dues):
        stmt = (
            select(Task.id, Task.title, TaskAssignment.due_at, Unit.code)
            .join(TaskAssignment, col(TaskAssignment.task_id) == Task.id)
            .join(Unit, col(Unit.id) == TaskAssignment.unit_id)
            .where(col(TaskAssignment.due_at).in_(part))
        )
        for task_id, title, due_at, code in (await session.exec(stmt)).all():
            plan = wanted.get((title.casefold(), due_at))
            if plan is not None and code in plan.unit_rows:
                row = plan.unit_rows[code]
                problems.add(row, "title", "task_import.error.exists", unit=code, task=task_id)


async def _apply(
    session: AsyncSession,
    report: TaskImportReport,
    *,
    actor: Actor,
    now: datetime,
    cal: WorkCalendar,
    settings: TaskSettings,
) -> None:
    """Create every planned task through the task service."""
    for plan in report.tasks:
        new = tasks.NewTask(
            title=plan.title,
            units=plan.units,
            due_at=plan.due_at,
            details=plan.details,
            directive_id=plan.directive_id,
            assignees=tuple(plan.assignees),
        )
        task, rows = await tasks.create(
            session, actor=actor, new=new, now=now, cal=cal, settings=settings
        )
        plan.task_id = task.id
        report.unreached.update(await unreached_units(session, rows))


async def unreached_units(session: AsyncSession, rows: Iterable[TaskAssignment]) -> list[str]:
    """Return the codes of the units whose assignment reached nobody (no linked head)."""
    missed = [row.unit_id for row in rows if not await tasks.recipients(session, row)]
    if not missed:
        return []
    stmt = select(Unit.code).where(col(Unit.id).in_(missed)).order_by(col(Unit.code))
    return list((await session.exec(stmt)).all())


def _audit(
    session: AsyncSession,
    report: TaskImportReport,
    *,
    actor: Actor,
    now: datetime,
    source: str | None,
) -> None:
    """Add the audit row of the import: who, which file, how many tasks and assignments."""
    audit.record(
        session,
        actor=actor.label,
        action="import.tasks",
        now=now,
        subject=source[:255] if source else None,
        count=len(report.tasks),
        detail=f"tasks={len(report.tasks)} assignments={report.assignments}",
    )


async def check_assignees(
    session: AsyncSession, *, unit_codes: Iterable[str], person_codes: Iterable[str]
) -> tuple[str, ...]:
    """Return the codes, upper-case, if each names an active person of one of the units."""
    codes = tuple(dict.fromkeys(c.strip().upper() for c in person_codes if c.strip()))
    if not codes:
        return codes
    wanted = [c.strip().upper() for c in unit_codes]
    units = {u.id: u for u in (await session.exec(select(Unit).where(col(Unit.code).in_(wanted))))}
    people = await session.exec(select(Person).where(col(Person.code).in_(codes)))
    by_code = {p.code: p for p in people.all()}
    unit_ids = {k: v for k, v in units.items() if k is not None}
    for code in codes:
        key = person_problem(by_code.get(code), code, unit_ids)
        if key is not None:
            raise InvalidInput(key, code=code, unit=", ".join(wanted))
    return codes
