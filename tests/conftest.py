"""Shared fixtures: databases on SQLite (always) and PostgreSQL (when a URL is given)."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime

import pytest
from sqlalchemy import text
from sqlalchemy.engine.url import make_url
from sqlmodel import SQLModel

import bot.models  # noqa: F401  (registers the tables)
from bot.clock import FakeClock
from bot.db import SessionMaker, create_engine, session_maker

PG_ENV = "REFORMBOT_TEST_POSTGRES_URL"
PG_SKIP = f"PostgreSQL tests need {PG_ENV} (e.g. postgresql+asyncpg://postgres@127.0.0.1/postgres)"


def postgres_url() -> str | None:
    """Return the PostgreSQL server URL for tests, normalised to asyncpg, or None."""
    url = os.environ.get(PG_ENV)
    if not url:
        return None
    return url.replace("postgresql://", "postgresql+asyncpg://", 1)


@pytest.fixture(scope="session")
def pg_database() -> Iterator[str | None]:
    """Create a throwaway PostgreSQL database for this test run; drop it afterwards."""
    base = postgres_url()
    if base is None:
        yield None
        return
    import asyncio

    name = f"reformbot_test_{uuid.uuid4().hex[:10]}"

    async def run(sql: str) -> None:
        admin = create_engine(base)
        async with admin.connect() as conn:
            conn = await conn.execution_options(isolation_level="AUTOCOMMIT")
            await conn.execute(text(sql))
        await admin.dispose()

    asyncio.run(run(f'CREATE DATABASE "{name}"'))
    url = make_url(base).set(database=name).render_as_string(hide_password=False)
    yield url
    asyncio.run(run(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture(params=["sqlite", "postgres"])
def db_url(request: pytest.FixtureRequest, pg_database: str | None) -> str:
    """Yield each database backend to test against; PostgreSQL skips without a URL."""
    if request.param == "postgres":
        if pg_database is None:
            pytest.skip(PG_SKIP)
        return pg_database
    return "sqlite+aiosqlite:///:memory:"


@pytest.fixture
async def maker(db_url: str) -> AsyncIterator[SessionMaker]:
    """Give a session maker on an empty schema of the backend under test."""
    engine = create_engine(db_url)
    async with engine.begin() as conn:
        await conn.run_sync(SQLModel.metadata.drop_all)
        await conn.run_sync(SQLModel.metadata.create_all)
    yield session_maker(engine)
    await engine.dispose()


@pytest.fixture
def clock() -> FakeClock:
    """Give a fake clock at a Monday morning in Hanoi (01:00 UTC)."""
    return FakeClock(datetime(2026, 11, 30, 1, 0, tzinfo=UTC))


class BotHarness:
    """A real python-telegram-bot Application whose HTTP goes to the fake Bot API."""

    def __init__(self, app, api, maker) -> None:
        self.app = app
        self.api = api
        self.maker = maker

    async def feed(self, data: dict) -> None:
        """Process one update dict as if Telegram had sent it."""
        from telegram import Update

        await self.app.process_update(Update.de_json(data, self.app.bot))

    async def send(self, uid: int, text: str, **kw) -> list[str]:
        """Send text as a user; return the texts the bot sent back to that chat."""
        from tests import tg

        self.api.clear()
        await self.feed(tg.text_update(uid, text, **kw))
        return self.api.texts()

    async def press(self, uid: int, data: str, message_id: int = 5) -> list[str]:
        """Press an inline button as a user; return the texts sent or edited in."""
        from tests import tg

        self.api.clear()
        await self.feed(tg.callback_update(uid, data, message_id))
        return self.api.texts()

    def shown(self, uid: int, value: str) -> str:
        """Return the callback data of the latest flow button answering `value` shown to uid."""
        for call in reversed(self.api.calls):
            if int(call.params.get("chat_id", 0)) != uid:
                continue
            rows = (call.params.get("reply_markup") or {}).get("inline_keyboard", [])
            for row in rows:
                for button in row:
                    data = str(button.get("callback_data", ""))
                    if data.startswith("flow:") and data.rsplit(":", 1)[-1] == value:
                        return data
        raise AssertionError(f"no button answering {value!r} was shown to {uid}")

    async def choose(self, uid: int, value: str) -> list[str]:
        """Press the flow button for `value` on the latest prompt shown to uid."""
        return await self.press(uid, self.shown(uid, value))


@pytest.fixture
async def bot_harness(maker: SessionMaker, clock: FakeClock) -> AsyncIterator[BotHarness]:
    """Give a started Application against the fake Bot API, on the database under test."""
    from telegram.request import HTTPXRequest

    from bot.app import build_application
    from bot.config import Settings
    from tests.fakes import TOKEN, FakeBotAPI

    api = FakeBotAPI()
    settings = Settings(telegram={"token": TOKEN})
    request = HTTPXRequest(httpx_kwargs={"transport": api.transport()})
    app = build_application(settings, maker=maker, clock=clock, request=request, rate_limit=False)
    await app.initialize()
    assert app.post_init is not None
    await app.post_init(app)
    yield BotHarness(app, api, maker)
    await app.shutdown()
