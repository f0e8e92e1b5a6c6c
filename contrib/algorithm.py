"""A small QuantConnect-style algorithm base for daily bars, with LEAN's Python API names.

>>> class BuyAndHold(Algorithm):                                   # doctest: +SKIP
...     def initialize(self):
...         self.set_cash(100_000)
...         self.spy = self.add_equity("AAPL")
...     def on_data(self, data):
...         if not self.portfolio.invested:
...             self.set_holdings(self.spy, 1.0)
>>> result = run_backtest(BuyAndHold, load_prices("AAPL"))          # doctest: +SKIP
>>> result.statistics()["total_return"]                             # doctest: +SKIP

Hooks: :meth:`Algorithm.initialize`, :meth:`Algorithm.on_data`, optional
:meth:`Algorithm.on_end_of_algorithm`. Trainings (``self.train``) run on an
:class:`alphazoo.training.Trainer` in backtest mode, so they draw on LEAN's leaky-bucket quota
on the simulated clock.

Time and fills (the model, chosen to be simple and free of look-ahead):

- Bars are daily; the run steps through the bars of the symbols added in ``initialize``
  (LEAN's subscriptions) and ``on_data`` gets those with a bar at that time. A bar labelled
  ``D`` (midnight) closes at ``D + close_time`` (16:00 New York by default); a bar with a
  time of day closes at that time. The simulated clock runs on those close moments.
  ``self.time`` is the bar's label inside ``on_data`` and the fire time inside scheduled
  events and trainings.
- ``on_data`` for bar ``t`` runs after bar ``t`` closed: ``history`` includes ``t`` and never a
  later bar. Scheduled trainings and events due in ``(close[t-1], close[t]]`` run, at their
  own simulated times, before ``on_data`` of bar ``t``; they see the bars closed by then
  (up to ``t-1``; ``t`` too for one at its close moment). At equal times trainings run
  before ``schedule.on`` events.
- Orders are market-on-close: they fill at once at the last close seen (bar ``t``'s close in
  ``on_data``), with a fee of ``fee_rate`` times the traded notional. No slippage, no partial
  fills: on daily bars nothing finer can be honest. Orders placed in ``initialize`` (or
  during warm-up) are refused, as in LEAN: status ``"invalid"``, logged.
- Quantities are whole shares unless ``fractional=True``. Buying power is a leverage-1
  account: after an order the gross exposure ``sum |quantity| * price`` may not exceed the
  portfolio value net of the fee, so cash never goes negative for long positions. Orders that
  only reduce a position are always accepted. ``set_holdings`` scales an order down to what
  buying power allows (LEAN computes its quantity from the total portfolio value the same
  way); ``market_order`` beyond buying power is rejected (status ``"invalid"``, logged), as in
  LEAN.
- Shorts: ``set_holdings(symbol, -0.5)`` and negative ``market_order`` quantities sell short;
  the proceeds are credited to cash and the position is valued at ``quantity * price``. There
  are no margin calls, borrow fees or dividends.
"""

from __future__ import annotations

import functools
import heapq
import math
import shutil
import tempfile
import weakref
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Any

import pandas as pd

from alphazoo.store import ObjectStore
from alphazoo.training import DateRule, DateRules, TimeRule, Trainer, TimeRules
from alphazoo.training.rules import fire_times

# The data objects live in _lean_types, the store facade in _lean_store; they are imported here
# so that this module stays the one place to import the whole API from.
from ._lean_store import KeyValuePair, LeanObjectStore
from ._lean_types import (
    BacktestResult,
    LogEntry,
    Order,
    Portfolio,
    Resolution,
    Security,
    SecurityHolding,
    Slice,
    Symbol,
    TradeBar,
    _as_datetime,
    _Bars,
    _check_rules,
    _close_moments,
    _is_number,
    _symbol_frames,
)

__all__ = [
    "Algorithm", "run_backtest", "BacktestResult", "Order", "LogEntry", "Resolution", "Symbol",
    "TradeBar", "Slice", "Security", "SecurityHolding", "Portfolio", "LeanObjectStore",
    "KeyValuePair",
]

_EPSILON = timedelta(microseconds=1)
_TZ = "America/New_York"


@dataclass(eq=False)
class _Event:
    date_rule: DateRule
    time_rule: TimeRule
    fn: Callable[[], Any]
    order: int
    cursor: datetime | None = None


class _Schedule:
    """``self.schedule``: LEAN's scheduled events (``schedule.on(date_rule, time_rule, fn)``)."""

    def __init__(self, algorithm: Algorithm) -> None:
        self._algorithm = algorithm

    def on(self, date_rule: DateRule, time_rule: TimeRule, fn: Callable[[], Any]) -> None:
        """Run ``fn()`` at each of the rules' times, in simulated time."""
        _check_rules(date_rule, time_rule, fn)
        algo = self._algorithm
        algo._events.append(event := _Event(date_rule, time_rule, fn, len(algo._events)))
        if algo._trainer is not None:  # registered while running: fires from now on
            algo._bind(event)


class Algorithm:
    """Base class of a QC-style algorithm: override :meth:`initialize` and :meth:`on_data`.

    Do not override ``__init__``; :func:`run_backtest` creates the instance and then calls
    ``initialize()``. ``self.date_rules`` / ``self.time_rules`` are
    :class:`~alphazoo.training.DateRules` / :class:`~alphazoo.training.TimeRules`.
    """

    date_rules = DateRules
    time_rules = TimeRules

    def __init__(self) -> None:
        self.portfolio = Portfolio(100_000.0)
        self.securities: dict[str, Security] = {}
        self.schedule = _Schedule(self)
        # LEAN's Python ObjectStore API over the run's store (set by run_backtest).
        self.object_store: LeanObjectStore = None  # type: ignore[assignment]
        self.start_date: datetime | None = None
        self.end_date: datetime | None = None
        self.is_warming_up = False
        self._initializing = False
        self._live_from = datetime.min  # events and trainings before this are warm-up
        self._frames: dict[str, _Bars] = {}
        self._zoo: Any = None
        self._parameters: dict[str, Any] = {}
        self._fee_rate = 0.0
        self._fractional = False
        self._warm_up = 0
        self._cash_set = self._start_fixed = False
        self._time = self._now = datetime(1970, 1, 1)
        self._trainer: Trainer | None = None
        self._pending: list[tuple[tuple[Any, ...], dict[str, Any]]] = []
        self._events: list[_Event] = []
        self._orders: list[Order] = []
        self._logs: list[LogEntry] = []

    # -- hooks -----------------------------------------------------------------------------------
    def initialize(self) -> None:
        """Set dates, cash and symbols, register trainings and events. Override this."""
        raise NotImplementedError(f"{type(self).__name__} must define initialize(self)")

    def on_data(self, data: Slice) -> None:
        """Called once per bar after it closed, with the bars of the added symbols."""

    def on_end_of_algorithm(self) -> None:
        """Called once after the last bar."""

    # -- set-up ----------------------------------------------------------------------------------
    def set_start_date(self, year: int | date | str, month: int = 1, day: int = 1) -> None:
        """The first day of the backtest (``run_backtest(start=...)`` overrides it)."""
        self.start_date = _as_datetime(year, month, day)
        if self._trainer is None and not self._start_fixed:  # history() in initialize
            self._time = self._now = self.start_date

    def set_end_date(self, year: int | date | str, month: int = 1, day: int = 1) -> None:
        """The last day of the backtest, inclusive (``run_backtest(end=...)`` overrides it)."""
        self.end_date = _as_datetime(year, month, day)

    def set_cash(self, cash: float) -> None:
        """The starting cash (``run_backtest(cash=...)`` overrides it)."""
        if not (_is_number(cash) and math.isfinite(cash) and cash > 0):
            raise ValueError(f"set_cash() needs a positive amount, got {cash!r}")
        if not self._cash_set:
            self.portfolio.cash = float(cash)

    def set_warm_up(self, bars: int) -> None:
        """Feed ``bars`` bars before the start to ``on_data`` with :attr:`is_warming_up` set;
        orders are refused during warm-up and its bars are not in the equity curve. Scheduled
        events and trainings are warm-up when they fire before the start."""
        if isinstance(bars, bool) or not isinstance(bars, int) or bars < 0:
            raise ValueError(f"set_warm_up() takes a number of bars >= 0, got {bars!r}")
        self._warm_up = bars

    def add_equity(self, ticker: str, resolution: str | None = None) -> Symbol:
        """Subscribe to ``ticker``'s bars (the data must hold it); returns its :class:`Symbol`."""
        if resolution not in (None, Resolution.DAILY):
            raise ValueError(f"only daily bars are supported, got resolution {resolution!r}")
        if ticker not in self._frames:
            raise ValueError(f"no data for {ticker!r}; the data holds: "
                             f"{', '.join(sorted(self._frames)) or 'nothing'}")
        symbol = Symbol(ticker)
        if symbol not in self.securities:
            self.securities[symbol] = security = Security(symbol)
            self.portfolio[symbol] = SecurityHolding(security)
            self._sync_prices()  # added mid-run: its latest bar is already known
        return symbol

    def get_parameter(self, name: str, default: Any = None) -> Any:
        """A ``run_backtest(parameters=...)`` value; converted to ``default``'s type."""
        if name not in self._parameters:
            return default
        value = self._parameters[name]
        if isinstance(default, bool) and isinstance(value, str):
            return value.strip().lower() in ("1", "true", "yes", "on")
        if default is not None and isinstance(value, str) and not isinstance(default, str):
            return type(default)(value)
        return value

    # -- state -----------------------------------------------------------------------------------
    @property
    def time(self) -> datetime:
        """The current bar's label in ``on_data``; the fire time in events and trainings."""
        return self._time

    @property
    def zoo(self) -> Any:
        """The :class:`~alphazoo.Zoo` over :attr:`object_store`'s store (saves land there)."""
        if self._zoo is None:
            from alphazoo.host import Zoo

            self._zoo = Zoo(self.object_store.store)
        return self._zoo

    @property
    def trainer(self) -> Trainer | None:
        """The backtest :class:`~alphazoo.training.Trainer` (None during ``initialize``)."""
        return self._trainer

    def log(self, message: Any) -> None:
        self._logs.append(LogEntry(self._time, "LOG", str(message)))

    def debug(self, message: Any) -> None:
        self._logs.append(LogEntry(self._time, "DEBUG", str(message)))

    def error(self, message: Any) -> None:
        self._logs.append(LogEntry(self._time, "ERROR", str(message)))

    # -- data ------------------------------------------------------------------------------------
    def history(self, symbols: str | Sequence[str], periods: int,
                resolution: str | None = None) -> pd.DataFrame:
        """The last ``periods`` daily bars that closed by now (never a later one).

        One symbol: a DataFrame on a ``datetime`` index with open/high/low/close/volume. A
        list: a panel on a ``(datetime, instrument)`` MultiIndex, up to ``periods`` bars each.
        """
        if resolution not in (None, Resolution.DAILY):
            raise ValueError(f"only daily bars are supported, got resolution {resolution!r}")
        if isinstance(periods, bool) or not isinstance(periods, int) or periods <= 0:
            raise ValueError(f"history() needs a positive number of bars, got {periods!r}")
        single = isinstance(symbols, str)
        names = [symbols] if single else list(symbols)
        parts = {}
        for name in names:
            if name not in self._frames:
                raise ValueError(f"no data for {name!r}; the data holds: "
                                 f"{', '.join(sorted(self._frames))}")
            bars = self._frames[name]
            seen = bars.visible(self._now)
            parts[str(name)] = bars.frame.iloc[max(0, seen - periods):seen].copy()
        if single:
            return parts[str(symbols)]
        panel = pd.concat(parts, names=["instrument", "datetime"])
        return panel.swaplevel().sort_index()

    # -- training --------------------------------------------------------------------------------
    def train(self, *args: Any, **options: Any) -> Any:
        """LEAN's ``train(fn)`` (now) and ``train(date_rule, time_rule, fn)`` (scheduled).

        Runs on :attr:`trainer` (see :meth:`alphazoo.training.Trainer.train` for the options:
        ``name``, ``save_as``, ``format``, ...). Called in ``initialize``, the trainings are
        registered when the clock starts (the start date at midnight) and ``train(fn)`` runs
        then; returns None there, else what the trainer returns.
        """
        if len(args) == 1:
            rules, fn = (), args[0]
        elif len(args) == 3:
            rules, fn = args[:2], args[2]
            _check_rules(*rules, fn)
        else:
            raise TypeError("use train(fn) to train now or train(date_rule, time_rule, fn); "
                            f"got {len(args)} positional argument(s)")
        if not callable(fn):
            raise TypeError(f"the training must be callable, got {fn!r}")
        options.setdefault("name", getattr(fn, "__name__", None) or repr(fn))
        call = (*rules, self._as_event(fn)), options
        if self._trainer is None:
            self._pending.append(call)
            return None
        return self._trainer.train(*call[0], **call[1])

    def _as_event(self, fn: Callable[[], Any]) -> Callable[[], Any]:
        @functools.wraps(fn)
        def run() -> Any:
            return self._run_at(self._trainer.now if self._trainer else self._now, fn)

        return run

    def _run_at(self, moment: datetime, fn: Callable[[], Any]) -> Any:
        saved = self._time, self._now, self.is_warming_up
        self._time = self._now = moment
        # By its own time, not by the bar around it: an event at 09:30 on the start day trades,
        # one on the first warm-up day does not.
        self.is_warming_up = moment < self._live_from
        self._sync_prices()
        try:
            return fn()
        finally:
            self._time, self._now, self.is_warming_up = saved

    def _sync_prices(self) -> None:
        for symbol, security in self.securities.items():
            bars = self._frames[symbol]
            seen = bars.visible(self._now)
            if seen:
                bars.update(security, seen - 1)

    # -- orders ----------------------------------------------------------------------------------
    def set_holdings(self, symbol: str, percentage: float,
                     liquidate_existing_holdings: bool = False, asynchronous: bool = False,
                     tag: str = "") -> Order | None:
        """Trade ``symbol`` to ``percentage`` of the total portfolio value (-1 to 1; negative is
        short), scaled down to what buying power allows. Returns the order, or None.
        ``asynchronous`` is LEAN's; orders here fill at once either way."""
        if not _is_number(percentage) or not -1.0 <= percentage <= 1.0:
            raise ValueError(f"set_holdings() takes a fraction between -1 and 1 (negative is "
                             f"short; no leverage), got {percentage!r}")
        security = self._security(symbol)
        if liquidate_existing_holdings:
            for other in [s for s, h in self.portfolio.items() if h.invested and s != symbol]:
                self.liquidate(other)
        target = float(percentage) * self.portfolio.total_portfolio_value / security.price
        delta = self._round(target) - self.portfolio[symbol].quantity
        if delta == 0:
            return None
        allowed = self._round(self._max_quantity(symbol, delta))
        return self._fill(symbol, math.copysign(allowed, delta), tag) if allowed else None

    def market_order(self, symbol: str, quantity: float, tag: str = "") -> Order | None:
        """Buy (positive) or sell (negative) ``quantity`` at the last close, now. An order
        beyond buying power is rejected: an ``"invalid"`` :class:`Order`, logged."""
        security = self._security(symbol)
        if not _is_number(quantity) or not math.isfinite(quantity):
            raise ValueError(f"market_order() needs a finite quantity, got {quantity!r}")
        if not self._fractional and quantity != int(quantity):
            raise ValueError(f"quantity {quantity} is not a whole number of shares; "
                             "run_backtest(..., fractional=True) allows fractions")
        if quantity == 0:
            return None
        if abs(quantity) > self._max_quantity(symbol, quantity) + 1e-9:
            return self._reject(security, quantity, tag, "insufficient buying power")
        return self._fill(symbol, float(quantity), tag)

    def liquidate(self, symbol: str | Sequence[str] | None = None, asynchronous: bool = False,
                  tag: str = "Liquidated") -> list[Order]:
        """Close the position in ``symbol`` (one or a list), or every position; returns the
        orders. ``liquidate(symbol, "tag")``, LEAN's older overload, works too."""
        if isinstance(asynchronous, str):  # LEAN's liquidate(symbol_to_liquidate, tag)
            tag = asynchronous
        symbols = (list(self.portfolio) if symbol is None
                   else [symbol] if isinstance(symbol, str) else list(symbol))
        orders = []
        for name in symbols:
            if name not in self.securities:
                self._security(name)  # raises: not added
            # Only a position needs a price, and it has one: a symbol whose first bar has not
            # closed yet holds nothing to close.
            quantity = self.portfolio[name].quantity
            if quantity:
                orders.append(self._fill(name, -quantity, tag))
        return orders

    def _security(self, symbol: str) -> Security:
        if symbol not in self.securities:
            raise ValueError(f"{symbol!r} was not added: call self.add_equity({str(symbol)!r}) "
                             "in initialize first")
        security = self.securities[symbol]
        if not security.has_data:
            raise ValueError(f"{symbol!r} has no price yet at {self._time}: no bar has closed")
        return security

    def _round(self, quantity: float) -> float:
        return float(quantity) if self._fractional else float(math.trunc(quantity))

    def _max_quantity(self, symbol: str, delta: float) -> float:
        # The largest |order| in delta's direction with gross exposure <= equity after the fee;
        # the part of an order that only reduces the position is always allowed.
        holding, price = self.portfolio[symbol], self.securities[symbol].price
        quantity, size = holding.quantity, abs(delta)
        reducing = quantity * delta < 0
        free = abs(quantity) if reducing else 0.0
        if size <= free:
            return size
        others = self.portfolio.gross_exposure - abs(holding.holdings_value)
        held = -abs(quantity) if reducing else abs(quantity)
        bound = (self.portfolio.total_portfolio_value - others - held * price) / (
            price * (1.0 + self._fee_rate))
        return min(size, max(bound, free))

    def _fill(self, symbol: str, quantity: float, tag: str) -> Order:
        security = self.securities[symbol]
        # As in LEAN: an order in initialize would fill before the start, out of the backtest.
        if self._initializing or self.is_warming_up:
            return self._reject(security, quantity, tag, "orders are not allowed in initialize()"
                                if self._initializing else "orders are not allowed during warm-up")
        holding, price = self.portfolio[symbol], security.price
        fee = self._fee_rate * abs(quantity) * price
        before, after = holding.quantity, holding.quantity + quantity
        if after == 0:
            holding.average_price = 0.0
        elif before == 0 or (before > 0) != (after > 0):
            holding.average_price = price
        elif abs(after) > abs(before):
            holding.average_price = (holding.average_price * abs(before)
                                     + price * abs(quantity)) / abs(after)
        holding.quantity = after
        self.portfolio.cash -= quantity * price + fee
        self.portfolio.total_fees += fee
        order = Order(len(self._orders) + 1, self._time, str(symbol), quantity, price, fee,
                      tag=tag)
        self._orders.append(order)
        return order

    def _reject(self, security: Security, quantity: float, tag: str, why: str) -> Order:
        order = Order(len(self._orders) + 1, self._time, str(security.symbol), quantity,
                      security.price, 0.0, "invalid", tag, why)
        self._orders.append(order)
        self.error(f"order {order.id} ({quantity:+g} {security.symbol}) is invalid: {why}")
        return order

    # -- the clock -------------------------------------------------------------------------------
    def _start_clock(self, start: datetime) -> None:
        self._time = self._now = start
        self._trainer = Trainer(mode="backtest", start=start, zoo=self.zoo, tz=_TZ)
        pending, self._pending = self._pending, []
        for args, options in pending:
            self._trainer.train(*args, **options)

    def _bind(self, event: _Event) -> None:
        # As the trainer does: today()/now fixed at registration, a fire time equal to it fires.
        event.cursor = self._now - _EPSILON
        event.date_rule = event.date_rule.bind(self._now)
        event.time_rule = event.time_rule.bind(self._now)

    def _advance(self, until: datetime) -> None:
        """Run the trainings and events due up to ``until``, each at its own time."""
        assert self._trainer is not None
        due: list[tuple[datetime, int, Iterator[datetime], _Event]] = []
        started = 0
        while True:
            # Events registered by an event that just ran join here, so their fire times later
            # in this window run in time order instead of after the trainer's clock passed them.
            for event in self._events[started:]:
                if event.cursor is None:  # registered in initialize: fires from the start on
                    self._bind(event)
                _push(due, event, iter(fire_times(event.date_rule, event.time_rule,
                                                  event.cursor, until, _TZ)))
            started = len(self._events)
            if not due:
                break
            when, _, times, event = heapq.heappop(due)
            self._trainer.advance(when)
            event.cursor = when
            self._run_at(when, event.fn)
            _push(due, event, times)
        self._trainer.advance(until)


def _push(due: list[tuple[datetime, int, Iterator[datetime], _Event]], event: _Event,
          times: Iterator[datetime]) -> None:
    # (time, registration order) is unique per event, so the heap never compares iterators.
    when = next(times, None)
    if when is not None:
        heapq.heappush(due, (when, event.order, times, event))


def run_backtest(
    algorithm: type[Algorithm],
    data: Any,
    cash: float | None = None,
    *,
    start: date | str | None = None,
    end: date | str | None = None,
    fee_rate: float = 0.0005,
    fractional: bool = False,
    close_time: time = time(16, 0),
    object_store: ObjectStore | None = None,
    zoo: Any = None,
    parameters: Mapping[str, Any] | None = None,
) -> BacktestResult:
    """Run ``algorithm`` (an :class:`Algorithm` subclass) over daily bars.

    ``data``: a panel DataFrame on a ``(datetime, instrument)`` MultiIndex,
    ``{symbol: DataFrame}`` (one symbol's bars on a DatetimeIndex), or
    :class:`alphazoo.datasets.Bars` (one, or a list). Columns open/high/low/close/volume
    (close required). ``cash``, ``start`` and ``end`` override the algorithm's ``set_cash``,
    ``set_start_date`` and ``set_end_date``; without either: 100,000 and the data's first and
    last bar. ``fee_rate``: the fee per traded notional (0 allowed). ``object_store``: the
    algorithm's store (default: a temporary folder, removed with the result); ``zoo``: the
    :class:`~alphazoo.Zoo` trainings save through (default: one over the store).
    ``parameters``: what ``get_parameter`` returns. See the module docstring for the fill model.
    """
    if not (isinstance(algorithm, type) and issubclass(algorithm, Algorithm)):
        raise TypeError(f"run_backtest() takes an Algorithm subclass, got {algorithm!r}")
    if not (_is_number(fee_rate) and 0 <= fee_rate < 1):
        raise ValueError(f"fee_rate must be in [0, 1), got {fee_rate!r}")
    frames = {name: _Bars(frame, close_time) for name, frame in _symbol_frames(data).items()}
    temporary = None
    if zoo is not None and object_store is not None and zoo.store is not object_store:
        raise ValueError("zoo and object_store disagree: pass one, or a zoo over that store")
    if object_store is None:
        if zoo is not None:
            object_store = zoo.store
        else:
            temporary = tempfile.mkdtemp(prefix="alphazoo-backtest-")
            object_store = ObjectStore(temporary)
    try:
        result = _execute(algorithm(), frames, object_store, zoo, cash, start, end, fee_rate,
                          fractional, close_time, parameters)
    except BaseException:
        if temporary is not None:  # nothing of a temporary store outlives a failed run
            shutil.rmtree(temporary, ignore_errors=True)
        raise
    if temporary is not None:
        weakref.finalize(result, shutil.rmtree, temporary, True)
    return result


def _execute(algo: Algorithm, frames: dict[str, _Bars], object_store: ObjectStore, zoo: Any,
             cash: float | None, start: Any, end: Any, fee_rate: float, fractional: bool,
             close_time: time, parameters: Mapping[str, Any] | None) -> BacktestResult:
    algo._frames, algo.object_store, algo._zoo = frames, LeanObjectStore(object_store), zoo
    algo._fee_rate, algo._fractional = float(fee_rate), bool(fractional)
    algo._parameters, algo._start_fixed = dict(parameters or {}), start is not None
    first = (_as_datetime(start) if start is not None
             else min(b.labels[0] for b in frames.values()).normalize().to_pydatetime())
    algo._time = algo._now = first
    if cash is not None:
        algo.set_cash(cash)
        algo._cash_set = True
    algo._initializing = True
    algo.initialize()
    algo._initializing = False
    if not algo.securities:
        raise ValueError(f"{type(algo).__name__}.initialize() added no symbol: call "
                         "self.add_equity(ticker) for the bars it trades")
    # LEAN's timeline follows the subscriptions: the bars of the symbols added in initialize.
    timeline = pd.DatetimeIndex(sorted(set().union(*(frames[s].labels
                                                     for s in algo.securities))))

    begin = first if start is not None else (algo.start_date or first)
    last = _as_datetime(end) if end is not None else algo.end_date
    stop = len(timeline) if last is None else int(timeline.searchsorted(
        pd.Timestamp(last) + pd.Timedelta(days=1), side="left"))
    lo = int(timeline.searchsorted(pd.Timestamp(begin), side="left"))
    if lo >= stop:
        raise ValueError(f"no bars between {begin:%Y-%m-%d} and "
                         f"{(last or timeline[-1]):%Y-%m-%d}; the data runs from "
                         f"{timeline[0]:%Y-%m-%d} to {timeline[-1]:%Y-%m-%d}")
    warm = max(lo - algo._warm_up, 0)
    starting_cash = algo.portfolio.cash
    algo._live_from = begin
    algo._start_clock(timeline[warm].normalize().to_pydatetime() if warm < lo else begin)
    rows = {name: b.labels.get_indexer(timeline) for name, b in frames.items()}
    moments = pd.DatetimeIndex(_close_moments(timeline, close_time)).to_pydatetime()
    equity = []
    for i in range(warm, stop):
        label = timeline[i].to_pydatetime()
        algo._advance(moments[i])
        algo._time, algo._now, algo.is_warming_up = label, moments[i], i < lo
        bars = {}
        for symbol, security in algo.securities.items():
            row = rows[symbol][i]
            if row >= 0:
                bars[symbol] = frames[symbol].update(security, row)
        if bars:
            algo.on_data(Slice(label, bars))
        if i >= lo:
            equity.append(algo.portfolio.total_portfolio_value)
    algo.is_warming_up = False
    algo.on_end_of_algorithm()
    object_store.sync()
    assert algo._trainer is not None
    return BacktestResult(
        pd.Series(equity, index=timeline[lo:stop].rename("datetime"), name="equity"),
        list(algo._orders), list(algo._logs), list(algo._trainer.history), starting_cash,
        algo.portfolio.total_portfolio_value, algo)

