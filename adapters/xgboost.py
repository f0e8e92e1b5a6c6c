"""xgboost adapter: XGBClassifier, XGBRegressor and Booster as xgboost's JSON, UBJ, pickle or ONNX.

=========  ====================================================  ==========================
format     what is stored                                        loads with
=========  ====================================================  ==========================
ubj        xgboost's binary JSON (UBJSON), the default: the      xgboost
           same model as json, 0.70x its size, read 3x faster
json       xgboost's own JSON model (no code runs; readable)     xgboost
pickle     the pickled object (runs code: trusted only)          xgboost
onnx       an onnxmltools graph, parity-checked when saved       onnxruntime only
=========  ====================================================  ==========================

**json and ubj** store exactly what ``model.save_model`` writes: the trees bit for bit
(``Booster.save_raw()`` of the loaded model equals the original's). For the scikit-learn
wrappers the manifest also records the wrapper class and its ``get_params()``, so the
bundle loads back as the same class (``XGBClassifier`` or ``XGBRegressor``; also
``XGBRFClassifier``, ``XGBRFRegressor``, ``XGBRanker``) with equal ``get_params()``, equal
``classes_`` and equal predictions. The class comes from that short list, never from a class
path in the bundle, since loading a safe format must not import what a bundle names. Not
stored: training history (``evals_result_``) and parameters that are code (a callable
objective or metric, callbacks): saving says which were left out; pickle keeps them. A
subclass of a wrapper loads as the xgboost class it derives from.

**onnx** converts the booster with ``onnxmltools.convert_xgboost`` (target opset at most 15,
the converter's limit; ``zoo.save(..., format="onnx", opset=N)`` picks a lower one) and
checks it against the native model on the training rows, and on copies of them with a
quarter of the values missing, before anything is written. An early-stopped wrapper exports
the trees its ``predict`` uses (up to ``best_iteration``); a ``missing`` other than NaN is
mapped to NaN in front of the trees, as xgboost skips both (needs opset >= 11).
Classifiers give ``predict`` (labels) and ``predict_proba`` (one float32 column per class);
regressors ``predict``. The bundle loads as an :class:`~alphazoo.adapters._onnx.OnnxPredictor`
that needs only numpy and onnxruntime. A classifying Booster (``binary:logistic``,
``multi:softprob``, ``multi:softmax``) exports the same way, so its predictor's ``predict``
gives labels where ``Booster.predict`` gives probabilities.

**Booster** objects round-trip in every format. ``Zoo.predict(booster, X)`` returns
``Booster.predict``'s own output (probabilities of class 1 for ``binary:logistic``, not labels):
``booster.predict(X)`` for a DMatrix, else ``booster.inplace_predict(X)``, the same numbers
without building a DMatrix (as the scikit-learn wrappers do); a numpy ``X`` is matched to the
booster's feature names by position, a DataFrame's names are checked.
``Zoo.train(booster, X, y, **kwargs)`` continues boosting: ``xgboost.train(params,
DMatrix(X, y), xgb_model=booster, **kwargs)``, where ``params=`` is the dict of booster
parameters and the rest are ``xgboost.train`` keywords
(``num_boost_round=10`` by default); it returns a new Booster and leaves the given one as is.

Nothing is imported from xgboost until a model is handled; whether a model is ours is decided
from its declared classes, ``xgboost.core.Booster`` and ``xgboost.sklearn.XGBModel``, looked up
in ``sys.modules`` (an xgboost model cannot exist unless xgboost is already imported). The
formats are declared once, as :class:`~alphazoo.adapters.base.Format` rows; the ONNX
conversion lives in :mod:`alphazoo.adapters._xgboost_onnx`.
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path
from typing import Any

from alphazoo.contracts import LoadRequest
from alphazoo.errors import BundleIntegrityError, UnsupportedFormatError, require
from alphazoo.hookspecs import hookimpl
from alphazoo.manifest_schema import ONNX_OUTPUTS, array, either, null, obj, string

from ._common import class_path, dump_pickle
from ._xgboost_onnx import MAX_ONNX_OPSET, ONNX_PRODUCERS, write_onnx
from .base import Adapter, Format, Saving, onnx_reader, pickle_format

__all__ = [
    "ADAPTER",
    "ESTIMATORS",
    "MAX_ONNX_OPSET",
    "ONNX_PRODUCERS",
    "owns",
    "xgboost_classifier",
    "xgboost_regressor",
]

#: The scikit-learn wrappers a json or ubj bundle can load back as, by name.
ESTIMATORS = ("XGBClassifier", "XGBRegressor", "XGBRFClassifier", "XGBRFRegressor", "XGBRanker")
_BOOSTER = "Booster"


# -- formats: xgboost's own write and read code --------------------------------------------------
def _trained_booster(model: Any, saving: Saving) -> Any:
    """The model's Booster, checked before any format writes: only pickle stores an unfitted
    wrapper. A wrapper's save also records scikit-learn, which it subclasses."""
    if not _is_booster(model):
        saving.record("scikit-learn")
    booster = _fitted_booster(model)
    if booster is None and saving.format != "pickle":
        raise UnsupportedFormatError(
            f"the {saving.format} format stores a trained model: fit {type(model).__name__} "
            "first (pickle can store an unfitted one)"
        )
    return booster


def _write_native(model: Any, path: Path, saving: Saving) -> None:
    """json and ubj: ``save_model``'s own file, plus the wrapper's class and parameters."""
    _trained_booster(model, saving)
    fmt, data = saving.format, saving.data
    if data["estimator"] is None:
        raise UnsupportedFormatError(
            f"the {fmt} format reloads Booster and the wrappers {', '.join(ESTIMATORS)}; "
            f"{class_path(model)} is none of them: save it with format='pickle'"
        )
    if data["estimator"] != _BOOSTER:
        params, left_out = _encode_params(model.get_params(deep=False))
        data["params"] = params
        if left_out:
            saving.notices.append(
                f"parameters that are code or have no JSON form are not stored: {left_out}; "
                "the loaded model predicts the same but a refit would use the defaults "
                "(format='pickle' keeps them)"
            )
        if type(model).__name__ != data["estimator"]:
            saving.notices.append(
                f"{class_path(model)} is stored as xgboost.{data['estimator']}: "
                "it loads as that class (format='pickle' keeps the subclass)"
            )
    model.save_model(str(path))  # the extension picks xgboost's JSON or UBJ writer


def _read_native(path: Path, request: LoadRequest) -> Any:
    """A json or ubj payload, loaded as the Booster or listed wrapper the manifest names."""
    fmt = request.manifest["format"]
    data = request.manifest.get("adapter_data") or {}
    xgboost: Any = require("xgboost", "xgboost", f"loading an xgboost {fmt} bundle")
    name = data.get("estimator")
    if name == _BOOSTER:
        return xgboost.Booster(model_file=str(path))
    if name not in ESTIMATORS:
        raise BundleIntegrityError(
            f"the manifest names the estimator {name!r}; an xgboost {fmt} bundle holds a "
            f"Booster or one of {', '.join(ESTIMATORS)}"
        )
    params = _decode(data.get("params") or {})
    cls = getattr(xgboost, name)
    # Parameters are constructor arguments or booster parameters (kwargs such as ``eta``);
    # a name like ``_Booster`` or ``classes_`` is fitted state, which the payload alone sets.
    odd = ([repr(params)] if not isinstance(params, dict) else
           sorted(k for k in params if not k.isidentifier() or k.startswith("_")
                  or k.endswith("_") or k == "kwargs"))
    if odd:
        raise BundleIntegrityError(
            f"the manifest's xgboost parameters {odd} are not parameter names: a json or ubj "
            "bundle sets fitted state only from its model file"
        )
    model = cls(**params)
    model.load_model(str(path))
    # load_model resets the parameters it reads from the booster (objective, base_score...);
    # put back the user's own, so get_params() and a refit match the saved model.
    constructor = cls().get_params(deep=False)
    for key, value in params.items():
        if key in constructor:
            setattr(model, key, value)
    return model


def _write_pickle(model: Any, path: Path, saving: Saving) -> None:
    _trained_booster(model, saving)
    dump_pickle(model, path)


def _write_onnx(model: Any, path: Path, saving: Saving) -> None:
    booster = _trained_booster(model, saving)
    write_onnx(model, booster, path, saving, lambda X: _booster_predict(booster, X))


def _describe(model: Any) -> dict[str, Any]:
    """The wrapper class a json or ubj bundle loads as; task, objective, classes once fitted."""
    facts: dict[str, Any] = {"estimator": _estimator_name(model)}
    booster = _fitted_booster(model)
    if booster is not None:
        facts.update(_learner_facts(model, booster))
    return facts


#: The adapter_data each format's loader reads (see :mod:`alphazoo.manifest_schema`).
_NATIVE_DATA = obj(optional={"estimator": either(string(), null), "params": either(obj(), null)})

ADAPTER = Adapter(
    "xgboost",
    library="xgboost",
    model_types=["xgboost.core.Booster", "xgboost.sklearn.XGBModel"],
    formats=[
        Format("json", "model.json", True, "xgboost's JSON model; no code runs on load",
               write=_write_native, read=_read_native,
               load_requires=("xgboost",), adapter_data=_NATIVE_DATA),
        # The default by measurement (benchmarks/peers.py): the same model bit for bit as json,
        # a round trip 3.3x faster and files 0.70x the size; xgboost's and MLflow's default too.
        Format("ubj", "model.ubj", True, "xgboost's binary JSON (UBJSON) model",
               write=_write_native, read=_read_native, default=True,
               load_requires=("xgboost",), adapter_data=_NATIVE_DATA),
        pickle_format(("xgboost",), write=_write_pickle),
        Format("onnx", "model.onnx", True, "onnxmltools graph served by onnxruntime",
               write=_write_onnx, read=onnx_reader("xgboost", ONNX_PRODUCERS),
               load_requires=("onnxruntime",), save_options=("opset",),
               records=("onnxmltools", "onnx", "onnxruntime"),
               adapter_data=obj(required={"task": string(), "outputs": ONNX_OUTPUTS},
                                optional={"classes": either(array(), null)})),
    ],
    records=("xgboost", "numpy"),
    describe=_describe,
    signature=lambda model, sample: _signature(_fitted_booster(model), sample),
    # Why a safe format of another library is wrong here (the host names whose it is).
    hints={"skops": "xgboost's own ubj or json is the safe format"},
)
owns = ADAPTER.owns

# The hooks pluggy finds on this module.
alphazoo_formats = ADAPTER.alphazoo_formats
alphazoo_model_types = ADAPTER.alphazoo_model_types
alphazoo_save = ADAPTER.alphazoo_save
alphazoo_load = ADAPTER.alphazoo_load


@hookimpl
def alphazoo_requirements() -> list[str]:
    # The first requirement names the adapter's own library: `alphazoo plugins` shows its
    # installed version.
    return ["xgboost>=2.1", "onnxmltools>=1.12", "onnxruntime>=1.19"]


@hookimpl
def alphazoo_register_models(register: Any) -> None:
    register("xgboost_classifier", xgboost_classifier, library="xgboost")
    register("xgboost_regressor", xgboost_regressor, library="xgboost")


@hookimpl
def alphazoo_train(model: Any, X: Any, y: Any, params: dict[str, Any]) -> Any:
    if not owns(model):
        return None
    if not _is_booster(model):
        return model.fit(X, y, **params)
    xgboost: Any = sys.modules["xgboost"]
    kwargs = dict(params)
    booster_params = kwargs.pop("params", None) or {}
    return xgboost.train(booster_params, _dmatrix(model, X, y), xgb_model=model, **kwargs)


@hookimpl
def alphazoo_predict(model: Any, X: Any) -> Any:
    if not owns(model):
        return None
    if _is_booster(model):
        return _booster_predict(model, X)
    return model.predict(X)


# -- zoo models ----------------------------------------------------------------------------------
def xgboost_classifier(
    n_estimators: int = 100, max_depth: int = 4, learning_rate: float = 0.1,
    random_state: int = 0, n_jobs: int = 1, **params: Any,
) -> Any:
    """Gradient-boosted trees classifier (xgboost XGBClassifier); labels 0..k-1.

    Small, deterministic defaults for daily bars; one thread keeps single-row prediction
    latency low (raise ``n_jobs`` for large training sets). Other keyword arguments go to
    ``XGBClassifier``.
    """
    xgboost: Any = require("xgboost", "xgboost", "this zoo model")
    return xgboost.XGBClassifier(n_estimators=n_estimators, max_depth=max_depth,
                                 learning_rate=learning_rate, random_state=random_state,
                                 n_jobs=n_jobs, **params)


def xgboost_regressor(
    n_estimators: int = 100, max_depth: int = 4, learning_rate: float = 0.1,
    random_state: int = 0, n_jobs: int = 1, **params: Any,
) -> Any:
    """Gradient-boosted trees regressor (xgboost XGBRegressor), squared error by default.

    Same defaults as ``xgboost_classifier``; other keyword arguments go to ``XGBRegressor``.
    """
    xgboost: Any = require("xgboost", "xgboost", "this zoo model")
    return xgboost.XGBRegressor(n_estimators=n_estimators, max_depth=max_depth,
                                learning_rate=learning_rate, random_state=random_state,
                                n_jobs=n_jobs, **params)


# -- helpers -------------------------------------------------------------------------------------
def _is_booster(model: Any) -> bool:
    return isinstance(model, sys.modules["xgboost"].Booster)


def _fitted_booster(model: Any) -> Any:
    """The model's Booster, or None for an unfitted wrapper."""
    if _is_booster(model):
        return model
    fitted = getattr(model, "__sklearn_is_fitted__", None)
    return model.get_booster() if fitted is not None and fitted() else None


def _estimator_name(model: Any) -> str | None:
    """``Booster`` or the nearest xgboost wrapper class of ``model`` in :data:`ESTIMATORS`."""
    if _is_booster(model):
        return _BOOSTER
    xgboost = sys.modules["xgboost"]
    for cls in type(model).__mro__:
        if cls.__name__ in ESTIMATORS and getattr(xgboost, cls.__name__, None) is cls:
            return cls.__name__
    return None


def _learner_facts(model: Any, booster: Any) -> dict[str, Any]:
    """Task, objective and classes of a fitted model, from its learner configuration."""
    learner = json.loads(booster.save_config())["learner"]
    objective = learner["objective"]["name"]
    facts: dict[str, Any] = {"objective": objective, "rounds": booster.num_boosted_rounds()}
    if _is_booster(model):
        classifier = objective.startswith(("binary:", "multi:"))
        ranker = objective.startswith("rank:")
    else:
        xgboost = sys.modules["xgboost"]
        classifier = isinstance(model, xgboost.XGBClassifier)  # XGBRFClassifier included
        ranker = isinstance(model, xgboost.XGBRanker)
    facts["task"] = "classification" if classifier else "ranking" if ranker else "regression"
    if classifier:
        n_classes = max(2, int(learner["learner_model_param"]["num_class"]))
        classes = getattr(model, "classes_", None)
        facts["classes"] = (list(range(n_classes)) if classes is None
                            else [c.item() if hasattr(c, "item") else c for c in classes])
    return facts


def _booster_predict(booster: Any, X: Any) -> Any:
    """``Booster.predict``'s output for ``X``: a DMatrix as given, other inputs in place.

    ``inplace_predict`` is what the scikit-learn wrappers call: the same numbers as
    ``predict(DMatrix(X))`` without building a DMatrix, which costs milliseconds per call on
    a busy machine (xgboost starts one thread per core for it). Unnamed columns (numpy) are
    taken by position; a DataFrame's names are checked against the booster's.
    """
    xgboost: Any = sys.modules["xgboost"]
    if isinstance(X, xgboost.DMatrix):
        return booster.predict(X)
    if not hasattr(X, "shape"):  # lists of rows
        X = sys.modules["numpy"].asarray(X)
    return booster.inplace_predict(X)


def _dmatrix(booster: Any, X: Any, y: Any = None) -> Any:
    """``X`` (and labels ``y``) as a DMatrix for ``booster``.

    Unnamed columns (a numpy array) take the booster's feature names by position, as the
    scikit-learn wrappers do; a DataFrame keeps its own, which xgboost checks.
    """
    xgboost: Any = sys.modules["xgboost"]
    if isinstance(X, xgboost.DMatrix):
        if y is not None:  # setting it would change the caller's DMatrix behind their back
            raise ValueError("X is a DMatrix: it carries its own labels, so pass y=None")
        return X
    names = booster.feature_names
    if names is not None and getattr(X, "columns", None) is None:
        return xgboost.DMatrix(X, label=y, feature_names=names,
                               feature_types=booster.feature_types)
    return xgboost.DMatrix(X, label=y)


def _signature(booster: Any, sample: Any) -> dict[str, Any]:
    n_features = booster.num_features() if booster is not None else None
    names = booster.feature_names if booster is not None else None
    dtype = getattr(sample, "dtype", None)
    return {
        "dtype": str(dtype) if dtype is not None else "float64",
        "shape": [None, n_features],
        "feature_names": [str(n) for n in names] if names is not None else None,
    }


class _NotJSON(Exception):
    """A parameter value with no faithful JSON form."""


def _encode_params(params: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """``get_params()`` as JSON values, and the names of those that have no JSON form."""
    encoded, left_out = {}, []
    for key, value in params.items():
        try:
            encoded[key] = _encode(value)
        except _NotJSON:
            left_out.append(key)
    return encoded, left_out


def _encode(value: Any) -> Any:
    # Tagged one-key dicts keep what JSON would blur: NaN (the default `missing`), tuples
    # (monotone constraints) and dicts, so that the decoded value compares equal.
    if value is None or isinstance(value, (bool, str, int)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else {"float": repr(value)}
    numpy = sys.modules.get("numpy")
    if numpy is not None and isinstance(value, numpy.generic):  # np.float32(0.5) and kin
        return _encode(value.item())
    if isinstance(value, list):
        return [_encode(v) for v in value]
    if isinstance(value, tuple):
        return {"tuple": [_encode(v) for v in value]}
    if isinstance(value, dict) and all(isinstance(k, str) for k in value):
        return {"dict": {k: _encode(v) for k, v in value.items()}}
    raise _NotJSON(type(value).__name__)


def _decode(value: Any) -> Any:
    if isinstance(value, list):
        return [_decode(v) for v in value]
    if isinstance(value, dict):
        if set(value) == {"float"}:
            return float(value["float"])
        if set(value) == {"tuple"}:
            return tuple(_decode(v) for v in value["tuple"])
        if set(value) == {"dict"}:
            return {k: _decode(v) for k, v in value["dict"].items()}
        return {k: _decode(v) for k, v in value.items()}  # the top level: name -> value
    return value
