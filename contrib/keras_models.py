"""Keras ``lstm``, ``cnn`` and ``mlp``: the QuantConnect/LEAN documentation's networks.

Each default layer stack is the one a QuantConnect documentation page builds; only the output
head changes when ``loss="binary"`` (one sigmoid unit scoring P(up) instead of a linear value).

``mlp`` -- Writing Algorithms > Machine Learning > Popular Libraries > Keras, "Example 1:
    Multi-layer Perceptron Model"
    (https://www.quantconnect.com/docs/v2/writing-algorithms/machine-learning/popular-libraries/keras):
    ``Dense(10, relu) -> Dense(10, relu) -> Flatten -> Dense(1)``, mean squared error, Adam,
    5 epochs. The page feeds (5 days x 5 OHLCV changes); here the model reads one row of
    features, so its Flatten is a no-op kept to mirror the page. (The Research Environment
    version of the page compiles with ``RMSprop(0.001)``; the algorithm's Adam is the default.)
``lstm`` -- Research Environment > Applying Research > Long Short-Term Memory
    (https://www.quantconnect.com/docs/v2/research-environment/applying-research/long-short-term-memory):
    three ``LSTM(50)`` layers each followed by ``Dropout(0.2)``, then ``Dense(5) -> Dense(1)``;
    mean squared error, Adam, 20 epochs, batch 100, windows of 60 steps,
    ``EarlyStopping(patience=3, restore_best_weights=True)``.
``cnn`` -- QuantConnect's tutorial "Forecasting Stock Prices using a Temporal CNN Model"
    (https://www.quantconnect.com/research/15263/forecasting-stock-prices-using-a-temporal-cnn-model/):
    windows of 15 steps, ``Conv1D(30, 4, relu)``, its output split along time into three
    regions (long, mid, short term), a ``Conv1D(1, 1, relu)`` on each, concatenated, flattened,
    and a dense head; Adam, 20 epochs. The tutorial splits with ``Lambda(tf.split)`` layers,
    which hold Python code that Keras' safe mode refuses to load; ``Cropping1D`` layers cut the
    same three regions and load safely. Its head is a 3-class softmax (up/down/flat); here it is
    the one-unit head of the other two models.

All three standardise their inputs with the training rows' per-feature mean and standard
deviation (and a regressor its label, mapped back on output), kept in :attr:`Model.state` and
applied outside the network, so a bundle saved in any format (``keras``, ``json``, ``onnx``)
predicts exactly what the fitted model did. Early
stopping watches the dataset's ``valid`` segment (the training loss when there is none) and
restores the best epoch's weights. Keras is imported when a model is fitted, never at import.
"""

from __future__ import annotations

import contextlib
import random
import sys
from collections.abc import Iterator
from typing import Any, ClassVar

import numpy as np

from .model import Model, fit_scaling, scale

__all__ = ["KerasCNN", "KerasLSTM", "KerasMLP"]

_LOSSES = ("mse", "binary")
#: Up to this many rows are scored as one batch (predict_on_batch skips Keras' data pipeline).
_ONE_BATCH_ROWS = 65_536


class _KerasModel(Model):
    """What the three networks share: scaling, compile, early stopping, the ONNX score."""

    library = "keras"
    #: Keras layer class names of the documented stack, in order (tests compare against it).
    documented_layers: ClassVar[tuple[str, ...]] = ()

    def __init__(self, *, loss: str, epochs: int, batch_size: int, patience: int,
                 learning_rate: float, seed: int, verbose: int, **architecture: Any) -> None:
        if loss not in _LOSSES:
            raise ValueError(f"loss must be 'mse' or 'binary', got {loss!r}")
        for name, value in (("epochs", epochs), ("batch_size", batch_size)):
            if int(value) < 1:
                raise ValueError(f"{name} must be >= 1, got {value}")
        if int(patience) < 0:
            raise ValueError(f"patience must be >= 0 (0 = no early stopping), got {patience}")
        super().__init__(loss=loss, epochs=int(epochs), batch_size=int(batch_size),
                         patience=int(patience), learning_rate=float(learning_rate),
                         seed=int(seed), verbose=int(verbose), **architecture)

    @property
    def classifier(self) -> bool:  # type: ignore[override]
        return self.params["loss"] == "binary"

    @property
    def best_epoch(self) -> int | None:
        """The epoch (1-based) whose weights the fitted model kept; None before fit."""
        return self.state.get("best_epoch")

    # -- the network -------------------------------------------------------------------------
    def build(self, input_shape: tuple[int, ...]) -> Any:
        """The uncompiled Keras model for inputs of ``input_shape`` (without the batch axis)."""
        keras: Any = _keras()
        head = "sigmoid" if self.classifier else None
        return self._layers(keras, tuple(int(d) for d in input_shape), head)

    def _layers(self, keras: Any, input_shape: tuple[int, ...], head: str | None) -> Any:
        raise NotImplementedError

    # -- Model hooks -------------------------------------------------------------------------
    def _fit(self, X: np.ndarray, y: np.ndarray | None, X_valid: np.ndarray | None,
             y_valid: np.ndarray | None, **fit_params: Any) -> None:
        if y is None:
            raise ValueError(f"{self.name} learns a label: pass y or a dataset with labels")
        self._check_width(X, fitting=True)
        if self.classifier:
            for labels in (y, y_valid):
                if labels is not None and not np.isin(labels, (0.0, 1.0)).all():
                    raise ValueError(
                        f"{self.name} with loss='binary' learns 0/1 labels (label_direction); "
                        "these labels have other values (returns?): use loss='mse' for them"
                    )
        keras: Any = _keras()
        p = self.params
        scaling = fit_scaling(X)
        # A regressor learns the label standardised too: daily returns are ~0.01 wide, and
        # a freshly initialised network outputs ~1, so raw targets waste the first epochs.
        y_mean, y_std = 0.0, 1.0
        if not self.classifier:
            y_mean = float(np.mean(y, dtype=np.float64))
            y_std = float(np.std(y, dtype=np.float64)) or 1.0
        target = _target(y, self.classifier, y_mean, y_std)
        validation = None
        if X_valid is not None and y_valid is not None and len(X_valid):
            validation = (scale(X_valid, scaling),
                          _target(y_valid, self.classifier, y_mean, y_std))
        monitor = "val_loss" if validation is not None else "loss"
        callbacks = list(fit_params.pop("callbacks", []))
        with _seeded(keras, p["seed"]):  # weights, dropout masks and shuffling
            network = self.build(X.shape[1:])
            network.compile(optimizer=keras.optimizers.Adam(p["learning_rate"]),
                            loss="binary_crossentropy" if self.classifier else "mse")
            if p["patience"]:
                callbacks.append(keras.callbacks.EarlyStopping(
                    monitor=monitor, patience=p["patience"], restore_best_weights=True))
            history = network.fit(scale(X, scaling), target, epochs=p["epochs"],
                                  batch_size=p["batch_size"], validation_data=validation,
                                  callbacks=callbacks, verbose=p["verbose"], **fit_params)
        losses = [float(v) for v in history.history.get(monitor, [])]
        # EarlyStopping restores the best epoch's weights; without it the last epoch's stay.
        kept = (int(np.argmin(losses)) if p["patience"] else len(losses) - 1) if losses else None
        # Only now, once training worked: a failed fit leaves a fitted model as it was.
        self.estimator = network
        self.state = {**scaling, "y_mean": y_mean,
                      "y_std": y_std, "monitor": monitor,
                      "epochs_run": len(losses),
                      "best_epoch": None if kept is None else kept + 1,
                      "best_loss": None if kept is None else losses[kept]}

    def _transform(self, X: np.ndarray) -> np.ndarray:
        self._check_width(X)
        return scale(X, self.state)

    def _predict_native(self, X: np.ndarray) -> np.ndarray:
        if _is_onnx(self.estimator):
            # Model.is_onnx_predictor looks for the class name "OnnxPredictor"; the keras
            # adapter's subclass is "KerasOnnxPredictor" and lands here.
            return self._predict_onnx(X)
        if len(X) <= _ONE_BATCH_ROWS:
            out = self.estimator.predict_on_batch(X)
        else:
            out = self.estimator.predict(X, batch_size=_ONE_BATCH_ROWS, verbose=0)
        return self._unscale(np.asarray(out).reshape(len(X), -1)[:, 0])

    def _predict_onnx(self, X: np.ndarray) -> np.ndarray:
        # The keras adapter's ONNX predictor returns the network's output, (rows, 1): the
        # sigmoid's P(up) for loss="binary", the value otherwise. It has no predict_proba.
        return self._unscale(np.asarray(self.estimator.predict(X)).reshape(len(X), -1)[:, 0])

    # -- helpers -----------------------------------------------------------------------------
    def _unscale(self, out: np.ndarray) -> np.ndarray:
        """Network output in label units (a regressor learns the standardised label)."""
        if self.classifier:
            return out
        return (out * self.state.get("y_std", 1.0) + self.state.get("y_mean", 0.0)).astype(
            np.float32)

    def _check_width(self, X: np.ndarray, fitting: bool = False) -> None:
        want = self._step_len()
        if want is not None and X.ndim == 3 and X.shape[1] != want:
            raise ValueError(f"{self.name} was set up for windows of step_len={want} rows, got "
                             f"windows of {X.shape[1]}; build it with step_len={X.shape[1]}")
        # A refit may change the features: only a fitted model's inputs are held to its own.
        mean = self.state.get("mean") if self.fitted and not fitting else None
        if mean is not None and X.shape[-1] != len(mean):
            raise ValueError(f"{self.name} was fitted on {len(mean)} features, X has "
                             f"{X.shape[-1]}")


class KerasMLP(_KerasModel):
    """``mlp``: the LEAN Keras page's perceptron over one row of features.

    Parameters
    ----------
    hidden:
        Units of the ReLU ``Dense`` layers (the page: ``(10, 10)``).
    loss:
        ``"mse"`` regresses the label; ``"binary"`` puts a sigmoid unit on top and scores
        P(label == 1) (train it on ``label_direction``).
    epochs, batch_size, learning_rate:
        Adam's training run (the page: 5 epochs, Keras' batch of 32, Adam's 0.001).
    patience:
        Early stopping on the ``valid`` segment's loss, restoring the best weights (0 = off).
    seed, verbose:
        ``keras.utils.set_random_seed(seed)`` while building and training (the caller's
        Python, NumPy, TensorFlow and Keras random state is put back after); Keras' verbosity.
    """

    name = "mlp"
    documented_layers = ("Dense", "Dense", "Flatten", "Dense")

    def __init__(self, hidden: tuple[int, ...] | list[int] = (10, 10), loss: str = "mse",
                 epochs: int = 5, batch_size: int = 32, patience: int = 3,
                 learning_rate: float = 1e-3, seed: int = 0, verbose: int = 0) -> None:
        hidden = [int(h) for h in hidden]
        if not hidden or min(hidden) < 1:
            raise ValueError(f"hidden must list one or more positive widths, got {hidden}")
        super().__init__(hidden=hidden, loss=loss, epochs=epochs, batch_size=batch_size,
                         patience=patience, learning_rate=learning_rate, seed=seed,
                         verbose=verbose)

    def _layers(self, keras: Any, input_shape: tuple[int, ...], head: str | None) -> Any:
        layers = keras.layers
        stack = [keras.Input(input_shape)]
        stack += [layers.Dense(units, activation="relu") for units in self.params["hidden"]]
        stack += [layers.Flatten(), layers.Dense(1, activation=head)]
        return keras.Sequential(stack, name="mlp")


class KerasLSTM(_KerasModel):
    """``lstm``: the LEAN LSTM tutorial's stacked LSTM over windows of ``step_len`` rows.

    Parameters
    ----------
    step_len:
        Rows per window, oldest first (the tutorial: 60).
    units, layers, dropout:
        ``layers`` LSTM layers of ``units`` cells, each followed by ``Dropout(dropout)``
        (the tutorial: 3 x 50, 0.2).
    dense:
        Width of the linear ``Dense`` layer before the output (the tutorial: 5; 0 = none).
    loss, epochs, batch_size, patience, learning_rate, seed, verbose:
        As for :class:`KerasMLP`; the tutorial trains 20 epochs in batches of 100 with
        ``EarlyStopping(patience=3, restore_best_weights=True)``.
    """

    name = "lstm"
    sequential = True
    documented_layers = ("LSTM", "Dropout", "LSTM", "Dropout", "LSTM", "Dropout", "Dense",
                         "Dense")

    def __init__(self, step_len: int = 60, units: int = 50, layers: int = 3,
                 dropout: float = 0.2, dense: int = 5, loss: str = "mse", epochs: int = 20,
                 batch_size: int = 100, patience: int = 3, learning_rate: float = 1e-3,
                 seed: int = 0, verbose: int = 0) -> None:
        if int(step_len) < 1 or int(units) < 1 or int(layers) < 1 or int(dense) < 0:
            raise ValueError("step_len, units and layers must be >= 1 and dense >= 0")
        if not 0 <= dropout < 1:
            raise ValueError(f"dropout must be in [0, 1), got {dropout}")
        super().__init__(step_len=int(step_len), units=int(units), layers=int(layers),
                         dropout=float(dropout), dense=int(dense), loss=loss, epochs=epochs,
                         batch_size=batch_size, patience=patience,
                         learning_rate=learning_rate, seed=seed, verbose=verbose)

    def _layers(self, keras: Any, input_shape: tuple[int, ...], head: str | None) -> Any:
        p, layers = self.params, keras.layers
        stack = [keras.Input(input_shape)]
        for i in range(p["layers"]):
            stack.append(layers.LSTM(p["units"], return_sequences=i < p["layers"] - 1))
            if p["dropout"]:
                stack.append(layers.Dropout(p["dropout"]))
        if p["dense"]:
            stack.append(layers.Dense(p["dense"]))
        stack.append(layers.Dense(1, activation=head))
        return keras.Sequential(stack, name="lstm")


class KerasCNN(_KerasModel):
    """``cnn``: QuantConnect's temporal CNN over windows of ``step_len`` rows.

    A ``Conv1D(filters, kernel_size, relu)`` extracts features; its output is cut along time
    into ``regions`` consecutive parts (long, mid and short term for 3), each reduced by a
    ``Conv1D(1, 1, relu)``; the parts are concatenated, flattened and read by the output unit.

    Parameters
    ----------
    step_len:
        Rows per window, oldest first (the tutorial: 15).
    filters, kernel_size, regions:
        The tutorial's 30, 4 and 3. ``step_len - kernel_size + 1`` steps come out of the
        first convolution; they are shared out among the regions as evenly as possible.
    loss, epochs, batch_size, patience, learning_rate, seed, verbose:
        As for :class:`KerasMLP` (the tutorial: Adam, 20 epochs, Keras' batch of 32).
    """

    name = "cnn"
    sequential = True
    documented_layers = ("Conv1D", "Cropping1D", "Cropping1D", "Cropping1D", "Conv1D",
                         "Conv1D", "Conv1D", "Concatenate", "Flatten", "Dense")

    def __init__(self, step_len: int = 15, filters: int = 30, kernel_size: int = 4,
                 regions: int = 3, loss: str = "mse", epochs: int = 20, batch_size: int = 32,
                 patience: int = 3, learning_rate: float = 1e-3, seed: int = 0,
                 verbose: int = 0) -> None:
        if min(int(filters), int(kernel_size), int(regions)) < 1:
            raise ValueError("filters, kernel_size and regions must be >= 1")
        if int(step_len) - int(kernel_size) + 1 < int(regions):
            raise ValueError(
                f"step_len={step_len} with kernel_size={kernel_size} leaves "
                f"{int(step_len) - int(kernel_size) + 1} steps, fewer than regions={regions}")
        super().__init__(step_len=int(step_len), filters=int(filters),
                         kernel_size=int(kernel_size), regions=int(regions), loss=loss,
                         epochs=epochs, batch_size=batch_size, patience=patience,
                         learning_rate=learning_rate, seed=seed, verbose=verbose)

    def _layers(self, keras: Any, input_shape: tuple[int, ...], head: str | None) -> Any:
        p, layers = self.params, keras.layers
        inputs = keras.Input(input_shape)
        features = layers.Conv1D(p["filters"], p["kernel_size"], activation="relu")(inputs)
        steps = input_shape[0] - p["kernel_size"] + 1
        bounds = np.linspace(0, steps, p["regions"] + 1).round().astype(int)
        crops = [layers.Cropping1D((int(start), int(steps - end)))(features)
                 for start, end in zip(bounds[:-1], bounds[1:])]
        parts = [layers.Conv1D(1, 1, activation="relu")(crop) for crop in crops]
        merged = layers.Concatenate(axis=1)(parts) if len(parts) > 1 else parts[0]
        outputs = layers.Dense(1, activation=head)(layers.Flatten()(merged))
        return keras.Model(inputs, outputs, name="cnn")


@contextlib.contextmanager
def _seeded(keras: Any, seed: int) -> Iterator[None]:
    """Run the block under ``keras.utils.set_random_seed(seed)``, then put back what it set.

    ``set_random_seed`` reseeds Python's ``random``, NumPy's global generator, TensorFlow's
    global seed (when TF is installed), torch's (torch backend) and Keras' own; fitting a zoo
    model must not reset the caller's random streams.
    """
    py_state, np_state = random.getstate(), np.random.get_state()
    keras_state = _keras_seed_state()
    tf_state = _tf_seed_state()
    torch_rng: contextlib.AbstractContextManager[Any] = contextlib.nullcontext()
    if keras.backend.backend() == "torch":
        import torch

        torch_rng = torch.random.fork_rng(devices=[])
    try:
        with torch_rng:
            keras.utils.set_random_seed(seed)
            yield
    finally:
        random.setstate(py_state)
        np.random.set_state(np_state)
        _restore_keras_seed_state(keras_state)
        _restore_tf_seed_state(tf_state)


def _keras_seed_state() -> tuple[Any, ...] | None:
    # Keras keeps the seed and its global SeedGenerator in (private) thread-local state.
    try:
        from keras.src.backend.common import global_state
        from keras.src.random import seed_generator
        from keras.src.utils import rng_utils
    except ImportError:  # pragma: no cover - another Keras layout: nothing to restore
        return None
    names = (rng_utils.GLOBAL_RANDOM_SEED, seed_generator.GLOBAL_SEED_GENERATOR)
    return global_state, [(name, global_state.get_global_attribute(name)) for name in names]


def _restore_keras_seed_state(saved: tuple[Any, ...] | None) -> None:
    if saved is not None:
        global_state, values = saved
        for name, value in values:
            global_state.set_global_attribute(name, value)


def _tf_seed_state() -> tuple[Any, Any, Any]:
    """TF's eager global seed, its op-seed generator and that generator's state."""
    # tf.random.set_seed sets these on the eager context; TF has no public getter.
    context = _tf_context()
    if context is None:
        return None, None, None  # TF is not loaded yet: it would start unseeded
    rng = getattr(context, "_rng", None)
    return getattr(context, "_seed", None), rng, None if rng is None else rng.getstate()


def _restore_tf_seed_state(saved: tuple[Any, Any, Any]) -> None:
    context = _tf_context()
    if context is None:
        return
    seed, rng, state = saved
    context._seed = seed
    if rng is not None:
        rng.setstate(state)
    # Unseeded TF never reads the op-seed generator; None leaves it as found.
    context._rng = rng


def _tf_context() -> Any:
    if "tensorflow" not in sys.modules:  # never import TF just to look
        return None
    try:
        from tensorflow.python.eager import context
    except ImportError:  # pragma: no cover - a TF without the eager context module
        return None
    return context.context()


def _is_onnx(estimator: Any) -> bool:
    return hasattr(estimator, "session") and hasattr(estimator, "input_name")


def _keras() -> Any:
    from alphazoo.errors import require

    return require("keras", "keras", "the keras zoo models (lstm, cnn, mlp)")


def _target(y: np.ndarray, classifier: bool, mean: float, std: float) -> np.ndarray:
    y = np.asarray(y, dtype=np.float64).reshape(-1)
    return ((y > 0.5) if classifier else (y - mean) / std).astype(np.float32)
