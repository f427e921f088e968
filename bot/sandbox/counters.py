"""Counters that tests and benchmarks read: accepted messages, 429s, 403s, injected faults."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from bot.sandbox.errors import JsonDict


@dataclass
class Counters:
    """What one bot's requests met in the sandbox."""

    requests_total: int = 0
    accepted_total: int = 0
    accepted_by_chat: Counter[int] = field(default_factory=Counter)
    rate_limited_total: int = 0
    rate_limited_by_chat: Counter[int] = field(default_factory=Counter)
    forbidden_total: int = 0
    forbidden_by_chat: Counter[int] = field(default_factory=Counter)
    server_errors_total: int = 0
    dropped_total: int = 0
    delayed_total: int = 0
    method_faults_total: int = 0
    conflicts_total: int = 0
    by_method: Counter[str] = field(default_factory=Counter)

    def accepted(self, chat_id: int) -> None:
        """Count one message the sandbox accepted for a chat."""
        self.accepted_total += 1
        self.accepted_by_chat[chat_id] += 1

    def rate_limited(self, chat_id: int) -> None:
        """Count one 429 answer for a chat."""
        self.rate_limited_total += 1
        self.rate_limited_by_chat[chat_id] += 1

    def forbidden(self, chat_id: int) -> None:
        """Count one 403 answer for a chat."""
        self.forbidden_total += 1
        self.forbidden_by_chat[chat_id] += 1

    def to_json(self) -> JsonDict:
        """Return the counters as JSON (chat ids as string keys)."""
        return {
            "requests_total": self.requests_total,
            "accepted_total": self.accepted_total,
            "accepted_by_chat": _keyed(self.accepted_by_chat),
            "rate_limited_total": self.rate_limited_total,
            "rate_limited_by_chat": _keyed(self.rate_limited_by_chat),
            "forbidden_total": self.forbidden_total,
            "forbidden_by_chat": _keyed(self.forbidden_by_chat),
            "server_errors_total": self.server_errors_total,
            "dropped_total": self.dropped_total,
            "delayed_total": self.delayed_total,
            "method_faults_total": self.method_faults_total,
            "conflicts_total": self.conflicts_total,
            "by_method": dict(self.by_method),
        }


def _keyed(counter: Counter[int]) -> dict[str, int]:
    """Turn a counter keyed by chat id into a JSON object."""
    return {str(key): value for key, value in counter.items()}
