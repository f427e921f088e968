"""The standalone entry point: arguments become limits and faults; the server stops cleanly."""

from __future__ import annotations

import asyncio
import logging

import aiohttp
import pytest

from bot.sandbox import SandboxServer
from bot.sandbox.__main__ import build_parser, faults_from, limits_from, main


def test_arguments_become_limits_and_faults() -> None:
    """--rate-* / --no-limits / fault flags map onto Limits and Faults."""
    args = build_parser().parse_args(
        [
            "--rate-global",
            "100",
            "--rate-chat",
            "2",
            "--rate-group",
            "40",
            "--no-limits",
            "--error-rate",
            "0.1",
            "--blocked",
            "5",
            "--blocked",
            "6",
            "--seed",
            "7",
        ]
    )
    limits = limits_from(args)
    assert (limits.enabled, limits.global_rate, limits.chat_rate) == (False, 100.0, 2.0)
    assert limits.group_per_minute == 40.0
    faults = faults_from(args)
    assert (faults.error_rate, faults.blocked, faults.seed) == (0.1, frozenset({5, 6}), 7)


def test_bad_fault_share_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    """An error rate above 1 exits with a usage message."""
    with pytest.raises(SystemExit) as caught:
        main(["--error-rate", "3"])
    assert caught.value.code == 2
    assert "error_rate" in capsys.readouterr().err


async def test_serve_forever_logs_and_stops(caplog: pytest.LogCaptureFixture) -> None:
    """serve_forever serves until its stop event is set, logging one line without text."""
    server = SandboxServer()
    stop, ready = asyncio.Event(), asyncio.Event()
    caplog.set_level(logging.INFO, logger="bot.sandbox")
    task = asyncio.create_task(server.serve_forever("127.0.0.1", 0, stop, ready=ready))
    await asyncio.wait_for(ready.wait(), 2)
    async with aiohttp.ClientSession() as session, session.get(server.url) as resp:
        assert resp.status == 200
    stop.set()
    await asyncio.wait_for(task, 3)
    started = [r.getMessage() for r in caplog.records if "listening" in r.getMessage()]
    assert started == [f"Telegram sandbox for @reformbot_sandbox_bot listening on {server.url}"]
