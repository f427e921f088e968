"""Directives in chat: issuing (a guided flow), acknowledging, and following up with /status."""

from __future__ import annotations

import re
from collections import Counter
from datetime import date, datetime, timedelta
from typing import Any

from bot.messages import Items, OutboundMessage, Text
from bot.models import Audience, Role, UnitKind
from bot.services.calendar import CLOSE, WorkCalendar
from bot.services.directives import attachments, directives
from bot.services.errors import InvalidInput
from bot.services.org.access import require
from bot.services.reports import documents
from handlers.context import Context, msg
from handlers.flows import (
    Accept,
    Answer,
    Data,
    FlowSpec,
    Prompt,
    Step,
    ask,
    choice,
    confirm_on,
    start,
)
from handlers.registry import row_id

DATE_RE = re.compile(r"^(\d{1,2})[/.-](\d{1,2})[/.-](\d{4})(?:\s+(\d{1,2})[:h](\d{2}))?$")
KIND_TARGETS = {
    "offices": UnitKind.OFFICE,
    "affiliated": UnitKind.AFFILIATED,
    "communes": UnitKind.COMMUNE,
    "schools": UnitKind.SCHOOL,
}


def calendar(ctx: Context) -> WorkCalendar:
    """Return the working calendar of this installation."""
    return WorkCalendar.from_settings(ctx.deps.settings)


def parse_date(text: str | None) -> tuple[date, str | None]:
    """Read 'dd/mm/yyyy [HH:MM]'; raise a translated error naming the expected form."""
    m = DATE_RE.match((text or "").strip())
    if not m:
        raise InvalidInput("directive.flow.bad_date", value=(text or "")[:40])
    day, month, year, hh, mm = m.groups()
    try:
        parsed = date(int(year), int(month), int(day))
    except ValueError:
        raise InvalidInput("directive.flow.bad_date", value=(text or "")[:40]) from None
    return parsed, f"{int(hh):02d}:{mm}" if hh else None


def _text_step(field: str, limit: int) -> Any:
    """Return an accept function storing typed text of at most `limit` characters."""

    async def accept(ctx: Context, data: Data, answer: Answer) -> None:
        if not answer.text:
            raise InvalidInput("directive.error.required", field=Text(f"directive.field.{field}"))
        if len(answer.text) > limit:
            raise InvalidInput(
                "directive.error.too_long", field=Text(f"directive.field.{field}"), limit=limit
            )
        data[field] = answer.text

    return accept


async def accept_date(ctx: Context, data: Data, answer: Answer) -> None:
    """Store the date of issue ('today' or dd/mm/yyyy)."""
    if answer.choice == "today":
        data["date"] = calendar(ctx).local(ctx.now).date().isoformat()
    else:
        data["date"] = parse_date(answer.text)[0].isoformat()


async def accept_file(ctx: Context, data: Data, answer: Answer) -> None:
    """Keep the attached document, or skip."""
    if answer.choice == "skip":
        data["attachment_id"] = None
        return
    ref = ctx.event.file
    fetch = ctx.deps.fetch_file
    if ref is None or fetch is None:
        raise InvalidInput("directive.flow.need_file")
    attachments.mime_for(ref.name)
    row = await attachments.keep_upload(
        ctx.session,
        name=ref.name,
        data=await fetch(ref.file_id),
        now=ctx.now,
        channel=ctx.event.channel,
        file_id=ref.file_id,
    )
    data["attachment_id"] = row.id


async def accept_target(ctx: Context, data: Data, answer: Answer) -> str | None:
    """Store the target: all units, a kind of unit, or codes to type next."""
    if answer.choice in ("all", *KIND_TARGETS):
        data["target"] = answer.choice
        return None
    if answer.choice == "pick":
        return "units"
    raise InvalidInput("directive.flow.use_buttons")


async def accept_units(ctx: Context, data: Data, answer: Answer) -> None:
    """Store typed unit codes ('CODE*' takes a unit and everything under it)."""
    codes = [c for c in re.split(r"[,;\s]+", answer.text or "") if c]
    if not codes:
        raise InvalidInput("directive.error.no_target")
    await directives.resolve_units(ctx.session, _target_of({"target": "pick", "codes": codes}))
    data["target"], data["codes"] = "pick", codes


async def accept_audience(ctx: Context, data: Data, answer: Answer) -> None:
    """Store who receives it: everyone or heads only."""
    if answer.choice not in (Audience.EVERYONE.value, Audience.HEADS.value):
        raise InvalidInput("directive.flow.use_buttons")
    data["audience"] = answer.choice


def read_due(ctx: Context, answer: Answer, *, past_key: str) -> datetime:
    """Read a due moment: a button of N working days, or a typed date (17:00 by default)."""
    cal = calendar(ctx)
    if answer.choice and answer.choice.isdigit():
        due = cal.close_of_business(ctx.now, int(answer.choice))
    else:
        day, hh_mm = parse_date(answer.text)
        due = cal.at_local(day, hh_mm or CLOSE)
    if due <= ctx.now:
        raise InvalidInput(past_key)
    return due


def keep_working_day(ctx: Context, data: Data, field: str, due: datetime) -> str | None:
    """Store a moment on a working day and go on; hold one on a day off (step `<field>_move`)."""
    cal = calendar(ctx)
    if cal.check_working_day(cal.local(due).date()) is None:
        data[field] = due.isoformat()
        data.pop(f"{field}_held", None)
        return None
    data[f"{field}_held"] = due.isoformat()
    return f"{field}_move"


def move_prompt(field: str) -> Prompt:
    """Return the prompt that offers to move a held date to the next working day."""

    async def prompt(ctx: Context, data: Data) -> list[OutboundMessage]:
        cal = calendar(ctx)
        held = cal.local(datetime.fromisoformat(data[f"{field}_held"]))
        off = cal.check_working_day(held.date())
        other = (choice("calendar.flow.other", "other"),)
        if off is None:  # the calendar changed meanwhile: only "pick another date" is left
            return [msg("calendar.flow.other", buttons=(other,))]
        move = choice("calendar.flow.move", "move", next_day=off.params()["next_day"])
        buttons = ((move,), other)
        return [
            msg(
                "calendar.flow.ask_move",
                reason=off.text(),
                next_day=off.params()["next_day"],
                buttons=buttons,
            )
        ]

    return prompt


def move_step(field: str, date_step: Accept, then: str) -> Step:
    """Return the step that moves a held date, asks for another, or reads a typed one."""
    return Step(
        f"{field}_move",
        move_prompt(field),
        move_accept(field, date_step),
        next=then,
        branches=(field, f"{field}_move"),
    )


def move_accept(field: str, date_step: Accept) -> Accept:
    """Return the accept that moves the held date, asks for another, or reads a typed one."""

    async def accept(ctx: Context, data: Data, answer: Answer) -> str | None:
        if answer.choice == "move":
            held = datetime.fromisoformat(data.pop(f"{field}_held"))
            data[field] = calendar(ctx).require_working_day(held, move=True).isoformat()
            return None
        if answer.choice == "other":
            return field
        if answer.text:
            return await date_step(ctx, data, answer)
        raise InvalidInput("directive.flow.use_buttons")

    return accept


async def accept_deadline(ctx: Context, data: Data, answer: Answer) -> str | None:
    """Store the acknowledgement deadline (a day off is held until moved or changed)."""
    due = read_due(ctx, answer, past_key="directive.error.deadline_past")
    return keep_working_day(ctx, data, "deadline", due)


def _target_of(data: Data) -> directives.Target:
    """Turn the flow's answers into a target."""
    kind = data.get("target")
    if kind == "all":
        return directives.Target(all=True)
    if kind in KIND_TARGETS:
        return directives.Target(kinds=(KIND_TARGETS[kind],))
    codes = data.get("codes", [])
    subtree = next((c.rstrip("*") for c in codes if c.endswith("*")), None)
    return directives.Target(units=tuple(c for c in codes if not c.endswith("*")), subtree=subtree)


def draft_of(data: Data) -> directives.Draft:
    """Turn the flow's answers into a draft."""
    return directives.Draft(
        number=data["number"],
        issued_on=date.fromisoformat(data["date"]),
        title=data["title"],
        summary=data["summary"],
        target=_target_of(data),
        audience=Audience(data["audience"]),
        ack_deadline=datetime.fromisoformat(data["deadline"]),
        attachment_id=data.get("attachment_id"),
    )


async def prompt_confirm(ctx: Context, data: Data) -> list[OutboundMessage]:
    """Show the notice exactly as recipients will see it, who it reaches, and confirm."""
    draft = draft_of(data)
    plan = await directives.plan(ctx.session, draft)
    preview = directives.preview(draft, units=directives.units_label(plan.units))
    return [
        preview,
        msg(
            "directive.flow.confirm",
            units=len(plan.units),
            reachable=len(plan.reachable),
            unreachable=len(plan.unreachable),
            buttons=((choice("directive.flow.send", "send"),),),
        ),
    ]


async def finish(ctx: Context, data: Data) -> list[OutboundMessage]:
    """Issue the directive and report who it reached and who it could not."""
    cal = calendar(ctx)
    fallback = cal.close_of_business(ctx.now, ctx.deps.settings.directives.default_ack_days)
    issued = await directives.issue(
        ctx.session,
        actor=ctx.actor,
        draft=draft_of(data),
        now=ctx.now,
        default_deadline=fallback,
        cal=cal,
    )
    lines = Items(
        "directive.unreachable_line",
        tuple({"name": r.person.full_name, "unit": r.unit.name} for r in issued.unreachable),
    )
    return [
        msg(
            "directive.issued",
            number=issued.directive.number,
            queued=issued.queued,
            unreachable=len(issued.unreachable),
        ),
        *([msg("directive.flow.unreachable_list", lines=lines)] if issued.unreachable else []),
    ]


DIRECTIVE_FLOW = FlowSpec(
    kind="directive",
    steps=(
        Step(
            "number",
            ask("directive.flow.ask_number"),
            _text_step("number", directives.NUMBER_MAX),
            next="date",
        ),
        Step(
            "date",
            ask("directive.flow.ask_date", (choice("directive.flow.today", "today"),)),
            accept_date,
            next="title",
        ),
        Step(
            "title",
            ask("directive.flow.ask_title"),
            _text_step("title", directives.TITLE_MAX),
            next="summary",
        ),
        Step(
            "summary",
            ask("directive.flow.ask_summary"),
            _text_step("summary", directives.SUMMARY_MAX),
            next="file",
        ),
        Step(
            "file",
            ask("directive.flow.ask_file", (choice("directive.flow.skip", "skip"),)),
            accept_file,
            next="target",
        ),
        Step(
            "target",
            ask(
                "directive.flow.ask_target",
                (choice("directive.flow.target_all", "all"),),
                (
                    choice("directive.flow.target_offices", "offices"),
                    choice("directive.flow.target_affiliated", "affiliated"),
                ),
                (
                    choice("directive.flow.target_communes", "communes"),
                    choice("directive.flow.target_schools", "schools"),
                ),
                (choice("directive.flow.target_pick", "pick"),),
            ),
            accept_target,
            next="audience",
            branches=("units",),
        ),
        Step("units", ask("directive.flow.ask_units"), accept_units, next="audience"),
        Step(
            "audience",
            ask(
                "directive.flow.ask_audience",
                (
                    choice("directive.flow.audience_everyone", Audience.EVERYONE.value),
                    choice("directive.flow.audience_heads", Audience.HEADS.value),
                ),
            ),
            accept_audience,
            next="deadline",
        ),
        Step(
            "deadline",
            ask(
                "directive.flow.ask_deadline",
                tuple(choice("directive.flow.days", str(n), n=n, number=n) for n in (1, 2, 3)),
            ),
            accept_deadline,
            next="confirm",
            branches=("deadline_move",),
        ),
        move_step("deadline", accept_deadline, then="confirm"),
        Step("confirm", prompt_confirm, confirm_on("send")),
    ),
    finish=finish,
    ttl=timedelta(hours=4),
)


async def directive(ctx: Context) -> list[OutboundMessage]:
    """Start the guided flow that issues a directive."""
    require(ctx.actor, Role.ADMIN)
    return await start(ctx, DIRECTIVE_FLOW)


async def ack(ctx: Context) -> list[OutboundMessage]:
    """Record an acknowledgement and show its time on the notice."""
    arg = (ctx.event.action or "").partition(":")[2]
    if arg == "preview":
        return [msg("directive.preview_pressed")]
    recipient_id = row_id(arg)
    if recipient_id is None:
        return [msg("errors.unknown_action")]
    d, row, first = await directives.acknowledge(
        ctx.session, contact=ctx.contact, recipient_id=recipient_id, now=ctx.now
    )
    if not first:
        return [msg("directive.already_acked", acked_at=row.acked_at)]
    units = directives.units_label(await directives.units_of(ctx.session, d))
    return [
        msg(
            "directive.notice_acked",
            edit=True,
            number=d.number,
            date=d.issued_on,
            title=d.title,
            summary=d.summary,
            units=units,
            acked_at=row.acked_at,
        )
    ]


async def status(ctx: Context) -> list[OutboundMessage]:
    """List open directives, or show one unit by unit (optionally as XLSX)."""
    args = ctx.event.args
    if not args:
        rows = await directives.open_directives(ctx.session, actor=ctx.actor)
        if not rows:
            return [msg("directive.open_empty")]
        lines = Items(
            "directive.open_line",
            tuple(
                {"id": d.id, "number": d.number, "title": d.title, "total": n, "acked": a}
                for d, n, a in rows
            ),
        )
        return [msg("directive.open_header", lines=lines)]
    if not args[0].lstrip("#").isdigit() or len(args) > 2:
        raise InvalidInput("errors.usage", usage=Text("directive.status_usage"))
    result = await directives.status(
        ctx.session, actor=ctx.actor, directive_id=int(args[0].lstrip("#"))
    )
    if len(args) == 2 and args[1].lower() == "xlsx":
        await documents.queue_status_xlsx(
            ctx.session,
            contact=ctx.contact,
            status=result,
            now=ctx.now,
            settings=ctx.deps.settings,
        )
        return [msg("directive.xlsx_queued")]
    return [status_message(result)]


def _median(seconds: float) -> Text:
    """Return a median delay in minutes under an hour, else in hours with a decimal comma."""
    if seconds < 3600:
        return Text("directive.status_median_minutes", {"minutes": max(1, round(seconds / 60))})
    return Text("directive.status_median", {"hours": seconds / 3600})


def _channels(u: directives.UnitStatus) -> Text | str:
    """Count the people of a unit reached on each channel ('Telegram 3, Zalo 1')."""
    counts = Counter(p.channel for p in u.people if p.channel)
    if not counts:
        return ""
    rows = tuple({"name": Text(f"channel.{c}"), "count": n} for c, n in sorted(counts.items()))
    return Text(
        "directive.status_channels", {"counts": Items("directive.status_count", rows, ", ")}
    )


def _names(u: directives.UnitStatus) -> Items:
    """List who has not acknowledged, each with their channel when the unit's people use several."""
    several = len({p.channel for p in u.people if p.channel}) > 1
    rows = tuple(
        {
            "name": name,
            "on": Text("directive.status_on", {"channel": Text(f"channel.{channel}")})
            if several and (channel := u.channel_of(name))
            else "",
        }
        for name in u.missing
    )
    return Items("directive.status_name", rows, ", ")


def status_message(result: directives.Status) -> OutboundMessage:
    """Render a directive's status as one message."""
    d = result.directive
    lines = Items(
        "directive.status_line",
        tuple(
            {
                "unit": u.unit.name,
                "acked": u.acked,
                "total": u.total,
                "median": _median(u.median_seconds) if u.median_seconds is not None else "",
                "channels": _channels(u),
                "missing": Text("directive.status_missing", {"names": _names(u)})
                if u.missing
                else "",
                "unreached": Text("directive.status_unreached", {"names": ", ".join(u.unreached)})
                if u.unreached
                else "",
            }
            for u in result.units
        ),
    )
    return msg(
        "directive.status_header",
        number=d.number,
        title=d.title,
        deadline=d.ack_deadline,
        acked=result.acked,
        total=result.total,
        lines=lines,
    )
