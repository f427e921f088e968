"""Fixtures for the sandbox tests: a started server on a fake clock and a stock PTB Bot."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta

import aiohttp
import pytest
import telegram
from telegram.request import HTTPXRequest

from bot.sandbox import DEFAULT_TOKEN, FakeTime, RetryPolicy, SandboxServer, User

LAN_ID = 1001
MINH_ID = 1002


@pytest.fixture
def fake_time() -> FakeTime:
    """A time source for the flood limits that moves only when told to."""
    return FakeTime()


@pytest.fixture
async def server(fake_time: FakeTime) -> AsyncIterator[SandboxServer]:
    """A sandbox on a free port with quick webhook retries."""
    sandbox = SandboxServer(
        clock=fake_time, webhook_retry=RetryPolicy(base=0.01, maximum=0.05, timeout=2.0)
    )
    await sandbox.start()
    yield sandbox
    await sandbox.stop()


@pytest.fixture
async def tg(server: SandboxServer) -> AsyncIterator[telegram.Bot]:
    """A stock python-telegram-bot Bot pointed at the sandbox (plain HTTP: no TLS setup)."""
    bot = telegram.Bot(
        DEFAULT_TOKEN,
        base_url=server.base_url,
        base_file_url=server.file_base_url,
        request=HTTPXRequest(httpx_kwargs={"verify": False}),
        get_updates_request=HTTPXRequest(httpx_kwargs={"verify": False}),
    )
    async with bot:
        yield bot


@pytest.fixture
def lan(server: SandboxServer) -> User:
    """A user with Vietnamese name and a private chat with the bot."""
    return server.create_user("Nguyễn Thị Lan", user_id=LAN_ID, username="lan_nguyen")


@pytest.fixture
def minh(server: SandboxServer) -> User:
    """A second user."""
    return server.create_user("Trần Văn Minh", user_id=MINH_ID)


@pytest.fixture
async def http(server: SandboxServer) -> AsyncIterator[aiohttp.ClientSession]:
    """A raw HTTP client bound to the sandbox origin."""
    async with aiohttp.ClientSession(base_url=server.origin) as session:
        yield session


def retry_seconds(exc: telegram.error.RetryAfter) -> int:
    """Return RetryAfter's delay in seconds whatever type PTB uses."""
    value = exc.retry_after
    return int(value.total_seconds()) if isinstance(value, timedelta) else int(value)


def message_of(update: telegram.Update) -> telegram.Message:
    """Return an update's message (failing the test when there is none)."""
    assert update.message is not None
    return update.message


def query_of(update: telegram.Update) -> telegram.CallbackQuery:
    """Return an update's callback query (failing the test when there is none)."""
    assert update.callback_query is not None
    return update.callback_query


def document_of(message: telegram.Message) -> telegram.Document:
    """Return a message's document (failing the test when there is none)."""
    assert message.document is not None
    return message.document


def edited(result: telegram.Message | bool) -> telegram.Message:
    """Return the Message an edit method answered (not True, used for inline messages)."""
    assert isinstance(result, telegram.Message)
    return result
