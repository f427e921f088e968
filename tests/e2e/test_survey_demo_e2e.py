"""Issue 12's "done means", in the demo: the example survey from launch to its XLSX.

The whole demo runs (sandbox, bot, dashboard) on SQLite and on PostgreSQL. The admin persona
sends the launch command the demo prints, to two units of five: the Department Office (all on
Telegram) and a commune (four on Telegram, one on Zalo). Every one of them answers through the
sandbox's user API (the Zalo one by numbers); three of the commune skip the optional question
HD2. Before the close the admin gets no results, neither in chat nor as XLSX; after
/survey_close the summary comes first and then its chart, and each unit is shown with its own
figures, except the commune's HD2 (two answers: too few) and the Office's HD2, which would give
the commune's two away as the total minus the Office; the XLSX holds, per unit, the counts a
direct query of the database gives. The demo's past survey shows at once, the Office on its
own and the small units not, and compares with the new one.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections import Counter
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import date
from io import BytesIO
from typing import Any

import httpx
import pytest
from openpyxl import Workbook, load_workbook
from sqlmodel import col, select

from bot.cli import demo
from bot.db import create_engine, session_maker
from bot.i18n import t
from bot.models import Campaign, CampaignRecipient, SurveyResponse, Unit
from bot.services.surveys import questionnaire, results
from bot.services.surveys.questionnaire import Definition, Question
from tests.e2e.conftest import free_port

pytestmark = pytest.mark.e2e
WAIT = 90.0
LAUNCHED = re.compile(r"số (\d+) .* tới (\d+) người")
HIDDEN = "chỉ được xem sau khi đợt khảo sát kết thúc"
CLOSED = "Đã kết thúc đợt"
THANKS = re.compile(r"cảm ơn|thank you", re.I)
PERSONA = {
    p.id: p
    for p in (*demo.PERSONAS, *demo.OFFICE_PERSONAS, *demo.COMMUNE_PERSONAS, *demo.ZALO_PERSONAS)
}
OFFICE = ["admin", *(p.id for p in demo.OFFICE_PERSONAS)]
TELEGRAM = [*OFFICE, *(p.id for p in demo.COMMUNE_PERSONAS)]  # then the Zalo persona
SKIPS_HD2 = {5, 6, 7}  # three of the commune: two answer it there, too few to show
OFFICE_UNIT, COMMUNE_UNIT = "Văn phòng Sở", "UBND xã Vĩnh Khang"
CHECKED = questionnaire.read_file(demo.EXAMPLES / demo.SURVEY_FILE)
assert CHECKED.definition is not None
FORM: Definition = CHECKED.definition
MC2_TEXTS = [  # given in this order; listed in the neutral one (the text, then its case)
    "Tăng cường tập huấn",
    "bớt họp",
    "Áp dụng chữ ký số",
    "Bớt họp",
    "áp dụng ứng dụng",
    "Cải tiến phần mềm",
    "Giảm giấy tờ",
    "giảm giấy tờ",
    "Một cửa liên thông",
    "Đào tạo kỹ năng số",
]


@dataclass
class Running:
    """The running demo: its simulator, its dashboard, its database and what it printed."""

    simulator: str
    dashboard: str
    db_url: str
    said: list[str] = field(default_factory=list)


@pytest.fixture
async def running(e2e_db, tmp_path) -> AsyncIterator[Running]:
    """Run `reformbot demo`'s whole process on the e2e database until the test ends."""
    ready, stop = asyncio.Event(), asyncio.Event()
    port, dashboard_port = free_port(), free_port()
    out = Running(f"http://127.0.0.1:{port}", f"http://127.0.0.1:{dashboard_port}", e2e_db)

    def say(text: str) -> None:
        out.said.append(text)
        if "REFORMBOT_CONFIG=" in text:  # the last line the demo prints once it runs
            ready.set()

    task = asyncio.create_task(
        demo.run_demo(
            host="127.0.0.1",
            port=port,
            db=demo.fresh_database(tmp_path / "demo"),
            say=say,
            stop=stop,
            dashboard_port=dashboard_port,
            url=e2e_db,
        )
    )
    async with asyncio.timeout(WAIT * 2):
        waiter = asyncio.create_task(ready.wait())
        await asyncio.wait({task, waiter}, return_when=asyncio.FIRST_COMPLETED)
        if task.done():
            task.result()
    yield out
    stop.set()
    await task


class Chat:
    """A persona's chat in the simulator (Telegram, or Zalo's Bot API) over the user API."""

    def __init__(self, http: httpx.AsyncClient, user_id: int, *, zalo: bool = False) -> None:
        api = "/zalo/sandbox/api" if zalo else "/sandbox/api"
        self.http, self.path, self.since = http, f"{api}/chats/{user_id}/messages", 0

    async def _take(self, wait: float) -> list[dict[str, Any]]:
        """Return the bot's messages after the last seen version, waiting up to `wait` seconds."""
        params = {"since": str(self.since), "wait": str(wait)}
        data = (await self.http.get(self.path, params=params)).json()["result"]
        self.since = int(data["version"])
        return [m for m in data["messages"] if m["sender"] == "bot" and not m.get("deleted")]

    async def expect(self, done: Callable[[list[dict[str, Any]]], bool]) -> list[dict[str, Any]]:
        """Return the bot's new messages once `done` says all that is awaited is there."""
        got: list[dict[str, Any]] = []
        async with asyncio.timeout(WAIT):
            while not done(got):
                got += await self._take(5)
        return got

    async def say(
        self, text: str, done: Callable[[list[dict[str, Any]]], bool] = bool
    ) -> list[dict[str, Any]]:
        """Type a text; return what the bot sends after it."""
        answer = await self.http.post(self.path, json={"text": text})
        assert answer.status_code == 201, answer.text
        return await self.expect(done)

    async def press(
        self, message: dict[str, Any], tail: str, done: Callable[[list[dict[str, Any]]], bool]
    ) -> list[dict[str, Any]]:
        """Press the button whose data ends with `tail`; return what the bot sends after it."""
        rows = message["reply_markup"]["inline_keyboard"]
        data = next(
            b["callback_data"] for r in rows for b in r if b["callback_data"].endswith(tail)
        )
        path = self.path.replace("/messages", "/callbacks")
        answer = await self.http.post(
            path, json={"message_id": message["message_id"], "data": data}
        )
        assert answer.status_code == 201, answer.text
        return await self.expect(done)

    async def file(self, message: dict[str, Any]) -> bytes:
        """Download the file a message carries from the sandbox's file store."""
        answer = await self.http.get(message["file_url"])
        assert answer.status_code == 200
        return answer.content


def _text(message: dict[str, Any]) -> str:
    """Return a message's text (or caption)."""
    return str(message.get("text") or message.get("caption") or "")


def _asked(messages: list[dict[str, Any]]) -> Question | None:
    """Return the question the latest message asking one asks (other messages pass by)."""
    for m in reversed(messages):
        if found := next((q for q in FORM.questions if q.text in _text(m)), None):
            return found
    return None


def _thanked(messages: list[dict[str, Any]]) -> str | None:
    """Return the thanks for answering, if it came."""
    return next(
        (_text(m) for m in messages if FORM.title in _text(m) and THANKS.search(_text(m))), None
    )


def _button(message: dict[str, Any], tail: str) -> bool:
    """Tell whether a message has a button whose data ends with `tail`."""
    rows = message.get("reply_markup", {}).get("inline_keyboard", [])
    return any(b.get("callback_data", "").endswith(tail) for r in rows for b in r)


def _typed(question: Question, n: int) -> str:
    """Return what respondent n types for a question (numbers for choices, words for text)."""
    if question.kind == "scale":
        return str(1 + (n * 3 + len(question.id)) % question.scale)
    if question.kind == "yes_no":
        return "1" if n % 2 == 0 else "2"
    if question.kind == "single":
        return str(1 + n % len(question.options))
    if question.kind == "multiple":
        if question.id == "HD2" and n in SKIPS_HD2:
            return t("survey.flow.skip", "vi")
        return f"1, {2 + n % (len(question.options) - 1)}"
    return MC2_TEXTS[n] if question.id == "MC2" else f"Văn bản hướng dẫn số {n}"


async def _answer_all(chat: Chat, first: list[dict[str, Any]], n: int) -> str:
    """Answer every question asked, starting from the messages opening them; return the thanks."""
    got = first
    for _ in range(len(FORM.questions) + 1):
        if thanks := _thanked(got):
            return thanks
        question = _asked(got)
        assert question is not None, got
        got = await chat.say(
            _typed(question, n),
            lambda got: _thanked(got) is not None or _asked(got) is not None,
        )
    raise AssertionError("the questions never ended")


async def test_the_demo_survey_launched_answered_hidden_closed_and_exported(running):
    said = next(m for line in running.said if (m := re.search(r"/survey_launch \S+ \S+ \S+", line)))
    async with (
        httpx.AsyncClient(base_url=running.simulator, timeout=WAIT) as sim,
        httpx.AsyncClient(base_url=running.dashboard, timeout=WAIT) as web,
    ):
        chats = {pid: Chat(sim, PERSONA[pid].user_id) for pid in TELEGRAM}
        admin, zalo = chats["admin"], Chat(sim, PERSONA["zalo-staff"].user_id, zalo=True)
        first = await admin.say(said[0], lambda got: any(LAUNCHED.search(_text(m)) for m in got))
        found = next(f for m in first if (f := LAUNCHED.search(_text(m))))
        campaign_id, reached = int(found[1]), int(found[2])
        assert reached == 10  # five in the Office, five in the commune

        tail = f"survey:{campaign_id}"

        async def on_telegram(n: int, pid: str) -> str:
            early = [m for m in first if _button(m, tail)] if pid == "admin" else []
            got = early or await chats[pid].expect(lambda got: any(_button(m, tail) for m in got))
            invite = next(m for m in reversed(got) if _button(m, tail))
            opened = await chats[pid].press(invite, tail, lambda got: _asked(got) is not None)
            return await _answer_all(chats[pid], opened, n)

        async def on_zalo(n: int) -> str:
            got = await zalo.expect(lambda got: any("Trả lời khảo sát" in _text(m) for m in got))
            assert "ẩn danh" in _text(got[-1])  # the invitation, its button as «1. …»
            opened = await zalo.say("1", lambda got: _asked(got) is not None)
            return await _answer_all(zalo, opened, n)

        everyone = [on_telegram(n, pid) for n, pid in enumerate(TELEGRAM)]
        for thanks in await asyncio.gather(*everyone, on_zalo(len(TELEGRAM))):
            assert "ẩn danh" in thanks or "anonymous" in thanks  # all ten, anonymously

        for ask in (f"/results {campaign_id}", f"/results {campaign_id} xlsx"):
            shown = await admin.say(ask, lambda got: any(HIDDEN in _text(m) for m in got))
            assert not any("document" in m or "photo" in m for m in shown)
        await _sign_in(web)
        page = (await web.get(f"/surveys/{campaign_id}")).text
        assert 'data-hidden="until-close"' in page
        assert (await web.get(f"/download/survey/{campaign_id}.xlsx")).status_code == 403

        await admin.say(
            f"/survey_close {campaign_id}", lambda got: any(CLOSED in _text(m) for m in got)
        )
        got = await admin.say(f"/results {campaign_id}", lambda got: any("photo" in m for m in got))
        summary = next(m for m in got if _text(m).startswith("Kết quả: "))
        photo = next(m for m in got if "photo" in m)
        assert got.index(summary) < got.index(photo)  # the summary, then its chart
        assert (await admin.file(photo)).startswith(b"\x89PNG")
        assert "Số phiếu hoàn thành: 10" in _text(summary)
        assert f"{OFFICE_UNIT}: 5 phiếu" in _text(summary)  # each unit on its own
        assert f"{COMMUNE_UNIT}: 5 phiếu" in _text(summary)
        assert "không hiển thị riêng" not in _text(summary)
        page = (await web.get(f"/surveys/{campaign_id}")).text
        assert 'data-hidden="until-close"' not in page
        office, commune = _unit_sections(page, OFFICE_UNIT), _unit_sections(page, COMMUNE_UNIT)
        assert "5 phiếu hoàn thành" in office["head"]
        assert "5 phiếu hoàn thành" in commune["head"]
        assert 'data-hidden="too-few"' in commune["HD2"]  # two answers
        assert 'data-hidden="held-back"' in office["HD2"]  # total − Office = the commune's two
        for section in (office, commune):
            assert "data-hidden" not in section["VB1"]
            assert "<svg" in section["VB1"]

        got = await admin.say(
            f"/results {campaign_id} xlsx", lambda got: any("document" in m for m in got)
        )
        document = next(m for m in got if "document" in m)
        notice = next(m for m in got if _text(m) == t("survey.xlsx_queued", "vi"))
        assert got.index(notice) < got.index(document)  # "the file follows", then the file
        book = load_workbook(BytesIO(await admin.file(document)))
        for unit, code, hd2 in (
            (OFFICE_UNIT, "SGD.VP", "survey.result_held_back_question"),
            (COMMUNE_UNIT, "UBND.VKHANG", "survey.result_hidden_question"),
        ):
            got = await admin.say(
                f"/results {campaign_id} {code}", lambda got: any("photo" in m for m in got)
            )
            start = next(i for i, m in enumerate(got) if _text(m).startswith("Kết quả: "))
            one = "\n".join(_text(m) for m in got[start:] if "photo" not in m)
            assert "Số phiếu hoàn thành: 5" in one
            assert f"{unit}: 5 phiếu" in one
            assert t(hd2, "vi") in one.split("HD2. ", 1)[1].split("MC1. ", 1)[0]
        download = await web.get(f"/download/survey/{campaign_id}.xlsx")
        assert download.status_code == 200
        online = load_workbook(BytesIO(download.content))
        assert _cells(online) == _cells(book)  # the dashboard's file is the chat's

        before = next(
            int(m[1]) for line in running.said if (m := re.search(r"/compare (\d+)", line))
        )
        got = await admin.say(f"/results {before}", lambda got: any("photo" in m for m in got))
        chart = next(m for m in got if "photo" in m)
        start = next(i for i, m in enumerate(got) if _text(m).startswith("Kết quả: "))
        assert start < got.index(chart)
        earlier = "\n".join(_text(m) for m in got[start : got.index(chart)])  # long: in parts
        assert "Văn phòng Sở: 5 phiếu" in earlier  # a unit of five is shown on its own …
        assert "UBND xã Vĩnh Khang: không hiển thị riêng" in earlier  # … a smaller one is not
        got = await admin.say(
            f"/compare {before} {campaign_id}", lambda got: any("So sánh" in _text(m) for m in got)
        )
        assert "→" in _text(got[-1])

    _check_against_database(book, await _stored(running.db_url, campaign_id))


def _unit_sections(page: str, unit: str) -> dict[str, str]:
    """Return a unit's part of the dashboard page: its heading, then each question's section."""
    part = page.split(f'data-group="{unit}"', 1)[1].split("</details>", 1)[0]
    head, *questions = part.split('data-question="')
    return {"head": head} | {q.split('"', 1)[0]: q for q in questions}


def _cells(book: Workbook) -> list[list[tuple[Any, ...]]]:
    """Return every sheet's rows."""
    return [list(sheet.iter_rows(values_only=True)) for sheet in book.worksheets]


def _check_against_database(book: Workbook, stored: Stored) -> None:
    """Check the XLSX shows, for everyone and per unit, the counts the database holds, and
    nothing of a group under five, nor what would give one away."""
    assert stored.complete == 10
    assert stored.done == 10
    assert stored.person_ids == {None}  # anonymous: nobody, and no time
    assert stored.times == {None}
    rows = list(book.worksheets[0].iter_rows(min_row=2, values_only=True))
    everyone = t("survey.xlsx.everyone", "vi")
    too_few = t("survey.xlsx.too_few", "vi", minimum=5)
    held_back = t("survey.xlsx.held_back", "vi")
    assert {r[3] for r in rows} == {everyone, OFFICE_UNIT, COMMUNE_UNIT}
    assert not [r for r in rows if not r[0]]  # no group hidden as a whole
    groups = {everyone: stored.answers} | {u: stored.by_unit[u] for u in stored.by_unit}
    assert sorted(len(a) for a in groups.values()) == [5, 5, 10]
    marked = set()
    for group, answers in groups.items():
        for q in FORM.questions:
            answered = sum(1 for a in answers if a.get(q.id) is not None)
            mine = [r for r in book.worksheets[0].iter_rows(min_row=2, values_only=True)]
            mine = [r for r in mine if r[0] == q.id and r[3] == group]
            assert {r[4] for r in mine} == {answered}, (group, q.id)
            if answered < 5:
                assert [r[5:] for r in mine] == [(too_few, None, None, None)], (group, q.id)
                marked.add((group, q.id, "too few"))
            elif (group, q.id) == (OFFICE_UNIT, "HD2"):
                assert [r[5:] for r in mine] == [(held_back, None, None, None)], (group, q.id)
                marked.add((group, q.id, "held back"))
            elif q.kind != "text":
                expected = Counter[str]()
                for a in answers:
                    v = a.get(q.id)
                    expected.update([] if v is None else v if isinstance(v, list) else [v])
                shown = {r[5]: r[6] for r in mine}
                assert shown == {label: expected[v] for v, label in results.labels(q)}, q.id
    assert marked == {
        (OFFICE_UNIT, "VB3", "too few"),  # three of the Office said yes to VB2
        (COMMUNE_UNIT, "VB3", "too few"),  # two of the commune
        (COMMUNE_UNIT, "HD2", "too few"),  # three of the commune skipped it
        (OFFICE_UNIT, "HD2", "held back"),  # the whole's HD2 minus the Office's: the commune's
    }
    free = [r for r in book.worksheets[1].iter_rows(min_row=2, values_only=True)]
    assert [r[2] for r in free if r[0] == "MC2"] == sorted(MC2_TEXTS, key=results.neutral)
    vb3 = sorted(
        (f"Văn bản hướng dẫn số {n}" for n in range(10) if n % 2 == 0), key=results.neutral
    )
    assert [r[2] for r in free if r[0] == "VB3"] == vb3  # five in all: shown, with no unit


async def _sign_in(web: httpx.AsyncClient) -> None:
    """Sign in on the dashboard as the admin persona, with the demo's password."""
    page = (await web.get("/login")).text
    pre = re.search(r'name="pre" value="([^"]+)"', page)
    assert pre is not None
    code = PERSONA["admin"].person_code
    form = {"pre": pre[1], "code": code, "password": demo.DASHBOARD_PASSWORD}
    answer = await web.post("/login", data=form)
    assert answer.status_code == 303, answer.text


@dataclass
class Stored:
    """What the database holds of the campaign, read directly."""

    complete: int
    done: int
    person_ids: set[int | None]
    times: set[Any]
    answers: list[dict[str, Any]]
    by_unit: dict[str, list[dict[str, Any]]]


async def _stored(url: str, campaign_id: int) -> Stored:
    """Read the campaign's answers and recipients from the database."""
    engine = create_engine(url)
    try:
        async with session_maker(engine)() as s:
            campaign = await s.get(Campaign, campaign_id)
            assert campaign is not None
            assert campaign.salt is None  # erased at the close
            units = {u.id: u.name for u in (await s.exec(select(Unit))).all()}
            rows = (
                await s.exec(
                    select(SurveyResponse).where(
                        SurveyResponse.campaign_id == campaign_id,
                        col(SurveyResponse.complete).is_(True),
                    )
                )
            ).all()
            done = (
                await s.exec(
                    select(CampaignRecipient).where(
                        CampaignRecipient.campaign_id == campaign_id,
                        col(CampaignRecipient.done).is_(True),
                    )
                )
            ).all()
    finally:
        await engine.dispose()
    by_unit: dict[str, list[dict[str, Any]]] = {}
    for r in rows:
        by_unit.setdefault(units[r.unit_id], []).append(json.loads(r.answers))
    return Stored(
        len(rows),
        len(done),
        {r.person_id for r in rows},
        {r.answered_at for r in rows},
        [json.loads(r.answers) for r in rows],
        by_unit,
    )


def test_the_demo_launches_the_example_file_s_questionnaire():
    assert FORM.code == demo.SURVEY_CODE
    assert demo.survey_launch_command(date(2026, 12, 10)) == (
        "/survey_launch PAR2026 units:SGD.VP,UBND.VKHANG 10/12/2026"
    )
