"""Satisfaction statistics: the service on both backends, and /stats in chat (with XLSX)."""

from __future__ import annotations

import unicodedata
from datetime import UTC, date, datetime
from decimal import Decimal
from io import BytesIO
from zoneinfo import ZoneInfo

import pytest
from openpyxl import load_workbook
from sqlmodel import select

import handlers.router  # noqa: F401
from bot.i18n import t
from bot.messages import codec
from bot.models import Attachment, Outbox, Procedure, Rating, Role, Unit, UnitKind
from bot.services.errors import InvalidInput, PermissionDenied
from bot.services.org.access import Actor
from bot.services.reports import stats as rating_stats
from bot.services.reports.stats import Tally
from bot.services.reports.xlsx import data_rows, header_row
from tests import factories as f

HANOI = ZoneInfo("Asia/Ho_Chi_Minh")
NOW = datetime(2026, 11, 30, 1, 0, tzinfo=UTC)  # the clock fixture's time
SINCE = datetime(2026, 10, 1, tzinfo=HANOI).astimezone(UTC)
AN = "Nguyễn Văn An"


def local(*parts: int) -> datetime:
    """Return a Hanoi wall-clock time as UTC."""
    return datetime(*parts, tzinfo=HANOI).astimezone(UTC)


def rating(unit: Unit, at: datetime, overall: int, **fields: object) -> Rating:
    """Build a rating row as the rating flow would store it."""
    return Rating(
        unit_id=unit.id,
        channel="telegram",
        voter_hash=f"v{at.timestamp()}",
        overall=overall,
        created_at=at,
        **fields,
    )


async def procedure(s, code: str, name: str, unit: Unit) -> Procedure:
    """Add a procedure."""
    row = Procedure(code=code, name=name, unit_id=unit.id, created_at=f.T0, updated_at=f.T0)
    s.add(row)
    await s.flush()
    return row


@pytest.fixture
async def seeded(maker):
    """Two district offices; six ratings of PGD1 around the October–November boundary."""
    async with maker() as s:
        a = await f.unit(s, "PGD1", "Phòng GD&ĐT Đông Sơn", kind=UnitKind.DISTRICT_OFFICE)
        b = await f.unit(s, "PGD2", "Phòng GD&ĐT Hoằng Hóa", kind=UnitKind.DISTRICT_OFFICE)
        p1 = await procedure(s, "1.001", "Cấp bản sao văn bằng", a)
        p2 = await procedure(s, "1.002", "Chuyển trường", a)
        s.add_all(
            [
                rating(
                    a,
                    local(2026, 10, 31, 23, 30),
                    5,
                    procedure_id=p1.id,
                    officer=AN,
                    access=5,
                    procedure=4,
                ),
                rating(
                    a,
                    local(2026, 11, 1, 0, 30),
                    4,
                    procedure_id=p1.id,
                    officer="  nguyễn  văn AN ",
                    access=3,
                ),
                rating(
                    a, local(2026, 11, 10, 10, 0), 3, procedure_id=p2.id, officer="Trần Thị Bình"
                ),
                rating(a, local(2026, 11, 20, 9, 0), 2),
                rating(
                    a, local(2026, 11, 29, 23, 0), 1, procedure_id=p2.id, officer=" ", feedback=1
                ),
                rating(
                    a,
                    local(2026, 11, 30, 6, 30),
                    5,
                    procedure_id=p1.id,
                    officer=unicodedata.normalize("NFD", AN),
                ),
                rating(b, local(2026, 11, 15, 8, 0), 1),
                rating(a, local(2026, 9, 30, 23, 59), 1),  # before the period
            ]
        )
        await s.commit()
        return {"a": a, "b": b}


def head_of(unit: Unit) -> Actor:
    """Return a unit head of a unit."""
    return Actor(name="head", roles=frozenset({Role.UNIT_HEAD}), unit=unit)


async def run(maker, actor: Actor, unit_code: str | None = None, group: str = "week"):
    """Compute the statistics from 01/10/2026 (Hanoi) to the clock's now."""
    async with maker() as s:
        return await rating_stats.stats(
            s, actor=actor, unit_code=unit_code, since=SINCE, until=NOW, group=group, tz=HANOI
        )


async def test_levels_shares_and_folding(maker, seeded):
    result = await run(maker, head_of(seeded["a"]))
    assert result.unit.code == "PGD1"
    assert result.total == 6
    assert result.levels == {5: 2, 4: 1, 3: 1, 2: 1, 1: 1}
    assert [result.share(result.levels[v]) for v in (5, 4)] == [Decimal("33.3"), Decimal("16.7")]
    assert result.folded == {"satisfied": 3, "neutral": 1, "unsatisfied": 2}
    assert result.share(result.folded["satisfied"]) == Decimal("50.0")


async def test_elements_ignore_skipped_answers(maker, seeded):
    result = await run(maker, head_of(seeded["a"]))
    assert result.elements["access"] == Tally(2, 8, 1)
    assert result.elements["access"].average == Decimal("4.00")
    assert result.elements["procedure"].average == Decimal("4.00")
    assert result.elements["feedback"] == Tally(1, 1, 0)
    assert result.elements["officer_score"].count == 0
    assert result.elements["result"].average is None


async def test_per_procedure_and_per_officer(maker, seeded):
    result = await run(maker, head_of(seeded["a"]))
    procs = [(p.code, p.tally.count, p.tally.average) for p in result.procedures]
    assert procs == [
        ("1.001", 3, Decimal("4.67")),
        ("1.002", 2, Decimal("2.00")),
        (None, 1, Decimal("2.00")),
    ]
    assert result.procedures[0].tally.satisfied_share == Decimal("100.0")
    officers = [(o.name, o.tally.count, o.tally.average) for o in result.officers]
    assert officers == [(AN, 3, Decimal("4.67")), ("Trần Thị Bình", 1, Decimal("3.00"))]


async def test_weekly_trend_in_hanoi_time(maker, seeded):
    result = await run(maker, head_of(seeded["a"]))
    weeks = {r.start: r.tally.count for r in result.trend}
    assert list(weeks)[:2] == [date(2026, 10, 1), date(2026, 10, 5)]
    assert weeks[date(2026, 10, 26)] == 2
    assert weeks[date(2026, 11, 23)] == 1  # Sunday 23:00 in Hanoi
    assert weeks[date(2026, 11, 30)] == 1  # Monday 06:30 in Hanoi, still Sunday in UTC
    assert sum(weeks.values()) == 6
    assert len(weeks) == 10


async def test_monthly_trend_across_the_month_boundary(maker, seeded):
    result = await run(maker, head_of(seeded["a"]), group="month")
    rows = [
        (r.start, r.tally.count, r.tally.average, r.tally.satisfied_share) for r in result.trend
    ]
    assert rows == [
        (date(2026, 10, 1), 1, Decimal("5.00"), Decimal("100.0")),
        (date(2026, 11, 1), 5, Decimal("3.00"), Decimal("40.0")),
    ]


async def test_scope_of_heads_and_leaders(maker, seeded):
    with pytest.raises(PermissionDenied) as refused:
        await run(maker, head_of(seeded["a"]), "PGD2")
    assert refused.value.key == "errors.forbidden_unit"
    staff = Actor(name="staff", roles=frozenset({Role.STAFF}), unit=seeded["a"])
    with pytest.raises(PermissionDenied) as denied:
        await run(maker, staff)
    assert denied.value.key == "errors.forbidden"
    leader = Actor(name="leader", roles=frozenset({Role.LEADER}))
    everything = await run(maker, leader)
    assert everything.unit is None
    assert everything.total == 7
    assert (await run(maker, leader, "pgd2")).total == 1


def test_periods():
    week = rating_stats.parse_period("7d", now=NOW, tz=HANOI)
    assert (week.since, week.until, week.group) == (local(2026, 11, 24), NOW, "week")
    assert rating_stats.parse_period(None, now=NOW, tz=HANOI).since == local(2026, 11, 1)
    assert rating_stats.parse_period("month", now=NOW, tz=HANOI).since == local(2026, 11, 1)
    year = rating_stats.parse_period("year", now=NOW, tz=HANOI)
    assert (year.since, year.group) == (local(2026, 1, 1), "month")
    typed = rating_stats.parse_period("01/10/2026-31/10/2026", now=NOW, tz=HANOI)
    assert (typed.since, typed.until) == (local(2026, 10, 1), local(2026, 11, 1))
    for bad in ("45d", "31/02/2026-01/03/2026", "31/10/2026-01/10/2026", "01/01/2020-01/01/2026"):
        with pytest.raises(InvalidInput) as error:
            rating_stats.parse_period(bad, now=NOW, tz=HANOI)
        assert error.value.key == "errors.usage"


def test_officer_names_group_by_nfc_case_and_spaces():
    assert rating_stats.officer_key("  NGUYỄN   văn an ") == rating_stats.officer_key(
        unicodedata.normalize("NFD", AN)
    )


ADMIN, HEAD, STAFF = 7101, 7102, 7103


@pytest.fixture
async def org(bot_harness):
    """PGD1 with a head and a member of staff, an admin; three ratings of PGD1, one of PGD2."""
    async with bot_harness.maker() as s:
        root = await f.unit(s, "SGD", "Sở GD&ĐT", kind=UnitKind.DEPARTMENT)
        a = await f.unit(s, "PGD1", "Phòng Đông Sơn", kind=UnitKind.DISTRICT_OFFICE, parent=root)
        b = await f.unit(s, "PGD2", "Phòng Hoằng Hóa", kind=UnitKind.DISTRICT_OFFICE, parent=root)
        await f.contact(s, str(ADMIN), await f.person(s, "AD", root, Role.ADMIN))
        await f.contact(s, str(HEAD), await f.person(s, "HD", a, Role.UNIT_HEAD))
        await f.contact(s, str(STAFF), await f.person(s, "ST", a))
        s.add_all(
            [
                rating(a, local(2026, 11, 20, 9, 0), 5, officer="Lê Hoa", access=4),
                rating(a, local(2026, 11, 21, 9, 0), 5, officer="lê hoa"),
                rating(a, local(2026, 11, 22, 9, 0), 2, access=3),
                rating(b, local(2026, 11, 23, 9, 0), 1),
            ]
        )
        await s.commit()
    return bot_harness


async def test_head_sees_own_unit(org):
    (text,) = await org.send(HEAD, "/stats")
    assert "Phòng Đông Sơn" in text
    assert "Từ ngày 01/11/2026 đến ngày 30/11/2026: 3 lượt đánh giá." in text
    assert "• Rất hài lòng: 2 (66,7%)" in text
    assert "• Hài lòng (gồm Rất hài lòng): 2 (66,7%)" in text
    assert "• Tiếp cận dịch vụ: 3,50 điểm (2 lượt chấm)" in text
    assert "• Lê Hoa: 2 lượt, điểm trung bình 5,00, hài lòng 100,0%" in text
    assert "Tuần từ 23/11/2026: chưa có lượt đánh giá" in text
    assert await org.send(HEAD, "/stats PGD2") == [
        t("errors.forbidden_unit", "vi", unit="Phòng Hoằng Hóa")
    ]


async def test_admin_sees_all_units_and_staff_is_refused(org):
    (text,) = await org.send(ADMIN, "/stats 90d")
    assert t("stats.all_units", "vi") in text
    assert "4 lượt đánh giá" in text
    (other,) = await org.send(ADMIN, "/stats pgd2 month")
    assert "Phòng Hoằng Hóa" in other
    assert "1 lượt đánh giá" in other
    (empty,) = await org.send(ADMIN, "/stats PGD2 01/01/2026-31/01/2026")
    assert empty == t(
        "stats.empty", "vi", unit="Phòng Hoằng Hóa", since="01/01/2026", until="31/01/2026"
    )
    assert await org.send(STAFF, "/stats") == [t("errors.forbidden", "vi")]


async def test_bad_arguments_show_the_usage(org):
    usage = [t("errors.usage", "vi", usage=t("stats.usage", "vi"))]
    assert await org.send(HEAD, "/stats 45d") == usage
    assert await org.send(HEAD, "/stats 7d 30d") == usage
    assert await org.send(HEAD, "/stats PGD1 7d xlsx more") == usage


async def test_xlsx_is_queued_with_the_numbers(org):
    assert await org.send(HEAD, "/stats xlsx") == [t("stats.xlsx_queued", "vi")]
    async with org.maker() as s:
        report = (await s.exec(select(Outbox).where(Outbox.kind == "report"))).one()
        message = codec.loads(report.payload)
        attachment = await s.get(Attachment, message.attachment_id)
    assert report.chat_id == str(HEAD)
    assert message.key == "stats.xlsx_caption"
    assert attachment.file_name == "hai-long-PGD1-20261101-20261130.xlsx"
    book = load_workbook(BytesIO(attachment.data))
    assert book.sheetnames == ["Tổng hợp", "Yếu tố SIPAS", "Thủ tục", "Công chức", "Diễn biến"]
    summary = data_rows(book["Tổng hợp"])
    assert summary[0] == (1, "Rất hài lòng", 2, 0.667)
    assert summary[-1] == (None, "Tổng số", 3, 1.0)
    assert book["Tổng hợp"].cell(header_row(book["Tổng hợp"]) + 1, 4).number_format == "0.0%"
    officers = data_rows(book["Công chức"])
    assert officers == [(1, "Lê Hoa", 2, 5.0, 1.0)]
    elements = data_rows(book["Yếu tố SIPAS"])[:1]
    assert elements == [(1, "Tiếp cận dịch vụ", 2, 3.5, 0.5)]


async def test_leaders_see_a_table_per_unit_in_chat_and_in_the_xlsx(org):
    (text,) = await org.send(ADMIN, "/stats 90d")
    assert (
        "<b>Theo đơn vị</b>\n"
        "• Phòng Đông Sơn: 3 lượt, điểm trung bình 4,00, hài lòng 66,7%\n"
        "• Phòng Hoằng Hóa: 1 lượt, điểm trung bình 1,00, hài lòng 0,0%\n"
        "• Sở GD&amp;ĐT: chưa có lượt đánh giá"
    ) in text
    (head,) = await org.send(HEAD, "/stats 90d")
    assert "Theo đơn vị" not in head
    assert await org.send(ADMIN, "/stats 90d xlsx") == [t("stats.xlsx_queued", "vi")]
    async with org.maker() as s:
        report = (await s.exec(select(Outbox).where(Outbox.kind == "report"))).one()
        attachment = await s.get(Attachment, codec.loads(report.payload).attachment_id)
    book = load_workbook(BytesIO(attachment.data))
    assert "Đơn vị" in book.sheetnames
    assert data_rows(book["Đơn vị"]) == [
        (1, "PGD1", "Phòng Đông Sơn", 3, 4.0, 0.667),
        (2, "PGD2", "Phòng Hoằng Hóa", 1, 1.0, 0.0),
        (3, "SGD", "Sở GD&ĐT", 0, None, None),
        (None, None, "Tổng số", 4, 3.25, 0.5),
    ]
