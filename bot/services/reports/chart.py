"""The scoreboard's chart as a PNG: the units' ranking as bars, the score's trend as a line.

Drawn with matplotlib's Agg canvas (no display) on a Figure of its own, so nothing global is
touched but the font settings of one rc_context. Labels are in DejaVu Sans, which matplotlib
ships and which has every Vietnamese letter with its marks (ă, ơ, ư, đ, ạ, ề, ữ …). matplotlib
is imported on first use: it takes about a second, which a process that never draws need not pay.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from io import BytesIO
from typing import TYPE_CHECKING

from bot.i18n import t
from bot.i18n.formats import DECIMAL_SEP
from bot.services.reports.scoreboard import Scoreboard, UnitRow

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

FONT = "DejaVu Sans"
BARS_MAX = 40  # units drawn; the XLSX lists them all
RANKED, UNRANKED, LINE = "#1f5fa8", "#b8b8b8", "#c0392b"
DPI = 110
TREND_HEIGHT = 3.2  # inches


@dataclass(frozen=True)
class TrendPoint:
    """One period of the trend: its label and the score (None: nothing to score by)."""

    label: str
    score: Decimal | None


def two_places(value: float, locale: str) -> str:
    """Return a score with two decimals and the locale's decimal mark ('45,83', '100,00')."""
    return f"{value:.2f}".replace(".", DECIMAL_SEP.get(locale, "."))


def _bar_label(row: UnitRow, locale: str) -> str:
    """Return a bar's label: 'rank. unit', or the unit and why it is not ranked."""
    if row.standing.rank is not None:
        return f"{row.standing.rank}. {row.unit.name}"
    return f"{row.unit.name} ({t('report.not_enough', locale).lower()})"


def _ranking(ax: Axes, board: Scoreboard, locale: str) -> None:
    """Draw the units' scores as horizontal bars, the first ranked at the top."""
    rows = [r for r in board.rows if r.standing.score is not None][:BARS_MAX]
    ax.set_title(t("report.chart.ranking", locale), loc="left", fontsize=12, fontweight="bold")
    ax.set_xlim(0, 110)
    ax.set_xlabel(t("report.chart.score_axis", locale))
    if not rows:
        ax.text(50, 0.5, t("report.chart.no_scores", locale), ha="center", va="center")
        ax.set_yticks([])
        return
    scores = [float(r.standing.score or 0) for r in rows]
    places = list(range(len(rows)))[::-1]
    colors = [RANKED if r.standing.rank is not None else UNRANKED for r in rows]
    bars = ax.barh(places, scores, color=colors, height=0.6)
    for bar, row in zip(bars, rows, strict=True):
        if row.standing.rank is None:
            bar.set_hatch("//")
    ax.set_yticks(places, [_bar_label(r, locale) for r in rows])
    for place, value in zip(places, scores, strict=True):
        ax.text(value + 1, place, two_places(value, locale), va="center", fontsize=9)
    ax.grid(axis="x", alpha=0.3)


def _trend(ax: Axes, trend: Sequence[TrendPoint], scope: str, locale: str) -> None:
    """Draw the score over the last periods, oldest first; a period without a score is a gap."""
    title = t("report.chart.trend", locale, scope=scope)
    ax.set_title(title, loc="left", fontsize=12, fontweight="bold")
    xs = list(range(len(trend)))
    ys = [float(p.score) if p.score is not None else math.nan for p in trend]
    ax.plot(xs, ys, marker="o", color=LINE, linewidth=2)
    for x, y in zip(xs, ys, strict=True):
        if not math.isnan(y):
            label = two_places(y, locale)
            ax.annotate(label, (x, y), textcoords="offset points", xytext=(0, 7), ha="center")
    ax.set_xticks(xs, [p.label for p in trend])
    ax.set_ylim(0, 110)
    ax.set_ylabel(t("report.chart.score_axis", locale))
    ax.grid(alpha=0.3)


def figure(board: Scoreboard, trend: Sequence[TrendPoint], *, scope: str, locale: str) -> Figure:
    """Return the chart's figure: the ranking above, the trend below."""
    import matplotlib
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    with matplotlib.rc_context({"font.family": [FONT], "font.size": 10}):
        bars = min(BARS_MAX, sum(1 for r in board.rows if r.standing.score is not None))
        ranking = max(2.0, 0.3 * bars + 1)
        fig = Figure(figsize=(10, ranking + TREND_HEIGHT + 0.8), dpi=DPI, layout="constrained")
        FigureCanvasAgg(fig)
        grid = fig.add_gridspec(2, 1, height_ratios=[ranking, TREND_HEIGHT])
        first, last = board.window.first_day, board.window.last_day
        fig.suptitle(
            t("report.chart.title", locale, since=f"{first:%d/%m/%Y}", until=f"{last:%d/%m/%Y}"),
            fontsize=13,
            fontweight="bold",
        )
        _ranking(fig.add_subplot(grid[0, 0]), board, locale)
        _trend(fig.add_subplot(grid[1, 0]), trend, scope, locale)
    return fig


def png(fig: Figure) -> bytes:
    """Return a figure as PNG bytes."""
    import matplotlib

    out = BytesIO()
    with matplotlib.rc_context({"font.family": [FONT]}):
        fig.savefig(out, format="png", dpi=DPI)
    return out.getvalue()


def scoreboard_png(
    board: Scoreboard, trend: Sequence[TrendPoint], *, scope: str, locale: str
) -> bytes:
    """Return the scoreboard's chart as PNG bytes."""
    return png(figure(board, trend, scope=scope, locale=locale))
