"""Telegram's flood limits in three shapes (token bucket, sliding window, fixed window), plus
network jitter, with an injectable time source."""

from __future__ import annotations

import math
import random
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, fields, replace
from typing import Any, Protocol

from bot.sandbox.errors import JsonDict, bad_request

TimeSource = Callable[[], float]
EPSILON = 1e-9
SHAPES = ("bucket", "sliding", "fixed")
ZERO_OK = {"jitter_min_ms", "jitter_max_ms", "jitter_seed"}


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
    shape: str = "bucket"
    jitter_min_ms: float = 0.0
    jitter_max_ms: float = 0.0
    jitter_seed: int = 0

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
        result = replace(self, **changes)
        result.check()
        return result

    def check(self) -> None:
        """Refuse an unknown shape or a jitter range upside down (400)."""
        if self.shape not in SHAPES:
            raise bad_request(f"limits field shape must be one of {', '.join(SHAPES)}")
        if self.jitter_max_ms < self.jitter_min_ms:
            raise bad_request("limits field jitter_max_ms must be >= jitter_min_ms")


def _coerce(name: str, value: Any, kind: Any) -> Any:
    """Check and convert one limits field value."""
    if "bool" in str(kind):
        if not isinstance(value, bool):
            raise bad_request(f"limits field {name} must be a boolean")
        return value
    if "str" in str(kind):
        if not isinstance(value, str):
            raise bad_request(f"limits field {name} must be a string")
        return value
    low_ok = name in ZERO_OK
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
        raise bad_request(f"limits field {name} must be a positive number")
    if value == 0 and not low_ok:
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


class Meter(Protocol):
    """One limited scope: how long until a send is admitted, and admitting it."""

    def wait_time(self, now: float) -> float:
        """Return 0 when a send may pass now, else the seconds until one may."""
        ...

    def take(self, now: float) -> None:
        """Count one admitted send."""
        ...


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

    def take(self, now: float) -> None:
        """Spend one token."""
        self.tokens -= 1.0


class SlidingWindow:
    """At most `limit` sends in any `span` seconds (a strict sliding window, no burst)."""

    def __init__(self, limit: int, span: float) -> None:
        self.limit, self.span = limit, span
        self.times: deque[float] = deque()

    def wait_time(self, now: float) -> float:
        """Forget sends older than the span; 0 when fewer than `limit` remain."""
        while self.times and self.times[0] <= now - self.span + EPSILON:
            self.times.popleft()
        if len(self.times) < self.limit:
            return 0.0
        return self.times[0] + self.span - now

    def take(self, now: float) -> None:
        """Count one send."""
        self.times.append(now)


class FixedWindow:
    """At most `limit` sends per calendar window ([k*span, (k+1)*span) on the clock)."""

    def __init__(self, limit: int, span: float) -> None:
        self.limit, self.span = limit, span
        self.window, self.count = -1, 0

    def wait_time(self, now: float) -> float:
        """Start a new count in a new window; 0 while the count is under `limit`."""
        window = math.floor(now / self.span + EPSILON)
        if window != self.window:
            self.window, self.count = window, 0
        if self.count < self.limit:
            return 0.0
        return (window + 1) * self.span - now

    def take(self, now: float) -> None:
        """Count one send."""
        self.count += 1


def make_meter(
    shape: str, rate: float, burst: float, unit: float, speed: float, now: float
) -> Meter:
    """Return the meter of one scope: `rate` sends per `unit` seconds, scaled by `speed`."""
    per_second = rate / unit * speed
    if shape == "bucket":
        return TokenBucket(per_second, burst, now)
    limit = max(1, math.floor(rate + EPSILON))
    span = limit / per_second
    if shape == "sliding":
        return SlidingWindow(limit, span)
    return FixedWindow(limit, span)


class FloodControl:
    """The meters of one bot: overall, paid, per private chat and per group."""

    def __init__(self, limits: Limits, clock: TimeSource = time.monotonic) -> None:
        self.clock = clock
        self.configure(limits)

    def configure(self, limits: Limits) -> None:
        """Apply new limits and start with empty windows and full buckets."""
        self.limits = limits
        now = self.clock()
        self._global = self._meter(limits.global_rate, limits.global_burst, 1.0, now)
        self._paid = self._meter(limits.paid_rate, limits.paid_rate, 1.0, now)
        self._chats: dict[int, Meter] = {}
        self._random = random.Random(limits.jitter_seed)

    def _meter(self, rate: float, burst: float, unit: float, now: float) -> Meter:
        """Return a meter of the configured shape."""
        limits = self.limits
        return make_meter(limits.shape, rate, burst, unit, limits.speed, now)

    def _chat_meter(self, chat_id: int, is_group: bool, now: float) -> Meter:
        """Return (creating it) the meter of one chat."""
        meter = self._chats.get(chat_id)
        if meter is None:
            limits = self.limits
            if is_group:
                meter = self._meter(limits.group_per_minute, limits.group_burst, 60.0, now)
            else:
                meter = self._meter(limits.chat_rate, limits.chat_burst, 1.0, now)
            self._chats[chat_id] = meter
        return meter

    def jitter(self) -> float:
        """Return the next network delay in seconds (seeded; 0 when no jitter is set)."""
        low, high = self.limits.jitter_min_ms, self.limits.jitter_max_ms
        if high <= 0:
            return 0.0
        return self._random.uniform(low, high) / 1000.0 / self.limits.speed

    def admit(self, chat_id: int, is_group: bool, paid: bool = False) -> int:
        """Count the send in each scope and return 0, or return retry_after seconds (>= 1)."""
        if not self.limits.enabled:
            return 0
        now = self.clock()
        meters = [self._paid if paid else self._global, self._chat_meter(chat_id, is_group, now)]
        wait = max(meter.wait_time(now) for meter in meters)
        if wait > 0:
            return max(1, math.ceil(wait - EPSILON))
        for meter in meters:
            meter.take(now)
        return 0
