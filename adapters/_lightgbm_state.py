"""The scikit-learn wrappers of LightGBM as JSON: parameters and fitted state, no pickle.

A text bundle of ``LGBMClassifier``, ``LGBMRegressor``, ``LGBMRanker`` or ``LGBMModel`` holds
the booster's model string (the trees) and, in the manifest, what the wrapper adds to it:
``get_params()`` (:func:`encode_params`) and the fitted attributes its ``predict`` and
``predict_proba`` read (:func:`fitted_state`): the classes and their dtype, the feature
counts, the objective, ``best_iteration_`` and ``best_score_``, whether it was fitted with
feature names. :func:`rebuild` makes the wrapper again from those, for a class taken from
:data:`ESTIMATORS` by name, never from a class path in the bundle.

Not stored: ``evals_result_`` (training history) and parameters that are code (a callable
objective or metric); nothing here imports lightgbm before a model is handled.
"""

from __future__ import annotations

import math
import sys
from typing import Any

from alphazoo.errors import BundleIntegrityError, UnsupportedFormatError

__all__ = ["ESTIMATORS", "MAX_THREADS", "OBJECTIVE_FAMILIES", "THREAD_PARAMS", "decode_params",
           "decode_scores", "encode_params", "encode_scores", "fitted_state", "rebuild"]

#: The scikit-learn wrappers a text bundle loads back as, by name.
ESTIMATORS = ("LGBMClassifier", "LGBMRegressor", "LGBMRanker", "LGBMModel")
#: Parameters that set how many threads ``predict`` starts: a bundle may not ask for more.
THREAD_PARAMS = ("n_jobs", "num_threads", "num_thread", "nthread", "nthreads")
MAX_THREADS = 1024
#: LightGBM's objectives (as its model string names them) by what they fit: a wrapper must not
#: hold trees fitted for another family (an LGBMRanker over a regression objective ranks by
#: regressed values; an LGBMClassifier over one thresholds them). Objectives outside these
#: (cross_entropy, custom) are left to the wrapper.
OBJECTIVE_FAMILIES = {
    "classification": ("binary", "multiclass", "multiclassova"),
    "ranking": ("lambdarank", "rank_xendcg"),
    "regression": ("regression", "regression_l1", "huber", "fair", "poisson", "quantile",
                   "mape", "gamma", "tweedie"),
}
#: The families each wrapper's trees may not come from.
_FOREIGN = {"LGBMClassifier": ("ranking", "regression"),
            "LGBMRegressor": ("classification", "ranking"),
            "LGBMRanker": ("classification", "regression")}
# numpy dtype kinds the classes may have: bool, integers, floats, unicode, object (strings).
_CLASS_KINDS = "biufUO"


class _NotJSON(Exception):
    """A parameter value with no faithful JSON form."""


def encode_params(params: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """``get_params()`` as JSON values, and the names of those that have no JSON form."""
    encoded, left_out = {}, []
    for key, value in params.items():
        try:
            encoded[key] = _encode(value)
        except _NotJSON:
            left_out.append(key)
    return encoded, left_out


def _encode(value: Any) -> Any:
    # Tagged one-key dicts keep what JSON would blur: NaN and infinities, tuples, and dicts
    # whose keys are not strings (a class_weight of {0: 1.0, 1: 3.0}).
    if value is None or isinstance(value, (bool, str, int)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else {"float": repr(value)}
    numpy = sys.modules.get("numpy")
    if numpy is not None and isinstance(value, numpy.generic):
        return _encode(value.item())
    if isinstance(value, list):
        return [_encode(v) for v in value]
    if isinstance(value, tuple):
        return {"tuple": [_encode(v) for v in value]}
    if isinstance(value, dict):
        return {"items": [[_encode(k), _encode(v)] for k, v in value.items()]}
    raise _NotJSON(type(value).__name__)


def decode_params(params: Any) -> dict[str, Any]:
    """The parameters :func:`encode_params` stored, as ``get_params()`` gave them.

    Raises :class:`~alphazoo.BundleIntegrityError` for names that are not parameters (fitted
    state such as ``_Booster`` or ``classes_`` comes only from the model string and the
    checked fitted state, never from the parameters).
    """
    if not isinstance(params, dict):
        raise BundleIntegrityError(f"the manifest's LightGBM parameters are {type(params)}, "
                                   "not an object")
    odd = sorted(k for k in params if not k.isidentifier() or k.startswith("_")
                 or k.endswith("_") or k == "kwargs")
    if odd:
        raise BundleIntegrityError(
            f"the manifest's LightGBM parameters {odd} are not parameter names: a text bundle "
            "sets fitted state only from its model string"
        )
    try:
        decoded = {k: _decode(v) for k, v in params.items()}
    except (TypeError, ValueError) as exc:
        raise BundleIntegrityError(f"the manifest's LightGBM parameters do not decode: {exc}"
                                   ) from None
    for key in THREAD_PARAMS:
        value = decoded.get(key)
        if value is not None and not (isinstance(value, int) and not isinstance(value, bool)
                                      and -MAX_THREADS <= value <= MAX_THREADS):
            raise BundleIntegrityError(
                f"the manifest's LightGBM parameter {key}={value!r} is not a thread count "
                f"from -{MAX_THREADS} to {MAX_THREADS}"
            )
    return decoded


def _decode(value: Any) -> Any:
    if isinstance(value, list):
        return [_decode(v) for v in value]
    if isinstance(value, dict):
        if set(value) == {"float"}:
            return float(value["float"])
        if set(value) == {"tuple"}:
            return tuple(_decode(v) for v in value["tuple"])
        if set(value) == {"items"}:
            return {_key(k): _decode(v) for k, v in value["items"]}
        raise ValueError(f"untagged object {sorted(value)[:5]}")
    return value


def _key(value: Any) -> Any:
    key = _decode(value)
    if isinstance(key, (list, dict)):
        raise ValueError("a dict key is a list or dict")
    return key


def fitted_state(model: Any) -> dict[str, Any]:
    """What a fitted wrapper's ``predict`` reads beyond its booster and parameters.

    Raises :class:`~alphazoo.UnsupportedFormatError` for a callable objective, which changes
    what ``predict`` returns and cannot be stored as JSON.
    """
    objective = model._objective
    if callable(objective):
        raise UnsupportedFormatError(
            "the text format stores a LightGBM wrapper's objective by name; this one is a "
            "function: save it with format='pickle'"
        )
    state: dict[str, Any] = {
        "objective": objective,
        "n_features": int(model._n_features),
        "n_features_in": int(model._n_features_in),
        "best_iteration": int(model._best_iteration),
        "best_score": encode_scores(model._best_score),
        "fitted_with_feature_names": bool(model._fitted_with_feature_names),
    }
    classes = getattr(model, "_classes", None)
    if classes is not None:
        if classes.dtype.kind not in _CLASS_KINDS or (
                classes.dtype.kind == "O" and not all(isinstance(c, str) for c in classes)):
            raise UnsupportedFormatError(
                f"the text format stores classes that are numbers, booleans or strings; these "
                f"are {classes.dtype} ({classes[:3]!r}...): save with format='pickle'"
            )
        state["classes"] = {"values": [c.item() if hasattr(c, "item") else c for c in classes],
                            "dtype": classes.dtype.str if classes.dtype.kind != "O" else "O"}
    return state


def encode_scores(scores: Any) -> dict[str, dict[str, Any]]:
    """``best_score_`` ({data set: {metric: value}}) as JSON values."""
    return {str(name): {str(metric): _encode(float(value)) for metric, value in metrics.items()}
            for name, metrics in dict(scores or {}).items()}


def decode_scores(scores: Any) -> dict[str, dict[str, float]]:
    """``best_score_`` back from :func:`fitted_state`'s form."""
    return {name: {metric: float(_decode(value)) for metric, value in metrics.items()}
            for name, metrics in scores.items()}


def rebuild(name: str, params: dict[str, Any], state: dict[str, Any], booster: Any,
            objective: str = "") -> Any:
    """The wrapper ``name`` (one of :data:`ESTIMATORS`) with ``params``, fitted with
    ``booster`` and the ``state`` :func:`fitted_state` recorded.

    ``objective`` is the model string's (``binary``, ``lambdarank``...): a wrapper whose trees
    were fitted for another kind of task (:data:`OBJECTIVE_FAMILIES`), or classes that do not
    fit it (one class for a binary model), raise :class:`~alphazoo.BundleIntegrityError`.
    """
    lightgbm: Any = sys.modules["lightgbm"]
    if name not in ESTIMATORS:
        raise BundleIntegrityError(
            f"the manifest names the estimator {name!r}; a LightGBM text bundle holds a "
            f"Booster or one of {', '.join(ESTIMATORS)}"
        )
    for family in _FOREIGN.get(name, ()):
        if objective in OBJECTIVE_FAMILIES[family]:
            raise BundleIntegrityError(
                f"the manifest names the estimator {name}, but the model string's trees were "
                f"fitted for {family} (objective {objective!r}); the manifest does not "
                "describe this model")
    try:
        model = getattr(lightgbm, name)(**params)
    except TypeError as exc:
        raise BundleIntegrityError(f"the manifest's parameters do not build {name}: {exc}"
                                   ) from None
    booster.best_iteration = int(state["best_iteration"])
    model._Booster = booster
    model._objective = state["objective"]
    model._n_features = int(state["n_features"])
    model._n_features_in = int(state["n_features_in"])
    model._best_iteration = int(state["best_iteration"])
    model._best_score = decode_scores(state.get("best_score") or {})
    model._fitted_with_feature_names = bool(state["fitted_with_feature_names"])
    model._evals_result = {}
    if model._n_features != booster.num_feature():
        raise BundleIntegrityError(
            f"the manifest says {model._n_features} features; the model string has "
            f"{booster.num_feature()}"
        )
    classes = state.get("classes")
    if classes is not None:
        model._classes = _classes(classes)
        model._n_classes = len(model._classes)
        encoder = _label_encoder()
        encoder.classes_ = model._classes
        model._le = encoder
        model._class_map = {c: i for i, c in enumerate(model._classes)}
        weight = model.class_weight
        model._class_weight = ({model._class_map[k]: v for k, v in weight.items()}
                               if isinstance(weight, dict) else weight)
        expected = 1 if model._n_classes <= 2 else model._n_classes
        if objective == "binary" and model._n_classes != 2:
            raise BundleIntegrityError(
                f"the manifest lists {model._n_classes} classes; the model string is a binary "
                "model (objective 'binary'), which has 2")
        if booster.num_model_per_iteration() != expected:
            raise BundleIntegrityError(
                f"the manifest lists {model._n_classes} classes; the model string has "
                f"{booster.num_model_per_iteration()} trees per iteration"
            )
    elif isinstance(model, lightgbm.LGBMClassifier):
        raise BundleIntegrityError("the manifest records no classes for an LGBMClassifier")
    model.fitted_ = True
    return model


def _classes(recorded: Any) -> Any:
    """The classes array from its recorded values and dtype."""
    import numpy as np

    try:
        dtype = np.dtype(recorded["dtype"]) if recorded["dtype"] != "O" else np.dtype(object)
        values = recorded["values"]
        if dtype.kind not in _CLASS_KINDS or not isinstance(values, list):
            raise ValueError(f"dtype {dtype}")
        if dtype.kind == "O":
            array = np.empty(len(values), dtype=object)
            array[:] = [str(v) for v in values]
            return array
        return np.asarray(values, dtype=dtype)
    except (TypeError, ValueError, KeyError) as exc:
        raise BundleIntegrityError(f"the manifest's classes do not decode: {exc}") from None


def _label_encoder() -> Any:
    """The label encoder LGBMClassifier.fit makes (lightgbm's own subclass where it has one)."""
    encoder: Any = getattr(sys.modules["lightgbm.sklearn"], "_LGBMLabelEncoder", None)
    if encoder is None:  # lightgbm before 4.6 used scikit-learn's own
        from sklearn.preprocessing import LabelEncoder

        encoder = LabelEncoder
    return encoder()
