"""The ``alstm`` zoo model: qlib's ALSTM (LSTM + temporal attention) on the bundled data."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import alphazoo

torch = pytest.importorskip("torch")
pd = pytest.importorskip("pandas")

from alphazoo.contrib.alstm import ALSTM, ALSTMNet  # noqa: E402
from alphazoo.contrib.dataset import Dataset  # noqa: E402
from alphazoo.contrib.features import FEATURES, load_panel  # noqa: E402
from alphazoo.contrib.model import NotFittedError, is_onnx_predictor  # noqa: E402

SEGMENTS = {"train": ("2016-01-01", "2016-09-30"), "valid": ("2016-10-01", "2016-12-31"),
            "test": ("2017-01-01", "2017-03-31")}
STEP = 10
SMALL = {"d_feat": len(FEATURES), "hidden_size": 16, "step_len": STEP, "seed": 3}


@pytest.fixture(scope="module")
def dataset() -> Dataset:
    """Two bundled symbols, the LEAN features, next-day returns; a year of training rows."""
    return Dataset.from_bars(load_panel(["AAPL", "GOOGL"]), label="label_return",
                             segments=SEGMENTS)


@pytest.fixture(scope="module")
def fitted(dataset: Dataset) -> ALSTM:
    return ALSTM(n_epochs=4, **SMALL).fit(dataset)


@pytest.fixture(scope="module")
def zoo(tmp_path_factory: pytest.TempPathFactory) -> Any:
    with pytest.MonkeyPatch.context() as mp:
        mp.delenv("ALPHAZOO_SIGNING_KEY", raising=False)
        yield alphazoo.Zoo(alphazoo.ObjectStore(tmp_path_factory.mktemp("alstm-zoo")))


@pytest.mark.slow
def test_fit_and_predict_on_the_bundled_panel(dataset: Dataset, fitted: ALSTM) -> None:
    scores = fitted.predict(dataset, "test")
    _, _, expected_index = dataset.prepare("test", sequence=STEP, labels=False)
    assert isinstance(scores, pd.Series)
    assert scores.index.equals(expected_index)
    assert set(scores.index.get_level_values("instrument")) == {"AAPL", "GOOGL"}
    assert np.isfinite(scores.to_numpy()).all() and scores.std() > 0
    # Training lowered the loss, and the scaling learnt from the train windows is kept.
    history = fitted.history
    assert [h["epoch"] for h in history] == [1, 2, 3, 4]
    assert history[-1]["train_loss"] < history[0]["train_loss"]
    X, _, _ = dataset.prepare("train", sequence=STEP)
    np.testing.assert_allclose(fitted.state["mean"], X.reshape(-1, X.shape[-1]).mean(axis=0),
                               rtol=1e-4, atol=1e-7)
    # predict(X) on the windows gives the same scores as predict(dataset).
    X_test, _, _ = dataset.prepare("test", sequence=STEP, labels=False)
    np.testing.assert_array_equal(fitted.predict(X_test), scores.to_numpy())


def test_predicting_before_fit_is_an_error(dataset: Dataset) -> None:
    model = ALSTM(**SMALL)
    with pytest.raises(NotFittedError, match="not fitted"):
        model.predict(dataset)
    with pytest.raises(NotFittedError):
        model.predict(np.zeros((2, STEP, len(FEATURES)), np.float32))


def test_d_feat_must_match_the_data(dataset: Dataset) -> None:
    with pytest.raises(ValueError, match=r"d_feat=10"):
        ALSTM(n_epochs=1).fit(dataset)  # qlib's default d_feat=6; the LEAN set has 10
    with pytest.raises(ValueError, match=r"d_feat=4"):
        ALSTM(d_feat=6, n_epochs=1).fit(np.zeros((8, 5, 4)), np.zeros(8))


@pytest.mark.slow
def test_the_same_seed_gives_the_same_model() -> None:
    rng = np.random.default_rng(0)
    X = rng.normal(size=(120, 6, 3)).astype(np.float32)
    y = X[:, -1, 0] + 0.1 * rng.normal(size=120).astype(np.float32)
    params = {"d_feat": 3, "hidden_size": 8, "n_epochs": 3, "dropout": 0.2, "seed": 5}
    first, second = ALSTM(**params).fit(X, y), ALSTM(**params).fit(X, y)
    other = ALSTM(**{**params, "seed": 6}).fit(X, y)
    np.testing.assert_array_equal(first.predict(X), second.predict(X))
    assert not np.allclose(first.predict(X), other.predict(X))


@pytest.mark.slow
def test_early_stopping_stops_and_restores_the_best_epoch() -> None:
    # Pure noise, a wide net and a high learning rate: the training loss falls while the
    # held-out loss does not, so the patience runs out long before n_epochs.
    rng = np.random.default_rng(1)
    X = rng.normal(size=(160, 5, 3)).astype(np.float32)
    y = rng.normal(size=160).astype(np.float32)
    model = ALSTM(d_feat=3, hidden_size=32, lr=1e-2, n_epochs=200, early_stop=3,
                  valid_fraction=0.25, seed=0).fit(X, y)
    history = model.history
    losses = [h["valid_loss"] for h in history]
    assert len(history) < 200
    assert model.best_epoch == int(np.argmin(losses)) + 1
    assert len(history) == model.best_epoch + 3  # stopped after exactly `early_stop` misses
    assert 1 < model.best_epoch and losses[-1] > min(losses)  # restoring matters here
    # The returned weights are the best epoch's: their held-out loss is the best recorded.
    cut = int(len(X) * 0.75)
    held_out = float(np.mean((model.predict(X[cut:]) - y[cut:]) ** 2))
    assert held_out == pytest.approx(min(losses), rel=1e-5)
    assert model.state["best_valid_loss"] == min(losses)
    assert history[-1]["train_loss"] < history[0]["train_loss"]


@pytest.mark.slow
@pytest.mark.parametrize("fmt", ["json", "pt", "onnx", "pickle"])
def test_round_trip_through_the_store(fmt: str, dataset: Dataset, fitted: ALSTM,
                                      zoo: Any) -> None:
    key = f"models/alstm-{fmt}"
    manifest = zoo.save(fitted, key, format=fmt)
    assert manifest["adapter"] == "torch" and manifest["format"] == fmt
    loaded = zoo.load(key, trusted=fmt == "pickle")
    assert isinstance(loaded, ALSTM) and loaded is not fitted
    assert loaded.params == fitted.params and loaded.state == fitted.state
    expected = fitted.predict(dataset, "test")
    got = loaded.predict(dataset, "test")
    assert got.index.equals(expected.index)
    if fmt == "onnx":
        assert is_onnx_predictor(loaded.estimator)
        np.testing.assert_allclose(got.to_numpy(), expected.to_numpy(), rtol=0, atol=1e-5)
        # The export leaves the window length free: longer windows answer like torch too.
        X_long, _, _ = dataset.prepare("test", sequence=STEP + 7, labels=False)
        np.testing.assert_allclose(loaded.predict(X_long), fitted.predict(X_long), atol=1e-5)
    else:
        np.testing.assert_array_equal(got.to_numpy(), expected.to_numpy())


def test_built_by_name_through_the_plugin(zoo: Any) -> None:
    model = zoo.build("alstm", d_feat=10, hidden_size=8)
    assert isinstance(model, ALSTM) and model.params["hidden_size"] == 8
    assert "alstm" in {spec.name for spec in zoo.models()}
    with pytest.raises(ValueError, match="mse"):
        ALSTM(loss="mae")


def test_attention_weights_sum_to_one() -> None:
    torch.manual_seed(0)
    net = ALSTMNet(d_feat=4, hidden_size=8, num_layers=2).eval()
    x = torch.randn(5, 7, 4)
    with torch.no_grad():
        weights = net.attention_weights(x)
        out = net(x)
    assert weights.shape == (5, 7) and out.shape == (5,)
    torch.testing.assert_close(weights.sum(dim=1), torch.ones(5))
    assert bool((weights > 0).all())
    # The weights depend on the window (not a fixed average over time).
    assert not torch.allclose(weights[0], weights[1])
    # Any window length works: attention normalises over however many steps there are.
    with torch.no_grad():
        short = net.attention_weights(x[:, :3])
    torch.testing.assert_close(short.sum(dim=1), torch.ones(5))


def test_an_empty_valid_segment_holds_training_windows_out(dataset: Dataset) -> None:
    # A walk-forward fold whose valid dates have no rows must early-stop as a dataset without
    # a valid segment does (on the latest training windows), not on the training loss.
    train = SEGMENTS["train"]
    empty = dataset.with_segments(train=train, valid=("2030-01-01", "2030-03-31"))
    params = {**SMALL, "n_epochs": 2}
    model = ALSTM(**params).fit(empty)
    assert all(h["valid_loss"] is not None for h in model.history)
    without = ALSTM(**params).fit(dataset.with_segments(train=train))
    assert model.history == without.history


def test_a_fit_without_any_finite_loss_is_an_error_not_an_untrained_model() -> None:
    rng = np.random.default_rng(0)
    X = rng.normal(size=(60, 5, 3)).astype(np.float32)
    y = (3e19 * rng.choice([-1.0, 1.0], 60)).astype(np.float32)  # squared: inf in float32
    model = ALSTM(d_feat=3, hidden_size=8, n_epochs=5, early_stop=2)
    with pytest.raises(ValueError, match="diverged"):
        model.fit(X, y)
    assert not model.fitted and model.state == {}  # nothing half-fitted is left behind


def test_torch_threads_are_restored_when_fit_or_predict_fails(
        monkeypatch: pytest.MonkeyPatch) -> None:
    rng = np.random.default_rng(0)
    X = rng.normal(size=(40, 5, 3)).astype(np.float32)
    y = rng.normal(size=40).astype(np.float32)
    model = ALSTM(d_feat=3, hidden_size=8, n_epochs=1, num_threads=1).fit(X, y)
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        def boom(self: ALSTMNet, x: torch.Tensor) -> torch.Tensor:
            assert torch.get_num_threads() == 1  # the model's setting applies inside
            raise RuntimeError("boom")

        monkeypatch.setattr(ALSTMNet, "forward", boom)
        with pytest.raises(RuntimeError, match="boom"):
            ALSTM(d_feat=3, hidden_size=8, n_epochs=1, num_threads=1).fit(X, y)
        assert torch.get_num_threads() == 2
        with pytest.raises(RuntimeError, match="boom"):
            model.predict(X)
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)


# ------------------------------------------------------------------ qlib's network: the GRU

# From tests/data/qlib_alstm_oracle.py, run with pyqlib 0.9.7 and torch 2.13.0: the parameter
# count of qlib's own ALSTMModel(d_feat=6, hidden_size=64, num_layers=2) as its zoo classes
# build it (rnn_type left at qlib's "GRU") and with rnn_type="LSTM", and its scores for the
# script's four windows once every weight is set by the script's fill formula.
QLIB_ALSTM = {
    "GRU": {"parameters": 52609, "scores": [-0.12087854743003845, -0.13295437395572662,
                                            -0.05998542904853821, -0.12837082147598267]},
    "LSTM": {"parameters": 69249, "scores": [0.3938925266265869, 0.3929084539413452,
                                             0.39542901515960693, 0.39971739053726196]},
}
DATA = Path(__file__).parent / "data"


@pytest.mark.parametrize("rnn_type", ["GRU", "LSTM"])
def test_the_network_is_qlibs_parameter_for_parameter(rnn_type: str) -> None:
    net = ALSTMNet(d_feat=6, hidden_size=64, num_layers=2, rnn_type=rnn_type).eval()
    assert sum(p.numel() for p in net.parameters()) == QLIB_ALSTM[rnn_type]["parameters"]
    # The oracle's weights, by the oracle's rule: a sine over each parameter, its phase the
    # parameter's position in alphazoo's sorted names (which the script maps qlib's onto).
    spec = importlib.util.spec_from_file_location("qlib_alstm_weights",
                                                  DATA / "qlib_alstm_weights.py")
    weights = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(weights)
    net.load_state_dict({name: torch.from_numpy(weights.fill(tuple(value.shape), i))
                         for i, (name, value) in enumerate(sorted(net.state_dict().items()))})
    with torch.no_grad():
        scores = net(torch.from_numpy(weights.windows()))
    np.testing.assert_allclose(scores.numpy(), QLIB_ALSTM[rnn_type]["scores"], rtol=0,
                               atol=1e-6)


@pytest.mark.parametrize("fmt", ["json", "onnx"])
def test_a_gru_alstm_fits_saves_and_loads(fmt: str, dataset: Dataset, zoo: Any) -> None:
    model = ALSTM(n_epochs=2, rnn_type="GRU", **SMALL).fit(dataset)
    assert isinstance(model.estimator.rnn, torch.nn.GRU)
    zoo.save(model, f"models/alstm-gru-{fmt}", format=fmt)
    loaded = zoo.load(f"models/alstm-gru-{fmt}")
    assert loaded.params["rnn_type"] == "GRU"
    expected = model.predict(dataset, "test").to_numpy()
    np.testing.assert_allclose(loaded.predict(dataset, "test").to_numpy(), expected,
                               rtol=0, atol=1e-5 if fmt == "onnx" else 0)
    if fmt == "json":
        assert isinstance(loaded.estimator.rnn, torch.nn.GRU)


def test_a_bundle_saved_before_rnn_type_loads_as_the_lstm_it_is(tmp_path: Path) -> None:
    # Saved by the alphazoo before this option (see the .expected.json's "saved_by").
    expected = json.loads((DATA / "alstm-before-rnn-type.expected.json").read_text())
    assert "rnn_type" not in expected["params"]
    store = alphazoo.ObjectStore(tmp_path / "store")
    store.save_bytes("old/alstm", (DATA / "alstm-before-rnn-type.json.bundle").read_bytes())
    loaded = alphazoo.Zoo(store).load("old/alstm")
    assert loaded.params["rnn_type"] == "LSTM" and isinstance(loaded.estimator.rnn, torch.nn.LSTM)
    rows = np.array(expected["rows"], dtype=np.float32)
    np.testing.assert_array_equal(loaded.predict(rows), np.float32(expected["predict"]))


def test_the_qlib_preset_is_qlibs_training_loop(zoo: Any) -> None:
    model = zoo.build("alstm", preset="qlib", d_feat=10)
    # qlib 0.9.7's pytorch_alstm.ALSTM: n_epochs=200, lr=0.001, batch_size=2000,
    # early_stop=20, hidden_size=64, num_layers=2, dropout=0.0, and ALSTMModel's GRU.
    assert {k: model.params[k] for k in ALSTM.PRESETS["qlib"]} == {
        "rnn_type": "GRU", "n_epochs": 200, "batch_size": 2000, "early_stop": 20, "lr": 1e-3,
        "hidden_size": 64, "num_layers": 2, "dropout": 0.0}
    assert model.params["d_feat"] == 10 and "preset" not in model.params
    assert ALSTM.from_preset("qlib", d_feat=10, n_epochs=5).params["n_epochs"] == 5
    assert ALSTM().params["rnn_type"] == "LSTM"          # alphazoo's default is unchanged
    with pytest.raises(ValueError, match="no preset 'lean'"):
        zoo.build("alstm", preset="lean")
    with pytest.raises(ValueError, match="rnn_type"):
        ALSTM(rnn_type="RNN")
