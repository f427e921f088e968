"""The delivery engine in the real bot process: kill -9 loses nothing, two processes send once."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import pytest

from bot.models import OutboxStatus
from bot.sandbox.limits import Limits
from tests.e2e.conftest import BotProcess, BotRunner, copies, count, seed

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.filterwarnings("ignore::telegram.warnings.PTBDeprecationWarning"),
]

SPEED = 20  # the sandbox runs Telegram's limits 20 times faster; the bot is told the same
DELIVERY_ENV = {
    "REFORMBOT_DELIVERY__GLOBAL_RATE": str(30 * SPEED),
    "REFORMBOT_DELIVERY__CHAT_RATE": str(1 * SPEED),
    "REFORMBOT_DELIVERY__GROUP_PER_MINUTE": str(20 * SPEED),
    "REFORMBOT_DELIVERY__LEASE_SECONDS": "5",
    "REFORMBOT_DELIVERY__POLL_SECONDS": "0.2",
}
FIRST_UID = 900_000
WAIT = 90.0


class Processes(BotRunner):
    """Bot processes that run the job runner at the sandbox's faster limits."""

    async def start(self, mode: str = "polling", env: dict[str, str] | None = None) -> BotProcess:
        """Start a bot process with the delivery settings of these tests."""
        return await super().start(mode, DELIVERY_ENV | (env or {}))


@pytest.fixture
async def processes(sandbox, e2e_db, tmp_path) -> AsyncIterator[Processes]:
    """Give a runner of bot processes; anything left running is killed at the end."""
    sandbox.set_limits(Limits(speed=SPEED))
    procs = Processes(sandbox, e2e_db, tmp_path)
    try:
        yield procs
    finally:
        for bot, _ in list(procs.running):
            with contextlib.suppress(ProcessLookupError):
                bot.proc.kill()
            await bot.proc.wait()


async def wait_until(predicate, seconds: float = WAIT) -> None:
    async with asyncio.timeout(seconds):
        while True:
            if await predicate():
                return
            await asyncio.sleep(0.1)  # polls the database: nothing to wait on


def held_lease(bot: BotProcess) -> bool:
    return any("job lease acquired" in line for line in bot.log)


async def test_kill_9_loses_nothing_and_duplicates_only_what_was_in_flight(processes, sandbox, db):
    uids = await seed(db, sandbox, 2000, first_uid=FIRST_UID, kind="e2e")
    first = await processes.start()

    async def some_sent() -> bool:
        return sandbox.counters().accepted_total >= 300

    await wait_until(some_sent)
    await processes.kill(first)
    in_flight = await count(db, OutboxStatus.SENDING)
    sent_before = sandbox.counters().accepted_total
    assert held_lease(first)
    assert sent_before < 2000, "everything went out before the kill: nothing was tested"

    second = await processes.start()

    async def all_sent() -> bool:
        return await count(db, OutboxStatus.SENT) == 2000

    await wait_until(all_sent)
    got = copies(sandbox, uids)
    assert min(got.values()) >= 1  # every chat has its message
    duplicated = sum(1 for n in got.values() if n > 1)
    assert max(got.values()) <= 2
    assert duplicated <= in_flight
    assert await count(db, OutboxStatus.FAILED) == 0
    assert held_lease(second)
    await processes.stop(second)
    assert sandbox.counters().accepted_total == 2000 + duplicated


async def test_a_second_process_does_not_send_twice(processes, sandbox, db):
    uids = await seed(db, sandbox, 400, first_uid=FIRST_UID, kind="e2e")
    bots = await asyncio.gather(processes.start("webhook"), processes.start("webhook"))

    async def all_sent() -> bool:
        return await count(db, OutboxStatus.SENT) == 400

    await wait_until(all_sent)
    await asyncio.sleep(1.0)  # anything sent twice would have arrived by now
    assert set(copies(sandbox, uids).values()) == {1}
    assert sandbox.counters().accepted_total == 400
    assert [held_lease(bot) for bot in bots].count(True) == 1
    for bot in bots:
        await processes.stop(bot)
