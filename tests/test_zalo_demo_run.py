"""`reformbot demo` with its Zalo personas: the member of staff on Zalo gets the example directive
and acknowledges it by typing, the citizen on Zalo rates with typed answers (through the sandbox's
Zalo Bot API and its user side, as the simulator page does)."""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp
from sqlmodel import col, select

from bot.cli import demo
from bot.cli.directives import read_file
from bot.db import create_engine, session_maker
from bot.i18n import t
from bot.models import Directive, DirectiveRecipient, Rating
from bot.services.ratings.service_points import payload_for_counter
from tests.e2e.conftest import free_port

STAFF, CITIZEN = (str(p.user_id) for p in demo.ZALO_PERSONAS)


class ZaloUser:
    """The sandbox's Zalo app for one person: type, and read what the bot sent."""

    def __init__(self, http: aiohttp.ClientSession, chat: str) -> None:
        self.http, self.chat = http, chat
        self.path = f"/zalo/sandbox/api/chats/{chat}/messages"

    async def read(self, since: int = 0, wait: float = 0) -> tuple[int, list[str]]:
        """Return the chat's version and the bot's texts (waiting up to `wait` for a change)."""
        params = {"since": str(since), "wait": str(wait)}
        async with self.http.get(self.path, params=params) as resp:
            data: dict[str, Any] = (await resp.json())["result"]
        texts = [m.get("text", "") for m in data["messages"] if m["sender"] == "bot"]
        return int(data["version"]), texts

    async def bot_texts(self) -> list[str]:
        """Return every text the bot sent to the chat."""
        return (await self.read())[1]

    async def wait(self, count: int) -> list[str]:
        """Wait (on the user API's long poll) until the bot has sent `count` messages in all."""
        version, texts = await self.read()
        while len(texts) < count:
            version, _ = await self.read(version, wait=1)
            texts = await self.bot_texts()
        return texts

    async def say(self, text: str) -> list[str]:
        """Type a text; return the bot's answer (what it sent after it)."""
        before = len(await self.bot_texts())
        async with self.http.post(self.path, json={"text": text}) as resp:
            assert resp.status == 201, await resp.text()
        return (await self.wait(before + 1))[before:]


async def test_the_demo_on_zalo_rating_and_acknowledgement(tmp_path):
    said: list[str] = []
    hinted, stop = asyncio.Event(), asyncio.Event()

    def say(text: str) -> None:
        said.append(text)
        if "REFORMBOT_CONFIG=" in text:
            hinted.set()

    db = demo.fresh_database(tmp_path / "demo")
    port = free_port()
    task = asyncio.create_task(
        demo.run_demo(host="127.0.0.1", port=port, db=db, say=say, stop=stop, zalo=True)
    )
    try:
        async with asyncio.timeout(90):
            waiter = asyncio.create_task(hinted.wait())
            await asyncio.wait({task, waiter}, return_when=asyncio.FIRST_COMPLETED)
            if task.done():
                task.result()
            async with aiohttp.ClientSession(base_url=f"http://127.0.0.1:{port}") as http:
                staff, citizen = ZaloUser(http, STAFF), ZaloUser(http, CITIZEN)
                [notice] = await staff.wait(1)
                assert notice.endswith(f"1. {t('directive.ack_button', 'vi')}")
                assert "<b>" not in notice
                acked = await staff.say("đã nhận")
                assert t("directive.ack_button", "vi") not in acked[-1]
                greet = await citizen.say(payload_for_counter(demo.RATING_COUNTER))
                assert "1. " in greet[-1]
                for answer in ("bỏ qua", "2", "5", "4", "bo qua", "1", "bỏ qua", "Trần Văn Bộ"):
                    await citizen.say(answer)
                await citizen.say("bỏ qua")
                thanks = await citizen.say("ẩn danh")
                assert thanks[0] == t("rating.thanks", "vi")
    finally:
        stop.set()
        await asyncio.wait_for(task, 30)
    engine = create_engine(f"sqlite+aiosqlite:///{db}")
    try:
        async with session_maker(engine)() as s:
            # the demo's history has ratings and directives too: take the Zalo rating and the
            # example directive's recipients
            [rating] = (await s.exec(select(Rating).where(Rating.channel == "zalo"))).all()
            number = read_file(demo.EXAMPLES / "directive.toml").number
            rows = (
                await s.exec(
                    select(DirectiveRecipient)
                    .join(Directive, col(Directive.id) == DirectiveRecipient.directive_id)
                    .where(Directive.number == number)
                )
            ).all()
    finally:
        await engine.dispose()
    assert (rating.overall, rating.access, rating.procedure, rating.result) == (2, 5, 4, 1)
    assert [r.ack_channel for r in rows if r.acked_at is not None] == ["zalo"]
