"""`reformbot run` at start: optional calls that fail, foreseeable faults, one poller, no secret."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import socket
import sys
from pathlib import Path

import pytest

from bot.i18n import t
from bot.sandbox.faults import FaultRule, Faults, MethodFault
from bot.sandbox.server import DEFAULT_TOKEN
from bot.startup import StartupFault
from tests.e2e.conftest import READY, START_SECONDS, bot_env, free_port

pytestmark = pytest.mark.e2e

USER = 820001
WAIT = 30.0
SECRET = "e2e-secret-token-0123456789"
OTHER_TOKEN = "654321:REJECTED-TOKEN-0000000000000000"


async def ask(sandbox, uid: int, text: str) -> str:
    """Send text as a user and return the bot's next message to that chat."""
    before = sum(1 for m in sandbox.messages(uid) if m["sender"] == "bot")
    sandbox.send_text(uid, text)
    messages = await sandbox.wait_for_messages(uid, before + 1, seconds=WAIT)
    return str(messages[-1]["text"])


@pytest.mark.parametrize("status", [500, 404])
async def test_failing_optional_calls_do_not_stop_the_bot(bot_runner, sandbox, status):
    # setMyCommands fails once (then is retried), deleteWebhook always (500, or 404: lacking).
    sandbox.set_faults(
        Faults(
            methods={
                "setmycommands": MethodFault(status, times=1),
                "deletewebhook": MethodFault(status),
            }
        )
    )
    sandbox.create_user("Người dân", user_id=USER)
    bot = await bot_runner.start("polling")
    assert await ask(sandbox, USER, "xin chào") == t("text.hint_citizen", "vi")
    counts = sandbox.counters().by_method
    assert counts["deleteWebhook"] >= 1
    if status == 500:  # a passing fault: the commands are published once the retry succeeds
        async with asyncio.timeout(WAIT):
            while not sandbox.sandbox.bot().commands:  # noqa: ASYNC110 (another process)
                await asyncio.sleep(0.2)
    else:  # a server that lacks the method is not asked again
        assert counts["setMyCommands"] == 1
    assert any("setMyCommands" in line and "WARNING" in line for line in bot.log)
    await bot_runner.stop(bot)


async def test_failing_set_webhook_is_retried_while_the_bot_serves(bot_runner, sandbox):
    sandbox.set_faults(Faults(methods={"setwebhook": MethodFault(500, times=1)}))
    sandbox.create_user("Người dân", user_id=USER)
    bot = await bot_runner.start("webhook")
    # The update waits in the sandbox until the retried setWebhook succeeds, then is pushed.
    assert await ask(sandbox, USER, "xin chào") == t("text.hint_citizen", "vi")
    assert sandbox.counters().by_method["setWebhook"] == 2
    await bot_runner.stop(bot)


async def test_two_polling_processes_poll_one_at_a_time(bot_runner, sandbox):
    fast = {"REFORMBOT_DELIVERY__LEASE_SECONDS": "6"}
    sandbox.create_user("Người dân", user_id=USER)
    first = await bot_runner.start("polling", env=fast)
    second = await bot_runner.start("polling", env=fast)
    assert any("waiting: another process polls" in line for line in second.log)
    assert await ask(sandbox, USER, "xin chào") == t("text.hint_citizen", "vi")
    assert await ask(sandbox, USER, "chào lần nữa") == t("text.hint_citizen", "vi")
    assert sandbox.counters().conflicts_total == 0
    await bot_runner.kill(first)  # the holder dies: its lease lapses, the other takes over
    assert await ask(sandbox, USER, "còn ai không") == t("text.hint_citizen", "vi")
    assert any("polling lease taken" in line for line in second.log)
    await bot_runner.stop(second)


# Foreseeable faults: a translated message naming the key, exit status 2, no traceback. ---------


async def spawn_bot(env: dict[str, str], cwd: Path) -> asyncio.subprocess.Process:
    """Start `python -m bot run` with stdout and stderr merged into one pipe."""
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bot",
        "run",
        cwd=cwd,
        env=env,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )


async def run_until_exit(env: dict[str, str], cwd: Path) -> tuple[int, str]:
    """Run `python -m bot run`; return its exit status and everything it printed."""
    proc = await spawn_bot(env, cwd)
    try:
        async with asyncio.timeout(START_SECONDS):
            out, _ = await proc.communicate()
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise
    return proc.returncode or 0, out.decode("utf-8", "replace")


def db_message(url: str, fault: str) -> str:
    """Return what the operator is told about a database fault."""
    return StartupFault("run.db_failed", {"url": url, "fault": fault}).message("vi")


async def test_rejected_token_is_told_without_the_token(sandbox, tmp_path):
    env = bot_env(sandbox, f"sqlite+aiosqlite:///{tmp_path}/bot.db", "polling", None)
    env["REFORMBOT_TELEGRAM__TOKEN"] = OTHER_TOKEN
    code, out = await run_until_exit(env, tmp_path)
    assert code == 2, out
    assert t("run.token_rejected", "vi", api=sandbox.base_url) in out
    assert "Traceback" not in out
    assert OTHER_TOKEN.partition(":")[2] not in out


@pytest.mark.parametrize(
    ("url", "fault"),
    [
        ("postgresql+asyncpg://postgres@127.0.0.1:1/reformbot", "run.db.refused"),
        ("postgresql+asyncpg://postgres@db.host.invalid/reformbot", "run.db.unknown_host"),
        ("sqlite+aiosqlite:////proc/no-such-folder/bot.db", "run.db.cannot_open"),
    ],
)
async def test_database_fault_is_told_naming_the_key(sandbox, tmp_path, url, fault):
    code, out = await run_until_exit(bot_env(sandbox, url, "polling", None), tmp_path)
    assert code == 2, out
    assert db_message(url, fault) in out
    assert "Traceback" not in out


async def test_missing_postgres_database_is_told(sandbox, tmp_path, pg_database):
    if pg_database is None:
        pytest.skip("no PostgreSQL")
    url = pg_database.rsplit("/", 1)[0] + "/reformbot_no_such_database"
    code, out = await run_until_exit(bot_env(sandbox, url, "polling", None), tmp_path)
    assert code == 2, out
    assert db_message(url, "run.db.missing") in out
    assert "Traceback" not in out


async def test_webhook_port_in_use_is_told(sandbox, tmp_path):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        env = bot_env(sandbox, f"sqlite+aiosqlite:///{tmp_path}/bot.db", "webhook", port)
        code, out = await run_until_exit(env, tmp_path)
    assert code == 2, out
    assert t("run.port_busy", "vi", listen="127.0.0.1", port=port) in out
    assert "Traceback" not in out


# Secrets: never in a log line, at DEBUG, through start, a send, a failure and a stop. ---------


async def test_no_secret_in_any_line_at_debug(sandbox, tmp_path):
    port = free_port()
    env = bot_env(sandbox, f"sqlite+aiosqlite:///{tmp_path}/bot.db", "webhook", port)
    env["REFORMBOT_LOGGING__LEVEL"] = "DEBUG"
    sandbox.create_user("Người dân", user_id=USER)
    proc = await spawn_bot(env, tmp_path)
    lines: list[str] = []
    assert proc.stdout is not None
    try:
        async with asyncio.timeout(START_SECONDS):
            while READY not in (lines or [""])[-1]:
                line = (await proc.stdout.readline()).decode("utf-8", "replace")
                assert line, "".join(lines)
                lines.append(line)
        reader = asyncio.create_task(_read_all(proc, lines))
        assert await ask(sandbox, USER, "xin chào") == t("text.hint_citizen", "vi")  # a send
        sandbox.set_chat_faults(USER, FaultRule(error_rate=1.0))  # a failure: every send fails
        sandbox.send_text(USER, "/help")
        async with asyncio.timeout(WAIT):  # the reply is retried, then given up and logged
            while not any("not delivered" in line for line in lines):  # noqa: ASYNC110
                await asyncio.sleep(0.2)
        proc.send_signal(signal.SIGTERM)
        async with asyncio.timeout(40):
            code = await proc.wait()
        await reader
    finally:
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
    assert code == 0, "".join(lines[-30:])
    assert any("DEBUG" in line for line in lines)
    assert any("setWebhook" in line for line in lines)  # the calls that carried them are logged
    for secret in (DEFAULT_TOKEN, DEFAULT_TOKEN.partition(":")[2], SECRET):
        leaks = [line for line in lines if secret in line]
        assert not leaks, leaks[:5]


async def _read_all(proc: asyncio.subprocess.Process, lines: list[str]) -> None:
    """Keep reading the child's output until it ends."""
    assert proc.stdout is not None
    while line := await proc.stdout.readline():
        lines.append(line.decode("utf-8", "replace"))
