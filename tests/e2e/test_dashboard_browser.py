"""The dashboard in headless Chromium, in the demo: signed in by the link the bot sends.

A leader asks for /dashboard in the simulator, opens the link, and walks every page at desktop
(1280 px) and phone (390 px) width: one figure on each page is checked against the database, no
page scrolls sideways on the phone, and each page is saved as a screenshot (set
REFORMBOT_TEST_SHOTS to a folder to keep a few there too, e.g. docs/). A head sees their unit.
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlmodel import func, select

from bot.cli import demo
from bot.clock import SystemClock
from bot.config import Settings
from bot.db import create_engine, session_maker
from bot.i18n import t
from bot.models import (
    Apology,
    ApologyStatus,
    Broadcast,
    BroadcastStatus,
    Campaign,
    CaseStatus,
    Directive,
    Dossier,
    FollowUpCase,
    Rating,
    Task,
    TaskAssignment,
    TaskStatus,
    Unit,
)
from bot.services.ratings import daily
from bot.services.reports import stats
from tests.e2e.conftest import free_port
from tests.e2e.test_simulator_browser import CHROMIUM_ARGS, PHONE

pytestmark = [pytest.mark.e2e, pytest.mark.browser]
CHROMIUM = os.environ.get("REFORMBOT_CHROMIUM") or shutil.which("chromium")
DESKTOP = {"width": 1280, "height": 900}
LEADER = next(p for p in demo.PERSONAS if p.id == "leader")
HEAD = next(p for p in demo.PERSONAS if p.id == "head")
HEAD_UNIT = "UBND.ANPHU"
OTHER_UNIT = "SGD.VP"
KEEP = ("overview",)  # the screenshots kept for the README


@dataclass
class Demo:
    """The running demo: the simulator's and the dashboard's addresses, its database."""

    simulator: str
    dashboard: str
    db_url: str
    said: list[str]


async def _add_activity(db_url: str) -> None:
    """Give every page something to show: ratings, a task, a case, an apology, a broadcast."""
    engine = create_engine(db_url)
    now = SystemClock().now()
    try:
        async with session_maker(engine)() as s:
            units = {u.code: u for u in (await s.exec(select(Unit))).all()}
            head, other = units[HEAD_UNIT], units[OTHER_UNIT]
            levels = [(head, 5), (head, 4), (head, 2), (head, 5), (other, 3), (other, 5)]
            ratings = [
                Rating(
                    unit_id=u.id,
                    channel="telegram",
                    voter_hash=f"browser{i}",
                    overall=level,
                    created_at=now - timedelta(days=1 + i),
                )
                for i, (u, level) in enumerate(levels)
            ]
            s.add_all(ratings)
            await s.flush()
            await daily.add(s, ratings)
            task = Task(title="Báo cáo kết quả tự đánh giá CCHC", created_by="test", created_at=now)
            s.add(task)
            await s.flush()
            for unit, status in ((head, TaskStatus.DONE), (other, TaskStatus.OPEN)):
                s.add(
                    TaskAssignment(
                        task_id=task.id,
                        unit_id=unit.id,
                        due_at=now - timedelta(hours=2),
                        status=status,
                        done_at=now - timedelta(hours=3) if status == TaskStatus.DONE else None,
                    )
                )
            s.add(
                FollowUpCase(
                    rating_id=ratings[2].id,
                    unit_id=head.id,
                    status=CaseStatus.OPEN,
                    opened_at=now - timedelta(days=3),
                    due_at=now + timedelta(days=4),
                )
            )
            dossier = (await s.exec(select(Dossier).order_by(Dossier.id))).first()
            assert dossier is not None
            s.add(
                Apology(
                    dossier_id=dossier.id,
                    unit_id=dossier.unit_id,
                    original_appointment_at=dossier.appointment_at,
                    status=ApologyStatus.ASKED,
                    asked_at=now - timedelta(hours=1),
                )
            )
            s.add(
                Broadcast(
                    text="Lịch tiếp công dân tháng 12",
                    segment="{}",
                    segment_label="Toàn bộ cán bộ",
                    send_at=now - timedelta(hours=1),
                    status=BroadcastStatus.DONE,
                    created_by="test",
                    created_at=now - timedelta(hours=1),
                )
            )
            await s.commit()
    finally:
        await engine.dispose()


async def _count(db_url: str, model: Any, *where: Any) -> int:
    """Count rows in the demo's database."""
    engine = create_engine(db_url)
    try:
        async with session_maker(engine)() as s:
            return int((await s.exec(select(func.count()).select_from(model).where(*where))).one())
    finally:
        await engine.dispose()


@pytest.fixture
async def running(tmp_path) -> AsyncIterator[Demo]:
    """Run the whole demo (sandbox, bot, dashboard) on free ports, with some activity added."""
    said: list[str] = []
    ready = asyncio.Event()
    stop = asyncio.Event()

    def say(text: str) -> None:
        said.append(text)
        if "📊" in text:
            ready.set()

    port, dashboard_port = free_port(), free_port()
    db = demo.fresh_database(tmp_path / "demo")
    task = asyncio.create_task(
        demo.run_demo(
            host="127.0.0.1",
            port=port,
            db=db,
            say=say,
            stop=stop,
            dashboard_port=dashboard_port,
        )
    )
    async with asyncio.timeout(60):
        waiter = asyncio.create_task(ready.wait())
        await asyncio.wait({task, waiter}, return_when=asyncio.FIRST_COMPLETED)
        if task.done():
            task.result()
    url = f"sqlite+aiosqlite:///{db}"
    await _add_activity(url)
    yield Demo(f"http://127.0.0.1:{port}/", f"http://127.0.0.1:{dashboard_port}", url, said)
    stop.set()
    await task


@pytest.fixture
async def browser() -> AsyncIterator[Any]:
    """Give a headless Chromium; skip where there is none."""
    if CHROMIUM is None:
        pytest.skip("needs Chromium (apt-get install chromium, or set REFORMBOT_CHROMIUM)")
    playwright_api = pytest.importorskip("playwright.async_api")
    async with playwright_api.async_playwright() as pw:
        launched = await pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield launched
        finally:
            await launched.close()


async def _link_from_the_bot(browser: Any, running: Demo, persona: demo.DemoPersona) -> str:
    """Send /dashboard as a persona in the simulator; return the link the bot answers with."""
    page = await browser.new_page(viewport=DESKTOP)
    await page.goto(running.simulator)
    await page.wait_for_selector('[data-testid="stream-status"][data-state="live"]')
    await page.select_option('[data-testid="persona-picker"]', str(persona.user_id))
    await page.fill('[data-testid="message-input"]', "/dashboard")
    await page.click('[data-testid="send-button"]')
    reply = page.locator('[data-sender="bot"]').filter(has_text="/login/")
    await reply.wait_for()
    found = re.search(r"(http://\S+/login/[A-Za-z0-9_-]+)", await reply.inner_text())
    assert found is not None
    await page.close()
    return found.group(1)


async def _sign_in(browser: Any, running: Demo, persona: demo.DemoPersona) -> Any:
    """Return a desktop browser context signed in through the bot's one-time link."""
    link = await _link_from_the_bot(browser, running, persona)
    assert link.startswith(running.dashboard)
    context = await browser.new_context(viewport=DESKTOP)
    page = await context.new_page()
    await page.goto(link)
    await page.click("#confirm")
    await page.wait_for_url(running.dashboard + "/")
    await page.close()
    return context


async def _figure(page: Any, name: str) -> str:
    """Return the text of the element marked data-figure=name."""
    return (await page.locator(f'[data-figure="{name}"]').first.inner_text()).strip()


def _period_start() -> Any:
    """Return when the dashboard's default period (the demo has months of history) starts."""
    tz = Settings().scheduler.tz
    return stats.parse_period(None, now=SystemClock().now(), tz=tz).since


def _folder(path: str) -> None:
    """Make the folder screenshots are kept in."""
    Path(path).mkdir(parents=True, exist_ok=True)


def _keep(shot: Path) -> None:
    """Check a screenshot was written."""
    assert shot.stat().st_size > 5_000


def _rows(count: int) -> str:
    """Return the count line a listing of `count` rows shows."""
    return t("web.count", "vi", shown=str(count), total=str(count))


async def test_a_leader_signs_in_by_the_bots_link_and_reads_every_page(running, browser, tmp_path):
    assert any(running.dashboard in line for line in running.said)
    db = running.db_url
    ratings = await _count(db, Rating, Rating.created_at >= _period_start())
    directives = await _count(db, Directive)
    expected = {
        "/": ("ratings", str(ratings)),
        "/directives": ("total", _rows(directives)),
        "/tasks": ("total", _rows(await _count(db, TaskAssignment))),
        "/ratings": ("ratings", str(ratings)),
        "/cases": ("total", _rows(await _count(db, FollowUpCase))),
        "/apologies": ("total", _rows(await _count(db, Apology))),
        "/broadcasts": ("total", _rows(await _count(db, Broadcast))),
        "/surveys": ("total", _rows(min(20, await _count(db, Campaign)))),
        "/downloads": ("directives", None),
    }
    desktop = await _sign_in(browser, running, LEADER)
    phone = await browser.new_context(
        storage_state=await desktop.storage_state(), viewport=PHONE, is_mobile=True, has_touch=True
    )
    keep = os.environ.get("REFORMBOT_TEST_SHOTS")
    if keep:
        _folder(keep)
    for width, context in (("desktop", desktop), ("phone", phone)):
        page = await context.new_page()
        errors: list[str] = []
        page.on(
            "console", lambda m, errors=errors: errors.append(m.text) if m.type == "error" else None
        )
        for path, (figure, value) in expected.items():
            answer = await page.goto(running.dashboard + path)
            assert answer.status == 200, path
            shown = await _figure(page, figure)
            if value is not None:
                assert shown == value, (width, path)
            else:
                links = page.locator('[data-figure="directives"] li')
                assert await links.count() == directives
            overflow = await page.evaluate(
                "document.documentElement.scrollWidth - document.documentElement.clientWidth"
            )
            assert overflow <= 0, (width, path, overflow)
            name = path.strip("/") or "overview"
            shot = tmp_path / f"dashboard-{name}-{width}.png"
            await page.screenshot(path=str(shot), full_page=True)
            _keep(shot)
            if keep and name in KEEP:  # what the first screen shows, small enough for docs/
                await page.screenshot(path=os.path.join(keep, f"dashboard-{name}-{width}.png"))
        assert errors == []  # nothing refused by the content security policy, no script error
        await page.close()
    await phone.close()
    await desktop.close()


async def test_a_head_sees_only_their_unit_in_the_browser(running, browser):
    context = await _sign_in(browser, running, HEAD)
    page = await context.new_page()
    await page.goto(running.dashboard + "/")
    rows = page.locator("tbody tr[data-unit]")
    assert await rows.count() == 1
    assert await rows.first.get_attribute("data-unit") == HEAD_UNIT
    engine_count = await _count(
        running.db_url,
        Rating,
        Rating.unit_id == select(Unit.id).where(Unit.code == HEAD_UNIT).scalar_subquery(),
        Rating.created_at >= _period_start(),
    )
    assert await _figure(page, "ratings") == str(engine_count)
    answer = await page.goto(running.dashboard + f"/ratings?unit={OTHER_UNIT}")
    assert answer.status == 403
    assert await page.locator("h1").inner_text() == t("web.error.forbidden", "vi")
    await context.close()


async def _survey(db_url: str) -> int:
    """Launch a named survey of the demo's questionnaire to the head's unit, have everyone there
    answer, close it."""
    from bot.models import Person, Questionnaire
    from bot.services.org.access import system_actor
    from bot.services.surveys import answers, campaigns, questionnaire

    system = system_actor("test")
    checked = questionnaire.read_file(demo_example())
    assert checked.definition is not None
    engine = create_engine(db_url)
    now = SystemClock().now()
    try:
        async with session_maker(engine)() as s:
            code = checked.definition.code  # the demo imported it already
            saved = (
                await s.exec(select(Questionnaire).where(Questionnaire.code == code))
            ).first() or await questionnaire.save(s, checked.definition, actor=system, now=now)
            draft = campaigns.Draft(
                title="Khảo sát thử trên điện thoại",
                audience=campaigns.Audience.parse(f"units:{HEAD_UNIT}"),
                opens_at=now,
                closes_at=now + timedelta(days=7),
                questionnaire=saved.code,
                anonymous=False,
            )
            campaign = await campaigns.launch(s, draft, actor=system, now=now)
            assert campaign.id is not None
            form = await answers.definition(s, campaign)
            for row in await campaigns.recipients_of(s, campaign):
                person = await s.get(Person, row.person_id)
                assert person is not None
                given: dict[str, Any] = {}
                while todo := [q for q in form.asked(given) if q.id not in given]:
                    q = todo[0]
                    if q.kind == "text":
                        given[q.id] = f"Ý kiến của cán bộ {person.code}"
                    elif q.kind == "multiple":
                        given[q.id] = ["1", "2"]
                    else:
                        given[q.id] = q.values()[0]
                who = answers.Respondent(person.id, None)
                await answers.save(s, campaign, row, who, given, now=now, complete=True)
            await campaigns.close(s, campaign.id, actor=system, now=now)
            await s.commit()
            return campaign.id
    finally:
        await engine.dispose()


def demo_example() -> Path:
    """Return the example questionnaire shipped with the project."""
    return Path(__file__).resolve().parents[2] / "examples" / "survey_par_index.toml"


async def test_a_survey_s_results_read_on_a_phone(running, browser):
    campaign_id = await _survey(running.db_url)
    desktop = await _sign_in(browser, running, LEADER)
    phone = await browser.new_context(
        storage_state=await desktop.storage_state(), viewport=PHONE, is_mobile=True, has_touch=True
    )
    page = await phone.new_page()
    answer = await page.goto(f"{running.dashboard}/surveys/{campaign_id}")
    assert answer.status == 200
    assert await page.locator("svg.chart").count() > 0
    assert await page.locator('[data-figure="done"]').count() >= 1
    overflow = await page.evaluate(
        "document.documentElement.scrollWidth - document.documentElement.clientWidth"
    )
    assert overflow <= 0
    keep = os.environ.get("REFORMBOT_TEST_SHOTS")
    if keep:
        _folder(keep)
        await page.screenshot(path=os.path.join(keep, "dashboard-survey-phone.png"), full_page=True)
    await phone.close()
    await desktop.close()
