"""What the running bot shares with its handlers and its jobs: settings, sessions, the clock."""

from __future__ import annotations

import gc
from dataclasses import dataclass, field
from typing import Any

from bot.clock import Clock
from bot.config import Settings
from bot.db import SessionMaker


@dataclass
class Runtime:
    """The long-lived parts of one bot process; `extra` holds what was started with it."""

    settings: Settings
    maker: SessionMaker
    clock: Clock
    extra: dict[str, Any] = field(default_factory=dict)


def settle_heap() -> None:
    """Move what start-up built into the collector's permanent generation, once started.

    Modules, settings and the wiring live as long as the process; left in the collected
    generations, every full collection walks all of them again (130 ms each in bench.throughput,
    ten of them per 10,000 messages sent).
    """
    gc.collect()
    gc.freeze()
