"""The webhook's intake: updates recorded in batches, each handled once, none lost while the
database fails."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace

import pytest
from sqlalchemy import event, text
from sqlmodel import select
from telegram import Update

from bot import webhook
from bot.models import SeenUpdate
from tests import tg

USER = 7301


def update(update_id: int) -> Update:
    data = tg.text_update(USER, "/help")
    data["update_id"] = update_id
    return Update.de_json(data, None)


def intake(maker, clock) -> webhook.Intake:
    app = SimpleNamespace(update_queue=asyncio.Queue())
    return webhook.Intake(app, maker, clock)  # type: ignore[arg-type]


def queued(taken: webhook.Intake) -> list[int]:
    queue = taken.app.update_queue
    return [queue.get_nowait().update_id for _ in range(queue.qsize())]


async def test_updates_received_together_are_recorded_at_once_and_each_handled_once(maker, clock):
    taken = intake(maker, clock)
    for update_id in (501, 502, 501):
        taken.put(update(update_id))
    await taken.record()
    taken.put(update(502))
    taken.put(update(503))
    await taken.record()

    assert queued(taken) == [501, 502, 503]
    async with maker() as session:
        seen = (await session.exec(select(SeenUpdate.update_id))).all()
    assert sorted(seen) == ["501", "502", "503"]


async def test_while_the_database_fails_taken_updates_wait_and_new_ones_are_refused(
    maker, clock, monkeypatch
):
    monkeypatch.setattr(webhook, "RETRY_SECONDS", 0.0)
    taken = intake(maker, clock)
    healthy = asyncio.Event()
    record = taken.first_sights

    async def flaky(update_ids: list[str]) -> set[str]:
        if not healthy.is_set():
            raise ConnectionError("database down")
        return await record(update_ids)

    taken.first_sights = flaky  # type: ignore[method-assign]
    taken.start()
    taken.put(update(601))
    for _ in range(10):
        await asyncio.sleep(0)

    assert taken.failing
    assert not taken.accepts()  # the webhook answers 503: Telegram sends it again later
    healthy.set()
    handled = await taken.app.update_queue.get()
    await taken.stop()

    assert handled.update_id == 601
    assert taken.accepts()


def pooled_checkouts(maker) -> list[object]:
    """Record every connection taken from the engine's pool from now on."""
    taken: list[object] = []
    event.listen(maker.kw["bind"].sync_engine.pool, "checkout", lambda *a: taken.append(a[0]))
    return taken


async def test_on_postgresql_a_batch_is_recorded_without_a_pooled_connection(maker, clock):
    if maker.kw["bind"].dialect.name != "postgresql":
        pytest.skip("SQLite records in a session")
    taken = intake(maker, clock)
    taken.put(update(701))
    await taken.record()  # the first batch prunes old records first, in a session
    checkouts = pooled_checkouts(maker)
    taken.put(update(702))
    taken.put(update(701))
    await taken.record()
    assert taken.bare is not None
    assert await taken.bare.conn.fetchval("SHOW synchronous_commit") == "off"  # see BareConnection
    await taken.stop()

    assert checkouts == []  # the handlers' pool is left to the handlers
    assert taken.bare.conn is None  # closed with the intake
    assert queued(taken) == [701, 702]
    async with maker() as session:
        seen = (await session.exec(select(SeenUpdate.update_id))).all()
    assert sorted(seen) == ["701", "702"]


async def test_on_postgresql_a_lost_connection_is_replaced_and_nothing_is_lost(
    maker, clock, monkeypatch
):
    if maker.kw["bind"].dialect.name != "postgresql":
        pytest.skip("SQLite records in a session")
    monkeypatch.setattr(webhook, "RETRY_SECONDS", 0.0)
    taken = intake(maker, clock)
    taken.start()
    taken.put(update(801))
    assert (await taken.app.update_queue.get()).update_id == 801
    assert taken.bare is not None
    assert taken.bare.conn is not None
    async with maker() as session:  # the server ends the intake's connection (a restart)
        pid = taken.bare.conn.get_server_pid()
        await session.exec(text(f"SELECT pg_terminate_backend({pid})"))  # type: ignore[call-overload]
    taken.put(update(802))
    taken.put(update(801))
    handled = await asyncio.wait_for(taken.app.update_queue.get(), 10)
    await taken.stop()

    assert handled.update_id == 802
    assert taken.app.update_queue.empty()  # 801 again: answered, not handled twice
    assert taken.accepts()
    async with maker() as session:
        seen = (await session.exec(select(SeenUpdate.update_id))).all()
    assert sorted(seen) == ["801", "802"]
