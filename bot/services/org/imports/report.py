"""The outcome of an import: counts, and every problem found with its row and column."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, TypeVar

from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from bot.models import Unit
from bot.services.org import audit
from bot.services.org.imports.table import SourceRow, Table
from bot.services.org.imports.values import FieldError

T = TypeVar("T")
Progress = Callable[[int, int], None]
IN_CHUNK = 500
TICK_EVERY = 250


@dataclass(frozen=True)
class RowProblem:
    """One bad cell: the row as a spreadsheet numbers it, its column header, and why."""

    row: int
    column: str
    key: str
    params: dict[str, Any] = field(default_factory=dict)


@dataclass
class ImportReport:
    """What an import did, or would do in a dry run; `problems` stop it from writing."""

    created: int = 0
    updated: int = 0
    unchanged: int = 0
    problems: list[RowProblem] = field(default_factory=list)
    dry_run: bool = False
    warnings: list[RowProblem] = field(default_factory=list)  # shown, but do not stop it

    @property
    def ok(self) -> bool:
        """Tell whether the file had no bad rows."""
        return not self.problems

    @property
    def total(self) -> int:
        """Return the number of rows imported (or that would be)."""
        return self.created + self.updated + self.unchanged

    @property
    def bad_rows(self) -> int:
        """Return how many distinct rows have a problem."""
        return len({problem.row for problem in self.problems})


class Problems:
    """Collects problems found while checking a table, in row and column order."""

    def __init__(self, table: Table) -> None:
        self.table = table
        self._items: list[tuple[int, int, int, RowProblem]] = []

    def __len__(self) -> int:
        """Return how many problems were found."""
        return len(self._items)

    def add(self, row: int, name: str, key: str, **params: Any) -> None:
        """Record a problem at a row and a field's column."""
        column = self.table.label(name)
        problem = RowProblem(row, column, key, {"column": column, **params})
        order = (row, self.table.spec.position(name), len(self._items))
        self._items.append((*order, problem))

    def cell(self, row: SourceRow, name: str, parse: Callable[[str], T]) -> T | None:
        """Parse a field of a row; record a problem and return None when it is bad or empty."""
        raw = row.get(name)
        if not raw:
            if self.table.spec.column(name).required:
                self.add(row.number, name, "import.error.required")
            return None
        try:
            return parse(raw)
        except FieldError as exc:
            self.add(row.number, name, exc.key, **exc.params)
            return None

    def unique(self, row: SourceRow, code: str | None, first_row: dict[str, int]) -> None:
        """Record a code seen in an earlier row as a duplicate; else remember its row."""
        if code is None:
            return
        if code in first_row:
            params = {"code": code, "first_row": first_row[code]}
            self.add(row.number, "code", "import.error.duplicate_code", **params)
        else:
            first_row[code] = row.number

    def sorted(self) -> list[RowProblem]:
        """Return the problems by row, then by column."""
        return [item[3] for item in sorted(self._items, key=lambda item: item[:3])]


class Ticker:
    """Reports progress to an optional callback, not more often than needed."""

    def __init__(self, progress: Progress | None, total: int) -> None:
        self.progress = progress
        self.total = total
        self.done = 0
        self._last = -TICK_EVERY

    def step(self, count: int = 1) -> None:
        """Advance by some rows and report when enough have passed."""
        self.done = min(self.total, self.done + count)
        if self.progress is not None and self.done - self._last >= TICK_EVERY:
            self._last = self.done
            self.progress(self.done, self.total)

    def finish(self) -> None:
        """Report completion."""
        self.done = self.total
        if self.progress is not None:
            self.progress(self.total, self.total)


def chunks(items: Sequence[T], size: int = IN_CHUNK) -> list[Sequence[T]]:
    """Split a sequence into slices of at most `size` items."""
    return [items[i : i + size] for i in range(0, len(items), size)]


async def unit_ids_by_code(session: AsyncSession) -> dict[str, int]:
    """Return every unit's id by its code, in one query."""
    rows = (await session.exec(select(Unit.code, Unit.id))).all()
    return {code: unit_id for code, unit_id in rows if unit_id is not None}


async def rows_by_code(session: AsyncSession, model: Any, codes: Sequence[str]) -> dict[str, Any]:
    """Return the rows of a table with a `code` column that the codes name, by code."""
    found: dict[str, Any] = {}
    for part in chunks(codes):
        rows = (await session.exec(select(model).where(col(model.code).in_(part)))).all()
        found.update({row.code: row for row in rows})
    return found


def record_import(
    session: AsyncSession,
    *,
    action: str,
    report: ImportReport,
    actor: str,
    now: datetime,
    source: str | None,
) -> None:
    """Add the audit row of an import: who, when, which file and how many rows."""
    detail = f"created={report.created} updated={report.updated} unchanged={report.unchanged}"
    audit.record(
        session,
        actor=actor,
        action=action,
        now=now,
        subject=source,
        count=report.total,
        detail=detail,
    )
