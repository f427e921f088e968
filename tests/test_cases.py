"""Follow-up of bad ratings: the head answers, the citizen replies, the case closes or escalates."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlmodel import select

import handlers.router  # noqa: F401
from bot.i18n import t
from bot.messages import codec
from bot.models import CaseStatus, FollowUpCase, Outbox, Role, ServiceCounter, UnitKind
from bot.services.ratings import cases
from bot.services.ratings.service_points import payload_for_counter
from tests import factories as f

CITIZEN, HEAD, LEADER, OTHER_HEAD = 9701, 9702, 9703, 9704
T = datetime(2026, 11, 1, tzinfo=UTC)


@pytest.fixture
async def desk(bot_harness, clock):
    async with bot_harness.maker() as s:
        root = await f.unit(s, "SGD", "Sở", kind=UnitKind.DEPARTMENT)
        desk = await f.unit(s, "MOTCUA", "Bộ phận Một cửa", kind=UnitKind.ONE_STOP, parent=root)
        other = await f.unit(s, "PGD1", "Phòng 1", kind=UnitKind.DISTRICT_OFFICE, parent=root)
        await f.contact(s, str(HEAD), await f.person(s, "HD", desk, Role.UNIT_HEAD))
        await f.contact(s, str(OTHER_HEAD), await f.person(s, "H2", other, Role.UNIT_HEAD))
        await f.contact(s, str(LEADER), await f.person(s, "LD", root, Role.LEADER))
        s.add(
            ServiceCounter(
                code="Q1",
                name="Quầy 1",
                unit_id=desk.id,
                created_at=clock.now(),
                updated_at=clock.now(),
            )
        )
        await s.commit()
    return bot_harness


async def rate_badly(org, *, anonymous: bool, counter: str = "Q1") -> int:
    """Rate the desk 'Rất không hài lòng'; return the case opened."""
    await org.send(CITIZEN, f"/start {payload_for_counter(counter)}")
    await org.choose(CITIZEN, "skip")
    for _ in range(6):
        await org.send(CITIZEN, "1")  # the number shown beside «Rất không hài lòng»
    await org.choose(CITIZEN, "skip")
    await org.send(CITIZEN, "Phải chờ rất lâu")
    if anonymous:
        await org.choose(CITIZEN, "anonymous")
    else:
        await org.choose(CITIZEN, "phone")
        await org.send(CITIZEN, "0912345678")
    async with org.maker() as s:
        return (await s.exec(select(FollowUpCase))).one().id


async def test_head_answers_citizen_replies_and_the_case_closes(desk):
    case_id = await rate_badly(desk, anonymous=False)
    async with desk.maker() as s:
        alert = (await s.exec(select(Outbox).where(Outbox.kind == "rating_alert"))).one()
    buttons = [b.action for b in codec.loads(alert.payload).buttons[0]]
    assert buttons == [f"case:answer:{case_id}", f"case:close:{case_id}"]
    assert await desk.press(OTHER_HEAD, buttons[0]) == [t("errors.forbidden", "vi")]
    assert await desk.press(HEAD, buttons[0]) == [t("case.ask_answer", "vi")]
    assert await desk.send(HEAD, "Xin lỗi Ông/Bà, đơn vị đã bố trí thêm cán bộ.") == [
        t("case.answered", "vi", id=case_id)
    ]
    async with desk.maker() as s:
        rows = (await s.exec(select(Outbox).where(Outbox.kind == "case"))).all()
    assert [r.chat_id for r in rows] == [str(CITIZEN), str(CITIZEN)]
    answer, question = (codec.loads(r.payload) for r in sorted(rows, key=lambda r: r.id))
    assert answer.params["answer"] == "Xin lỗi Ông/Bà, đơn vị đã bố trí thêm cán bộ."
    assert (answer.buttons, question.key) == ((), "case.ask_settled")
    yes, no = (b.action for b in question.buttons[0])
    assert await desk.press(CITIZEN, no) == [t("case.thanks_not_settled", "vi")]
    assert desk.api.sent("editMessageText")  # the question is replaced, the answer stays
    for second in (yes, no):
        assert await desk.press(CITIZEN, second) == [
            t("case.error.already_replied", "vi", reply=t("case.settled_no", "vi"))
        ]
    async with desk.maker() as s:
        again = (
            await s.exec(select(Outbox).where(Outbox.chat_id == str(HEAD), Outbox.kind == "case"))
        ).one()
    assert codec.loads(again.payload).key == "case.not_settled"
    await desk.press(HEAD, buttons[1])
    assert await desk.send(HEAD, "Đã họp rút kinh nghiệm") == [
        t("case.closed_on_time", "vi", id=case_id)
    ]
    async with desk.maker() as s:
        case = await s.get(FollowUpCase, case_id)
    assert (case.status, case.citizen_settled, case.close_note) == (
        CaseStatus.CLOSED,
        False,
        "Đã họp rút kinh nghiệm",
    )
    assert case.answered_at is not None


async def test_bad_rating_of_a_unit_without_a_linked_head_goes_to_the_admins(desk):
    async with desk.maker() as s:
        unit = await f.unit(s, "MC2", "Bộ phận Một cửa 2", kind=UnitKind.ONE_STOP)
        await f.contact(s, "9799", await f.person(s, "AD", unit, Role.ADMIN))
        s.add(ServiceCounter(code="Q2", name="Quầy 2", unit_id=unit.id, created_at=T, updated_at=T))
        await s.commit()
    case_id = await rate_badly(desk, anonymous=True, counter="Q2")
    async with desk.maker() as s:
        alert = (await s.exec(select(Outbox).where(Outbox.kind == "rating_alert"))).one()
    message = codec.loads(alert.payload)
    assert alert.chat_id == "9799"
    assert message.key == "routing.for_admins"
    assert message.params["unit"] == "Bộ phận Một cửa 2"
    assert message.params["message"].key == "rating.alert_head"
    assert [b.action for b in message.buttons[0]] == [f"case:close:{case_id}"]


async def test_anonymous_case_can_only_be_closed(desk):
    case_id = await rate_badly(desk, anonymous=True)
    async with desk.maker() as s:
        alert = (await s.exec(select(Outbox).where(Outbox.kind == "rating_alert"))).one()
    assert [b.action for b in codec.loads(alert.payload).buttons[0]] == [f"case:close:{case_id}"]
    assert await desk.press(HEAD, f"case:answer:{case_id}") == [t("case.error.anonymous", "vi")]


async def test_open_cases_past_due_escalate_once(desk, clock):
    case_id = await rate_badly(desk, anonymous=True)
    async with desk.maker() as s:
        assert await cases.escalate(s, now=clock.now()) == 0
        clock.advance(timedelta(days=10))
        assert await cases.escalate(s, now=clock.now()) == 1
        assert await cases.escalate(s, now=clock.now()) == 0
        await s.commit()
        rows = (await s.exec(select(Outbox).where(Outbox.kind == "case_escalation"))).all()
    assert [r.chat_id for r in rows] == [str(LEADER)]
    assert codec.loads(rows[0].payload).params["id"] == case_id
