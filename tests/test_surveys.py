"""Survey campaigns: launching, answering in chat, privacy, reminders, results, permissions."""

from __future__ import annotations

import io
import json
import os
from datetime import timedelta
from pathlib import Path

import pytest
from openpyxl import load_workbook
from sqlmodel import col, func, select

import handlers.router  # noqa: F401
from bot.channels.render import render
from bot.i18n import t
from bot.messages import codec
from bot.models import (
    Campaign,
    CampaignRecipient,
    CampaignStatus,
    Channel,
    Contact,
    Flow,
    Outbox,
    Person,
    Questionnaire,
    Role,
    SurveyResponse,
    Unit,
    UnitKind,
)
from bot.services.calendar import WorkCalendar
from bot.services.errors import InvalidInput, NotFound, PermissionDenied
from bot.services.org.access import Actor, system_actor
from bot.services.surveys import answers, campaigns, questionnaire, results, summary
from bot.services.surveys.answers import Respondent
from tests import factories as f

ADMIN, HEAD, OUTSIDER = 9000, 9100, 9300
ROOT_EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "survey_par_index.toml"
STAFF1 = [9101, 9102, 9103, 9104, 9105, 9106]
STAFF2 = [9201, 9202]
SYSTEM = system_actor("test")
CAL = WorkCalendar()
FORM = """
code = "T1"
title = "Khảo sát thử"
intro = "Bốn câu hỏi."

[[question]]
id = "Q1"
area = "Văn bản"
text = "Có gặp văn bản chồng chéo không?"
type = "yes_no"

[[question]]
id = "Q2"
area = "Văn bản"
text = "Văn bản nào?"
type = "text"
optional = true
when = { question = "Q1", is = ["Có"] }

[[question]]
id = "Q3"
area = "Một cửa"
text = "Chấm điểm một cửa"
type = "scale"
scale = 5
low = "Rất kém"
high = "Rất tốt"

[[question]]
id = "Q4"
area = "Hiện đại hóa"
text = "Kênh nào?"
type = "multiple"
options = ["Zalo", "Telegram", "Thư điện tử"]
"""


def form(code: str = "T1") -> questionnaire.Definition:
    """Return the test questionnaire, under a code."""
    checked = questionnaire.check(
        {"code": code, "title": "Khảo sát thử", "intro": "Bốn câu hỏi."},
        [
            (
                1,
                {
                    "id": "Q1",
                    "area": "Văn bản",
                    "text": "Có gặp văn bản chồng chéo không?",
                    "type": "yes_no",
                },
            ),
            (
                2,
                {
                    "id": "Q2",
                    "area": "Văn bản",
                    "text": "Văn bản nào?",
                    "type": "text",
                    "optional": True,
                    "when": {"question": "Q1", "is": ["Có"]},
                },
            ),
            (
                3,
                {
                    "id": "Q3",
                    "area": "Một cửa",
                    "text": "Chấm điểm một cửa",
                    "type": "scale",
                    "scale": 5,
                    "low": "Rất kém",
                    "high": "Rất tốt",
                },
            ),
            (
                4,
                {
                    "id": "Q4",
                    "area": "Hiện đại hóa",
                    "text": "Kênh nào?",
                    "type": "multiple",
                    "options": ["Zalo", "Telegram", "Thư điện tử"],
                },
            ),
        ],
    )
    assert checked.definition is not None, checked.problems
    return checked.definition


@pytest.fixture
async def org(bot_harness):
    """Two units: U1 with a head and six staff, U2 with two; an admin; one person outside both."""
    async with bot_harness.maker() as s:
        root = await f.unit(s, "SGD", "Sở GD&ĐT", kind=UnitKind.DEPARTMENT)
        u1 = await f.unit(s, "U1", "Phòng Tổ chức", parent=root)
        u2 = await f.unit(s, "U2", "UBND xã Đông Sơn", kind=UnitKind.COMMUNE, parent=root)
        await f.contact(s, str(ADMIN), await f.person(s, "AD", root, Role.ADMIN, name="Quản Trị"))
        await f.contact(s, str(HEAD), await f.person(s, "HD", u1, Role.UNIT_HEAD, name="Hạnh"))
        for i, uid in enumerate(STAFF1):
            await f.contact(s, str(uid), await f.person(s, f"S1{i}", u1))
        for i, uid in enumerate(STAFF2):
            await f.contact(s, str(uid), await f.person(s, f"S2{i}", u2))
        await f.contact(s, str(OUTSIDER), await f.person(s, "OUT", root))
        for code in ("T1", "T2"):
            await questionnaire.save(s, form(code), actor=SYSTEM, now=f.T0)
        await s.commit()
    return bot_harness


async def launch(harness, clock, audience="units:U1,U2", **kw) -> int:
    """Launch a campaign of T1 now, closing in a week; return its id."""
    draft = campaigns.Draft(
        title=kw.pop("title", "Khảo sát thử"),
        audience=campaigns.Audience.parse(audience),
        opens_at=kw.pop("opens_at", clock.now()),
        closes_at=kw.pop("closes_at", clock.now() + timedelta(days=7)),
        questionnaire=kw.pop("questionnaire", "T1"),
        **kw,
    )
    async with harness.maker() as s:
        campaign = await campaigns.launch(s, draft, actor=SYSTEM, now=clock.now())
        await s.commit()
        assert campaign.id is not None
        return campaign.id


async def answer_as(harness, clock, campaign_id, person_code, given) -> None:
    """Store one person's complete answers through the service."""
    async with harness.maker() as s:
        person = (await s.exec(select(Person).where(Person.code == person_code))).one()
        campaign = await s.get(Campaign, campaign_id)
        who = Respondent(person.id, None)
        row = await campaigns.recipient(s, campaign, person_id=person.id, contact_id=None)
        await answers.save(s, campaign, row, who, given, now=clock.now(), complete=True)
        await s.commit()


async def close(harness, clock, campaign_id) -> None:
    """Close a campaign as the system."""
    async with harness.maker() as s:
        await campaigns.close(s, campaign_id, actor=SYSTEM, now=clock.now())
        await s.commit()


async def results_in_chat(harness, uid: int, command: str) -> list[str]:
    """Send a results command; return what the chat gets: the replies, then the summary queued
    ahead of its chart (where the channel takes files), rendered."""
    async with harness.maker() as s:
        last = (await s.exec(select(func.max(Outbox.id)))).one() or 0
    texts = await harness.send(uid, command)
    async with harness.maker() as s:
        queued = (
            await s.exec(
                select(Outbox)
                .where(Outbox.id > last, Outbox.chat_id == str(uid))
                .order_by(col(Outbox.id))
            )
        ).all()
    messages = [codec.loads(r.payload) for r in queued]
    return texts + [render(m, "vi") for m in messages if m.attachment_id is None]


async def rows(harness, model, *where):
    """Return the rows of a table."""
    async with harness.maker() as s:
        return list((await s.exec(select(model).where(*where))).all())


# Launching


async def test_a_campaign_goes_to_its_units_or_roles_only(org, clock):
    first = await launch(org, clock)
    invites = await rows(org, Outbox, Outbox.kind == campaigns.KIND_INVITE, Outbox.ref_id == first)
    assert sorted(int(r.chat_id) for r in invites) == sorted([HEAD, *STAFF1, *STAFF2])
    heads = await launch(org, clock, audience="roles:Thủ trưởng")
    invites = await rows(org, Outbox, Outbox.kind == campaigns.KIND_INVITE, Outbox.ref_id == heads)
    assert [int(r.chat_id) for r in invites] == [HEAD]
    payload = json.loads(invites[0].payload)
    assert "survey:" in json.dumps(payload)


async def test_a_bad_audience_unknown_questionnaire_or_bad_dates_are_refused(org, clock):
    for text in ("", "units:", "mọi người", "roles:vua", "raters:U1;all"):
        with pytest.raises(InvalidInput) as err:
            campaigns.Audience.parse(text)
        assert err.value.key == "survey.error.audience"
    with pytest.raises(NotFound) as err:
        await launch(org, clock, questionnaire="NONE")
    assert err.value.key == "survey.error.no_questionnaire"
    with pytest.raises(InvalidInput) as err:
        await launch(org, clock, closes_at=clock.now() - timedelta(days=1))
    assert err.value.key == "survey.error.dates"
    with pytest.raises(NotFound) as err:
        await launch(org, clock, audience="units:NOPE")
    assert err.value.key == "directive.error.unknown_units"


async def test_only_an_admin_launches_or_closes(org, clock):
    staff = Actor(name="x", roles=frozenset({Role.STAFF, Role.UNIT_HEAD, Role.LEADER}))
    draft = campaigns.Draft(
        "X", campaigns.Audience(everyone=True), clock.now(), clock.now() + timedelta(days=1), "T1"
    )
    async with org.maker() as s:
        with pytest.raises(PermissionDenied):
            await campaigns.launch(s, draft, actor=staff, now=clock.now())
    campaign_id = await launch(org, clock)
    assert await org.send(HEAD, f"/survey_close {campaign_id}") == [t("errors.forbidden", "vi")]


# Answering in chat


async def test_answering_in_chat_with_a_condition_back_typed_numbers_and_multiple_choice(
    org, clock
):
    campaign_id = await launch(org, clock)
    uid = STAFF1[0]
    texts = await org.press(uid, f"survey:{campaign_id}")
    assert "Gồm 3 câu hỏi" in texts[0]
    assert texts[1].startswith("Câu 1/3 – Văn bản")
    texts = await org.choose(uid, "vyes")
    assert texts[0].startswith("Câu 2/4 – Văn bản")
    assert "Văn bản nào?" in texts[0]
    texts = await org.choose(uid, "__back")
    assert texts[0].startswith("Câu 1/4")
    texts = await org.choose(uid, "vno")
    assert texts[0].startswith("Câu 2/3 – Một cửa")
    texts = await org.send(uid, "4")
    assert texts[0].startswith("Câu 3/3 – Hiện đại hóa")
    texts = await org.choose(uid, "o1")
    assert texts[0] == "Đã chọn: Zalo."
    texts = await org.choose(uid, "o3")
    assert texts[0] == "Đã chọn: Zalo, Thư điện tử."
    texts = await org.choose(uid, "done")
    assert texts[0].startswith("Trân trọng cảm ơn đồng chí đã trả lời «Khảo sát thử»")
    (row,) = await rows(org, SurveyResponse)
    assert json.loads(row.answers) == {"Q1": "no", "Q3": "4", "Q4": ["1", "3"]}
    assert row.complete
    (done,) = await rows(org, CampaignRecipient, CampaignRecipient.done)
    assert done.person_id is not None


async def test_typed_numbers_for_several_options_and_cancel(org, clock):
    campaign_id = await launch(org, clock)
    uid = STAFF1[1]
    await org.press(uid, f"survey:{campaign_id}")
    await org.send(uid, "2")  # Không
    await org.send(uid, "5")
    texts = await org.send(uid, "1, 2")
    assert texts[0].startswith("Trân trọng cảm ơn")
    (row,) = await rows(org, SurveyResponse)
    assert json.loads(row.answers) == {"Q1": "no", "Q3": "5", "Q4": ["1", "2"]}
    await org.press(uid, f"survey:{campaign_id}")
    assert await org.send(uid, "hủy") == [t("flow.cancelled", "vi")]
    assert await rows(org, Flow) == []


async def test_a_person_outside_the_audience_cannot_answer(org, clock):
    campaign_id = await launch(org, clock)
    texts = await org.press(OUTSIDER, f"survey:{campaign_id}")
    assert texts == [t("survey.error.not_asked", "vi", title="Khảo sát thử")]
    assert await org.send(OUTSIDER, "/survey") == [t("survey.none_open", "vi")]


async def test_the_recipient_row_is_found_by_its_person_and_never_without_one(org, clock):
    campaign_id = await launch(org, clock)
    async with org.maker() as s:
        campaign = await s.get(Campaign, campaign_id)
        staff = (await s.exec(select(Person).where(Person.code == "S10"))).one()
        outsider = (await s.exec(select(Person).where(Person.code == "OUT"))).one()
        row = await campaigns.recipient(s, campaign, person_id=staff.id, contact_id=None)
        assert (row.campaign_id, row.person_id, row.contact_id) == (campaign_id, staff.id, None)
        for person_id in (outsider.id, None):  # no ids: no staff row, though theirs hold no chat
            with pytest.raises(InvalidInput) as refused:
                await campaigns.recipient(s, campaign, person_id=person_id, contact_id=None)
            assert refused.value.key == "survey.error.not_asked"


async def test_a_break_resumes_at_the_question_left_and_back_still_works(org, clock):
    campaign_id = await launch(org, clock)
    uid = STAFF1[2]
    await org.press(uid, f"survey:{campaign_id}")
    await org.choose(uid, "vyes")
    await org.send(uid, "Công văn 12")
    (flow,) = await rows(org, Flow)
    assert "Công văn 12" not in flow.data  # answers are kept with the answer, not the chat
    assert "yes" not in flow.data
    clock.advance(timedelta(hours=73))  # the conversation expired; the answers were kept
    texts = await org.press(uid, f"survey:{campaign_id}")
    assert texts[0] == t("survey.flow.resumed", "vi")
    assert texts[1].startswith("Câu 3/4 – Một cửa")
    texts = await org.choose(uid, "__back")
    assert texts[0].startswith("Câu 2/4")
    assert "Câu trả lời hiện tại: Công văn 12" in texts[0]
    texts = await org.send(uid, "/survey")  # the open conversation is offered again
    texts = await org.press(uid, f"survey:{campaign_id}")
    assert texts[0] == t("survey.flow.resumed", "vi")
    assert texts[1].startswith("Câu 2/4")


async def test_a_skipped_optional_question_is_not_asked_again_after_a_break(org, clock):
    campaign_id = await launch(org, clock)
    uid = STAFF1[3]
    await org.press(uid, f"survey:{campaign_id}")
    await org.choose(uid, "vyes")
    texts = await org.choose(uid, "skip")  # Q2 is optional: skipped
    assert texts[0].startswith("Câu 3/4 – Một cửa")
    (row,) = await rows(org, SurveyResponse)
    assert json.loads(row.answers) == {"Q1": "yes", "Q2": None}  # the skip, in the hashed row
    assert row.person_id is None
    (flow,) = await rows(org, Flow)
    assert "Q2" not in flow.data
    clock.advance(timedelta(hours=73))
    texts = await org.press(uid, f"survey:{campaign_id}")
    assert texts[0] == t("survey.flow.resumed", "vi")
    assert texts[1].startswith("Câu 3/4 – Một cửa")  # goes on after the skip
    texts = await org.choose(uid, "__back")
    assert texts[0].startswith("Câu 2/4")
    assert "Câu trả lời hiện tại" not in texts[0]
    await org.choose(uid, "skip")
    await org.send(uid, "4")
    texts = await org.send(uid, "1, 2")
    assert texts[0].startswith("Trân trọng cảm ơn")
    (row,) = await rows(org, SurveyResponse)
    assert json.loads(row.answers) == {"Q1": "yes", "Q2": None, "Q3": "4", "Q4": ["1", "2"]}
    assert row.complete
    for i in range(5):
        await answer_as(org, clock, campaign_id, f"S1{i}", {"Q1": "no", "Q3": "4", "Q4": ["1"]})
    await close(org, clock, campaign_id)
    async with org.maker() as s:
        res = await results.results(s, campaign_id, actor=SYSTEM)
    q2 = res.overall.questions[1]
    assert (q2.answered, q2.texts) == (0, [])  # a skip is no answer


async def test_answers_change_until_the_close_then_no_more(org, clock):
    campaign_id = await launch(org, clock)
    uid = STAFF1[3]
    await org.press(uid, f"survey:{campaign_id}")
    for value in ("vno", "v2"):
        await org.choose(uid, value)
    await org.send(uid, "3")
    await org.choose(uid, "done")
    texts = await org.press(uid, f"survey:{campaign_id}")
    assert texts[0].startswith("Phiếu «Khảo sát thử» đã được hoàn thành")
    assert "Câu trả lời hiện tại: Không" in texts[1]
    await org.choose(uid, "vyes")
    await org.send(uid, "Quyết định 5")
    texts = await org.send(uid, "5")
    assert "Câu trả lời hiện tại: Thư điện tử" in texts[0]
    texts = await org.choose(uid, "keep")
    assert texts[0].startswith("Trân trọng cảm ơn")
    (row,) = await rows(org, SurveyResponse)
    assert json.loads(row.answers) == {"Q1": "yes", "Q2": "Quyết định 5", "Q3": "5", "Q4": ["3"]}
    await close(org, clock, campaign_id)
    texts = await org.press(uid, f"survey:{campaign_id}")
    assert texts == [t("survey.error.not_open", "vi", title="Khảo sát thử")]


async def test_a_changed_answer_drops_the_answers_its_condition_no_longer_asks(org, clock):
    campaign_id = await launch(org, clock)
    await answer_as(
        org, clock, campaign_id, "S10", {"Q1": "yes", "Q2": "Văn bản A", "Q3": "3", "Q4": ["1"]}
    )
    await answer_as(
        org, clock, campaign_id, "S10", {"Q1": "no", "Q2": "Văn bản A", "Q3": "3", "Q4": ["1"]}
    )
    (row,) = await rows(org, SurveyResponse)
    assert json.loads(row.answers) == {"Q1": "no", "Q3": "3", "Q4": ["1"]}


# Privacy


async def test_an_anonymous_answer_names_no_one_and_its_salt_goes_at_the_close(org, clock):
    campaign_id = await launch(org, clock)
    await answer_as(org, clock, campaign_id, "S10", {"Q1": "no", "Q3": "3", "Q4": ["1"]})
    (row,) = await rows(org, SurveyResponse)
    (person,) = await rows(org, Person, Person.code == "S10")
    assert row.person_id is None
    assert row.answered_at is None
    assert row.voter_hash != f"p:{person.id}"
    assert len(bytes.fromhex(row.voter_hash)) == 32
    assert len(row.id) == 32
    assert not row.id.isdigit()
    await answer_as(org, clock, campaign_id, "S10", {"Q1": "no", "Q3": "4", "Q4": ["1"]})
    assert len(await rows(org, SurveyResponse)) == 1  # the hash lets one person answer once
    await close(org, clock, campaign_id)
    (campaign,) = await rows(org, Campaign)
    assert campaign.salt is None


async def test_a_named_answer_holds_the_person_and_time(org, clock):
    campaign_id = await launch(org, clock, anonymous=False)
    await answer_as(org, clock, campaign_id, "S10", {"Q1": "no", "Q3": "3", "Q4": ["1"]})
    (row,) = await rows(org, SurveyResponse)
    (person,) = await rows(org, Person, Person.code == "S10")
    assert row.person_id == person.id
    assert row.answered_at == clock.now()


async def test_results_stay_hidden_from_admins_until_the_close(org, clock):
    campaign_id = await launch(org, clock)
    for i in range(5):
        await answer_as(org, clock, campaign_id, f"S1{i}", {"Q1": "no", "Q3": "4", "Q4": ["1"]})
    texts = await results_in_chat(org, ADMIN, f"/results {campaign_id}")
    assert texts[0].startswith("Kết quả «Khảo sát thử» chỉ được xem sau khi đợt khảo sát kết thúc")
    async with org.maker() as s:
        with pytest.raises(PermissionDenied):
            await results.results(s, campaign_id, actor=SYSTEM)
    texts = await org.send(ADMIN, f"/survey_close {campaign_id}")
    assert texts[0].startswith("Đã kết thúc đợt «Khảo sát thử»")
    texts = await results_in_chat(org, ADMIN, f"/results {campaign_id}")
    assert "Số phiếu hoàn thành: 5" in texts[0]
    assert "Không: ██████████ 100% (5)" in texts[0]
    open_id = await launch(org, clock, results_open=True)
    for i in range(5):
        await answer_as(org, clock, open_id, f"S1{i}", {"Q1": "no", "Q3": "4", "Q4": ["1"]})
    assert "Số phiếu hoàn thành: 5" in (await results_in_chat(org, ADMIN, f"/results {open_id}"))[0]


async def test_small_groups_are_never_shown_or_exported(org, clock):
    campaign_id = await launch(org, clock)
    for i in range(6):
        await answer_as(
            org,
            clock,
            campaign_id,
            f"S1{i}",
            {"Q1": "yes", "Q2": f"Ý kiến {5 - i}", "Q3": "4", "Q4": ["1"]},
        )
    await answer_as(org, clock, campaign_id, "S20", {"Q1": "no", "Q3": "1", "Q4": ["3"]})
    await close(org, clock, campaign_id)
    async with org.maker() as s:
        res = await results.results(s, campaign_id, actor=SYSTEM)
    assert res.overall.respondents == 7
    assert not res.overall.hidden
    # U2's single answer could be worked out from the total minus U1: both are held back
    assert [(g.name, g.hidden, g.questions) for g in res.units] == [
        ("Phòng Tổ chức", True, []),
        ("UBND xã Đông Sơn", True, []),
    ]
    # the chat says which is too small and which is held back with it
    shown = render(summary.results_message(res), "vi")
    assert t("survey.result_unit_held_back", "vi", unit="Phòng Tổ chức") in shown
    assert t("survey.result_unit_hidden", "vi", unit="UBND xã Đông Sơn") in shown
    q2 = res.overall.questions[1]
    assert q2.texts == sorted(q2.texts)
    assert len(q2.texts) == 6
    data = load_workbook(io.BytesIO(results.workbook(res, locale="vi")))
    cells = [
        c for row in data.worksheets[0].iter_rows(values_only=True) for c in row if c is not None
    ]
    assert "Ít hơn 5 phiếu: không hiển thị" in cells
    assert (
        sum(
            1
            for row in data.worksheets[0].iter_rows(values_only=True)
            if row[3] == "UBND xã Đông Sơn"
        )
        == 1
    )
    texts = [row[2] for row in data.worksheets[1].iter_rows(min_row=2, values_only=True)]
    assert texts == sorted(f"Ý kiến {i}" for i in range(6))


async def test_a_whole_campaign_under_the_minimum_shows_nothing(org, clock):
    campaign_id = await launch(org, clock)
    for i in range(4):
        await answer_as(org, clock, campaign_id, f"S1{i}", {"Q1": "no", "Q3": "4", "Q4": ["1"]})
    await close(org, clock, campaign_id)
    texts = await results_in_chat(org, ADMIN, f"/results {campaign_id}")
    assert texts == [t("survey.results_too_few", "vi", title="Khảo sát thử", minimum=5)]


def test_a_unit_is_held_back_with_a_small_one_so_neither_can_be_worked_out():
    held = results._held_back
    assert held({1: 8, 2: 7, 3: 2}, 5) == {2, 3}
    assert held({1: 8, 2: 7, 3: 9}, 5) == set()
    assert held({1: 8, 2: 3, 3: 4}, 5) == {2, 3}
    assert held({1: 6, 2: 1}, 5) == {1, 2}


def test_a_question_is_held_back_with_a_small_one_so_neither_can_be_worked_out():
    def given(n: int, q2: int) -> list[dict[str, object]]:
        base = {"Q1": "yes", "Q3": "3", "Q4": ["1"]}
        return [{**base, "Q2": "ý kiến"} for _ in range(q2)] + [base] * (n - q2)

    rows = {1: given(6, 6), 2: given(6, 2), 3: given(7, 0), 4: given(3, 1), 5: given(2, 0)}
    hidden = results._held_back({u: len(r) for u, r in rows.items()}, 5)
    assert hidden == {4, 5}  # 3 + 2: together five, so the others are shown
    held = results._questions_held_back(form(), rows, hidden, 5)
    assert held[2] == {"Q2"}  # answered there by two
    assert held[1] == {"Q2"}  # 9 − 6 would give the others' three away (the hidden unit's one)
    assert held.get(3, frozenset()) <= {"Q2"}  # nobody answered it there: nothing to show
    held = results._questions_held_back(form(), {1: given(6, 6), 2: given(6, 0)}, set(), 5)
    assert held.get(1, frozenset()) == frozenset()  # 6 − 6 gives nobody away


async def test_a_question_few_answered_in_a_unit_is_hidden_there_and_where_it_gives_it_away(
    org, clock
):
    async with org.maker() as s:
        u2 = (await s.exec(select(Unit).where(Unit.code == "U2"))).one()
        for i in range(2, 5):
            await f.person(s, f"S2{i}", u2)
        await s.commit()
    campaign_id = await launch(org, clock)
    for i in range(6):
        given = {"Q1": "yes", "Q2": f"Ý kiến {i}", "Q3": "4", "Q4": ["1"]}
        await answer_as(org, clock, campaign_id, f"S1{i}", given)
    for i in range(5):
        given = {"Q1": "yes", "Q2": "Ý kiến xã"} if i < 2 else {"Q1": "no"}
        await answer_as(org, clock, campaign_id, f"S2{i}", {**given, "Q3": "2", "Q4": ["2"]})
    await close(org, clock, campaign_id)
    async with org.maker() as s:
        res = await results.results(s, campaign_id, actor=SYSTEM)
    assert res.overall.questions[1].texts == sorted(
        [f"Ý kiến {i}" for i in range(6)] + ["Ý kiến xã"] * 2
    )
    office, commune = res.units
    assert (office.hidden, office.respondents, commune.hidden, commune.respondents) == (
        False,
        6,
        False,
        5,
    )
    shown = {
        g.name: {
            q.question.id: (q.answered, q.hidden, q.held_back, dict(q.counts)) for q in g.questions
        }
        for g in res.units
    }
    assert shown["UBND xã Đông Sơn"]["Q2"] == (2, True, False, {})  # too few
    assert shown["Phòng Tổ chức"]["Q2"] == (6, True, True, {})  # 8 − 6 would give the 2 away
    assert shown["UBND xã Đông Sơn"]["Q1"] == (5, False, False, {"yes": 2, "no": 3})
    assert shown["Phòng Tổ chức"]["Q3"] == (6, False, False, {"4": 6})
    book = load_workbook(io.BytesIO(results.workbook(res, locale="vi")))
    marks = {
        (row[3], row[0]): row[5]
        for row in book.worksheets[0].iter_rows(min_row=2, values_only=True)
        if row[0] == "Q2"
    }
    assert marks == {
        ("Toàn bộ", "Q2"): None,
        ("Phòng Tổ chức", "Q2"): t("survey.xlsx.held_back", "vi"),
        ("UBND xã Đông Sơn", "Q2"): t("survey.xlsx.too_few", "vi", minimum=5),
    }


async def test_per_unit_results_and_a_head_sees_only_their_unit(org, clock):
    campaign_id = await launch(org, clock, min_group=2)  # the installation's floor (5) wins
    (campaign,) = await rows(org, Campaign)
    assert campaign.min_group == 5
    for i in range(6):
        await answer_as(
            org, clock, campaign_id, f"S1{i}", {"Q1": "no", "Q3": str(1 + i % 5), "Q4": ["2"]}
        )
    await close(org, clock, campaign_id)
    texts = await results_in_chat(org, HEAD, f"/results {campaign_id}")
    assert "Số phiếu hoàn thành: 6" in texts[0]
    assert "UBND xã" not in texts[0]
    texts = await org.send(HEAD, f"/campaigns {campaign_id}")
    assert "Phòng Tổ chức: 6/7 (85,7%)" in texts[0]
    assert "UBND xã" not in texts[0]
    texts = await org.send(ADMIN, f"/campaigns {campaign_id}")
    assert "UBND xã Đông Sơn: 0/2 (0%)" in texts[0]
    assert await results_in_chat(org, STAFF1[0], f"/results {campaign_id}") == [
        t("errors.forbidden", "vi")
    ]
    elsewhere = await launch(org, clock, audience="units:U2", title="Chỉ xã Đông Sơn")
    listed = (await org.send(HEAD, "/campaigns"))[0]
    assert "Khảo sát thử" in listed
    assert "Chỉ xã Đông Sơn" not in listed  # a head is offered the campaigns of their unit
    assert "Chỉ xã Đông Sơn" in (await org.send(ADMIN, "/campaigns"))[0]
    await close(org, clock, elsewhere)
    assert await results_in_chat(org, HEAD, f"/results {elsewhere}") == [
        t("errors.forbidden", "vi")
    ]
    assert await org.send(STAFF1[0], "/campaigns") == [t("errors.forbidden", "vi")]


async def test_two_campaigns_compared_question_by_question(org, clock):
    before = await launch(org, clock, title="Trước")
    after = await launch(org, clock, title="Sau", questionnaire="T2")
    for i in range(6):
        await answer_as(org, clock, before, f"S1{i}", {"Q1": "yes", "Q3": "2", "Q4": ["1"]})
        await answer_as(org, clock, after, f"S1{i}", {"Q1": "no", "Q3": "4", "Q4": ["1"]})
    await close(org, clock, before)
    await close(org, clock, after)
    texts = await org.send(ADMIN, f"/compare {before} {after}")
    assert "Trước: Trước" in texts[0]
    assert "điểm trung bình 2 → điểm trung bình 4 (thay đổi 2)" in texts[0]
    assert "100% chọn phương án đầu → 0% chọn phương án đầu (thay đổi -100)" in texts[0]


# Reminders


async def test_reminders_go_to_those_who_have_not_answered_in_working_hours_at_most_n(org, clock):
    campaign_id = await launch(org, clock, reminders_max=2, remind_every_hours=7)
    await answer_as(org, clock, campaign_id, "S10", {"Q1": "no", "Q3": "3", "Q4": ["1"]})

    async def sweep():
        async with org.maker() as s:
            result = await campaigns.sweep(s, now=clock.now(), cal=CAL)
            await s.commit()
        return result

    assert (await sweep()).reminders == 0  # not yet 7 working hours
    clock.advance(timedelta(hours=24))  # Tuesday 08:00: 7,5 working hours have passed
    assert (await sweep()).reminders == 8  # everyone but the one who answered
    reminded = await rows(org, Outbox, Outbox.kind == campaigns.KIND_REMINDER)
    assert STAFF1[0] not in {int(r.chat_id) for r in reminded}
    assert (await sweep()).reminders == 0
    clock.advance(timedelta(hours=13))  # Tuesday 21:00: out of working hours
    assert (await sweep()).reminders == 0
    clock.advance(timedelta(hours=11))  # Wednesday 08:00
    assert (await sweep()).reminders == 8
    clock.advance(timedelta(days=1))
    assert (await sweep()).reminders == 0  # at most two
    clock.advance(timedelta(days=5))
    result = await sweep()
    assert result.closed == 1
    (campaign,) = await rows(org, Campaign)
    assert campaign.status == CampaignStatus.CLOSED
    assert campaign.salt is None


async def test_a_scheduled_campaign_opens_on_its_date(org, clock):
    campaign_id = await launch(org, clock, opens_at=clock.now() + timedelta(days=1))
    assert await rows(org, Outbox, Outbox.kind == campaigns.KIND_INVITE) == []
    clock.advance(timedelta(days=1))
    async with org.maker() as s:
        result = await campaigns.sweep(s, now=clock.now(), cal=CAL)
        await s.commit()
    assert (result.opened, result.invites) == (1, 9)
    texts = await org.send(STAFF2[0], "/survey")
    assert texts[0].startswith("📋 <b>Khảo sát thử</b>")
    assert campaign_id


# Materials


async def test_a_material_is_read_then_checked(org, clock):
    async with org.maker() as s:
        check = questionnaire.check(
            {"code": "CHK", "title": "Kiểm tra"},
            [
                (
                    1,
                    {
                        "id": "K1",
                        "text": "Chỉ số PAR INDEX có mấy lĩnh vực?",
                        "type": "single",
                        "options": ["6", "8"],
                    },
                )
            ],
        )
        await questionnaire.save(s, check.definition, actor=SYSTEM, now=clock.now())
        await s.commit()
    plain = await launch(
        org, clock, questionnaire=None, material="Kết quả cải cách năm 2026", audience="units:U2"
    )
    checked = await launch(
        org, clock, questionnaire="CHK", material="Tám lĩnh vực", audience="units:U2"
    )
    texts = await org.press(STAFF2[0], f"svread:{plain}")
    assert texts == [t("survey.read_thanks", "vi", title="Khảo sát thử")]
    texts = await org.press(STAFF2[0], f"svread:{checked}")
    assert "Chỉ số PAR INDEX có mấy lĩnh vực?" in texts[1]
    await org.send(STAFF2[0], "2")
    done = await rows(
        org, CampaignRecipient, CampaignRecipient.done, CampaignRecipient.person_id.is_not(None)
    )
    assert sorted(r.campaign_id for r in done) == [plain, checked]
    with pytest.raises(InvalidInput) as err:
        await launch(org, clock, questionnaire="T1", material="Dài", audience="units:U2")
    assert err.value.key == "survey.error.check_long"


# Zalo: no buttons, numbers typed


@pytest.fixture
async def zalo(maker, clock):
    """The Zalo side of the bot on the fake Zalo Bot API."""
    from tests.test_zalo_inbound import ZaloBot
    from tests.zalo_fake import FakeZaloApi

    api = FakeZaloApi()
    await api.start()
    bot = ZaloBot(api, maker, clock)
    yield bot
    await bot.channel.close()
    await api.close()


async def test_a_zalo_person_answers_by_typing_numbers_and_goes_on_after_a_break(
    zalo, maker, clock
):
    uid = "8801000000000000777"
    async with maker() as s:
        unit = await f.unit(s, "U1", "Phòng Tổ chức")
        person = await f.person(s, "Z1", unit)
        s.add(Contact(channel=Channel.ZALO, external_id=uid, person_id=person.id, created_at=f.T0))
        await questionnaire.save(s, form(), actor=SYSTEM, now=f.T0)
        draft = campaigns.Draft(
            "Khảo sát thử",
            campaigns.Audience(units=("U1",)),
            clock.now(),
            clock.now() + timedelta(days=7),
            "T1",
        )
        await campaigns.launch(s, draft, actor=SYSTEM, now=clock.now())
        await s.commit()
    listed = await zalo.send(uid, "/survey")
    assert "1. Trả lời khảo sát" in listed[0]
    texts = await zalo.send(uid, "1")
    assert texts[1].startswith("Câu 1/3 – Văn bản")
    assert "1. Có" in texts[1]
    assert "2. Không" in texts[1]
    texts = await zalo.send(uid, "1")  # Có: the question it conditions is asked
    assert texts[0].startswith("Câu 2/4 – Văn bản")
    await zalo.send(uid, "Công văn 12")
    clock.advance(timedelta(days=4))  # the conversation expired
    await zalo.send(uid, "/survey")
    texts = await zalo.send(uid, "1")
    assert texts[0] == t("survey.flow.resumed", "vi")
    assert texts[1].startswith("Câu 3/4 – Một cửa")
    await zalo.send(uid, "5")
    texts = await zalo.send(uid, "1 2")
    assert texts[0].startswith("Trân trọng cảm ơn đồng chí")
    async with maker() as s:
        (row,) = (await s.exec(select(SurveyResponse))).all()
    assert json.loads(row.answers) == {
        "Q1": "yes",
        "Q2": "Công văn 12",
        "Q3": "5",
        "Q4": ["1", "2"],
    }


# Administrators in chat


async def test_an_admin_launches_in_chat_and_staff_may_not(org, clock):
    texts = await org.send(ADMIN, "/survey_launch T1 units:U2 07/12/2026 named")
    assert texts[0].startswith("Đã mở đợt số 1 «Khảo sát thử» gửi tới 2 người; kết thúc lúc")
    (campaign,) = await rows(org, Campaign)
    assert not campaign.anonymous
    assert not campaign.results_open
    invites = await rows(org, Outbox, Outbox.kind == campaigns.KIND_INVITE)
    assert sorted(int(r.chat_id) for r in invites) == STAFF2
    usage = await org.send(ADMIN, "/survey_launch T1")
    assert usage[0].startswith("Cách dùng: /survey_launch")
    assert (await org.send(ADMIN, "/survey_launch NOPE all 07/12/2026"))[0] == t(
        "survey.error.no_questionnaire", "vi", code="NOPE"
    )
    assert await org.send(HEAD, "/survey_launch T1 all 07/12/2026") == [t("errors.forbidden", "vi")]
    assert await org.send(HEAD, "/survey_import") == [t("errors.forbidden", "vi")]


async def test_an_admin_imports_a_questionnaire_sent_in_chat(org, clock):
    from bot.config import Settings
    from bot.messages import FileRef, InboundEvent
    from bot.services.org.access import actor_for
    from handlers import surveys
    from handlers.context import Context, Deps
    from handlers.flows import Answer

    files = {
        "ok": (ROOT_EXAMPLE).read_bytes(),
        "bad": b'code = "B"\ntitle = "B"\n[[question]]\nid = "A"\ntext = "?"\ntype = "scale"\n',
    }

    async def fetch(file_id: str) -> bytes:
        return files[file_id]

    async with org.maker() as s:
        contact = (await s.exec(select(Contact).where(Contact.external_id == str(ADMIN)))).one()
        actor = await actor_for(s, contact)

        def ctx(file_id: str, name: str = "phieu.toml") -> Context:
            ref = FileRef(file_id, name, "application/toml", 10)
            event = InboundEvent("telegram", str(ADMIN), str(ADMIN), file=ref)
            deps = Deps(org.maker, Settings(), clock, fetch_file=fetch)
            return Context(event=event, session=s, actor=actor, contact=contact, deps=deps)

        data: dict = {}
        with pytest.raises(InvalidInput) as err:
            await surveys.accept_file(ctx("bad"), data, Answer(None, None, None))
        assert err.value.key == "survey_import.problems"
        assert err.value.params["count"] == 3  # scale, low and high are missing
        with pytest.raises(InvalidInput) as err:
            await surveys.accept_file(ctx("ok", "phieu.xlsx"), data, Answer(None, None, None))
        assert err.value.key == "survey_import.error.chat_extension"
        await surveys.accept_file(ctx("ok"), data, Answer(None, None, None))
        shown = await surveys.prompt_confirm(ctx("ok"), data)
        assert shown[0].params["count"] == 13
        done = await surveys.finish_import(ctx("ok"), data)
        assert done[0].key == "survey_import.done"
        await s.commit()
    (form_row,) = await rows(org, Questionnaire, Questionnaire.code == "PAR2026")
    assert form_row.questions == 13


async def test_one_unit_s_results_and_the_xlsx_agree_with_the_answers_stored(org, clock):
    campaign_id = await launch(org, clock)
    for i in range(6):
        given = {"Q1": "no", "Q3": str(1 + i % 5), "Q4": ["1", "3"] if i % 2 else ["2"]}
        await answer_as(org, clock, campaign_id, f"S1{i}", given)
    for i in range(2):
        await answer_as(org, clock, campaign_id, f"S2{i}", {"Q1": "yes", "Q3": "5", "Q4": ["2"]})
    await close(org, clock, campaign_id)
    texts = await results_in_chat(org, ADMIN, f"/results {campaign_id} U1")
    assert texts[0] == t("survey.results_too_few", "vi", title="Khảo sát thử", minimum=5)
    stored = await rows(org, SurveyResponse)
    async with org.maker() as s:
        res = await results.results(s, campaign_id, actor=SYSTEM)
    book = load_workbook(io.BytesIO(results.workbook(res, locale="vi")))
    figures = {
        (row[0], row[5]): row[6]
        for row in book.worksheets[0].iter_rows(min_row=2, values_only=True)
        if row[3] == "Toàn bộ" and row[6] is not None
    }
    for qid, labels_of in (
        ("Q1", {"yes": "Có", "no": "Không"}),
        ("Q3", {str(v): str(v) for v in range(1, 6)}),
    ):
        for value, label in labels_of.items():
            expected = sum(json.loads(r.answers).get(qid) == value for r in stored)
            assert figures[(qid, label)] == expected, (qid, value)
    options = {"1": "Zalo", "2": "Telegram", "3": "Thư điện tử"}
    for value, label in options.items():
        expected = sum(value in json.loads(r.answers)["Q4"] for r in stored)
        assert figures[("Q4", label)] == expected
    unknown = await results_in_chat(org, ADMIN, f"/results {campaign_id} NOPE")
    assert unknown[0].startswith("Không tìm thấy")


async def test_citizens_who_rated_a_unit_are_asked_and_answer_by_their_chat(org, clock):
    from bot.models import Rating

    citizen = 9400
    async with org.maker() as s:
        contact = await f.contact(s, str(citizen))
        (u1,) = (await s.exec(select(Unit).where(Unit.code == "U1"))).all()
        for contact_id, hashed in ((contact.id, "a"), (None, "b")):  # one left a contact, one not
            s.add(
                Rating(
                    unit_id=u1.id,
                    channel="telegram",
                    contact_id=contact_id,
                    voter_hash=hashed,
                    overall=4,
                    created_at=clock.now(),
                )
            )
        await s.commit()
    campaign_id = await launch(org, clock, audience="raters:U1")
    invites = await rows(org, Outbox, Outbox.kind == campaigns.KIND_INVITE)
    assert [int(r.chat_id) for r in invites] == [citizen]
    assert "survey.invite_anonymous_citizen" in invites[0].payload
    await org.press(citizen, f"survey:{campaign_id}")
    await org.choose(citizen, "vno")
    await org.send(citizen, "4")
    await org.send(citizen, "2")
    texts = await org.send(citizen, "4")  # «Xong»
    assert texts[0].startswith("Trân trọng cảm ơn Ông/Bà đã trả lời")
    (done,) = await rows(org, CampaignRecipient, CampaignRecipient.done)
    assert done.contact_id is not None
    assert await org.press(STAFF1[0], f"survey:{campaign_id}") == [
        t("survey.error.not_asked", "vi", title="Khảo sát thử")
    ]


# The results chart


async def test_the_results_chart_goes_as_an_image_on_telegram_and_is_pointed_to_on_zalo(
    org, zalo, maker, clock
):
    from bot.models import Attachment

    campaign_id = await launch(org, clock, anonymous=False)  # named: every group is shown
    await answer_as(
        org, clock, campaign_id, "S10", {"Q1": "yes", "Q2": "Ý", "Q3": "4", "Q4": ["1"]}
    )
    await answer_as(org, clock, campaign_id, "S11", {"Q1": "no", "Q3": "2", "Q4": ["1", "2"]})
    await close(org, clock, campaign_id)
    texts = await results_in_chat(org, ADMIN, f"/results {campaign_id}")
    assert "Có: █████░░░░░ 50% (1)" in texts[0]  # the text chart stays
    assert texts[0].endswith(t("survey.chart_follows", "vi").strip())
    (image,) = await rows(org, Attachment)
    assert image.file_name == f"khao-sat-{campaign_id}.png"
    assert image.data.startswith(b"\x89PNG\r\n\x1a\n")
    (queued,) = await rows(org, Outbox, Outbox.kind == "report", Outbox.ref_id == campaign_id)
    payload = json.loads(queued.payload)
    assert payload["media"] == "photo"
    assert payload["attachment_id"] == image.id
    both = await rows(org, Outbox, col(Outbox.kind).in_(["survey_results", "report"]))
    both.sort(key=lambda r: r.id)
    assert [r.kind for r in both] == ["survey_results", "report"]  # the summary, then its chart
    assert len({(r.chat_id, r.priority, r.due_at) for r in both}) == 1  # sent in id order
    async with maker() as s:
        admin = (await s.exec(select(Person).where(Person.code == "AD"))).one()
        s.add(
            Contact(
                channel=Channel.ZALO,
                external_id="8801000000000000999",
                person_id=admin.id,
                created_at=f.T0,
            )
        )
        await s.commit()
    texts = await zalo.send("8801000000000000999", f"/results {campaign_id}")
    assert "Có: █████░░░░░ 50% (1)" in texts[0]
    assert "Zalo không cho phép bot gửi tệp" in texts[0]
    assert f"/results {campaign_id}" in texts[0]
    assert len(await rows(org, Attachment)) == 1  # nothing queued for Zalo


async def test_the_chart_draws_only_what_may_be_shown(org, clock):
    from bot.services.surveys import chart

    campaign_id = await launch(org, clock)
    for i in range(5):
        await answer_as(org, clock, campaign_id, f"S1{i}", {"Q1": "no", "Q3": "4", "Q4": ["1"]})
    await close(org, clock, campaign_id)
    async with org.maker() as s:
        res = await results.results(s, campaign_id, actor=SYSTEM)
    assert [q.question.id for q in chart.drawn(res)] == ["Q1", "Q3", "Q4"]  # no free text
    image = chart.results_png(res, locale="vi") or b""
    assert image.startswith(b"\x89PNG")
    if keep := os.environ.get("REFORMBOT_TEST_SHOTS"):
        (Path(keep) / "survey-results-chart.png").write_bytes(image)
    res.overall.hidden = True
    assert chart.drawn(res) == []
    assert chart.results_png(res, locale="vi") is None


# Free texts carry no order


async def test_anonymous_free_texts_come_back_in_no_order_of_answering(org, clock):
    given = ["Ý kiến b", "ý kiến A", "Ý kiến a", "ý kiến c", "Ý kiến B", "Ý kiến C"]
    neutral = ["Ý kiến a", "ý kiến A", "Ý kiến B", "Ý kiến b", "Ý kiến C", "ý kiến c"]
    orders = []
    for order in (given, list(reversed(given))):
        campaign_id = await launch(org, clock)
        for i, text in enumerate(order):
            await answer_as(
                org, clock, campaign_id, f"S1{i}", {"Q1": "yes", "Q2": text, "Q3": "4", "Q4": ["1"]}
            )
            clock.advance(timedelta(minutes=7))
        await close(org, clock, campaign_id)
        async with org.maker() as s:
            res = await results.results(s, campaign_id, actor=SYSTEM)
        book = load_workbook(io.BytesIO(results.workbook(res, locale="vi")))
        exported = [r[2] for r in book.worksheets[1].iter_rows(min_row=2, values_only=True)]
        chat = summary.results_message(res).params["blocks"]
        shown = [x["text"] for x in chat.rows[1]["lines"].rows]
        assert res.overall.questions[1].texts == exported == shown == neutral
        stored = await rows(org, SurveyResponse, SurveyResponse.campaign_id == campaign_id)
        assert all(
            len(r.id) == 32 and r.answered_at is None and r.person_id is None for r in stored
        )
        orders.append(exported)
    assert orders[0] == orders[1]  # the same answers given in the reverse order: the same list
