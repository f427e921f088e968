"""Every step of every flow takes a typed answer: the number shown, the label, the skip words."""

from __future__ import annotations

import json
import re
from dataclasses import replace
from datetime import timedelta
from typing import Any

import pytest
from sqlmodel import select

from bot.i18n import t
from bot.models import (
    Apology,
    ApologyStatus,
    Campaign,
    CampaignStatus,
    Contact,
    Dossier,
    Flow,
)
from bot.services.errors import InvalidInput
from bot.services.org.access import system_actor
from bot.services.surveys import questionnaire
from handlers.flows import DONE, SKIP_WORDS, Answer, FlowSpec, Step
from handlers.routes import FLOWS
from tests import factories as f

UID = 8801
NUMBERED = re.compile(r"^(\d+)\. (.+)$")
LATER = "2027-01-05T10:00:00+00:00"
SATURDAY = "2027-01-09T10:00:00+00:00"
SAMPLES: dict[str, dict[str, Any]] = {
    "rating": {"unit_id": 1, "unit_name": "Bộ phận Một cửa", "procedure_name": None},
    "directive": {
        "number": "1/SGDĐT",
        "date": "2026-11-30",
        "title": "Tiêu đề",
        "summary": "Trích yếu",
        "target": "all",
        "audience": "everyone",
        "deadline": LATER,
        "deadline_held": SATURDAY,
    },
    "broadcast": {"html": "Thông báo", "segment": "staff", "send_at": LATER, "media": "text"},
    "task": {"title": "Báo cáo", "details": "", "units": [], "due": LATER, "due_held": SATURDAY},
    "apology": {
        "apology_id": 1,
        "reason": "Thiếu hồ sơ",
        "new_date": LATER,
        "new_date_held": SATURDAY,
    },
    "task_done": {"assignment_id": 1, "title": "Báo cáo"},
    "survey": {"campaign_id": 1},
    "survey_import": {
        "definition": '{"code": "X", "title": "X", "intro": "", "questions": []}',
    },
}


async def seed_apology(s, now) -> None:
    """Store a unit, a late dossier and its open apology (id 1) for the apology flow."""
    unit = await f.unit(s, "PGD1")
    s.add(
        Dossier(
            id=1,
            code="HS-1",
            unit_id=unit.id,
            citizen_name="Nguyễn Văn An",
            received_on=now.date(),
            appointment_at=now,
            status="processing",
            created_at=now,
            updated_at=now,
        )
    )
    await s.flush()
    s.add(
        Apology(
            id=1,
            dossier_id=1,
            unit_id=unit.id,
            original_appointment_at=now,
            asked_at=now,
            status=ApologyStatus.ASKED,
        )
    )


async def seed_survey(s, now) -> None:
    """Store campaign 1 with a questionnaire of every type, as long as a survey may be."""
    kinds: list[dict[str, Any]] = [
        {"type": "single", "options": ["Một", "Hai", "Ba"]},
        {"type": "multiple", "options": ["Zalo", "Telegram"], "optional": True},
        {"type": "scale", "scale": 5, "low": "Kém", "high": "Tốt"},
        {"type": "scale", "scale": 10, "low": "Kém", "high": "Tốt", "optional": True},
        {"type": "yes_no"},
        {"type": "text", "optional": True},
    ]
    questions = [
        (i, {"id": f"Q{i}", "text": f"Câu hỏi {i}", **kinds[i % len(kinds)]})
        for i in range(1, questionnaire.MAX_QUESTIONS + 1)
    ]
    form = questionnaire.check({"code": "ALL", "title": "Mọi loại"}, questions).definition
    assert form is not None
    row = await questionnaire.save(s, form, actor=system_actor("test"), now=now)
    s.add(
        Campaign(
            id=1,
            title="Khảo sát",
            questionnaire_id=row.id,
            audience="all",
            audience_label="all",
            opens_at=now,
            closes_at=now + timedelta(days=7),
            status=CampaignStatus.OPEN,
            salt="abc",
            created_by="test",
            created_at=now,
        )
    )


def every_step() -> list[tuple[str, str]]:
    """Return (flow, step) for each step of each flow the routes list."""
    return [(kind, step) for kind, spec in sorted(FLOWS.items()) for step in spec.table]


def shown_choices(api) -> list[tuple[int, str, str]]:
    """Return (number, label, callback data) of every numbered flow button last shown."""
    out = []
    for call in api.calls:
        rows = (call.params.get("reply_markup") or {}).get("inline_keyboard", [])
        for row in rows:
            for button in row:
                data = str(button["callback_data"])
                if data.startswith("flow:") and not data.endswith(("__back", "__cancel")):
                    m = NUMBERED.match(button["text"])
                    assert m, f"a choice without its number: {button['text']!r}"
                    out.append((int(m.group(1)), m.group(2), data))
    return out


def typed_label(label: str) -> str:
    """Return a label as a person types it: the words, without emoji or marks."""
    return " ".join("".join(c if c.isalnum() else " " for c in label).split())


@pytest.mark.parametrize(("kind", "step"), every_step())
async def test_typed_answers_at_every_step(bot_harness, clock, monkeypatch, kind, step):
    seen: list[Answer] = []

    async def record(ctx, data, answer: Answer) -> str:
        seen.append(answer)
        raise InvalidInput("flow.step_done")

    table = FLOWS[kind].table
    monkeypatch.setitem(table, step, replace(table[step], accept=record))
    await bot_harness.send(UID, "/help")
    async with bot_harness.maker() as s:
        contact = (await s.exec(select(Contact).where(Contact.external_id == str(UID)))).one()
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

    shown = await bot_harness.send(UID, "@@@")
    assert shown[0] == t("flow.step_done", "vi")
    assert seen.pop().text == "@@@"
    choices = shown_choices(bot_harness.api)
    numbers = [n for n, _, _ in choices]
    assert len(set(numbers)) == len(numbers)
    for number, label, data in choices:
        value = data.rsplit(":", 1)[1]
        await bot_harness.press(UID, data)
        assert seen.pop().choice == value
        for typed in (str(number), label, typed_label(label), typed_label(label).upper()):
            await bot_harness.send(UID, typed)
            assert (seen.pop().choice, typed) == (value, typed)
        if value == "skip":
            for word in SKIP_WORDS:
                await bot_harness.send(UID, word.upper())
                assert (seen.pop().choice, word) == ("skip", word)
    if not choices:
        await bot_harness.send(UID, "1")
        assert seen.pop() == Answer("1", None, None)


def test_every_flow_is_one_table_whose_steps_lead_to_its_own_steps():
    for spec in FLOWS.values():
        assert spec.first == spec.steps[0].name
        for step in spec.steps:
            assert set(step.goes_to()) <= {*spec.table, DONE}
    assert sorted(FLOWS) == [
        "apology",
        "broadcast",
        "case_answer",
        "case_close",
        "directive",
        "follow",
        "rating",
        "survey",
        "survey_import",
        "task",
        "task_done",
    ]


def test_a_table_naming_a_step_it_lacks_is_refused():
    async def noop(ctx, data, answer=None):
        return []

    with pytest.raises(ValueError, match="leads to"):
        FlowSpec(kind="x", steps=(Step("a", noop, noop, next="b"),), finish=noop)
    with pytest.raises(ValueError, match="twice"):
        FlowSpec(kind="x", steps=(Step("a", noop, noop), Step("a", noop, noop)), finish=noop)
