"""Importing tasks from a file: validation by row, grouping by title and due, all or nothing."""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path

import openpyxl
import pytest
from sqlmodel import func, select

from bot.config import TaskSettings
from bot.messages import codec
from bot.models import (
    Audience,
    AuditLog,
    Directive,
    Outbox,
    Role,
    Task,
    TaskAssignee,
    TaskAssignment,
    UnitKind,
)
from bot.services.calendar import WorkCalendar
from bot.services.errors import InvalidInput
from bot.services.org.access import system_actor
from bot.services.org.imports import ImportFileError
from bot.services.org.imports.values import FieldError
from bot.services.tasks import task_import
from tests import factories as f

ADMIN = system_actor("test")
CAL = WorkCalendar()
SETTINGS = TaskSettings()
HEADER = "Mã đơn vị,Nhiệm vụ,Hạn,Nội dung,Người thực hiện,Công văn\n"
REPORT = "Báo cáo công tác cải cách hành chính quý IV năm 2026"
REVIEW = "Rà soát, đánh giá thủ tục hành chính thuộc thẩm quyền giải quyết"


def hanoi(text: str) -> datetime:
    return datetime.fromisoformat(text + "+07:00").astimezone(UTC)


NOW = hanoi("2026-11-30 08:00")  # a Monday


async def seed(s) -> None:
    root = await f.unit(s, "SGD", "Sở Giáo dục và Đào tạo", kind=UnitKind.DEPARTMENT)
    kind = UnitKind.DISTRICT_OFFICE
    a = await f.unit(s, "PGD.A", "Phòng GD&ĐT huyện A", kind=kind, parent=root)
    b = await f.unit(s, "PGD.B", "Phòng GD&ĐT huyện B", kind=kind, parent=root)
    closed = await f.unit(s, "PGD.OLD", "Phòng cũ", kind=kind, parent=root)
    closed.active = False
    await f.contact(s, "100", await f.person(s, "HA", a, Role.UNIT_HEAD, name="Trưởng A"))
    await f.contact(s, "101", await f.person(s, "SA", a, name="Cán bộ A"))
    await f.person(s, "GONE", a, active=False)
    await f.contact(s, "200", await f.person(s, "HB", b, Role.UNIT_HEAD, name="Trưởng B"))
    s.add(
        Directive(
            number="125/SGDĐT-VP",
            issued_on=date(2026, 11, 20),
            title="Về việc đẩy mạnh cải cách hành chính",
            summary="…",
            audience=Audience.EVERYONE,
            target="all",
            ack_deadline=hanoi("2026-11-25 17:00"),
            created_by="test",
            created_at=hanoi("2026-11-20 08:00"),
        )
    )
    await s.commit()


def write_csv(path: Path, body: str) -> Path:
    path.write_text(HEADER + body, encoding="utf-8")
    return path


async def run(maker, path: Path, *, dry_run: bool = False, now: datetime = NOW):
    async with maker() as s:
        report = await task_import.import_tasks(
            s,
            table=task_import.read_tasks(path),
            actor=ADMIN,
            now=now,
            cal=CAL,
            settings=SETTINGS,
            dry_run=dry_run,
            source=path.name,
        )
        await s.commit()
    return report


async def counts(maker) -> tuple[int, int, int, int]:
    async with maker() as s:
        out = []
        for model in (Task, TaskAssignment, Outbox, AuditLog):
            out.append((await s.exec(select(func.count()).select_from(model))).one())
    return tuple(out)


async def test_a_good_file_creates_tasks_grouped_by_title_and_due(maker, tmp_path):
    async with maker() as s:
        await seed(s)
    path = write_csv(
        tmp_path / "tasks.csv",
        f'PGD.A,{REPORT},15/12/2026,"Theo đề cương kèm theo.",SA,125/SGDĐT-VP\n'
        f"pgd.b,{REPORT},15/12/2026,,,\n"
        f'PGD.A,"{REVIEW}",10,,HA; SA,#1\n'
        f'PGD.B,"{REVIEW}",15/12/2026 16:30,"Rà soát từng thủ tục.",,\n',
    )
    report = await run(maker, path)
    assert report.ok, report.problems
    assert [(p.first_row, p.title, p.units) for p in report.tasks] == [
        (2, REPORT, ("PGD.A", "PGD.B")),
        (4, REVIEW, ("PGD.A",)),
        (5, REVIEW, ("PGD.B",)),
    ]
    assert report.assignments == 4
    async with maker() as s:
        rows = (
            await s.exec(
                select(Task.title, Task.details, Task.directive_id, TaskAssignment.due_at)
                .join(TaskAssignment, TaskAssignment.task_id == Task.id)
                .order_by(TaskAssignment.id)
            )
        ).all()
        named = (await s.exec(select(func.count()).select_from(TaskAssignee))).one()
        keys = [codec.loads(o.payload).key for o in (await s.exec(select(Outbox))).all()]
        audit = (await s.exec(select(AuditLog).where(AuditLog.action == "import.tasks"))).one()
    assert rows == [
        (REPORT, "Theo đề cương kèm theo.", 1, hanoi("2026-12-15 17:00")),
        (REPORT, "Theo đề cương kèm theo.", 1, hanoi("2026-12-15 17:00")),
        (REVIEW, "", 1, hanoi("2026-12-14 17:00")),  # 10 working days after Monday 30/11
        (REVIEW, "Rà soát từng thủ tục.", None, hanoi("2026-12-15 16:30")),
    ]
    assert named == 3  # SA on the report; HA and SA on the review
    assert keys.count("task.assigned") == 6  # heads A (x2), B (x2), and SA (x2)
    assert (audit.count, audit.subject) == (3, "tasks.csv")


async def test_a_broken_file_names_each_row_and_writes_nothing(maker, tmp_path):
    async with maker() as s:
        await seed(s)
    path = write_csv(
        tmp_path / "broken.csv",
        f"PGD.A,{REPORT},15/12/2026,,,\n"  # row 2: good
        f"PGD.X,{REPORT},15/12/2026,,,\n"  # row 3: unknown unit
        f"PGD.OLD,{REPORT},15/12/2026,,,\n"  # row 4: unit closed
        f"PGD.A,,31/02/2027,,,\n"  # row 5: no title, no such day
        f"PGD.B,{REPORT},01/11/2026,,HA;NOBODY;GONE,\n"  # row 6: past; people
        f"PGD.B,{'x' * 501},999,,,42\n"  # row 7: title too long; days; directive
        f"PGD.A,{REPORT},15/12/2026,,,\n",  # row 8: same unit again
    )
    report = await run(maker, path)
    assert [(p.row, p.column, p.key) for p in report.problems] == [
        (3, "Mã đơn vị", "task_import.error.unknown_unit"),
        (4, "Mã đơn vị", "task_import.error.inactive_unit"),
        (5, "Nhiệm vụ", "import.error.required"),
        (5, "Hạn", "task_import.error.bad_due"),
        (6, "Hạn", "task_import.error.due_past"),
        (6, "Người thực hiện", "task_import.error.person_elsewhere"),
        (6, "Người thực hiện", "task_import.error.unknown_person"),
        (6, "Người thực hiện", "task_import.error.unknown_person"),
        (7, "Nhiệm vụ", "import.error.too_long"),
        (7, "Hạn", "task_import.error.days_range"),
        (7, "Công văn", "task_import.error.unknown_directive"),
        (8, "Mã đơn vị", "task_import.error.repeated"),
    ]
    assert report.problems[-1].params["first_row"] == 2
    assert report.bad_rows == 6
    assert report.tasks == []
    assert await counts(maker) == (0, 0, 0, 0)


async def test_rows_of_one_task_must_agree(maker, tmp_path):
    async with maker() as s:
        await seed(s)
    path = write_csv(
        tmp_path / "conflict.csv",
        f"PGD.A,{REPORT},15/12/2026,Nội dung thứ nhất,,\n"
        f"PGD.B,{REPORT},15/12/2026,Nội dung khác,,\n"
        f"PGD.B,{REPORT},15/12/2026 17:00,,,\n",  # same moment written with the time: same task
    )
    report = await run(maker, path)
    assert [(p.row, p.column, p.key) for p in report.problems] == [
        (3, "Nội dung", "task_import.error.conflict"),
    ]
    assert await counts(maker) == (0, 0, 0, 0)


async def test_importing_the_same_file_twice_assigns_nothing_twice(maker, tmp_path):
    async with maker() as s:
        await seed(s)
    path = write_csv(tmp_path / "t.csv", f"PGD.A,{REPORT},15/12/2026,,,\n")
    assert (await run(maker, path)).ok
    again = await run(maker, path)
    assert [(p.row, p.key, p.params["unit"]) for p in again.problems] == [
        (2, "task_import.error.exists", "PGD.A")
    ]
    assert (await counts(maker))[:2] == (1, 1)


async def test_dry_run_reports_and_writes_nothing(maker, tmp_path):
    async with maker() as s:
        await seed(s)
    path = write_csv(
        tmp_path / "t.csv", f"PGD.A,{REPORT},15/12/2026,,,\nPGD.B,{REPORT},15/12/2026,,,\n"
    )
    report = await run(maker, path, dry_run=True)
    assert report.ok
    assert report.dry_run
    assert (len(report.tasks), report.assignments, report.tasks[0].task_id) == (1, 2, None)
    assert await counts(maker) == (0, 0, 0, 0)


async def test_xlsx_with_english_headers_date_cells_and_numbers(maker, tmp_path):
    async with maker() as s:
        await seed(s)
    book = openpyxl.Workbook()
    sheet = book.active
    sheet.append(["unit_code", "title", "due", "details", "assignees", "directive"])
    sheet.append(["PGD.A", REPORT, datetime(2026, 12, 15), None, "SA", None])
    sheet.append(["PGD.B", REPORT, datetime(2026, 12, 15), None, None, None])
    sheet.append([None] * 6)
    sheet.append(["PGD.B", REVIEW, 5, "Chi tiết", None, 1])
    sheet.append(["PGD.A", REVIEW, datetime(2026, 12, 10, 9, 30), None, None, None])
    path = tmp_path / "tasks.xlsx"
    book.save(path)
    report = await run(maker, path)
    assert report.ok, report.problems
    assert [(p.first_row, p.units, p.due_at, p.directive_id) for p in report.tasks] == [
        (2, ("PGD.A", "PGD.B"), hanoi("2026-12-15 17:00"), None),
        (5, ("PGD.B",), hanoi("2026-12-07 17:00"), 1),
        (6, ("PGD.A",), hanoi("2026-12-10 09:30"), None),
    ]


async def test_an_unreadable_file_is_refused_before_anything(tmp_path):
    bad = tmp_path / "tasks.txt"
    bad.write_text("x", encoding="utf-8")
    with pytest.raises(ImportFileError) as info:
        task_import.read_tasks(bad)
    assert info.value.key == "import.error.bad_extension"
    missing = tmp_path / "cols.csv"
    missing.write_text("Mã đơn vị,Nhiệm vụ\nPGD.A,x\n", encoding="utf-8")
    with pytest.raises(ImportFileError) as info:
        task_import.read_tasks(missing)
    assert info.value.key == "import.error.missing_column"
    assert "Hạn" in info.value.params["column"]


@pytest.mark.parametrize(
    ("raw", "local"),
    [
        ("15/12/2026", "2026-12-15 17:00"),
        ("5/1/2027", "2027-01-05 17:00"),
        ("15-12-2026 8:05", "2026-12-15 08:05"),
        ("15/12/2026 16h30", "2026-12-15 16:30"),
        ("15/12/2026 16h", "2026-12-15 16:00"),
        ("2026-12-15T00:00:00", "2026-12-15 17:00"),
        ("2026-12-15T09:15:00", "2026-12-15 09:15"),
        ("0", "2026-11-30 17:00"),
        ("1", "2026-12-01 17:00"),
        ("5", "2026-12-07 17:00"),
    ],
)
def test_due_formats(raw, local):
    assert task_import.parse_due(raw, now=NOW, cal=CAL) == hanoi(local)


def test_working_days_count_from_the_next_working_day_at_a_weekend():
    saturday = hanoi("2026-12-05 10:00")
    assert task_import.parse_due("0", now=saturday, cal=CAL) == hanoi("2026-12-07 17:00")
    assert task_import.parse_due("1", now=saturday, cal=CAL) == hanoi("2026-12-08 17:00")


@pytest.mark.parametrize(
    ("raw", "key"),
    [
        ("30/02/2027", "task_import.error.bad_due"),
        ("15/12/2026 25:00", "task_import.error.bad_due"),
        ("tuần sau", "task_import.error.bad_due"),
        ("-3", "task_import.error.bad_due"),
        ("366", "task_import.error.days_range"),
        ("30/11/2026 07:59", "task_import.error.due_past"),
    ],
)
def test_bad_dues(raw, key):
    with pytest.raises(FieldError) as info:
        task_import.parse_due(raw, now=NOW, cal=CAL)
    assert info.value.key == key


def test_today_after_five_is_past():
    evening = hanoi("2026-11-30 17:30")
    with pytest.raises(FieldError) as info:
        task_import.parse_due("0", now=evening, cal=CAL)
    assert info.value.key == "task_import.error.due_past"


async def test_check_assignees(maker):
    async with maker() as s:
        await seed(s)
        ok = await task_import.check_assignees(
            s, unit_codes=["pgd.a", "PGD.B"], person_codes=["sa", "HB", "SA"]
        )
        assert ok == ("SA", "HB")
        with pytest.raises(InvalidInput) as info:
            await task_import.check_assignees(s, unit_codes=["PGD.B"], person_codes=["SA"])
        assert (info.value.key, info.value.params["code"]) == (
            "task_import.error.person_elsewhere",
            "SA",
        )
        with pytest.raises(InvalidInput) as info:
            await task_import.check_assignees(s, unit_codes=["PGD.A"], person_codes=["GONE"])
        assert info.value.key == "task_import.error.unknown_person"


def test_the_example_file_reads():
    table = task_import.read_tasks(Path(__file__).resolve().parents[1] / "examples/tasks.csv")
    assert len(table.rows) == 25
    assert {r.get("title") for r in table.rows} >= {REPORT, REVIEW}
