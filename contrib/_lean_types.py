"""The plain data objects of :mod:`alphazoo.contrib.algorithm`, with LEAN's names.

What an algorithm sees (:class:`Symbol`, :class:`TradeBar`, :class:`Slice`, :class:`Security`,
:class:`SecurityHolding`, :class:`Portfolio`), what a run records (:class:`Order`,
:class:`LogEntry`, :class:`BacktestResult`), and the daily bars a run reads. They hold state and
compute values from it; the rules that change them (fills, buying power, the clock) live in
:mod:`alphazoo.contrib.algorithm`, which re-exports every public name here: import them from
there.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, time
from typing import Any

import numpy as np
import pandas as pd

import alphazoo
from alphazoo.training import DateRule, TimeRule, TrainingRecord

from .evaluation import risk_metrics

__all__ = [
    "BacktestResult", "LogEntry", "Order", "Portfolio", "Resolution", "Security",
    "SecurityHolding", "Slice", "Symbol", "TradeBar",
]

_COLUMNS = ("open", "high", "low", "close", "volume")


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
class BacktestResult:
    """What :func:`run_backtest` returns.

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
    # Dotted, since algorithm.py imports this module: resolvable by get_type_hints() once
    # both are loaded, without a circular import.
    algorithm: alphazoo.contrib.algorithm.Algorithm = field(repr=False)

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


# -- the bars a run reads ---------------------------------------------------------------------
class _Bars:
    """One symbol's bars and the moments they close."""

    def __init__(self, frame: pd.DataFrame, close_time: time) -> None:
        self.frame, self.labels = frame, frame.index
        self.closes = _close_moments(frame.index, close_time)
        self._values = [frame[c].to_numpy(dtype=float) if c in frame else
                        np.full(len(frame), math.nan) for c in _COLUMNS]

    def visible(self, moment: datetime) -> int:
        return int(np.searchsorted(self.closes, np.datetime64(moment, "ns"), side="right"))

    def update(self, security: Security, row: int) -> TradeBar:
        o, h, low, c, v = (float(column[row]) for column in self._values)
        security.bar = TradeBar(security.symbol, self.labels[row].to_pydatetime(), o, h, low, c, v)
        security.price = c
        return security.bar


def _close_moments(index: pd.DatetimeIndex, close_time: time) -> np.ndarray:
    offset = pd.Timedelta(hours=close_time.hour, minutes=close_time.minute,
                          seconds=close_time.second)
    return np.where(index == index.normalize(), index + offset, index).astype("datetime64[ns]")



def _symbol_frames(data: Any) -> dict[str, pd.DataFrame]:
    """``{symbol: bars}`` from a panel, a mapping or Bars; each cleaned and checked."""
    from alphazoo.datasets import Bars

    from .features import split_panel

    if isinstance(data, Bars):
        data = [data]
    if isinstance(data, Sequence) and not isinstance(data, str) and all(
            isinstance(b, Bars) for b in data):
        data = {b.symbol: b for b in data}
    if isinstance(data, pd.DataFrame):
        if not (isinstance(data.index, pd.MultiIndex) and data.index.nlevels == 2):
            raise ValueError("a DataFrame must be a panel on a (datetime, instrument) "
                             "MultiIndex; pass one symbol's bars as {'AAPL': frame}")
        data = split_panel(data)
    if not isinstance(data, Mapping) or not data:
        raise TypeError("data must be a (datetime, instrument) panel DataFrame, a non-empty "
                        f"{{symbol: DataFrame}} mapping or Bars, got {type(data).__name__}")
    return {str(name): _clean(str(name), frame) for name, frame in data.items()}


def _clean(name: str, frame: Any) -> pd.DataFrame:
    from alphazoo.datasets import Bars

    from .features import bars_frame

    if isinstance(frame, Bars):
        frame = bars_frame(frame)
    if not isinstance(frame, pd.DataFrame):
        raise TypeError(f"{name}: bars must be a DataFrame or Bars, got {type(frame).__name__}")
    frame = frame.rename(columns=str.lower)
    if "close" not in frame:
        raise ValueError(f"{name}: the bars have no 'close' column (columns: {list(frame)})")
    index = pd.DatetimeIndex(frame.index)
    if index.tz is not None:
        index = index.tz_localize(None)
    frame = frame[[c for c in _COLUMNS if c in frame]].astype(float).set_axis(
        index.rename("datetime")).sort_index()
    if frame.index.has_duplicates:
        twice = frame.index[frame.index.duplicated()][0]
        raise ValueError(f"{name}: more than one bar at {twice}")
    frame = frame[np.isfinite(frame["close"].to_numpy())]
    if frame.empty:
        raise ValueError(f"{name}: no bars with a close price")
    return frame


def _is_number(value: Any) -> bool:
    # numpy scalars count (a model's float32 prediction sizes a position); booleans do not.
    return isinstance(value, numbers.Real) and not isinstance(value, (bool, np.bool_))


def _check_rules(date_rule: Any, time_rule: Any, fn: Any) -> None:
    if not isinstance(date_rule, DateRule):
        raise TypeError(f"date_rule must come from self.date_rules.*, got {date_rule!r}")
    if not isinstance(time_rule, TimeRule):
        raise TypeError(f"time_rule must come from self.time_rules.*, got {time_rule!r}")
    if not callable(fn):
        raise TypeError(f"the scheduled function must be callable, got {fn!r}")


def _as_datetime(year: int | date | str, month: int = 1, day: int = 1) -> datetime:
    if isinstance(year, (date, str, pd.Timestamp)):
        return pd.Timestamp(year).to_pydatetime().replace(tzinfo=None)
    return datetime(year, month, day)
