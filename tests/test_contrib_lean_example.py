"""The LEAN scikit-learn example runs end to end on the bundled data: monthly retraining,
trading on the predicted up-probability, and its model stored for a later run."""

from __future__ import annotations

from datetime import datetime

import numpy as np
import pandas as pd
import pytest

from alphazoo import ObjectStore, Zoo
from alphazoo.contrib.algorithm import run_backtest
from alphazoo.contrib.examples import lean_sklearn
from alphazoo.contrib.examples.lean_sklearn import LeanSklearnAlgorithm
from alphazoo.datasets import load_prices

# Trains real models or starts real processes and servers: deselect with -m 'not slow'.
pytestmark = pytest.mark.slow

KEY = "lean_sklearn/random_forest"
SMALL = {"n_estimators": 10}  # a small forest keeps the run to seconds


class Recorded(LeanSklearnAlgorithm):
    """The example, recording each bar's prediction and position and the model it started
    with."""

    def initialize(self) -> None:
        super().initialize()
        self.started_with = self.model  # trainings registered in initialize run after it
        self.trace: list[tuple[datetime, float, bool]] = []

    def on_data(self, slice) -> None:
        super().on_data(slice)
        self.trace.append((self.time, self.probability_up,
                           self.portfolio[self._symbol].invested))


@pytest.fixture(scope="module")
def store_path(tmp_path_factory):
    return tmp_path_factory.mktemp("lean") / "store"


@pytest.fixture(scope="module")
def first(store_path):
    return run_backtest(Recorded, load_prices("AAPL"), object_store=ObjectStore(store_path),
                        parameters=SMALL)


def test_retrains_once_now_and_once_per_month_start(first):
    algo = first.algorithm
    start = datetime(2016, 1, 1)
    last_close = first.equity.index[-1] + pd.Timedelta(hours=16)
    month_starts = [t.to_pydatetime() for t in
                    pd.date_range(start, "2017-12-31", freq="MS") + pd.Timedelta(hours=8)
                    if t <= last_close]
    assert [r.at for r in first.training] == [start] + month_starts
    assert len(month_starts) == 24
    assert all(r.name == "my_training_method" and r.status == "served" for r in first.training)
    assert algo.trainer.model.version == 25 and algo.trainer.model.model is algo.model


def test_trades_on_the_predicted_direction_with_the_threshold(first):
    algo = first.algorithm
    assert algo.threshold == 0.5 and algo.started_with is None  # an empty store: no old model
    assert len(first.fills) >= 1
    assert len(algo.trace) == len(first.equity)
    # after each bar the position is long exactly when the up-probability beat the threshold
    for when, probability, invested in algo.trace:
        assert 0.0 <= probability <= 1.0
        assert invested == (probability > algo.threshold), when
    buys = [o for o in first.fills if o.quantity > 0]
    assert buys and all(o.tag == "Liquidated" for o in first.fills if o.quantity < 0)
    assert first.statistics()["trades"] == len(first.fills)


def test_the_model_is_stored_and_a_later_run_reads_it(first, store_path):
    store = ObjectStore(store_path)
    assert store.contains_key(KEY)
    manifest = Zoo(store).inspect(KEY)
    assert manifest["name"] == "random_forest" and manifest["metadata"]["symbol"] == "AAPL"
    loaded = Zoo(store).load(KEY)  # a safe format: no trusted=True needed
    history = first.algorithm.history("AAPL", 40)
    features, _ = first.algorithm.get_features_and_labels(history)
    np.testing.assert_allclose(loaded.predict_proba(features),
                               first.algorithm.model.predict_proba(features))

    # a second run on the same store starts from that model; a threshold of 1.0 never buys
    never = run_backtest(Recorded, load_prices("AAPL"), object_store=ObjectStore(store_path),
                         parameters={**SMALL, "threshold": "1.0"})
    assert type(never.algorithm.started_with).__name__ == "RandomForestClassifier"
    assert never.algorithm.threshold == 1.0
    assert never.orders == [] and not any(inv for _, _, inv in never.algorithm.trace)
    assert never.final_value == never.starting_cash == 100_000
    assert len(never.training) == len(first.training)


def test_main_prints_the_statistics(tmp_path, capsys):
    assert lean_sklearn.main(["--store", str(tmp_path / "store"), "--n-estimators", "5"]) == 0
    out = capsys.readouterr().out
    for name in ("total_return", "annualised_return", "max_drawdown", "trades"):
        assert name in out
    assert "25 trainings" in out and ObjectStore(tmp_path / "store").contains_key(KEY)
