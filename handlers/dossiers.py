"""Dossiers in chat: a citizen follows one; a head writes the apology for a late one."""

from __future__ import annotations

from datetime import datetime, timedelta

from bot.messages import OutboundMessage, Text
from bot.models import Apology, Dossier, Role
from bot.services.calendar import CLOSE
from bot.services.dossiers import apologies, dossiers
from bot.services.dossiers.apology_slip import Issuer
from bot.services.errors import InvalidInput, NotFound, PermissionDenied, ServiceError
from bot.services.org.access import require
from handlers.context import Context, msg
from handlers.directives import calendar, keep_working_day, move_step, parse_date
from handlers.flows import Answer, Data, FlowSpec, Step, ask, choice, confirm_on, start
from handlers.registry import row_id


async def accept_code(ctx: Context, data: Data, answer: Answer) -> None:
    """Keep the dossier code."""
    if not answer.text:
        raise InvalidInput("dossier.flow.need_code")
    data["code"] = answer.text.strip()


async def accept_last4(ctx: Context, data: Data, answer: Answer) -> None:
    """Check the phone's last 4 digits; a failure is counted even though the flow goes on."""
    try:
        dossier = await dossiers.follow(
            ctx.session,
            contact=ctx.contact,
            code=data["code"],
            last4=(answer.text or "").strip(),
            now=ctx.now,
        )
    except PermissionDenied:
        raise
    except (InvalidInput, NotFound) as err:
        raise InvalidInput(err.key, **err.params) from None
    data["dossier_id"] = dossier.id


async def finish_follow(ctx: Context, data: Data) -> list[OutboundMessage]:
    """Show the dossier's status; changes will follow."""
    dossier = await ctx.session.get(Dossier, data["dossier_id"])
    assert dossier is not None
    return [msg("dossier.flow.following"), dossiers.status_message(dossier)]


FOLLOW_FLOW = FlowSpec(
    kind="follow",
    steps=(
        Step("code", ask("dossier.flow.ask_code"), accept_code, next="last4"),
        Step("last4", ask("dossier.flow.ask_last4"), accept_last4),
    ),
    finish=finish_follow,
    ttl=timedelta(minutes=30),
)


async def follow(ctx: Context) -> list[OutboundMessage]:
    """Follow a dossier by its receipt code and the phone number's last 4 digits."""
    return await start(ctx, FOLLOW_FLOW)


async def accept_reason(ctx: Context, data: Data, answer: Answer) -> None:
    """Keep the reason for the delay."""
    if not answer.text:
        raise InvalidInput("apology.reason_required")
    data["reason"] = answer.text


def issuer_of(ctx: Context) -> Issuer:
    """Return the issuing agency the configuration names."""
    agency = ctx.deps.settings.agency
    return Issuer(name=agency.name, symbol=agency.symbol, place=agency.place)


async def accept_new_date(ctx: Context, data: Data, answer: Answer) -> str | None:
    """Take the new return date (17:00 when no time is typed); a day off is held."""
    day, hh_mm = parse_date(answer.text)
    new_date = calendar(ctx).at_local(day, hh_mm or CLOSE)
    apologies.check_after(await _apology(ctx, data), new_date, now=ctx.now)
    return keep_working_day(ctx, data, "new_date", new_date)


async def _apology(ctx: Context, data: Data) -> Apology:
    """Return the flow's apology, translating a refusal into the step's error."""
    try:
        return await apologies.get(ctx.session, apology_id=data["apology_id"])
    except ServiceError as err:
        raise InvalidInput(err.key, **err.params) from None


async def prompt_confirm(ctx: Context, data: Data) -> list[OutboundMessage]:
    """Show the apology as it will go out, and who will receive it, before sending."""
    apology = await _apology(ctx, data)
    dossier = await ctx.session.get(Dossier, apology.dossier_id)
    assert dossier is not None
    followers = await dossiers.followers(ctx.session, dossier_id=dossier.id or 0)
    reach = (
        Text("dossier.flow.apology_reach", {"count": len(followers)})
        if followers
        else Text("dossier.flow.apology_no_follower")
    )
    return [
        msg(
            "dossier.flow.apology_confirm",
            code=dossier.code,
            name=dossier.citizen_name,
            appointment=apology.original_appointment_at,
            reason=data["reason"],
            new_date=datetime.fromisoformat(data["new_date"]),
            reach=reach,
            buttons=((choice("dossier.flow.apology_send", "send"),),),
        )
    ]


async def finish_apology(ctx: Context, data: Data) -> list[OutboundMessage]:
    """Send the slip; say it went out only when a message was queued, else how to print it."""
    try:
        apology = await apologies.answer(
            ctx.session,
            actor=ctx.actor,
            apology_id=data["apology_id"],
            reason=data["reason"],
            new_return_at=datetime.fromisoformat(data["new_date"]),
            now=ctx.now,
            cal=calendar(ctx),
            issuer=issuer_of(ctx),
        )
    except InvalidInput:
        raise
    except ServiceError as err:
        raise InvalidInput(err.key, **err.params) from None
    new_date = apology.new_return_at
    if await apologies.queued_count(ctx.session, apology_id=apology.id or 0):
        return [msg("dossier.flow.apology_sent", id=apology.id, new_date=new_date)]
    await apologies.queue_slip_copy(ctx.session, apology=apology, contact=ctx.contact, now=ctx.now)
    dossier = await ctx.session.get(Dossier, apology.dossier_id)
    assert dossier is not None
    return [
        msg(
            "dossier.flow.apology_not_sent",
            id=apology.id,
            new_date=new_date,
            code=dossier.code,
            name=dossier.citizen_name,
        )
    ]


APOLOGY_FLOW = FlowSpec(
    kind="apology",
    steps=(
        Step("reason", ask("dossier.flow.ask_reason"), accept_reason, next="new_date"),
        Step(
            "new_date",
            ask("dossier.flow.ask_new_date"),
            accept_new_date,
            next="confirm",
            branches=("new_date_move",),
        ),
        move_step("new_date", accept_new_date, then="confirm"),
        Step("confirm", prompt_confirm, confirm_on("send")),
    ),
    finish=finish_apology,
    ttl=timedelta(hours=8),
)


async def apology_pressed(ctx: Context) -> list[OutboundMessage]:
    """Start writing the apology for a late dossier (its unit's head, or an admin)."""
    apology_id = row_id((ctx.event.action or "").partition(":")[2])
    if apology_id is None:
        return [msg("errors.unknown_action")]
    require(ctx.actor, Role.ADMIN, Role.UNIT_HEAD)
    return await start(ctx, APOLOGY_FLOW, {"apology_id": apology_id})
