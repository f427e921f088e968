"""Working-time calendar: Vietnamese holidays, working hours, quiet hours, UTC in and out."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import holidays
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bot.config import CalendarSettings, SchedulerSettings, Settings
from bot.services.calendar import NonWorkingDay, NotWorkingDay, WorkCalendar, national_days

HCM = ZoneInfo("Asia/Ho_Chi_Minh")
TOKYO = ZoneInfo("Asia/Tokyo")

CAL = WorkCalendar()
CUSTOM = WorkCalendar(
    CalendarSettings(
        extra_days_off=[date(2026, 12, 7)],  # a Monday the province gives off
        make_up_working_days=[date(2026, 12, 12)],  # a Saturday worked in exchange
    )
)


def ict(y: int, m: int, d: int, hh: int = 0, mm: int = 0) -> datetime:
    """Return a wall-clock moment in Hanoi / Ho Chi Minh City."""
    return datetime(y, m, d, hh, mm, tzinfo=HCM)


def assert_utc(t: datetime, expected: datetime) -> None:
    """Check a result is the expected moment and is expressed in UTC."""
    assert t == expected
    assert t.utcoffset() == timedelta(0)
    assert t.tzinfo is UTC


# Days.


def test_weekend_is_off_and_weekdays_work():
    assert CAL.is_working_day(date(2026, 12, 4))  # Friday
    assert not CAL.is_working_day(date(2026, 12, 5))  # Saturday
    assert not CAL.is_working_day(date(2026, 12, 6))  # Sunday
    assert CAL.next_working_day(date(2026, 12, 4)) == date(2026, 12, 7)
    assert CAL.next_working_day(date(2026, 12, 5)) == date(2026, 12, 7)


def test_package_gives_the_statutory_2027_holidays_and_all_are_days_off():
    table = holidays.country_holidays("VN", years=2027)
    statutory = {
        date(2027, 1, 1),  # New Year
        date(2027, 2, 5),  # Lunar New Year's Eve
        date(2027, 2, 6),  # Tết, first day of the year of the Goat
        date(2027, 2, 7),
        date(2027, 2, 8),
        date(2027, 2, 9),
        date(2027, 4, 16),  # Hùng Kings (10th day of the 3rd lunar month)
        date(2027, 4, 30),
        date(2027, 5, 1),
        date(2027, 9, 2),
        date(2027, 9, 3),  # the day next to National Day (Labour Code 2019, art. 112)
    }
    assert statutory <= set(table)
    assert "Lunar New Year" in str(table.get(date(2027, 2, 6), ""))
    assert all(not CAL.is_working_day(d) for d in table)


def test_tet_2027_pushes_deadlines_past_the_holiday():
    tet = [date(2027, 2, 4) + timedelta(days=i) for i in range(7)]  # 29 Tết .. 5th day
    assert not any(CAL.is_working_day(d) for d in tet)
    assert CAL.is_working_day(date(2027, 2, 3))
    assert CAL.next_working_day(date(2027, 2, 3)) == date(2027, 2, 11)
    # A dossier received on Wednesday 3 Feb with five working days is due on 17 Feb.
    assert CAL.add_working_days(date(2027, 2, 3), 5) == date(2027, 2, 17)
    assert CAL.working_days_between(date(2027, 2, 3), date(2027, 2, 17)) == 5


def test_reunification_and_labour_day_with_hung_kings_observed_2026():
    # Hùng Kings' day falls on Sunday 26/4/2026 and is taken on Monday 27/4.
    assert not CAL.is_working_day(date(2026, 4, 27))
    assert not CAL.is_working_day(date(2026, 4, 30))
    assert not CAL.is_working_day(date(2026, 5, 1))
    assert CAL.next_working_day(date(2026, 4, 29)) == date(2026, 5, 4)
    assert CAL.add_working_days(date(2026, 4, 24), 3) == date(2026, 5, 4)


def test_labour_day_on_saturday_is_observed_on_monday_2027():
    assert not CAL.is_working_day(date(2027, 5, 3))
    assert CAL.next_working_day(date(2027, 4, 29)) == date(2027, 5, 4)


def test_national_day_and_its_adjacent_day():
    assert not CAL.is_working_day(date(2027, 9, 2))  # Thursday
    assert not CAL.is_working_day(date(2027, 9, 3))  # Friday
    assert CAL.next_working_day(date(2027, 9, 1)) == date(2027, 9, 6)
    assert not CAL.is_working_day(date(2025, 9, 1))
    assert not CAL.is_working_day(date(2025, 9, 2))


def test_government_day_swaps_from_the_package():
    # 2025: Friday 2/5 off, Saturday 26/4 worked instead; 2026: Monday 31/8 for Saturday 22/8.
    assert not CAL.is_working_day(date(2025, 5, 2))
    assert CAL.is_working_day(date(2025, 4, 26))
    assert not CAL.is_working_day(date(2026, 8, 31))
    assert CAL.is_working_day(date(2026, 8, 22))
    assert date(2026, 8, 22) in national_days(2026)[1]


def test_configured_extra_day_off():
    assert CAL.is_working_day(date(2026, 12, 7))
    assert not CUSTOM.is_working_day(date(2026, 12, 7))
    assert CUSTOM.next_working_day(date(2026, 12, 4)) == date(2026, 12, 8)
    assert CUSTOM.add_working_days(date(2026, 12, 4), 1) == date(2026, 12, 8)


def test_configured_make_up_saturday_is_a_working_day():
    assert not CAL.is_working_day(date(2026, 12, 12))
    assert CUSTOM.is_working_day(date(2026, 12, 12))
    assert CUSTOM.next_working_day(date(2026, 12, 11)) == date(2026, 12, 12)
    assert CUSTOM.is_working_time(ict(2026, 12, 12, 8))
    # Friday 16:00 + 4 working hours: 1 h on Friday, 3 h on the make-up Saturday.
    assert_utc(CUSTOM.add_working_hours(ict(2026, 12, 11, 16), 4), ict(2026, 12, 12, 10, 30))


def test_make_up_day_can_override_a_package_holiday():
    cal = WorkCalendar(CalendarSettings(make_up_working_days=[date(2027, 2, 4)]))
    assert cal.is_working_day(date(2027, 2, 4))


def test_a_day_both_off_and_worked_is_refused():
    same = date(2026, 12, 12)
    with pytest.raises(ValueError, match="day_both_ways"):
        CalendarSettings(extra_days_off=[same], make_up_working_days=[same])


def test_add_working_days_zero_and_negative():
    assert CAL.add_working_days(date(2026, 12, 4), 0) == date(2026, 12, 4)
    assert CAL.add_working_days(date(2026, 12, 5), 0) == date(2026, 12, 7)
    assert CAL.add_working_days(date(2026, 12, 5), 1) == date(2026, 12, 8)
    with pytest.raises(ValueError, match="negative"):
        CAL.add_working_days(date(2026, 12, 4), -1)


def test_working_days_between_counts_the_end_not_the_start():
    assert CAL.working_days_between(date(2026, 12, 4), date(2026, 12, 4)) == 0
    assert CAL.working_days_between(date(2026, 12, 4), date(2026, 12, 7)) == 1
    assert CAL.working_days_between(date(2026, 12, 7), date(2026, 12, 4)) == -1
    assert CAL.working_days_between(date(2026, 11, 30), date(2026, 12, 31)) == 23


def test_datetime_is_refused_where_a_date_is_meant():
    with pytest.raises(TypeError):
        CAL.is_working_day(ict(2026, 12, 4, 9))


# Hours.


def test_friday_afternoon_spills_into_monday():
    assert_utc(CAL.add_working_hours(ict(2026, 12, 4, 16), 4), ict(2026, 12, 7, 10, 30))
    assert CAL.working_hours_between(ict(2026, 12, 4, 16), ict(2026, 12, 7, 10, 30)) == 4.0


def test_friday_afternoon_skips_a_holiday_monday():
    # Monday 27/4/2026 is Hùng Kings' day (observed): the hours land on Tuesday.
    assert_utc(CAL.add_working_hours(ict(2026, 4, 24, 16), 4), ict(2026, 4, 28, 10, 30))


def test_lunch_break_is_not_working_time():
    assert CAL.is_working_time(ict(2026, 12, 4, 11, 29))
    assert not CAL.is_working_time(ict(2026, 12, 4, 11, 30))
    assert not CAL.is_working_time(ict(2026, 12, 4, 12))
    assert CAL.is_working_time(ict(2026, 12, 4, 13, 30))
    assert_utc(CAL.next_working_time(ict(2026, 12, 4, 12)), ict(2026, 12, 4, 13, 30))
    assert_utc(CAL.add_working_hours(ict(2026, 12, 4, 11), 1), ict(2026, 12, 4, 14))
    assert CAL.working_hours_between(ict(2026, 12, 4, 11), ict(2026, 12, 4, 14)) == 1.0
    assert CAL.working_hours_between(ict(2026, 12, 4, 7), ict(2026, 12, 4, 18)) == 7.5


def test_next_working_time_before_work_after_work_and_on_weekends():
    assert_utc(CAL.next_working_time(ict(2026, 12, 4, 6)), ict(2026, 12, 4, 7, 30))
    assert_utc(CAL.next_working_time(ict(2026, 12, 4, 17)), ict(2026, 12, 7, 7, 30))
    assert_utc(CAL.next_working_time(ict(2026, 12, 5, 9)), ict(2026, 12, 7, 7, 30))
    working = ict(2026, 12, 4, 9, 15)
    assert_utc(CAL.next_working_time(working), working.astimezone(UTC))


def test_zero_hours_waits_for_work_and_period_end_counts():
    assert_utc(CAL.add_working_hours(ict(2026, 12, 5, 9), 0), ict(2026, 12, 7, 7, 30))
    assert_utc(CAL.add_working_hours(ict(2026, 12, 4, 7, 30), 4), ict(2026, 12, 4, 11, 30))
    with pytest.raises(ValueError, match="hours must be"):
        CAL.add_working_hours(ict(2026, 12, 4, 9), -1)
    with pytest.raises(ValueError, match="hours must be"):
        CAL.add_working_hours(ict(2026, 12, 4, 9), float("nan"))


def test_utc_and_foreign_zone_inputs_give_utc_outputs():
    friday_4pm_utc = datetime(2026, 12, 4, 9, 0, tzinfo=UTC)  # 16:00 in Hanoi
    friday_4pm_tokyo = datetime(2026, 12, 4, 18, 0, tzinfo=TOKYO)
    monday = datetime(2026, 12, 7, 3, 30, tzinfo=UTC)  # 10:30 in Hanoi
    assert_utc(CAL.add_working_hours(friday_4pm_utc, 4), monday)
    assert_utc(CAL.add_working_hours(friday_4pm_tokyo, 4), monday)
    # 23:30 UTC on Sunday is already Monday 06:30 in Hanoi.
    assert_utc(
        CAL.next_working_time(datetime(2026, 12, 6, 23, 30, tzinfo=UTC)),
        datetime(2026, 12, 7, 0, 30, tzinfo=UTC),
    )
    assert CAL.in_quiet_hours(datetime(2026, 12, 6, 23, 30, tzinfo=UTC))
    with pytest.raises(ValueError, match="aware"):
        CAL.is_working_time(datetime(2026, 12, 4, 9))


def test_local_and_at_local_helpers():
    assert_utc(CAL.at_local(date(2026, 12, 4), "07:30"), datetime(2026, 12, 4, 0, 30, tzinfo=UTC))
    shown = CAL.local(datetime(2026, 12, 4, 17, 0, tzinfo=UTC))
    assert (shown.date(), shown.hour, shown.tzinfo) == (date(2026, 12, 5), 0, HCM)
    with pytest.raises(ValueError, match="HH:MM"):
        CAL.at_local(date(2026, 12, 4), "7h30")


def test_from_settings_uses_calendar_and_scheduler_sections():
    s = Settings(
        scheduler=SchedulerSettings(timezone="Asia/Bangkok", quiet_hours_start="22:00"),
        calendar=CalendarSettings(working_hours=["08:00-12:00"]),
    )
    cal = WorkCalendar.from_settings(s)
    assert cal.tz == ZoneInfo("Asia/Bangkok")
    assert_utc(cal.add_working_hours(ict(2026, 12, 4, 11), 2), ict(2026, 12, 7, 9))
    assert not cal.in_quiet_hours(ict(2026, 12, 4, 21, 30))


# Quiet hours and delivery.


def test_quiet_hours_wrap_midnight():
    assert not CAL.in_quiet_hours(ict(2026, 12, 3, 20, 59))
    assert CAL.in_quiet_hours(ict(2026, 12, 3, 21))
    assert CAL.in_quiet_hours(ict(2026, 12, 3, 23, 59))
    assert CAL.in_quiet_hours(ict(2026, 12, 4, 0))
    assert CAL.in_quiet_hours(ict(2026, 12, 4, 6, 59))
    assert not CAL.in_quiet_hours(ict(2026, 12, 4, 7))
    assert_utc(CAL.after_quiet_hours(ict(2026, 12, 3, 22)), ict(2026, 12, 4, 7))
    assert_utc(CAL.after_quiet_hours(ict(2026, 12, 4, 3)), ict(2026, 12, 4, 7))
    noon = ict(2026, 12, 4, 12)
    assert_utc(CAL.after_quiet_hours(noon), noon.astimezone(UTC))


def test_quiet_hours_inside_one_day_and_none():
    siesta = WorkCalendar(
        scheduler=SchedulerSettings(quiet_hours_start="12:00", quiet_hours_end="13:00")
    )
    assert siesta.in_quiet_hours(ict(2026, 12, 4, 12, 30))
    assert not siesta.in_quiet_hours(ict(2026, 12, 4, 23))
    assert_utc(siesta.after_quiet_hours(ict(2026, 12, 4, 12, 30)), ict(2026, 12, 4, 13))
    never = WorkCalendar(
        scheduler=SchedulerSettings(quiet_hours_start="07:00", quiet_hours_end="07:00")
    )
    assert not never.in_quiet_hours(ict(2026, 12, 4, 3))


def test_deliverable_at_skips_quiet_hours_and_days_off():
    evening = ict(2026, 12, 3, 19)  # Thursday evening: a working day, not quiet
    assert_utc(CAL.deliverable_at(evening), evening.astimezone(UTC))
    assert_utc(CAL.deliverable_at(ict(2026, 12, 3, 22)), ict(2026, 12, 4, 7))
    assert_utc(CAL.deliverable_at(ict(2026, 12, 4, 22)), ict(2026, 12, 7, 7))
    assert_utc(CAL.deliverable_at(ict(2026, 12, 5, 10)), ict(2026, 12, 7, 7))
    # Wednesday night before 30/4–1/5/2026: next is Monday 4/5.
    assert_utc(CAL.deliverable_at(ict(2026, 4, 29, 22)), ict(2026, 5, 4, 7))
    # Tết 2027: nothing goes out from 29 Tết to the 5th day.
    assert_utc(CAL.deliverable_at(ict(2027, 2, 4, 9)), ict(2027, 2, 11, 7))


# Properties.

moments = st.datetimes(
    min_value=datetime(2025, 1, 1), max_value=datetime(2028, 12, 31), timezones=st.just(UTC)
)
days = st.dates(min_value=date(2025, 1, 1), max_value=date(2028, 12, 31))
hours = st.floats(min_value=0, max_value=60, allow_nan=False, allow_infinity=False)
calendars = st.sampled_from([CAL, CUSTOM])


@settings(deadline=None)
@given(calendars, moments, hours, hours)
def test_adding_hours_composes(cal, t, a, b):
    once = cal.add_working_hours(t, a + b)
    twice = cal.add_working_hours(cal.add_working_hours(t, a), b)
    assert abs(once - twice) <= timedelta(seconds=1)


@settings(deadline=None)
@given(calendars, moments, hours)
def test_hours_between_inverts_adding(cal, t, h):
    end = cal.add_working_hours(t, h)
    assert end >= t
    assert cal.working_hours_between(t, end) == pytest.approx(h, abs=1e-6)
    assert cal.working_hours_between(end, t) == pytest.approx(-h, abs=1e-6)


@settings(deadline=None)
@given(calendars, moments)
def test_next_working_time_is_fixed_point_exactly_in_working_time(cal, t):
    nxt = cal.next_working_time(t)
    assert nxt >= t
    assert cal.is_working_time(nxt)
    assert (nxt == t) == cal.is_working_time(t)


@settings(deadline=None)
@given(calendars, days, days, st.integers(0, 40), st.integers(0, 40))
def test_add_working_days_lands_on_working_days_and_is_monotonic(cal, d1, d2, n1, n2):
    d1, d2 = min(d1, d2), max(d1, d2)
    n1, n2 = min(n1, n2), max(n1, n2)
    end = cal.add_working_days(d1, n1)
    assert cal.is_working_day(end)
    assert end >= d1
    assert end <= cal.add_working_days(d2, n1)
    assert end <= cal.add_working_days(d1, n2)
    assert cal.working_days_between(d1, end) == n1 + (not cal.is_working_day(d1))


@settings(deadline=None)
@given(calendars, moments)
def test_deliverable_at_is_the_first_allowed_moment(cal, t):
    out = cal.deliverable_at(t)
    assert out >= t
    assert cal.is_working_day(cal.local(out).date())
    assert not cal.in_quiet_hours(out)
    assert cal.deliverable_at(out) == out
    if out > t:
        just_before = out - timedelta(microseconds=1)
        assert cal.in_quiet_hours(just_before) or not cal.is_working_day(
            cal.local(just_before).date()
        )


def test_check_working_day_names_the_reason_and_the_next_working_day():
    assert CAL.check_working_day(date(2027, 2, 11)) is None
    tet = CAL.check_working_day(date(2027, 2, 8))
    assert tet == NonWorkingDay(date(2027, 2, 8), "holiday", date(2027, 2, 11), tet.holiday)
    assert tet.holiday == "Mùng ba Tết Nguyên Đán"
    saturday = CAL.check_working_day(date(2026, 12, 12))
    assert saturday == NonWorkingDay(date(2026, 12, 12), "weekend", date(2026, 12, 14))
    office = WorkCalendar(CalendarSettings(extra_days_off=[date(2026, 12, 24)]))
    assert office.check_working_day(date(2026, 12, 24)).reason == "day_off"


def test_require_working_day_refuses_or_moves_keeping_the_time():
    at = ict(2027, 2, 8, 17, 0)
    with pytest.raises(NotWorkingDay) as info:
        CAL.require_working_day(at)
    assert info.value.key == "calendar.not_working_holiday"
    assert info.value.params == {
        "day": "08/02/2027",
        "next_day": "11/02/2027",
        "holiday": "Mùng ba Tết Nguyên Đán",
    }
    assert CAL.require_working_day(at, move=True) == ict(2027, 2, 11, 17, 0)
    assert CAL.require_working_day(ict(2027, 2, 11, 9, 30)) == ict(2027, 2, 11, 9, 30)
