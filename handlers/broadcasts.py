"""Broadcasts in chat: the admin's guided flow, /broadcasts with live progress, cancelling."""

from __future__ import annotations

import html
import re
from datetime import datetime, timedelta

from bot.i18n import has_key
from bot.messages import Button, Items, OutboundMessage, Text
from bot.models import BroadcastStatus, Role, UnitKind
from bot.services.directives import attachments, broadcasts
from bot.services.directives.directives import Target, resolve_units
from bot.services.errors import InvalidInput
from bot.services.org.access import require
from handlers.context import Context, msg
from handlers.directives import calendar, parse_date
from handlers.flows import Answer, Data, FlowSpec, Step, ask, choice, confirm_on, start
from handlers.registry import row_id

SEGMENTS = {
    "staff": broadcasts.Segment(staff=True),
    "heads": broadcasts.Segment(staff=True, roles=(Role.UNIT_HEAD,)),
    "schools": broadcasts.Segment(staff=True, kinds=(UnitKind.SCHOOL,)),
    "citizens": broadcasts.Segment(staff=False, citizens=True),
    "everyone": broadcasts.Segment(staff=True, citizens=True),
}


async def accept_content(ctx: Context, data: Data, answer: Answer) -> None:
    """Keep the formatted text, or a photo or document with its caption."""
    text_html = ctx.event.html or html.escape(answer.text or "", quote=False)
    ref = answer.file
    attachment_id, media = None, "text"
    if ref is not None:
        if ctx.deps.fetch_file is None:
            raise InvalidInput("directive.flow.need_file")
        media = "photo" if ref.mime_type.startswith("image/") else "document"
        name = ref.name if media == "document" else "photo.jpg"
        row = await attachments.keep_upload(
            ctx.session,
            name=name,
            data=await ctx.deps.fetch_file(ref.file_id),
            now=ctx.now,
            channel=ctx.event.channel,
            file_id=ref.file_id,
        )
        attachment_id = row.id
    broadcasts.validate(text_html, attachment_id=attachment_id)
    data.update(html=text_html, attachment_id=attachment_id, media=media)


async def accept_segment(ctx: Context, data: Data, answer: Answer) -> str | None:
    """Keep the chosen segment, or ask for unit codes."""
    if answer.choice in SEGMENTS:
        data["segment"] = answer.choice
        return None
    if answer.choice == "units":
        return "units"
    raise InvalidInput("directive.flow.use_buttons")


async def accept_units(ctx: Context, data: Data, answer: Answer) -> None:
    """Keep typed unit codes (CODE* for a unit and all below it)."""
    codes = [c for c in re.split(r"[,;\s]+", answer.text or "") if c]
    segment = _units_segment(codes)
    if not codes:
        raise InvalidInput("directive.error.no_target")
    await broadcasts.recipients(ctx.session, segment)
    data["segment"], data["codes"] = "units", codes


def _units_segment(codes: list[str]) -> broadcasts.Segment:
    """Return the segment of the staff of typed units."""
    subtree = next((c.rstrip("*") for c in codes if c.endswith("*")), None)
    return broadcasts.Segment(units=tuple(c for c in codes if not c.endswith("*")), subtree=subtree)


def segment_of(data: Data) -> broadcasts.Segment:
    """Return the segment the flow chose."""
    if data["segment"] == "units":
        return _units_segment(data["codes"])
    return SEGMENTS[data["segment"]]


async def accept_when(ctx: Context, data: Data, answer: Answer) -> str | None:
    """Keep 'now' (within the quiet hours, ask first) or a typed local date and time."""
    if answer.choice == "now":
        data["send_at"] = ctx.now.isoformat()
        return "quiet" if calendar(ctx).in_quiet_hours(ctx.now) else None
    day, hh_mm = parse_date(answer.text)
    moment = calendar(ctx).at_local(day, hh_mm or "08:00")
    if moment <= ctx.now:
        raise InvalidInput("broadcast.error.past")
    data["send_at"] = moment.isoformat()
    return None


async def prompt_quiet(ctx: Context, data: Data) -> list[OutboundMessage]:
    """Warn that now is within the quiet hours: send anyway, or when they end."""
    cal = calendar(ctx)
    after = cal.after_quiet_hours(ctx.now)
    buttons = (
        (choice("broadcast.flow.quiet_later", "later", at=after),),
        (choice("broadcast.flow.quiet_anyway", "anyway"),),
    )
    settings = ctx.deps.settings.scheduler
    return [
        msg(
            "broadcast.flow.quiet_ask",
            start=settings.quiet_hours_start,
            end=settings.quiet_hours_end,
            at=after,
            buttons=buttons,
        )
    ]


async def accept_quiet(ctx: Context, data: Data, answer: Answer) -> str | None:
    """Send now anyway, or at the end of the quiet hours, or at a typed moment."""
    if answer.choice == "anyway":
        data["send_at"] = ctx.now.isoformat()
        return None
    if answer.choice == "later":
        data["send_at"] = calendar(ctx).after_quiet_hours(ctx.now).isoformat()
        return None
    if answer.text:
        return await accept_when(ctx, data, answer)
    raise InvalidInput("directive.flow.use_buttons")


async def prompt_confirm(ctx: Context, data: Data) -> list[OutboundMessage]:
    """Show the broadcast exactly as recipients will see it, and how many it reaches."""
    reach = await broadcasts.recipients(ctx.session, segment_of(data))
    preview = broadcasts.message(
        data["html"], attachment_id=data.get("attachment_id"), media=data["media"]
    )
    return [
        preview,
        msg(
            "broadcast.flow.confirm",
            count=len(reach),
            send_at=datetime.fromisoformat(data["send_at"]),
            buttons=((choice("broadcast.flow.send", "send"),),),
        ),
    ]


async def finish(ctx: Context, data: Data) -> list[OutboundMessage]:
    """Queue the broadcast and say how many it goes to."""
    label = data["segment"]
    if label == "units":
        segment = _units_segment(data["codes"])
        typed = (*segment.units, *((segment.subtree,) if segment.subtree else ()))
        found = await resolve_units(ctx.session, Target(units=typed))
        label = ", ".join(u.name for u in found)
    row = await broadcasts.create(
        ctx.session,
        actor=ctx.actor,
        text_html=data["html"],
        segment=segment_of(data),
        label=label,
        send_at=datetime.fromisoformat(data["send_at"]),
        now=ctx.now,
        attachment_id=data.get("attachment_id"),
        media=data["media"],
        paid=ctx.deps.settings.delivery.paid_broadcast,
    )
    return [msg("broadcast.created", id=row.id, count=row.total, send_at=row.send_at)]


BROADCAST_FLOW = FlowSpec(
    kind="broadcast",
    steps=(
        Step("content", ask("broadcast.flow.ask_content"), accept_content, next="segment"),
        Step(
            "segment",
            ask(
                "broadcast.flow.ask_segment",
                (
                    choice("broadcast.flow.staff", "staff"),
                    choice("broadcast.flow.heads", "heads"),
                ),
                (
                    choice("broadcast.flow.units", "units"),
                    choice("broadcast.flow.citizens", "citizens"),
                ),
                (choice("broadcast.flow.everyone", "everyone"),),
            ),
            accept_segment,
            next="when",
            branches=("units",),
        ),
        Step("units", ask("directive.flow.ask_units"), accept_units, next="when"),
        Step(
            "when",
            ask("broadcast.flow.ask_when", (choice("broadcast.flow.now", "now"),)),
            accept_when,
            next="confirm",
            branches=("quiet",),
        ),
        Step("quiet", prompt_quiet, accept_quiet, next="confirm"),
        Step("confirm", prompt_confirm, confirm_on("send")),
    ),
    finish=finish,
    ttl=timedelta(hours=2),
)


async def broadcast(ctx: Context) -> list[OutboundMessage]:
    """Start the guided flow that sends an announcement or a survey."""
    require(ctx.actor, Role.ADMIN)
    return await start(ctx, BROADCAST_FLOW)


def _segment_words(label: str) -> Text | str:
    """Return a broadcast's recipients in words: a segment's name, or the units' names."""
    return Text(f"broadcast.flow.{label}") if has_key(f"broadcast.flow.{label}") else label


def _state(p: broadcasts.Progress, ctx: Context) -> Text:
    """Return the broadcast's state as a catalog text."""
    if p.broadcast.status == BroadcastStatus.CANCELLED:
        return Text("broadcast.state.cancelled")
    if p.broadcast.send_at > ctx.now:
        return Text("broadcast.state.scheduled")
    return Text("broadcast.state.sending" if p.pending else "broadcast.state.done")


async def list_broadcasts(ctx: Context) -> list[OutboundMessage]:
    """List recent broadcasts with live progress, and a cancel button for running ones."""
    rows = await broadcasts.recent(ctx.session, actor=ctx.actor)
    if not rows:
        return [msg("broadcast.none")]
    lines = Items(
        "broadcast.line",
        tuple(
            {
                "id": p.broadcast.id,
                "state": _state(p, ctx),
                "segment": _segment_words(p.broadcast.segment_label),
                "send_at": p.broadcast.send_at,
                "sent": p.sent,
                "failed": p.failed,
                "pending": p.pending,
                "total": p.broadcast.total,
            }
            for p in rows
        ),
    )
    buttons = tuple(
        (Button("broadcast.cancel_button", f"bcancel:{p.broadcast.id}", {"id": p.broadcast.id}),)
        for p in rows
        if p.running
    )
    return [msg("broadcast.list", lines=lines, buttons=buttons)]


async def cancel_pressed(ctx: Context) -> list[OutboundMessage]:
    """Ask to confirm a cancel, then cancel: nothing leaves after the confirmation."""
    _, _, rest = (ctx.event.action or "").partition(":")
    ident, _, confirmed = rest.partition(":")
    if row_id(ident) is None or confirmed not in ("", "yes"):
        return [msg("errors.unknown_action")]
    if confirmed != "yes":
        require(ctx.actor, Role.ADMIN)
        yes = Button("broadcast.cancel_confirm", f"bcancel:{ident}:yes", {"id": int(ident)})
        return [msg("broadcast.cancel_ask", id=int(ident), buttons=((yes,),))]
    p = await broadcasts.cancel(ctx.session, actor=ctx.actor, broadcast_id=int(ident), now=ctx.now)
    return [msg("broadcast.cancelled", edit=True, id=int(ident), sent=p.sent, stopped=p.cancelled)]
