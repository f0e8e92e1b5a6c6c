"""Daily-bar features and labels for the zoo's models, computed without look-ahead.

The feature set is the one the LEAN documentation's ML examples use, on adjusted daily closes:

==============  =============================================================================
``ret_1d``      ``close[t] / close[t-1] - 1``; also ``ret_5d`` and ``ret_20d`` over 5 and 20 bars
``vol_5d``      sample standard deviation (ddof=1) of the last 5 ``ret_1d``; also ``vol_20d``
``ma_ratio_5``  ``close[t] / mean(close[t-4..t]) - 1``; also ``ma_ratio_20``
``rsi_14``      Wilder's RSI(14) scaled to 0..1: ``avg_gain / (avg_gain + avg_loss)``; the
                averages are seeded with the simple mean of the first 14 changes, then
                ``avg = (13 * avg + change) / 14``; 0.5 while the price has not moved since the
                first bar (the averages decay but never forget a move: a flat stretch after a
                fall stays at 0)
``macd``        ``(EMA12(close) - EMA26(close)) / close``; EMAs with ``alpha = 2 / (span + 1)``
                seeded at the first bar. Divided by close so it is comparable across symbols
                and decades. The signal line (EMA9 of MACD) is left out: the LEAN set names
                one MACD value, and the signal line is a smoothed copy of the same information.
``bollinger``   position of close in the 20-bar Bollinger band, ``(close - lower) / (upper -
                lower)`` with ``mid +- 2 * std`` (population std, ddof=0, as Bollinger defines
                it): 0 at the lower band, 1 at the upper, outside 0..1 beyond the bands; 0.5
                when the 20 closes are all equal (a band of zero width)
==============  =============================================================================

Labels: ``label_return = close[t+1] / close[t] - 1`` and ``label_direction = 1.0`` if
``close[t+1] > close[t]`` else ``0.0`` -- both NaN on an instrument's last bar.

Every function returns a frame on the ``(datetime, instrument)`` MultiIndex, also for one
symbol, so predictions, labels and strategies all line up on one index. Warm-up rows (too little
history for a window) are NaN, not dropped: the caller decides. Each value at date ``t`` is a
function of bars up to ``t`` only (tested on real data); in a panel each instrument is computed
on its own bars, so no window crosses from one instrument into another.

**Bars or trading days.** By default a window counts an instrument's *bars*: ``ret_5d`` is the
return over the last 5 bars it has, whatever the dates. With ``calendar="XNYS"`` (any market
name of :mod:`alphazoo.training.calendars`; needs ``alphazoo[calendars]``) windows count the
exchange's *trading days* instead, as qlib's calendar-based expressions do: a session with no
bar (a gap in the data, such as the bundled AAPL's 2017-08-07) is an unknown close, not a
skipped day. A return or rolling window that would reach it is NaN; ``rsi_14`` and ``macd``,
recursive averages, decay across it by the session count and take no change over it; the label
before it is NaN. Without gaps both ways give the same numbers, bit for bit. A bar dated on a
day the exchange was closed is an error in calendar mode.

Input is validated: a missing ``close`` column, unsorted or duplicate dates, and missing or
non-positive prices raise a ``ValueError`` that names the column, date and instrument.

>>> from alphazoo.contrib.features import load_panel, compute_features, compute_labels
>>> panel = load_panel()                                   # bundled 5 symbols, 2015-2017
>>> X, y = compute_features(panel), compute_labels(panel)
>>> list(X.columns) == FEATURES and X.index.names == ["datetime", "instrument"]
True
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

__all__ = [
    "FEATURES",
    "LABELS",
    "OHLCV",
    "bars_frame",
    "compute_features",
    "compute_labels",
    "load_panel",
    "read_bars_csv",
    "split_panel",
    "to_panel",
]

FEATURES: list[str] = [
    "ret_1d", "ret_5d", "ret_20d", "vol_5d", "vol_20d",
    "ma_ratio_5", "ma_ratio_20", "rsi_14", "macd", "bollinger",
]
"""Feature column names, in the order :func:`compute_features` returns them."""

LABELS: list[str] = ["label_direction", "label_return"]
"""Label column names, in the order :func:`compute_labels` returns them."""

OHLCV: list[str] = ["open", "high", "low", "close", "volume"]
"""Columns of a bars frame; only ``close`` is needed for features and labels."""

INDEX_NAMES = ["datetime", "instrument"]
_PRICES = ("open", "high", "low", "close")
_DEFAULT_INSTRUMENT = "symbol"
_RSI_PERIOD = 14
_MACD_FAST, _MACD_SLOW = 12, 26
_BAND_WINDOW, _BAND_WIDTH = 20, 2.0

BarsLike = Any  # alphazoo.datasets.Bars, a one-symbol frame, a panel, or {symbol: frame}


# --------------------------------------------------------------------------------- conversion

def bars_frame(bars: Any) -> pd.DataFrame:
    """One-symbol bars frame from :class:`alphazoo.datasets.Bars` (``attrs["symbol"]`` set)."""
    frame = pd.DataFrame(
        {name: np.asarray(getattr(bars, name), dtype=float) for name in OHLCV},
        index=pd.DatetimeIndex(np.asarray(bars.dates, dtype="datetime64[ns]"), name="datetime"),
    )
    frame.attrs["symbol"] = str(bars.symbol)
    _check_bars(frame, str(bars.symbol))
    return frame


def to_panel(data: Mapping[str, pd.DataFrame] | pd.DataFrame,
             instrument: str | None = None) -> pd.DataFrame:
    """A ``(datetime, instrument)`` panel, sorted, from ``{symbol: one-symbol frame}``.

    A one-symbol frame is accepted too (named by ``instrument``, else its ``attrs["symbol"]``,
    else ``"symbol"``), and a panel is validated and returned as a copy. A panel whose levels
    are named ``(instrument, datetime)`` is reordered.
    """
    if isinstance(data, Mapping):
        if not data:
            raise ValueError("to_panel: no symbols given")
        parts = []
        for symbol, frame in data.items():
            frame = _as_bars_frame(frame, str(symbol))
            parts.append(frame.set_index(
                pd.Index([str(symbol)] * len(frame), name="instrument"), append=True))
        panel = pd.concat(parts).sort_index()
        panel.index = panel.index.set_names(INDEX_NAMES)
        _check_bars(panel, None)
        return panel
    if not isinstance(data, pd.DataFrame):
        raise TypeError(f"expected a DataFrame or a mapping of symbol -> DataFrame, "
                        f"got {type(data).__name__}")
    if isinstance(data.index, pd.MultiIndex):
        return _checked_panel(data)
    return to_panel({_name_of(data, instrument): data})


def split_panel(panel: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """The inverse of :func:`to_panel`: ``{symbol: one-symbol frame}``, each with its own dates."""
    panel = _checked_panel(panel)
    out: dict[str, pd.DataFrame] = {}
    for symbol, part in panel.groupby(level="instrument", sort=True):
        frame = part.droplevel("instrument")
        frame.attrs["symbol"] = str(symbol)
        out[str(symbol)] = frame
    return out


def load_panel(symbols: list[str] | None = None) -> pd.DataFrame:
    """The bundled daily bars (:mod:`alphazoo.datasets`) of ``symbols`` (default: all) as a
    panel. Symbols have different histories (YHOO ends 2017-06-16), so the panel is unbalanced.
    """
    from alphazoo import datasets

    names = datasets.symbols() if symbols is None else list(symbols)
    return to_panel({name: bars_frame(datasets.load_prices(name)) for name in names})


def read_bars_csv(path: str | Path, symbol: str | None = None) -> pd.DataFrame:
    """Daily bars from a CSV file, on adjusted prices, oldest first.

    Two layouts are recognised from the header:

    * one symbol, ``Date,Open,High,Low,Close,Adj Close,Volume`` (Yahoo/backtrader): open, high,
      low and close are all scaled by ``Adj Close / Close`` so splits and dividends do not show
      up as returns; volume is left as traded. Returns a one-symbol frame whose
      ``attrs["symbol"]`` is ``symbol`` or the file name up to its first ``-`` in upper case
      (``nvda-1999-2014.csv`` -> ``NVDA``). Without ``Adj Close`` the prices are used as given.
    * long format with a ``Stock``/``Symbol``/``Instrument`` column (the five-tickers file:
      unnamed first index column, newest first, ``AdjOpen .. AdjClose, AdjVolume``): the
      adjusted columns are used where present. Returns a panel.

    Rows are sorted by date; duplicate dates, missing or non-positive prices raise ValueError.
    """
    path = Path(path)
    raw = pd.read_csv(path)
    raw = raw.loc[:, [c for c in raw.columns if not str(c).startswith("Unnamed")]]
    by_lower = {str(c).strip().lower().replace(" ", "").replace("_", ""): c for c in raw.columns}
    date_col = by_lower.get("date", by_lower.get("datetime"))
    if date_col is None:
        raise ValueError(f"{path}: no Date column in header {list(raw.columns)}")

    def column(name: str, adjusted: bool = True) -> pd.Series:
        key = ("adj" + name) if adjusted and ("adj" + name) in by_lower else name
        if key not in by_lower:
            raise ValueError(f"{path}: missing column {name!r} (header: {list(raw.columns)})")
        return pd.to_numeric(raw[by_lower[key]], errors="raise").astype(float)

    frame = pd.DataFrame({name: column(name) for name in OHLCV})
    if "adjclose" in by_lower and "adjopen" not in by_lower:  # Yahoo: one adjusted column
        factor = column("adjclose") / column("close", adjusted=False)
        for name in _PRICES:
            frame[name] = column(name, adjusted=False) * factor
        frame["volume"] = column("volume", adjusted=False)
    frame.index = pd.DatetimeIndex(pd.to_datetime(raw[date_col]), name="datetime").as_unit("ns")

    symbol_col = next((by_lower[k] for k in ("stock", "symbol", "instrument") if k in by_lower),
                      None)
    if symbol_col is not None:
        frame = frame.set_index(pd.Index(raw[symbol_col].astype(str).to_numpy(),
                                         name="instrument"), append=True)
        _check_unique(frame, str(path))
        return _checked_panel(frame.sort_index())
    _check_unique(frame, str(path))
    frame = frame.sort_index(kind="stable")
    frame.attrs["symbol"] = symbol or path.stem.split("-")[0].upper()
    _check_bars(frame, frame.attrs["symbol"])
    return frame


# ------------------------------------------------------------------------------ computations

def compute_features(bars: BarsLike, instrument: str | None = None, *,
                     calendar: str | None = None) -> pd.DataFrame:
    """The :data:`FEATURES` of ``bars`` on the ``(datetime, instrument)`` MultiIndex.

    ``bars`` is a one-symbol frame, a panel, ``{symbol: frame}`` or a
    :class:`~alphazoo.datasets.Bars`; the result has one row per input bar, in the panel's
    order. A one-symbol frame (or ``Bars``) is named ``instrument``, else its
    ``attrs["symbol"]`` (``Bars.symbol``), else ``"symbol"``; a panel or mapping keeps its own
    names and ``instrument`` is not used.

    Warm-up rows are NaN: ``ret_20d``/``vol_20d`` need 20 earlier bars, ``ma_ratio_20``/
    ``bollinger`` 19, ``rsi_14`` 14, ``macd`` 25 (the slow EMA's span - 1). The EMAs of
    ``macd`` start at the first bar given, so its early values depend on where the history
    starts (never on later bars). ``calendar`` (a market such as ``"XNYS"``) counts windows in
    that exchange's trading days rather than in bars: see the module docstring.
    See the module docstring for each formula.
    """
    return _per_instrument(_as_panel(bars, instrument), _features_of, FEATURES, calendar)


def compute_labels(bars: BarsLike, instrument: str | None = None, *,
                   calendar: str | None = None) -> pd.DataFrame:
    """The :data:`LABELS` (next-bar direction and return) on the same index as
    :func:`compute_features`. NaN on each instrument's last bar; in an unbalanced panel "next"
    is the instrument's own next bar -- or, with ``calendar``, the exchange's next trading day
    (NaN when the instrument has no bar then)."""
    return _per_instrument(_as_panel(bars, instrument), _labels_of, LABELS, calendar)


def _features_of(close: np.ndarray) -> dict[str, np.ndarray]:
    ret_1d = close / _shift(close, 1) - 1.0
    returns, prices = pd.Series(ret_1d), pd.Series(close)
    return {
        "ret_1d": ret_1d,
        "ret_5d": close / _shift(close, 5) - 1.0,
        "ret_20d": close / _shift(close, 20) - 1.0,
        "vol_5d": returns.rolling(5, min_periods=5).std(ddof=1).to_numpy(),
        "vol_20d": returns.rolling(20, min_periods=20).std(ddof=1).to_numpy(),
        "ma_ratio_5": close / prices.rolling(5, min_periods=5).mean().to_numpy() - 1.0,
        "ma_ratio_20": close / prices.rolling(20, min_periods=20).mean().to_numpy() - 1.0,
        "rsi_14": _rsi(close, _RSI_PERIOD),
        "macd": _macd(close),
        "bollinger": _bollinger(close),
    }


def _labels_of(close: np.ndarray) -> dict[str, np.ndarray]:
    following = _shift(close, -1)
    direction = np.where(np.isnan(following), np.nan, (following > close).astype(float))
    return {"label_direction": direction, "label_return": following / close - 1.0}


def _shift(values: np.ndarray, periods: int) -> np.ndarray:
    out = np.full_like(values, np.nan)
    if periods > 0:
        out[periods:] = values[:-periods]
    elif periods < 0:
        out[:periods] = values[-periods:]
    return out


def _wilder_average(values: np.ndarray, period: int) -> np.ndarray:
    # Wilder's smoothing is an EMA with alpha = 1/period seeded by the plain mean of the first
    # `period` values (values[0] is the NaN of a difference); pandas' adjust=False EMA starts
    # at the first non-NaN input, so the seed is planted there and everything before blanked.
    seeded = np.full_like(values, np.nan)
    seeded[period + 1:] = values[period + 1:]
    if len(values) > period:
        seed = values[1:period + 1]
        # A gap inside the first window (calendar mode) seeds with the changes that are known.
        seeded[period] = seed.mean() if not np.isnan(seed).any() else np.nanmean(seed)
    return pd.Series(seeded).ewm(alpha=1.0 / period, adjust=False).mean().to_numpy()


def _rsi(close: np.ndarray, period: int) -> np.ndarray:
    change = close - _shift(close, 1)
    # An unknown change (around a session without a bar) stays NaN: the averages then decay
    # over it instead of reading it as "no move".
    unknown = np.isnan(change)
    gain = _wilder_average(np.where(unknown, np.nan, np.where(change > 0, change, 0.0)), period)
    loss = _wilder_average(np.where(unknown, np.nan, np.where(change < 0, -change, 0.0)), period)
    total = gain + loss
    with np.errstate(invalid="ignore", divide="ignore"):
        rsi = gain / total
    return np.where(total == 0.0, 0.5, rsi)


def _macd(close: np.ndarray) -> np.ndarray:
    prices = pd.Series(close)
    fast = prices.ewm(span=_MACD_FAST, adjust=False).mean().to_numpy()
    slow = prices.ewm(span=_MACD_SLOW, adjust=False).mean().to_numpy()
    macd = (fast - slow) / close
    macd[:_MACD_SLOW - 1] = np.nan
    return macd


def _bollinger(close: np.ndarray) -> np.ndarray:
    window = pd.Series(close).rolling(_BAND_WINDOW, min_periods=_BAND_WINDOW)
    mid, std = window.mean().to_numpy(), window.std(ddof=0).to_numpy()
    width = 2.0 * _BAND_WIDTH * std
    # A flat window has zero width; rolling sums leave ~1e-16 relative noise, not exact zeros.
    flat = width <= 1e-12 * np.abs(mid)
    with np.errstate(invalid="ignore", divide="ignore"):
        position = (close - (mid - _BAND_WIDTH * std)) / width
    return np.where(flat, 0.5, position)


def _per_instrument(panel: pd.DataFrame, compute: Any, columns: list[str],
                    calendar: str | None = None) -> pd.DataFrame:
    close = panel["close"].to_numpy(dtype=float)
    out = np.full((len(panel), len(columns)), np.nan)
    instruments = panel.index.get_level_values("instrument")
    dates = pd.DatetimeIndex(panel.index.get_level_values("datetime"))
    codes, _ = pd.factorize(instruments)
    sessions = None if calendar is None else _market_sessions(calendar)
    # The panel is sorted by (datetime, instrument), so a stable sort by instrument lists each
    # instrument's rows in date order; every computation sees one instrument's bars only.
    order = np.argsort(codes, kind="stable")
    for rows in np.split(order, np.flatnonzero(np.diff(codes[order])) + 1):
        if sessions is None:
            values = compute(close[rows])
            out[rows] = np.column_stack([values[name] for name in columns])
            continue
        # On the exchange's sessions from the first bar to the last, a missing bar a NaN.
        days = dates[rows].normalize()
        grid = pd.DatetimeIndex(sessions(days[0].date(), days[-1].date()))
        at = grid.get_indexer(days)
        if (at < 0).any():
            bad = int(np.argmax(at < 0))
            raise ValueError(f"{instruments[rows[bad]]}: a bar on {_at(days[bad])}, which is not "
                             f"a trading day of the {calendar} calendar")
        full = np.full(len(grid), np.nan)
        full[at] = close[rows]
        values = compute(full)
        out[rows] = np.column_stack([values[name][at] for name in columns])
    return pd.DataFrame(out, index=panel.index, columns=list(columns))


def _market_sessions(market: str) -> Any:
    """``sessions(first, last)``: the market's trading days between two dates, inclusive."""
    from alphazoo.training.calendars import market_calendar

    calendar = market_calendar(market)
    return lambda lo, hi: pd.DatetimeIndex(calendar.sessions(lo, hi)).as_unit("ns")


# -------------------------------------------------------------------------------- validation

def _name_of(frame: pd.DataFrame, instrument: str | None) -> str:
    return str(instrument or frame.attrs.get("symbol") or _DEFAULT_INSTRUMENT)


def _as_panel(bars: BarsLike, instrument: str | None) -> pd.DataFrame:
    if not isinstance(bars, (pd.DataFrame, Mapping)) and hasattr(bars, "dates"):
        frame = bars_frame(bars)
        return to_panel({instrument or frame.attrs["symbol"]: frame})
    if isinstance(bars, pd.DataFrame) and not isinstance(bars.index, pd.MultiIndex):
        return to_panel({_name_of(bars, instrument): bars})
    return to_panel(bars)  # a panel or mapping names its instruments: `instrument` unused


def _as_bars_frame(frame: Any, symbol: str) -> pd.DataFrame:
    if not isinstance(frame, pd.DataFrame):
        raise TypeError(f"{symbol}: expected a DataFrame of bars, got {type(frame).__name__}")
    if not isinstance(frame.index, pd.DatetimeIndex):
        raise ValueError(f"{symbol}: bars need a DatetimeIndex of dates, got "
                         f"{type(frame.index).__name__}")
    _check_bars(frame, symbol)
    frame = frame.copy()
    frame.index = frame.index.rename("datetime")
    return frame


def _checked_panel(panel: pd.DataFrame) -> pd.DataFrame:
    index = panel.index
    if not isinstance(index, pd.MultiIndex) or index.nlevels != 2:
        raise ValueError("a panel needs a 2-level (datetime, instrument) MultiIndex")
    if list(index.names) == ["instrument", "datetime"]:
        panel = panel.swaplevel().sort_index()
        index = panel.index
    if not isinstance(index.levels[0], pd.DatetimeIndex):
        raise ValueError(f"a panel's first index level must hold dates (datetime), got "
                         f"{index.levels[0].dtype} named {index.names[0]!r}")
    panel = panel.copy()
    panel.index = panel.index.set_names(INDEX_NAMES)
    _check_bars(panel, None)
    return panel


def _check_unique(frame: pd.DataFrame, where: str) -> None:
    duplicated = frame.index.duplicated()
    if duplicated.any():
        raise ValueError(f"{where}: duplicate date {_at(frame.index[duplicated][0])}: each "
                         f"(date, instrument) must appear once")


def _check_bars(frame: pd.DataFrame, symbol: str | None) -> None:
    """Raise ValueError naming the problem: columns, date order/uniqueness, prices."""
    where = f"{symbol}: " if symbol else "panel: "
    if "close" not in frame.columns:
        raise ValueError(f"{where}missing column 'close' (bars columns are lower case "
                         f"{', '.join(OHLCV)}; got {list(frame.columns)})")
    _check_unique(frame, where.rstrip(": "))
    if not frame.index.is_monotonic_increasing:
        position = int(np.argmax(_out_of_order(frame.index)))
        raise ValueError(f"{where}dates are not sorted ascending: "
                         f"{_at(frame.index[position + 1])} comes after "
                         f"{_at(frame.index[position])} (sort_index() first)")
    for name in _PRICES:
        if name not in frame.columns:
            continue
        try:
            values = frame[name].to_numpy(dtype=float)
        except (TypeError, ValueError):
            raise ValueError(f"{where}column {name!r} is not numeric "
                             f"({frame[name].dtype})") from None
        bad = ~np.isfinite(values) | (values <= 0)
        if bad.any():
            at = int(np.argmax(bad))
            value = values[at]
            what = ("missing" if np.isnan(value) else "infinite" if np.isinf(value)
                    else "non-positive")
            raise ValueError(f"{where}{what} {name} price {value} at {_at(frame.index[at])}; "
                             f"prices must be finite and > 0")


def _at(entry: Any) -> str:
    """'2017-01-03' for a date, 'TSLA on 2017-01-03' for a panel's (date, instrument)."""
    if isinstance(entry, tuple):
        return f"{entry[1]} on {_at(entry[0])}"
    stamp = pd.Timestamp(entry)
    return str(stamp.date()) if stamp == stamp.normalize() else str(stamp)


def _out_of_order(index: pd.Index) -> np.ndarray:
    if isinstance(index, pd.MultiIndex):
        keys = list(zip(index.get_level_values(0), index.get_level_values(1)))
        return np.array([a > b for a, b in zip(keys[:-1], keys[1:])])
    values = index.to_numpy()
    return values[:-1] > values[1:]
