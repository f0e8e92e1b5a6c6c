"""The LEAN documentation's scikit-learn example algorithm, on alphazoo's algorithm base.

Follows "Writing Algorithms > Machine Learning > Popular Libraries > Scikit-Learn"
(https://www.quantconnect.com/docs/v2/writing-algorithms/machine-learning/popular-libraries/scikit-learn)
and its example algorithm, with the same structure and names: ``initialize`` subscribes to one
equity, reuses a model left in the object store by an earlier run, trains at once
(``self.train(self.my_training_method)``) and on a schedule; ``get_features_and_labels`` turns
the daily percent changes of open, high, low, close and volume over the last ``n_steps`` = 5
days into one feature row; ``on_data`` predicts from the latest rows and trades;
``on_end_of_algorithm`` stores the model so a later run can read it.

Where it differs from that page, as issue 6 asks: the model is the zoo's ``random_forest``
classifier of the next day's direction (the page grid-searches an SVR on the next day's
return), retrained at each month start (the page: every Sunday), and ``on_data`` goes long
when the predicted probability of an up day exceeds a threshold and is flat otherwise (the
page goes long or short on the sign of the predicted return). The model is saved with
``Zoo.save`` (a safe skops bundle) rather than joblib.

Parameters (``run_backtest(..., parameters={...})``, read with ``get_parameter``):
``symbol`` ("AAPL"), ``threshold`` (0.5), ``training_length`` (252 bars), ``n_estimators`` (50),
``model_key`` ("lean_sklearn/random_forest").

Run it on the bundled data: ``python -m alphazoo.contrib.examples.lean_sklearn``.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from alphazoo.contrib.algorithm import (
    Algorithm,
    AlgorithmBacktest,
    Resolution,
    Slice,
    run_backtest,
)

__all__ = ["LeanSklearnAlgorithm", "run", "main"]


class LeanSklearnAlgorithm(Algorithm):
    """Monthly-retrained random forest on 5-day OHLCV returns; long above a probability."""

    n_steps = 5

    def initialize(self) -> None:
        self.set_start_date(2016, 1, 1)
        self.set_end_date(2017, 12, 31)
        self.set_cash(100_000)
        # Request the equity's data for model training, prediction and trading.
        self._symbol = self.add_equity(self.get_parameter("symbol", "AAPL"),
                                       Resolution.DAILY).symbol
        self.threshold = self.get_parameter("threshold", 0.5)
        self.training_length = self.get_parameter("training_length", 252)
        self.n_estimators = self.get_parameter("n_estimators", 50)
        self.model_key = self.get_parameter("model_key", "lean_sklearn/random_forest")

        # Retrieve a model an earlier run stored, to use until the first training ends.
        self.model: Any = None
        self.probability_up = float("nan")  # the latest prediction, for inspection
        if self.object_store.contains_key(self.model_key):
            self.model = self.zoo.load(self.model_key)

        # Train the model now, to predict from the first bar on ...
        self.train(self.my_training_method)
        # ... and recalibrate it at each month start, on the market data seen so far.
        self.train(self.date_rules.month_start(), self.time_rules.at(8, 0),
                   self.my_training_method)

    def get_features_and_labels(self, history: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
        """Rows of the last ``n_steps`` daily percent changes of OHLCV, flattened; labels: 1
        when the next day's close is higher, else 0 (the last row has no label: NaN)."""
        daily_pct_change = history.pct_change().replace([np.inf, -np.inf], np.nan).dropna()
        values = daily_pct_change.to_numpy()
        close = daily_pct_change["close"].to_numpy()
        features, labels = [], []
        for i in range(len(values) - self.n_steps + 1):
            features.append(values[i:i + self.n_steps].flatten())
            later = i + self.n_steps
            labels.append(float(close[later] > 0) if later < len(close) else np.nan)
        return np.array(features), np.array(labels)

    def my_training_method(self) -> Any:
        """Fit a fresh random forest on the last ``training_length`` bars (those closed by now)."""
        features, labels = self.get_features_and_labels(
            self.history(self._symbol, self.training_length))
        known = ~np.isnan(labels)
        if known.sum() < 2 * self.n_steps:
            self.debug(f"{self.time}: not enough history to train yet")
            return None
        model = self.zoo.build("random_forest", n_estimators=self.n_estimators, max_depth=4)
        self.model = self.zoo.train(model, features[known], labels[known].astype(int))
        return self.model  # the trainer serves it as the next version

    def on_data(self, slice: Slice) -> None:
        if self.model is None or self._symbol not in slice.bars:
            return
        # Get a prediction from the latest features (the bar that just closed is the last).
        features, _ = self.get_features_and_labels(
            self.history(self._symbol, self.n_steps + 1))
        classes = list(self.model.classes_)
        self.probability_up = (float(self.model.predict_proba(features[-1:])[0, classes.index(1)])
                               if 1 in classes else 0.0)
        # Go long when an up day is likely enough, else be flat.
        if self.probability_up > self.threshold:
            if not self.portfolio[self._symbol].invested:
                self.set_holdings(self._symbol, 1)
        elif self.portfolio[self._symbol].invested:
            self.liquidate(self._symbol)

    def on_end_of_algorithm(self) -> None:
        # Store the model in the object store, so another run can start from it.
        if self.model is not None:
            self.zoo.save(self.model, self.model_key,
                          metadata={"trained_through": str(self.time), "symbol": self._symbol})


def run(symbol: str = "AAPL", *, object_store: Any = None, **parameters: Any) -> AlgorithmBacktest:
    """Backtest :class:`LeanSklearnAlgorithm` on the bundled daily bars of ``symbol``."""
    from alphazoo.datasets import load_prices

    return run_backtest(LeanSklearnAlgorithm, load_prices(symbol), object_store=object_store,
                        parameters={"symbol": symbol, **parameters})


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m alphazoo.contrib.examples.lean_sklearn [--symbol AAPL] [--threshold 0.5]
    [--store PATH]``: run the example and print its statistics."""
    from alphazoo.store import ObjectStore

    parser = argparse.ArgumentParser(prog="python -m alphazoo.contrib.examples.lean_sklearn",
                                     description="Run the LEAN scikit-learn example.")
    parser.add_argument("--symbol", default="AAPL", help="a bundled symbol (default AAPL)")
    parser.add_argument("--threshold", type=float, default=0.5,
                        help="go long above this up-probability (default 0.5)")
    parser.add_argument("--n-estimators", type=int, default=50,
                        help="trees in each monthly random forest (default 50)")
    parser.add_argument("--store", default=None,
                        help="object store folder or URL (default $ALPHAZOO_STORE or ./storage)")
    args = parser.parse_args(argv)
    store = ObjectStore(args.store)
    result = run(args.symbol, object_store=store, threshold=args.threshold,
                 n_estimators=args.n_estimators)
    print(f"LeanSklearnAlgorithm on {args.symbol}, {result.equity.index[0]:%Y-%m-%d} to "
          f"{result.equity.index[-1]:%Y-%m-%d}: {len(result.training)} trainings")
    for name, value in result.statistics().items():
        print(f"  {name:<22} {value:,.4f}")
    print(f"model saved in {store.url} under {result.algorithm.model_key!r}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
