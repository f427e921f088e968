"""`reformbot import units|staff` on a temporary SQLite file."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import openpyxl
import pytest
from typer.testing import CliRunner

from bot.cli.imports import cli_actor, import_app
from bot.i18n import t

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


@pytest.fixture
def db_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Point the settings at a fresh SQLite file, with no config file around."""
    path = tmp_path / "x.db"
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("REFORMBOT_CONFIG", raising=False)
    monkeypatch.setenv("REFORMBOT_DATABASE__URL", f"sqlite+aiosqlite:///{path}")
    monkeypatch.setenv("COLUMNS", "200")
    return path


def invoke(*args: str) -> tuple[int, str]:
    """Run the import app; return the exit code and the output with spaces squeezed."""
    result = CliRunner().invoke(import_app, list(args))
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result.exit_code, " ".join(result.output.split())


def count(path: Path, table: str) -> int:
    """Count the rows of a table in the SQLite file."""
    with sqlite3.connect(path) as conn:
        return int(conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0])


def squeeze(text: str) -> str:
    """Squeeze spaces as `invoke` does."""
    return " ".join(text.split())


def test_good_files_import_and_exit_zero(db_file):
    code, out = invoke("units", str(EXAMPLES / "units.csv"))
    assert code == 0, out
    expected = t("import.cli.done_units", "vi", total=33, created=33, updated=0, unchanged=0)
    assert squeeze(expected) in out
    code, out = invoke("staff", str(EXAMPLES / "staff.csv"), "--lang", "en")
    assert code == 0, out
    rows = len((EXAMPLES / "staff.csv").read_text(encoding="utf-8").splitlines()) - 1
    assert rows == 63  # the example department (three of them added for the demo's survey)
    assert f"Staff imported: {rows} (created {rows}," in out
    assert count(db_file, "unit") == 33
    assert count(db_file, "person") == rows
    with sqlite3.connect(db_file) as conn:
        actors = {row[0] for row in conn.execute("SELECT actor FROM audit_log")}
    assert actors == {cli_actor()}
    assert cli_actor().startswith("cli:")


def test_broken_file_exits_one_lists_rows_and_writes_nothing(db_file):
    invoke("units", str(EXAMPLES / "units.csv"))
    code, out = invoke("staff", str(EXAMPLES / "staff_broken.csv"))
    assert code == 1
    assert "PGD.BINHAN" in out
    for row in ("3", "4", "5", "6", "7"):
        assert f"│ {row} │" in out
    assert squeeze(t("import.cli.rejected", "vi", problems=6, rows=5)) in out
    assert count(db_file, "person") == 0
    assert count(db_file, "audit_log") == 1


def test_broken_file_in_english(db_file):
    invoke("units", str(EXAMPLES / "units.csv"))
    code, out = invoke("staff", str(EXAMPLES / "staff_broken.csv"), "--lang", "en")
    assert code == 1
    assert "Row" in out
    assert "must not be empty" in out


def test_dry_run_writes_nothing(db_file):
    code, out = invoke("units", str(EXAMPLES / "units.csv"), "--dry-run")
    assert code == 0
    assert (
        squeeze(t("import.cli.dry_units", "vi", total=33, created=33, updated=0, unchanged=0))
        in out
    )
    assert count(db_file, "unit") == 0


def test_unusable_file_exits_two(db_file, tmp_path):
    code, out = invoke("units", str(tmp_path / "units.xls"))
    assert code == 2
    assert squeeze(t("import.error.bad_extension", "vi", path="units.xls")) in out
    (tmp_path / "no_columns.csv").write_text("Tên đơn vị\nA\n", encoding="utf-8")
    code, out = invoke("units", str(tmp_path / "no_columns.csv"))
    assert code == 2
    assert "Mã đơn vị" in out


def test_bad_config_exits_two(db_file, monkeypatch):
    monkeypatch.setenv("REFORMBOT_DATABASE__URL", "mysql://nowhere/db")
    code, out = invoke("units", str(EXAMPLES / "units.csv"))
    assert code == 2
    assert squeeze(t("import.cli.config_error", "vi")) in out
    assert "database.url" in out


def test_missing_config_file_exits_two(db_file, tmp_path):
    code, _ = invoke("units", str(EXAMPLES / "units.csv"), "--config", str(tmp_path / "no.toml"))
    assert code == 2


def test_big_file_with_progress_bar(db_file, tmp_path):
    lines = ["code;name;kind;parent_code"] + [f"S{i};Trường {i};school;" for i in range(600)]
    (tmp_path / "big.csv").write_text("\n".join(lines), encoding="utf-8")
    code, out = invoke("units", str(tmp_path / "big.csv"))
    assert code == 0, out
    assert count(db_file, "unit") == 600


def test_xlsx_file(db_file, tmp_path):
    book = openpyxl.Workbook()
    sheet = book.active
    assert sheet is not None
    sheet.append(["Mã đơn vị", "Tên đơn vị", "Loại đơn vị"])
    sheet.append(["SGD", "Sở Giáo dục và Đào tạo", "Sở"])
    book.save(tmp_path / "U.XLSX")
    code, out = invoke("units", str(tmp_path / "U.XLSX"))
    assert code == 0, out
    assert count(db_file, "unit") == 1


def test_a_dossier_appointment_on_a_holiday_is_imported_with_a_warning(db_file, tmp_path):
    import bot.cli.main  # noqa: F401  (registers `import dossiers`)

    assert invoke("units", str(EXAMPLES / "units.csv"))[0] == 0
    file = tmp_path / "dossiers.csv"
    file.write_text(
        "Mã hồ sơ,Mã đơn vị,Họ và tên,Ngày tiếp nhận,Ngày hẹn trả\n"
        "HS-1,SGD.MOTCUA,Nguyễn Văn An,20/01/2027,08/02/2027\n"
        "HS-2,SGD.MOTCUA,Trần Thị Bình,20/01/2027,11/02/2027\n",
        encoding="utf-8",
    )
    code, out = invoke("dossiers", str(file))
    assert code == 0, out
    warning = t(
        "calendar.not_working_holiday",
        "vi",
        day="08/02/2027",
        next_day="11/02/2027",
        holiday="Mùng ba Tết Nguyên Đán",
    )
    assert squeeze(warning) in out
    assert squeeze(t("calendar.appointment_warning", "vi")) in out
    assert "11/02/2027 là" not in out  # the working day is not flagged
    assert count(db_file, "dossier") == 2
