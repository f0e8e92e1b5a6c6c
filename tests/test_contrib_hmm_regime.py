"""``hmm_regime``: regime recovery on a known process, filtering without look-ahead, panels,
scores, and the store round trip.

The synthetic market switches between a calm (daily sigma 0.6%) and a volatile (3%) regime with
sticky Markov transitions; its bars go through the real feature code, so the model sees the
same ``ret_1d``/``vol_20d`` columns as on market data.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import alphazoo
from alphazoo.contrib.dataset import Dataset
from alphazoo.contrib.features import load_panel, to_panel
from alphazoo.contrib.model import NotFittedError

pytest.importorskip("hmmlearn", reason="hmm_regime needs hmmlearn")

from alphazoo.contrib.hmm_regime import HMMRegime, filtered_probabilities  # noqa: E402

# Trains real models or starts real processes and servers: deselect with -m 'not slow'.
pytestmark = pytest.mark.slow

SIGMA = (0.006, 0.03)  # calm, volatile
STAY = 0.99


def _regime_path(rng: np.random.Generator, days: int) -> np.ndarray:
    states = np.empty(days, dtype=int)
    states[0] = 0
    for t in range(1, days):
        states[t] = states[t - 1] if rng.random() < STAY else 1 - states[t - 1]
    return states


def _synthetic(days: int = 900, symbols=("AAA", "BBB"), seed: int = 7):
    """A panel drawn from the two-regime process and the true regime of every bar."""
    rng = np.random.default_rng(seed)
    dates = pd.bdate_range("2010-01-01", periods=days, name="datetime")
    frames, truth = {}, {}
    for symbol in symbols:
        states = _regime_path(rng, days)
        returns = rng.normal(0.0003, np.take(SIGMA, states))
        close = 100 * np.cumprod(1 + returns)
        frames[symbol] = pd.DataFrame({"open": close, "high": close * 1.001,
                                       "low": close * 0.999, "close": close,
                                       "volume": 1e6}, index=dates)
        truth[symbol] = pd.Series(states, index=dates)
    panel = to_panel(frames)
    truth_series = pd.concat(truth, names=["instrument", "datetime"]).swaplevel().sort_index()
    return panel, truth_series


@pytest.fixture(scope="module")
def synthetic():
    panel, truth = _synthetic()
    ds = Dataset.from_bars(panel, label="label_return")
    model = HMMRegime(n_regimes=2, covariance_type="full", seed=0).fit(ds)
    return {"ds": ds, "truth": truth, "model": model}


@pytest.fixture(scope="module")
def real():
    # Train starts after the data: its regimes are filtered from each instrument's first row.
    segments = {"train": ("2015-06-01", "2016-06-30"), "test": ("2016-07-01", "2017-12-31")}
    ds = Dataset.from_bars(load_panel(), label="label_direction", segments=segments)
    return {"ds": ds, "model": HMMRegime(n_regimes=3).fit(ds)}


# -- regimes -------------------------------------------------------------------------------------
def test_recovers_the_calm_and_volatile_regimes(synthetic):
    model, ds, truth = synthetic["model"], synthetic["ds"], synthetic["truth"]
    regimes = model.regimes(ds, segment=None)
    expected = truth.reindex(regimes.index)
    accuracy = float((regimes.to_numpy() == expected.to_numpy()).mean())
    majority = max(expected.mean(), 1 - expected.mean())
    assert accuracy > 0.85 and accuracy > majority + 0.2  # calm is regime 0, volatile 1
    # Regimes are numbered by the volatility they observe, calm first.
    means = model.estimator.means_[model.state["states"], 1]
    assert np.all(np.diff(means) > 0)


def test_regime_numbers_do_not_depend_on_the_seed(synthetic):
    ds = synthetic["ds"]
    other = HMMRegime(n_regimes=2, seed=5).fit(ds)
    same = (other.regimes(ds, None).to_numpy() == synthetic["model"].regimes(ds, None).to_numpy())
    assert same.mean() > 0.97


def test_fit_on_arrays_with_lengths_matches_the_dataset_fit(synthetic):
    ds, model = synthetic["ds"], synthetic["model"]
    X, _, index = ds.prepare(None, labels=False)
    cols = [ds.feature_names.index("ret_1d"), ds.feature_names.index("vol_20d")]
    instrument = index.get_level_values(1)
    parts = [X[instrument == name][:, cols] for name in ("AAA", "BBB")]
    labels = ds.labels.reindex(index).to_numpy()
    y = np.concatenate([labels[instrument == name] for name in ("AAA", "BBB")])
    arrays = HMMRegime(n_regimes=2, seed=0).fit(np.vstack(parts), y,
                                                lengths=[len(p) for p in parts])
    np.testing.assert_allclose(arrays.estimator.transmat_, model.estimator.transmat_,
                               rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(arrays.regime_probabilities(parts[0]),
                               model.regime_probabilities(ds, None).xs("AAA", level=1),
                               atol=1e-9)


# -- no look-ahead -------------------------------------------------------------------------------
def test_probabilities_at_t_ignore_later_rows_unlike_hmmlearns_smoothing(real):
    model, ds = real["model"], real["ds"]
    X, _, index = ds.prepare(None, labels=False)
    cols = [ds.feature_names.index("ret_1d"), ds.feature_names.index("vol_20d")]
    obs = X[index.get_level_values(1) == "AAPL"][:, cols].astype(np.float64)
    full = model.regime_probabilities(obs)
    smoothed = model.estimator.predict_proba(model._transform(obs))[:, model.state["states"]]
    # The row the future sways most in hmmlearn's smoothed posteriors.
    t = int(np.abs(full - smoothed)[:-1].max(axis=1).argmax())
    altered = obs.copy()
    altered[t + 1:] = altered[t + 1:][::-1] * 3.0  # a different future
    np.testing.assert_array_equal(model.regime_probabilities(altered)[: t + 1], full[: t + 1])
    np.testing.assert_array_equal(model.regime_probabilities(obs[: t + 1]), full[: t + 1])
    # hmmlearn's posterior at t moves when the later rows go: the test above has teeth.
    cut = model.estimator.predict_proba(model._transform(obs[: t + 1]))[:, model.state["states"]]
    assert np.abs(cut[t] - smoothed[t]).max() > 1e-2


def test_filtering_equals_smoothing_at_the_last_row(synthetic, real):
    for model, ds in ((synthetic["model"], synthetic["ds"]), (real["model"], real["ds"])):
        X, _, index = ds.prepare(None, labels=False)
        cols = [ds.feature_names.index("ret_1d"), ds.feature_names.index("vol_20d")]
        for name in ds.instruments:
            scaled = model._transform(X[index.get_level_values(1) == name][:, cols])
            filtered = filtered_probabilities(model.estimator, scaled)
            smoothed = model.estimator.predict_proba(scaled)
            np.testing.assert_allclose(filtered[-1], smoothed[-1], atol=1e-8)
            np.testing.assert_allclose(filtered.sum(axis=1), 1.0, atol=1e-12)
            if model is real["model"]:
                # Before the end they differ: filtering is not smoothing in disguise.
                assert np.abs(filtered[:-1] - smoothed[:-1]).max() > 1e-2


def test_dataset_probabilities_do_not_change_when_later_dates_are_removed(real):
    model, ds = real["model"], real["ds"]
    cut = pd.Timestamp("2016-12-30")
    early = Dataset(ds.features[ds.features.index.get_level_values(0) <= cut],
                    ds.labels[ds.labels.index.get_level_values(0) <= cut])
    full = model.regime_probabilities(ds, segment=None)
    np.testing.assert_array_equal(model.regime_probabilities(early, segment=None).to_numpy(),
                                  full.loc[early.features.index].to_numpy())


# -- panels and scores ---------------------------------------------------------------------------
def test_each_instrument_is_its_own_sequence(real):
    model, ds = real["model"], real["ds"]
    aapl_only = Dataset(ds.features.xs("AAPL", level=1, drop_level=False),
                        ds.labels.xs("AAPL", level=1, drop_level=False), ds.segments)
    full = model.regime_probabilities(ds, segment=None).xs("AAPL", level=1)
    alone = model.regime_probabilities(aapl_only, segment=None).xs("AAPL", level=1)
    np.testing.assert_array_equal(alone.to_numpy(), full.to_numpy())


def test_scores_are_expected_labels_learned_on_the_training_rows(real):
    model, ds = real["model"], real["ds"]
    probs = model.regime_probabilities(ds, "test")
    scores = model.predict(ds)
    assert scores.index.equals(ds.prepare("test", labels=False)[2]) and scores.name == "score"
    assert list(probs.columns) == ["regime_0", "regime_1", "regime_2"]
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-9)
    labels = np.asarray(model.state["regime_label"])
    np.testing.assert_allclose(scores, probs.to_numpy() @ labels, rtol=1e-6)
    # Each regime's label is the train rows' mean label weighted by filtered probabilities.
    train = model.regime_probabilities(ds, "train")
    y = ds.labels.reindex(train.index)
    known = y.notna().to_numpy()
    weights = train.to_numpy()[known]
    np.testing.assert_allclose(labels, weights.T @ y.to_numpy()[known] / weights.sum(axis=0),
                               rtol=1e-9)
    # label_direction: the score is P(up), between the regimes' extremes.
    assert model.classifier
    assert ((scores >= labels.min() - 1e-6) & (scores <= labels.max() + 1e-6)).all()
    regimes = model.regimes(ds)
    assert regimes.isin([0, 1, 2]).all() and regimes.nunique() > 1


# -- errors --------------------------------------------------------------------------------------
def test_clear_errors(real):
    ds = real["ds"]
    with pytest.raises(NotFittedError, match="not fitted"):
        HMMRegime().predict(ds)
    with pytest.raises(NotFittedError):
        HMMRegime().regimes(np.zeros((5, 2)))
    without_vol = Dataset(ds.features.drop(columns=["vol_20d"]), ds.labels, ds.segments)
    with pytest.raises(KeyError, match="vol_20d"):
        HMMRegime().fit(without_vol)
    with pytest.raises(ValueError, match=r"\(rows, 2\)"):
        real["model"].predict(np.zeros((5, 3)))
    with pytest.raises(ValueError, match="lengths"):
        HMMRegime(n_regimes=2).fit(np.random.default_rng(0).normal(size=(50, 2)), lengths=[20])
    with pytest.raises(ValueError, match="covariance_type"):
        HMMRegime(covariance_type="tied")
    unlabelled = HMMRegime(n_regimes=2).fit(np.random.default_rng(0).normal(size=(200, 2)))
    assert unlabelled.regimes(np.zeros((3, 2))).shape == (3,)
    with pytest.raises(ValueError, match="without labels"):
        unlabelled.predict(np.zeros((3, 2)))


# -- the store -----------------------------------------------------------------------------------
@pytest.mark.parametrize("fmt", ["json", "pickle"])
def test_round_trip_through_the_store(real, tmp_path, fmt):
    model, ds = real["model"], real["ds"]
    zoo = alphazoo.Zoo(alphazoo.ObjectStore(tmp_path))
    if fmt == "json":
        zoo.save(model, "zoo/hmm")  # json is the default
    else:
        zoo.save(model, "zoo/hmm", format=fmt)
    loaded = zoo.load("zoo/hmm", trusted=fmt == "pickle")
    assert type(loaded) is HMMRegime and loaded.params == model.params
    assert loaded.state == model.state
    pd.testing.assert_frame_equal(loaded.regime_probabilities(ds), model.regime_probabilities(ds))
    pd.testing.assert_series_equal(loaded.predict(ds), model.predict(ds))


def test_onnx_is_refused_with_the_formats_that_work(real, tmp_path):
    zoo = alphazoo.Zoo(alphazoo.ObjectStore(tmp_path))
    with pytest.raises(Exception, match="json"):
        zoo.save(real["model"], "zoo/hmm", format="onnx")


def test_filtering_survives_a_state_nothing_moves_to():
    # A fitted HMM may hold zeros in startprob_ and transmat_ (EM keeps zeros at zero). For a
    # state nothing can move to, log-space filtering met -inf - -inf and returned NaN rows.
    model = HMMRegime(n_regimes=3).fit(np.random.default_rng(0).normal(size=(300, 2)))
    estimator = model.estimator
    estimator.startprob_ = np.array([0.5, 0.5, 0.0])
    estimator.transmat_ = np.array([[0.9, 0.1, 0.0], [0.2, 0.8, 0.0], [0.3, 0.3, 0.4]])
    obs = np.random.default_rng(1).normal(size=(40, 2))
    filtered = filtered_probabilities(estimator, obs)
    assert np.isfinite(filtered).all()
    np.testing.assert_allclose(filtered.sum(axis=1), 1.0, atol=1e-12)
    assert (filtered[:, 2] == 0).all() and (filtered[:, :2] > 0).all()
    # hmmlearn's smoothed posterior agrees at the last row, where it is the filtered one.
    np.testing.assert_allclose(filtered[-1], estimator.predict_proba(obs)[-1], atol=1e-8)


def test_a_segmented_dataset_needs_a_train_segment(real):
    ds = real["ds"]
    # Without this check "every row" was fitted on: the test segment's too.
    with pytest.raises(KeyError, match="no 'train' segment"):
        HMMRegime(n_regimes=2).fit(ds.with_segments(test=ds.segments["test"]))
