"""Property: an import writes every row of a file or none of them."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlmodel import select

from bot.db import SessionMaker, transaction
from bot.models import AuditLog, Person, PersonRole, Unit
from bot.services.org.imports import STAFF, UNITS, Table, import_staff, import_units
from bot.services.org.imports.values import parse_roles

SETTINGS = settings(
    max_examples=50,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
UNIT_CODES = ["SGD", "SGD.VP", "PGD.A"]
BASE_UNITS = [
    {"code": "SGD", "name": "Sở", "kind": "Sở", "parent_code": ""},
    {"code": "SGD.VP", "name": "Văn phòng", "kind": "Phòng thuộc Sở", "parent_code": "SGD"},
    {"code": "PGD.A", "name": "Phòng GD&ĐT A", "kind": "Phòng GD&ĐT", "parent_code": "SGD"},
]

staff_rows = st.fixed_dictionaries(
    {
        "code": st.sampled_from([f"CB{i}" for i in range(8)]),
        "full_name": st.sampled_from(["Nguyễn Văn An", "Trần Thị Bích", "Lê Hoàng Cường"]),
        "unit_code": st.sampled_from(UNIT_CODES),
        "roles": st.sampled_from(["", "Cán bộ", "Quản trị; Cán bộ", "leader", "Thủ trưởng"]),
        "phone": st.sampled_from(["", "0912345678", "+84 987 654 321", "02063812345"]),
        "active": st.sampled_from(["", "Có", "Không"]),
    }
)
staff_breakers = st.sampled_from(
    [
        {"full_name": ""},
        {"unit_code": "KHONG.CO"},
        {"phone": "12345"},
        {"roles": "Giám sát"},
        {"code": "MÃ SAI"},
        {"active": "có lẽ"},
    ]
)
unit_rows = st.fixed_dictionaries(
    {
        "code": st.sampled_from([f"U{i}" for i in range(6)]),
        "name": st.sampled_from(["Trường A", "Trường B", "Phòng C"]),
        "kind": st.sampled_from(["school", "Trường học", "office", "Phòng chuyên môn"]),
        "parent_code": st.sampled_from(["", "SGD", "PGD.A", "U0", "U1"]),
    }
)
unit_breakers = st.sampled_from(
    [{"kind": "Bệnh viện"}, {"name": ""}, {"code": "SỞ"}, {"parent_code": "NOWHERE"}]
)


def file_rows(rows: Any, breakers: Any) -> Any:
    """Lists of rows, each left good or spoilt by one breaker."""
    return st.lists(st.tuples(rows, st.none() | breakers), min_size=1, max_size=8)


async def snapshot(maker: SessionMaker) -> tuple[list[Any], list[Any], list[Any], int]:
    """Return everything an import may change."""
    async with maker() as session:
        units = (await session.exec(select(Unit))).all()
        people = (await session.exec(select(Person))).all()
        roles = (await session.exec(select(PersonRole.person_id, PersonRole.role))).all()
        audits = len((await session.exec(select(AuditLog))).all())
    return (
        sorted((u.code, u.name, u.kind, u.parent_id, u.updated_at) for u in units),
        sorted((p.code, p.full_name, p.unit_id, p.phone, p.active, p.updated_at) for p in people),
        sorted(tuple(r) for r in roles),
        audits,
    )


async def ensure_units(maker: SessionMaker, clock: Any) -> None:
    """Import the base units once per test."""
    async with transaction(maker) as session:
        table = Table.from_records(UNITS, BASE_UNITS)
        await import_units(session, table=table, actor="t", now=clock.now())


def spoil(drawn: list[tuple[dict[str, str], dict[str, str] | None]]) -> list[dict[str, str]]:
    """Apply each row's breaker, if any."""
    return [{**row, **(breaker or {})} for row, breaker in drawn]


def expect_ok(drawn: list[tuple[dict[str, str], dict[str, str] | None]]) -> bool:
    """Tell whether a file should pass: no breaker and no repeated code."""
    codes = [row["code"] for row, _ in drawn]
    return all(b is None for _, b in drawn) and len(codes) == len(set(codes))


@SETTINGS
@given(drawn=file_rows(staff_rows, staff_breakers))
async def test_staff_import_writes_all_rows_or_none(maker, clock, drawn):
    if not (await snapshot(maker))[0]:
        await ensure_units(maker, clock)
    clock.advance(timedelta(seconds=1))
    before = await snapshot(maker)
    rows = spoil(drawn)
    async with transaction(maker) as session:
        table = Table.from_records(STAFF, rows)
        report = await import_staff(session, table=table, actor="t", now=clock.now())
    after = await snapshot(maker)
    assert report.ok == expect_ok(drawn), report.problems
    if not report.ok:
        assert after == before
        assert {p.row for p in report.problems} <= set(range(2, len(rows) + 2))
        return
    async with maker() as session:
        people = {p.code: p for p in (await session.exec(select(Person))).all()}
        held = (await session.exec(select(PersonRole.person_id, PersonRole.role))).all()
    for row in rows:
        person = people[row["code"]]
        assert person.full_name == row["full_name"]
        assert {role for pid, role in held if pid == person.id} == parse_roles(row["roles"])
    assert after[3] == before[3] + 1


@SETTINGS
@given(drawn=file_rows(unit_rows, unit_breakers))
async def test_unit_import_writes_all_rows_or_none(maker, clock, drawn):
    if not (await snapshot(maker))[0]:
        await ensure_units(maker, clock)
    clock.advance(timedelta(seconds=1))
    before = await snapshot(maker)
    rows = spoil(drawn)
    async with transaction(maker) as session:
        table = Table.from_records(UNITS, rows)
        report = await import_units(session, table=table, actor="t", now=clock.now())
    after = await snapshot(maker)
    if not expect_ok(drawn):
        assert not report.ok
    if not report.ok:
        assert after == before
        return
    names = {code: name for code, name, *_ in after[0]}
    for row in rows:
        assert names[row["code"]] == row["name"]
    assert len(after[0]) == len({*names})
    assert after[3] == before[3] + 1
