"""Keras zoo models ``lstm``, ``cnn`` and ``mlp``: fit on the real feature set, predict, round
trip through a real store (keras, onnx, json), the documented layer stacks, early stopping.

One module fixture fits small versions of the three networks (few units, two epochs) on the
bundled panel's LEAN features; the documented default stacks are built, not trained.
"""

from __future__ import annotations

import numpy as np
import pytest

import alphazoo
from alphazoo.contrib.dataset import Dataset
from alphazoo.contrib.features import load_panel
from alphazoo.contrib.model import NotFittedError

keras = pytest.importorskip("keras", reason="the keras zoo models need keras")
pytest.importorskip("onnxruntime", reason="the onnx round trip needs onnxruntime")

from alphazoo.contrib.keras_models import KerasCNN, KerasLSTM, KerasMLP  # noqa: E402

# Trains real models or starts real processes and servers: deselect with -m 'not slow'.
pytestmark = pytest.mark.slow

SEGMENTS = {"train": ("2015-01-01", "2016-06-30"), "valid": ("2016-07-01", "2016-12-31"),
            "test": ("2017-01-01", "2017-12-31")}
SMALL = {
    "mlp": lambda: KerasMLP(hidden=(8, 8), epochs=2),
    "lstm": lambda: KerasLSTM(step_len=8, units=4, layers=2, dense=3, epochs=2),
    "cnn": lambda: KerasCNN(step_len=10, filters=4, kernel_size=4, epochs=2),
}


def _dataset(label: str) -> Dataset:
    return Dataset.from_bars(load_panel(), label=label, segments=SEGMENTS)


@pytest.fixture(scope="module")
def dataset() -> Dataset:
    return _dataset("label_return")


@pytest.fixture(scope="module")
def zoo(tmp_path_factory) -> alphazoo.Zoo:
    return alphazoo.Zoo(alphazoo.ObjectStore(tmp_path_factory.mktemp("keras-contrib")))


@pytest.fixture(scope="module")
def fitted(dataset) -> dict:
    return {name: make().fit(dataset) for name, make in SMALL.items()}


@pytest.fixture(scope="module")
def saved(fitted, zoo) -> dict:
    """Each fitted model saved as keras, onnx and json, then loaded again."""
    formats = {"mlp": ("keras", "onnx", "json"), "lstm": ("keras", "onnx", "json"),
               "cnn": ("keras", "onnx", "json")}
    loaded = {}
    for name, fmts in formats.items():
        for fmt in fmts:
            key = f"contrib/{name}/{fmt}"
            if fmt == "keras":  # the default format
                zoo.save(fitted[name], key)
            else:
                zoo.save(fitted[name], key, format=fmt)
            loaded[name, fmt] = zoo.load(key)
    return loaded


# -- fit and predict -----------------------------------------------------------------------------
@pytest.mark.parametrize("name", list(SMALL))
def test_fits_on_real_features_and_predicts_the_test_segment(fitted, dataset, name):
    model = fitted[name]
    scores = model.predict(dataset)
    _, _, index = dataset.prepare("test", sequence=model._step_len(), labels=False)
    assert scores.index.equals(index) and len(scores) > 200
    assert scores.dtype == np.float32 and np.isfinite(scores).all()
    assert scores.std() > 0  # the network reads its inputs: not one constant
    # Arrays give the same scores as the dataset interface.
    X, _, _ = dataset.prepare("test", sequence=model._step_len(), labels=False)
    np.testing.assert_allclose(model.predict(X), scores.to_numpy(), rtol=1e-6, atol=1e-7)
    # Inputs were standardised with the train rows' statistics, kept as JSON lists.
    X_train, _, _ = dataset.prepare("train", sequence=model._step_len())
    axes = tuple(range(X_train.ndim - 1))
    np.testing.assert_allclose(model.state["mean"], X_train.mean(axis=axes), rtol=1e-4,
                               atol=1e-6)
    assert isinstance(model.state["std"], list) and len(model.state["std"]) == 10


@pytest.mark.parametrize("cls", [KerasMLP, KerasLSTM, KerasCNN])
def test_predict_before_fit_is_a_clear_error(cls, dataset):
    with pytest.raises(NotFittedError, match="not fitted"):
        cls().predict(dataset)


def test_bad_input_shapes_are_clear_errors(fitted):
    with pytest.raises(ValueError, match=r"\(rows, step_len, features\)"):
        fitted["lstm"].predict(np.zeros((3, 10), np.float32))
    with pytest.raises(ValueError, match=r"\(rows, features\)"):
        fitted["mlp"].predict(np.zeros((3, 8, 10), np.float32))
    with pytest.raises(ValueError, match="fitted on 10 features"):
        fitted["mlp"].predict(np.zeros((3, 7), np.float32))
    with pytest.raises(ValueError, match="step_len=10"):
        fitted["cnn"].predict(np.zeros((3, 12, 10), np.float32))
    with pytest.raises(ValueError, match="loss must be"):
        KerasMLP(loss="hinge")
    with pytest.raises(ValueError, match="fewer than regions"):
        KerasCNN(step_len=5, kernel_size=4)


# -- the documented architectures ----------------------------------------------------------------
def _layers(network) -> list:
    return [layer for layer in network.layers if type(layer).__name__ != "InputLayer"]


def test_default_stacks_are_the_documented_ones():
    mlp, lstm, cnn = KerasMLP(), KerasLSTM(), KerasCNN()
    assert lstm.params["step_len"] == 60 and cnn.params["step_len"] == 15
    assert (lstm.params["epochs"], lstm.params["batch_size"], lstm.params["patience"]) == (
        20, 100, 3)
    assert mlp.params["epochs"] == 5 and cnn.params["epochs"] == 20

    net = mlp.build((10,))
    layers = _layers(net)
    assert [type(x).__name__ for x in layers] == list(KerasMLP.documented_layers)
    assert [x.units for x in layers if hasattr(x, "units")] == [10, 10, 1]
    assert [x.activation.__name__ for x in layers if hasattr(x, "units")] == [
        "relu", "relu", "linear"]

    net = lstm.build((60, 10))
    layers = _layers(net)
    assert [type(x).__name__ for x in layers] == list(KerasLSTM.documented_layers)
    assert [x.units for x in layers if type(x).__name__ == "LSTM"] == [50, 50, 50]
    assert [x.return_sequences for x in layers if type(x).__name__ == "LSTM"] == [
        True, True, False]
    assert [x.rate for x in layers if type(x).__name__ == "Dropout"] == [0.2, 0.2, 0.2]
    assert [x.units for x in layers if type(x).__name__ == "Dense"] == [5, 1]
    assert net.input_shape == (None, 60, 10)

    net = cnn.build((15, 10))
    layers = _layers(net)
    assert [type(x).__name__ for x in layers] == list(KerasCNN.documented_layers)
    convs = [x for x in layers if type(x).__name__ == "Conv1D"]
    assert [(c.filters, c.kernel_size, c.activation.__name__) for c in convs] == [
        (30, (4,), "relu"), (1, (1,), "relu"), (1, (1,), "relu"), (1, (1,), "relu")]
    # 15 - 4 + 1 = 12 steps cut into three regions of 4: long, mid and short term.
    crops = [x.cropping for x in layers if type(x).__name__ == "Cropping1D"]
    assert crops == [(0, 8), (4, 4), (8, 0)]
    assert layers[-1].units == 1 and net.output_shape == (None, 1)

    binary = KerasMLP(loss="binary")
    assert binary.classifier and not mlp.classifier
    assert _layers(binary.build((10,)))[-1].activation.__name__ == "sigmoid"


@pytest.mark.parametrize("name", list(SMALL))
def test_fitted_networks_compile_with_adam_and_mse(fitted, name):
    network = fitted[name].estimator
    assert type(network.optimizer).__name__ == "Adam"
    assert network.loss == "mse"


def test_early_stopping_watches_valid_and_restores_the_best_weights(dataset):
    # A high learning rate overfits within a few epochs, so the validation loss turns up.
    model = KerasMLP(hidden=(16, 16), epochs=30, batch_size=128, patience=2, learning_rate=0.03,
                     seed=3).fit(dataset)
    assert model.state["monitor"] == "val_loss"
    assert model.state["epochs_run"] < 30  # stopped early
    assert model.best_epoch == model.state["epochs_run"] - 2  # and went back two epochs
    X, y, _ = dataset.prepare("valid")
    # The kept weights are those of the best epoch: their validation loss (on the
    # standardised label) is the minimum Keras recorded, not the last epoch's.
    scaled = (model.predict(X) - model.state["y_mean"]) / model.state["y_std"]
    target = (y - model.state["y_mean"]) / model.state["y_std"]
    assert np.mean((scaled - target) ** 2) == pytest.approx(model.state["best_loss"], rel=1e-4)


def test_same_seed_gives_the_same_model(dataset, fitted):
    again = SMALL["mlp"]().fit(dataset)
    np.testing.assert_array_equal(again.predict(dataset), fitted["mlp"].predict(dataset))


# -- the store -----------------------------------------------------------------------------------
@pytest.mark.parametrize("name,fmt", [("mlp", "keras"), ("mlp", "onnx"), ("mlp", "json"),
                                      ("lstm", "keras"), ("lstm", "onnx"), ("lstm", "json"),
                                      ("cnn", "keras"), ("cnn", "onnx"), ("cnn", "json")])
def test_round_trip_through_the_store(fitted, saved, dataset, name, fmt):
    original, loaded = fitted[name], saved[name, fmt]
    assert type(loaded) is type(original) and loaded.params == original.params
    assert loaded.state == original.state and loaded.feature_names == dataset.feature_names
    if fmt == "onnx":
        assert "ONNX" in repr(loaded) or hasattr(loaded.estimator, "session")
    np.testing.assert_allclose(loaded.predict(dataset), original.predict(dataset), rtol=0,
                               atol=1e-5)


def test_binary_head_scores_probabilities_through_onnx(zoo):
    ds = _dataset("label_direction")
    model = KerasMLP(hidden=(8,), loss="binary", epochs=2).fit(ds)
    scores = model.predict(ds)
    assert ((scores > 0) & (scores < 1)).all() and scores.std() > 0
    zoo.save(model, "contrib/mlp-binary", format="onnx")
    loaded = zoo.load("contrib/mlp-binary")
    assert loaded.classifier
    np.testing.assert_allclose(loaded.predict(ds), scores, rtol=0, atol=1e-5)


def test_zoo_builds_the_contrib_names(zoo):
    assert type(zoo.build("lstm")) is KerasLSTM
    assert type(zoo.build("cnn", filters=8)) is KerasCNN
    assert type(zoo.build("mlp")) is KerasMLP


def test_fit_leaves_the_callers_random_state_as_found():
    import random

    from keras.src.utils import rng_utils
    from tensorflow.python.framework import random_seed

    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(64, 4)).astype(np.float32), rng.normal(size=64).astype(np.float32)

    def draws():
        return np.random.random(), random.random()

    np.random.seed(11)
    random.seed(12)
    expected = draws()
    np.random.seed(11)
    random.seed(12)
    seed_before, tf_before = rng_utils.get_random_seed(), random_seed.get_seed(None)
    KerasMLP(hidden=(4,), epochs=1, seed=5).fit(X, y)
    assert draws() == expected
    assert rng_utils.get_random_seed() == seed_before
    assert random_seed.get_seed(None) == tf_before
    # A caller's own TF seed and its stream of op seeds carry on as if no fit happened.
    import tensorflow as tf

    tf.random.set_seed(21)
    first = random_seed.get_seed(None)
    tf.random.set_seed(21)
    KerasMLP(hidden=(4,), epochs=1, seed=5).fit(X, y)
    assert random_seed.get_seed(None) == first
    tf.random.set_seed(None)


def test_binary_loss_refuses_labels_that_are_not_0_or_1(dataset):
    # label_return under loss="binary" used to be thresholded at 0.5: every label became 0.
    with pytest.raises(ValueError, match="0/1 labels"):
        KerasMLP(hidden=(4,), loss="binary", epochs=1).fit(dataset)


def test_a_fitted_model_can_be_refitted_on_other_features():
    rng = np.random.default_rng(1)
    X = rng.normal(size=(64, 5)).astype(np.float32)
    y = X[:, 0].copy()
    model = KerasMLP(hidden=(4,), epochs=1).fit(X, y)
    model.fit(X[:, :3], y)  # another feature set: the old width must not be enforced
    assert len(model.state["mean"]) == 3 and model.predict(X[:, :3]).shape == (64,)
    with pytest.raises(ValueError, match="fitted on 3 features"):
        model.predict(X)
