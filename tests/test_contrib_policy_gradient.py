"""The ``policy_gradient`` zoo model: a REINFORCE position policy, checkpoints, early stopping."""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import pytest

import alphazoo

torch = pytest.importorskip("torch")
pd = pytest.importorskip("pandas")

from alphazoo.contrib.dataset import Dataset  # noqa: E402
from alphazoo.contrib.features import load_panel  # noqa: E402
from alphazoo.contrib.model import NotFittedError, is_onnx_predictor  # noqa: E402
from alphazoo.contrib.policy_gradient import PolicyGradient  # noqa: E402

PANEL_SEGMENTS = {"train": ("2016-01-01", "2016-09-30"), "valid": ("2016-10-01", "2016-12-31"),
                  "test": ("2017-01-01", "2017-03-31")}


def synthetic(returns: str = "pattern", n: int = 600, seed: int = 1) -> Dataset:
    """One instrument whose next-day return is +1% when feature ``a`` > 0 and -1% otherwise
    (plus noise); ``returns="zero"`` makes every return 0 after the training dates."""
    rng = np.random.default_rng(seed)
    dates = pd.bdate_range("2020-01-01", periods=n)
    features = rng.normal(size=(n, 3))
    ret = np.where(features[:, 0] > 0, 0.01, -0.01) + rng.normal(0, 0.005, n)
    if returns == "zero":
        ret[400:] = 0.0
    index = pd.MultiIndex.from_arrays([dates, ["SYN"] * n], names=["datetime", "instrument"])
    return Dataset(pd.DataFrame(features, index=index, columns=["a", "b", "c"]),
                   pd.DataFrame({"label_return": ret}, index=index),
                   segments={"train": (dates[0], dates[399]), "valid": (dates[400], dates[499]),
                             "test": (dates[500], None)})


def total_reward(positions: np.ndarray, returns: np.ndarray, cost: float = 0.0) -> float:
    before = np.concatenate([[0.0], positions[:-1]])
    return float(np.sum(positions * returns - cost * np.abs(positions - before)))


@pytest.fixture(scope="module")
def zoo(tmp_path_factory: pytest.TempPathFactory) -> Any:
    with pytest.MonkeyPatch.context() as mp:
        mp.delenv("ALPHAZOO_SIGNING_KEY", raising=False)
        yield alphazoo.Zoo(alphazoo.ObjectStore(tmp_path_factory.mktemp("pg-zoo")))


@pytest.fixture(scope="module")
def data() -> Dataset:
    return synthetic()


@pytest.fixture(scope="module")
def trained(data: Dataset, zoo: Any) -> PolicyGradient:
    model = PolicyGradient(hidden_size=16, n_epochs=30, patience=5, seed=0)
    return model.fit(data, checkpoint=zoo, checkpoint_key="pg/synthetic")


@pytest.fixture(scope="module")
def panel() -> Dataset:
    return Dataset.from_bars(load_panel(["AAPL", "GOOGL"]), label="label_return",
                             segments=PANEL_SEGMENTS)


@pytest.mark.slow
def test_learns_an_obvious_pattern(data: Dataset, trained: PolicyGradient) -> None:
    X, y, _ = data.prepare("test")
    held = trained.positions(data, "test").to_numpy()[: len(y)]
    accuracy = float(np.mean(held == (X[:, 0] > 0)))
    assert accuracy >= 0.9  # chance is 0.5
    assert total_reward(held, y) > total_reward(np.ones_like(y), y) + 0.2
    # The score is P(long); with positions {0, 1} the greedy position is long iff P > 0.5.
    score = trained.predict(data, "test")
    assert score.between(0, 1).all()
    np.testing.assert_array_equal(trained.positions(data, "test").to_numpy(),
                                  (score.to_numpy() > 0.5).astype(np.float32))


@pytest.mark.slow
def test_checkpoints_are_saved_on_improvement(data: Dataset, trained: PolicyGradient,
                                              zoo: Any) -> None:
    history = trained.history
    best = -np.inf
    for entry in history:  # improved means a strictly better validation reward
        assert entry["improved"] == (entry["valid_reward"] > best)
        best = max(best, entry["valid_reward"])
    expected = [f"pg/synthetic/epoch-{h['epoch']:04d}" for h in history if h["improved"]]
    assert [h["checkpoint"] for h in history if h["improved"]] == expected
    assert sorted(k for k in zoo.store.keys() if k.startswith("pg/synthetic/")) == expected
    assert trained.best_epoch == int(expected[-1].rpartition("-")[2])
    assert trained.state["best_reward"] == max(h["valid_reward"] for h in history)
    # The last checkpoint is the restored policy: it predicts what the model predicts.
    last = zoo.load(expected[-1])
    assert isinstance(last, PolicyGradient) and last.best_epoch == trained.best_epoch
    # Checkpoints are saved mid-fit; they still name the features the policy reads.
    assert last.feature_names == data.feature_names == ["a", "b", "c"]
    np.testing.assert_array_equal(last.predict(data, "test").to_numpy(),
                                  trained.predict(data, "test").to_numpy())
    # An earlier checkpoint is a different (worse on valid) policy.
    if len(expected) > 1:
        first = zoo.load(expected[0]).predict(data, "test").to_numpy()
        assert not np.array_equal(first, trained.predict(data, "test").to_numpy())


def test_early_stopping_when_the_valid_reward_stalls(caplog: pytest.LogCaptureFixture) -> None:
    data = synthetic(returns="zero")  # every policy earns exactly 0 on the valid segment
    with caplog.at_level(logging.INFO, logger="alphazoo.contrib.policy_gradient"):
        model = PolicyGradient(hidden_size=8, n_epochs=50, patience=3, steps_per_epoch=2,
                               seed=0).fit(data, verbose=True)
    assert [h["valid_reward"] for h in model.history] == [0.0] * 4
    assert model.best_epoch == 1 and len(model.history) == 4 < 50
    lines = [r.getMessage() for r in caplog.records if r.name.endswith("policy_gradient")]
    assert len(lines) == 4 and all(line.startswith("policy_gradient epoch") for line in lines)
    assert "epoch 4/50" in lines[-1]


@pytest.mark.slow
def test_the_same_seed_gives_the_same_policy(data: Dataset) -> None:
    params = {"hidden_size": 8, "n_epochs": 2, "steps_per_epoch": 3, "seed": 4}
    first, second = PolicyGradient(**params).fit(data), PolicyGradient(**params).fit(data)
    assert first.history == second.history
    np.testing.assert_array_equal(first.predict(data).to_numpy(), second.predict(data).to_numpy())


@pytest.mark.slow
def test_runs_on_the_bundled_panel(panel: Dataset, zoo: Any) -> None:
    model = PolicyGradient(n_epochs=4, steps_per_epoch=4, cost=0.0005, seed=0).fit(panel)
    score, held = model.predict(panel, "test"), model.positions(panel, "test")
    _, _, index = panel.prepare("test", labels=False)
    assert score.index.equals(index) and held.index.equals(index)
    assert score.between(0, 1).all() and set(held.unique()) <= {0.0, 1.0}
    assert model.params["n_features"] == len(panel.feature_names)
    # The validation reward the model kept is the greedy policy's, instrument by instrument,
    # each starting flat and paying the cost on every change of position.
    valid_held = model.positions(panel, "valid")
    _, returns, valid_index = panel.prepare("valid")
    assert valid_held.index.equals(valid_index)
    returns = pd.Series(returns, index=valid_index)
    expected = sum(total_reward(valid_held.xs(name, level="instrument").to_numpy(),
                                returns.xs(name, level="instrument").to_numpy(), cost=0.0005)
                   for name in ("AAPL", "GOOGL"))
    assert model.state["best_reward"] == pytest.approx(expected, rel=1e-9, abs=1e-12)
    assert model.feature_names == panel.feature_names
    for fmt in ("json", "onnx", "pickle"):
        zoo.save(model, f"pg/panel-{fmt}", format=fmt)
        loaded = zoo.load(f"pg/panel-{fmt}", trusted=fmt == "pickle")
        assert isinstance(loaded, PolicyGradient)
        assert is_onnx_predictor(loaded.estimator) == (fmt == "onnx")
        np.testing.assert_allclose(loaded.predict(panel, "test").to_numpy(), score.to_numpy(),
                                   rtol=0, atol=1e-5)
        np.testing.assert_array_equal(loaded.positions(panel, "test").to_numpy(),
                                      held.to_numpy())


@pytest.mark.slow
def test_position_aware_policy_follows_each_instrument(panel: Dataset, zoo: Any) -> None:
    # With the held position in the state, each instrument's greedy path is its own: the
    # panel's positions for AAPL are those of a dataset holding AAPL alone.
    model = PolicyGradient(use_position=True, allow_short=True, cost=0.001, n_epochs=3,
                           steps_per_epoch=4, seed=0).fit(panel)
    held = model.positions(panel, "test")
    assert set(held.unique()) <= {-1.0, 0.0, 1.0}
    aapl = panel.features.index.get_level_values("instrument") == "AAPL"
    alone = Dataset(panel.features[aapl], panel.labels[aapl], segments=PANEL_SEGMENTS)
    np.testing.assert_array_equal(model.positions(alone, "test").to_numpy(),
                                  held.xs("AAPL", level="instrument").to_numpy())
    zoo.save(model, "pg/stateful", format="pt")
    loaded = zoo.load("pg/stateful")
    np.testing.assert_array_equal(loaded.positions(panel, "test").to_numpy(), held.to_numpy())
    np.testing.assert_array_equal(loaded.predict(panel, "test").to_numpy(),
                                  model.predict(panel, "test").to_numpy())


def test_greedy_path_is_rolled_out_per_instrument(panel: Dataset) -> None:
    # A hand-set policy that leaves any position it holds: from flat it goes long, from long
    # back to flat. Each instrument's path alternates from its own first row, whatever the
    # other instrument does on the same dates.
    width = len(panel.feature_names)
    model = PolicyGradient(use_position=True, hidden_size=2, n_features=width)
    net = model.build_net()
    with torch.no_grad():
        for tensor in net.parameters():
            tensor.zero_()
        hidden, out = net.layers[0], net.layers[-1]
        hidden.weight[0, width] = 5.0      # tanh(5 * held position): ~1 when long
        out.weight[1, 0], out.bias[1] = -10.0, 1.0   # long logit: 1 when flat, -9 when long
    model.estimator = net
    model.state = {"mean": [0.0] * width, "std": [1.0] * width}
    held = model.positions(panel, "test")
    for name in ("AAPL", "GOOGL"):
        path = held.xs(name, level="instrument").to_numpy()
        np.testing.assert_array_equal(path, np.arange(len(path)) % 2 == 0)
    p_long = model.predict(panel, "test").xs("AAPL", level="instrument").to_numpy()
    expected = np.where(np.arange(len(p_long)) % 2 == 0, 1 / (1 + np.exp(-1.0)),
                        1 / (1 + np.exp(10 * np.tanh(5.0) - 1)))
    np.testing.assert_allclose(p_long, expected, rtol=1e-5)


def test_fit_on_one_series_of_arrays() -> None:
    rng = np.random.default_rng(3)
    X = rng.normal(size=(300, 2)).astype(np.float32)
    y = np.where(X[:, 1] > 0, 0.01, -0.01).astype(np.float32)
    model = PolicyGradient(hidden_size=8, n_epochs=3, valid_fraction=0.25, seed=0).fit(X, y)
    assert len(model.history) == 3
    score = model.predict(X)
    assert isinstance(score, np.ndarray) and score.shape == (300,)
    assert set(np.unique(model.positions(X))) <= {0.0, 1.0}


def test_labels_must_be_returns(panel: Dataset) -> None:
    direction = Dataset(panel.features, panel.labels.gt(0).astype(float).rename("up"),
                        segments=PANEL_SEGMENTS)
    with pytest.raises(ValueError, match="label_direction"):
        PolicyGradient(n_epochs=1).fit(direction)
    named = Dataset.from_bars(load_panel(["AAPL"]), label="label_direction",
                              segments=PANEL_SEGMENTS)
    with pytest.raises(ValueError, match="label='label_return'"):
        PolicyGradient(n_epochs=1).fit(named)
    with pytest.raises(ValueError, match="label_direction"):
        PolicyGradient(n_epochs=1).fit(np.zeros((10, 2)), np.ones(10))


def test_predicting_before_fit_is_an_error(data: Dataset) -> None:
    model = PolicyGradient()
    with pytest.raises(NotFittedError, match="not fitted"):
        model.predict(data)
    with pytest.raises(NotFittedError):
        model.positions(np.zeros((3, 3)))


def test_an_empty_valid_segment_holds_training_dates_out() -> None:
    # Every policy earns 0 on a valid segment without rows, so early stopping on it would keep
    # the first epoch's policy; the model holds the latest training dates out instead, exactly
    # as for a dataset without a valid segment.
    data = synthetic()
    train = data.segments["train"]
    params = {"hidden_size": 8, "n_epochs": 3, "steps_per_epoch": 2, "seed": 0}
    empty = PolicyGradient(**params).fit(
        data.with_segments(train=train, valid=("2030-01-01", "2030-02-01")))
    without = PolicyGradient(**params).fit(data.with_segments(train=train))
    assert any(h["valid_reward"] != 0 for h in empty.history)
    assert empty.history == without.history


def test_a_segmented_dataset_needs_a_train_segment(data: Dataset) -> None:
    # Fitting on "every row" of a dataset with valid and test segments would train on the test.
    no_train = data.with_segments(valid=data.segments["valid"], test=data.segments["test"])
    with pytest.raises(KeyError, match="no 'train' segment"):
        PolicyGradient(n_epochs=1).fit(no_train)
