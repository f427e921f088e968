"""Machine-readable figures: every benchmark prints, last, one JSON line per figure."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Figures:
    """The figures of one benchmark run, printed together at the end."""

    bench: str
    rows: list[dict[str, Any]] = field(default_factory=list)

    def add(self, figure: str, value: float, goal: str | None = None, **extra: Any) -> None:
        """Record one figure: its name, value (rounded), and the goal it is held to."""
        row: dict[str, Any] = {"bench": self.bench, "figure": figure, "value": round(value, 4)}
        row["goal"] = goal
        row.update(extra)
        self.rows.append(row)

    def print(self) -> None:
        """Print one JSON line per figure (call last)."""
        for row in self.rows:
            print(json.dumps(row, ensure_ascii=False))
