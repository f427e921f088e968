"""Results as chat messages: a short summary with a text bar chart, and two campaigns compared."""

from __future__ import annotations

from typing import Any

from bot.messages import Items, OutboundMessage, Text
from bot.services.surveys.questionnaire import YES, Question
from bot.services.surveys.results import Change, QuestionResult, Results, bar, labels, minimum

TEXTS_SHOWN = 10  # free-text answers shown in chat (the XLSX holds them all)


def _labels(question: Question) -> list[tuple[str, Any]]:
    """Return (value, label) of a question's answers, yes/no in the reader's language."""
    if question.kind != "yes_no":
        return list(labels(question))
    return [
        (v, Text("survey.flow.yes" if v == YES else "survey.flow.no")) for v, _ in labels(question)
    ]


def _lines(q: QuestionResult) -> Any:
    """Return a question's figures: a bar per answer, the free texts, or why none are shown."""
    if q.held_back:
        return Text("survey.result_held_back_question")
    if q.hidden:
        return Text("survey.result_hidden_question")
    if q.question.kind == "text":
        return Items("survey.result_text", tuple({"text": x} for x in q.texts[:TEXTS_SHOWN]))
    rows = tuple(
        {"label": label, "bar": bar(q.share(v)), "percent": q.share(v), "count": q.counts[v]}
        for v, label in _labels(q.question)
    )
    return Items("survey.result_line", rows)


def results_message(res: Results, *, chart: str | None = None) -> OutboundMessage:
    """Return a campaign's results in chat: each question's figures, then the units; `chart`
    is the catalog key saying where the chart image is (none: no word of it)."""
    if res.overall.hidden:
        return OutboundMessage(
            "survey.results_too_few",
            {"title": res.campaign.title, "minimum": minimum(res.campaign)},
        )
    blocks = tuple(
        {
            "id": q.question.id,
            "text": q.question.text,
            "answered": q.answered,
            "mean": Text("survey.result_mean", {"mean": q.mean}) if q.mean is not None else "",
            "lines": _lines(q),
        }
        for q in res.overall.questions
    )
    units = tuple(
        Text(
            "survey.result_unit_held_back" if g.held_back else "survey.result_unit_hidden",
            {"unit": g.name},
        )
        if g.hidden
        else Text("survey.result_unit", {"unit": g.name, "count": g.respondents})
        for g in res.units
    )
    return OutboundMessage(
        "survey.results",
        {
            "title": res.campaign.title,
            "count": res.overall.respondents,
            "blocks": Items("survey.result_block", blocks, sep="\n\n"),
            "units": Items("survey.result_unit_line", tuple({"line": u} for u in units)),
            "chart": Text(chart, {"id": res.campaign.id}) if chart else "",
        },
    )


def _measure(change: Change, value: float | None) -> Any:
    """Return a compared figure as words ('mean 3,5', '40% chose the first option')."""
    return "–" if value is None else Text(f"survey.measure.{change.measure}", {"value": value})


def comparison(before: Results, after: Results, changes: list[Change]) -> OutboundMessage:
    """Return two campaigns compared question by question."""
    lines = Items(
        "survey.compare_line",
        tuple(
            {
                "id": c.question.id,
                "text": c.question.text,
                "before": _measure(c, c.before),
                "after": _measure(c, c.after),
                "delta": Text("survey.delta", {"value": c.delta}) if c.delta is not None else "",
            }
            for c in changes
        ),
    )
    return OutboundMessage(
        "survey.compare",
        {"before": before.campaign.title, "after": after.campaign.title, "lines": lines},
    )
