"""Pacing: token buckets on the dispatcher's line of seconds."""

from __future__ import annotations

EPSILON = 1e-6  # tokens: clocks tick in microseconds


class Bucket:
    """A token bucket on a line of seconds."""

    def __init__(self, rate: float, burst: float = 1.0) -> None:
        self.rate, self.burst = rate, max(1.0, burst)
        self.tokens, self.stamp = self.burst, 0.0
        self.ready_at = 0.0  # when the next token is there (until the next take)

    def wait(self, now: float) -> float:
        """Return 0 when a token is there, else the seconds until one is."""
        return max(0.0, self.ready_at - now)

    def take(self, now: float) -> None:
        """Spend a token (refilling first)."""
        self.tokens = min(self.burst, self.tokens + max(0.0, now - self.stamp) * self.rate)
        self.stamp = max(self.stamp, now)
        self.tokens -= 1.0
        lack = 1.0 - EPSILON - self.tokens
        self.ready_at = self.stamp + lack / self.rate if lack > 0 else self.stamp

    def idle(self, now: float) -> bool:
        """Tell whether the bucket is full again (and may be forgotten)."""
        return now >= self.stamp + (self.burst - self.tokens) / self.rate
