"""Crontab rules: parse one with crontab's day numbers, find its next moment.

A leaf below the settings and the services: config validates `tasks.digest_cron` with it, and
recurring tasks and digests compute their due moments with it.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, tzinfo
from typing import Any

from apscheduler.triggers.cron import CronTrigger

ONE_SECOND = timedelta(seconds=1)
DAY_NAMES = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")


def _day_numbers(part: str) -> list[int] | None:
    """Return the crontab day numbers (0 or 7 = Sunday) of one list item, None for names."""
    base, _, step_text = part.partition("/")
    if base == "*":
        low, high = 0, 6
    elif base.replace("-", "").isdigit() and base.count("-") <= 1:
        low_text, _, high_text = base.partition("-")
        low = int(low_text)
        high = int(high_text) if high_text else (7 if step_text else low)
    else:
        return None
    if step_text and not step_text.isdigit():
        raise ValueError(f"bad day of week: {part!r}")
    step = int(step_text) if step_text else 1
    if not 0 <= low <= high <= 7 or step < 1:
        raise ValueError(f"bad day of week: {part!r}")
    return list(range(low, high + 1, step))


def _weekdays(field: str) -> str:
    """Rewrite a crontab day-of-week field with names (APScheduler counts 0 as Monday)."""
    if field == "*":
        return field
    out: list[str] = []
    for part in field.split(","):
        numbers = _day_numbers(part)
        if numbers is None:
            out.append(part)
        else:
            out.extend(DAY_NAMES[n % 7] for n in numbers)
    return ",".join(dict.fromkeys(out))


def cron_trigger(expr: str, tz: tzinfo) -> CronTrigger:
    """Build a trigger from a crontab line with crontab's day numbers; ValueError when bad."""
    fields = expr.split()
    if len(fields) != 5:
        raise ValueError("a crontab rule has five fields")
    fields[4] = _weekdays(fields[4])
    trigger = CronTrigger.from_crontab(" ".join(fields), timezone=tz)
    assert isinstance(trigger, CronTrigger)
    return trigger


def fire_after(trigger: CronTrigger, moment: datetime) -> datetime | None:
    """Return the rule's first moment strictly after `moment`, in UTC."""
    found: Any = trigger.get_next_fire_time(None, moment)
    if found is not None and found <= moment:
        found = trigger.get_next_fire_time(None, moment + ONE_SECOND)
    return found.astimezone(UTC) if found is not None else None
