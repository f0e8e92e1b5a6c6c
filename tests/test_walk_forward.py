"""walk_forward: rolling and expanding retraining on real daily features, no look-ahead,
stitched out-of-sample predictions, versioned fold models."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pandas as pd
import pytest

from alphazoo import Zoo
from alphazoo.datasets import load_prices
from alphazoo.example_features import FEATURES, make_features
from alphazoo.training import DateRules, walk_forward
from alphazoo.training.model_versions import LATEST


@pytest.fixture(scope="module")
def frame():
    """AAPL features indexed by date, the next-day label, and the date each label is known."""
    bars = load_prices("AAPL")
    X, y, dates = make_features(bars)
    index = pd.DatetimeIndex(dates.astype("datetime64[ns]"))
    following = {d: bars.dates[i + 1] for i, d in enumerate(bars.dates[:-1])}
    known = pd.DatetimeIndex([following[d] for d in dates]).astype("datetime64[ns]")
    return (pd.DataFrame(X, index=index, columns=FEATURES), pd.Series(y, index=index),
            pd.Series(known, index=index))


def _forest(X, y):
    from sklearn.ensemble import RandomForestClassifier

    return RandomForestClassifier(n_estimators=10, max_depth=4, random_state=0).fit(X, y)


class _Spy:
    """A fit function that remembers exactly which rows each training saw."""

    def __init__(self) -> None:
        self.seen: list[tuple[pd.DatetimeIndex, pd.DatetimeIndex]] = []

    def __call__(self, X, y):
        self.seen.append((X.index, y.index))
        return _forest(X, y)


@pytest.mark.slow
def test_expanding_monthly_has_no_look_ahead_and_no_label_leak(frame):
    X, y, known = frame
    spy = _Spy()
    result = walk_forward(X, y, spy, every="MS", label_horizon=1, start="2016-01-01")
    folds = result.folds
    assert [f.cutoff for f in folds] == list(pd.date_range("2016-01-01", "2017-12-01",
                                                           freq="MS"))
    assert len(spy.seen) == len(folds)
    for fold, (rows, label_rows) in zip(folds, spy.seen):
        assert rows.equals(label_rows) and rows.equals(fold.train_index)
        assert rows.max() < fold.cutoff          # no training row dated at/after its window end
        assert known[rows].max() < fold.cutoff   # and no label that was unknown at the cutoff
        assert rows.min() == X.index[0]          # expanding
        assert fold.test_start >= fold.cutoff
    # the bar just before each cutoff is left out: its label is the cutoff day's close
    assert all(X.index[X.index < f.cutoff][-1] > f.train_end for f in folds)

    predictions = result.predictions
    tested = X.index[X.index >= pd.Timestamp("2016-01-01")]
    assert predictions.index.equals(tested)      # every row predicted once, in order
    for fold, model in zip(folds, result.models):
        rows = (predictions.index >= fold.test_start) & (predictions.index <= fold.test_end)
        np.testing.assert_array_equal(predictions[rows].to_numpy(),
                                      model.predict(X.loc[predictions.index[rows]]))


def test_label_known_dates_give_the_same_cut_as_the_horizon(frame):
    X, y, known = frame
    by_horizon = walk_forward(X, y, _forest, every="QS", label_horizon=1, start="2016-01-01")
    by_dates = walk_forward(X, y, _forest, every="QS", label_known=known, start="2016-01-01")
    assert [f.train_end for f in by_horizon.folds] == [f.train_end for f in by_dates.folds]
    pd.testing.assert_series_equal(by_horizon.predictions, by_dates.predictions)


def test_without_a_horizon_the_leaky_row_would_be_used(frame):
    X, y, known = frame
    spy = _Spy()
    walk_forward(X, y, spy, every="QS", start="2016-01-01")
    assert any(known[rows].max() >= cutoff
               for (rows, _), cutoff in zip(spy.seen, pd.date_range("2016-01-01", periods=8,
                                                                   freq="QS")))


def test_rolling_windows_by_time_and_by_bars(frame):
    X, y, _ = frame
    spy = _Spy()
    timed = walk_forward(X, y, spy, every="QS", window="rolling", length="180D",
                         label_horizon=1)
    assert timed.folds[0].cutoff >= X.index[0] + pd.Timedelta("180D")
    for fold, (rows, _) in zip(timed.folds, spy.seen):
        assert rows.min() >= fold.cutoff - pd.Timedelta("180D") and rows.max() < fold.cutoff

    by_bars = walk_forward(X, y, _forest, every="QS", window="rolling", length=120,
                           label_horizon=1)
    assert {f.train_rows for f in by_bars.folds} == {120}
    assert all(f.train_end < f.cutoff for f in by_bars.folds)


def test_label_horizon_counts_dates_in_a_panel(frame):
    # Two symbols per date: a horizon of 2 bars must drop the last two *dates* before each
    # cutoff (four rows), and a rolling window of 60 bars keeps 60 dates (120 rows).
    X, y, known = frame
    dates = X.index[X.index >= "2015-01-01"]
    panel_X = pd.concat([X.loc[dates], X.loc[dates] * 1.01]).sort_index(kind="stable")
    panel_y = pd.concat([y.loc[dates], y.loc[dates]]).sort_index(kind="stable")
    spy = _Spy()
    result = walk_forward(panel_X, panel_y, spy, every="QS", window="rolling", length=60,
                          label_horizon=2, start="2015-07-01")
    for fold, (rows, _) in zip(result.folds, spy.seen):
        before = dates[dates < fold.cutoff]
        assert rows.max() == before[-3] < fold.cutoff  # the last two dates are left out
        assert len(rows) == 120 and rows.unique().equals(before[-62:-2])
        assert known[rows.unique()].max() < fold.cutoff  # no label reaches the cutoff
    assert result.predictions.index.equals(panel_X.index[panel_X.index >= "2015-07-01"])


def test_proba_predictions_and_a_date_rule_schedule(frame):
    X, y, _ = frame
    result = walk_forward(X, y, _forest, every=DateRules.month_start(), label_horizon=1,
                          start="2017-01-01", predict=lambda m, Z: m.predict_proba(Z))
    assert isinstance(result.predictions, pd.DataFrame)
    assert result.predictions.shape == ((X.index >= "2017-01-01").sum(), 2)
    np.testing.assert_allclose(result.predictions.sum(axis=1), 1.0)
    assert result.folds[0].cutoff == pd.Timestamp("2017-01-01")


@pytest.mark.slow
def test_executor_matches_sequential_and_folds_are_versioned(frame, tmp_path):
    X, y, _ = frame
    zoo = Zoo(tmp_path / "store")
    kwargs = dict(every="QS", window="rolling", length=250, label_horizon=1)
    sequential = walk_forward(X, y, _forest, **kwargs)
    with ThreadPoolExecutor(2) as pool:
        parallel = walk_forward(X, y, _forest, executor=pool, zoo=zoo, save_as="aapl/wf",
                                format="onnx", **kwargs)
    pd.testing.assert_series_equal(sequential.predictions, parallel.predictions)

    keys = parallel.keys
    assert keys == [f"aapl/wf/v{n:06d}" for n in range(1, len(parallel.folds) + 1)]
    assert zoo.store.read_json(f"aapl/wf/{LATEST}")["version"] == len(keys)
    for fold in (parallel.folds[0], parallel.folds[-1]):
        manifest = zoo.inspect(fold.key)
        window = manifest["metadata"]["training"]["window"]
        assert window == {"start": str(fold.train_start), "end": str(fold.train_end),
                          "cutoff": str(fold.cutoff)}
        assert pd.Timestamp(window["end"]) < fold.cutoff
        rows = X.loc[fold.test_start:fold.test_end]
        np.testing.assert_array_equal(zoo.load(fold.key).predict(rows.to_numpy()),
                                      parallel.predictions.loc[rows.index].to_numpy())
    again = walk_forward(X, y, _forest, zoo=zoo, save_as="aapl/wf", format="onnx",
                         **{**kwargs, "start": "2017-07-01"})
    assert again.keys[0] == f"aapl/wf/v{len(keys) + 1:06d}"  # a rerun continues the series


def test_bad_input_is_refused_clearly(frame):
    X, y, _ = frame
    with pytest.raises(TypeError, match="DatetimeIndex"):
        walk_forward(X.reset_index(drop=True), y.to_numpy(), _forest)
    with pytest.raises(ValueError, match="rolling window needs length"):
        walk_forward(X, y, _forest, window="rolling")
    with pytest.raises(ValueError, match="index differs"):
        walk_forward(X, y.iloc[::-1], _forest)
    with pytest.raises(ValueError, match="sorted"):
        walk_forward(X.iloc[::-1], None, _forest)
    with pytest.raises(ValueError, match="no fold"):
        walk_forward(X, y, _forest, start="2030-01-01")


@pytest.mark.slow
@pytest.mark.s3
def test_dask_workers_save_walk_forward_versions_into_s3(frame, moto_s3):
    """The path benchmarks/walkforward_scale.py times at 1,000 windows, on 10: fits on a
    2-process Dask cluster, versions in an S3 store, saved by the client (walk_forward) and
    by the workers (map_train)."""
    import os
    import uuid

    distributed = pytest.importorskip("distributed")
    from alphazoo import ObjectStore
    from alphazoo.training import TrainJob, map_train
    from alphazoo.training.model_versions import versions

    X, y, _ = frame
    mondays = list(pd.date_range("2017-01-02", periods=10, freq="W-MON"))
    kwargs = dict(every=mondays, window="rolling", length=120, label_horizon=1,
                  start=mondays[0])
    url = f"s3://{moto_s3.bucket}/walk-forward-{uuid.uuid4().hex[:8]}"

    def store():
        return ObjectStore(url, storage_options=moto_s3.storage_options)

    sequential = walk_forward(X, y, _forest, **kwargs)
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=None) as cluster, \
            distributed.Client(cluster) as client:
        on_dask = walk_forward(X, y, _forest, executor=client.get_executor(),
                               zoo=Zoo(store()), save_as="aapl/dask", **kwargs)
        jobs = [TrainJob(_forest, (X.loc[f.train_index], y.loc[f.train_index]),
                         save_as="aapl/fanout") for f in on_dask.folds]
        results = map_train(jobs, client.get_executor(), store=store(), return_models=False)
    pd.testing.assert_series_equal(sequential.predictions, on_dask.predictions)
    assert all(r.ok for r in results), [r.traceback for r in results]
    assert {r.worker.split(":")[1] for r in results}.isdisjoint({str(os.getpid())})

    reader = Zoo(store())
    for name in ("aapl/dask", "aapl/fanout"):
        assert versions(reader.store, name) == list(range(1, 11))
        assert reader.store.read_json(f"{name}/{LATEST}")["version"] == 10
    for fold, result in zip(on_dask.folds, results):
        assert result.key == f"aapl/fanout/v{fold.number:06d}"
        rows = X.loc[fold.test_start:fold.test_end]
        expected = sequential.predictions.loc[rows.index].to_numpy()
        for key in (fold.key, result.key):
            np.testing.assert_array_equal(reader.load(key).predict(rows), expected)
