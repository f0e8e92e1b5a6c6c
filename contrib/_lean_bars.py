"""The daily bars a QC-style backtest reads (:mod:`alphazoo.contrib.algorithm`).

:func:`symbol_frames` turns what ``run_backtest`` accepts (a panel, ``{symbol: frame}``,
:class:`alphazoo.datasets.Bars`) into one clean frame per symbol; :class:`SymbolBars` answers
which of a symbol's bars have closed at a moment of the simulated clock.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from datetime import date, datetime, time
from typing import Any

import numpy as np
import pandas as pd

from ._lean_types import Security, TradeBar

__all__ = ["SymbolBars", "close_moments", "symbol_frames", "as_datetime"]

_COLUMNS = ("open", "high", "low", "close", "volume")


class SymbolBars:
    """One symbol's bars (``frame``, on ``labels``) and the moments they close (``closes``)."""

    def __init__(self, frame: pd.DataFrame, close_time: time) -> None:
        self.frame, self.labels = frame, frame.index
        self.closes = close_moments(frame.index, close_time)
        self._values = [frame[c].to_numpy(dtype=float) if c in frame else
                        np.full(len(frame), math.nan) for c in _COLUMNS]

    def visible(self, moment: datetime) -> int:
        """How many bars have closed by ``moment``."""
        return int(np.searchsorted(self.closes, np.datetime64(moment, "ns"), side="right"))

    def update(self, security: Security, row: int) -> TradeBar:
        """Make bar ``row`` the security's last bar and price; returns that bar."""
        o, h, low, c, v = (float(column[row]) for column in self._values)
        security.bar = TradeBar(security.symbol, self.labels[row].to_pydatetime(), o, h, low, c, v)
        security.price = c
        return security.bar


def close_moments(index: pd.DatetimeIndex, close_time: time) -> np.ndarray:
    """When each bar closes: a midnight label at ``close_time`` that day, a label with a time
    of day at that time."""
    offset = pd.Timedelta(hours=close_time.hour, minutes=close_time.minute,
                          seconds=close_time.second)
    return np.where(index == index.normalize(), index + offset, index).astype("datetime64[ns]")


def symbol_frames(data: Any) -> dict[str, pd.DataFrame]:
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


def as_datetime(year: int | date | str, month: int = 1, day: int = 1) -> datetime:
    """A naive datetime from ``(year, month, day)`` or a date, string or Timestamp."""
    if isinstance(year, (date, str, pd.Timestamp)):
        return pd.Timestamp(year).to_pydatetime().replace(tzinfo=None)
    return datetime(year, month, day)
