"""Survey results on the dashboard: completion per unit, results by the chat's rules, the XLSX."""

from __future__ import annotations

import re
from datetime import timedelta
from io import BytesIO

import pytest
from openpyxl import load_workbook
from sqlmodel import select

from bot.i18n import t
from bot.models import Person, Unit
from bot.services.org.access import system_actor
from bot.services.surveys import answers, campaigns, questionnaire, results
from bot.services.surveys.answers import Respondent
from bot.web.app import create_app
from tests import factories as f
from tests.dashboard_seed import seed
from tests.test_dashboard import Harness, settings_for, signed_in

SYSTEM = system_actor("test")
FORM = {
    "code": "WEB1",
    "title": "Khảo sát một cửa",
    "intro": "",
}
QUESTIONS = [
    (
        1,
        {
            "id": "Q1",
            "area": "Một cửa",
            "text": "Có phải đi lại nhiều lần không?",
            "type": "yes_no",
        },
    ),
    (2, {"id": "Q2", "area": "Một cửa", "text": "Góp ý", "type": "text", "optional": True}),
    (
        3,
        {
            "id": "Q3",
            "area": "Hiện đại hóa",
            "text": "Chấm điểm dịch vụ công trực tuyến",
            "type": "scale",
            "scale": 5,
            "low": "Rất kém",
            "high": "Rất tốt",
        },
    ),
]


@pytest.fixture
async def web(maker, clock) -> Harness:
    """The dashboard's department, with five more staff in PA and in XB."""
    seeded = await seed(maker, clock.now())
    async with maker() as s:
        for code in ("PA", "XB"):
            unit = (await s.exec(select(Unit).where(Unit.code == code))).one()
            for i in range(5):
                await f.person(s, f"{code}S{i}", unit, name=f"Cán bộ {code} {i}")
        checked = questionnaire.check(FORM, QUESTIONS)
        assert checked.definition is not None
        await questionnaire.save(s, checked.definition, actor=SYSTEM, now=clock.now())
        await s.commit()
    settings = settings_for()
    return Harness(create_app(settings, maker, clock), maker, clock, seeded, settings)


async def launch(h: Harness) -> int:
    """Launch the survey to both units, closing in a week."""
    draft = campaigns.Draft(
        title="Khảo sát một cửa",
        audience=campaigns.Audience.parse("units:PA,XB"),
        opens_at=h.clock.now(),
        closes_at=h.clock.now() + timedelta(days=7),
        questionnaire="WEB1",
    )
    async with h.maker() as s:
        campaign = await campaigns.launch(s, draft, actor=SYSTEM, now=h.clock.now())
        await s.commit()
        assert campaign.id is not None
        return campaign.id


async def answer(h: Harness, campaign_id: int, code: str, given: dict) -> None:
    """Store one person's complete answers."""
    async with h.maker() as s:
        person = (await s.exec(select(Person).where(Person.code == code))).one()
        campaign = await campaigns.get(s, campaign_id)
        row = await campaigns.recipient(s, campaign, person_id=person.id, contact_id=None)
        who = Respondent(person.id, None)
        await answers.save(s, campaign, row, who, given, now=h.clock.now(), complete=True)
        await s.commit()


async def close(h: Harness, campaign_id: int) -> None:
    async with h.maker() as s:
        await campaigns.close(s, campaign_id, actor=SYSTEM, now=h.clock.now())
        await s.commit()


def text_of(html: str) -> str:
    """Return a page's text without tags, spaces folded."""
    return " ".join(re.sub(r"<[^>]+>", " ", html).split())


async def test_results_stay_hidden_until_the_close_then_show_per_unit(web):
    campaign_id = await launch(web)
    for i in range(5):
        await answer(web, campaign_id, f"PAS{i}", {"Q1": "yes", "Q2": f"Ý kiến {9 - i}", "Q3": "4"})
    for i in range(5):
        await answer(web, campaign_id, f"XBS{i}", {"Q1": "no", "Q3": "2"})
    async with signed_in(web, "admin") as c:
        page = await c.get(f"/surveys/{campaign_id}")
        assert page.status_code == 200
        assert 'data-hidden="until-close"' in page.text
        assert "Ý kiến" not in page.text
        assert 'data-question="Q1"' not in page.text
        refused = await c.get(f"/download/survey/{campaign_id}.xlsx")
        assert refused.status_code == 403
        assert "xlsx" not in refused.headers["content-type"]
        listing = text_of((await c.get("/surveys")).text)
        assert "UBND phường An Phú 5/7 71,4%" in listing
        assert "UBND xã Bình Minh 5/6 83,3%" in listing
    await close(web, campaign_id)
    async with signed_in(web, "admin") as c:
        page = (await c.get(f"/surveys/{campaign_id}")).text
        shown = text_of(page)
        assert t("web.surveys.overall", "vi", count="10") in shown
        assert "5 (50%)" in shown  # yes and no, five each
        assert t("web.surveys.mean", "vi", mean="3") + " " in shown
        texts = re.findall(r"<li>(Ý kiến \d)</li>", page)
        assert texts == sorted(texts) == [f"Ý kiến {i}" for i in range(5, 10)]
        assert t("web.surveys.unit", "vi", unit="UBND phường An Phú", count="5") in shown
        assert t("web.surveys.unit", "vi", unit="UBND xã Bình Minh", count="5") in shown
        assert page.count("Ý kiến 5") == 1  # free texts only for everyone, never per unit
        download = await c.get(f"/download/survey/{campaign_id}.xlsx")
    assert download.headers["content-type"].startswith("application/vnd.openxmlformats")
    async with web.maker() as s:
        found = await results.results(s, campaign_id, actor=SYSTEM)
        expected = load_workbook(BytesIO(results.workbook(found, locale="vi")))
    got = load_workbook(BytesIO(download.content))
    for a, b in zip(got.worksheets, expected.worksheets, strict=True):
        assert list(a.iter_rows(values_only=True)) == list(b.iter_rows(values_only=True))


async def test_a_head_sees_their_unit_only(web):
    campaign_id = await launch(web)
    for i in range(5):
        await answer(web, campaign_id, f"PAS{i}", {"Q1": "yes", "Q3": "5"})
    await close(web, campaign_id)
    async with signed_in(web, "head") as c:
        listing = (await c.get("/surveys")).text
        assert 'data-unit="PA"' in listing
        assert 'data-unit="XB"' not in listing
        assert f'data-campaign="{web.seeded.surveys["other"]}"' not in listing
        page = await c.get(f"/surveys/{campaign_id}")
        assert page.status_code == 200
        assert "UBND xã Bình Minh" not in page.text
        assert t("web.surveys.unit", "vi", unit="UBND phường An Phú", count="5") in text_of(
            page.text
        )
        book = load_workbook(BytesIO((await c.get(f"/download/survey/{campaign_id}.xlsx")).content))
        units = {row[3] for row in book.worksheets[0].iter_rows(min_row=2, values_only=True)}
        assert units == {"UBND phường An Phú"}


async def test_a_small_group_is_never_shown_and_the_next_is_held_back_with_it(web):
    campaign_id = await launch(web)
    for i in range(5):
        await answer(web, campaign_id, f"PAS{i}", {"Q1": "yes", "Q3": "4"})
    await answer(web, campaign_id, "XBS0", {"Q1": "no", "Q2": "Chỉ một người", "Q3": "1"})
    await close(web, campaign_id)
    async with signed_in(web, "leader") as c:
        page = (await c.get(f"/surveys/{campaign_id}")).text
        book = load_workbook(BytesIO((await c.get(f"/download/survey/{campaign_id}.xlsx")).content))
    shown = text_of(page)
    assert t("web.surveys.overall", "vi", count="6") in shown
    # the small one as too small; An Phú's five held back, as they would give it away
    assert t("web.surveys.unit_hidden", "vi", unit="UBND xã Bình Minh") in shown
    assert t("web.surveys.unit_held_back", "vi", unit="UBND phường An Phú") in shown
    # the only comment is too few to show (one answer under the minimum of five)
    assert "Chỉ một người" not in page
    assert t("web.surveys.question_hidden", "vi") in shown
    cells = [c for row in book.worksheets[0].iter_rows(values_only=True) for c in row]
    assert "Chỉ một người" not in str(cells)


async def test_under_the_minimum_nothing_is_shown(web):
    campaign_id = await launch(web)
    for i in range(4):
        await answer(web, campaign_id, f"PAS{i}", {"Q1": "yes", "Q3": "4"})
    await close(web, campaign_id)
    async with signed_in(web, "admin") as c:
        page = (await c.get(f"/surveys/{campaign_id}")).text
    assert 'data-hidden="too-few"' in page
    assert 'data-question="Q1"' not in page
