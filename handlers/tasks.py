"""Deadline tasks in chat: /tasks, the «Hoàn thành» button and /done, /reopen, /task."""

from __future__ import annotations

import re
from datetime import datetime, timedelta

from bot.messages import Items, OutboundMessage, Text
from bot.models import Role, UnitKind
from bot.services.directives import attachments
from bot.services.directives.directives import Target, resolve_units
from bot.services.errors import InvalidInput
from bot.services.org.access import require
from bot.services.tasks import tasks
from handlers.context import Context, msg
from handlers.directives import calendar, keep_working_day, move_step, read_due
from handlers.flows import Answer, Data, FlowSpec, Step, ask, choice, confirm_on, start
from handlers.registry import row_id


def _done_message(row_unit: str, title: str, at: datetime, late: bool | None) -> OutboundMessage:
    """Return the confirmation of a done report."""
    return msg(
        "task.done", unit=row_unit, title=title, at=at, late=Text("task.done_late") if late else ""
    )


async def _report(
    ctx: Context, assignment_id: int, note: str | None, attachment_id: int | None = None
) -> list[OutboundMessage]:
    """Record the unit's part done and confirm it."""
    row, task, unit = await tasks.mark_done(
        ctx.session,
        actor=ctx.actor,
        assignment_id=assignment_id,
        now=ctx.now,
        note=note,
        attachment_id=attachment_id,
    )
    assert row.done_at is not None
    return [_done_message(unit.name, task.title, row.done_at, row.late)]


async def prompt_note(ctx: Context, data: Data) -> list[OutboundMessage]:
    """Ask for the result note (or a file), or skip."""
    return [
        msg("task.ask_note", title=data["title"], buttons=((choice("task.skip_note", "skip"),),))
    ]


async def accept_note(ctx: Context, data: Data, answer: Answer) -> None:
    """Keep the note and the optional report file."""
    if answer.choice == "skip":
        return
    if answer.file is not None and ctx.deps.fetch_file is not None:
        row = await attachments.keep_upload(
            ctx.session,
            name=answer.file.name,
            data=await ctx.deps.fetch_file(answer.file.file_id),
            now=ctx.now,
            channel=ctx.event.channel,
            file_id=answer.file.file_id,
        )
        data["attachment_id"] = row.id
    if answer.text and len(answer.text) > tasks.NOTE_MAX:
        raise InvalidInput("task.error.too_long", limit=tasks.NOTE_MAX)
    data["note"] = answer.text


async def finish_done(ctx: Context, data: Data) -> list[OutboundMessage]:
    """Report the task done with the note."""
    return await _report(ctx, data["assignment_id"], data.get("note"), data.get("attachment_id"))


DONE_FLOW = FlowSpec(
    kind="task_done",
    steps=(Step("note", prompt_note, accept_note),),
    finish=finish_done,
    ttl=timedelta(hours=2),
)


async def done_pressed(ctx: Context) -> list[OutboundMessage]:
    """Start reporting a task done from the button on its reminder."""
    assignment_id = row_id((ctx.event.action or "").partition(":")[2])
    if assignment_id is None:
        return [msg("errors.unknown_action")]
    row, task, _ = await tasks.check_reportable(
        ctx.session, actor=ctx.actor, assignment_id=assignment_id
    )
    return await start(ctx, DONE_FLOW, {"assignment_id": row.id, "title": task.title})


async def open_tasks(ctx: Context) -> list[OutboundMessage]:
    """List my unit's open tasks, soonest due first."""
    rows = await tasks.open_for_unit(ctx.session, actor=ctx.actor)
    unit = ctx.actor.unit.name if ctx.actor.unit else "–"
    if not rows:
        return [msg("task.none", unit=unit)]
    lines = Items(
        "task.line",
        tuple(
            {
                "id": t.id,
                "title": t.title,
                "due": a.due_at,
                "overdue": Text("task.line_overdue") if a.due_at < ctx.now else "",
            }
            for a, t in rows
        ),
    )
    return [msg("task.list", unit=unit, lines=lines)]


async def done(ctx: Context) -> list[OutboundMessage]:
    """Report a task done: /done <number> [note]."""
    parts = (ctx.event.text or "").split(maxsplit=2)
    if len(parts) < 2 or not parts[1].lstrip("#").isdigit():
        raise InvalidInput("errors.usage", usage=Text("task.done_usage"))
    assignment_id, note = await tasks.find_assignment(
        ctx.session, actor=ctx.actor, task_id=int(parts[1].lstrip("#")), text=" ".join(parts[2:])
    )
    return await _report(ctx, assignment_id, note or None)


async def reopen(ctx: Context) -> list[OutboundMessage]:
    """Reopen a finished task with a reason: /reopen <number> [unit code] <reason>."""
    parts = (ctx.event.text or "").split(maxsplit=2)
    if len(parts) < 3 or not parts[1].lstrip("#").isdigit():
        raise InvalidInput("errors.usage", usage=Text("task.reopen_usage"))
    assignment_id, reason = await tasks.find_assignment(
        ctx.session, actor=ctx.actor, task_id=int(parts[1].lstrip("#")), text=parts[2]
    )
    if not reason:
        raise InvalidInput("errors.usage", usage=Text("task.reopen_usage"))
    _, task, unit = await tasks.reopen(
        ctx.session,
        actor=ctx.actor,
        assignment_id=assignment_id,
        reason=reason,
        now=ctx.now,
        cal=calendar(ctx),
        settings=ctx.deps.settings.tasks,
    )
    return [msg("task.reopened_ok", id=task.id, unit=unit.name)]


KINDS = {
    "offices": UnitKind.OFFICE,
    "affiliated": UnitKind.AFFILIATED,
    "communes": UnitKind.COMMUNE,
    "schools": UnitKind.SCHOOL,
}


async def accept_title(ctx: Context, data: Data, answer: Answer) -> None:
    """Keep the title."""
    if not answer.text:
        raise InvalidInput("task.error.required", field=Text("task.field.title"))
    if len(answer.text) > tasks.TITLE_MAX:
        raise InvalidInput("task.error.too_long", limit=tasks.TITLE_MAX)
    data["title"] = answer.text


async def accept_details(ctx: Context, data: Data, answer: Answer) -> None:
    """Keep the details, or none."""
    text = "" if answer.choice == "skip" else (answer.text or "")
    if len(text) > tasks.DETAILS_MAX:
        raise InvalidInput("task.error.too_long", limit=tasks.DETAILS_MAX)
    data["details"] = text


async def accept_units(ctx: Context, data: Data, answer: Answer) -> None:
    """Keep the units: a kind of unit, or typed codes."""
    if answer.choice in KINDS:
        units = await resolve_units(ctx.session, Target(kinds=(KINDS[answer.choice],)))
        if not units:
            raise InvalidInput(
                "task.error.no_units", kind=Text(f"directive.flow.target_{answer.choice}")
            )
    else:
        codes = tuple(c for c in re.split(r"[,;\s]+", answer.text or "") if c)
        if not codes:
            raise InvalidInput("directive.error.no_target")
        units = await resolve_units(ctx.session, Target(units=codes))
    data["units"] = [u.code for u in units]


async def accept_due(ctx: Context, data: Data, answer: Answer) -> str | None:
    """Keep the due moment (a day off is held until moved or changed)."""
    due = read_due(ctx, answer, past_key="task.error.due_past")
    return keep_working_day(ctx, data, "due", due)


async def prompt_confirm(ctx: Context, data: Data) -> list[OutboundMessage]:
    """Show what will be assigned, and confirm."""
    found = await resolve_units(ctx.session, Target(units=tuple(data["units"])))
    names = ", ".join(u.name for u in found[:12]) + ("…" if len(found) > 12 else "")
    return [
        msg(
            "task.flow.confirm",
            title=data["title"],
            units=len(data["units"]),
            names=names,
            due=datetime.fromisoformat(data["due"]),
            buttons=((choice("task.flow.assign", "assign"),),),
        )
    ]


async def finish_assign(ctx: Context, data: Data) -> list[OutboundMessage]:
    """Create the task and say how many units it went to."""
    new = tasks.NewTask(
        title=data["title"],
        details=data["details"],
        units=tuple(data["units"]),
        due_at=datetime.fromisoformat(data["due"]),
    )
    task, rows = await tasks.create(
        ctx.session,
        actor=ctx.actor,
        new=new,
        now=ctx.now,
        cal=calendar(ctx),
        settings=ctx.deps.settings.tasks,
    )
    replies = [msg("task.flow.created", id=task.id, units=len(rows), due=new.due_at)]
    codes = {u.id: u.name for u in await resolve_units(ctx.session, Target(units=new.units))}
    unreached = [codes[r.unit_id] for r in rows if not await tasks.recipients(ctx.session, r)]
    if unreached:
        replies.append(msg("task.flow.unreached", count=len(unreached), names=", ".join(unreached)))
    return replies


ASSIGN_FLOW = FlowSpec(
    kind="task",
    steps=(
        Step("title", ask("task.flow.ask_title"), accept_title, next="details"),
        Step(
            "details",
            ask("task.flow.ask_details", (choice("task.skip_note", "skip"),)),
            accept_details,
            next="units",
        ),
        Step(
            "units",
            ask(
                "task.flow.ask_units",
                (
                    choice("directive.flow.target_offices", "offices"),
                    choice("directive.flow.target_affiliated", "affiliated"),
                ),
                (
                    choice("directive.flow.target_communes", "communes"),
                    choice("directive.flow.target_schools", "schools"),
                ),
            ),
            accept_units,
            next="due",
        ),
        Step(
            "due",
            ask(
                "task.flow.ask_due",
                tuple(choice("directive.flow.days", str(n), n=n, number=n) for n in (2, 5, 10)),
            ),
            accept_due,
            next="confirm",
            branches=("due_move",),
        ),
        move_step("due", accept_due, then="confirm"),
        Step("confirm", prompt_confirm, confirm_on("assign")),
    ),
    finish=finish_assign,
    ttl=timedelta(hours=2),
)


async def assign(ctx: Context) -> list[OutboundMessage]:
    """Start the guided flow that assigns a task to units."""
    require(ctx.actor, Role.ADMIN)
    return await start(ctx, ASSIGN_FLOW)
