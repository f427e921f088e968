"""Start-up: optional calls retried with backoff, faults named, one poller, secrets masked."""

from __future__ import annotations

import errno
import io
import json
import logging
from datetime import timedelta

import pytest
from telegram.error import InvalidToken, NetworkError
from typer.testing import CliRunner

from bot.cli.main import app
from bot.config import load_settings
from bot.i18n import t
from bot.logs import Redactor
from bot.polling import PollingLeader
from bot.services.delivery.lease import POLLING, POLLING_KEY, Lease
from bot.startup import OptionalCalls, classify

TOKEN = "123456:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw"
SECRET = "webhook-secret-0123456789"


# check-config -------------------------------------------------------------------------


def test_check_config_refuses_a_malformed_database_url(tmp_path, monkeypatch):
    monkeypatch.setenv("REFORMBOT_DATABASE__URL", "postgresql+asyncpg://:::x")
    path = tmp_path / "config.toml"
    path.write_text("", encoding="utf-8")
    result = CliRunner().invoke(app, ["check-config", "--config", str(path)])
    assert result.exit_code == 2, result.output
    assert "database.url" in result.output
    assert t("config.error.db_url", "vi") in result.output
    assert "Traceback" not in result.output


# optional calls -----------------------------------------------------------------------


class Flaky:
    """A Bot API call that fails with the given errors, then succeeds; counts its calls."""

    def __init__(self, *errors: Exception) -> None:
        self.errors, self.calls = list(errors), 0

    async def __call__(self) -> bool:
        self.calls += 1
        if self.errors:
            raise self.errors.pop(0)
        return True


class Sleeps:
    """A sleep that returns at once and records how long it was asked to wait."""

    def __init__(self) -> None:
        self.waits: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)


async def test_a_passing_failure_is_retried_with_backoff():
    sleeps = Sleeps()
    optional = OptionalCalls(first=5, maximum=12, sleep=sleeps)
    call = Flaky(
        NetworkError("Internal Server Error"), NetworkError("Bad Gateway"), NetworkError("x")
    )
    assert await optional.attempt("setMyCommands", call) is False
    await optional.retrying["setMyCommands"]
    assert call.calls == 4
    assert sleeps.waits == [5, 10, 12]
    assert optional.retrying == {}


async def test_a_method_the_server_lacks_is_not_asked_again():
    sleeps = Sleeps()
    optional = OptionalCalls(sleep=sleeps)
    call = Flaky(InvalidToken("Not Found"))
    assert await optional.attempt("deleteWebhook", call) is False
    assert call.calls == 1
    assert optional.retrying == {}
    assert sleeps.waits == []


async def test_retries_stop_with_the_bot():
    optional = OptionalCalls(first=3600)
    call = Flaky(*[NetworkError("down")] * 5)
    await optional.attempt("setWebhook", call)
    await optional.close()
    assert call.calls == 1
    assert optional.retrying == {}


# faults -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("exc", "key", "fault"),
    [
        (TimeoutError(), "run.db_failed", "run.db.unreachable"),
        (OSError(errno.EHOSTUNREACH, "No route to host"), "run.db_failed", "run.db.unreachable"),
        (ConnectionRefusedError(111, "refused"), "run.db_failed", "run.db.refused"),
        (OSError(errno.EADDRINUSE, "Address already in use"), "run.port_busy", None),
        (PermissionError(errno.EACCES, "Permission denied"), "run.port_busy", None),
        (
            PermissionError(errno.EACCES, "Permission denied", "/srv/db"),
            "run.db_failed",
            "run.db.permission",
        ),
        (InvalidToken(f"The token `{TOKEN}` was rejected"), "run.token_rejected", None),
        (
            NetworkError("httpx.ConnectError: All connection attempts failed"),
            "run.api_unreachable",
            None,
        ),
    ],
)
def test_foreseeable_faults_are_named(exc, key, fault, monkeypatch):
    monkeypatch.setenv("REFORMBOT_TELEGRAM__TOKEN", TOKEN)
    monkeypatch.setenv("REFORMBOT_TELEGRAM__MODE", "webhook")
    monkeypatch.setenv("REFORMBOT_TELEGRAM__WEBHOOK_URL", "https://bot.example.org/telegram")
    monkeypatch.setenv("REFORMBOT_TELEGRAM__WEBHOOK_SECRET", SECRET)
    settings = load_settings(None)
    wrapped = RuntimeError("start-up failed")
    wrapped.__cause__ = exc
    found = classify(wrapped, settings)
    assert found is not None
    assert found.key == key
    assert found.params.get("fault") == fault
    assert TOKEN not in found.message("vi")


def test_an_unforeseen_failure_is_not_hidden(monkeypatch):
    assert classify(ZeroDivisionError(), load_settings(None)) is None


# the polling lease --------------------------------------------------------------------


class FakeUpdater:
    """Records polling starts and stops."""

    def __init__(self) -> None:
        self.running, self.starts, self.stops = False, 0, 0

    async def start_polling(self, **_: object) -> None:
        self.running, self.starts = True, self.starts + 1

    async def stop(self) -> None:
        self.running, self.stops = False, self.stops + 1


def leader(maker, clock, owner: str) -> tuple[PollingLeader, FakeUpdater]:
    lease = Lease(maker, clock=clock, seconds=30, name=POLLING, key=POLLING_KEY, owner=owner)
    updater = FakeUpdater()
    return PollingLeader(updater, lease, allowed_updates=[], timeout=10), updater  # type: ignore[arg-type]


async def test_only_the_lease_holder_polls_and_the_other_takes_over(maker, clock):
    a, a_updater = leader(maker, clock, "a")
    b, b_updater = leader(maker, clock, "b")
    await a.tick()
    await b.tick()
    assert (a_updater.running, b_updater.running) == (True, False)
    await b.tick()
    assert b_updater.starts == 0
    # a dies without a word: its lease lapses (PostgreSQL: its locked connection closes)
    await a.lease._unlock()
    clock.advance(timedelta(seconds=31))
    await b.tick()
    assert b_updater.running
    assert b_updater.starts == 1
    await a.tick()  # a comes back to life: it finds its lease gone and stops polling
    assert not a_updater.running
    assert a_updater.stops == 1
    await b.stop()
    assert not b_updater.running


async def test_a_stopping_holder_hands_over_at_once(maker, clock):
    a, _ = leader(maker, clock, "a")
    b, b_updater = leader(maker, clock, "b")
    await a.tick()
    await b.tick()
    await a.stop()
    await b.tick()
    assert b_updater.running
    await b.stop()


# secrets ------------------------------------------------------------------------------


@pytest.mark.parametrize("json_lines", [False, True])
def test_no_secret_reaches_a_log_line(json_lines):
    from pythonjsonlogger.json import JsonFormatter

    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.setFormatter(JsonFormatter() if json_lines else logging.Formatter("%(message)s"))
    handler.addFilter(Redactor([TOKEN, TOKEN.partition(":")[2], SECRET]))
    logger = logging.getLogger("test.redact")
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    logger.propagate = False
    try:
        logger.debug("Set Bot API URL: http://h/bot%s", TOKEN)
        logger.debug("setWebhook %s", {"secret_token": SECRET})
        logger.debug("half %s", TOKEN.partition(":")[2])
        try:
            raise InvalidToken(f"The token `{TOKEN}` was rejected by the server.")
        except InvalidToken:
            logger.exception("start failed")
        logger.info("stack", stack_info=True)
    finally:
        logger.removeHandler(handler)
    text = out.getvalue()
    assert "InvalidToken" in text
    assert "Set Bot API URL" in text
    for secret in (TOKEN, TOKEN.partition(":")[2], SECRET):
        assert secret not in text
    if json_lines:
        assert all(json.loads(line) for line in text.splitlines() if line.startswith("{"))
