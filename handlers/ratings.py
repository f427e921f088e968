"""The citizen's rating flow: from a QR code's deep link to the stored rating, in under a minute."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from bot.messages import Button, OutboundMessage, Text
from bot.models import Unit
from bot.services.errors import InvalidInput
from bot.services.org.imports.values import FieldError, parse_phone
from bot.services.ratings import ratings, service_points
from handlers.context import Context, msg
from handlers.directives import calendar
from handlers.flows import (
    Answer,
    Data,
    FlowSpec,
    Step,
    ask,
    catalog_words,
    choice,
    fold,
    start,
    unaccented,
)

ELEMENT_STEPS = tuple(f"e_{k}" for k in ratings.ELEMENTS)


def level_buttons(*, skip: bool) -> tuple[tuple[Button, ...], ...]:
    """Return one button per level, best first, numbered by its score (5 = Rất hài lòng)."""
    rows = tuple((choice(f"rating.level_button.{v}", f"lv{v}", number=v),) for v in ratings.LEVELS)
    return (*rows, (choice("rating.skip", "skip", number=0),)) if skip else rows


def read_level(answer: Answer, *, skip: bool) -> int | None:
    """Read the level chosen (pressed, or typed as its number or words); None = skipped."""
    if answer.choice == "skip" and skip:
        return None
    if answer.choice and answer.choice.startswith("lv") and answer.choice[2:].isdigit():
        value = int(answer.choice[2:])
        if value in ratings.LEVELS:
            return value
    raise InvalidInput("rating.error.level")


async def prompt_dossier(ctx: Context, data: Data) -> list[OutboundMessage]:
    """Greet naming the unit (and procedure), then ask for the dossier code."""
    procedure = (
        Text("rating.procedure_line", {"name": data["procedure_name"]})
        if data.get("procedure_name")
        else ""
    )
    return [
        msg(
            "rating.greet",
            unit=data["unit_name"],
            procedure=procedure,
            buttons=((choice("rating.no_dossier", "skip"),),),
        )
    ]


NO_CODE = catalog_words("rating.no_code_words")
ANONYMOUS_WORDS = catalog_words("rating.anonymous_words")


async def accept_dossier(ctx: Context, data: Data, answer: Answer) -> None:
    """Keep a known, not yet rated dossier (it fills in the unit and procedure), or none."""
    if (
        answer.choice == "skip"
        or {fold(answer.text or ""), unaccented(answer.text or "")} & NO_CODE
    ):
        return
    if not answer.text:
        raise InvalidInput("rating.error.dossier_code")
    dossier = await ratings.dossier_for_rating(ctx.session, answer.text)
    if dossier.unit_id != data["unit_id"]:  # the dossier's unit is the one rated
        unit = await ctx.session.get(Unit, dossier.unit_id)
        data["unit_name"] = unit.name if unit else ""
    data.update(
        dossier_id=dossier.id,
        unit_id=dossier.unit_id,
        procedure_id=dossier.procedure_id or data.get("procedure_id"),
    )


async def prompt_overall(ctx: Context, data: Data) -> list[OutboundMessage]:
    """Ask for the overall satisfaction."""
    return [msg("rating.ask_overall", buttons=level_buttons(skip=False))]


async def accept_overall(ctx: Context, data: Data, answer: Answer) -> None:
    """Keep the overall level."""
    data["overall"] = read_level(answer, skip=False)


def element_prompt(name: str) -> Any:
    """Return the prompt of one SIPAS element."""

    async def prompt(ctx: Context, data: Data) -> list[OutboundMessage]:
        return [
            msg(
                "rating.ask_element",
                element=Text(f"rating.element.{name}"),
                number=ratings.ELEMENTS.index(name) + 1,
                buttons=level_buttons(skip=True),
            )
        ]

    return prompt


def element_accept(name: str) -> Any:
    """Return the step keeping one SIPAS element's level (skippable)."""

    async def accept(ctx: Context, data: Data, answer: Answer) -> None:
        level = read_level(answer, skip=True)
        data.setdefault("scores", {})
        if level is not None:
            data["scores"][name] = level

    return accept


def _optional_text(limit: int, field: str) -> Any:
    """Return a step keeping optional typed text of at most `limit` characters."""

    async def accept(ctx: Context, data: Data, answer: Answer) -> None:
        if answer.choice == "skip" or not answer.text:
            data[field] = None
            return
        if len(answer.text) > limit:
            raise InvalidInput("rating.error.too_long", limit=limit)
        data[field] = answer.text

    return accept


async def accept_identity(ctx: Context, data: Data, answer: Answer) -> str | None:
    """Stay anonymous (and finish), or go on to leave a phone number for a reply."""
    text = answer.text or ""
    if answer.choice == "anonymous" or {fold(text), unaccented(text)} & ANONYMOUS_WORDS:
        data["anonymous"] = True
        return None
    if answer.choice == "phone":
        data["anonymous"] = False
        return "phone"
    raise InvalidInput("directive.flow.use_buttons")


async def accept_phone(ctx: Context, data: Data, answer: Answer) -> None:
    """Keep a Vietnamese phone number."""
    try:
        data["phone"] = parse_phone(answer.text or "")
    except FieldError:
        raise InvalidInput("rating.error.phone", value=(answer.text or "")[:20]) from None


async def finish(ctx: Context, data: Data) -> list[OutboundMessage]:
    """Store the rating and thank the citizen."""
    draft = ratings.Draft(
        unit_id=data["unit_id"],
        procedure_id=data.get("procedure_id"),
        counter_id=data.get("counter_id"),
        dossier_id=data.get("dossier_id"),
        overall=data.get("overall"),
        scores=data.get("scores", {}),
        officer=data.get("officer"),
        comment=data.get("comment"),
        anonymous=data.get("anonymous", True),
        phone=data.get("phone"),
    )
    cal = calendar(ctx)
    days = ctx.deps.settings.ratings.case_working_days
    due = cal.close_of_business(ctx.now, days)
    row = await ratings.save(
        ctx.session, draft=draft, contact=ctx.contact, now=ctx.now, case_due_at=due
    )
    notice = ratings.follow_up_notice(row, unit=data.get("unit_name", ""), days=days, due=due)
    return [msg("rating.thanks"), *([notice] if notice else [])]


RATING_FLOW = FlowSpec(
    kind="rating",
    steps=(
        Step("dossier", prompt_dossier, accept_dossier, next="overall"),
        Step("overall", prompt_overall, accept_overall, next=ELEMENT_STEPS[0]),
        *(
            Step(step, element_prompt(name), element_accept(name), next=then)
            for name, step, then in zip(
                ratings.ELEMENTS, ELEMENT_STEPS, (*ELEMENT_STEPS[1:], "officer"), strict=True
            )
        ),
        Step(
            "officer",
            ask("rating.ask_officer", (choice("rating.skip", "skip"),)),
            _optional_text(255, "officer"),
            next="comment",
        ),
        Step(
            "comment",
            ask("rating.ask_comment", (choice("rating.skip", "skip"),)),
            _optional_text(1000, "comment"),
            next="identity",
        ),
        Step(
            "identity",
            ask(
                "rating.ask_identity",
                (choice("rating.anonymous_button", "anonymous"),),
                (choice("rating.phone_button", "phone"),),
            ),
            accept_identity,
            branches=("phone",),
        ),
        Step("phone", ask("rating.ask_phone"), accept_phone),
    ),
    finish=finish,
    ttl_of=lambda settings: timedelta(minutes=settings.ratings.flow_minutes),
)


async def start_rating(ctx: Context, payload: str) -> list[OutboundMessage]:
    """Open the rating flow for the service point a deep link names."""
    point = await service_points.resolve(ctx.session, payload)
    assert point.unit.id is not None
    await ratings.check_limit(
        ctx.session,
        contact=ctx.contact,
        unit_id=point.unit.id,
        now=ctx.now,
        limit=ctx.deps.settings.ratings.daily_limit_per_unit,
    )
    data = {
        "unit_id": point.unit.id,
        "unit_name": point.unit.name,
        "counter_id": point.counter.id if point.counter else None,
        "procedure_id": point.procedure.id if point.procedure else None,
        "procedure_name": point.procedure.name if point.procedure else None,
    }
    return await start(ctx, RATING_FLOW, data)
