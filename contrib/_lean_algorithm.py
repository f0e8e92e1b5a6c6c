"""The QC-style :class:`Algorithm` base class: LEAN's Python API over a simulated clock.

The user-facing half of :mod:`alphazoo.contrib.algorithm` (import from there; the time and
fill model is described in its docstring). Orders go to a :class:`._lean_orders.Broker`;
scheduled trainings run on an :class:`alphazoo.training.Trainer` and ``schedule.on`` events on
an :class:`alphazoo.training.events.EventQueue`, stepped in time order. The backtest runner
(:mod:`._lean_backtest`) drives an algorithm through :class:`AlgorithmDriver`.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

import pandas as pd

from alphazoo.training import (
    AliasFollower,
    DateRule,
    DateRules,
    FollowEvent,
    ServedModel,
    TimeRule,
    TimeRules,
    Trainer,
    TrainingRecord,
)
from alphazoo.training.events import EventQueue
from alphazoo.training.rules import fire_times

from ._lean_bars import SymbolBars, as_datetime
from ._lean_orders import Broker
from ._lean_store import LeanObjectStore
from ._lean_types import (
    LogEntry,
    Order,
    Portfolio,
    Resolution,
    Security,
    SecurityHolding,
    Slice,
    Symbol,
    check_rules,
    is_number,
)

__all__ = ["Algorithm", "ScheduledEvents", "AlgorithmDriver"]

_EPSILON = timedelta(microseconds=1)
_TZ = "America/New_York"


@dataclass(eq=False)
class _Event:
    date_rule: DateRule
    time_rule: TimeRule
    fn: Callable[[], Any]
    order: int
    cursor: datetime | None = None


class ScheduledEvents:
    """``self.schedule``: LEAN's scheduled events (``schedule.on(date_rule, time_rule, fn)``)."""

    def __init__(self, algorithm: Algorithm) -> None:
        self._algorithm = algorithm

    def on(self, date_rule: DateRule, time_rule: TimeRule, fn: Callable[[], Any]) -> None:
        """Run ``fn()`` at each of the rules' times, in simulated time."""
        check_rules(date_rule, time_rule, fn)
        self._algorithm._add_event(date_rule, time_rule, fn)


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
        self.schedule = ScheduledEvents(self)
        # LEAN's Python ObjectStore API over the run's store (set by run_backtest).
        self.object_store: LeanObjectStore = None  # type: ignore[assignment]
        self.start_date: datetime | None = None
        self.end_date: datetime | None = None
        self.is_warming_up = False
        self._initializing = False
        self._live_from = datetime.min  # events and trainings before this are warm-up
        self._frames: dict[str, SymbolBars] = {}
        self._zoo: Any = None
        self._parameters: dict[str, Any] = {}
        self._warm_up = 0
        self._cash_set = self._start_fixed = False
        self._time = self._now = datetime(1970, 1, 1)
        self._trainer: Trainer | None = None
        self._live_mode = False
        self._followed: list[ServedModel] = []
        self._pending: list[tuple[tuple[Any, ...], dict[str, Any]]] = []
        self._events: list[_Event] = []
        self._logs: list[LogEntry] = []
        self._broker = Broker(self.portfolio, self.securities, clock=lambda: self._time,
                              refusal=self._refusal, log_error=self.error)

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
        self.start_date = as_datetime(year, month, day)
        if self._trainer is None and not self._start_fixed:  # history() in initialize
            self._time = self._now = self.start_date

    def set_end_date(self, year: int | date | str, month: int = 1, day: int = 1) -> None:
        """The last day of the backtest, inclusive (``run_backtest(end=...)`` overrides it)."""
        self.end_date = as_datetime(year, month, day)

    def set_cash(self, cash: float) -> None:
        """The starting cash (``run_backtest(cash=...)`` overrides it)."""
        if not (is_number(cash) and math.isfinite(cash) and cash > 0):
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
    def live_mode(self) -> bool:
        """LEAN's ``live_mode``: True when a live runner drives this algorithm (models
        followed with :meth:`follow` then keep following their alias), False in backtests."""
        return self._live_mode

    def follow(self, reference: str, poll: float | timedelta = timedelta(minutes=1),
               **load_options: Any) -> ServedModel:
        """The model registry alias ``reference`` (``"spy/gbdt@production"``) points to, from
        :attr:`object_store`, as a :class:`~alphazoo.training.ServedModel`: call its
        ``predict`` in ``on_data`` once its readiness flag ``ready`` is True.

        Live (:attr:`live_mode`): the alias is read every ``poll`` and each version it moves
        to is loaded and verified in a background thread, then swapped in; LEAN would need a
        redeploy. A version that fails to load is logged with :meth:`error` and never
        served. In a backtest the alias is read once, now: a backtest must not change models
        on the wall clock, so it trades the version in production when it starts (a model
        trained on later data than the backtest's bars is look-ahead: backtest with
        ``self.train`` instead). ``load_options`` go to :meth:`Zoo.load <alphazoo.Zoo.load>`.
        """
        served = ServedModel()
        if self._live_mode:
            served.follow(reference, zoo=self.zoo, poll=poll, on_error=self._follow_failed,
                          **load_options)
        else:
            AliasFollower(served, self.zoo, reference, poll=poll, on_error=self._follow_failed,
                          load_options=load_options).check()
        self._followed.append(served)
        return served

    def _follow_failed(self, event: FollowEvent) -> None:
        self.error(f"{event.key} was not served: {type(event.error).__name__}: {event.error}")

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
            rules: tuple[Any, ...] = ()
            fn = args[0]
        elif len(args) == 3:
            rules, fn = args[:2], args[2]
            check_rules(args[0], args[1], fn)
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

    # -- orders (filled by the broker, :mod:`._lean_orders`) -------------------------------------
    def set_holdings(self, symbol: str, percentage: float,
                     liquidate_existing_holdings: bool = False, asynchronous: bool = False,
                     tag: str = "") -> Order | None:
        """Trade ``symbol`` to ``percentage`` of the total portfolio value (-1 to 1; negative is
        short), scaled down to what buying power allows. Returns the order, or None.
        ``asynchronous`` is LEAN's; orders here fill at once either way."""
        return self._broker.set_holdings(symbol, percentage, liquidate_existing_holdings, tag)

    def market_order(self, symbol: str, quantity: float, tag: str = "") -> Order | None:
        """Buy (positive) or sell (negative) ``quantity`` at the last close, now. An order
        beyond buying power is rejected: an ``"invalid"`` :class:`Order`, logged."""
        return self._broker.market_order(symbol, quantity, tag)

    def liquidate(self, symbol: str | Sequence[str] | None = None, asynchronous: bool = False,
                  tag: str = "Liquidated") -> list[Order]:
        """Close the position in ``symbol`` (one or a list), or every position; returns the
        orders. ``liquidate(symbol, "tag")``, LEAN's older overload, works too."""
        if isinstance(asynchronous, str):  # LEAN's liquidate(symbol_to_liquidate, tag)
            tag = asynchronous
        return self._broker.liquidate(symbol, tag)

    def _refusal(self) -> str | None:
        # As in LEAN: an order in initialize would fill before the start, out of the backtest.
        if self._initializing:
            return "orders are not allowed in initialize()"
        if self.is_warming_up:
            return "orders are not allowed during warm-up"
        return None

    # -- the clock -------------------------------------------------------------------------------
    def _start_clock(self, start: datetime) -> None:
        self._time = self._now = start
        self._trainer = Trainer(mode="backtest", start=start, zoo=self.zoo, tz=_TZ)
        pending, self._pending = self._pending, []
        for args, options in pending:
            self._trainer.train(*args, **options)

    def _add_event(self, date_rule: DateRule, time_rule: TimeRule,
                   fn: Callable[[], Any]) -> None:
        self._events.append(event := _Event(date_rule, time_rule, fn, len(self._events)))
        if self._trainer is not None:  # registered while running: fires from now on
            self._bind(event)

    def _bind(self, event: _Event) -> None:
        # As the trainer does: today()/now fixed at registration, a fire time equal to it fires.
        event.cursor = self._now - _EPSILON
        event.date_rule = event.date_rule.bind(self._now)
        event.time_rule = event.time_rule.bind(self._now)

    def _advance(self, until: datetime) -> None:
        """Run the trainings and events due up to ``until``, each at its own time."""
        assert self._trainer is not None
        due: EventQueue[_Event] = EventQueue()
        started = 0
        while True:
            # Events registered by an event that just ran join here, so their fire times later
            # in this window run in time order instead of after the trainer's clock passed them.
            for event in self._events[started:]:
                if event.cursor is None:  # registered in initialize: fires from the start on
                    self._bind(event)
                assert event.cursor is not None
                due.add(fire_times(event.date_rule, event.time_rule, event.cursor, until, _TZ),
                        event, event.order)
            started = len(self._events)
            popped = due.pop()
            if popped is None:
                break
            when, event = popped
            # The trainer first: at equal times trainings run before schedule.on events.
            self._trainer.advance(when)
            event.cursor = when
            self._run_at(when, event.fn)
        self._trainer.advance(until)


class AlgorithmDriver:
    """What a runner does to an :class:`Algorithm`: configure it, call ``initialize``, start
    its clock and step it bar by bar. Kept beside the algorithm so the runner never reaches
    into the algorithm's private state.

    :func:`run_backtest` is one runner. A live runner (your scheduler, a notebook) is another:
    it configures the algorithm with ``live=True``, which is what LEAN's engine does and what
    the read-only :attr:`Algorithm.live_mode` then reports, so models taken with
    :meth:`Algorithm.follow` keep following their alias; :meth:`close` ends their threads.

    >>> driver = AlgorithmDriver(MyAlgorithm())                           # doctest: +SKIP
    >>> driver.configure({}, LeanObjectStore(store), zoo, first=now, live=True)  # doctest: +SKIP
    >>> driver.initialize()                                               # doctest: +SKIP
    """

    def __init__(self, algorithm: Algorithm) -> None:
        self.algorithm = algorithm

    def configure(self, frames: dict[str, SymbolBars], object_store: LeanObjectStore, zoo: Any,
                  *, first: datetime, fee_rate: float = 0.0, fractional: bool = False,
                  parameters: Mapping[str, Any] | None = None, start_fixed: bool = False,
                  cash: float | None = None, live: bool = False) -> None:
        """Give the algorithm its data, store, zoo and settings before ``initialize``;
        ``cash`` (the caller's) wins over ``set_cash``, ``start_fixed`` over
        ``set_start_date``. ``live``: a live runner drives it (:attr:`Algorithm.live_mode`)."""
        algo = self.algorithm
        algo._live_mode = bool(live)
        algo._frames, algo.object_store, algo._zoo = frames, object_store, zoo
        algo._broker.fee_rate, algo._broker.fractional = float(fee_rate), bool(fractional)
        algo._parameters, algo._start_fixed = dict(parameters or {}), start_fixed
        algo._time = algo._now = first
        if cash is not None:
            algo.set_cash(cash)
            algo._cash_set = True

    def initialize(self) -> None:
        """Call the algorithm's ``initialize`` (orders in it are refused)."""
        algo = self.algorithm
        algo._initializing = True
        algo.initialize()
        algo._initializing = False

    @property
    def warm_up(self) -> int:
        """The bars of warm-up the algorithm asked for (``set_warm_up``)."""
        return self.algorithm._warm_up

    def start(self, clock_start: datetime, live_from: datetime) -> None:
        """Start the clock (and the trainer) at ``clock_start``; events before ``live_from``
        are warm-up."""
        self.algorithm._live_from = live_from
        self.algorithm._start_clock(clock_start)

    def advance(self, until: datetime) -> None:
        """Run the trainings and scheduled events due up to ``until``."""
        self.algorithm._advance(until)

    def enter_bar(self, label: datetime, moment: datetime, warming_up: bool) -> None:
        """Set the clock to bar ``label`` that closed at ``moment``, before its ``on_data``."""
        algo = self.algorithm
        algo._time, algo._now, algo.is_warming_up = label, moment, warming_up

    def finish(self) -> None:
        """Call ``on_end_of_algorithm`` out of warm-up, then stop following aliases."""
        self.algorithm.is_warming_up = False
        try:
            self.algorithm.on_end_of_algorithm()
        finally:
            self.close()

    def close(self) -> None:
        """Stop the alias followers of :meth:`Algorithm.follow` (their threads end); the
        models keep the version they serve. Safe to call more than once."""
        for served in self.algorithm._followed:
            served.close()

    @property
    def orders(self) -> list[Order]:
        """Every order, filled or invalid."""
        return list(self.algorithm._broker.orders)

    @property
    def logs(self) -> list[LogEntry]:
        """Every ``log``/``debug``/``error`` line."""
        return list(self.algorithm._logs)

    @property
    def training(self) -> list[TrainingRecord]:
        """The trainer's records (empty before the clock started)."""
        trainer = self.algorithm._trainer
        return [] if trainer is None else list(trainer.history)
