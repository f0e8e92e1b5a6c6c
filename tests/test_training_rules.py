"""Date rules, time rules and fire_times (alphazoo.training.rules), on real exchange calendars.

Expected trading days are facts of the NYSE calendar (New Year's Day, Good Friday, Martin
Luther King Day, Thanksgiving and its 13:00 early close), cross-checked where useful against
exchange_calendars' own session list, which the rules reach through a different path.
"""

from __future__ import annotations

import itertools
import subprocess
import sys
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from _child import HANG_TIMEOUT

from alphazoo.training.rules import (
    DateRule,
    DateRules,
    DayOfWeek,
    TimeRule,
    TimeRules,
    fire_times,
    resolve_market,
)

NY = ZoneInfo("America/New_York")
xcals = pytest.importorskip("exchange_calendars")


@pytest.fixture(scope="module")
def xnys():
    """exchange_calendars' own XNYS calendar, the oracle for the trading-day rules."""
    return xcals.get_calendar("XNYS", start="2012-01-01", end="2015-12-31")


def month_sessions(cal, year: int, month: int) -> list[date]:
    first = date(year, month, 1)
    last = (first.replace(day=28) + timedelta(days=4)).replace(day=1) - timedelta(days=1)
    return [ts.date() for ts in cal.sessions_in_range(first.isoformat(), last.isoformat())]


def all_fires(date_rule: DateRule, time_rule: TimeRule, after, until, tz=NY) -> list[datetime]:
    return list(fire_times(date_rule, time_rule, after, until, tz))


# -- the snippet ------------------------------------------------------------------------

def test_sunday_at_eight_fires_once_in_the_snippet_week():
    fires = all_fires(DateRules.every(DayOfWeek.SUNDAY), TimeRules.at(8, 0),
                      datetime(2013, 10, 7), datetime(2013, 10, 14))
    assert fires == [datetime(2013, 10, 13, 8, 0)]


# -- month rules --------------------------------------------------------------------------------

def test_month_start_with_market_skips_new_years_day():
    rule = DateRules.month_start(market="NYSE")
    days = list(rule.dates(date(2013, 1, 1), date(2014, 1, 31)))
    assert days[0] == date(2013, 1, 2)  # Jan 1 2013, a Tuesday, is a holiday
    assert days[-1] == date(2014, 1, 2)
    assert days[5] == date(2013, 6, 3)  # June 1-2 2013 is a weekend
    assert len(days) == 13
    assert rule.name == "month_start(NYSE)"


@pytest.mark.slow
@pytest.mark.parametrize("offset", [0, 1, 2, 10, 30])
def test_month_start_offsets_count_trading_days(xnys, offset):
    rule = DateRules.month_start(offset, market="NYSE")
    got = list(rule.dates(date(2013, 1, 1), date(2014, 12, 31)))
    expected = []
    for year, month in itertools.product((2013, 2014), range(1, 13)):
        sessions = month_sessions(xnys, year, month)
        expected.append(sessions[min(offset, len(sessions) - 1)])  # clamped to the month
    assert got == expected


@pytest.mark.parametrize("offset", [0, 1, 3, 30])
def test_month_end_offsets_count_trading_days_back(xnys, offset):
    got = list(DateRules.month_end(offset, "NYSE").dates(date(2013, 1, 1), date(2014, 12, 31)))
    expected = []
    for year, month in itertools.product((2013, 2014), range(1, 13)):
        sessions = month_sessions(xnys, year, month)
        expected.append(sessions[max(len(sessions) - 1 - offset, 0)])
    assert got == expected


def test_month_end_with_market_skips_good_friday():
    march = list(DateRules.month_end(market="NYSE").dates(date(2013, 3, 1), date(2013, 3, 31)))
    assert march == [date(2013, 3, 28)]  # Good Friday, March 29 2013
    one_back = DateRules.month_end(1, "NYSE").dates(date(2013, 3, 1), date(2013, 3, 31))
    assert list(one_back) == [date(2013, 3, 27)]


def test_month_rules_without_market_use_calendar_days_clamped_to_the_month():
    feb_to_apr = (date(2013, 2, 1), date(2013, 4, 30))
    assert list(DateRules.month_start().dates(*feb_to_apr)) == [
        date(2013, 2, 1), date(2013, 3, 1), date(2013, 4, 1)]
    assert list(DateRules.month_start(3).dates(*feb_to_apr)) == [
        date(2013, 2, 4), date(2013, 3, 4), date(2013, 4, 4)]
    assert list(DateRules.month_start(30).dates(*feb_to_apr)) == [
        date(2013, 2, 28), date(2013, 3, 31), date(2013, 4, 30)]
    assert list(DateRules.month_end().dates(*feb_to_apr)) == [
        date(2013, 2, 28), date(2013, 3, 31), date(2013, 4, 30)]
    assert list(DateRules.month_end(30).dates(*feb_to_apr)) == [
        date(2013, 2, 1), date(2013, 3, 1), date(2013, 4, 1)]


def test_a_period_rule_yields_a_day_only_inside_the_requested_range():
    # month_start(10) of March 2013 is March 11: outside a range that starts on March 12
    assert list(DateRules.month_start(10).dates(date(2013, 3, 12), date(2013, 4, 10))) == []
    assert list(DateRules.month_start(10).dates(date(2013, 3, 11), date(2013, 3, 11))) == [
        date(2013, 3, 11)]


# -- week rules ---------------------------------------------------------------------------------

def test_week_start_on_a_monday_holiday_moves_to_tuesday():
    jan_feb = (date(2014, 1, 13), date(2014, 2, 23))
    with_market = list(DateRules.week_start(market="NYSE").dates(*jan_feb))
    # Martin Luther King Day (Jan 20) and Presidents' Day (Feb 17) are NYSE holidays
    assert with_market == [date(2014, 1, 13), date(2014, 1, 21), date(2014, 1, 27),
                           date(2014, 2, 3), date(2014, 2, 10), date(2014, 2, 18)]
    calendar_days = list(DateRules.week_start().dates(*jan_feb))
    assert calendar_days == [date(2014, 1, 13) + timedelta(weeks=k) for k in range(6)]
    second_day = list(DateRules.week_start(1, "NYSE").dates(date(2014, 1, 20), date(2014, 1, 26)))
    assert second_day == [date(2014, 1, 22)]


def test_week_end_with_market_skips_good_friday_and_offsets_back():
    week = (date(2014, 4, 14), date(2014, 4, 20))
    assert list(DateRules.week_end(market="NYSE").dates(*week)) == [date(2014, 4, 17)]
    assert list(DateRules.week_end(2, "NYSE").dates(*week)) == [date(2014, 4, 15)]
    # beyond the week's trading days the rule stops at the first one (Monday)
    assert list(DateRules.week_end(4, "NYSE").dates(*week)) == [date(2014, 4, 14)]


def test_week_rules_without_market_follow_lean_calendar_days():
    week = (date(2013, 10, 5), date(2013, 10, 13))  # Saturday .. Sunday
    assert list(DateRules.week_start().dates(*week)) == [date(2013, 10, 7)]
    assert list(DateRules.week_start(6).dates(*week)) == [date(2013, 10, 6), date(2013, 10, 13)]
    assert list(DateRules.week_end().dates(*week)) == [date(2013, 10, 11)]
    # LEAN: week_end(6) is Friday minus six days, the Saturday before
    assert list(DateRules.week_end(6).dates(*week)) == [date(2013, 10, 5), date(2013, 10, 12)]


def test_week_offset_is_limited_to_the_markets_trading_week():
    with pytest.raises(ValueError, match="between 0 and 4"):
        DateRules.week_start(5, market="NYSE")
    DateRules.week_start(5)  # calendar weeks have seven days


# -- year rules ---------------------------------------------------------------------------------

def test_year_rules():
    span = (date(2012, 1, 1), date(2014, 12, 31))
    assert list(DateRules.year_start(market="NYSE").dates(*span)) == [
        date(2012, 1, 3), date(2013, 1, 2), date(2014, 1, 2)]  # Jan 2 2012 observed holiday
    assert list(DateRules.year_end(market="NYSE").dates(*span)) == [
        date(2012, 12, 31), date(2013, 12, 31), date(2014, 12, 31)]
    # 365 days after January 1st is December 31st in a leap year, clamped to it otherwise
    assert list(DateRules.year_start(365).dates(*span)) == [
        date(2012, 12, 31), date(2013, 12, 31), date(2014, 12, 31)]
    assert list(DateRules.year_start(59).dates(*span)) == [
        date(2012, 2, 29), date(2013, 3, 1), date(2014, 3, 1)]
    assert list(DateRules.year_end(365).dates(*span)) == [
        date(2012, 1, 1), date(2013, 1, 1), date(2014, 1, 1)]


@pytest.mark.slow
def test_market_calendar_grows_back_before_its_default_range():
    # exchange_calendars builds twenty years back by default; 1999 needs a wider calendar.
    days = list(DateRules.month_start(market="NYSE").dates(date(1999, 1, 1), date(1999, 2, 28)))
    assert days == [date(1999, 1, 4), date(1999, 2, 1)]  # Jan 1 1999 was a Friday holiday


def test_days_outside_a_bounded_calendar_raise_instead_of_guessing():
    bound_max = xcals.get_calendar("XBOM").bound_max()  # Bombay's holidays are listed, not ruled
    if bound_max is None:
        pytest.skip("this exchange_calendars version has no end bound for XBOM")
    after = bound_max.date() + timedelta(days=40)
    with pytest.raises(ValueError, match="XBOM calendar of exchange_calendars covers"):
        list(DateRules.month_start(market="BSE").dates(after, after + timedelta(days=60)))


# -- offsets out of range -------------------------------------------------------------------------

@pytest.mark.parametrize(("factory", "offset", "high"), [
    (DateRules.month_start, 31, 30), (DateRules.month_start, -1, 30),
    (DateRules.month_end, 31, 30), (DateRules.week_start, 7, 6), (DateRules.week_end, -1, 6),
    (DateRules.year_start, 366, 365), (DateRules.year_end, -3, 365),
])
def test_offsets_out_of_range_raise_with_leans_ranges(factory, offset, high):
    with pytest.raises(ValueError, match=f"offset must be between 0 and {high}"):
        factory(offset)
    factory(high)  # the bound itself is allowed


def test_offsets_must_be_ints():
    with pytest.raises(TypeError):
        DateRules.month_start(1.5)


# -- every, on, today, tomorrow -----------------------------------------------------------------

def test_every_several_days():
    rule = DateRules.every(DayOfWeek.FRIDAY, DayOfWeek.MONDAY, 0)
    days = list(rule.dates(date(2013, 10, 1), date(2013, 10, 16)))
    assert days == [date(2013, 10, 4), date(2013, 10, 7), date(2013, 10, 11), date(2013, 10, 14)]
    assert rule.name == "every(MONDAY, FRIDAY)"
    with pytest.raises(ValueError, match="day of the week"):
        DateRules.every(7)
    with pytest.raises(ValueError, match="at least one"):
        DateRules.every()


def test_every_day_with_and_without_market():
    span = (date(2013, 11, 25), date(2013, 12, 1))
    assert len(list(DateRules.every_day().dates(*span))) == 7
    assert list(DateRules.every_day("NYSE").dates(*span)) == [
        date(2013, 11, 25), date(2013, 11, 26), date(2013, 11, 27), date(2013, 11, 29)]


def test_on_filters_sorts_and_deduplicates():
    rule = DateRules.on(date(2013, 10, 9), datetime(2013, 10, 8, 15), "2013-10-09",
                        date(2014, 1, 1))
    assert list(rule.dates(date(2013, 10, 1), date(2013, 12, 31))) == [
        date(2013, 10, 8), date(2013, 10, 9)]
    assert list(rule.dates(date(2013, 10, 9), date(2014, 1, 1))) == [
        date(2013, 10, 9), date(2014, 1, 1)]


def test_today_and_tomorrow_are_fixed_when_bound():
    with pytest.raises(RuntimeError, match="bind"):
        list(DateRules.today().dates(date(2013, 1, 1), date(2013, 12, 31)))
    registered = datetime(2013, 10, 7, 15, 30)
    today, tomorrow = DateRules.today().bind(registered), DateRules.tomorrow().bind(registered)
    span = (date(2013, 10, 1), date(2013, 10, 31))
    assert list(today.dates(*span)) == [date(2013, 10, 7)]
    assert list(tomorrow.dates(*span)) == [date(2013, 10, 8)]
    # binding again later does not move an already bound rule
    assert list(today.bind(datetime(2013, 10, 20)).dates(*span)) == [date(2013, 10, 7)]
    fires = all_fires(today, TimeRules.at(16, 0), registered, datetime(2013, 10, 31))
    assert fires == [datetime(2013, 10, 7, 16, 0)]


def test_rules_that_need_no_binding_bind_to_themselves():
    rule, at = DateRules.every_day(), TimeRules.at(9, 0)
    assert rule.bind(datetime(2013, 1, 1)) is rule
    assert at.bind(datetime(2013, 1, 1)) is at


# -- time rules ---------------------------------------------------------------------------------

def test_midnight_noon_and_now():
    day = date(2013, 10, 7)
    assert TimeRules.midnight.times(day, NY) == [datetime(2013, 10, 7, 0, 0)]
    assert TimeRules.noon.times(day, NY) == [datetime(2013, 10, 7, 12, 0)]
    with pytest.raises(RuntimeError, match="bind"):
        TimeRules.now.times(day, NY)
    bound = TimeRules.now.bind(datetime(2013, 10, 7, 9, 45, 30))
    assert bound.times(date(2013, 10, 8), NY) == [datetime(2013, 10, 8, 9, 45, 30)]


def test_at_validates_the_time_of_day():
    assert TimeRules.at(23, 59, 59).times(date(2013, 1, 1), NY) == [
        datetime(2013, 1, 1, 23, 59, 59)]
    for bad in [(24, 0), (8, 60), (8, 0, 60), (-1, 0)]:
        with pytest.raises(ValueError):
            TimeRules.at(*bad)


def test_every_fires_from_midnight_through_the_day():
    day = date(2013, 10, 7)

    def clock_times(interval):
        return [t.time() for t in TimeRules.every(interval).times(day, NY)]

    assert clock_times(timedelta(hours=6)) == [time(0), time(6), time(12), time(18)]
    assert clock_times(timedelta(hours=7)) == [time(0), time(7), time(14), time(21)]
    assert clock_times(timedelta(hours=23)) == [time(0), time(23)]
    half_hours = clock_times(timedelta(minutes=30))
    assert len(half_hours) == 48 and half_hours[-1] == time(23, 30)  # 24:00 is tomorrow's
    assert clock_times(timedelta(days=1)) == [time(0)]
    assert clock_times(timedelta(hours=25)) == [time(0)]
    for bad in [timedelta(0), timedelta(minutes=-5), timedelta(milliseconds=10)]:
        with pytest.raises(ValueError):
            TimeRules.every(bad)


def test_every_over_consecutive_days_fires_each_interval_once():
    fires = all_fires(DateRules.every_day(), TimeRules.every(timedelta(hours=8)),
                      datetime(2013, 10, 7), datetime(2013, 10, 9))
    assert fires == [datetime(2013, 10, 7, 8), datetime(2013, 10, 7, 16), datetime(2013, 10, 8),
                     datetime(2013, 10, 8, 8), datetime(2013, 10, 8, 16), datetime(2013, 10, 9)]


def test_at_in_utc_shown_in_new_york_across_the_fall_dst_change():
    fires = all_fires(DateRules.every_day(), TimeRules.at(12, 0, tz="UTC"),
                      datetime(2013, 11, 1), datetime(2013, 11, 4, 23))
    # New York leaves daylight time (UTC-4) for standard time (UTC-5) on Nov 3 2013
    assert fires == [datetime(2013, 11, 1, 8), datetime(2013, 11, 2, 8),
                     datetime(2013, 11, 3, 7), datetime(2013, 11, 4, 7)]


def test_at_in_utc_can_land_on_the_previous_new_york_day():
    # Sunday 02:00 UTC is Saturday 22:00 in New York (EDT): LEAN reads the day in the rule's zone
    fires = all_fires(DateRules.every(DayOfWeek.SUNDAY), TimeRules.at(2, 0, tz="UTC"),
                      datetime(2013, 10, 7), datetime(2013, 10, 21))
    assert fires == [datetime(2013, 10, 12, 22), datetime(2013, 10, 19, 22)]


def test_before_market_close_honours_the_thanksgiving_early_close():
    fires = all_fires(DateRules.every_day(), TimeRules.before_market_close("NYSE", 10),
                      datetime(2013, 11, 25), datetime(2013, 12, 3))
    assert fires == [datetime(2013, 11, 25, 15, 50), datetime(2013, 11, 26, 15, 50),
                     datetime(2013, 11, 27, 15, 50),
                     # Thanksgiving (Nov 28) closed; the day after closes at 13:00
                     datetime(2013, 11, 29, 12, 50),
                     datetime(2013, 12, 2, 15, 50)]


def test_after_market_open_on_trading_days_only():
    rule = TimeRules.after_market_open("NYSE", 30)
    assert rule.times(date(2013, 12, 24), NY) == [datetime(2013, 12, 24, 10, 0)]
    assert rule.times(date(2013, 12, 25), NY) == []  # Christmas
    assert rule.times(date(2013, 12, 28), NY) == []  # Saturday
    assert TimeRules.before_market_close("NYSE").times(date(2013, 12, 24), NY) == [
        datetime(2013, 12, 24, 13, 0)]  # Christmas Eve early close


def test_market_hours_in_another_zone_follow_both_dst_calendars():
    london = ZoneInfo("Europe/London")
    rule = TimeRules.after_market_open("NYSE")
    # US clocks moved on Mar 9 2014, UK clocks on Mar 30: for three weeks the gap is 4 hours
    assert rule.times(date(2014, 3, 7), london) == [datetime(2014, 3, 7, 14, 30)]
    assert rule.times(date(2014, 3, 10), london) == [datetime(2014, 3, 10, 13, 30)]
    assert rule.times(date(2014, 3, 31), london) == [datetime(2014, 3, 31, 14, 30)]


@pytest.mark.slow
def test_a_tokyo_session_opens_the_evening_before_in_new_york():
    fires = all_fires(DateRules.every_day("XTKS"), TimeRules.after_market_open("XTKS"),
                      datetime(2013, 11, 1), datetime(2013, 11, 6))
    # 09:00 JST: 19:00 EST the day before; Nov 4 2013 was a Japanese holiday
    assert fires == [datetime(2013, 11, 4, 19), datetime(2013, 11, 5, 19)]


# -- markets ------------------------------------------------------------------------------------

def test_market_names():
    assert resolve_market("NYSE") == "XNYS"
    assert resolve_market("nyse") == "XNYS"
    assert resolve_market("XLON") == "XLON"
    assert resolve_market("LSE") == "XLON"
    with pytest.raises(ValueError, match="unknown market 'MOON'.*NYSE"):
        resolve_market("MOON")
    with pytest.raises(ValueError, match="unknown market"):
        DateRules.month_start(market="MOON")
    with pytest.raises(ValueError, match="unknown market"):
        TimeRules.after_market_open("MOON")


# -- fire_times ---------------------------------------------------------------------------------

@pytest.mark.parametrize(("date_rule", "time_rule"), [
    (DateRules.every_day(), TimeRules.every(timedelta(hours=5))),
    (DateRules.every(DayOfWeek.MONDAY, DayOfWeek.THURSDAY), TimeRules.at(9, 15)),
    (DateRules.week_start(market="NYSE"), TimeRules.before_market_close("NYSE", 10)),
    (DateRules.every_day(), TimeRules.at(3, 0, tz="Asia/Tokyo")),
])
def test_consecutive_windows_fire_every_event_exactly_once(date_rule, time_rule):
    start, end = datetime(2013, 10, 1), datetime(2014, 1, 15)
    whole = all_fires(date_rule, time_rule, start, end)
    assert whole == sorted(set(whole)) and whole
    # cut the range at fire times themselves and at odd moments between them
    cuts = sorted({start, end, *whole[::7], *(start + timedelta(hours=37 * k) for k in range(70))})
    cuts = [c for c in cuts if start <= c <= end]
    pieces = [t for a, b in itertools.pairwise(cuts) for t in all_fires(date_rule, time_rule, a, b)]
    assert pieces == whole


def test_window_is_open_at_after_and_closed_at_until():
    rule, at = DateRules.every_day(), TimeRules.at(8, 0)
    fire = datetime(2013, 10, 8, 8, 0)
    assert all_fires(rule, at, fire, fire + timedelta(hours=1)) == []
    assert all_fires(rule, at, fire - timedelta(hours=1), fire) == [fire]
    assert all_fires(rule, at, fire, fire) == []
    assert all_fires(rule, at, fire, fire - timedelta(days=3)) == []


def test_fire_times_accepts_aware_bounds_and_a_zone_name():
    after = datetime(2013, 10, 7, 12, tzinfo=ZoneInfo("UTC"))  # 08:00 in New York
    until = datetime(2013, 10, 8, 12, tzinfo=ZoneInfo("UTC"))
    assert all_fires(DateRules.every_day(), TimeRules.at(8, 0), after, until,
                     "America/New_York") == [datetime(2013, 10, 8, 8, 0)]


def test_fire_times_is_lazy_for_far_ends():
    far = datetime(9999, 12, 30)
    lazy = fire_times(DateRules.every_day(), TimeRules.midnight, datetime(2013, 10, 7, 1), far)
    assert list(itertools.islice(lazy, 3)) == [
        datetime(2013, 10, 8), datetime(2013, 10, 9), datetime(2013, 10, 10)]
    market = fire_times(DateRules.every_day("NYSE"), TimeRules.after_market_open("NYSE"),
                        datetime(2013, 12, 24, 12), datetime(2199, 1, 1))
    assert list(itertools.islice(market, 2)) == [
        datetime(2013, 12, 26, 9, 30), datetime(2013, 12, 27, 9, 30)]


def test_fire_times_rejects_things_that_are_not_rules():
    with pytest.raises(TypeError, match="DateRule"):
        fire_times("every day", TimeRules.noon, datetime(2013, 1, 1), datetime(2013, 2, 1))
    with pytest.raises(TypeError, match="TimeRule"):
        fire_times(DateRules.every_day(), 8, datetime(2013, 1, 1), datetime(2013, 2, 1))


# -- lazy imports -------------------------------------------------------------------------------

def run_python(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=HANG_TIMEOUT, check=False)


@pytest.mark.slow
def test_calendar_free_rules_do_not_import_pandas_or_exchange_calendars():
    done = run_python(
        "import sys\n"
        "from datetime import datetime\n"
        "from alphazoo.training.rules import DateRules, TimeRules, fire_times\n"
        "list(fire_times(DateRules.month_end(2), TimeRules.at(8, 0, tz='UTC'),"
        " datetime(2013, 1, 1), datetime(2013, 6, 1)))\n"
        "heavy = sorted({'pandas', 'exchange_calendars'} & set(sys.modules))\n"
        "assert not heavy, heavy\n"
    )
    assert done.returncode == 0, done.stderr


@pytest.mark.slow
def test_a_market_rule_without_exchange_calendars_names_the_extra():
    done = run_python(
        "import sys\n"
        "sys.modules['exchange_calendars'] = None  # as if it were not installed\n"
        "from alphazoo.errors import MissingDependencyError\n"
        "from alphazoo.training.rules import DateRules\n"
        "try:\n"
        "    DateRules.month_start(market='NYSE')\n"
        "except MissingDependencyError as exc:\n"
        "    print(exc)\n"
    )
    assert done.returncode == 0, done.stderr
    assert "alphazoo[calendars]" in done.stdout
