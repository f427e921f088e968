"""Telegram's flood limits as token buckets, with an injectable time source."""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, fields, replace
from typing import Any

from bot.sandbox.errors import JsonDict, bad_request

TimeSource = Callable[[], float]
EPSILON = 1e-9


@dataclass(frozen=True)
class Limits:
    """Flood limits per bot: rates are multiplied by `speed`; `enabled=False` turns them off."""

    enabled: bool = True
    global_rate: float = 30.0
    global_burst: int = 30
    chat_rate: float = 1.0
    chat_burst: int = 3
    group_per_minute: float = 20.0
    group_burst: int = 20
    paid_rate: float = 1000.0
    speed: float = 1.0

    @classmethod
    def off(cls) -> Limits:
        """Return limits that admit everything."""
        return cls(enabled=False)

    def to_json(self) -> JsonDict:
        """Return the limits as JSON."""
        return asdict(self)

    def updated(self, data: Mapping[str, Any]) -> Limits:
        """Return a copy with the known keys of `data` changed (400 on unknown keys)."""
        known = {item.name: item.type for item in fields(self)}
        unknown = set(data) - set(known)
        if unknown:
            raise bad_request(f"unknown limits field(s): {', '.join(sorted(unknown))}")
        changes = {name: _coerce(name, value, known[name]) for name, value in data.items()}
        return replace(self, **changes)


def _coerce(name: str, value: Any, kind: Any) -> Any:
    """Check and convert one limits field value."""
    if "bool" in str(kind):
        if not isinstance(value, bool):
            raise bad_request(f"limits field {name} must be a boolean")
        return value
    if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
        raise bad_request(f"limits field {name} must be a positive number")
    return int(value) if "int" in str(kind) else float(value)


class FakeTime:
    """A monotonic time source (seconds) that moves only when told to."""

    def __init__(self, start: float = 1000.0) -> None:
        self._now = start

    def __call__(self) -> float:
        """Return the fake current time in seconds."""
        return self._now

    def advance(self, seconds: float) -> None:
        """Move the fake time forward."""
        self._now += seconds


class TokenBucket:
    """A bucket of `burst` tokens refilled at `rate` tokens per second."""

    def __init__(self, rate: float, burst: float, now: float) -> None:
        self.rate = rate
        self.burst = max(1.0, burst)
        self.tokens = self.burst
        self.stamp = now

    def wait_time(self, now: float) -> float:
        """Refill, then return 0 when a token is available or the seconds until one is."""
        self.tokens = min(self.burst, self.tokens + max(0.0, now - self.stamp) * self.rate)
        self.stamp = now
        if self.tokens >= 1.0 - EPSILON:
            return 0.0
        return (1.0 - self.tokens) / self.rate

    def take(self) -> None:
        """Spend one token."""
        self.tokens -= 1.0


class FloodControl:
    """The buckets of one bot: overall, per private chat and per group."""

    def __init__(self, limits: Limits, clock: TimeSource = time.monotonic) -> None:
        self.clock = clock
        self.configure(limits)

    def configure(self, limits: Limits) -> None:
        """Apply new limits and start with full buckets."""
        self.limits = limits
        now = self.clock()
        speed = limits.speed
        self._global = TokenBucket(limits.global_rate * speed, limits.global_burst, now)
        self._paid = TokenBucket(limits.paid_rate * speed, limits.paid_rate * speed, now)
        self._chats: dict[int, TokenBucket] = {}

    def _chat_bucket(self, chat_id: int, is_group: bool, now: float) -> TokenBucket:
        """Return (creating it) the bucket of one chat."""
        bucket = self._chats.get(chat_id)
        if bucket is None:
            limits = self.limits
            if is_group:
                rate, burst = limits.group_per_minute / 60.0, float(limits.group_burst)
            else:
                rate, burst = limits.chat_rate, float(limits.chat_burst)
            bucket = TokenBucket(rate * limits.speed, burst, now)
            self._chats[chat_id] = bucket
        return bucket

    def admit(self, chat_id: int, is_group: bool, paid: bool = False) -> int:
        """Take a token from each bucket and return 0, or return retry_after seconds (>= 1)."""
        if not self.limits.enabled:
            return 0
        now = self.clock()
        buckets = [self._paid if paid else self._global, self._chat_bucket(chat_id, is_group, now)]
        wait = max(bucket.wait_time(now) for bucket in buckets)
        if wait > 0:
            return max(1, math.ceil(wait - EPSILON))
        for bucket in buckets:
            bucket.take()
        return 0
