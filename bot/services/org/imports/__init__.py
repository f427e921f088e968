"""Importing the organisation from spreadsheets: units first, then staff."""

from bot.services.org.imports.report import ImportReport, Progress, RowProblem
from bot.services.org.imports.staff import STAFF, import_staff
from bot.services.org.imports.table import (
    ColumnSpec,
    ImportFileError,
    SourceRow,
    Table,
    TableSpec,
    read_table,
)
from bot.services.org.imports.units import UNITS, import_units

__all__ = [
    "STAFF",
    "UNITS",
    "ColumnSpec",
    "ImportFileError",
    "ImportReport",
    "Progress",
    "RowProblem",
    "SourceRow",
    "Table",
    "TableSpec",
    "import_staff",
    "import_units",
    "read_table",
]
