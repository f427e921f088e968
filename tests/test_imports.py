"""The organisation import services: units and staff, all or nothing, idempotent."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlmodel import col, func, select

from bot.clock import FakeClock
from bot.db import SessionMaker, transaction
from bot.models import AuditLog, Person, PersonRole, Role, Unit, UnitKind
from bot.services.org.imports import (
    STAFF,
    UNITS,
    ImportReport,
    Table,
    import_staff,
    import_units,
    read_table,
)

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
ACTOR = "test:importer"

BASE_UNITS = [
    {"code": "SGD", "name": "Sở Giáo dục và Đào tạo", "kind": "Sở", "parent_code": ""},
    {"code": "SGD.VP", "name": "Văn phòng Sở", "kind": "Phòng thuộc Sở", "parent_code": "SGD"},
    {"code": "PGD.A", "name": "Phòng GD&ĐT huyện A", "kind": "Phòng GD&ĐT", "parent_code": "SGD"},
]


def units_table(records: Sequence[Mapping[str, str]]) -> Table:
    """Build a units table from dicts keyed by field."""
    return Table.from_records(UNITS, records)


def staff_table(records: Sequence[Mapping[str, str]]) -> Table:
    """Build a staff table from dicts keyed by field."""
    return Table.from_records(STAFF, records)


def person_row(code: str, **values: str) -> dict[str, str]:
    """Return a valid staff record, with some fields overridden."""
    row = {
        "code": code,
        "full_name": f"Nguyễn Văn {code}",
        "unit_code": "SGD.VP",
        "title": "Chuyên viên",
        "roles": "Cán bộ",
        "phone": "0912345678",
        "email": f"{code.lower()}@sgddt.anphu.gov.vn",
        "locale": "vi",
        "active": "Có",
    }
    row.update(values)
    return row


async def run_units(
    maker: SessionMaker, clock: FakeClock, table: Table, **kwargs: Any
) -> ImportReport:
    """Import units in one transaction."""
    async with transaction(maker) as session:
        return await import_units(session, table=table, actor=ACTOR, now=clock.now(), **kwargs)


async def run_staff(
    maker: SessionMaker, clock: FakeClock, table: Table, **kwargs: Any
) -> ImportReport:
    """Import staff in one transaction."""
    async with transaction(maker) as session:
        return await import_staff(session, table=table, actor=ACTOR, now=clock.now(), **kwargs)


async def count(maker: SessionMaker, model: Any) -> int:
    """Return the number of rows of a table."""
    async with maker() as session:
        return int((await session.exec(select(func.count()).select_from(model))).one())


async def units_by_code(maker: SessionMaker) -> dict[str, Unit]:
    """Return every unit by code."""
    async with maker() as session:
        return {u.code: u for u in (await session.exec(select(Unit))).all()}


async def parent_codes(maker: SessionMaker) -> dict[str, str | None]:
    """Return each unit's parent code."""
    units = await units_by_code(maker)
    code_of = {u.id: u.code for u in units.values()}
    return {u.code: code_of.get(u.parent_id) for u in units.values()}


async def people(maker: SessionMaker) -> dict[str, Person]:
    """Return every person by code."""
    async with maker() as session:
        return {p.code: p for p in (await session.exec(select(Person))).all()}


async def roles_of(maker: SessionMaker, code: str) -> set[str]:
    """Return the roles of a person."""
    async with maker() as session:
        query = select(PersonRole.role).join(Person, col(Person.id) == PersonRole.person_id)
        return set((await session.exec(query.where(Person.code == code))).all())


async def seed_units(maker: SessionMaker, clock: FakeClock) -> None:
    """Import the base units."""
    report = await run_units(maker, clock, units_table(BASE_UNITS))
    assert report.ok, report.problems


def keys(report: ImportReport) -> list[tuple[int, str]]:
    """Return (row, key) of each problem."""
    return [(p.row, p.key) for p in report.problems]


# --- units --------------------------------------------------------------------------------


async def test_units_created_with_kinds_and_parents(maker, clock):
    report = await run_units(maker, clock, units_table(BASE_UNITS))
    assert (report.ok, report.created, report.updated, report.unchanged) == (True, 3, 0, 0)
    units = await units_by_code(maker)
    assert units["SGD"].kind == UnitKind.DEPARTMENT
    assert units["SGD.VP"].kind == UnitKind.OFFICE
    assert units["PGD.A"].kind == UnitKind.DISTRICT_OFFICE
    assert units["SGD.VP"].created_at == clock.now()
    assert (await parent_codes(maker)) == {"SGD": None, "SGD.VP": "SGD", "PGD.A": "SGD"}


async def test_units_reimport_is_idempotent(maker, clock):
    await run_units(maker, clock, units_table(BASE_UNITS))
    again = await run_units(maker, clock, units_table(BASE_UNITS))
    assert (again.created, again.updated, again.unchanged) == (0, 0, 3)
    assert await count(maker, Unit) == 3


async def test_units_updated_by_code_and_codes_upper_cased(maker, clock):
    await run_units(maker, clock, units_table(BASE_UNITS))
    clock.advance(timedelta(hours=1))
    changed = [dict(r) for r in BASE_UNITS]
    changed[1].update(code="sgd.vp", name="Văn phòng Sở GD&ĐT")
    report = await run_units(maker, clock, units_table(changed))
    assert (report.created, report.updated, report.unchanged) == (0, 1, 2)
    unit = (await units_by_code(maker))["SGD.VP"]
    assert unit.name == "Văn phòng Sở GD&ĐT"
    assert unit.updated_at == clock.now()
    assert unit.created_at < clock.now()
    assert await count(maker, Unit) == 3


async def test_units_never_deletes_what_the_file_omits(maker, clock):
    await run_units(maker, clock, units_table(BASE_UNITS))
    report = await run_units(maker, clock, units_table(BASE_UNITS[:1]))
    assert (report.created, report.updated, report.unchanged) == (0, 0, 1)
    assert await count(maker, Unit) == 3


async def test_units_parent_later_in_the_file(maker, clock):
    rows = [
        {"code": "TH.X", "name": "Trường Tiểu học X", "kind": "Trường", "parent_code": "PGD.X"},
        {"code": "PGD.X", "name": "Phòng GD&ĐT X", "kind": "district_office", "parent_code": "SGD"},
        {"code": "SGD", "name": "Sở", "kind": "department", "parent_code": ""},
    ]
    report = await run_units(maker, clock, units_table(rows))
    assert report.ok, report.problems
    assert (await parent_codes(maker)) == {"TH.X": "PGD.X", "PGD.X": "SGD", "SGD": None}


async def test_units_parent_already_in_the_database(maker, clock):
    await seed_units(maker, clock)
    rows = [{"code": "TH.Y", "name": "Trường Y", "kind": "school", "parent_code": "pgd.a"}]
    report = await run_units(maker, clock, units_table(rows))
    assert report.ok
    assert report.created == 1
    assert (await parent_codes(maker))["TH.Y"] == "PGD.A"


async def test_units_move_to_a_new_parent(maker, clock):
    await seed_units(maker, clock)
    rows = [
        {"code": "SGD.VP", "name": "Văn phòng Sở", "kind": "office", "parent_code": "NEW"},
        {"code": "NEW", "name": "Khối mới", "kind": "office", "parent_code": "SGD"},
    ]
    report = await run_units(maker, clock, units_table(rows))
    assert (report.created, report.updated) == (1, 1)
    assert (await parent_codes(maker))["SGD.VP"] == "NEW"


async def test_units_without_parent_column_keep_their_parent(maker, clock):
    await seed_units(maker, clock)
    rows = [{"code": "SGD.VP", "name": "Văn phòng", "kind": "office"}]
    report = await run_units(maker, clock, units_table(rows))
    assert report.updated == 1
    assert (await parent_codes(maker))["SGD.VP"] == "SGD"


async def test_units_cycle_in_the_file(maker, clock):
    rows = [
        {"code": "A", "name": "A", "kind": "office", "parent_code": "B"},
        {"code": "B", "name": "B", "kind": "office", "parent_code": "C"},
        {"code": "C", "name": "C", "kind": "office", "parent_code": "A"},
        {"code": "D", "name": "D", "kind": "office", "parent_code": "A"},
    ]
    report = await run_units(maker, clock, units_table(rows))
    assert keys(report) == [(row, "import.error.parent_cycle") for row in (2, 3, 4)]
    assert report.problems[0].params["chain"] == "A → B → C → A"
    assert await count(maker, Unit) == 0


async def test_units_cycle_through_the_database(maker, clock):
    await seed_units(maker, clock)
    rows = [{"code": "SGD", "name": "Sở", "kind": "Sở", "parent_code": "SGD.VP"}]
    report = await run_units(maker, clock, units_table(rows))
    assert keys(report) == [(2, "import.error.parent_cycle")]
    assert (await parent_codes(maker))["SGD"] is None


async def test_units_self_parent_and_unknown_parent(maker, clock):
    rows = [
        {"code": "A", "name": "A", "kind": "office", "parent_code": "A"},
        {"code": "B", "name": "B", "kind": "office", "parent_code": "NOWHERE"},
    ]
    report = await run_units(maker, clock, units_table(rows))
    assert keys(report) == [(2, "import.error.parent_self"), (3, "import.error.unknown_parent")]
    assert report.problems[1].params["code"] == "NOWHERE"


async def test_units_broken_file_reports_every_row_and_writes_nothing(maker, clock):
    await seed_units(maker, clock)
    rows = [
        {"code": "OK.1", "name": "Đơn vị tốt", "kind": "office", "parent_code": "SGD"},
        {"code": "", "name": "Không mã", "kind": "office", "parent_code": ""},
        {"code": "SỞ", "name": "Mã có dấu", "kind": "office", "parent_code": ""},
        {"code": "OK.2", "name": "x" * 256, "kind": "Bệnh viện", "parent_code": ""},
        {"code": "ok.1", "name": "Trùng mã", "kind": "office", "parent_code": ""},
        {"code": "A" * 33, "name": "Mã quá dài", "kind": "office", "parent_code": ""},
    ]
    report = await run_units(maker, clock, units_table(rows))
    assert not report.ok
    assert keys(report) == [
        (3, "import.error.required"),
        (4, "import.error.bad_code"),
        (5, "import.error.too_long"),
        (5, "import.error.unknown_kind"),
        (6, "import.error.duplicate_code"),
        (7, "import.error.bad_code"),
    ]
    assert report.problems[0].column == "Mã đơn vị"
    assert report.problems[2].params == {"column": "Tên đơn vị", "max": 255, "length": 256}
    assert report.problems[3].params["value"] == "Bệnh viện"
    assert report.problems[4].params == {"column": "Mã đơn vị", "code": "OK.1", "first_row": 2}
    assert (report.created, report.updated, report.unchanged) == (0, 0, 0)
    assert await count(maker, Unit) == 3
    assert await count(maker, AuditLog) == 1


async def test_units_dry_run_counts_but_writes_nothing(maker, clock):
    await seed_units(maker, clock)
    rows = [*BASE_UNITS, {"code": "NEW", "name": "Mới", "kind": "school", "parent_code": "SGD"}]
    rows[0] = {**rows[0], "name": "Sở GD&ĐT tỉnh An Phú"}
    report = await run_units(maker, clock, units_table(rows), dry_run=True)
    assert (report.ok, report.dry_run) == (True, True)
    assert (report.created, report.updated, report.unchanged) == (1, 1, 2)
    assert await count(maker, Unit) == 3
    assert (await units_by_code(maker))["SGD"].name == "Sở Giáo dục và Đào tạo"
    assert await count(maker, AuditLog) == 1


async def test_units_audit_row(maker, clock):
    async with transaction(maker) as session:
        await import_units(
            session,
            table=units_table(BASE_UNITS),
            actor="cli:admin",
            now=clock.now(),
            source="units.csv",
        )
    async with maker() as session:
        rows = (await session.exec(select(AuditLog))).all()
    assert len(rows) == 1
    log = rows[0]
    assert (log.actor, log.action, log.count, log.subject) == (
        "cli:admin",
        "import.units",
        3,
        "units.csv",
    )
    assert log.at == clock.now()
    assert log.detail == "created=3 updated=0 unchanged=0"


async def test_units_wrong_table_spec_is_refused(maker, clock):
    with pytest.raises(ValueError, match="UNITS"):
        await run_units(maker, clock, staff_table([person_row("CB1")]))


async def test_progress_reaches_the_total(maker, clock):
    seen: list[tuple[int, int]] = []
    rows = [{"code": f"U{i}", "name": f"Đơn vị {i}", "kind": "school"} for i in range(600)]
    await run_units(maker, clock, units_table(rows), progress=lambda d, t: seen.append((d, t)))
    assert seen[-1] == (1200, 1200)
    assert len(seen) > 2
    assert [d for d, _ in seen] == sorted(d for d, _ in seen)


# --- staff --------------------------------------------------------------------------------


async def test_staff_created_with_every_field(maker, clock):
    await seed_units(maker, clock)
    rows = [
        person_row(
            "CB1",
            roles="Lãnh đạo; Thủ trưởng",
            phone="+84 912 345 678",
            email="An.Nguyen@SGDDT.AnPhu.gov.vn",
            locale="English",
            active="Không",
            title="  Phó   Giám đốc Sở ",
        ),
        person_row("cb2", roles="", phone="", email="", locale="", active="", unit_code="pgd.a"),
    ]
    report = await run_staff(maker, clock, staff_table(rows))
    assert (report.ok, report.created) == (True, 2), report.problems
    found = await people(maker)
    units = await units_by_code(maker)
    one, two = found["CB1"], found["CB2"]
    assert (one.phone, one.email, one.locale, one.active) == (
        "0912345678",
        "an.nguyen@sgddt.anphu.gov.vn",
        "en",
        False,
    )
    assert one.title == "Phó Giám đốc Sở"
    assert one.unit_id == units["SGD.VP"].id
    assert (two.phone, two.email, two.locale, two.active) == (None, None, "vi", True)
    assert two.unit_id == units["PGD.A"].id
    assert await roles_of(maker, "CB1") == {"leader", "unit_head"}
    assert await roles_of(maker, "CB2") == {"staff"}


@pytest.mark.parametrize(
    ("raw", "stored"),
    [
        ("0912345678", "0912345678"),
        ("0912 345 678", "0912345678"),
        ("0912.345.678", "0912345678"),
        ("0912-345-678", "0912345678"),
        ("+84 912 345 678", "0912345678"),
        ("84912345678", "0912345678"),
        ("912345678", "0912345678"),
        ("(0206) 3812 345", "02063812345"),
        ("+84 206 3812 345", "02063812345"),
    ],
)
async def test_staff_phone_normalised(maker, clock, raw, stored):
    await seed_units(maker, clock)
    report = await run_staff(maker, clock, staff_table([person_row("CB1", phone=raw)]))
    assert report.ok, report.problems
    assert (await people(maker))["CB1"].phone == stored


async def test_staff_reimport_is_idempotent(maker, clock):
    await seed_units(maker, clock)
    rows = [person_row(f"CB{i}") for i in range(5)]
    await run_staff(maker, clock, staff_table(rows))
    again = await run_staff(maker, clock, staff_table(rows))
    assert (again.created, again.updated, again.unchanged) == (0, 0, 5)
    assert await count(maker, Person) == 5
    assert await count(maker, PersonRole) == 5


async def test_staff_roles_replaced_on_reimport(maker, clock):
    await seed_units(maker, clock)
    await run_staff(maker, clock, staff_table([person_row("CB1", roles="Quản trị, Cán bộ")]))
    assert await roles_of(maker, "CB1") == {"admin", "staff"}
    report = await run_staff(maker, clock, staff_table([person_row("CB1", roles="unit_head")]))
    assert (report.updated, report.unchanged) == (1, 0)
    assert await roles_of(maker, "CB1") == {"unit_head"}
    report = await run_staff(maker, clock, staff_table([person_row("CB1", roles="")]))
    assert await roles_of(maker, "CB1") == {"staff"}


async def test_staff_updated_by_code(maker, clock):
    await seed_units(maker, clock)
    await run_staff(maker, clock, staff_table([person_row("CB1"), person_row("CB2")]))
    rows = [person_row("CB1", unit_code="PGD.A", title="Trưởng phòng"), person_row("CB2")]
    report = await run_staff(maker, clock, staff_table(rows))
    assert (report.created, report.updated, report.unchanged) == (0, 1, 1)
    found = await people(maker)
    assert found["CB1"].title == "Trưởng phòng"
    assert found["CB1"].unit_id == (await units_by_code(maker))["PGD.A"].id


async def test_staff_columns_absent_from_the_file_are_kept(maker, clock):
    await seed_units(maker, clock)
    await run_staff(maker, clock, staff_table([person_row("CB1", roles="Quản trị")]))
    short = [{"code": "CB1", "full_name": "Nguyễn Văn Một", "unit_code": "SGD.VP"}]
    report = await run_staff(maker, clock, staff_table(short))
    assert report.updated == 1
    one = (await people(maker))["CB1"]
    assert (one.full_name, one.phone, one.email) == (
        "Nguyễn Văn Một",
        "0912345678",
        "cb1@sgddt.anphu.gov.vn",
    )
    assert await roles_of(maker, "CB1") == {"admin"}


async def test_staff_broken_rows_reported_and_nothing_written(maker, clock):
    await seed_units(maker, clock)
    await run_staff(maker, clock, staff_table([person_row("CB1")]))
    rows = [
        person_row("CB1", title="Đổi chức vụ"),
        person_row("CB2", full_name=""),
        person_row("CB3", unit_code="KHONG.CO"),
        person_row("CB4", phone="0123 456"),
        person_row("CB1"),
        person_row("CB6", roles="Giám sát", email="a@b", locale="fr", active="có lẽ"),
    ]
    report = await run_staff(maker, clock, staff_table(rows))
    assert keys(report) == [
        (3, "import.error.required"),
        (4, "import.error.unknown_unit"),
        (5, "import.error.bad_phone"),
        (6, "import.error.duplicate_code"),
        (7, "import.error.unknown_role"),
        (7, "import.error.bad_email"),
        (7, "import.error.bad_locale"),
        (7, "import.error.bad_flag"),
    ]
    assert [p.column for p in report.problems[:3]] == ["Họ và tên", "Mã đơn vị", "Điện thoại"]
    assert report.problems[1].params["code"] == "KHONG.CO"
    assert report.bad_rows == 5
    assert await count(maker, Person) == 1
    assert (await people(maker))["CB1"].title == "Chuyên viên"


async def test_staff_dry_run_writes_nothing(maker, clock):
    await seed_units(maker, clock)
    await run_staff(maker, clock, staff_table([person_row("CB1")]))
    rows = [person_row("CB1", roles="Lãnh đạo"), person_row("CB2")]
    report = await run_staff(maker, clock, staff_table(rows), dry_run=True)
    assert (report.created, report.updated, report.unchanged, report.dry_run) == (1, 1, 0, True)
    assert await count(maker, Person) == 1
    assert await roles_of(maker, "CB1") == {"staff"}
    assert await count(maker, AuditLog) == 2


async def test_staff_audit_row(maker, clock):
    await seed_units(maker, clock)
    await run_staff(maker, clock, staff_table([person_row("CB1"), person_row("CB2")]))
    async with maker() as session:
        query = select(AuditLog).where(AuditLog.action == "import.staff")
        log = (await session.exec(query)).one()
    assert (log.actor, log.count) == (ACTOR, 2)


async def test_staff_ten_thousand_rows(maker, clock):
    """Large files import whole and re-import by code (speed is measured in bench/)."""
    await seed_units(maker, clock)
    rows = [person_row(f"CB{i:05d}", roles="Cán bộ; Thủ trưởng") for i in range(10_000)]
    report = await run_staff(maker, clock, staff_table(rows))
    assert report.created == 10_000
    rows[5] = person_row("CB00005", roles="Quản trị")
    report = await run_staff(maker, clock, staff_table(rows))
    assert (report.updated, report.unchanged) == (1, 9_999)
    assert await count(maker, PersonRole) == 19_999


# --- the shipped examples -----------------------------------------------------------------


async def test_the_former_structure_still_imports(maker, clock):
    table = read_table(EXAMPLES / "units_before_2025.csv", spec=UNITS)
    units = await run_units(maker, clock, table)
    assert units.ok, units.problems
    kinds = [u.kind for u in (await units_by_code(maker)).values()]
    assert kinds.count(UnitKind.DISTRICT_OFFICE) == 11
    assert kinds.count(UnitKind.COMMUNE) == 0


async def test_examples_import_cleanly(maker, clock):
    units = await run_units(maker, clock, read_table(EXAMPLES / "units.csv", spec=UNITS))
    assert units.ok, units.problems
    staff = await run_staff(maker, clock, read_table(EXAMPLES / "staff.csv", spec=STAFF))
    assert staff.ok, staff.problems
    found = await units_by_code(maker)
    kinds = [u.kind for u in found.values()]
    assert kinds.count(UnitKind.COMMUNE) == 11
    assert kinds.count(UnitKind.DISTRICT_OFFICE) == 0
    assert kinds.count(UnitKind.DEPARTMENT) == 1
    assert kinds.count(UnitKind.ONE_STOP) == 1
    assert 8 <= kinds.count(UnitKind.SCHOOL) <= 12
    parents = await parent_codes(maker)
    assert parents["SGD.MOTCUA"] == "SGD.VP"
    assert parents["TH.KDONG.TPAP"] == "UBND.ANPHU"
    assert parents["UBND.ANPHU"] == "SGD"
    assert staff.created == await count(maker, Person) >= 55
    async with maker() as session:
        held = (await session.exec(select(PersonRole.role))).all()
    assert held.count(Role.ADMIN) == 2
    assert held.count(Role.LEADER) == 3
    assert held.count(Role.UNIT_HEAD) >= 8 + 11


async def test_broken_example_reports_typical_errors(maker, clock):
    await run_units(maker, clock, read_table(EXAMPLES / "units.csv", spec=UNITS))
    table = read_table(EXAMPLES / "staff_broken.csv", spec=STAFF)
    report = await run_staff(maker, clock, table)
    found = {p.key for p in report.problems}
    assert {
        "import.error.required",
        "import.error.unknown_unit",
        "import.error.bad_phone",
        "import.error.duplicate_code",
    } <= found
    assert await count(maker, Person) == 0
