"""The zoo's model interface, as in qlib: ``fit(dataset)`` / ``predict(dataset)``.

Every zoo model (``gbdt``, ``alstm``, keras ``lstm``/``cnn``/``mlp``, ``hmm_regime``, the
scikit-learn wrappers...) is a :class:`Model`. It learns from a
:class:`~alphazoo.contrib.dataset.Dataset` (its ``train`` segment, and ``valid`` for early
stopping) or from arrays, and predicts a score per row::

    model = zoo.build("gbdt")
    model.fit(dataset)                    # or model.fit(X, y)
    scores = model.predict(dataset)       # a Series on (datetime, instrument); or predict(X)
    zoo.save(model, "models/gbdt")        # through the LightGBM adapter, any of its formats
    again = zoo.load("models/gbdt")       # a gbdt Model again, fitted

A model wraps one library object, :attr:`Model.estimator`, plus a little JSON state (input
scaling, for one). Saving hands the estimator to its library's adapter, so every adapter format
works, ONNX included; the state rides in the bundle's manifest. A model loaded as ONNX predicts
through onnxruntime and cannot be saved again; ``fit`` trains it anew, as a native model.

Subclasses implement :meth:`Model._fit` and :meth:`Model._predict_native`; see
``contrib/xgboost_gbdt.py`` for a short one.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np

from alphazoo.errors import AlphazooError

__all__ = ["Model", "NotFittedError", "ModelParameterError", "is_onnx_predictor", "fit_scaling",
           "scale", "hold_out_tail", "is_dataset"]


class NotFittedError(AlphazooError, ValueError):
    """The model was asked to predict (or be saved) before it was fitted."""


class ModelParameterError(AlphazooError, ValueError):
    """A zoo model was built with a parameter it does not take, or a value it refuses; the
    message says what it takes instead."""


def is_onnx_predictor(estimator: Any) -> bool:
    """True for an estimator loaded from an ONNX bundle (predict only)."""
    # The keras adapter's predictor subclasses the shared one.
    return (any(cls.__name__ == "OnnxPredictor" for cls in type(estimator).__mro__)
            and hasattr(estimator, "session"))


def fit_scaling(X: np.ndarray) -> dict[str, list[float]]:
    """Per-feature mean and standard deviation over every axis but the last (rows, and the
    steps of windows), as JSON lists for a model's ``state``.

    A constant feature keeps a deviation of 1: centred, not blown up.
    """
    flat = np.asarray(X, dtype=np.float64).reshape(-1, np.shape(X)[-1])
    mean, std = flat.mean(axis=0), flat.std(axis=0)
    std[~(std > 1e-12)] = 1.0
    return {"mean": mean.tolist(), "std": std.tolist()}


def scale(X: np.ndarray, scaling: dict[str, Any]) -> np.ndarray:
    """``X`` standardised with :func:`fit_scaling`'s ``mean`` and ``std``, as float32."""
    return ((np.asarray(X, dtype=np.float64) - scaling["mean"]) / scaling["std"]).astype(
        np.float32)


def hold_out_tail(X: np.ndarray, y: np.ndarray, X_valid: np.ndarray | None,
                  y_valid: np.ndarray | None, fraction: float) -> tuple[Any, Any, Any, Any]:
    """``(X, y, X_valid, y_valid)`` with validation rows for early stopping.

    Rows given (a dataset's ``valid`` segment) are kept; when there are none (or none in the
    segment) the last ``fraction`` of the training rows is held out. Rows are in date order, so
    the held-out rows are the latest: nothing later trains on anything earlier's future.
    """
    if X_valid is not None and len(X_valid) == 0:
        X_valid = y_valid = None
    if X_valid is None and fraction > 0:
        cut = int(len(X) * (1 - fraction))
        if 0 < cut < len(X):
            return X[:cut], y[:cut], X[cut:], y[cut:]
    return X, y, X_valid, y_valid


class Model:
    """Base of the zoo's models: qlib's ``fit``/``predict`` over datasets or arrays.

    Class attributes a subclass sets: ``name`` (its zoo name), ``library`` (the library whose
    adapter stores the estimator), ``sequential`` (True for models over time windows of
    ``self.params["step_len"]`` rows) and ``classifier`` (True when the score is the
    probability of label 1).
    """

    name: ClassVar[str] = ""
    library: ClassVar[str] = ""
    #: True when the model reads windows ``(rows, step_len, features)`` rather than rows.
    sequential: ClassVar[bool] = False
    #: True when predictions are class probabilities of "up" (label_direction models).
    classifier: ClassVar[bool] = False
    #: Named parameter sets (``"qlib"``: qlib's defaults) for :meth:`from_preset`.
    PRESETS: ClassVar[dict[str, dict[str, Any]]] = {}

    @classmethod
    def from_preset(cls, preset: str, **overrides: Any) -> Model:
        """A model with the parameters of ``preset`` (see the class's ``PRESETS``), any
        ``overrides`` winning; ``zoo.build(name, preset=...)`` calls this. The preset's values
        are recorded as plain parameters, so the saved model needs no preset to load."""
        if preset not in cls.PRESETS:
            known = ", ".join(sorted(cls.PRESETS)) or "none"
            raise ValueError(f"{cls.name or cls.__name__} has no preset {preset!r} "
                             f"(presets: {known})")
        return cls(**{**cls.PRESETS[preset], **overrides})

    @classmethod
    def upgrade_params(cls, params: dict[str, Any]) -> dict[str, Any]:
        """Parameters recorded by an older alphazoo, as this one's constructor reads them (a
        parameter added since gets the value the old model had, not today's default)."""
        return params

    def __init__(self, **params: Any) -> None:
        self.params: dict[str, Any] = params
        self.estimator: Any = None
        self.state: dict[str, Any] = {}
        #: A few rows of the estimator's own input: the ONNX export's sample and parity check.
        self.sample: np.ndarray | None = None
        self.feature_names: list[str] | None = None

    # -- the public interface ----------------------------------------------------------------
    @property
    def fitted(self) -> bool:
        return self.estimator is not None

    def fit(self, data: Any, y: Any = None, **fit_params: Any) -> Model:
        """Fit on a Dataset (its ``train`` segment, or every row of a dataset without segments;
        ``valid`` for early stopping when present) or on ``X, y``.

        Returns the model itself, like scikit-learn.
        """
        X_valid = y_valid = None
        if is_dataset(data):
            if y is not None:
                raise TypeError("fit(dataset) takes the labels from the dataset; pass no y")
            if data.segments and not data.has_segment("train"):
                raise KeyError(f"the dataset has segments {', '.join(data.segments)} but no "
                               "'train' segment to fit on")
            segment = "train" if data.segments else None
            X, y, _ = data.prepare(segment, sequence=self._step_len())
            if data.has_segment("valid"):
                X_valid, y_valid, _ = data.prepare("valid", sequence=self._step_len())
            if y is None:
                raise ValueError("the dataset has no labels to learn from")
            feature_names: list[str] | None = data.feature_names
        else:
            feature_names = None  # arrays have no column names: forget a previous dataset's
            X = self._check_X(data)
            if y is not None:
                y = np.asarray(y, dtype=np.float32).reshape(-1)
                if len(y) != len(X):
                    raise ValueError(f"X has {len(X)} rows but y has {len(y)}")
                if not np.isfinite(y).all():
                    # A NaN label (a symbol's last bar) would train as "down" in a classifier.
                    raise ValueError(f"y has {int((~np.isfinite(y)).sum())} NaN or infinite "
                                     "labels; drop those rows first")
        if len(X) == 0:
            raise ValueError("no rows to fit on (is the train segment empty?)")
        self._fit(X, y, X_valid, y_valid, **fit_params)
        # Only once training worked: a failed fit leaves the fitted model as it was.
        self.feature_names = feature_names
        self.sample = np.ascontiguousarray(self._transform(X[:16]))
        return self

    def predict(self, data: Any, segment: str | None = "test") -> Any:
        """Scores for a Dataset segment (a Series on its index) or for an array ``X``.

        For a Dataset, ``segment`` names the rows (None = all rows; a segment the dataset
        does not have is an error), and its feature columns must be those the model was
        fitted on, in the same order. Classifiers score the probability that the label is 1.
        No rows give an empty result.
        """
        if not self.fitted:
            raise NotFittedError(
                f"this {self.name or type(self).__name__} model is not fitted yet: call "
                "fit(dataset) or fit(X, y) first, or load a fitted one with zoo.load(key)"
            )
        if is_dataset(data):
            import pandas as pd

            self._check_feature_names(data.feature_names)
            X, _, index = data.prepare(segment if data.segments else None,
                                       sequence=self._step_len(), labels=False)
            return pd.Series(self._scores(X), index=index, name="score")
        return self._scores(self._check_X(data))

    # -- what a subclass provides ------------------------------------------------------------
    def _fit(self, X: np.ndarray, y: np.ndarray | None, X_valid: np.ndarray | None,
             y_valid: np.ndarray | None, **fit_params: Any) -> None:
        """Train ``self.estimator`` (set it) on arrays; validation arrays may be None."""
        raise NotImplementedError

    def _predict_native(self, X: np.ndarray) -> np.ndarray:
        """Scores from the library's own estimator, on inputs already transformed."""
        raise NotImplementedError

    def _transform(self, X: np.ndarray) -> np.ndarray:
        """Inputs as the estimator sees them (scaling and the like, from ``self.state``)."""
        return X

    def _predict_onnx(self, X: np.ndarray) -> np.ndarray:
        """Scores from an ONNX predictor: the probability of class 1, or the value."""
        if self.classifier and hasattr(self.estimator, "predict_proba"):
            proba = np.asarray(self.estimator.predict_proba(X))
            return proba[:, -1] if proba.ndim == 2 else proba.reshape(-1)
        # Regressors, and exports whose single output is already P(up) (a sigmoid head).
        return np.asarray(self.estimator.predict(X)).reshape(len(X), -1)[:, -1]

    def adapter_save_options(self, format: str) -> dict[str, Any]:
        """Adapter save options this model prefers for ``format``; options the caller passes to
        :meth:`Zoo.save` win over them. Subclasses override this (the zoo's save hook calls
        it)."""
        return {}

    def adapter_load_options(self, format: str) -> dict[str, Any]:
        """Options the adapter needs to rebuild the estimator from a ``format`` bundle (torch's
        ``builder=``); the caller's load options win. Subclasses override this."""
        return {}

    # -- helpers -----------------------------------------------------------------------------
    def _scores(self, X: np.ndarray) -> np.ndarray:
        inputs = np.ascontiguousarray(self._transform(X), dtype=np.float32)
        # Checked here, on what the estimator receives, so a native and an ONNX load of the
        # same model refuse a wrong width alike (onnxruntime's own error is no ValueError).
        expected = _input_width(self.estimator)
        if expected is not None and inputs.shape[-1] != expected:
            raise ValueError(f"this {self.name or type(self).__name__} model takes {expected} "
                             f"features per row; X has {inputs.shape[-1]}")
        if len(inputs) == 0:  # libraries disagree on empty input; no rows, no scores
            return np.empty(0, np.float32)
        if is_onnx_predictor(self.estimator):
            return np.asarray(self._predict_onnx(inputs), dtype=np.float32)
        return np.asarray(self._predict_native(inputs), dtype=np.float32).reshape(-1)

    def _check_feature_names(self, names: list[str]) -> None:
        # Same width, other columns (or order): the estimator would score garbage silently.
        if self.feature_names is not None and list(names) != list(self.feature_names):
            raise ValueError(
                f"this {self.name or type(self).__name__} model was fitted on features "
                f"{self.feature_names}, but the dataset has {list(names)}; build the dataset "
                "with the same feature columns, in the same order"
            )

    def _step_len(self) -> int | None:
        return int(self.params.get("step_len", 20)) if self.sequential else None

    def _check_X(self, X: Any) -> np.ndarray:
        array = np.asarray(X, dtype=np.float32)
        want = 3 if self.sequential else 2
        if array.ndim != want:
            shape = "(rows, step_len, features)" if self.sequential else "(rows, features)"
            raise ValueError(f"{self.name or type(self).__name__} takes X of shape {shape}, "
                             f"got an array of shape {array.shape}")
        if not np.isfinite(array).all():
            raise ValueError("X has NaN or infinite values; drop or fill them first")
        return array

    def record(self) -> dict[str, Any]:
        """What the bundle stores besides the estimator: name, params and JSON state."""
        return {"model": self.name, "params": self.params, "state": self.state,
                "feature_names": self.feature_names}

    def restore(self, estimator: Any, record: dict[str, Any]) -> Model:
        """Attach a loaded estimator and the stored state (the inverse of :meth:`record`)."""
        self.estimator = estimator
        self.state = dict(record.get("state") or {})
        self.feature_names = record.get("feature_names")
        return self

    def __repr__(self) -> str:
        params = ", ".join(f"{k}={v!r}" for k, v in self.params.items())
        status = "fitted" if self.fitted else "not fitted"
        if is_onnx_predictor(self.estimator):
            status = "ONNX, predict only"
        return f"{type(self).__name__}({params}) [{status}]"


def _input_width(estimator: Any) -> int | None:
    """Features per row the estimator was fitted on, when it says (None otherwise)."""
    if is_onnx_predictor(estimator):
        shape = getattr(estimator, "input_shape", None)
        width = shape[-1] if shape else None
    else:
        width = getattr(estimator, "n_features_in_", None)
        if width is None and callable(getattr(estimator, "num_feature", None)):
            width = estimator.num_feature()  # a lightgbm.Booster
    return width if isinstance(width, int) else None


def is_dataset(data: Any) -> bool:
    """Whether ``data`` is a qlib-style dataset (it has ``prepare`` and ``segments``, as
    :class:`alphazoo.contrib.dataset.DatasetH` does) rather than arrays or frames."""
    return hasattr(data, "prepare") and hasattr(data, "segments")
