"""Working days, working hours and quiet hours in the installation's time zone.

Public holidays are Vietnam's, from the `holidays` package (Tết, Hùng Kings' day, 30/4, 1/5,
2/9 with its adjacent day, 1/1, their weekend substitutes and the government's decreed day
swaps); the settings add days off and make-up working days on top. Every method that takes a
datetime needs an aware one, in any zone, and returns UTC; local arithmetic happens in the
scheduler's zone.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo

import holidays

from bot.config import CalendarSettings, SchedulerSettings, Settings
from bot.messages import Text
from bot.services.errors import InvalidInput

COUNTRY = "VN"
WEEKEND = frozenset({5, 6})  # Saturday and Sunday; the public sector works Monday to Friday.
ONE_DAY = timedelta(days=1)
ONE_HOUR = timedelta(hours=1)
MIDNIGHT = time(0, 0)


@lru_cache(maxsize=64)
def holiday_names(year: int) -> dict[date, str]:
    """Return the Vietnamese names of Vietnam's public holidays of one year."""
    return dict(holidays.country_holidays(COUNTRY, years=year, language="vi").items())


@lru_cache(maxsize=256)
def national_days(year: int) -> tuple[frozenset[date], frozenset[date]]:
    """Return Vietnam's public holidays and decreed make-up working days of one year."""
    # Neighbouring years too: a swap decreed for one year may move a day of the next or last.
    table = holidays.country_holidays(COUNTRY, years=range(year - 1, year + 2))
    days_off = frozenset(d for d in table if d.year == year)
    workdays = frozenset(d for d in table.weekend_workdays if d.year == year)
    return days_off, workdays


def parse_hh_mm(value: str) -> time:
    """Parse an "HH:MM" wall-clock time."""
    hours, _, minutes = value.partition(":")
    if len(hours) != 2 or len(minutes) != 2 or not (hours + minutes).isdigit():
        raise ValueError(f"not HH:MM: {value!r}")
    return time(int(hours), int(minutes))


def _parse_range(value: str) -> tuple[time, time]:
    """Parse an "HH:MM-HH:MM" working period."""
    start, _, end = value.partition("-")
    period = parse_hh_mm(start), parse_hh_mm(end)
    if period[0] >= period[1]:
        raise ValueError(f"empty working period: {value!r}")
    return period


def _utc(t: datetime) -> datetime:
    """Return an aware datetime in UTC; refuse a naive one."""
    if t.tzinfo is None or t.utcoffset() is None:
        raise ValueError("an aware datetime is needed")
    return t.astimezone(UTC)


def _check_date(d: date) -> date:
    """Refuse a datetime where a calendar date is meant."""
    if isinstance(d, datetime):
        raise TypeError("pass a date; use local(t).date() for a moment")
    return d


CLOSE = "17:00"  # when a deadline given as a date falls due
DAY_FORMAT = "%d/%m/%Y"
NOT_WORKING_KEYS = {
    "weekend": "calendar.not_working_weekend",
    "holiday": "calendar.not_working_holiday",
    "day_off": "calendar.not_working_day_off",
}


@dataclass(frozen=True)
class NonWorkingDay:
    """Why a local date is not a working day, and the working day after it."""

    day: date
    reason: str  # "weekend", "holiday" (national, named) or "day_off" (set in the config)
    next_day: date
    holiday: str | None = None

    @property
    def key(self) -> str:
        """Return the catalog message that says why, naming the next working day."""
        return NOT_WORKING_KEYS[self.reason]

    def params(self) -> dict[str, str]:
        """Return that message's parameters, already as text (dd/mm/yyyy)."""
        return {
            "day": self.day.strftime(DAY_FORMAT),
            "next_day": self.next_day.strftime(DAY_FORMAT),
            "holiday": self.holiday or "",
        }

    def text(self) -> Text:
        """Return the reason as a nested catalog message."""
        return Text(self.key, dict(self.params()))


class NotWorkingDay(InvalidInput):
    """A deadline, appointment or return date falls on a weekend or a day off."""

    def __init__(self, info: NonWorkingDay) -> None:
        super().__init__(info.key, **info.params())
        self.info = info


class WorkCalendar:
    """Working days and hours of one installation; takes aware datetimes, returns UTC."""

    def __init__(
        self,
        calendar: CalendarSettings | None = None,
        scheduler: SchedulerSettings | None = None,
    ) -> None:
        calendar = calendar if calendar is not None else CalendarSettings()
        scheduler = scheduler if scheduler is not None else SchedulerSettings()
        self.tz: ZoneInfo = scheduler.tz
        self.periods: tuple[tuple[time, time], ...] = tuple(
            _parse_range(item) for item in calendar.working_hours
        )
        self.extra_days_off = frozenset(calendar.extra_days_off)
        self.make_up_working_days = frozenset(calendar.make_up_working_days)
        clash = self.extra_days_off & self.make_up_working_days
        if clash:
            listed = ", ".join(d.isoformat() for d in sorted(clash))
            raise ValueError(f"days both off and make-up working days: {listed}")
        self.quiet_start = parse_hh_mm(scheduler.quiet_hours_start)
        self.quiet_end = parse_hh_mm(scheduler.quiet_hours_end)

    @classmethod
    def from_settings(cls, settings: Settings) -> WorkCalendar:
        """Build the calendar from an installation's settings."""
        return cls(settings.calendar, settings.scheduler)

    # Days.

    def is_working_day(self, d: date) -> bool:
        """Tell whether a local date is a working day."""
        _check_date(d)
        if d in self.make_up_working_days:
            return True
        if d in self.extra_days_off:
            return False
        days_off, workdays = national_days(d.year)
        if d in workdays:
            return True
        return d not in days_off and d.weekday() not in WEEKEND

    def check_working_day(self, d: date) -> NonWorkingDay | None:
        """Return why a local date is not a working day, or None when it is one."""
        if self.is_working_day(d):
            return None
        nxt = self.next_working_day(d)
        if d in self.extra_days_off:
            return NonWorkingDay(d, "day_off", nxt)
        name = holiday_names(d.year).get(d)
        if name is not None:
            return NonWorkingDay(d, "holiday", nxt, name)
        return NonWorkingDay(d, "weekend", nxt)

    def require_working_day(self, t: datetime, *, move: bool = False) -> datetime:
        """Return t if its local date is a working day; else move it (same time) or refuse."""
        local = self.local(t)
        off = self.check_working_day(local.date())
        if off is None:
            return _utc(t)
        if not move:
            raise NotWorkingDay(off)
        return self._at(off.next_day, local.time())

    def next_working_day(self, d: date) -> date:
        """Return the first working day strictly after d."""
        d = _check_date(d) + ONE_DAY
        while not self.is_working_day(d):
            d += ONE_DAY
        return d

    def add_working_days(self, d: date, n: int) -> date:
        """Return the n-th working day after d, counting from the next working day if d is off."""
        if n < 0:
            raise ValueError("n must not be negative")
        day = d if self.is_working_day(d) else self.next_working_day(d)
        for _ in range(n):
            day = self.next_working_day(day)
        return day

    def working_days_between(self, a: date, b: date) -> int:
        """Count the working days d with a < d <= b (negative when b is before a)."""
        _check_date(a)
        _check_date(b)
        if b < a:
            return -self.working_days_between(b, a)
        count = 0
        d = a + ONE_DAY
        while d <= b:
            count += self.is_working_day(d)
            d += ONE_DAY
        return count

    # Moments.

    def local(self, t: datetime) -> datetime:
        """Return a moment in the installation's time zone."""
        return _utc(t).astimezone(self.tz)

    def at_local(self, d: date, hh_mm: str) -> datetime:
        """Return the UTC moment of a local date and "HH:MM" wall-clock time."""
        return self._at(_check_date(d), parse_hh_mm(hh_mm))

    def close_of_business(self, now: datetime, working_days: int) -> datetime:
        """Return 17:00 local, `working_days` working days after today (the usual deadline)."""
        return self.at_local(self.add_working_days(self.local(now).date(), working_days), CLOSE)

    def _at(self, d: date, wall: time) -> datetime:
        """Return the UTC moment of a local date and wall-clock time."""
        return datetime.combine(d, wall, tzinfo=self.tz).astimezone(UTC)

    def _periods(self, start: date) -> Iterator[tuple[datetime, datetime]]:
        """Yield the UTC working periods of the working days from a local date on."""
        d = start
        while True:
            if self.is_working_day(d):
                for begin, end in self.periods:
                    yield self._at(d, begin), self._at(d, end)
            d += ONE_DAY

    def is_working_time(self, t: datetime) -> bool:
        """Tell whether a moment falls in a working period of a working day."""
        u = _utc(t)
        d = self.local(u).date()
        if not self.is_working_day(d):
            return False
        return any(self._at(d, begin) <= u < self._at(d, end) for begin, end in self.periods)

    def next_working_time(self, t: datetime) -> datetime:
        """Return t if it is working time, else the start of the next working period."""
        u = _utc(t)
        for begin, end in self._periods(self.local(u).date()):
            if end > u:
                return max(begin, u)
        raise AssertionError("unreachable: working periods never run out")

    def add_working_hours(self, t: datetime, hours: float) -> datetime:
        """Return the earliest moment by which `hours` of working time have passed since t."""
        if not math.isfinite(hours) or hours < 0:
            raise ValueError("hours must be a finite number >= 0")
        u = _utc(t)
        remaining = timedelta(hours=hours)
        for begin, end in self._periods(self.local(u).date()):
            if end < u:
                continue
            start = max(begin, u)
            available = end - start
            if remaining <= available:
                return start + remaining
            remaining -= available
        raise AssertionError("unreachable: working periods never run out")

    def working_hours_between(self, a: datetime, b: datetime) -> float:
        """Return the working hours from a to b (negative when b is before a)."""
        ua, ub = _utc(a), _utc(b)
        if ub < ua:
            return -self.working_hours_between(ub, ua)
        total = timedelta(0)
        for begin, end in self._periods(self.local(ua).date()):
            if begin >= ub:
                break
            overlap = min(end, ub) - max(begin, ua)
            if overlap > timedelta(0):
                total += overlap
        return total / ONE_HOUR

    # Quiet hours and delivery.

    def in_quiet_hours(self, t: datetime) -> bool:
        """Tell whether a moment falls in the quiet hours (which may wrap midnight)."""
        wall = self.local(t).time()
        start, end = self.quiet_start, self.quiet_end
        if start == end:
            return False
        if start < end:
            return start <= wall < end
        return wall >= start or wall < end

    def after_quiet_hours(self, t: datetime) -> datetime:
        """Return t if outside the quiet hours, else the moment they end."""
        u = _utc(t)
        if not self.in_quiet_hours(u):
            return u
        lt = self.local(u)
        d = lt.date()
        if self.quiet_start > self.quiet_end and lt.time() >= self.quiet_start:
            d += ONE_DAY
        return max(u, self._at(d, self.quiet_end))

    def deliverable_at(self, t: datetime) -> datetime:
        """Return the earliest moment >= t on a working day and outside the quiet hours."""
        u = _utc(t)
        while True:
            d = self.local(u).date()
            if not self.is_working_day(d):
                u = self._at(self.next_working_day(d), MIDNIGHT)
            elif self.in_quiet_hours(u):
                u = self.after_quiet_hours(u)
            else:
                return u
