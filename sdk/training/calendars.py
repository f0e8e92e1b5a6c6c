"""Exchange calendars for market-aware schedules: trading days and session hours.

Trading days, holidays and session hours (early closes included) come from the maintained
``exchange_calendars`` package (``pip install 'alphazoo[calendars]'``), imported only when a
market rule is created. A market is an ISO MIC (``"XNYS"``, ``"XLON"``), one of
exchange_calendars' names, or a friendly name such as ``"NYSE"``, ``"NASDAQ"``, ``"LSE"``;
calendars are built once per process and grown on demand.
"""

from __future__ import annotations

import bisect
import threading
from datetime import date, datetime, timedelta, tzinfo
from typing import Any
from zoneinfo import ZoneInfo

__all__ = ["MARKETS", "MarketCalendar", "market_calendar", "resolve_market"]

#: Friendly market names (case-insensitive) and the ISO MIC each stands for. Any MIC or name
#: that exchange_calendars knows is accepted as well.
MARKETS: dict[str, str] = {
    "NYSE": "XNYS", "USA": "XNYS", "NASDAQ": "XNAS", "AMEX": "XASE", "ARCA": "ARCX",
    "CME": "CMES", "CBOT": "CMES", "LSE": "XLON", "LONDON": "XLON", "EURONEXT": "XPAR",
    "XETRA": "XETR", "FWB": "XFRA", "SIX": "XSWX", "TSX": "XTSE", "TSE": "XTKS", "JPX": "XTKS",
    "HKEX": "XHKG", "ASX": "XASX", "SGX": "XSES", "KRX": "XKRX", "SSE": "XSHG", "BSE": "XBOM",
    "B3": "BVMF", "JSE": "XJSE",
}  # "USA" is LEAN's Market.USA

# exchange_calendars produces sessions as pandas timestamps, which stop in 2262.
_CALENDAR_PAD = timedelta(days=5 * 366)
_LATEST = date(2200, 12, 31)


def _exchange_calendars() -> Any:
    from ..errors import require

    return require("exchange_calendars", "calendars", "a market date or time rule")


def resolve_market(market: str) -> str:
    """The exchange_calendars name (an ISO MIC) of ``market``.

    ``market`` is a friendly name from :data:`MARKETS`, a MIC or any name exchange_calendars
    knows, in any case. Unknown names raise :class:`ValueError` listing some valid ones.
    """
    if not isinstance(market, str) or not market.strip():
        raise ValueError(f"market must be a non-empty string such as 'NYSE', got {market!r}")
    xcals = _exchange_calendars()
    wanted = market.strip()
    known = {name.upper(): name for name in xcals.get_calendar_names(include_aliases=True)}
    name = MARKETS.get(wanted.upper(), wanted)
    if name.upper() not in known:
        raise ValueError(
            f"unknown market {market!r}; use a friendly name ({', '.join(list(MARKETS)[:8])}, "
            f"...) or an ISO MIC known to exchange_calendars (XNYS, XLON, XTKS, XHKG, ...)"
        )
    return str(xcals.resolve_alias(known[name.upper()]))


class MarketCalendar:
    """Sessions and hours of one exchange as plain Python objects, grown on demand.

    exchange_calendars answers per-date questions through pandas, which is slow in the
    per-day loops of :func:`fire_times`; a sorted list of session dates and a dict of
    (open, close) UTC datetimes answer them with ``bisect`` instead.
    """

    def __init__(self, mic: str) -> None:
        self.mic = mic
        self._lock = threading.Lock()
        self._lo = date.max
        self._hi = date.min
        self._sessions: list[date] = []
        self._hours: dict[date, tuple[datetime, datetime]] = {}
        self.tz: tzinfo = ZoneInfo("UTC")
        self.weekdays: tuple[int, ...] = ()
        self._bounds = (date.min, _LATEST)
        self._build(None, None)

    def _build(self, lo: date | None, hi: date | None) -> None:
        xcals = _exchange_calendars()
        kwargs = {}
        if lo is not None and hi is not None:
            kwargs = {"start": lo.isoformat(), "end": hi.isoformat()}
        try:
            cal = xcals.get_calendar(self.mic, **kwargs)
        except Exception as exc:  # any failure inside the library: report it as a bad market
            span = f" between {lo} and {hi}" if lo else ""
            raise ValueError(f"exchange_calendars could not build the {self.mic} calendar"
                             f"{span}: {type(exc).__name__}: {exc}") from exc
        bound_min, bound_max = cal.bound_min(), cal.bound_max()
        self._bounds = (date.min if bound_min is None else bound_min.date(),
                        _LATEST if bound_max is None else min(bound_max.date(), _LATEST))
        opens = [ts.to_pydatetime() for ts in cal.opens.dt.tz_convert("UTC")]
        closes = [ts.to_pydatetime() for ts in cal.closes.dt.tz_convert("UTC")]
        days = [ts.date() for ts in cal.opens.index]
        self._hours = dict(zip(days, zip(opens, closes, strict=True), strict=True))
        self._sessions = days
        self._lo = cal.first_session.date()
        self._hi = cal.last_session.date()
        self.tz = cal.tz
        self.weekdays = tuple(i for i, flag in enumerate(cal.weekmask) if flag == "1")

    def _cover(self, lo: date, hi: date) -> None:
        # Padding both ways keeps rebuilds rare when a schedule walks across the range edge.
        if self._lo <= lo and hi <= self._hi:
            return
        with self._lock:
            if self._lo <= lo and hi <= self._hi:
                return
            first, last = self._bounds
            if lo < first or hi > last:
                raise ValueError(
                    f"the {self.mic} calendar of exchange_calendars covers {first} to {last}; "
                    f"a rule asked for trading days between {lo} and {hi}"
                )
            start = max(min(lo, self._lo) - _CALENDAR_PAD, first)
            end = min(max(hi, self._hi) + _CALENDAR_PAD, last)
            self._build(start, end)

    def sessions(self, lo: date, hi: date) -> list[date]:
        """Trading days in ``[lo, hi]``, ascending."""
        self._cover(lo, hi)
        days = self._sessions
        return days[bisect.bisect_left(days, lo) : bisect.bisect_right(days, hi)]

    def hours(self, day: date) -> tuple[datetime, datetime] | None:
        """(open, close) of the session on ``day`` as aware UTC datetimes, None if closed."""
        self._cover(day, day)
        return self._hours.get(day)


_CALENDARS: dict[str, MarketCalendar] = {}
_CALENDARS_LOCK = threading.Lock()


def market_calendar(market: str) -> MarketCalendar:
    """The (cached) calendar of ``market``: sessions and hours as plain Python objects."""
    mic = resolve_market(market)
    with _CALENDARS_LOCK:
        found = _CALENDARS.get(mic)
        if found is None:
            found = _CALENDARS[mic] = MarketCalendar(mic)
    return found
