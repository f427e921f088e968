"""Updates are handled in order per chat, and one busy chat cannot hold every handling slot."""

from __future__ import annotations

import asyncio

from telegram import Update

from bot.app import PerChatUpdates
from tests import tg

BUSY, OTHER = 7001, 7002


def update(uid: int, text: str) -> Update:
    return Update.de_json(tg.text_update(uid, text), None)


async def settle() -> None:
    """Let every runnable task run until each waits for something."""
    for _ in range(20):
        await asyncio.sleep(0)


async def test_a_chat_sending_many_updates_does_not_hold_every_slot():
    processor = PerChatUpdates(2)
    release = asyncio.Event()
    handled: list[str] = []

    async def handle(text: str) -> None:
        if text == "busy-1":
            await release.wait()  # the first update of the busy chat takes long
        handled.append(text)

    texts = [f"busy-{n}" for n in range(1, 6)]
    busy = [
        asyncio.create_task(processor.process_update(update(BUSY, text), handle(text)))
        for text in texts
    ]
    await settle()
    other = asyncio.create_task(processor.process_update(update(OTHER, "other"), handle("other")))
    await settle()

    assert handled == ["other"]  # while the busy chat's first update is still being handled
    release.set()
    await asyncio.gather(other, *busy)
    assert handled == ["other", "busy-1", "busy-2", "busy-3", "busy-4", "busy-5"]


async def test_no_more_updates_than_the_slots_are_handled_at_once():
    processor = PerChatUpdates(2)
    release = asyncio.Event()
    running: list[int] = []
    most = 0

    async def handle(uid: int) -> None:
        nonlocal most
        running.append(uid)
        most = max(most, len(running))
        await release.wait()
        running.remove(uid)

    tasks = [
        asyncio.create_task(processor.process_update(update(uid, "x"), handle(uid)))
        for uid in range(8001, 8006)
    ]
    await settle()
    assert len(running) == 2
    release.set()
    await asyncio.gather(*tasks)
    assert most == 2
