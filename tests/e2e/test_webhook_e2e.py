"""The webhook of the real bot process: refused requests are not read, replays are handled once."""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path

import httpx
import pytest
from sqlmodel import select

from bot.i18n import t
from bot.models import SeenUpdate
from bot.webhook import SECRET_HEADER
from tests.e2e.conftest import BotProcess

pytestmark = pytest.mark.e2e

SECRET = "e2e-secret-token-0123456789"  # what tests/e2e/conftest.py configures
MIB = 1024 * 1024
BIG = 50 * MIB
PIECE = b"x" * (64 * 1024)
HANG_GUARD = 60  # seconds; only so a broken server fails the test instead of hanging it
USER = 820001


def rss_bytes(pid: int) -> int:
    """Return the resident memory of a process, from /proc."""
    status = Path(f"/proc/{pid}/status")
    if not status.exists():
        pytest.skip("measuring a process's memory needs Linux /proc")
    for line in status.read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS in /proc status")


async def post_raw(
    port: int, headers: dict[str, str], *, size: int, chunked: bool = False, eager: bool = False
) -> tuple[int, int]:
    """POST a body of `size` bytes over a raw socket; return (status, body bytes sent first).

    Unless `eager`, only the headers go out until the status line is back; then the rest of the
    body is pushed anyway, as an attacker would, and whatever the server does with it is ignored.
    With `eager`, the body is written while waiting, stopping when the answer arrives.
    """
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    framing = {"Transfer-Encoding": "chunked"} if chunked else {"Content-Length": str(size)}
    lines = [f"{k}: {v}" for k, v in ({"Host": "127.0.0.1"} | headers | framing).items()]
    writer.write(("POST /telegram HTTP/1.1\r\n" + "\r\n".join(lines) + "\r\n\r\n").encode())
    answer = asyncio.create_task(reader.readline())
    sent_first = 0

    async def push() -> int:
        sent = 0
        with contextlib.suppress(ConnectionError):
            while sent < size and not (eager and answer.done()):
                piece = b"%x\r\n%s\r\n" % (len(PIECE), PIECE) if chunked else PIECE
                writer.write(piece)
                await writer.drain()
                await asyncio.sleep(0)  # let the reader see an answer
                sent += len(PIECE)
        return sent

    async with asyncio.timeout(HANG_GUARD):
        if eager:
            sent_first = await push()
            status_line = await answer
        else:
            status_line = await answer
            await push()
    writer.close()
    with contextlib.suppress(ConnectionError):
        await writer.wait_closed()
    return int(status_line.split()[1]), sent_first


def command_update(update_id: int, message_id: int, command: str) -> dict[str, object]:
    """Return a Telegram update: USER sends a command in the private chat."""
    user = {"id": USER, "is_bot": False, "first_name": "Người dùng", "language_code": "vi"}
    return {
        "update_id": update_id,
        "message": {
            "message_id": message_id,
            "date": 1_790_000_000,
            "chat": {"id": USER, "type": "private", "first_name": "Người dùng"},
            "from": user,
            "text": f"/{command}",
            "entities": [{"type": "bot_command", "offset": 0, "length": len(command) + 1}],
        },
    }


async def wait_for_texts(sandbox, texts: list[str]) -> list[str]:
    """Wait until the bot has sent every one of `texts` to USER; return all it sent."""
    count = 1
    while True:
        sent = [str(m["text"]) for m in await sandbox.wait_for_messages(USER, count, seconds=20)]
        if all(text in sent for text in texts):
            return sent
        count = len(sent) + 1


def url_of(bot: BotProcess) -> str:
    """Return the webhook URL of a bot process."""
    return f"http://127.0.0.1:{bot.webhook_port}/telegram"


async def test_webhook_refuses_before_reading_and_stays_small(bot_runner):
    bot = await bot_runner.start("webhook")
    port = bot.webhook_port
    assert port is not None
    good = {SECRET_HEADER: SECRET, "Content-Type": "application/json"}
    before = rss_bytes(bot.proc.pid)

    for _ in range(4):
        assert await post_raw(port, {}, size=BIG) == (403, 0)
    assert await post_raw(port, {SECRET_HEADER: "wrong-secret-0123456789"}, size=BIG) == (403, 0)
    assert await post_raw(port, good, size=BIG) == (413, 0)
    status, sent = await post_raw(port, good, size=BIG, chunked=True, eager=True)
    assert status == 413
    assert MIB <= sent < BIG

    grown = rss_bytes(bot.proc.pid) - before
    assert grown < 20 * MIB, f"the process grew by {grown / MIB:.1f} MiB"

    payload = '{"update_id": 7, "message": {"text": "so-secret-citizen-text"'
    async with httpx.AsyncClient() as client:
        malformed = await client.post(url_of(bot), content=payload, headers=good)
        not_update = await client.post(url_of(bot), json=[1, 2], headers=good)
        bad_shape = await client.post(
            url_of(bot), json={"update_id": 8, "message": "so-secret-citizen-text"}, headers=good
        )
        fine = await client.post(url_of(bot), json={"update_id": 9}, headers=good)
    assert [malformed.status_code, not_update.status_code, bad_shape.status_code] == [400] * 3
    assert fine.status_code == 200
    await bot_runner.stop(bot)
    assert not any("CRITICAL" in line for line in bot.log)
    assert not any("so-secret-citizen-text" in line for line in bot.log)


async def test_a_replayed_update_is_handled_once_across_workers(bot_runner, sandbox, db):
    sandbox.create_user("Người dùng", user_id=USER)
    first, second = await asyncio.gather(bot_runner.start("webhook"), bot_runner.start("webhook"))
    good = {SECRET_HEADER: SECRET}
    update = command_update(5001, 1, "help")
    async with httpx.AsyncClient() as client:
        replays = await asyncio.gather(
            *(client.post(url_of(b), json=update, headers=good) for b in (first, second, first))
        )
        assert [r.status_code for r in replays] == [200, 200, 200]
        # Then one more update on each worker: a worker handles its updates in order, so once
        # both are answered, whatever the replays caused has been answered too.
        for n, b in enumerate((first, second), start=1):
            later = command_update(5001 + n, 1 + n, f"khongco{n}")
            assert (await client.post(url_of(b), json=later, headers=good)).status_code == 200
    markers = [t("errors.unknown_command", "vi", command=f"khongco{n}") for n in (1, 2)]
    sent = await wait_for_texts(sandbox, markers)
    assert len(sent) == 3
    assert sum("/help" in text and text not in markers for text in sent) == 1
    async with db() as s:
        seen = (await s.exec(select(SeenUpdate.update_id))).all()
    assert sorted(seen) == ["5001", "5002", "5003"]
