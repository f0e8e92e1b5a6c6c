"""The backtest runner of :mod:`alphazoo.contrib.algorithm`: :func:`run_backtest` reads the
bars, runs ``initialize``, steps the algorithm through its bars' close moments (trainings and
scheduled events first, then ``on_data``) and returns an :class:`AlgorithmBacktest`.
"""

from __future__ import annotations

import shutil
import tempfile
import weakref
from collections.abc import Mapping
from datetime import date, time
from typing import Any

import pandas as pd

from alphazoo.store import ObjectStore

from ._lean_algorithm import Algorithm, AlgorithmDriver
from ._lean_bars import SymbolBars, as_datetime, close_moments, symbol_frames
from ._lean_store import LeanObjectStore
from ._lean_types import AlgorithmBacktest, Slice, is_number

__all__ = ["run_backtest"]


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
) -> AlgorithmBacktest:
    """Run ``algorithm`` (an :class:`Algorithm` subclass) over daily bars.

    ``data``: a panel DataFrame on a ``(datetime, instrument)`` MultiIndex,
    ``{symbol: DataFrame}`` (one symbol's bars on a DatetimeIndex), or
    :class:`alphazoo.datasets.Bars` (one, or a list). Columns open/high/low/close/volume
    (close required). ``cash``, ``start`` and ``end`` override the algorithm's ``set_cash``,
    ``set_start_date`` and ``set_end_date``; without either: 100,000 and the data's first and
    last bar. ``fee_rate``: the fee per traded notional (0 allowed). ``object_store``: the
    algorithm's store (default: a temporary folder, removed with the result); ``zoo``: the
    :class:`~alphazoo.Zoo` trainings save through (default: one over the store).
    ``parameters``: what ``get_parameter`` returns. The fill model:
    :mod:`alphazoo.contrib.algorithm`.
    """
    if not (isinstance(algorithm, type) and issubclass(algorithm, Algorithm)):
        raise TypeError(f"run_backtest() takes an Algorithm subclass, got {algorithm!r}")
    if not (is_number(fee_rate) and 0 <= fee_rate < 1):
        raise ValueError(f"fee_rate must be in [0, 1), got {fee_rate!r}")
    frames = {name: SymbolBars(frame, close_time) for name, frame in symbol_frames(data).items()}
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


def _execute(algo: Algorithm, frames: dict[str, SymbolBars], object_store: ObjectStore, zoo: Any,
             cash: float | None, start: Any, end: Any, fee_rate: float, fractional: bool,
             close_time: time, parameters: Mapping[str, Any] | None) -> AlgorithmBacktest:
    driver = AlgorithmDriver(algo)
    first = (as_datetime(start) if start is not None
             else min(b.labels[0] for b in frames.values()).normalize().to_pydatetime())
    driver.configure(frames, LeanObjectStore(object_store), zoo, fee_rate=fee_rate,
                     fractional=fractional, parameters=parameters, start_fixed=start is not None,
                     first=first, cash=cash)
    driver.initialize()
    if not algo.securities:
        raise ValueError(f"{type(algo).__name__}.initialize() added no symbol: call "
                         "self.add_equity(ticker) for the bars it trades")
    # LEAN's timeline follows the subscriptions: the bars of the symbols added in initialize.
    timeline = pd.DatetimeIndex(sorted(set().union(*(frames[s].labels
                                                     for s in algo.securities))))

    begin = first if start is not None else (algo.start_date or first)
    last = as_datetime(end) if end is not None else algo.end_date
    stop = len(timeline) if last is None else int(timeline.searchsorted(
        pd.Timestamp(last) + pd.Timedelta(days=1), side="left"))
    lo = int(timeline.searchsorted(pd.Timestamp(begin), side="left"))
    if lo >= stop:
        raise ValueError(f"no bars between {begin:%Y-%m-%d} and "
                         f"{(last or timeline[-1]):%Y-%m-%d}; the data runs from "
                         f"{timeline[0]:%Y-%m-%d} to {timeline[-1]:%Y-%m-%d}")
    warm = max(lo - driver.warm_up, 0)
    starting_cash = algo.portfolio.cash
    driver.start(timeline[warm].normalize().to_pydatetime() if warm < lo else begin, begin)
    rows = {name: b.labels.get_indexer(timeline) for name, b in frames.items()}
    moments = pd.DatetimeIndex(close_moments(timeline, close_time)).to_pydatetime()
    equity = []
    for i in range(warm, stop):
        label = timeline[i].to_pydatetime()
        driver.advance(moments[i])
        driver.enter_bar(label, moments[i], i < lo)
        bars = {}
        for symbol, security in algo.securities.items():
            row = rows[symbol][i]
            if row >= 0:
                bars[symbol] = frames[symbol].update(security, row)
        if bars:
            algo.on_data(Slice(label, bars))
        if i >= lo:
            equity.append(algo.portfolio.total_portfolio_value)
    driver.finish()
    object_store.sync()
    return AlgorithmBacktest(
        pd.Series(equity, index=timeline[lo:stop].rename("datetime"), name="equity"),
        driver.orders, driver.logs, driver.training, starting_cash,
        algo.portfolio.total_portfolio_value, algo)
