"""Charts drawn on the server as inline SVG: no script, nothing fetched, readable on a phone."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal

from markupsafe import Markup, escape

WIDTH = 420  # narrow: the labels stay readable once scaled down to a phone
ROW = 38
BAR = 14
COLOURS = {5: "#1a7f37", 4: "#4caf50", 3: "#c9a400", 2: "#e07020", 1: "#c62828"}
DEFAULT = "#1f5fa8"


@dataclass(frozen=True)
class Bar:
    """One bar: its label, its length (0–`top`), the value written beside it, its colour."""

    label: str
    value: Decimal | float | int
    shown: str
    colour: str = DEFAULT


def bars(items: Sequence[Bar], *, title: str, top: float | None = None) -> Markup:
    """Return a horizontal bar chart: each label above its bar, the value at the bar's end."""
    biggest = top if top is not None else max((float(b.value) for b in items), default=0.0)
    scale = (WIDTH - 100) / biggest if biggest > 0 else 0.0
    height = ROW * len(items) + 8
    parts = [
        f'<svg class="chart" viewBox="0 0 {WIDTH} {height}" width="100%" role="img" '
        f'aria-label="{escape(title)}" xmlns="http://www.w3.org/2000/svg">',
        f"<title>{escape(title)}</title>",
    ]
    for index, bar in enumerate(items):
        y = ROW * index
        length = max(float(bar.value) * scale, 1.0 if float(bar.value) > 0 else 0.0)
        parts.append(
            f'<text x="0" y="{y + 13}" font-size="13" fill="#333">{escape(bar.label)}</text>'
            f'<rect x="0" y="{y + 18}" width="{length:.1f}" height="{BAR}" rx="2" '
            f'fill="{escape(bar.colour)}"/>'
            f'<text x="{length + 6:.1f}" y="{y + 30}" font-size="13" fill="#111">'
            f"{escape(bar.shown)}</text>"
        )
    parts.append("</svg>")
    return Markup("".join(parts))
