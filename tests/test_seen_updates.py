"""Webhook replays: each update id is recorded once per channel, and old ids are forgotten."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from sqlmodel import select

from bot.db import transaction
from bot.models import SeenUpdate
from bot.services.delivery import seen_updates


async def _sight(maker, clock, update_id: str, channel: str = "telegram") -> bool:
    async with transaction(maker) as session:
        return await seen_updates.first_sight(
            session, channel=channel, update_id=update_id, now=clock.now()
        )


async def test_an_update_is_new_once_per_channel(maker, clock):
    assert await _sight(maker, clock, "41")
    assert not await _sight(maker, clock, "41")
    assert await _sight(maker, clock, "41", channel="zalo")
    assert await _sight(maker, clock, "42")


async def test_concurrent_sightings_of_one_update_admit_exactly_one(maker, clock):
    results = await asyncio.gather(*(_sight(maker, clock, "77") for _ in range(8)))
    assert sorted(results) == [False] * 7 + [True]


async def test_prune_forgets_only_ids_older_than_a_day(maker, clock):
    await _sight(maker, clock, "1")
    clock.advance(timedelta(hours=23))
    await _sight(maker, clock, "2")
    clock.advance(timedelta(hours=2))
    async with transaction(maker) as session:
        assert await seen_updates.prune(session, now=clock.now()) == 1
    async with maker() as session:
        kept = (await session.exec(select(SeenUpdate.update_id))).all()
    assert kept == ["2"]


async def test_a_batch_of_updates_is_recorded_at_once_each_new_once(maker, clock):
    assert await _sight(maker, clock, "5")
    async with transaction(maker) as session:
        fresh = await seen_updates.first_sights(
            session, channel="telegram", update_ids=["4", "5", "6", "4"], now=clock.now()
        )
    assert fresh == {"4", "6"}
    assert not await _sight(maker, clock, "6")
