"""Market data that ships with alphazoo, so the demo and examples run offline.

>>> from alphazoo.datasets import load_prices, symbols
>>> symbols()
['AAPL', 'COKE', 'GOOGL', 'TSLA', 'YHOO']
>>> bars = load_prices("AAPL")
>>> bars.close[:2], str(bars.dates[0])
(array([103.864, 100.938]), '2015-01-02')
"""

from __future__ import annotations

import csv
import gzip
import io
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources

import numpy as np

__all__ = ["Bars", "load_prices", "symbols"]

_FILE = "five_tickers_2015_2017.csv.gz"


@dataclass(frozen=True)
class Bars:
    """Daily bars of one symbol, oldest first, as numpy arrays."""

    symbol: str
    dates: np.ndarray  # datetime64[D]
    open: np.ndarray
    high: np.ndarray
    low: np.ndarray
    close: np.ndarray
    volume: np.ndarray

    def __len__(self) -> int:
        return len(self.dates)


@lru_cache(maxsize=1)
def _table() -> dict[str, list[list[str]]]:
    raw = resources.files("alphazoo").joinpath("data", _FILE).read_bytes()
    reader = csv.reader(io.StringIO(gzip.decompress(raw).decode("utf-8")))
    next(reader)  # header: symbol,date,open,high,low,close,volume
    by_symbol: dict[str, list[list[str]]] = {}
    for row in reader:
        by_symbol.setdefault(row[0], []).append(row[1:])
    return by_symbol


def symbols() -> list[str]:
    """The symbols in the bundled data set."""
    return sorted(_table())


def load_prices(symbol: str = "AAPL") -> Bars:
    """Daily split-adjusted bars of ``symbol`` (2015-2017) from the bundled data set."""
    table = _table()
    if symbol not in table:
        raise KeyError(f"no bundled data for {symbol!r}; available: {', '.join(sorted(table))}")
    rows = table[symbol]
    columns = list(zip(*rows))
    return Bars(
        symbol=symbol,
        dates=np.array(columns[0], dtype="datetime64[D]"),
        open=np.array(columns[1], dtype=float),
        high=np.array(columns[2], dtype=float),
        low=np.array(columns[3], dtype=float),
        close=np.array(columns[4], dtype=float),
        volume=np.array(columns[5], dtype=float),
    )
