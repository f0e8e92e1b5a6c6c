"""The plain data objects of :mod:`alphazoo.contrib.algorithm`, with LEAN's names.

What an algorithm sees (:class:`Symbol`, :class:`TradeBar`, :class:`Slice`, :class:`Security`,
:class:`SecurityHolding`, :class:`Portfolio`), what a run records (:class:`Order`,
:class:`LogEntry`, :class:`AlgorithmBacktest`), and the checks of the arguments that make them.
They hold state and compute values from it; the rules that change them live beside them (fills
and buying power in ``_lean_orders``, the clock in ``_lean_algorithm``).
:mod:`alphazoo.contrib.algorithm` re-exports every public name: import them from there.
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import numpy as np
import pandas as pd

import alphazoo
from alphazoo.training import DateRule, TimeRule, TrainingRecord

from .evaluation import risk_metrics

__all__ = [
    "AlgorithmBacktest", "LogEntry", "Order", "Portfolio", "Resolution", "Security",
    "SecurityHolding", "Slice", "Symbol", "TradeBar", "is_number", "check_rules",
]

class Resolution:
    """LEAN's resolutions; this engine runs daily bars only."""

    DAILY = "daily"


class Symbol(str):
    """A ticker, as returned by :meth:`Algorithm.add_equity`. It is the ticker string itself;
    ``.symbol`` and ``.value`` exist so LEAN code (``add_equity("SPY").symbol``) runs as is."""

    @property
    def symbol(self) -> Symbol:
        return self

    @property
    def value(self) -> str:
        return str(self)


@dataclass(frozen=True)
class TradeBar:
    """One daily bar of one symbol; ``time`` is the bar's label, ``price`` its close."""

    symbol: str
    time: datetime
    open: float
    high: float
    low: float
    close: float
    volume: float

    @property
    def price(self) -> float:
        return self.close


class Slice(dict):
    """What ``on_data`` receives: ``{symbol: TradeBar}`` of the symbols with a bar now.
    ``data[symbol]``, ``symbol in data`` and LEAN's ``data.bars[symbol]`` all work."""

    def __init__(self, when: datetime, bars: dict[str, TradeBar]) -> None:
        super().__init__(bars)
        self.time = when

    @property
    def bars(self) -> Slice:
        return self


@dataclass
class Security:
    """An added symbol: ``price`` is its last close (NaN before its first bar), ``bar`` the
    last :class:`TradeBar`."""

    symbol: Symbol
    price: float = math.nan
    bar: TradeBar | None = None

    @property
    def has_data(self) -> bool:
        return not math.isnan(self.price)


@dataclass
class SecurityHolding:
    """A position: ``quantity`` (negative when short) and ``average_price``; values at the
    security's price."""

    security: Security
    quantity: float = 0.0
    average_price: float = 0.0

    @property
    def holdings_value(self) -> float:
        return self.quantity * self.security.price if self.quantity else 0.0

    @property
    def unrealized_profit(self) -> float:
        return self.quantity * (self.security.price - self.average_price) if self.quantity else 0.0

    @property
    def invested(self) -> bool:
        return self.quantity != 0

    @property
    def is_long(self) -> bool:
        return self.quantity > 0

    @property
    def is_short(self) -> bool:
        return self.quantity < 0


class Portfolio(dict):
    """``{symbol: SecurityHolding}`` of the added symbols, plus cash and totals."""

    def __init__(self, cash: float) -> None:
        super().__init__()
        self.cash = float(cash)
        self.total_fees = 0.0

    def __missing__(self, symbol: str) -> SecurityHolding:
        raise KeyError(f"{symbol!r} is not in the portfolio: add it with add_equity({symbol!r})")

    @property
    def total_holdings_value(self) -> float:
        return sum(h.holdings_value for h in self.values())

    @property
    def total_portfolio_value(self) -> float:
        return self.cash + self.total_holdings_value

    @property
    def gross_exposure(self) -> float:
        return sum(abs(h.holdings_value) for h in self.values())

    @property
    def invested(self) -> bool:
        return any(h.invested for h in self.values())


@dataclass(frozen=True)
class Order:
    """One order and its fill: ``status`` is ``"filled"`` or ``"invalid"`` (then ``message``
    says why and nothing was traded). ``quantity`` is signed; ``fee`` in cash."""

    id: int
    time: datetime
    symbol: str
    quantity: float
    price: float
    fee: float
    status: str = "filled"
    tag: str = ""
    message: str = ""


@dataclass(frozen=True)
class LogEntry:
    """A line from ``self.log`` / ``self.debug`` / ``self.error``, stamped with the sim time."""

    time: datetime
    level: str
    message: str

    def __str__(self) -> str:
        return f"{self.time:%Y-%m-%d %H:%M:%S} {self.level} {self.message}"


@dataclass
class AlgorithmBacktest:
    """What :func:`~alphazoo.contrib.algorithm.run_backtest` returns: the run of a QC-style
    :class:`~alphazoo.contrib.algorithm.Algorithm` (formerly ``BacktestResult``; the
    weights backtest of :mod:`alphazoo.contrib.evaluation` is
    :class:`~alphazoo.contrib.evaluation.WeightsBacktest`).

    ``equity``: the portfolio value after each bar's ``on_data`` (a Series on the bars'
    datetimes, warm-up excluded); ``orders``: every order, ``fills``: the filled ones;
    ``training``: the trainer's :class:`~alphazoo.training.TrainingRecord` s; ``algorithm``:
    the algorithm instance after the run (its ``object_store`` stays readable while this
    result is alive, even a temporary one).
    """

    equity: pd.Series
    orders: list[Order]
    logs: list[LogEntry]
    training: list[TrainingRecord]
    starting_cash: float
    final_value: float
    # Dotted, since the algorithm's module imports this one: resolvable by get_type_hints()
    # once both are loaded, without a circular import.
    algorithm: alphazoo.contrib.algorithm.Algorithm = field(  # type: ignore[name-defined]
        repr=False)

    @property
    def fills(self) -> list[Order]:
        return [o for o in self.orders if o.status == "filled"]

    def statistics(self) -> dict[str, float]:
        """The run's figures, with the names :func:`alphazoo.contrib.evaluation.risk_metrics`
        uses, computed by it on the bar-to-bar returns of the equity curve (the first measured
        from the starting cash, so a loss on the first bar counts; 252 bars a year):

        ``total_return``, ``annualised_return``, ``annualised_volatility``,
        ``information_ratio`` (against no benchmark: the Sharpe ratio at a zero risk-free
        rate), ``max_drawdown`` (a fraction <= 0); and LEAN's ``sharpe_ratio`` (the same value
        as ``information_ratio``), ``trades`` (the number of fills), ``total_fees`` and
        ``final_value``.
        """
        values = np.concatenate([[self.starting_cash], self.equity.to_numpy(dtype=float)])
        out = risk_metrics(pd.Series(values[1:] / values[:-1] - 1.0), periods=252)
        fills = self.fills
        out.update(sharpe_ratio=out["information_ratio"], trades=float(len(fills)),
                   total_fees=float(sum(o.fee for o in fills)),
                   final_value=float(self.final_value))
        return out


# -- argument checks shared by the algorithm's modules -----------------------------------------
def is_number(value: Any) -> bool:
    """Whether ``value`` is a real number an order or setting may take. numpy scalars count (a
    model's float32 prediction sizes a position); booleans do not."""
    return isinstance(value, numbers.Real) and not isinstance(value, (bool, np.bool_))


def check_rules(date_rule: Any, time_rule: Any, fn: Any) -> None:
    """Raise TypeError unless the arguments of ``schedule.on``/``train`` are a date rule, a
    time rule and a callable."""
    if not isinstance(date_rule, DateRule):
        raise TypeError(f"date_rule must come from self.date_rules.*, got {date_rule!r}")
    if not isinstance(time_rule, TimeRule):
        raise TypeError(f"time_rule must come from self.time_rules.*, got {time_rule!r}")
    if not callable(fn):
        raise TypeError(f"the scheduled function must be callable, got {fn!r}")
