"""The surveys pages: campaigns with their completion per unit, a campaign's results, its XLSX.

Everything is read through the surveys services, which apply the rules the chat applies: a head
sees their unit only, results stay hidden until the close unless the campaign says otherwise,
a group under the minimum is never shown, free texts come in alphabetical order without a time.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from bot.i18n import t
from bot.i18n.formats import format_number
from bot.services.errors import NotFound
from bot.services.surveys import campaigns, results
from bot.web import charts
from bot.web.page import Page

XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


@dataclass
class QuestionView:
    """One question's figures as the page shows them."""

    id: str
    area: str
    text: str
    answered: int
    hidden: bool
    mean: float | None = None
    chart: Any = None
    texts: list[str] = field(default_factory=list)
    is_text: bool = False
    held_back: bool = False


@dataclass
class GroupView:
    """A group's results: everyone (name ''), or one unit; `hidden` when too small to show."""

    name: str
    respondents: int
    hidden: bool
    questions: list[QuestionView]
    held_back: bool = False  # hidden though big enough: a smaller group's would show


def _id(request: Request) -> int:
    """Return the campaign id in the address (the route only matches digits)."""
    value = int(request.path_params["item"])
    if not 0 < value < 2**31:
        raise NotFound("survey.error.no_campaign", id=value)
    return value


def _question(q: results.QuestionResult, locale: str, *, texts: bool) -> QuestionView:
    """Return a question's figures: bars per answer, the free texts, or nothing when hidden."""
    view = QuestionView(
        q.question.id,
        q.question.area,
        q.question.text,
        q.answered,
        q.hidden,
        q.mean,
        is_text=q.question.kind == "text",
        held_back=q.held_back,
    )
    if q.hidden or not q.answered:
        return view
    if view.is_text:
        view.texts = list(q.texts) if texts else []
        return view
    bars = [
        charts.Bar(
            label,
            q.counts[value],
            t(
                "web.surveys.bar",
                locale,
                count=format_number(q.counts[value], locale),
                percent=format_number(q.share(value), locale),
            ),
        )
        for value, label in results.labels(q.question, locale)
    ]
    view.chart = charts.bars(bars, title=q.question.text, top=q.answered)
    return view


def _group(group: results.GroupResult, locale: str, *, texts: bool) -> GroupView:
    """Return a group's results as the page shows them."""
    return GroupView(
        group.name,
        group.respondents,
        group.hidden,
        [_question(q, locale, texts=texts) for q in group.questions],
        held_back=group.held_back,
    )


async def survey_list(request: Request, page: Page) -> Response:
    """The latest campaigns with their completion per unit (a head: their unit's)."""
    rows = await campaigns.board(page.session, actor=page.signed.actor)
    return page.render("surveys.html", rows=rows)


async def survey_detail(request: Request, page: Page) -> Response:
    """One campaign: its completion per unit, then its results once they may be shown."""
    actor = page.signed.actor
    done = await campaigns.completion(page.session, _id(request), actor=actor)
    found = None
    overall, units = None, []
    if done.campaign.questionnaire_id is not None and results.shown_now(done.campaign):
        found = await results.results(page.session, _id(request), actor=actor)
        overall = _group(found.overall, page.locale, texts=True)
        if not found.overall.name:  # leadership: everyone, then each unit
            units = [_group(g, page.locale, texts=False) for g in found.units]
    return page.render(
        "survey.html",
        done=done,
        campaign=done.campaign,
        minimum=results.minimum(done.campaign),
        shown=results.shown_now(done.campaign),
        overall=overall,
        units=units,
    )


async def survey_download(request: Request, page: Page) -> Response:
    """A campaign's results as XLSX, as the actor may see them (the chat's /results … xlsx)."""
    found = await results.results(page.session, _id(request), actor=page.signed.actor)
    data = results.workbook(found, locale=page.locale)
    name = f"khao-sat-{found.campaign.id}.xlsx"
    return Response(
        data, media_type=XLSX, headers={"content-disposition": f'attachment; filename="{name}"'}
    )


PAGES = (
    ("/surveys", survey_list),
    ("/surveys/{item:int}", survey_detail),
    ("/download/survey/{item:int}.xlsx", survey_download),
)
