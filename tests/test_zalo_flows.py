"""Every step of every flow on Zalo: the choices are a numbered list, and the number or the
label typed gives the step the same answer as the Telegram button would."""

from __future__ import annotations

import json
import re
from dataclasses import replace
from datetime import timedelta

import pytest
from sqlmodel import select

from bot.channels.render import typed_key
from bot.i18n import t
from bot.models import Contact, Flow
from bot.services.errors import InvalidInput
from handlers.flows import Answer
from handlers.routes import FLOWS
from tests.test_flow_answers import SAMPLES, every_step, seed_apology, seed_survey, typed_label
from tests.test_zalo_inbound import ZaloBot
from tests.zalo_fake import FakeZaloApi

UID = "8801000000000000001"
LINE = re.compile(r"^(\d+)\. (.+)$", re.M)


@pytest.fixture
async def zalo(maker, clock):
    api = FakeZaloApi()
    await api.start()
    bot = ZaloBot(api, maker, clock)
    yield bot
    await bot.channel.close()
    await api.close()


@pytest.mark.parametrize(("kind", "step"), every_step())
async def test_typed_answers_at_every_step_on_zalo(zalo, maker, clock, monkeypatch, kind, step):
    seen: list[Answer] = []

    async def record(ctx, data, answer: Answer) -> str:
        seen.append(answer)
        raise InvalidInput("flow.step_done")

    table = FLOWS[kind].table
    monkeypatch.setitem(table, step, replace(table[step], accept=record))
    await zalo.send(UID, "/help")
    async with maker() as s:
        contact = (await s.exec(select(Contact).where(Contact.external_id == UID))).one()
        if kind == "apology":
            await seed_apology(s, clock.now())
        if kind == "survey":
            await seed_survey(s, clock.now())
        s.add(
            Flow(
                contact_id=contact.id,
                kind=kind,
                step=step,
                data=json.dumps({**SAMPLES.get(kind, {}), "_nonce": "abc123"}),
                started_at=clock.now(),
                updated_at=clock.now(),
                expires_at=clock.now() + timedelta(hours=1),
            )
        )
        await s.commit()
    shown = await zalo.send(UID, "@@@")
    assert shown[0] == t(typed_key("flow.step_done"), "vi")  # Zalo says "choice", not "button"
    assert seen.pop().text == "@@@"
    # the list shown last is the one a typed number answers (a directive's preview shows the
    # notice's own list above the step's)
    lists = [LINE.findall(text) for text in shown if LINE.search(text)]
    choices = [(int(n), label) for n, label in (lists[-1] if lists else [])]
    assert len({n for n, _ in choices}) == len(choices)
    assert all("<b>" not in text for text in shown)
    for number, label in choices:
        got = await zalo.send(UID, str(number))
        assert seen, (shown, got)
        value = seen.pop().choice
        assert value is not None
        for typed in (label, typed_label(label)):
            await zalo.send(UID, typed)
            assert (seen.pop().choice, typed) == (value, typed)
    if not choices:
        await zalo.send(UID, "1")
        assert seen.pop() == Answer("1", None, None)
