"""Array features for the quick examples: numpy only, no pandas.

``make_features`` turns one symbol's bundled bars into ``X, y, dates`` for scikit-learn style
code (the README's first examples). The zoo's full feature set, on pandas and for panels, is
:mod:`alphazoo.contrib.features`; ``alphazoo demo`` itself is :mod:`alphazoo.contrib.demo`.
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
