"""The demo's features and split: no look-ahead, labels as documented, no test-period leak."""

from __future__ import annotations

import numpy as np
import pytest

from alphazoo.datasets import Bars, load_prices, symbols
from alphazoo.example_features import FEATURES, make_features


def _prefix(bars: Bars, k: int, last_bar_scale: float = 1.0) -> Bars:
    scale = np.ones(k)
    scale[-1] = last_bar_scale
    return Bars(bars.symbol, bars.dates[:k], bars.open[:k] * scale, bars.high[:k] * scale,
                bars.low[:k] * scale, bars.close[:k] * scale, bars.volume[:k] * scale)


@pytest.mark.parametrize("symbol", symbols())
def test_features_use_no_future_bars(symbol: str) -> None:
    # Rows computed from the first k bars must equal the same rows computed from all bars:
    # a feature that peeked past its own date would change when later bars are cut off.
    bars = load_prices(symbol)
    X_all, y_all, dates_all = make_features(bars)
    for k in (30, 120, len(bars) // 2, len(bars) - 3):
        X, y, dates = make_features(_prefix(bars, k))
        assert len(X) == k - 21
        assert np.array_equal(dates, dates_all[: len(dates)])
        assert np.allclose(X, X_all[: len(X)], equal_nan=False)
        assert np.array_equal(y, y_all[: len(y)])
        # The last bar of a prefix only labels the row before it: changing that bar may
        # change the label, never a feature.
        X_moved, y_moved, _ = make_features(_prefix(bars, k, last_bar_scale=1.5))
        assert np.array_equal(X_moved, X)
        assert np.array_equal(y_moved[:-1], y[:-1]) and y_moved[-1] == 1


def test_labels_are_next_day_direction_and_features_are_finite() -> None:
    bars = load_prices("AAPL")
    X, y, dates = make_features(bars)
    assert X.shape == (len(bars) - 21, len(FEATURES)) and np.isfinite(X).all()
    index = {date: i for i, date in enumerate(bars.dates)}
    for row in (0, 100, len(y) - 1):
        t = index[dates[row]]
        assert y[row] == int(bars.close[t + 1] > bars.close[t])
        assert X[row, 0] == pytest.approx(bars.close[t] / bars.close[t - 1] - 1)
