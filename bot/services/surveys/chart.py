"""A campaign's results as a PNG: one panel per closed question, a bar per answer (its share).

Drawn like the scoreboard's chart (bot/services/reports/chart.py: Agg canvas on a Figure of its
own, DejaVu Sans for the Vietnamese marks, matplotlib imported on first use). Only what the
results may show is drawn: hidden groups and questions answered by too few carry no figures, and
free-text questions have no bars.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from bot.i18n import t
from bot.i18n.formats import format_number
from bot.services.reports.chart import DPI, FONT, RANKED, png
from bot.services.surveys.results import QuestionResult, Results, labels

if TYPE_CHECKING:
    from matplotlib.axes import Axes

QUESTIONS_MAX = 12  # panels drawn; the XLSX and the dashboard hold them all
WIDTH = 8.0  # inches
LABEL_MAX = 40  # characters of an answer's label


def drawn(res: Results) -> list[QuestionResult]:
    """Return the questions the chart shows: closed ones with figures that may be shown."""
    if res.overall.hidden:
        return []
    return [
        q
        for q in res.overall.questions
        if q.question.kind != "text" and not q.hidden and q.answered
    ][:QUESTIONS_MAX]


def _short(text: str, limit: int) -> str:
    """Return a label cut to a length, with an ellipsis."""
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _panel(ax: Axes, q: QuestionResult, locale: str) -> None:
    """Draw one question: a horizontal bar per answer, its share written at the end."""
    pairs = labels(q.question, locale)
    shares = [q.share(v) for v, _ in pairs]
    places = list(range(len(pairs)))[::-1]
    ax.barh(places, shares, color=RANKED, height=0.6)
    ax.set_yticks(places, [_short(label, LABEL_MAX) for _, label in pairs])
    for place, share, (value, _) in zip(places, shares, pairs, strict=True):
        shown = f"{format_number(share, locale)}% ({format_number(q.counts[value], locale)})"
        ax.text(share + 1, place, shown, va="center", fontsize=9)
    title = _short(f"{q.question.id}. {q.question.text}", 90)
    if q.mean is not None:
        mean = format_number(q.mean, locale, digits=2)
        title += " – " + t("survey.chart.mean", locale, mean=mean)
    ax.set_title(title, loc="left", fontsize=11, fontweight="bold")
    ax.set_xlim(0, 120)
    ax.set_xticks([0, 25, 50, 75, 100])
    ax.grid(axis="x", alpha=0.3)


def results_png(res: Results, *, locale: str) -> bytes | None:
    """Return the results' chart as PNG bytes (None when nothing may be drawn)."""
    questions = drawn(res)
    if not questions:
        return None
    import matplotlib
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    heights = [0.35 * len(labels(q.question, locale)) + 0.9 for q in questions]
    with matplotlib.rc_context({"font.family": [FONT], "font.size": 10}):
        fig = Figure(figsize=(WIDTH, sum(heights) + 0.8), dpi=DPI, layout="constrained")
        FigureCanvasAgg(fig)
        grid = fig.add_gridspec(len(questions), 1, height_ratios=heights)
        title = t(
            "survey.chart.title", locale, title=res.campaign.title, count=res.overall.respondents
        )
        fig.suptitle(
            title,
            fontsize=13,
            fontweight="bold",
        )
        for index, q in enumerate(questions):
            _panel(fig.add_subplot(grid[index, 0]), q, locale)
    return png(fig)
