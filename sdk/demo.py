"""``alphazoo demo``: the main job, end to end, on data that ships with the package.

Builds features from five symbols' daily bars, trains the zoo's ``random_forest`` on 2015-2016,
saves it in every scikit-learn format (the pickle one signed), loads each back from the store
and checks that every reloaded model predicts exactly what the in-memory model predicts on 2017.
:func:`run_demo` returns the figures; the CLI prints them.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from typing import Callable

import numpy as np

from .datasets import Bars, load_prices, symbols
from .host import Zoo
from .store import ObjectStore

__all__ = ["DemoRow", "DemoResult", "make_features", "run_demo", "FEATURES"]

FEATURES = [
    "ret_1d", "ret_5d", "ret_20d", "vol_5d", "vol_20d", "ma_5_ratio", "ma_20_ratio", "volume_ratio",
]
_DEMO_SIGNING_KEY = "alphazoo-demo-key"  # a demo value; real keys come from a secret store


@dataclass
class DemoRow:
    """One format's round trip."""

    format: str
    bytes: int
    save_ms: float
    load_ms: float
    loaded_as: str
    agree: int
    rows: int
    max_proba_diff: float
    accuracy: float
    how_trusted: str


@dataclass
class DemoResult:
    """Everything the demo measured."""

    model: str
    train_rows: int
    test_rows: int
    symbols: list[str]
    rows: list[DemoRow]
    #: Accuracy of always predicting "up" on the test rows: the baseline to beat.
    always_up_accuracy: float = 0.0

    @property
    def all_agree(self) -> bool:
        return all(row.agree == row.rows for row in self.rows)


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


def run_demo(
    store: ObjectStore | None = None,
    *,
    model: str = "random_forest",
    progress: Callable[[str], None] = lambda message: None,
) -> DemoResult:
    """Train, save in every format, reload and compare; returns the figures."""
    zoo = Zoo(store)
    names = symbols()
    progress(f"building features for {', '.join(names)}")
    parts = [_features_and_label_dates(load_prices(symbol)) for symbol in names]
    X = np.concatenate([p[0] for p in parts])
    y = np.concatenate([p[1] for p in parts])
    label_dates = np.concatenate([p[3] for p in parts])
    # Split on the day a label becomes known: a 2016 row labelled by a 2017 close would let
    # the test period leak into training.
    train = label_dates < np.datetime64("2017-01-01")
    X_train, y_train, X_test, y_test = X[train], y[train], X[~train], y[~train]

    progress(f"training {model} on {len(X_train):,} rows (2015-2016)")
    fitted = zoo.train(zoo.build(model), X_train, y_train)
    native_labels = fitted.predict(X_test)
    native_proba = fitted.predict_proba(X_test)

    formats = [spec.name for spec in zoo.formats() if spec.adapter == "sklearn"]
    progress("warming up: first use of each format imports its library")
    # Untimed saves and loads into memory, so the table times alphazoo and the formats, not
    # the one-off import of skops or skl2onnx.
    scratch = Zoo(ObjectStore(f"memory://alphazoo-demo-warmup-{uuid.uuid4().hex}"))
    for fmt in formats:
        scratch.save(fitted, f"warmup/{fmt}", format=fmt, sample=X_train[:256])
        scratch.load(f"warmup/{fmt}", trusted=True)
    scratch.store.clear()

    rows = []
    for fmt in formats:
        key = f"demo/{model}-{fmt}"
        sign = _DEMO_SIGNING_KEY if fmt == "pickle" else None
        progress(f"saving {key} ({fmt}) and loading it back")
        started = time.perf_counter()
        manifest = zoo.save(fitted, key, format=fmt, sign_key=sign)
        saved = time.perf_counter()
        loaded = zoo.load(key, sign_key=sign)
        done = time.perf_counter()
        labels = np.asarray(loaded.predict(X_test))
        proba = np.asarray(loaded.predict_proba(X_test))
        rows.append(DemoRow(
            format=fmt,
            bytes=zoo.store.size(key),
            save_ms=(saved - started) * 1e3,
            load_ms=(done - saved) * 1e3,
            loaded_as=type(loaded).__name__,
            agree=int((labels == native_labels).sum()),
            rows=len(labels),
            max_proba_diff=float(np.abs(proba - native_proba).max()),
            accuracy=float((labels == y_test).mean()),
            how_trusted="HMAC signature" if manifest["signature"] else "safe format",
        ))
    always_up = float((y_test == 1).mean())
    return DemoResult(model, len(X_train), len(X_test), names, rows, always_up)
