"""The Telegram adapter answers python-telegram-bot's errors with neutral outcomes."""

from __future__ import annotations

import pytest
from telegram.error import BadRequest, ChatMigrated, Forbidden, NetworkError, RetryAfter, TimedOut

from bot.channels.contract import NOT_MODIFIED, STALE_FILE
from bot.channels.telegram import outcome_of

pytestmark = pytest.mark.filterwarnings("ignore::telegram.warnings.PTBDeprecationWarning")


@pytest.mark.parametrize(
    ("make", "kind", "code"),
    [
        (lambda: RetryAfter(7), "flood", ""),
        (lambda: Forbidden("Forbidden: bot was blocked by the user"), "blocked", ""),
        (lambda: ChatMigrated(-1001234), "failed", "chat_migrated"),
        (lambda: BadRequest("Wrong file identifier/http url specified"), "failed", STALE_FILE),
        (lambda: BadRequest("Bad Request: chat not found"), "failed", "bad_request"),
        (
            lambda: BadRequest("Message is not modified: specified new message content"),
            "sent",
            NOT_MODIFIED,
        ),
        (lambda: TimedOut(), "retry", ""),
        (lambda: NetworkError("Bad Gateway"), "retry", ""),
    ],
)
def test_each_error_becomes_an_outcome(make, kind, code):
    outcome = outcome_of(make())
    assert (outcome.kind, outcome.code) == (kind, code)


def test_a_flood_carries_the_delay_telegram_asked_for():
    outcome = outcome_of(RetryAfter(7))
    assert (outcome.delay, outcome.scope) == (7.0, "chat")
