"""Follow-up of bad ratings in chat: the head answers or closes; the citizen says if settled."""

from __future__ import annotations

from datetime import timedelta

from bot.messages import OutboundMessage
from bot.services.errors import InvalidInput
from bot.services.ratings import cases
from handlers.context import Context, msg
from handlers.flows import Answer, Data, FlowSpec, Step, ask, start
from handlers.registry import row_id


async def accept_text(ctx: Context, data: Data, answer: Answer) -> None:
    """Keep the typed answer or closing note."""
    if not answer.text:
        raise InvalidInput("case.error.empty")
    data["text"] = answer.text


async def finish_answer(ctx: Context, data: Data) -> list[OutboundMessage]:
    """Send the answer to the citizen."""
    case = await cases.answer(
        ctx.session, actor=ctx.actor, case_id=data["case_id"], text=data["text"], now=ctx.now
    )
    return [msg("case.answered", id=case.id)]


async def finish_close(ctx: Context, data: Data) -> list[OutboundMessage]:
    """Close the case with the note."""
    case = await cases.close(
        ctx.session, actor=ctx.actor, case_id=data["case_id"], note=data["text"], now=ctx.now
    )
    assert case.closed_at is not None
    key = "case.closed_on_time" if case.closed_at <= case.due_at else "case.closed_late"
    return [msg(key, id=case.id)]


ANSWER_FLOW = FlowSpec(
    kind="case_answer",
    steps=(Step("text", ask("case.ask_answer"), accept_text),),
    finish=finish_answer,
    ttl=timedelta(hours=8),
)
CLOSE_FLOW = FlowSpec(
    kind="case_close",
    steps=(Step("text", ask("case.ask_close"), accept_text),),
    finish=finish_close,
    ttl=timedelta(hours=8),
)


async def case_pressed(ctx: Context) -> list[OutboundMessage]:
    """Start answering the citizen, or closing the case, from the head's alert."""
    parts = (ctx.event.action or "").split(":")
    verb, case_id = (parts[1], row_id(parts[2])) if len(parts) == 3 else ("", None)
    if verb not in ("answer", "close") or case_id is None:
        return [msg("errors.unknown_action")]
    await cases.check(ctx.session, actor=ctx.actor, case_id=case_id, answering=verb == "answer")
    return await start(ctx, ANSWER_FLOW if verb == "answer" else CLOSE_FLOW, {"case_id": case_id})


async def citizen_feedback(ctx: Context) -> list[OutboundMessage]:
    """Record, once, whether the head's answer settles it; the answer itself stays on screen."""
    parts = (ctx.event.action or "").split(":")
    case_id = row_id(parts[1]) if len(parts) == 3 else None
    if case_id is None or parts[2] not in ("yes", "no"):
        return [msg("errors.unknown_action")]
    await cases.citizen_reply(
        ctx.session,
        contact=ctx.contact,
        case_id=case_id,
        settled=parts[2] == "yes",
        now=ctx.now,
    )
    return [
        msg("case.thanks_settled" if parts[2] == "yes" else "case.thanks_not_settled", edit=True)
    ]
