"""Start-up: optional calls retried with backoff, faults named, one poller, secrets masked."""

from __future__ import annotations

import errno
import gc
import io
import json
import logging
import socket
from datetime import timedelta

import pytest
from pydantic import SecretStr
from telegram.error import InvalidToken, NetworkError
from typer.testing import CliRunner

from bot import zalo_app
from bot.cli.main import app
from bot.config import Settings, TelegramSettings, ZaloSettings, load_settings
from bot.i18n import t
from bot.logs import Redactor
from bot.polling import PollingLeader
from bot.runtime import settle_heap
from bot.services.delivery.lease import POLLING, POLLING_KEY, Lease
from bot.startup import OptionalCalls, StartupFault, classify
from tests.zalo_fake import TOKEN as ZALO_TOKEN
from tests.zalo_fake import FakeZaloApi

TOKEN = "123456:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw"
SECRET = "webhook-secret-0123456789"
WRONG_ZALO_TOKEN = "1234567890:not-the-bot_token"


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


# Zalo faults at start ---------------------------------------------------------------------

ZALO_SECRET = "zalo-secret-0123456789"


def zalo_settings(
    api_base: str, token: str = ZALO_TOKEN, webhook_port: int | None = None, **zalo: object
) -> Settings:
    """Return settings with the Zalo Bot API on (webhook mode on that port when one is given)."""
    if webhook_port is not None:
        zalo |= {
            "mode": "webhook",
            "webhook_url": "https://bot.example.gov.vn/zalo",
            "webhook_secret": SecretStr(ZALO_SECRET),
        }
    return Settings(
        telegram=TelegramSettings(webhook_port=webhook_port or 8443),
        zalo=ZaloSettings(enabled=True, bot_token=SecretStr(token), api_base=api_base, **zalo),
    )


async def start_fault(settings: Settings, maker, clock) -> StartupFault:
    """Start the Zalo side; return the fault the command line would tell."""
    with pytest.raises(zalo_app.ZaloStartFault) as info:
        await zalo_app.start(settings, maker, clock)
    wrapped = RuntimeError("start-up failed")
    wrapped.__cause__ = info.value
    found = classify(wrapped, settings)
    assert found is not None
    return found


async def test_a_zalo_token_refused_by_get_me_is_named(maker, clock):
    api = FakeZaloApi()
    await api.start()
    try:
        settings = zalo_settings(api.base, token=WRONG_ZALO_TOKEN)
        found = await start_fault(settings, maker, clock)
    finally:
        await api.close()
    assert found.key == "run.zalo.token_rejected"
    text = found.message("vi")
    assert text == t("run.zalo.token_rejected", "vi", api=settings.zalo.api_base)
    assert "zalo.bot_token" in text
    assert WRONG_ZALO_TOKEN not in text
    assert "zalo.bot_token" in found.message("en")


async def test_an_unreachable_zalo_api_is_named(maker, clock, unused_tcp_port):
    base = f"http://127.0.0.1:{unused_tcp_port}/zalo"  # nothing listens there
    found = await start_fault(zalo_settings(base), maker, clock)
    assert found.key == "run.zalo.api_unreachable"
    text = found.message("vi")
    assert text.startswith(t("run.zalo.api_unreachable", "vi", api=base, detail=""))
    assert "zalo.api_base" in text
    assert "network" in text


async def test_a_busy_port_for_zalo_s_webhook_names_the_worker_s_port(maker, clock):
    api = FakeZaloApi()
    await api.start()
    try:
        with socket.socket() as busy:
            busy.bind(("127.0.0.1", 0))
            busy.listen()
            port = busy.getsockname()[1]
            settings = zalo_settings(api.base, webhook_port=port)
            with pytest.raises(OSError, match=r"(?i)in use") as info:
                await zalo_app.start(settings, maker, clock)
    finally:
        await api.close()
    found = classify(info.value, settings)
    assert found is not None
    assert found.message("vi") == t("run.port_busy", "vi", listen="127.0.0.1", port=port)
    assert "telegram.webhook_port" in found.message("vi")
    assert "REFORMBOT_TELEGRAM__WEBHOOK_PORT" in found.message("en")
    assert not [c for c in api.calls if c.method == "setWebhook"]


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


# the heap once started ----------------------------------------------------------------


def test_what_start_up_built_is_left_out_of_every_later_collection():
    built = {"wiring": [object() for _ in range(3)]}
    try:
        settle_heap()
        assert gc.get_freeze_count() > 0
        assert not any(o is built for o in gc.get_objects())  # no collection walks it again
    finally:
        gc.unfreeze()
    assert any(o is built for o in gc.get_objects())
