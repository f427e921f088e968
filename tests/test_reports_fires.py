"""Once per cron fire: the marker the digests and the monthly report share."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest

from bot.models import JobLease
from bot.services.reports import fires

TZ = ZoneInfo("Asia/Ho_Chi_Minh")
MONTHLY = "0 8 1 * *"


def hanoi(text: str) -> datetime:
    return datetime.fromisoformat(text + "+07:00").astimezone(UTC)


async def test_two_processes_claim_one_fire_once(maker):
    fire = hanoi("2026-12-07 07:30")
    async with maker() as first:
        assert await fires.claim(first, "digest:weekly", fire, owner="digest")
        await first.commit()
    async with maker() as second:
        assert not await fires.claim(second, "digest:weekly", fire, owner="digest")
        assert await fires.claim(second, "digest:weekly", hanoi("2026-12-14 07:30"), owner="x")
        await second.commit()


async def due(maker, marker: str, now: str, cron: str) -> datetime | None:
    async with maker() as s:
        fire = await fires.due_fire(
            s, marker=marker, owner="test", now=hanoi(now), cron=cron, tz=TZ
        )
        await s.commit()
    return fire


async def test_each_marker_keeps_its_own_fire(maker):
    assert await due(maker, "report:monthly", "2027-01-01 08:05", MONTHLY) == hanoi(
        "2027-01-01 08:00"
    )
    assert await due(maker, "digest:weekly", "2027-01-04 07:30", "30 7 * * mon") is not None
    assert await due(maker, "report:monthly", "2027-01-04 07:30", MONTHLY) is None
    async with maker() as s:
        monthly = await s.get(JobLease, "report:monthly")
    assert monthly.expires_at == hanoi("2027-01-01 08:00")


async def test_a_job_that_fails_leaves_its_fire_to_the_next_try(maker):
    async with maker() as s:
        assert await fires.due_fire(
            s,
            marker="report:monthly",
            owner="t",
            now=hanoi("2027-01-01 08:00"),
            cron=MONTHLY,
            tz=TZ,
        )
        await s.rollback()
    assert await due(maker, "report:monthly", "2027-01-01 08:01", MONTHLY) is not None


@pytest.mark.parametrize("cron", ["30 7 * * 1", "30 7 * * mon"])
def test_latest_fire_reads_crontab_days(cron):
    fire = fires.latest_fire(
        cron, TZ, after=hanoi("2026-12-06 00:00"), until=hanoi("2026-12-08 00:00")
    )
    assert fire == hanoi("2026-12-07 07:30")
