"""Method faults: a whole Bot API method fails (a 5xx, or 404 as from a server that lacks it)."""

from __future__ import annotations

import pytest
import telegram
from telegram import BotCommand

from bot.sandbox import ApiError, Faults, MethodFault, SandboxServer


async def test_a_failing_method_fails_then_recovers(
    server: SandboxServer, tg: telegram.Bot
) -> None:
    """`times` fails only the first calls; the counter counts them."""
    server.set_faults(Faults(methods={"setmycommands": MethodFault(500, times=1)}))
    with pytest.raises(telegram.error.NetworkError, match="Internal Server Error"):
        await tg.set_my_commands([BotCommand("help", "Trợ giúp")])
    assert await tg.set_my_commands([BotCommand("help", "Trợ giúp")])
    assert server.counters().method_faults_total == 1


async def test_a_lacking_method_answers_404(server: SandboxServer, tg: telegram.Bot) -> None:
    """A 404 is how a Bot API server without the method answers; other methods work."""
    server.set_faults(Faults.from_json({"methods": {"deleteWebhook": 404}}))
    with pytest.raises(telegram.error.InvalidToken, match="Not Found"):
        await tg.delete_webhook()
    with pytest.raises(telegram.error.InvalidToken):
        await tg.delete_webhook()
    assert (await tg.get_me()).is_bot


@pytest.mark.parametrize(
    "methods",
    [{"getMe": 200}, {"getMe": {"status": 500, "times": -1}}, {"getMe": {"code": 500}}, ["getMe"]],
)
def test_bad_method_faults_are_refused(methods: object) -> None:
    with pytest.raises(ApiError) as info:
        Faults.from_json({"methods": methods})
    assert info.value.code == 400


def test_method_faults_round_trip() -> None:
    faults = Faults.from_json({"methods": {"setMyCommands": {"status": 502, "times": 2}}})
    assert faults.to_json()["methods"] == {"setmycommands": {"status": 502, "times": 2}}
    assert Faults.from_json(faults.to_json()) == faults
