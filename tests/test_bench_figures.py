"""The benchmarks' JSON figure lines."""

from __future__ import annotations

import json

import pytest

from bench.figures import Figures
from bench.throughput import Run, compare, report


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


def test_throughput_puts_zalo_beside_telegram(capsys: pytest.CaptureFixture[str]) -> None:
    """Each channel's figures carry their channel; the Zalo-to-Telegram ratios come last."""

    def run(name: str, seconds: float, cpu: float) -> Run:
        """Return 1,000 messages sent in `seconds`, with `cpu` seconds of the bot's CPU."""
        return Run(name, 1000, seconds, 1000, 0, cpu, 0.5)

    telegram = (run("bare Bot", 1.0, 0.4), [("sqlite", run("dispatcher", 2.0, 0.8))])
    zalo = (run("bare aiohttp", 0.5, 0.2), [("sqlite", run("zalo lane", 4.0, 1.6))])
    figures = Figures("throughput")
    report(figures, "telegram", *telegram)
    report(figures, "zalo", *zalo)
    compare(figures, {"telegram": telegram, "zalo": zalo})
    figures.print()
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines() if "{" in line]
    by = {(row["channel"], row["figure"]): row["value"] for row in rows}
    assert by[("telegram", "sqlite_per_second")] == 500
    assert by[("zalo", "sqlite_per_second")] == 250
    assert by[("zalo", "sqlite_bot_cpu_ms")] == 1.6
    assert by[("zalo", "baseline_zalo_vs_telegram_per_second")] == 2.0
    assert by[("zalo", "sqlite_zalo_vs_telegram_per_second")] == 0.5
    assert by[("zalo", "sqlite_zalo_vs_telegram_bot_cpu")] == 2.0
