"""The citizen's rating flow, on every path: buttons, typed answers, back, cancel, expiry."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta

import pytest
from sqlmodel import select

import handlers.router  # noqa: F401
from bot.i18n import t
from bot.messages import codec
from bot.models import (
    Dossier,
    DossierStatus,
    Flow,
    Outbox,
    Procedure,
    Rating,
    Role,
    ServiceCounter,
    UnitKind,
)
from bot.services.ratings.service_points import payload_for_counter, payload_for_procedure
from tests import factories as f

CITIZEN, OTHER, HEAD = 9501, 9502, 9503
T0 = datetime(2026, 11, 1, tzinfo=UTC)


@pytest.fixture
async def point(bot_harness):
    """A one-stop desk with a counter, a procedure, a dossier, and the unit's head."""
    async with bot_harness.maker() as s:
        root = await f.unit(s, "SGD", "Sở GD&ĐT", kind=UnitKind.DEPARTMENT)
        desk = await f.unit(s, "MOTCUA", "Bộ phận Một cửa", kind=UnitKind.ONE_STOP, parent=root)
        await f.contact(s, str(HEAD), await f.person(s, "HD", desk, Role.UNIT_HEAD))
        s.add(
            ServiceCounter(code="Q1", name="Quầy 1", unit_id=desk.id, created_at=T0, updated_at=T0)
        )
        proc = Procedure(
            code="1.005092",
            name="Cấp bản sao văn bằng",
            unit_id=desk.id,
            created_at=T0,
            updated_at=T0,
        )
        s.add(proc)
        await s.flush()
        s.add(
            Dossier(
                code="HS-001",
                procedure_id=proc.id,
                unit_id=desk.id,
                citizen_name="Nguyễn Văn Dân",
                phone="0912345678",
                received_on=date(2026, 11, 20),
                appointment_at=T0 + timedelta(days=30),
                status=DossierStatus.PROCESSING,
                created_at=T0,
                updated_at=T0,
            )
        )
        await s.commit()
    return bot_harness


async def stored(org) -> list[Rating]:
    async with org.maker() as s:
        return list((await s.exec(select(Rating))).all())


async def test_full_rating_with_buttons_alerts_the_head(point):
    greet = await point.send(CITIZEN, f"/start {payload_for_counter('Q1')}")
    assert "Bộ phận Một cửa" in greet[0]
    await point.choose(CITIZEN, "skip")
    await point.choose(CITIZEN, "lv2")
    for answer in ("lv5", "lv4", "skip", "lv1", "skip"):
        await point.choose(CITIZEN, answer)
    await point.send(CITIZEN, "Trần Văn Bộ")
    await point.choose(CITIZEN, "skip")
    assert await point.choose(CITIZEN, "phone") == [t("rating.ask_phone", "vi")]
    thanks = await point.send(CITIZEN, "0912 345 678")
    assert thanks[0] == t("rating.thanks", "vi")
    assert re.fullmatch(
        r"Thủ trưởng Bộ phận Một cửa sẽ xem xét và trả lời Ông/Bà trong \d+ ngày làm việc, "
        r"chậm nhất \d\d:\d\d \d\d/\d\d/\d{4}\.",
        thanks[1],
    )
    [rating] = await stored(point)
    assert (
        rating.overall,
        rating.access,
        rating.procedure,
        rating.officer_score,
        rating.result,
        rating.feedback,
    ) == (2, 5, 4, None, 1, None)
    assert (rating.officer, rating.comment, rating.phone) == ("Trần Văn Bộ", None, "0912345678")
    assert rating.contact_id is not None
    assert rating.counter_id is not None
    async with point.maker() as s:
        alert = (await s.exec(select(Outbox).where(Outbox.kind == "rating_alert"))).one()
    assert alert.chat_id == str(HEAD)
    assert codec.loads(alert.payload).params["level"].key == "rating.level.2"


async def test_typed_answers_back_and_anonymous(point):
    await point.send(CITIZEN, f"/start {payload_for_procedure('1.005092')}")
    await point.send(CITIZEN, "không")
    retry = await point.send(CITIZEN, "9")
    assert retry[0] == t("rating.error.level", "vi")
    await point.send(CITIZEN, "1")  # the number shown beside Rất không hài lòng
    await point.send(CITIZEN, "rất hài lòng")
    back = await point.send(CITIZEN, "quay lại")
    assert back[0].startswith("Tiêu chí 1/5")
    for answer in ("4", "bỏ qua", "3", "2", "1"):
        await point.send(CITIZEN, answer)
    await point.choose(CITIZEN, "skip")
    await point.send(CITIZEN, "Cán bộ <b>nhiệt tình</b>")
    thanks, follow_up = await point.send(CITIZEN, "ẩn danh")
    assert thanks == t("rating.thanks", "vi")
    assert "Vì Ông/Bà gửi ẩn danh, câu trả lời không thể gửi tới Ông/Bà" in follow_up
    [rating] = await stored(point)
    assert (
        rating.overall,
        rating.access,
        rating.procedure,
        rating.officer_score,
        rating.result,
        rating.feedback,
    ) == (1, 4, None, 3, 2, 1)
    assert rating.comment == "Cán bộ <b>nhiệt tình</b>"
    assert rating.contact_id is None
    assert rating.phone is None
    assert len(rating.voter_hash) == 64
    assert rating.procedure_id is not None


async def test_dossier_code_is_checked_and_rated_once(point):
    await point.send(CITIZEN, f"/start {payload_for_counter('Q1')}")
    unknown = await point.send(CITIZEN, "HS-999")
    assert unknown[0] == t("rating.error.unknown_dossier", "vi", code="HS-999")
    await point.send(CITIZEN, "hs-001")
    for _ in range(6):
        await point.send(CITIZEN, "1")
    await point.choose(CITIZEN, "skip")
    await point.choose(CITIZEN, "skip")
    await point.choose(CITIZEN, "anonymous")
    [rating] = await stored(point)
    assert rating.dossier_id is not None
    await point.send(OTHER, f"/start {payload_for_counter('Q1')}")
    again = await point.send(OTHER, "HS-001")
    assert again[0] == t("rating.error.dossier_rated", "vi", code="HS-001")


async def test_cancel_expiry_and_resume(point, clock):
    await point.send(CITIZEN, f"/start {payload_for_counter('Q1')}")
    await point.choose(CITIZEN, "skip")
    clock.advance(timedelta(minutes=20))
    resumed = await point.choose(CITIZEN, "lv4")
    assert resumed[0].startswith("Tiêu chí 1/5")
    clock.advance(timedelta(minutes=31))
    assert await point.choose(CITIZEN, "lv4") == [t("flow.expired", "vi")]
    await point.send(CITIZEN, f"/start {payload_for_counter('Q1')}")
    assert await point.choose(CITIZEN, "__cancel") == [t("flow.cancelled", "vi")]
    async with point.maker() as s:
        assert (await s.exec(select(Flow))).first() is None
    assert await stored(point) == []


async def test_daily_limit_and_bad_links(point):
    for _ in range(3):
        await point.send(CITIZEN, f"/start {payload_for_counter('Q1')}")
        await point.choose(CITIZEN, "skip")
        for _ in range(6):
            await point.send(CITIZEN, "2")
        await point.choose(CITIZEN, "skip")
        await point.choose(CITIZEN, "skip")
        await point.choose(CITIZEN, "anonymous")
    assert len(await stored(point)) == 3
    refused = await point.send(CITIZEN, f"/start {payload_for_counter('Q1')}")
    assert refused == [t("rating.error.limit", "vi", limit=3)]
    unknown = await point.send(OTHER, f"/start {payload_for_counter('Q9')}")
    assert unknown == [t("points.error.unknown_counter", "vi", code="Q9")]
    async with point.maker() as s:
        assert (await s.exec(select(Flow))).first() is None


@pytest.mark.parametrize("typed", ["Bỏ qua", "1", "Không có mã hồ sơ", "khong co ma ho so"])
async def test_dossier_step_takes_its_button_typed(point, typed):
    await point.send(CITIZEN, f"/start {payload_for_counter('Q1')}")
    assert await point.send(CITIZEN, typed) == [t("rating.ask_overall", "vi")]


@pytest.mark.parametrize("typed", ["1", "Gửi ẩn danh", "gui an danh", "ẩn danh"])
async def test_anonymity_step_takes_its_button_typed(point, typed):
    await point.send(CITIZEN, f"/start {payload_for_counter('Q1')}")
    for answer in ("bỏ qua", "4", "0", "0", "0", "0", "0", "bỏ qua", "bỏ qua"):
        await point.send(CITIZEN, answer)
    assert await point.send(CITIZEN, typed) == [t("rating.thanks", "vi")]
    [rating] = await stored(point)
    assert (rating.overall, rating.contact_id, rating.access) == (4, None, None)


async def test_a_typed_digit_is_the_number_shown_and_5_is_the_best(point):
    await point.send(CITIZEN, f"/start {payload_for_counter('Q1')}")
    await point.send(CITIZEN, "bỏ qua")
    [prompt] = point.api.sent()
    labels = [b["text"] for row in prompt["reply_markup"]["inline_keyboard"] for b in row]
    assert labels[0] == f"5. {t('rating.level_button.5', 'vi')}"
    assert labels[4] == f"1. {t('rating.level_button.1', 'vi')}"
    worst = point.shown(CITIZEN, "lv1")
    await point.send(CITIZEN, "5")
    for _ in range(5):
        await point.send(CITIZEN, "0")
    await point.send(CITIZEN, "bỏ qua")
    await point.send(CITIZEN, "bỏ qua")
    await point.send(CITIZEN, "1")
    [rating] = await stored(point)
    assert rating.overall == 5
    assert await point.press(CITIZEN, worst) == [t("flow.expired", "vi")]  # the flow is over
    async with point.maker() as s:
        assert (await s.exec(select(Outbox))).first() is None  # no complaint opened


async def test_first_step_lives_the_configured_minutes(point, clock):
    await point.send(CITIZEN, f"/start {payload_for_counter('Q1')}")
    skip = point.shown(CITIZEN, "skip")
    clock.advance(timedelta(minutes=31))
    assert await point.press(CITIZEN, skip) == [t("flow.expired", "vi")]


async def test_buttons_of_passed_steps_do_not_act(point):
    await point.send(CITIZEN, f"/start {payload_for_counter('Q1')}")
    await point.choose(CITIZEN, "skip")
    overall_bad = point.shown(CITIZEN, "lv1")
    await point.choose(CITIZEN, "lv5")
    again = await point.press(CITIZEN, overall_bad)
    assert again[0] == t("flow.step_done", "vi")
    assert again[1].startswith("Tiêu chí 1/5")
    await point.send(CITIZEN, "/start")  # another flow's old button does not act either
    await point.send(CITIZEN, f"/start {payload_for_counter('Q1')}")
    assert (await point.press(CITIZEN, overall_bad))[0] == t("flow.step_done", "vi")
    async with point.maker() as s:
        flow = (await s.exec(select(Flow))).one()
    assert flow.step == "dossier"


async def test_the_salt_is_the_one_committed_whichever_process_made_it(tmp_path):
    from sqlmodel import SQLModel

    from bot.db import create_engine, session_maker, transaction
    from bot.models import InstallSecret
    from bot.services.ratings import ratings

    url = f"sqlite+aiosqlite:///{tmp_path / 'salt.db'}"
    first, second = create_engine(url), create_engine(url)  # two processes on one database
    async with first.begin() as conn:
        await conn.run_sync(SQLModel.metadata.create_all)
    try:
        async with session_maker(first)() as session:  # made, then rolled back
            session.add(InstallSecret(name="other", value="x"))
            await session.flush()  # the transaction is open (SQLite's driver begins it lazily)
            lost = await ratings.salt(session)
            assert await ratings.salt(session) == lost
            await session.rollback()
        async with transaction(session_maker(second)) as session:
            made = await ratings.salt(session)
        async with session_maker(first)() as session:
            assert await ratings.salt(session) == made != lost
        async with session_maker(first)() as session:
            assert (await session.get(InstallSecret, ratings.SALT)).value == made
            assert await ratings.salt(session) == made
    finally:
        await first.dispose()
        await second.dispose()
