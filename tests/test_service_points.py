"""Service points: the procedures and counters imports, deep-link payloads, resolving them."""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Mapping, Sequence
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from sqlmodel import func, select
from typer.testing import CliRunner

from bot.cli.imports import import_app
from bot.cli.service_points import points_app, register_imports
from bot.clock import FakeClock
from bot.db import SessionMaker, transaction
from bot.i18n import t
from bot.models import AuditLog, Procedure, ServiceCounter, Unit
from bot.services.errors import InvalidInput, NotFound
from bot.services.org.imports import UNITS, ImportReport, Table, import_units, read_table
from bot.services.org.imports.values import FieldError
from bot.services.ratings.service_points import (
    COUNTERS,
    PROCEDURES,
    deep_link,
    import_counters,
    import_procedures,
    parse_payload,
    parse_procedure_code,
    payload_for_counter,
    payload_for_procedure,
    payload_for_unit,
    resolve,
)

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
ACTOR = "test:points"
TELEGRAM_PAYLOAD = re.compile(r"^[A-Za-z0-9_-]{1,64}$")

UNIT_ROWS = [
    {"code": "SGD", "name": "Sở Giáo dục và Đào tạo", "kind": "Sở", "parent_code": ""},
    {"code": "SGD.MOTCUA", "name": "Bộ phận Một cửa", "kind": "Một cửa", "parent_code": "SGD"},
    {"code": "PGD.A", "name": "Phòng GD&ĐT huyện A", "kind": "Phòng GD&ĐT", "parent_code": "SGD"},
]
PROCEDURE_ROWS = [
    {
        "code": "1.000181",
        "name": "Cấp bản sao văn bằng, chứng chỉ từ sổ gốc",
        "unit_code": "SGD.MOTCUA",
    },
    {
        "code": "1.005092",
        "name": "Công nhận trường tiểu học đạt chuẩn quốc gia",
        "unit_code": "SGD",
    },
    {"code": "2.002478", "name": "Chuyển trường đối với học sinh THCS", "unit_code": "pgd.a"},
]
COUNTER_ROWS = [
    {"code": "SGD.MOTCUA.Q1", "name": "Quầy 1", "unit_code": "SGD.MOTCUA"},
    {"code": "PGD.A.Q1", "name": "Quầy một cửa", "unit_code": "PGD.A"},
]


def table(spec: Any, records: Sequence[Mapping[str, str]]) -> Table:
    """Build a table of a spec from dicts keyed by field."""
    return Table.from_records(spec, records)


async def run(
    maker: SessionMaker, clock: FakeClock, job: Any, tbl: Table, **kw: Any
) -> ImportReport:
    """Run an import in one transaction."""
    async with transaction(maker) as session:
        return await job(session, table=tbl, actor=ACTOR, now=clock.now(), **kw)


async def seed(maker: SessionMaker, clock: FakeClock) -> None:
    """Import the units, the procedures and the counters."""
    assert (await run(maker, clock, import_units, table(UNITS, UNIT_ROWS))).ok
    assert (await run(maker, clock, import_procedures, table(PROCEDURES, PROCEDURE_ROWS))).ok
    assert (await run(maker, clock, import_counters, table(COUNTERS, COUNTER_ROWS))).ok


async def rows(maker: SessionMaker, model: Any) -> dict[str, Any]:
    """Return every row of a coded table by code."""
    async with maker() as session:
        return {r.code: r for r in (await session.exec(select(model))).all()}


async def count(maker: SessionMaker, model: Any) -> int:
    """Count the rows of a table."""
    async with maker() as session:
        return int((await session.exec(select(func.count()).select_from(model))).one())


# --- imports ------------------------------------------------------------------------------


async def test_procedures_and_counters_import_with_units(maker, clock):
    await seed(maker, clock)
    units = await rows(maker, Unit)
    procs = await rows(maker, Procedure)
    counters = await rows(maker, ServiceCounter)
    assert set(procs) == {"1.000181", "1.005092", "2.002478"}
    assert procs["2.002478"].unit_id == units["PGD.A"].id
    assert procs["1.000181"].name == "Cấp bản sao văn bằng, chứng chỉ từ sổ gốc"
    assert procs["1.000181"].created_at == clock.now()
    assert counters["SGD.MOTCUA.Q1"].unit_id == units["SGD.MOTCUA"].id
    async with maker() as session:
        actions = set((await session.exec(select(AuditLog.action))).all())
    assert {"import.procedures", "import.counters"} <= actions


async def test_reimport_is_idempotent_and_updates_by_code(maker, clock):
    await seed(maker, clock)
    again = await run(maker, clock, import_procedures, table(PROCEDURES, PROCEDURE_ROWS))
    assert (again.created, again.updated, again.unchanged) == (0, 0, 3)
    changed = [dict(PROCEDURE_ROWS[0], name="Cấp bản sao văn bằng", unit_code="SGD")]
    clock.advance(timedelta(minutes=5))
    report = await run(maker, clock, import_procedures, table(PROCEDURES, changed))
    assert (report.created, report.updated, report.unchanged) == (0, 1, 0)
    proc = (await rows(maker, Procedure))["1.000181"]
    assert (proc.name, proc.updated_at) == ("Cấp bản sao văn bằng", clock.now())
    assert (proc.unit_id) == (await rows(maker, Unit))["SGD"].id
    assert await count(maker, Procedure) == 3


async def test_bad_rows_are_all_reported_and_nothing_is_written(maker, clock):
    assert (await run(maker, clock, import_units, table(UNITS, UNIT_ROWS))).ok
    bad = [
        PROCEDURE_ROWS[0],
        {"code": "1.00A-12", "name": "Tên", "unit_code": "SGD"},
        {"code": "1.000181", "name": "Trùng mã", "unit_code": "SGD"},
        {"code": "1.2", "name": "", "unit_code": "KHONGCO"},
        {"code": "3.1", "name": "x" * 501, "unit_code": "SGD"},
    ]
    report = await run(maker, clock, import_procedures, table(PROCEDURES, bad))
    assert [(p.row, p.key) for p in report.problems] == [
        (3, "points.error.bad_procedure_code"),
        (4, "import.error.duplicate_code"),
        (5, "import.error.required"),
        (5, "import.error.unknown_unit"),
        (6, "import.error.too_long"),
    ]
    assert report.problems[0].column == "Mã TTHC"
    assert await count(maker, Procedure) == 0
    async with maker() as session:
        actions = set((await session.exec(select(AuditLog.action))).all())
    assert "import.procedures" not in actions


async def test_bad_counter_code_is_reported(maker, clock):
    assert (await run(maker, clock, import_units, table(UNITS, UNIT_ROWS))).ok
    bad = [{"code": "QUẦY 1", "name": "Quầy 1", "unit_code": "SGD"}]
    report = await run(maker, clock, import_counters, table(COUNTERS, bad))
    assert [(p.row, p.column, p.key) for p in report.problems] == [
        (2, "Mã quầy", "import.error.bad_code")
    ]
    assert await count(maker, ServiceCounter) == 0


async def test_dry_run_counts_and_writes_nothing(maker, clock):
    assert (await run(maker, clock, import_units, table(UNITS, UNIT_ROWS))).ok
    report = await run(maker, clock, import_counters, table(COUNTERS, COUNTER_ROWS), dry_run=True)
    assert (report.ok, report.dry_run, report.created) == (True, True, 2)
    assert await count(maker, ServiceCounter) == 0


async def test_the_example_files_import(maker, clock):
    units = read_table(EXAMPLES / "units.csv", spec=UNITS)
    assert (await run(maker, clock, import_units, units)).ok
    procs = read_table(EXAMPLES / "procedures.csv", spec=PROCEDURES)
    counters = read_table(EXAMPLES / "counters.csv", spec=COUNTERS)
    p_report = await run(maker, clock, import_procedures, procs)
    c_report = await run(maker, clock, import_counters, counters)
    assert p_report.problems == []
    assert c_report.problems == []
    assert (p_report.created, c_report.created) == (11, 4)


async def test_wrong_spec_is_refused(maker, clock):
    with pytest.raises(ValueError, match="PROCEDURES"):
        await run(maker, clock, import_procedures, table(COUNTERS, COUNTER_ROWS))


# --- payloads -----------------------------------------------------------------------------

UNIT_CODES = st.from_regex(r"[A-Z0-9_.\-]{1,32}", fullmatch=True)
PROCEDURE_CODES = st.from_regex(r"[0-9]{1,6}(\.[0-9A-Z]{1,6}){0,4}", fullmatch=True).filter(
    lambda code: len(code) <= 32
)


@given(UNIT_CODES)
def test_unit_and_counter_payloads_round_trip(code):
    for make, kind in ((payload_for_unit, "unit"), (payload_for_counter, "counter")):
        payload = make(code)
        assert TELEGRAM_PAYLOAD.fullmatch(payload), payload
        assert parse_payload(payload) == (kind, code)


@given(PROCEDURE_CODES)
def test_procedure_payloads_round_trip(code):
    payload = payload_for_procedure(code)
    assert TELEGRAM_PAYLOAD.fullmatch(payload), payload
    assert parse_payload(payload) == ("procedure", code)


@given(st.text(max_size=80))
def test_parse_payload_never_raises(text):
    parsed = parse_payload(text)
    if parsed is not None:
        assert text.strip().startswith("rate_")


def test_payload_examples():
    assert payload_for_counter("SGD.MOTCUA.Q1") == "rate_c_SGD-MOTCUA-Q1"
    assert payload_for_procedure("1.005092") == "rate_p_1-005092"
    assert payload_for_unit("PGD-X_1") == "rate_u_PGDhX_1"
    assert parse_payload("rate_u_PGDhX_1") == ("unit", "PGD-X_1")
    assert deep_link("@sgd_bot", "rate_p_1-005092") == "https://t.me/sgd_bot?start=rate_p_1-005092"


@pytest.mark.parametrize(
    "payload",
    ["", "rate_x_ABC", "rate_c_", "rate_c_abc", "rate_p_ABC", "INVITE123", "rate_c_" + "A" * 33],
)
def test_foreign_payloads_are_not_rating_links(payload):
    assert parse_payload(payload) is None


@pytest.mark.parametrize("value", ["1.00A-12", "ABC", "1..2", "1.", "\u0661.2", "1." + "2" * 31])
def test_procedure_codes_the_import_refuses(value):
    with pytest.raises(FieldError):
        parse_procedure_code(value)


def test_procedure_code_with_locality_suffix_is_accepted():
    assert parse_procedure_code("1.000288.000.00.00.h12") == "1.000288.000.00.00.H12"


def test_codes_the_imports_refuse_make_no_payload():
    with pytest.raises(InvalidInput) as caught:
        payload_for_procedure("ABC")
    assert caught.value.key == "points.error.bad_code"


# --- resolve ------------------------------------------------------------------------------


async def test_resolve_each_kind(maker, clock):
    await seed(maker, clock)
    async with maker() as session:
        counter = await resolve(session, payload_for_counter("SGD.MOTCUA.Q1"))
        proc = await resolve(session, payload_for_procedure("2.002478"))
        unit = await resolve(session, payload_for_unit("PGD.A"))
    assert (counter.unit.code, counter.counter and counter.counter.name) == ("SGD.MOTCUA", "Quầy 1")
    assert counter.procedure is None
    assert counter.kind == "counter"
    assert (proc.unit.code, proc.procedure and proc.procedure.code) == ("PGD.A", "2.002478")
    assert (unit.unit.code, unit.counter, unit.procedure) == ("PGD.A", None, None)
    assert unit.payload == payload_for_unit("PGD.A")


async def test_resolve_unknown_or_inactive_raises_translated_not_found(maker, clock):
    await seed(maker, clock)
    async with transaction(maker) as session:
        counter = (await session.exec(select(ServiceCounter))).all()
        for item in counter:
            item.active = False
        unit = (await session.exec(select(Unit).where(Unit.code == "PGD.A"))).one()
        unit.active = False
    cases = {
        "garbage": "points.error.bad_link",
        payload_for_counter("SGD.MOTCUA.Q1"): "points.error.unknown_counter",
        payload_for_counter("NOPE"): "points.error.unknown_counter",
        payload_for_unit("PGD.A"): "points.error.unknown_unit",
        payload_for_procedure("2.002478"): "points.error.unknown_procedure",
        payload_for_procedure("9.9"): "points.error.unknown_procedure",
    }
    async with maker() as session:
        for payload, key in cases.items():
            with pytest.raises(NotFound) as caught:
                await resolve(session, payload)
            assert caught.value.key == key, payload
            assert t(key, "vi", **caught.value.params) != key


# --- command line -------------------------------------------------------------------------


@pytest.fixture
def db_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Point the settings at a fresh SQLite file, with no config file around."""
    path = tmp_path / "x.db"
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("REFORMBOT_CONFIG", raising=False)
    monkeypatch.setenv("REFORMBOT_DATABASE__URL", f"sqlite+aiosqlite:///{path}")
    monkeypatch.setenv("COLUMNS", "200")
    return path


def invoke(app: Any, *args: str) -> tuple[int, str]:
    """Run a typer app; return the exit code and the output with spaces squeezed."""
    result = CliRunner().invoke(app, list(args))
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result.exit_code, " ".join(result.output.split())


def squeeze(text: str) -> str:
    """Squeeze spaces as `invoke` does."""
    return " ".join(text.split())


def db_count(path: Path, name: str) -> int:
    """Count the rows of a table in the SQLite file."""
    with sqlite3.connect(path) as conn:
        return int(conn.execute(f"SELECT count(*) FROM {name}").fetchone()[0])


def test_cli_imports_examples_dry_run_then_for_real(db_file):
    assert invoke(import_app, "units", str(EXAMPLES / "units.csv"))[0] == 0
    code, out = invoke(points_app, "procedures", str(EXAMPLES / "procedures.csv"), "--dry-run")
    assert code == 0, out
    assert (
        squeeze(t("points.cli.dry_procedures", "vi", total=11, created=11, updated=0, unchanged=0))
        in out
    )
    assert db_count(db_file, "procedure") == 0
    code, out = invoke(points_app, "procedures", str(EXAMPLES / "procedures.csv"))
    assert code == 0, out
    assert db_count(db_file, "procedure") == 11
    code, out = invoke(points_app, "counters", str(EXAMPLES / "counters.csv"), "--lang", "en")
    assert (code, "Counters imported: 4 (created 4" in out) == (0, True), out
    code, out = invoke(points_app, "counters", str(EXAMPLES / "counters.csv"), "--lang", "en")
    assert "unchanged 4" in out
    assert db_count(db_file, "service_counter") == 4


def test_cli_bad_file_lists_rows_and_exits_one(db_file, tmp_path):
    assert invoke(import_app, "units", str(EXAMPLES / "units.csv"))[0] == 0
    bad = tmp_path / "bad.csv"
    bad.write_text(
        "Mã TTHC;Tên thủ tục;Mã đơn vị\n1.1;Tên;SGD\nX.1;Tên;SGD\n1.2;Tên;KHONGCO\n", "utf-8"
    )
    code, out = invoke(points_app, "procedures", str(bad), "--lang", "en")
    assert code == 1, out
    assert "X.1" in out
    assert "KHONGCO" in out
    assert db_count(db_file, "procedure") == 0


def test_cli_missing_column_exits_two(db_file, tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text("Mã quầy,Tên quầy\nQ1,Quầy 1\n", "utf-8")
    code, out = invoke(points_app, "counters", str(bad), "--lang", "en")
    assert code == 2
    assert "Mã đơn vị" in out


def test_register_imports_mounts_on_the_import_group(db_file):
    import typer

    group = typer.Typer()
    group.command("units")(lambda: None)
    register_imports(group)
    code, out = invoke(group, "--help")
    assert code == 0
    assert "procedures" in out
    assert "counters" in out
