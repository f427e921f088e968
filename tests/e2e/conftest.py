"""End-to-end fixtures: the sandbox in this process, the real bot as a child process over HTTP."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import sys
from collections import Counter
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlmodel import SQLModel, func, select

from bot import migrate
from bot.db import SessionMaker, create_engine, session_maker
from bot.i18n import t
from bot.messages import OutboundMessage
from bot.models import Channel, Contact, Outbox, OutboxStatus
from bot.sandbox.server import DEFAULT_TOKEN, SandboxServer
from bot.services.delivery import outbox
from tests.conftest import PG_SKIP

ROOT = Path(__file__).resolve().parents[2]
READY = "ready ("
START_SECONDS = 60


def free_port() -> int:
    """Return a free TCP port on the loopback address."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(params=["sqlite", "postgres"])
async def e2e_db(request, pg_database, tmp_path) -> str:
    """Give a migrated, empty database the bot process and the test can both reach."""
    if request.param == "postgres":
        if pg_database is None:
            pytest.skip(PG_SKIP)
        url = pg_database
        engine = create_engine(url)
        async with engine.begin() as conn:
            await conn.run_sync(SQLModel.metadata.drop_all)
            await conn.exec_driver_sql("DROP TABLE IF EXISTS alembic_version")
        await engine.dispose()
    else:
        url = f"sqlite+aiosqlite:///{tmp_path}/e2e.db"
    await migrate.upgrade(url)
    return url


@pytest.fixture
async def db(e2e_db) -> AsyncIterator[SessionMaker]:
    """Give this process a session maker on the bot's database."""
    engine = create_engine(e2e_db)
    yield session_maker(engine)
    await engine.dispose()


@pytest.fixture
async def sandbox() -> AsyncIterator[SandboxServer]:
    """Run the sandbox Bot API server on a free loopback port."""
    server = SandboxServer()
    await server.start("127.0.0.1", 0)
    yield server
    await server.stop()


async def seed(db, sandbox, n: int, *, first_uid: int, kind: str) -> list[int]:
    """Queue one message of a kind to n new recipients from first_uid; return their chat ids."""
    now = datetime.now(UTC)
    uids = [first_uid + i for i in range(n)]
    async with db() as s:
        people = []
        for uid in uids:
            sandbox.create_user(f"Cán bộ {uid}", user_id=uid)
            people.append(
                Contact(channel=Channel.TELEGRAM, external_id=str(uid), locale="vi", created_at=now)
            )
        s.add_all(people)
        await s.flush()
        for person in people:
            message = OutboundMessage("errors.unknown_unit", {"code": person.external_id})
            await outbox.enqueue(s, contact=person, message=message, kind=kind, ref_id=1, now=now)
        await s.commit()
    return uids


async def count(db, status: OutboxStatus) -> int:
    """Count the outbox rows in a status."""
    async with db() as s:
        stmt = select(func.count()).select_from(Outbox).where(Outbox.status == status)
        return int((await s.exec(stmt)).one())


def copies(sandbox, uids: list[int]) -> Counter[int]:
    """Count, per chat, the seeded messages the sandbox accepted."""
    out: Counter[int] = Counter()
    for uid in uids:
        expected = t("errors.unknown_unit", "vi", code=str(uid))
        out[uid] = sum(1 for m in sandbox.messages(uid) if m["text"] == expected)
    return out


@dataclass
class BotProcess:
    """The bot running as `python -m bot run`, and how to reach it."""

    proc: asyncio.subprocess.Process
    mode: str
    webhook_port: int | None
    log: list[str]


async def _read_until_ready(proc: asyncio.subprocess.Process, log: list[str]) -> None:
    """Collect the child's log lines until it says it is ready."""
    assert proc.stderr is not None
    async with asyncio.timeout(START_SECONDS):
        while True:
            line = (await proc.stderr.readline()).decode("utf-8", "replace")
            if not line:
                raise RuntimeError("bot exited before it was ready:\n" + "".join(log))
            log.append(line)
            if READY in line:
                return


async def _drain(proc: asyncio.subprocess.Process, log: list[str]) -> None:
    """Keep reading the child's log so its pipe never fills."""
    assert proc.stderr is not None
    while line := await proc.stderr.readline():
        log.append(line.decode("utf-8", "replace"))


def bot_env(sandbox: SandboxServer, db_url: str, mode: str, port: int | None) -> dict[str, str]:
    """Return the environment that configures the child bot (no config file)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("REFORMBOT_")}
    env.update(
        REFORMBOT_TELEGRAM__TOKEN=DEFAULT_TOKEN,
        REFORMBOT_TELEGRAM__API_BASE_URL=sandbox.base_url,
        REFORMBOT_TELEGRAM__API_FILE_URL=sandbox.file_base_url,
        REFORMBOT_TELEGRAM__MODE=mode,
        REFORMBOT_DATABASE__URL=db_url,
        REFORMBOT_LOGGING__LEVEL="INFO",
        PYTHONPATH=str(ROOT),
    )
    if mode == "webhook":
        assert port is not None
        env.update(
            REFORMBOT_TELEGRAM__WEBHOOK_URL=f"http://127.0.0.1:{port}/telegram",
            REFORMBOT_TELEGRAM__WEBHOOK_LISTEN="127.0.0.1",
            REFORMBOT_TELEGRAM__WEBHOOK_PORT=str(port),
            REFORMBOT_TELEGRAM__WEBHOOK_SECRET="e2e-secret-token-0123456789",
        )
    return env


class BotRunner:
    """Start and stop the real bot process against the sandbox and the e2e database."""

    def __init__(self, sandbox: SandboxServer, db_url: str, cwd: Path) -> None:
        self.sandbox, self.db_url, self.cwd = sandbox, db_url, cwd
        self.running: list[tuple[BotProcess, asyncio.Task[None]]] = []

    async def start(
        self, mode: str, env: dict[str, str] | None = None, *, without: Sequence[str] = ()
    ) -> BotProcess:
        """Start `python -m bot run` (extra environment optional, `without` those variables);
        wait until it is ready."""
        port = free_port() if mode == "webhook" else None
        full = bot_env(self.sandbox, self.db_url, mode, port) | (env or {})
        for name in without:
            full.pop(name, None)
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "bot",
            "run",
            cwd=self.cwd,
            env=full,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
        )
        log: list[str] = []
        try:
            await _read_until_ready(proc, log)
        except BaseException:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            await proc.wait()
            raise
        bot = BotProcess(proc, mode, port, log)
        self.running.append((bot, asyncio.create_task(_drain(proc, log))))
        return bot

    def _forget(self, bot: BotProcess) -> asyncio.Task[None]:
        """Stop tracking a process; return the task reading its log."""
        task = next(task for b, task in self.running if b is bot)
        self.running = [(b, t) for b, t in self.running if b is not bot]
        return task

    async def kill(self, bot: BotProcess) -> None:
        """Kill -9: no clean-up at all."""
        task = self._forget(bot)
        bot.proc.send_signal(signal.SIGKILL)
        await bot.proc.wait()
        await task

    async def stop(self, bot: BotProcess) -> None:
        """Send SIGTERM; expect a clean exit with status 0 and no traceback."""
        task = self._forget(bot)
        bot.proc.send_signal(signal.SIGTERM)
        async with asyncio.timeout(40):
            code = await bot.proc.wait()
        await task
        assert code == 0, "".join(bot.log[-30:])
        assert not any("Traceback" in line for line in bot.log), "".join(bot.log)

    async def close(self) -> None:
        """Stop whatever is still running."""
        for bot, _ in list(self.running):
            await self.stop(bot)


@pytest.fixture
async def bot_runner(sandbox, e2e_db, tmp_path) -> AsyncIterator[BotRunner]:
    """Give a runner of bot processes; every process is stopped (cleanly) at the end."""
    runner = BotRunner(sandbox, e2e_db, tmp_path)
    yield runner
    await runner.close()


@pytest.fixture(params=["polling", "webhook"])
async def bot_process(request, bot_runner) -> BotProcess:
    """Start the real bot in each mode; it is stopped with SIGTERM and must exit cleanly."""
    return await bot_runner.start(request.param)
