"""The features the README's examples use: one symbol's bars as numpy arrays, no pandas.

``make_features`` turns one symbol's bundled bars into ``X, y, dates`` for scikit-learn style
code (the README's first examples), with the core install only (numpy). The zoo's feature
set, on pandas and for panels, is :mod:`alphazoo.contrib.features`; ``alphazoo demo`` uses
that one (:mod:`alphazoo.contrib.demo`), not this module. The two differ on purpose and do not
mix: here ``ma_5_ratio``/``ma_20_ratio`` and ``volume_ratio`` (there ``ma_ratio_5``/
``ma_ratio_20``, with rsi, macd and Bollinger instead of a volume ratio), and the ``vol_*``
columns are population standard deviations (ddof=0; there ddof=1). Models saved from these
features expect exactly these columns: keep them stable.

Formerly ``alphazoo.demo``, which still imports with a DeprecationWarning for one release.
"""

from __future__ import annotations

from typing import Callable

import numpy as np

from .datasets import Bars

__all__ = ["make_features", "FEATURES"]

FEATURES = [
    "ret_1d", "ret_5d", "ret_20d", "vol_5d", "vol_20d", "ma_5_ratio", "ma_20_ratio", "volume_ratio",
]


def make_features(bars: Bars) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Features at each close and the next day's direction (1 up, 0 not): ``X, y, dates``.

    Row ``t`` uses bars up to ``t`` only; its label is close ``t+1`` > close ``t``; ``dates``
    are the feature dates (the label is known one bar later). The first 20 bars (warm-up) and
    the last bar (no next day) have no row.
    """
    X, y, dates, _ = _features_and_label_dates(bars)
    return X, y, dates


def _features_and_label_dates(bars: Bars) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    close, volume = bars.close, bars.volume
    n = len(close)
    t = np.arange(20, n - 1)
    returns = np.diff(close, prepend=np.nan) / np.concatenate(([np.nan], close[:-1]))

    def window(values: np.ndarray, width: int, fn: Callable[..., np.ndarray]) -> np.ndarray:
        stacked = np.stack([values[t - k] for k in range(width)])
        return fn(stacked, axis=0)

    X = np.column_stack([
        close[t] / close[t - 1] - 1,
        close[t] / close[t - 5] - 1,
        close[t] / close[t - 20] - 1,
        window(returns, 5, np.std),
        window(returns, 20, np.std),
        close[t] / window(close, 5, np.mean) - 1,
        close[t] / window(close, 20, np.mean) - 1,
        volume[t] / window(volume, 20, np.mean) - 1,
    ])
    y = (close[t + 1] > close[t]).astype(int)
    return X, y, bars.dates[t], bars.dates[t + 1]
