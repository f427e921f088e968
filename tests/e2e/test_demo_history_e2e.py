"""The demo's three months of history, read back: /report in chat and the dashboard over HTTP.

The whole demo runs (sandbox, bot, dashboard). A leader persona sends /report through the
sandbox's user API and gets a summary, a PNG and an XLSX; the XLSX (downloaded from the
sandbox's file store) holds the figures of a scoreboard computed from the database. A head's
/report holds their unit only. On the dashboard the admin persona (signed in with the demo's
password) sees the same score for a unit as the XLSX; the head (signed in by the link the bot
sends) sees their unit and is refused another unit's page.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from io import BytesIO
from typing import Any

import httpx
import pytest
from openpyxl import load_workbook

from bot.cli import demo
from bot.clock import SystemClock
from bot.config import Settings
from bot.db import create_engine, session_maker
from bot.i18n import t
from bot.services.reports import stats
from bot.services.reports.render import rank_cell
from bot.services.reports.scoreboard import Scoreboard, UnitRow, Window, scoreboard
from bot.services.reports.xlsx import data_rows
from tests.e2e.conftest import free_port

pytestmark = pytest.mark.e2e
PERSONA = {p.id: p for p in demo.PERSONAS}
HEAD_UNIT, OTHER_UNIT = "UBND.ANPHU", "SGD.MOTCUA"
API = "/sandbox/api"
WAIT = 60.0


@dataclass
class Running:
    """The running demo: its simulator, its dashboard and its database."""

    simulator: str
    dashboard: str
    db_url: str


@pytest.fixture
async def running(tmp_path) -> AsyncIterator[Running]:
    """Run `reformbot demo`'s whole process on free ports until the test ends."""
    ready, stop = asyncio.Event(), asyncio.Event()

    def say(text: str) -> None:
        if "REFORMBOT_CONFIG=" in text:  # the last line the demo prints once it runs
            ready.set()

    port, dashboard_port = free_port(), free_port()
    db = demo.fresh_database(tmp_path / "demo")
    task = asyncio.create_task(
        demo.run_demo(
            host="127.0.0.1", port=port, db=db, say=say, stop=stop, dashboard_port=dashboard_port
        )
    )
    async with asyncio.timeout(WAIT):
        waiter = asyncio.create_task(ready.wait())
        await asyncio.wait({task, waiter}, return_when=asyncio.FIRST_COMPLETED)
        if task.done():
            task.result()
    yield Running(
        f"http://127.0.0.1:{port}",
        f"http://127.0.0.1:{dashboard_port}",
        f"sqlite+aiosqlite:///{db}",
    )
    stop.set()
    await task


class Chat:
    """A persona's chat in the simulator, over the sandbox's user API."""

    def __init__(self, http: httpx.AsyncClient, user_id: int) -> None:
        self.http, self.path = http, f"{API}/chats/{user_id}/messages"

    async def version(self) -> int:
        """Return the chat's version now."""
        answer = await self.http.get(self.path)
        return int(answer.json()["result"]["version"])

    async def say(
        self, text: str, done: Callable[[list[dict[str, Any]]], bool]
    ) -> list[dict[str, Any]]:
        """Type a text; return what the bot sends after it, once `done` says it is all there."""
        since = await self.version()
        answer = await self.http.post(self.path, json={"text": text})
        assert answer.status_code == 201, answer.text
        got: list[dict[str, Any]] = []
        async with asyncio.timeout(WAIT):
            while not done(got):
                params = {"since": str(since), "wait": "5"}
                data = (await self.http.get(self.path, params=params)).json()["result"]
                since = int(data["version"])
                got += [m for m in data["messages"] if m["sender"] == "bot" and not m["deleted"]]
        return got

    async def file(self, message: dict[str, Any]) -> bytes:
        """Download the file a message carries from the sandbox's file store."""
        answer = await self.http.get(message["file_url"])
        assert answer.status_code == 200
        return answer.content


async def _board(db_url: str, *, unit: str | None = None) -> Scoreboard:
    """Compute the default period's scoreboard (30 days) from the demo's database."""
    settings = Settings()
    tz = settings.scheduler.tz
    now = SystemClock().now()
    period = stats.parse_period(None, now=now, tz=tz)
    engine = create_engine(db_url)
    try:
        async with session_maker(engine)() as s:
            board = await scoreboard(
                s, window=Window(period.since, period.until, tz), now=now, settings=settings.reports
            )
    finally:
        await engine.dispose()
    if unit is None:
        return board
    row = next(r for r in board.rows if r.unit.code == unit)
    assert row.unit.id is not None
    return board.only(row.unit.id)


def _expected(row: UnitRow) -> tuple[Any, ...]:
    """Return what the XLSX should show of a unit: name, score, rank and the main counts."""
    f = row.figures
    score = float(row.standing.score) if row.standing.score is not None else None
    return (
        row.unit.name,
        score,
        rank_cell(row, "vi"),
        f.notices,
        f.acked,
        f.tasks_due,
        f.tasks_on_time,
        f.tasks_overdue,
        f.ratings,
        f.feedback,
        f.feedback_on_time,
        f.dossiers,
        f.dossiers_late,
        f.dossiers_clean,
        f.apologies_sent,
    )


def _shown(cells: tuple[Any, ...]) -> tuple[Any, ...]:
    """Return the same figures from one XLSX row."""
    picked = (1, 2, 3, 5, 6, 9, 10, 12, 13, 15, 16, 18, 19, 20, 22)
    return tuple(cells[i] for i in picked)


async def _report(chat: Chat) -> tuple[str, list[tuple[Any, ...]]]:
    """Send /report; check a summary, a PNG and an XLSX come; return the text and XLSX rows."""

    def kind(m: dict[str, Any]) -> str:
        return "photo" if "photo" in m else "document" if "document" in m else "text"

    def done(got: list[dict[str, Any]]) -> bool:
        return {"photo", "document"} <= {kind(m) for m in got}

    got = await chat.say("/report", done)
    summary = next(m for m in got if kind(m) == "text" and "/report" not in m["text"])
    photo = next(m for m in got if kind(m) == "photo")
    document = next(m for m in got if kind(m) == "document")
    assert got.index(summary) < got.index(photo) < got.index(document)
    assert (await chat.file(photo)).startswith(b"\x89PNG")
    assert document["document"]["file_name"].endswith(".xlsx")
    book = load_workbook(BytesIO(await chat.file(document)))
    return summary["text"], data_rows(book[book.sheetnames[0]])


async def test_the_demo_s_report_and_dashboard_show_the_history_from_the_database(running):
    async with httpx.AsyncClient(base_url=running.simulator, timeout=WAIT) as sim:
        leader = Chat(sim, PERSONA["leader"].user_id)
        text, rows = await _report(leader)
        board = await _board(running.db_url)
        assert t("stats.all_units", "vi") in text
        by_name = {r[1]: r for r in rows}
        for row in board.rows:
            assert _shown(by_name[row.unit.name]) == _expected(row), row.unit.code
        ranked = [r for r in board.rows if r.standing.rank is not None]
        assert len(ranked) >= 5  # the history ranks most rated units …
        short = t("report.not_enough", "vi")
        assert any(
            row.figures.ratings and by_name[row.unit.name][3] == short for row in board.rows
        )  # … and marks one with too few ratings
        assert f"1. {ranked[0].unit.name}" in text

        head = Chat(sim, PERSONA["head"].user_id)
        text, rows = await _report(head)
        mine = await _board(running.db_url, unit=HEAD_UNIT)
        (row,) = mine.rows
        assert row.unit.name in text
        assert [r[1] for r in rows] == [row.unit.name]  # one unit: no totals row
        assert _shown(rows[0]) == _expected(row)

        link = await _dashboard_link(head)

    xlsx_score = by_name[row.unit.name][2]
    async with httpx.AsyncClient(base_url=running.dashboard, timeout=WAIT) as web:
        await _password_sign_in(web, PERSONA["admin"].person_code or "", demo.DASHBOARD_PASSWORD)
        page = (await web.get("/")).text
        assert _unit_cells(page, HEAD_UNIT)["score"] == _decimal(xlsx_score)
        assert _unit_cells(page, OTHER_UNIT)["ratings"] == str(
            next(r for r in board.rows if r.unit.code == OTHER_UNIT).figures.ratings
        )

    async with httpx.AsyncClient(base_url=running.dashboard, timeout=WAIT) as web:
        await _link_sign_in(web, link)
        page = (await web.get("/")).text
        assert re.findall(r'data-unit="([^"]+)"', page) == [HEAD_UNIT]
        assert _unit_cells(page, HEAD_UNIT)["score"] == _decimal(xlsx_score)
        refused = await web.get("/", params={"unit": OTHER_UNIT})
        assert refused.status_code == 403


# The dashboard over HTTP ------------------------------------------------------------------------


def _decimal(value: float | None) -> str:
    """Return a score as the dashboard writes it (two decimals, a decimal comma)."""
    return "–" if value is None else f"{value:.2f}".replace(".", ",")


def _unit_cells(page: str, code: str) -> dict[str, str]:
    """Return a unit's score and ratings from the overview's table."""
    found = re.search(rf'<tr data-unit="{re.escape(code)}">(.*?)</tr>', page, re.S)
    assert found is not None, code
    cells = [
        re.sub(r"<[^>]+>", "", c).strip()
        for c in re.findall(r"<td[^>]*>(.*?)</td>", found[1], re.S)
    ]
    return {"score": cells[2], "ratings": cells[8]}


def _form_token(page: str) -> str:
    """Return the sign-in form's token (the double-submit CSRF token)."""
    found = re.search(r'name="pre" value="([^"]+)"', page)
    assert found is not None
    return found[1]


async def _password_sign_in(web: httpx.AsyncClient, code: str, password: str) -> None:
    """Sign in on the sign-in page with a staff code and a password."""
    pre = _form_token((await web.get("/login")).text)
    forged = await web.post("/login", data={"pre": "forged", "code": code, "password": password})
    assert forged.status_code == 403
    pre = _form_token((await web.get("/login")).text)
    answer = await web.post("/login", data={"pre": pre, "code": code, "password": password})
    assert answer.status_code == 303, answer.text
    assert answer.headers["location"] == "/"


async def _dashboard_link(chat: Chat) -> str:
    """Ask the bot for a sign-in link with /dashboard; return the link's path."""
    pattern = re.compile(r"http://[^/\s]+(/login/[A-Za-z0-9_-]+)")

    def done(got: list[dict[str, Any]]) -> bool:
        return any(pattern.search(m.get("text", "")) for m in got)

    got = await chat.say("/dashboard", done)
    found = next(f for m in got if (f := pattern.search(m.get("text", ""))))
    return found[1]


async def _link_sign_in(web: httpx.AsyncClient, path: str) -> None:
    """Open a one-time link and confirm it (its page carries the form token)."""
    page = (await web.get(path)).text
    token = re.search(r'name="token" value="([^"]+)"', page)
    assert token is not None
    answer = await web.post("/login-link", data={"pre": _form_token(page), "token": token[1]})
    assert answer.status_code == 303, answer.text
