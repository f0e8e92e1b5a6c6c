"""When scheduled trainings fire: LEAN's date rules and time rules, in Python.

A schedule is a :class:`DateRule` (which days) and a :class:`TimeRule` (when on those days)::

    from alphazoo.training import DateRules, TimeRules, DayOfWeek

    DateRules.every(DayOfWeek.SUNDAY), TimeRules.at(8, 0)          # Sundays 08:00
    DateRules.month_start(market="NYSE"), TimeRules.after_market_open("NYSE", 30)
    DateRules.week_end(1), TimeRules.every(timedelta(hours=6))

:func:`fire_times` turns a pair into the datetimes it fires at in a half-open window.

Time zones. Fire times are naive datetimes in one zone, the caller's (the Trainer's, by default
``America/New_York`` as in LEAN). A date rule yields dates; a time rule turns a date into times.
A time rule with its own zone, ``TimeRules.at(8, 0, tz="UTC")``, reads the date in that zone
(LEAN's ``At(..., timeZone)``): Sunday 08:00 UTC, shown in New York as Sunday 04:00 (or 03:00
in winter). Market rules read the date as the exchange's session date: a Tokyo session's open
on Monday is Sunday evening in New York.

Markets. ``*_start`` / ``*_end`` / ``every_day`` accept ``market=`` to count trading days of
that exchange instead of calendar days (LEAN's rules with a symbol): ``month_start(2, "NYSE")``
is the third trading day of each month. Trading days and session hours come from
:mod:`alphazoo.training.calendars` (the maintained ``exchange_calendars`` package).
"""

from __future__ import annotations

import bisect
import calendar
import enum
import heapq
import math
from collections.abc import Callable, Iterable, Iterator
from datetime import date, datetime, time, timedelta, tzinfo
from zoneinfo import ZoneInfo

from .calendars import MARKETS, MarketCalendar, market_calendar, resolve_market

__all__ = [
    "MARKETS",
    "DateRule",
    "DateRules",
    "DayOfWeek",
    "TimeRule",
    "TimeRules",
    "fire_times",
    "resolve_market",
]

_ONE_DAY = timedelta(days=1)


class DayOfWeek(enum.IntEnum):
    """Days of the week, numbered as :meth:`datetime.date.weekday` (Monday is 0)."""

    MONDAY = 0
    TUESDAY = 1
    WEDNESDAY = 2
    THURSDAY = 3
    FRIDAY = 4
    SATURDAY = 5
    SUNDAY = 6


# ------------------------------------------------------------------------------------------
# Date rules
# ------------------------------------------------------------------------------------------


class DateRule:
    """Which days a schedule fires on; built by :class:`DateRules`, not directly.

    ``dates(start, end)`` yields the rule's days in ``[start, end]``, ascending, each once.
    ``bind(now)`` fixes the days of rules relative to "now" (``today()``, ``tomorrow()``) and
    returns every other rule unchanged.
    """

    def __init__(self, name: str, generate: Callable[[date, date], Iterable[date]]) -> None:
        self.name = name
        self._generate = generate

    def bind(self, now: datetime) -> DateRule:
        """This rule with its relative days fixed at ``now``; most rules return themselves."""
        return self

    def dates(self, start: date, end: date) -> Iterator[date]:
        """The rule's days from ``start`` to ``end`` inclusive, ascending."""
        start, end = _as_date(start, "start"), _as_date(end, "end")
        if end < start:
            return iter(())
        return iter(self._generate(start, end))

    def __repr__(self) -> str:
        return f"DateRule({self.name})"


class _RelativeDateRule(DateRule):
    """``today()`` / ``tomorrow()``: a day that is only known once bound to a time."""

    def __init__(self, name: str, days_ahead: int) -> None:
        super().__init__(name, self._unbound)
        self._days_ahead = days_ahead

    def _unbound(self, start: date, end: date) -> Iterable[date]:
        raise RuntimeError(
            f"DateRules.{self.name}() is relative to the current time: call .bind(now) first "
            "(the Trainer does this when the schedule is registered)"
        )

    def bind(self, now: datetime) -> DateRule:
        day = _as_date(now, "now") + timedelta(days=self._days_ahead)
        bound = DateRules.on(day)
        bound.name = f"{self.name}({day.isoformat()})"
        return bound


def _as_date(value: date | datetime, what: str) -> date:
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    raise TypeError(f"{what} must be a date or datetime, got {type(value).__name__}")


def _each_day(start: date, end: date) -> Iterator[date]:
    day = start
    while day <= end:
        yield day
        if day == date.max:
            return
        day += _ONE_DAY


def _check_offset(rule: str, offset: int, high: int) -> int:
    if isinstance(offset, bool) or not isinstance(offset, int):
        raise TypeError(f"DateRules.{rule}(): offset must be an int, got {offset!r}")
    if not 0 <= offset <= high:
        raise ValueError(f"DateRules.{rule}(): offset must be between 0 and {high}, got {offset}")
    return offset


def _rule_name(rule: str, offset: int, market: str | None) -> str:
    args = [str(offset)] if offset else []
    if market is not None:
        args.append(market.upper())
    return f"{rule}({', '.join(args)})"


# A period is a run of consecutive days (a month, a week, a year); each period yields one day.
_Period = tuple[date, date]


def _months(start: date, end: date) -> Iterator[_Period]:
    year, month = start.year, start.month
    while (year, month) <= (end.year, end.month):
        last = calendar.monthrange(year, month)[1]
        yield date(year, month, 1), date(year, month, last)
        year, month = (year + 1, 1) if month == 12 else (year, month + 1)


def _years(start: date, end: date) -> Iterator[_Period]:
    for year in range(start.year, end.year + 1):
        yield date(year, 1, 1), date(year, 12, 31)


def _weeks(first_weekday: int) -> Callable[[date, date], Iterator[_Period]]:
    def weeks(start: date, end: date) -> Iterator[_Period]:
        begin = start - timedelta(days=(start.weekday() - first_weekday) % 7)
        while begin <= end:
            yield begin, begin + timedelta(days=6)
            begin += timedelta(days=7)

    return weeks


def _period_rule(
    name: str,
    periods: Callable[[date, date], Iterator[_Period]],
    offset: int,
    forward: bool,
    market: MarketCalendar | None,
) -> DateRule:
    """One day per period: the first (``forward``) or last day, moved ``offset`` days inward.

    Days are calendar days, or the market's trading days when a market is given; an offset
    that would leave the period stops at its last (or first) eligible day, as in LEAN.
    """

    def generate(start: date, end: date) -> Iterator[date]:
        for first, last in periods(start, end):
            if market is None:
                day = (min(first + timedelta(days=offset), last) if forward
                       else max(last - timedelta(days=offset), first))
            else:
                days = market.sessions(first, last)
                if not days:  # a period without a session (never for real exchanges' months)
                    continue
                index = offset if forward else len(days) - 1 - offset
                day = days[min(max(index, 0), len(days) - 1)]
            if start <= day <= end:
                yield day

    return DateRule(name, generate)


def _calendar_period_rule(
    rule: str, periods: Callable[[date, date], Iterator[_Period]], high: int, forward: bool,
    offset: int, market: str | None,
) -> DateRule:
    """A month or year rule: the offset checked against LEAN's range, the market resolved."""
    _check_offset(rule, offset, high)
    cal = None if market is None else market_calendar(market)
    return _period_rule(_rule_name(rule, offset, market), periods, offset, forward, cal)


class DateRules:
    """Factories of :class:`DateRule`, used as LEAN's ``self.date_rules`` (no instance needed).

    Offsets are counted in calendar days, or in trading days when ``market`` is given; out of
    range offsets raise :class:`ValueError` with LEAN's ranges (month 0-30, week 0-6,
    year 0-365; a market week allows as many as the exchange has trading weekdays, minus one).
    """

    def __init__(self) -> None:  # pragma: no cover - a namespace
        raise TypeError("DateRules is used without instances: DateRules.every_day()")

    @staticmethod
    def every_day(market: str | None = None) -> DateRule:
        """Every calendar day, or every trading day of ``market``."""
        if market is None:
            return DateRule("every_day()", _each_day)
        cal = market_calendar(market)

        def generate(start: date, end: date) -> Iterator[date]:
            # A year at a time, so that a far `end` only grows the calendar as it is reached.
            for first, last in _years(start, end):
                yield from cal.sessions(max(first, start), min(last, end))

        return DateRule(f"every_day({market.upper()})", generate)

    @staticmethod
    def every(*days: DayOfWeek | int) -> DateRule:
        """Each of the given days of the week: ``DateRules.every(DayOfWeek.MONDAY, 4)``."""
        if len(days) == 1 and isinstance(days[0], (list, tuple, set, frozenset)):
            days = tuple(days[0])
        if not days:
            raise ValueError("DateRules.every() needs at least one day of the week")
        chosen: set[DayOfWeek] = set()
        for day in days:
            if isinstance(day, bool) or not isinstance(day, int) or not 0 <= day <= 6:
                raise ValueError(
                    f"DateRules.every(): {day!r} is not a day of the week; use DayOfWeek.MONDAY"
                    " ... DayOfWeek.SUNDAY (or 0-6, Monday is 0)"
                )
            chosen.add(DayOfWeek(day))
        ordered = sorted(chosen)

        def generate(start: date, end: date) -> Iterator[date]:
            return (d for d in _each_day(start, end) if d.weekday() in chosen)

        return DateRule(f"every({', '.join(d.name for d in ordered)})", generate)

    @staticmethod
    def on(*dates: date | datetime | str) -> DateRule:
        """Only the given dates (dates, datetimes or ISO ``"YYYY-MM-DD"`` strings)."""
        if len(dates) == 1 and isinstance(dates[0], (list, tuple, set, frozenset)):
            dates = tuple(dates[0])
        if not dates:
            raise ValueError("DateRules.on() needs at least one date")
        chosen = sorted({date.fromisoformat(d) if isinstance(d, str) else _as_date(d, "date")
                         for d in dates})

        def generate(start: date, end: date) -> Iterator[date]:
            lo = bisect.bisect_left(chosen, start)
            return iter(chosen[lo : bisect.bisect_right(chosen, end)])

        return DateRule(f"on({', '.join(d.isoformat() for d in chosen)})", generate)

    @staticmethod
    def today() -> DateRule:
        """The day the schedule is registered (resolved by :meth:`DateRule.bind`)."""
        return _RelativeDateRule("today", 0)

    @staticmethod
    def tomorrow() -> DateRule:
        """The day after the schedule is registered (resolved by :meth:`DateRule.bind`)."""
        return _RelativeDateRule("tomorrow", 1)

    @staticmethod
    def month_start(offset: int = 0, market: str | None = None) -> DateRule:
        """The first day of each month plus ``offset`` days (0-30); with ``market``, the
        first trading day plus ``offset`` trading days, never past the month's last one."""
        return _calendar_period_rule("month_start", _months, 30, True, offset, market)

    @staticmethod
    def month_end(offset: int = 0, market: str | None = None) -> DateRule:
        """The last day of each month minus ``offset`` days (0-30); with ``market``, the
        last trading day minus ``offset`` trading days, never before the month's first one."""
        return _calendar_period_rule("month_end", _months, 30, False, offset, market)

    @staticmethod
    def year_start(offset: int = 0, market: str | None = None) -> DateRule:
        """January 1st plus ``offset`` days (0-365); with ``market``, the year's first trading
        day plus ``offset`` trading days."""
        return _calendar_period_rule("year_start", _years, 365, True, offset, market)

    @staticmethod
    def year_end(offset: int = 0, market: str | None = None) -> DateRule:
        """December 31st minus ``offset`` days (0-365); with ``market``, the year's last
        trading day minus ``offset`` trading days."""
        return _calendar_period_rule("year_end", _years, 365, False, offset, market)

    @staticmethod
    def week_start(offset: int = 0, market: str | None = None) -> DateRule:
        """Monday plus ``offset`` days (0-6); with ``market``, the week's first trading day
        plus ``offset`` trading days (a Monday holiday moves it to Tuesday)."""
        return DateRules._week("week_start", offset, market, forward=True)

    @staticmethod
    def week_end(offset: int = 0, market: str | None = None) -> DateRule:
        """Friday minus ``offset`` days (0-6, LEAN: 6 is the Saturday before); with
        ``market``, the week's last trading day minus ``offset`` trading days."""
        return DateRules._week("week_end", offset, market, forward=False)

    @staticmethod
    def _week(rule: str, offset: int, market: str | None, forward: bool) -> DateRule:
        _check_offset(rule, offset, 6)
        name = _rule_name(rule, offset, market)
        if market is None:
            # LEAN: week_start counts from Monday through Sunday, week_end back from Friday
            # through the Saturday before, so the period of week_end runs Saturday-Friday.
            first = DayOfWeek.MONDAY if forward else DayOfWeek.SATURDAY
            return _period_rule(name, _weeks(first), offset, forward, None)
        cal = market_calendar(market)
        # The week begins on the exchange's first trading weekday counted from Sunday, as
        # LEAN orders days (Sunday-Thursday for Tel Aviv, Monday-Friday for New York).
        open_days = sorted(cal.weekdays, key=lambda wd: (wd + 1) % 7)
        if offset > len(open_days) - 1:
            raise ValueError(
                f"DateRules.{rule}(): offset {offset} is out of range for {market}'s "
                f"{len(open_days)}-day trading week; use an offset between 0 and "
                f"{len(open_days) - 1}"
            )
        return _period_rule(name, _weeks(open_days[0]), offset, forward, cal)


# ------------------------------------------------------------------------------------------
# Time rules
# ------------------------------------------------------------------------------------------


def _zone(tz: str | tzinfo) -> tzinfo:
    if isinstance(tz, str):
        return ZoneInfo(tz)
    if isinstance(tz, tzinfo):
        return tz
    raise TypeError(f"tz must be a zone name such as 'UTC' or a tzinfo, got {tz!r}")


def _same_zone(a: tzinfo, b: tzinfo) -> bool:
    return a is b or (getattr(a, "key", None) is not None and
                      getattr(a, "key", None) == getattr(b, "key", None))


def _to_naive(moment: datetime, tz: tzinfo) -> datetime:
    return moment.astimezone(tz).replace(tzinfo=None)


class TimeRule:
    """When on a day a schedule fires; built by :class:`TimeRules`, not directly.

    ``times(day, tz)`` gives the fire times for ``day`` as naive datetimes in ``tz``,
    ascending. A rule with its own zone or a market reads ``day`` in that zone, so its times
    can fall on the neighbouring date in ``tz``. A market rule returns ``[]`` on a day the
    market is closed. ``bind(now)`` fixes ``TimeRules.now``; other rules return themselves.
    """

    #: how many days before or after ``day`` the rule's times can fall once converted
    reach_days: int = 2

    def __init__(self, name: str, times: Callable[[date, tzinfo], list[datetime]],
                 reach_days: int = 2) -> None:
        self.name = name
        self._times = times
        self.reach_days = reach_days

    def bind(self, now: datetime) -> TimeRule:
        """This rule with ``TimeRules.now`` fixed at ``now``; other rules return themselves."""
        return self

    def times(self, day: date, tz: str | tzinfo) -> list[datetime]:
        """The fire times on ``day`` as naive datetimes in ``tz``, ascending."""
        return self._times(_as_date(day, "day"), _zone(tz))

    def __repr__(self) -> str:
        return f"TimeRule({self.name})"


class _NowTimeRule(TimeRule):
    def __init__(self) -> None:
        super().__init__("now", self._unbound)

    def _unbound(self, day: date, tz: tzinfo) -> list[datetime]:
        raise RuntimeError(
            "TimeRules.now is the time the schedule is registered: call .bind(now) first "
            "(the Trainer does this when the schedule is registered)"
        )

    def bind(self, now: datetime) -> TimeRule:
        if not isinstance(now, datetime):
            raise TypeError(f"now must be a datetime, got {type(now).__name__}")
        when = now.time()
        return _at(when, now.tzinfo, f"now({when.isoformat()})")


def _at(when: time, zone: tzinfo | None, name: str) -> TimeRule:
    def times(day: date, tz: tzinfo) -> list[datetime]:
        local = datetime.combine(day, when)
        if zone is None or _same_zone(zone, tz):
            return [local]
        return [_to_naive(local.replace(tzinfo=zone), tz)]

    return TimeRule(name, times, reach_days=0 if zone is None else 2)


def _market_time_rule(market: str, minutes: float, at_open: bool) -> TimeRule:
    if isinstance(minutes, bool) or not isinstance(minutes, (int, float)) or not math.isfinite(
        minutes
    ):
        raise ValueError(f"minutes must be a finite number, got {minutes!r}")
    cal = market_calendar(market)
    shift = timedelta(minutes=minutes)

    def times(day: date, tz: tzinfo) -> list[datetime]:
        hours = cal.hours(day)
        if hours is None:
            return []
        moment = hours[0] + shift if at_open else hours[1] - shift
        return [_to_naive(moment, tz)]

    kind = "after_market_open" if at_open else "before_market_close"
    return TimeRule(f"{kind}({market.upper()}, {minutes:g})", times,
                    reach_days=2 + math.ceil(abs(minutes) / 1440))


class TimeRules:
    """Factories of :class:`TimeRule`, used as LEAN's ``self.time_rules`` (no instance needed).

    ``TimeRules.midnight``, ``TimeRules.noon`` and ``TimeRules.now`` are attributes, like
    LEAN's properties; ``now`` is fixed when the schedule is registered.
    """

    midnight: TimeRule
    noon: TimeRule
    now: TimeRule

    def __init__(self) -> None:  # pragma: no cover - a namespace
        raise TypeError("TimeRules is used without instances: TimeRules.at(8, 0)")

    @staticmethod
    def at(hour: int, minute: int = 0, second: int = 0, tz: str | tzinfo | None = None
           ) -> TimeRule:
        """At ``hour:minute:second`` in the schedule's zone, or in ``tz`` when given
        (``tz="UTC"``: the day's 08:00 UTC, converted to the schedule's zone)."""
        for label, value in (("hour", hour), ("minute", minute), ("second", second)):
            if isinstance(value, bool) or not isinstance(value, int):
                raise TypeError(f"TimeRules.at(): {label} must be an int, got {value!r}")
        try:
            when = time(hour, minute, second)
        except ValueError as exc:
            raise ValueError(f"TimeRules.at({hour}, {minute}, {second}): {exc}") from exc
        zone = None if tz is None else _zone(tz)
        label = when.isoformat("seconds" if second else "minutes")
        suffix = "" if zone is None else f" {getattr(zone, 'key', None) or zone}"
        return _at(when, zone, f"at({label}{suffix})")

    @staticmethod
    def every(interval: timedelta) -> TimeRule:
        """At midnight and every ``interval`` after it through the day (LEAN's
        ``TimeRules.Every``): ``every(timedelta(hours=6))`` fires at 00:00, 06:00, 12:00 and
        18:00. The interval must be positive (ValueError otherwise); one of a day or more fires
        at midnight only. Intervals under a second are refused: they would list more than
        86,400 times a day, finer than any training schedule needs."""
        if not isinstance(interval, timedelta):
            raise TypeError(f"TimeRules.every() takes a timedelta, got {interval!r}")
        if interval <= timedelta(0):
            raise ValueError(f"TimeRules.every(): the interval must be positive, got {interval}")
        if interval < timedelta(seconds=1):
            raise ValueError(f"TimeRules.every(): the interval must be at least one second, "
                             f"got {interval}")
        count = -(-_ONE_DAY // interval)  # ceil: offsets k * interval < one day
        last_day: list[tuple[date, list[datetime]]] = []  # the latest day asked for, reused

        def times(day: date, tz: tzinfo) -> list[datetime]:
            cached = last_day[0] if last_day else None
            if cached is not None and cached[0] == day:
                return cached[1]
            midnight = datetime.combine(day, time())
            moments = [midnight + k * interval for k in range(count)]
            last_day[:] = [(day, moments)]
            return moments

        return TimeRule(f"every({interval})", times, reach_days=0)

    @staticmethod
    def after_market_open(market: str = "NYSE", minutes: float = 0) -> TimeRule:
        """``minutes`` after the session opens, on the market's trading days only."""
        return _market_time_rule(market, minutes, at_open=True)

    @staticmethod
    def before_market_close(market: str = "NYSE", minutes: float = 0) -> TimeRule:
        """``minutes`` before the session closes (early closes included), on the market's
        trading days only: 12:50 on the day after Thanksgiving for ``minutes=10`` at NYSE."""
        return _market_time_rule(market, minutes, at_open=False)


TimeRules.midnight = _at(time(0, 0), None, "midnight")
TimeRules.noon = _at(time(12, 0), None, "noon")
TimeRules.now = _NowTimeRule()


# ------------------------------------------------------------------------------------------
# Fire times
# ------------------------------------------------------------------------------------------


def _naive_in(moment: datetime, tz: tzinfo, what: str) -> datetime:
    if not isinstance(moment, datetime):
        raise TypeError(f"{what} must be a datetime, got {type(moment).__name__}")
    return moment if moment.tzinfo is None else _to_naive(moment, tz)


def _shift(day: date, days: int) -> date:
    try:
        return day + timedelta(days=days)
    except OverflowError:
        return date.min if days < 0 else date.max


def fire_times(
    date_rule: DateRule,
    time_rule: TimeRule,
    after: datetime,
    until: datetime,
    tz: str | tzinfo = "America/New_York",
) -> Iterator[datetime]:
    """The times ``t`` with ``after < t <= until`` at which the schedule fires, ascending.

    Datetimes are naive in ``tz`` (aware ``after``/``until`` are converted to it). The window
    is half-open so that consecutive windows ``(a, b]``, ``(b, c]`` fire every event exactly
    once. Lazy: days are generated as they are consumed, so a far ``until`` costs nothing
    until iterated. Bind relative rules (``today()``, ``TimeRules.now``) before calling.
    """
    if not isinstance(date_rule, DateRule):
        raise TypeError(f"date_rule must be a DateRule (DateRules.*), got {date_rule!r}")
    if not isinstance(time_rule, TimeRule):
        raise TypeError(f"time_rule must be a TimeRule (TimeRules.*), got {time_rule!r}")
    zone = _zone(tz)
    lo, hi = _naive_in(after, zone, "after"), _naive_in(until, zone, "until")
    return _fire_times(date_rule, time_rule, lo, hi, zone)


def _fire_times(date_rule: DateRule, time_rule: TimeRule, after: datetime, until: datetime,
                tz: tzinfo) -> Iterator[datetime]:
    if until <= after:
        return
    reach = max(time_rule.reach_days, 0)
    first, last = _shift(after.date(), -reach), _shift(until.date(), reach)
    if reach == 0:
        # Times stay on their own day, so days in order give times in order: yield straight
        # from each day's sorted list, from the first time past `after`, with no heap. A live
        # trainer asks only for the next fire time; every(1 s) lists 86,400 a day.
        for day in date_rule.dates(first, last):
            moments = time_rule.times(day, tz)
            for index in range(bisect.bisect_right(moments, after), len(moments)):
                if moments[index] > until:
                    return
                yield moments[index]
        return
    # Times of a day can land up to `reach` days away from it once converted between zones,
    # so a heap holds them until no later day can produce anything earlier.
    pending: list[datetime] = []
    previous: datetime | None = None
    for day in date_rule.dates(first, last):
        horizon = datetime.combine(_shift(day, -reach), time())
        while pending and pending[0] < horizon:
            moment = heapq.heappop(pending)
            if moment != previous:
                previous = moment
                yield moment
        for moment in time_rule.times(day, tz):
            if after < moment <= until:
                heapq.heappush(pending, moment)
    while pending:
        moment = heapq.heappop(pending)
        if moment != previous:
            previous = moment
            yield moment
