"""Reading CSV and XLSX files into rows of clean strings keyed by column."""

from __future__ import annotations

import csv
import io
import unicodedata
import warnings
import zipfile
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, time
from pathlib import Path
from typing import Any

import openpyxl
from openpyxl.utils.exceptions import InvalidFileException
from openpyxl.worksheet._read_only import ReadOnlyWorksheet

from bot.services.errors import InvalidInput
from bot.services.org.imports.values import clean

CSV_SUFFIXES = (".csv",)
XLSX_SUFFIXES = (".xlsx", ".xlsm")
DELIMITERS = (",", ";", "\t")
FIRST_DATA_ROW = 2

Grid = list[tuple[int, list[str]]]


class ImportFileError(InvalidInput):
    """The file as a whole cannot be imported (unreadable, wrong type, missing columns)."""


@dataclass(frozen=True)
class ColumnSpec:
    """One column an import understands: its field, Vietnamese header and English alias."""

    field: str
    label: str
    alias: str
    required: bool = False
    others: tuple[str, ...] = ()

    def names(self) -> set[str]:
        """Return every header (normalised) that names this column."""
        raw = {self.label, self.alias, self.alias.replace("_", " "), *self.others}
        return {header_key(name) for name in raw}


@dataclass(frozen=True)
class TableSpec:
    """The columns of one kind of import file."""

    name: str
    columns: tuple[ColumnSpec, ...]

    def column(self, name: str) -> ColumnSpec:
        """Return the column of a field."""
        for spec in self.columns:
            if spec.field == name:
                return spec
        raise KeyError(name)

    def position(self, name: str) -> int:
        """Return the order of a field among the columns."""
        return [spec.field for spec in self.columns].index(name)


@dataclass(frozen=True)
class SourceRow:
    """One data row: its number as a spreadsheet shows it, and its values by field."""

    number: int
    values: Mapping[str, str]

    def get(self, name: str) -> str:
        """Return a field's clean value, or '' when empty or absent."""
        return self.values.get(name, "")


@dataclass(frozen=True)
class Table:
    """The rows of an import file, with the header each known column had in the file."""

    spec: TableSpec
    headers: Mapping[str, str]
    rows: tuple[SourceRow, ...] = field(default_factory=tuple)

    def has(self, name: str) -> bool:
        """Tell whether the file has a column for a field."""
        return name in self.headers

    def label(self, name: str) -> str:
        """Return the header of a field as the file wrote it (else the Vietnamese header)."""
        return self.headers.get(name) or self.spec.column(name).label

    @classmethod
    def from_records(
        cls, spec: TableSpec, records: Iterable[Mapping[str, str]], *, first_row: int = 2
    ) -> Table:
        """Build a table from dicts keyed by field name; row numbers start at `first_row`."""
        items = list(records)
        present = {name for record in items for name in record}
        headers = {c.field: c.label for c in spec.columns if c.field in present}
        _require_columns(spec, headers)
        rows = tuple(
            SourceRow(number, {k: clean(str(v)) for k, v in record.items() if k in headers})
            for number, record in enumerate(items, start=first_row)
        )
        return cls(spec, headers, rows)


def header_key(text: str) -> str:
    """Normalise a header for matching: NFC, trimmed, case-folded, single spaces."""
    folded = unicodedata.normalize("NFC", clean(text).casefold())
    return " ".join(folded.split())


def read_table(path: Path | str, *, spec: TableSpec) -> Table:
    """Read a .csv or .xlsx file into a Table; raise ImportFileError when it cannot be used."""
    file = Path(path)
    suffix = file.suffix.lower()
    if suffix not in CSV_SUFFIXES + XLSX_SUFFIXES:
        raise ImportFileError("import.error.bad_extension", path=file.name)
    if not file.is_file():
        raise ImportFileError("import.error.not_found", path=str(file))
    grid = read_csv_grid(file) if suffix in CSV_SUFFIXES else read_xlsx_grid(file)
    return grid_to_table(grid, spec=spec, name=file.name)


def grid_to_table(grid: Iterable[tuple[int, list[str]]], *, spec: TableSpec, name: str) -> Table:
    """Turn numbered raw rows into a Table: find the header, map columns, drop empty rows."""
    rows = (item for item in grid if any(item[1]))
    first = next(rows, None)
    if first is None:
        raise ImportFileError("import.error.empty_file", path=name)
    positions, headers = _map_header(first[1], spec)
    table_rows = tuple(
        SourceRow(number, {f: cells[i] if i < len(cells) else "" for f, i in positions.items()})
        for number, cells in rows
    )
    return Table(spec, headers, table_rows)


def _map_header(cells: list[str], spec: TableSpec) -> tuple[dict[str, int], dict[str, str]]:
    """Return the position and the written header of each known column."""
    lookup = {name: column for column in spec.columns for name in column.names()}
    positions: dict[str, int] = {}
    headers: dict[str, str] = {}
    for index, cell in enumerate(cells):
        column = lookup.get(header_key(cell))
        if column is None:
            continue
        if column.field in positions:
            raise ImportFileError("import.error.duplicate_column", column=cell)
        positions[column.field] = index
        headers[column.field] = cell
    _require_columns(spec, headers)
    return positions, headers


def _require_columns(spec: TableSpec, headers: Mapping[str, str]) -> None:
    """Raise when a required column is missing, naming every missing one."""
    missing = [c for c in spec.columns if c.required and c.field not in headers]
    if missing:
        names = ", ".join(f"“{c.label}” ({c.alias})" for c in missing)
        raise ImportFileError("import.error.missing_column", column=names)


def read_csv_grid(file: Path) -> Grid:
    """Read a UTF-8 CSV (BOM optional; , ; or tab sniffed) into numbered rows of clean text."""
    try:
        text = file.read_bytes().decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ImportFileError("import.error.bad_encoding", path=file.name) from exc
    except OSError as exc:
        raise ImportFileError("import.error.unreadable", path=file.name) from exc
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=sniff_delimiter(text))
    try:
        return [(number, [clean(c) for c in cells]) for number, cells in enumerate(reader, 1)]
    except csv.Error as exc:
        raise ImportFileError("import.error.unreadable", path=file.name) from exc


def sniff_delimiter(text: str) -> str:
    """Guess the delimiter from the first non-blank line: the most frequent of , ; and tab."""
    line = next((ln for ln in text.splitlines() if ln.strip()), "")
    return max(DELIMITERS, key=line.count)


def read_xlsx_grid(file: Path) -> Grid:
    """Read the first sheet of a workbook into numbered rows of clean text."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            book = openpyxl.load_workbook(file, read_only=True, data_only=True)
    except (InvalidFileException, zipfile.BadZipFile, KeyError, OSError, ValueError) as exc:
        raise ImportFileError("import.error.unreadable", path=file.name) from exc
    try:
        return list(_sheet_rows(book.worksheets[0]))
    except (zipfile.BadZipFile, KeyError, OSError, ValueError) as exc:
        raise ImportFileError("import.error.unreadable", path=file.name) from exc
    finally:
        book.close()


def _sheet_rows(sheet: Any) -> Iterator[tuple[int, list[str]]]:
    """Yield each row of a sheet, numbered from 1, as clean text."""
    if isinstance(sheet, ReadOnlyWorksheet):
        sheet.reset_dimensions()
    for number, values in enumerate(sheet.iter_rows(min_row=1, values_only=True), start=1):
        yield number, [cell_text(value) for value in values]


def cell_text(value: object) -> str:
    """Render a cell as text: whole numbers without '.0', dates in ISO form."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() else repr(value)
    if isinstance(value, datetime | date | time):
        return value.isoformat()
    return clean(str(value))
