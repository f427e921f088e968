"""Surveys in chat: answering a campaign's questions, reading a material, seeing results.

The questions are one flow whose step `qN` asks the questionnaire's N-th question; a question
whose condition fails is passed over, so 'back' returns to the last question really asked.
Every answer is saved as it is given: a person who stops goes on later from where they were,
and may go through again to change answers until the campaign closes.
"""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

from bot.messages import Button, Items, OutboundMessage, Text
from bot.models import Campaign, Role
from bot.services import flows
from bot.services.delivery import outbox
from bot.services.errors import InvalidInput
from bot.services.org.access import require
from bot.services.org.imports.values import FieldError
from bot.services.reports import documents
from bot.services.reports.documents import send_document
from bot.services.reports.leadership import takes_files
from bot.services.surveys import answers, campaigns, chart, questionnaire, results, summary
from bot.services.surveys.answers import Respondent
from bot.services.surveys.questionnaire import MAX_QUESTIONS, NO, YES, Definition, Question
from bot.services.tasks.task_import import parse_due
from handlers.context import Context, msg
from handlers.directives import calendar
from handlers.flows import DONE, SKIP, Answer, Data, FlowSpec, Step, choice, confirm_on, start
from handlers.registry import row_id

STEPS = tuple(f"q{i}" for i in range(1, MAX_QUESTIONS + 1))
NUMBERS_RE = re.compile(r"^\s*\d+(?:\s*[,;\s]\s*\d+)*\s*$")
DONE_VALUE = "done"
KIND_RESULTS = "survey_results"
KEEP = "keep"


def _citizen(ctx: Context) -> bool:
    """Tell whether the person answering is a citizen (addressed «Ông/Bà»)."""
    return ctx.contact.person_id is None


def respondent(ctx: Context) -> Respondent:
    """Return who is answering: the person behind the chat account, or the account itself."""
    return Respondent(ctx.contact.person_id, None if ctx.contact.person_id else ctx.contact.id)


async def _campaign(ctx: Context, data: Data) -> tuple[Campaign, Definition]:
    """Return the flow's campaign and its questionnaire."""
    campaign = await campaigns.get(ctx.session, int(data["campaign_id"]))
    return campaign, await answers.definition(ctx.session, campaign)


async def _given(ctx: Context, campaign: Campaign) -> dict[str, answers.Value | None]:
    """Return the respondent's answers so far (kept with the answer, never in the flow)."""
    return answers.answers_of(await answers.find(ctx.session, campaign, respondent(ctx)))


def _shown_value(question: Question, value: Any) -> Text | str:
    """Return an answer as the person sees it (their current answer, when changing)."""
    values = value if isinstance(value, list) else [value]
    if question.kind in ("single", "multiple"):
        return ", ".join(question.options[int(v) - 1] for v in values)
    if question.kind == "yes_no":
        return Text("survey.flow.yes" if value == YES else "survey.flow.no")
    return str(value)


def _buttons(question: Question, data: Data, *, kept: bool) -> tuple[tuple[Button, ...], ...]:
    """Return a question's choices: options, scale points, yes/no; 'skip' when optional, and
    'keep' when it has an answer already."""
    rows: list[tuple[Button, ...]] = []
    if question.kind == "single":
        rows = [
            (choice("survey.flow.option", f"v{i}", number=i, label=o),)
            for i, o in enumerate(question.options, 1)
        ]
    elif question.kind == "multiple":
        picked = set(data.get("picked", []))
        rows = [
            (
                choice(
                    "survey.flow.picked_option" if str(i) in picked else "survey.flow.option",
                    f"o{i}",
                    number=i,
                    label=o,
                ),
            )
            for i, o in enumerate(question.options, 1)
        ]
        rows.append((choice("survey.flow.done", DONE_VALUE, number=len(question.options) + 1),))
    elif question.kind == "scale":
        ends = {1: question.low, question.scale: question.high}
        points = [
            choice(
                "survey.flow.point_label" if v in ends else "survey.flow.point",
                f"v{v}",
                number=v,
                point=v,
                label=ends.get(v, ""),
            )
            for v in range(question.scale, 0, -1)
        ]
        rows = [tuple(points[i : i + 5]) for i in range(0, len(points), 5)]
    elif question.kind == "yes_no":
        rows = [
            (
                choice("survey.flow.yes", f"v{YES}", number=1),
                choice("survey.flow.no", f"v{NO}", number=2),
            )
        ]
    if question.optional:
        rows.append((choice("survey.flow.skip", SKIP, number=0),))
    if kept:
        rows.append((choice("survey.flow.keep", KEEP),))
    return tuple(rows)


def _index(step: str) -> int:
    """Return the question index (from 0) a step asks."""
    return int(step[1:]) - 1


def question_prompt(step: str) -> Any:
    """Return the prompt of step qN: the question with its position, hint and choices."""

    async def prompt(ctx: Context, data: Data) -> list[OutboundMessage]:
        campaign, form = await _campaign(ctx, data)
        question = form.questions[_index(step)]
        given = await _given(ctx, campaign)
        asked = form.asked(given)
        position = asked.index(question) + 1 if question in asked else _index(step) + 1
        value = given.get(question.id)
        current = (
            Text("survey.flow.current", {"value": _shown_value(question, value)})
            if value is not None
            else ""
        )
        return [
            msg(
                f"survey.flow.ask_{question.kind}",
                title=campaign.title,
                number=position,
                total=len(asked),
                area=question.area,
                text=question.text,
                low=question.low,
                high=question.high,
                scale=question.scale,
                current=current,
                optional=Text("survey.flow.optional") if question.optional else "",
                buttons=_buttons(question, data, kept=value is not None),
            )
        ]

    return prompt


def _read(question: Question, answer: Answer, data: Data) -> Any:
    """Turn a press or a typed answer into the value stored; raise to ask again."""
    if answer.choice == SKIP and question.optional:
        return None
    if question.kind == "text":
        if not answer.text:
            raise InvalidInput("survey.flow.type_text")
        return answer.text
    if question.kind == "multiple":
        return _read_multiple(question, answer, data)
    if answer.choice and answer.choice.startswith("v"):
        return answer.choice[1:]
    raise InvalidInput("survey.flow.use_choices")


def _read_multiple(question: Question, answer: Answer, data: Data) -> Any:
    """Toggle an option, finish with 'done', or take typed numbers ('1, 3') at once."""
    if answer.text and NUMBERS_RE.match(answer.text):
        return sorted({n for n in re.findall(r"\d+", answer.text)}, key=int)
    picked = list(data.get("picked", []))
    if answer.choice == DONE_VALUE:
        if not picked and not question.optional:
            raise InvalidInput("survey.flow.pick_one")
        return picked or None
    if answer.choice and answer.choice.startswith("o"):
        value = answer.choice[1:]
        picked = [p for p in picked if p != value] if value in picked else [*picked, value]
        raise _Toggled(sorted(picked, key=int), question)
    raise InvalidInput("survey.flow.use_choices")


class _Toggled(Exception):
    """An option of a multiple-choice question was pressed: show it ticked, stay at the step."""

    def __init__(self, picked: list[str], question: Question) -> None:
        super().__init__("toggled")
        self.picked = picked
        self.question = question


async def _keep_toggle(ctx: Context, data: Data, toggled: _Toggled) -> None:
    """Remember the options ticked so far in the open flow, then ask again."""
    assert ctx.contact.id is not None
    flow = await flows.current(ctx.session, contact_id=ctx.contact.id, now=ctx.now)
    if flow is not None:
        await flows.remember(
            ctx.session,
            flow,
            data={**flows.data_of(flow), "picked": toggled.picked},
            now=ctx.now,
            ttl=timedelta(hours=ctx.deps.settings.surveys.flow_hours),
        )
    labels = ", ".join(toggled.question.options[int(v) - 1] for v in toggled.picked) or "–"
    raise InvalidInput("survey.flow.ticked", picked=labels)


async def _save(ctx: Context, campaign: Campaign, given: dict[str, Any], *, complete: bool) -> None:
    """Save the answers so far (or all of them) for the respondent."""
    who = respondent(ctx)
    started = await answers.find(ctx.session, campaign, who) is not None
    recipient = (
        None
        if started and not complete
        else await campaigns.recipient(
            ctx.session, campaign, person_id=who.person_id, contact_id=who.contact_id
        )
    )
    await answers.save(
        ctx.session,
        campaign,
        recipient,
        who,
        given,
        now=ctx.now,
        complete=complete,
    )


def question_accept(step: str) -> Any:
    """Return the step taking the answer to qN and choosing the next question asked."""

    async def accept(ctx: Context, data: Data, answer: Answer) -> str:
        campaign, form = await _campaign(ctx, data)
        index = _index(step)
        question = form.questions[index]
        given: dict[str, Any] = await _given(ctx, campaign)
        try:
            raw = given.get(question.id) if answer.choice == KEEP else _read(question, answer, data)
            value = answers.check_value(question, raw)
        except _Toggled as toggled:
            await _keep_toggle(ctx, data, toggled)
        given[question.id] = value  # None: skipped, kept so a resume goes on after it
        data.pop("picked", None)
        await _save(ctx, campaign, given, complete=False)
        later = [i for i, q in enumerate(form.questions) if i > index and q in form.asked(given)]
        return STEPS[later[0]] if later else DONE

    return accept


async def finish(ctx: Context, data: Data) -> list[OutboundMessage]:
    """Save the answers as complete and thank the person."""
    campaign, _ = await _campaign(ctx, data)
    await _save(ctx, campaign, dict(await _given(ctx, campaign)), complete=True)
    key = "survey.flow.thanks_anonymous" if campaign.anonymous else "survey.flow.thanks_named"
    key = campaigns.addressed(key, citizen=_citizen(ctx))
    return [msg(key, title=campaign.title, closes=campaign.closes_at)]


SURVEY_FLOW = FlowSpec(
    kind="survey",
    steps=tuple(
        Step(step, question_prompt(step), question_accept(step), branches=STEPS[i + 1 :])
        for i, step in enumerate(STEPS)
    ),
    finish=finish,
    ttl_of=lambda settings: timedelta(hours=settings.surveys.flow_hours),
)


async def _begin(ctx: Context, campaign: Campaign, form: Definition) -> list[OutboundMessage]:
    """Open the questions: go on where the person stopped, or from the start to change answers."""
    assert ctx.contact.id is not None
    flow = await flows.current(ctx.session, contact_id=ctx.contact.id, now=ctx.now)
    if (
        flow is not None
        and flow.kind == SURVEY_FLOW.kind
        and flows.data_of(flow).get("campaign_id") == campaign.id
    ):
        return [
            msg("survey.flow.resumed"),
            *await start(ctx, SURVEY_FLOW, flows.data_of(flow), at=flow.step),
        ]
    row = await answers.find(ctx.session, campaign, respondent(ctx))
    given = answers.answers_of(row)
    data: Data = {"campaign_id": campaign.id}
    intro = msg(
        "survey.flow.intro",
        title=campaign.title,
        intro=form.intro,
        count=len(form.asked(given)),
        closes=campaign.closes_at,
    )
    if row is not None and row.complete:
        return [
            msg("survey.flow.changing", title=campaign.title, closes=campaign.closes_at),
            *await start(ctx, SURVEY_FLOW, data),
        ]
    asked = form.asked(given)
    gone = [q for q in asked if q.id in given]
    if not gone:
        return [intro, *await start(ctx, SURVEY_FLOW, data)]
    nxt = next((q for q in asked if q.id not in given), asked[-1])
    steps = [STEPS[form.questions.index(q)] for q in asked[: asked.index(nxt)]]
    data[flows.HISTORY] = steps
    return [
        msg("survey.flow.resumed"),
        *await start(ctx, SURVEY_FLOW, data, at=STEPS[form.questions.index(nxt)]),
    ]


async def answer_pressed(ctx: Context) -> list[OutboundMessage]:
    """Open a campaign's questions from its invitation's button (or a typed number on Zalo)."""
    campaign_id = row_id((ctx.event.action or "").partition(":")[2])
    if campaign_id is None:
        return [msg("errors.unknown_action")]
    campaign = await campaigns.get(ctx.session, campaign_id)
    who = respondent(ctx)
    await campaigns.recipient(
        ctx.session, campaign, person_id=who.person_id, contact_id=who.contact_id
    )
    return await _begin(ctx, campaign, await answers.definition(ctx.session, campaign))


async def read_pressed(ctx: Context) -> list[OutboundMessage]:
    """Note a material as read; open its check of understanding when it has one."""
    campaign_id = row_id((ctx.event.action or "").partition(":")[2])
    if campaign_id is None:
        return [msg("errors.unknown_action")]
    campaign = await campaigns.get(ctx.session, campaign_id)
    who = respondent(ctx)
    recipient = await campaigns.recipient(
        ctx.session, campaign, person_id=who.person_id, contact_id=who.contact_id
    )
    await answers.mark_read(ctx.session, campaign, recipient)
    if campaign.questionnaire_id is None:
        key = campaigns.addressed("survey.read_thanks", citizen=_citizen(ctx))
        return [msg(key, title=campaign.title)]
    return await _begin(ctx, campaign, await answers.definition(ctx.session, campaign))


async def my_surveys(ctx: Context) -> list[OutboundMessage]:
    """List the open campaigns waiting for this person, each with its button."""
    who = respondent(ctx)
    rows = await campaigns.open_for(ctx.session, person_id=who.person_id, contact_id=who.contact_id)
    if not rows:
        return [msg("survey.none_open")]
    return [campaigns.invite(c, citizen=_citizen(ctx)) for c, _ in rows]


def _campaign_arg(ctx: Context, usage: str, count: int = 1) -> list[int]:
    """Read the campaign numbers a command is given, or explain its use."""
    ids = [row_id(a.lstrip("#")) for a in ctx.event.args[:count]]
    if len(ctx.event.args) < count or any(i is None for i in ids):
        raise InvalidInput("errors.usage", usage=Text(usage))
    return [i for i in ids if i is not None]


async def list_campaigns(ctx: Context) -> list[OutboundMessage]:
    """Show one campaign's completion per unit (a head: their own unit), or list campaigns."""
    if ctx.event.args:
        (campaign_id,) = _campaign_arg(ctx, "survey.usage_campaigns")
        done = await campaigns.completion(ctx.session, campaign_id, actor=ctx.actor)
        lines = Items(
            "survey.rate_line",
            tuple(
                {"unit": u.unit, "done": u.done, "total": u.total, "percent": u.percent}
                for u in done.units
            ),
        )
        return [
            msg(
                "survey.rates",
                title=done.campaign.title,
                status=Text(f"survey.status.{done.campaign.status}"),
                lines=lines,
            )
        ]
    rows = [done.campaign for done in await campaigns.board(ctx.session, actor=ctx.actor)]
    if not rows:
        return [msg("survey.no_campaigns")]
    lines = Items(
        "survey.campaign_line",
        tuple(
            {
                "id": c.id,
                "title": c.title,
                "status": Text(f"survey.status.{c.status}"),
                "closes": c.closes_at,
            }
            for c in rows
        ),
    )
    return [msg("survey.campaigns", lines=lines)]


async def show_results(ctx: Context) -> list[OutboundMessage]:
    """Show a campaign's results in chat (of one unit: '/results 3 U1'), or as XLSX ('xlsx'):
    its notice queued ahead of the file, so the two arrive in that order."""
    (campaign_id,) = _campaign_arg(ctx, "survey.usage_results")
    rest = [a for a in ctx.event.args[1:] if a.lower() != "xlsx"]
    if len(rest) > 1:
        raise InvalidInput("errors.usage", usage=Text("survey.usage_results"))
    unit_id = (await campaigns.unit_by_code(ctx.session, rest[0])).id if rest else None
    res = await results.results(ctx.session, campaign_id, actor=ctx.actor, unit_id=unit_id)
    if any(a.lower() == "xlsx" for a in ctx.event.args[1:]):
        await _queue_first(ctx, msg("survey.xlsx_queued"), campaign_id)
        await send_document(
            ctx.session,
            contact=ctx.contact,
            name=f"khao-sat-{campaign_id}.xlsx",
            data=results.workbook(res, locale=ctx.locale),
            caption="survey.xlsx_caption",
            params={"title": res.campaign.title},
            ref_id=campaign_id,
            now=ctx.now,
            priority=documents.PRIORITY,
        )
        return []
    return await _with_chart(ctx, res)


async def _with_chart(ctx: Context, res: results.Results) -> list[OutboundMessage]:
    """Return the results' summary; where the channel takes files, queue the summary and then
    its chart (PNG) instead, so that the chart never arrives first; else say where to see it.

    The two rows go to one chat in one transaction, at one priority and moment: the outbox
    sends a chat's rows one at a time in (priority, due, id) order, the summary's id first.
    A direct reply and a queued row have no order between them.
    """
    image = None if res.overall.hidden else chart.results_png(res, locale=ctx.locale)
    if image is None:
        return [summary.results_message(res)]
    if not takes_files(ctx.contact):
        return [summary.results_message(res, chart="survey.chart_elsewhere")]
    summary_message = summary.results_message(res, chart="survey.chart_follows")
    await _queue_first(ctx, summary_message, res.campaign.id)
    await send_document(
        ctx.session,
        contact=ctx.contact,
        name=f"khao-sat-{res.campaign.id}.png",
        data=image,
        caption="survey.chart_caption",
        params={"title": res.campaign.title},
        ref_id=res.campaign.id,
        now=ctx.now,
        media="photo",
        priority=documents.PRIORITY,
    )
    return []


async def _queue_first(ctx: Context, message: OutboundMessage, campaign_id: int | None) -> None:
    """Queue a text to the person ahead of the file queued after it (its row id comes first)."""
    await outbox.enqueue(
        ctx.session,
        contact=ctx.contact,
        message=message,
        kind=KIND_RESULTS,
        ref_id=campaign_id,
        now=ctx.now,
        priority=documents.PRIORITY,
    )
    await ctx.session.flush()


async def compare(ctx: Context) -> list[OutboundMessage]:
    """Compare two campaigns question by question ('/compare 1 2': before, after)."""
    before_id, after_id = _campaign_arg(ctx, "survey.usage_compare", count=2)
    before, after, changes = await results.compare(
        ctx.session, before_id, after_id, actor=ctx.actor
    )
    return [summary.comparison(before, after, changes)]


async def close_campaign(ctx: Context) -> list[OutboundMessage]:
    """Close a campaign now ('/survey_close 3'): answers become final, results may show."""
    (campaign_id,) = _campaign_arg(ctx, "survey.usage_close")
    campaign = await campaigns.close(ctx.session, campaign_id, actor=ctx.actor, now=ctx.now)
    return [msg("survey.closed", title=campaign.title, id=campaign_id)]


# Administrators in chat: import a questionnaire, launch a campaign.

PROBLEMS_SHOWN = 10


async def prompt_file(ctx: Context, data: Data) -> list[OutboundMessage]:
    """Ask for the questionnaire's TOML file."""
    return [msg("survey_import.ask_file")]


async def accept_file(ctx: Context, data: Data, answer: Answer) -> None:
    """Read and check the file sent; list its problems (nothing kept) or keep the questionnaire."""
    ref, fetch = ctx.event.file, ctx.deps.fetch_file
    if ref is None or fetch is None:
        raise InvalidInput("survey_import.need_file")
    checked = questionnaire.read_upload(ref.name, await fetch(ref.file_id))
    if checked.definition is None:
        rows = tuple(
            {"row": p.row or "–", "column": p.column, "reason": Text(p.key, p.params)}
            for p in checked.problems[:PROBLEMS_SHOWN]
        )
        raise InvalidInput(
            "survey_import.problems",
            count=len(checked.problems),
            lines=Items("survey_import.problem", rows),
        )
    data["definition"] = checked.definition.to_json()


async def prompt_confirm(ctx: Context, data: Data) -> list[OutboundMessage]:
    """Show what the file holds and ask to import it."""
    form = questionnaire.loads(data["definition"])
    areas = ", ".join(dict.fromkeys(q.area for q in form.questions if q.area)) or "–"
    return [
        msg(
            "survey_import.confirm",
            title=form.title,
            code=form.code,
            count=len(form.questions),
            areas=areas,
            buttons=((choice("survey_import.import_button", "import"),),),
        )
    ]


async def finish_import(ctx: Context, data: Data) -> list[OutboundMessage]:
    """Keep the questionnaire."""
    form = questionnaire.loads(data["definition"])
    await questionnaire.save(ctx.session, form, actor=ctx.actor, now=ctx.now)
    return [msg("survey_import.done", title=form.title, code=form.code, count=len(form.questions))]


IMPORT_FLOW = FlowSpec(
    kind="survey_import",
    steps=(
        Step("file", prompt_file, accept_file, next="confirm"),
        Step("confirm", prompt_confirm, confirm_on("import")),
    ),
    finish=finish_import,
)


async def import_questionnaire(ctx: Context) -> list[OutboundMessage]:
    """Start importing a questionnaire sent as a TOML file ('/survey_import')."""
    require(ctx.actor, Role.ADMIN)
    return await start(ctx, IMPORT_FLOW)


async def launch(ctx: Context) -> list[OutboundMessage]:
    """Launch a questionnaire now ('/survey_launch CODE AUDIENCE CLOSES [named] [open]')."""
    require(ctx.actor, Role.ADMIN)
    args = ctx.event.args
    flags = {a.lower() for a in args[3:]}
    if len(args) < 3 or flags - {"named", "open"}:
        raise InvalidInput("errors.usage", usage=Text("survey.usage_launch"))
    settings = ctx.deps.settings.surveys
    code = args[0].upper()
    form = await campaigns.questionnaire_by_code(ctx.session, code)
    try:
        closes = parse_due(args[2], now=ctx.now, cal=calendar(ctx), move=True)
    except FieldError as exc:
        raise InvalidInput(exc.key, **exc.params) from None
    draft = campaigns.Draft(
        title=form.title,
        audience=campaigns.Audience.parse(args[1]),
        opens_at=ctx.now,
        closes_at=closes,
        questionnaire=code,
        anonymous="named" not in flags,
        results_open="open" in flags,
        min_group=settings.min_group,
        reminders_max=settings.reminders_max,
        remind_every_hours=settings.remind_every_hours,
    )
    campaign = await campaigns.launch(
        ctx.session, draft, actor=ctx.actor, now=ctx.now, floor=settings.min_group
    )
    count = len(await campaigns.recipients_of(ctx.session, campaign))
    return [
        msg("survey.launched", id=campaign.id, title=campaign.title, count=count, closes=closes)
    ]
