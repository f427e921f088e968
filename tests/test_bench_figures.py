"""The benchmarks' JSON figure lines."""

from __future__ import annotations

import json

import pytest

from bench.figures import Figures


def test_each_figure_prints_one_json_line_last(capsys: pytest.CaptureFixture[str]) -> None:
    """Two figures give two parseable lines with bench, figure, value and goal."""
    figures = Figures("dispatch")
    figures.add("sqlite.ratio_to_limit", 0.97123456, goal=">= 0.95", shape="sliding")
    figures.add("sqlite.flood_429", 0, goal="== 0")
    figures.print()
    lines = capsys.readouterr().out.strip().splitlines()
    rows = [json.loads(line) for line in lines]
    assert rows[0] == {
        "bench": "dispatch",
        "figure": "sqlite.ratio_to_limit",
        "value": 0.9712,
        "goal": ">= 0.95",
        "shape": "sliding",
    }
    assert rows[1]["figure"] == "sqlite.flood_429"
    assert rows[1]["value"] == 0
