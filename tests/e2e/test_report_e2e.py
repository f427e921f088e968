"""/report in the real bot process against the sandbox: the summary, the chart and the XLSX.

The XLSX is read from the sandbox's file store, where the bot uploaded it, and its figures are
checked against the rows seeded in the database.
"""

from __future__ import annotations

from datetime import timedelta
from io import BytesIO

import pytest
from openpyxl import load_workbook

from bot.clock import SystemClock
from bot.models import Rating, Role, UnitKind
from bot.services.ratings import daily
from bot.services.reports.xlsx import data_rows
from tests import factories as f

pytestmark = pytest.mark.e2e

ADMIN, HEAD = 820001, 820002
WAIT = 30.0


async def seed(db) -> None:
    """Two district offices rated this week (3 and 2 ratings), an admin and a head of the first."""
    now = SystemClock().now()
    async with db() as s:
        root = await f.unit(s, "SGD", "Sở Giáo dục và Đào tạo", kind=UnitKind.DEPARTMENT)
        east = await f.unit(s, "PGD1", "Phòng GD&ĐT Đông Sơn", kind=UnitKind.DISTRICT_OFFICE)
        west = await f.unit(s, "PGD2", "Phòng GD&ĐT Hoằng Hóa", kind=UnitKind.DISTRICT_OFFICE)
        await f.contact(s, str(ADMIN), await f.person(s, "AD", root, Role.ADMIN))
        await f.contact(s, str(HEAD), await f.person(s, "HD", east, Role.UNIT_HEAD))
        levels = [(east, 5), (east, 4), (east, 2), (west, 5), (west, 5)]
        ratings = [
            Rating(
                unit_id=unit.id,
                channel="telegram",
                voter_hash=f"e2e{n}",
                overall=level,
                created_at=now - timedelta(hours=n + 1),
            )
            for n, (unit, level) in enumerate(levels)
        ]
        s.add_all(ratings)
        await s.flush()
        await daily.add(s, ratings)
        await s.commit()


@pytest.mark.parametrize("mode", ["polling"])
async def test_report_sends_a_summary_a_chart_and_an_xlsx_matching_the_database(
    bot_runner, sandbox, db, mode
):
    await seed(db)
    for uid in (ADMIN, HEAD):
        sandbox.create_user(f"Người dùng {uid}", user_id=uid)
    await bot_runner.start(mode, env={"REFORMBOT_REPORTS__MIN_RATINGS": "2"})
    sandbox.send_text(ADMIN, "/report 7d")
    summary, photo, document = await sandbox.wait_for_messages(ADMIN, 3, seconds=WAIT)
    assert "Tất cả các đơn vị" in summary["text"]
    assert (
        "1. Phòng GD&ĐT Hoằng Hóa: 100,00 điểm\n2. Phòng GD&ĐT Đông Sơn: 66,67 điểm"
        in (summary["text"])
    )
    assert "photo" in photo
    assert photo["caption"].startswith("Biểu đồ xếp hạng thi đua")
    assert document["document"]["file_name"].endswith(".xlsx")
    files = sandbox.sandbox.bot().files
    png = files.get(photo["photo"][-1]["file_id"])
    assert png is not None
    assert png.data.startswith(b"\x89PNG")
    xlsx = files.get(document["document"]["file_id"])
    assert xlsx is not None
    rows = data_rows(load_workbook(BytesIO(xlsx.data))["Thi đua"])
    # PGD2: 2 of 2 satisfied → 100; PGD1: 2 of 3 → 66.67; SGD: no ratings, not ranked.
    assert [r[1:4] for r in rows[:3]] == [
        ("Phòng GD&ĐT Hoằng Hóa", 100.0, 1),
        ("Phòng GD&ĐT Đông Sơn", 66.67, 2),
        ("Sở Giáo dục và Đào tạo", None, "Chưa đủ lượt đánh giá"),
    ]
    assert rows[-1][13:15] == (5, 0.8)  # 5 ratings, 80,0 % satisfied, in the totals row

    sandbox.send_text(HEAD, "/report PGD2")
    (refusal,) = await sandbox.wait_for_messages(HEAD, 1, seconds=WAIT)
    assert "Hoằng Hóa" in refusal["text"]
    assert "không được xem" in refusal["text"]
