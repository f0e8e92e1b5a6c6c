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

This module is the place to import the API from. Its parts: the :class:`Algorithm` base class
(``_lean_algorithm``), order filling (``_lean_orders``), the data objects (``_lean_types``),
the bars a run reads (``_lean_bars``), ``object_store`` (``_lean_store``) and
:func:`run_backtest` (``_lean_backtest``).

Live: :func:`run_backtest` drives an algorithm over stored bars; a live runner drives one
with :class:`AlgorithmDriver` and ``configure(..., live=True)``, as LEAN's engine sets
``live_mode``; models taken with ``self.follow("name@production")`` then keep following the
alias (in a backtest they read it once, at the start).

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

from typing import Any

from alphazoo.errors import warn_renamed

from ._lean_algorithm import Algorithm, AlgorithmDriver
from ._lean_backtest import run_backtest
from ._lean_store import KeyValuePair, LeanObjectStore
from ._lean_types import (
    AlgorithmBacktest,
    LogEntry,
    Order,
    Portfolio,
    Resolution,
    Security,
    SecurityHolding,
    Slice,
    Symbol,
    TradeBar,
)

__all__ = [
    "Algorithm", "AlgorithmDriver", "run_backtest", "AlgorithmBacktest", "Order", "LogEntry",
    "Resolution", "Symbol", "TradeBar", "Slice", "Security", "SecurityHolding", "Portfolio",
    "LeanObjectStore", "KeyValuePair",
]


def __getattr__(name: str) -> Any:
    # One release of grace for the old name, which the weights backtest of
    # alphazoo.contrib.evaluation also had.
    if name == "BacktestResult":
        warn_renamed("alphazoo.contrib.algorithm.BacktestResult", "AlgorithmBacktest")
        return AlgorithmBacktest
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
