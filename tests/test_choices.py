"""The lists chats without buttons were shown: kept in group commits, the latest per chat."""

from __future__ import annotations

import asyncio

from sqlmodel import select

from bot.messages import Button, OutboundMessage
from bot.models import ShownChoices
from bot.services.delivery import choices


def _menu(*actions: str) -> OutboundMessage:
    """Return a message offering one button per action."""
    return OutboundMessage("x", buttons=tuple((Button("k", a),) for a in actions), locale="vi")


async def _kept(maker) -> dict[str, list[str]]:
    """Return each chat's kept actions."""
    async with maker() as session:
        rows = (await session.exec(select(ShownChoices))).all()
    return {
        r.chat_id: [b.action for row in choices.codec.loads(r.payload).buttons for b in row]
        for r in rows
    }


async def test_many_sends_at_once_are_kept_each_with_its_own_list(maker, clock):
    record = choices.Recorder(maker, clock, "zalo")
    await asyncio.gather(*(record(f"c{i}", _menu(f"ack:{i}", "x:1")) for i in range(60)))
    kept = await _kept(maker)
    assert kept == {f"c{i}": [f"ack:{i}", "x:1"] for i in range(60)}


async def test_the_later_list_of_a_chat_wins_within_and_across_batches(maker, clock):
    record = choices.Recorder(maker, clock, "zalo")
    await asyncio.gather(record("c", _menu("a:1")), record("c", _menu("a:2")))
    assert (await _kept(maker))["c"] == ["a:2"]
    await record("c", _menu("a:3"))
    last = await _kept(maker)
    assert last["c"] == ["a:3"]
    async with maker() as session:
        again = await choices.last(session, channel="zalo", chat_id="c")
    assert again is not None
    assert [b.action for row in again.buttons for b in row] == ["a:3"]


async def test_a_failed_write_reaches_every_caller_of_its_batch(maker, clock):
    record = choices.Recorder(maker, clock, "zalo")

    async def broken(*_args, **_kwargs):
        raise RuntimeError("disk full")

    original = choices.remember_many
    choices.remember_many = broken  # type: ignore[assignment]
    try:
        results = await asyncio.gather(
            record("a", _menu("a:1")), record("b", _menu("b:1")), return_exceptions=True
        )
    finally:
        choices.remember_many = original  # type: ignore[assignment]
    assert all(isinstance(r, RuntimeError) for r in results)
    await record("a", _menu("a:2"))  # the recorder keeps working after a failure
    assert await _kept(maker) == {"a": ["a:2"]}
