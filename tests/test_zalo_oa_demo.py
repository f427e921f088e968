"""`reformbot demo` with the sandbox's Official Account: a citizen persona on the OA rates with
typed answers, through the emulator's user side as the simulator page does."""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp
from sqlmodel import select

from bot.cli import demo
from bot.db import create_engine, session_maker
from bot.i18n import t
from bot.models import Rating
from bot.services.ratings.service_points import payload_for_counter
from tests.e2e.conftest import free_port

CITIZEN = str(demo.OA_CITIZEN.user_id)


class OAUser:
    """The sandbox's Zalo app for one follower of the OA: type, and read what the OA sent."""

    def __init__(self, http: aiohttp.ClientSession, user: str) -> None:
        self.http = http
        self.path = f"/zalo/sandbox/api/oa/users/{user}/messages"

    async def sent(self) -> list[dict[str, Any]]:
        """Return what the OA sent the user."""
        async with self.http.get(self.path) as resp:
            data: dict[str, Any] = (await resp.json())["result"]
        return [m for m in data["messages"] if m["sender"] == "bot"]

    async def say(self, text: str) -> list[dict[str, Any]]:
        """Type a text; return what the OA sent after it (at least one message)."""
        before = len(await self.sent())
        async with self.http.post(self.path, json={"text": text}) as resp:
            assert resp.status == 201, await resp.text()
        async with asyncio.timeout(20):
            while len(sent := await self.sent()) <= before:  # noqa: ASYNC110 - another task answers
                await asyncio.sleep(0.05)
        return sent[before:]


async def test_the_demo_has_a_citizen_on_the_official_account(tmp_path):
    hinted, stop = asyncio.Event(), asyncio.Event()

    def say(text: str) -> None:
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
                async with http.get("/zalo/sandbox/api/personas") as resp:
                    personas = (await resp.json())["result"]
                assert {"id": "oa-citizen", "surface": "oa"}.items() <= next(
                    p for p in personas if p["id"] == "oa-citizen"
                ).items()
                citizen = OAUser(http, CITIZEN)
                greet = await citizen.say(payload_for_counter(demo.RATING_COUNTER))
                assert "1. " in greet[-1]["text"]
                for answer in ("bỏ qua", "2", "5", "4", "bo qua", "1", "bỏ qua", "Trần Văn Bộ"):
                    await citizen.say(answer)
                await citizen.say("bỏ qua")
                thanks = await citizen.say("ẩn danh")
                assert thanks[0]["text"] == t("rating.thanks", "vi")
    finally:
        stop.set()
        await asyncio.wait_for(task, 30)
    engine = create_engine(f"sqlite+aiosqlite:///{db}")
    try:
        async with session_maker(engine)() as s:
            # the demo's history has ratings too (anonymous, on Telegram): take the OA's
            [rating] = (await s.exec(select(Rating).where(Rating.channel == "zalo_oa"))).all()
    finally:
        await engine.dispose()
    assert (rating.overall, rating.access, rating.procedure, rating.result) == (2, 5, 4, 1)
