"""What the running bot shares with its handlers and its jobs: settings, sessions, the clock."""

from __future__ import annotations

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
