"""Arbitrary input to any handler never raises out of it; the user always gets an answer."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import handlers.router  # noqa: F401
from bot.i18n import t
from handlers.routes import COMMANDS
from tests import tg

pytestmark = pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")

commands = st.sampled_from([f"/{name}" for name in COMMANDS] + ["/", "/x", ""])
noise = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=300)


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(command=commands, tail=noise, uid=st.integers(1, 10**12))
async def test_any_text_gets_an_answer_and_never_raises(bot_harness, command, tail, uid):
    text = f"{command} {tail}".strip() or "?"
    bot_harness.api.clear()
    await bot_harness.feed(tg.text_update(uid, text))
    sent = bot_harness.api.texts()
    assert sent, text
    assert t("errors.internal", "vi") not in sent


@settings(
    max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=st.text(min_size=1, max_size=64).filter(lambda d: len(d.encode()) <= 64))
async def test_any_button_data_never_raises(bot_harness, data):
    bot_harness.api.clear()
    await bot_harness.feed(tg.callback_update(4242, data))
    assert bot_harness.api.sent("answerCallbackQuery")
    assert t("errors.internal", "vi") not in bot_harness.api.texts()
