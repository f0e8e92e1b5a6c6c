"""xgboost adapter: XGBClassifier, XGBRegressor and Booster as xgboost's JSON, UBJ, pickle or ONNX.

=========  ====================================================  ==========================
format     what is stored                                        loads with
=========  ====================================================  ==========================
json       xgboost's own JSON model (default; no code runs)      xgboost
ubj        xgboost's binary JSON (UBJSON): the same model,       xgboost
           smaller and faster to read
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
from ``sys.modules`` (an xgboost model cannot exist unless xgboost is already imported).
"""

from __future__ import annotations

import json
import math
import sys
from collections.abc import Callable
from typing import Any

from alphazoo.compat.installed import installed_versions as _versions
from alphazoo.contracts import FormatSpec, LoadRequest, SavedPayload, SaveRequest
from alphazoo.errors import BundleIntegrityError, UnsupportedFormatError, require
from alphazoo.hookspecs import hookimpl
from alphazoo.manifest_schema import ONNX_OUTPUTS, array, either, null, obj, string

from ._common import (
    check_options,
    choose_format,
    class_path,
    dump_pickle,
    load_pickle,
    payload_path,
)

__all__ = [
    "ADAPTER",
    "ESTIMATORS",
    "FORMATS",
    "MAX_ONNX_OPSET",
    "owns",
    "xgboost_classifier",
    "xgboost_regressor",
]

ADAPTER = "xgboost"
FORMATS = ("json", "ubj", "pickle", "onnx")
_FILES = {"json": "model.json", "ubj": "model.ubj", "pickle": "model.pkl", "onnx": "model.onnx"}
#: The scikit-learn wrappers a json or ubj bundle can load back as, by name.
ESTIMATORS = ("XGBClassifier", "XGBRegressor", "XGBRFClassifier", "XGBRFRegressor", "XGBRanker")
#: The highest ONNX opset onnxmltools' xgboost converter targets (1.16 raises above it).
MAX_ONNX_OPSET = 15
_BOOSTER = "Booster"
#: Other adapters' formats, named in the error when one is asked for an xgboost model.
_OTHER_FORMATS = {
    "skops": "skops is the scikit-learn adapter's format; xgboost's own JSON is the safe one",
    "pt": "pt is the torch adapter's format",
    "keras": "keras is the Keras adapter's format",
}


def owns(model: Any) -> bool:
    """True for xgboost Boosters and scikit-learn wrappers (``XGBModel`` subclasses), decided
    without importing xgboost: none can exist unless it is already imported."""
    xgboost = sys.modules.get("xgboost")
    if xgboost is None:
        return False
    kinds = tuple(k for k in (getattr(xgboost, "Booster", None), getattr(xgboost, "XGBModel", None))
                  if isinstance(k, type))
    return bool(kinds) and isinstance(model, kinds)


#: The adapter_data each format's loader reads (see :mod:`alphazoo.manifest_schema`).
_NATIVE_DATA = obj(optional={"estimator": either(string(), null), "params": either(obj(), null)})
_ONNX_DATA = obj(required={"task": string(), "outputs": ONNX_OUTPUTS},
                 optional={"classes": either(array(), null)})
#: The producer_name of the graphs this adapter's ONNX exporter (onnxmltools) writes.
ONNX_PRODUCERS = ("OnnxMLTools",)


# -- hooks ---------------------------------------------------------------------------------------
@hookimpl
def alphazoo_formats() -> list[FormatSpec]:
    return [
        FormatSpec("json", ADAPTER, True, "xgboost's JSON model; no code runs on load", True,
                   ("xgboost",), _NATIVE_DATA),
        FormatSpec("ubj", ADAPTER, True, "xgboost's binary JSON (UBJSON) model", False,
                   ("xgboost",), _NATIVE_DATA),
        FormatSpec("pickle", ADAPTER, False, "pickle; runs code on load, trusted only", False,
                   ("xgboost",)),
        FormatSpec("onnx", ADAPTER, True, "onnxmltools graph served by onnxruntime", False,
                   ("onnxruntime",), _ONNX_DATA),
    ]


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


@hookimpl
def alphazoo_save(request: SaveRequest) -> SavedPayload | None:
    model = request.model
    if not owns(model):
        return None
    fmt = choose_format("xgboost", request.format, FORMATS, "json", hints=_OTHER_FORMATS)
    check_options("xgboost", "save", request.options, ("opset",) if fmt == "onnx" else ())
    path = request.directory / _FILES[fmt]
    booster = _fitted_booster(model)
    if booster is None and fmt != "pickle":
        raise UnsupportedFormatError(
            f"the {fmt} format stores a trained model: fit {type(model).__name__} first "
            "(pickle can store an unfitted one)"
        )
    libraries = _versions("xgboost", "numpy")
    if not _is_booster(model):
        libraries.update(_versions("scikit-learn"))
    adapter_data: dict[str, Any] = {"estimator": _estimator_name(model)}
    if booster is not None:
        adapter_data.update(_describe(model, booster))
    notices: list[str] = []
    if fmt in ("json", "ubj"):
        if adapter_data["estimator"] is None:
            raise UnsupportedFormatError(
                f"the {fmt} format reloads Booster and the wrappers {', '.join(ESTIMATORS)}; "
                f"{class_path(model)} is none of them: save it with format='pickle'"
            )
        if adapter_data["estimator"] != _BOOSTER:
            params, left_out = _encode_params(model.get_params(deep=False))
            adapter_data["params"] = params
            if left_out:
                notices.append(
                    f"parameters that are code or have no JSON form are not stored: {left_out}; "
                    "the loaded model predicts the same but a refit would use the defaults "
                    "(format='pickle' keeps them)"
                )
            if type(model).__name__ != adapter_data["estimator"]:
                notices.append(
                    f"{class_path(model)} is stored as xgboost.{adapter_data['estimator']}: "
                    "it loads as that class (format='pickle' keeps the subclass)"
                )
        model.save_model(str(path))  # the extension picks xgboost's JSON or UBJ writer
    elif fmt == "pickle":
        dump_pickle(model, path)
    else:
        adapter_data.update(_save_onnx(model, booster, adapter_data, request, path))
        libraries.update(_versions("onnxmltools", "onnx", "onnxruntime"))
    return SavedPayload(
        adapter=ADAPTER,
        format=fmt,
        files=[path.name],
        model_class=class_path(model),
        libraries=libraries,
        adapter_data=adapter_data,
        input_signature=_signature(booster, request.sample),
        warnings=notices,
    )


@hookimpl
def alphazoo_load(request: LoadRequest) -> Any:
    manifest = request.manifest
    if manifest.get("adapter") != ADAPTER:
        return None
    check_options("xgboost", "load", request.options, ())
    fmt = manifest["format"]
    path = payload_path(request, _FILES)
    data = manifest.get("adapter_data") or {}
    if fmt == "pickle":  # the host's trust guard has already run
        return load_pickle(path)
    if fmt == "onnx":
        from ._onnx import OnnxPredictor
        from ._onnx_bounds import check_onnx

        check_onnx(path, request.limits, adapter=ADAPTER, producers=ONNX_PRODUCERS)
        signature = manifest.get("input") or {}
        return OnnxPredictor(
            str(path),
            task="classification" if data["task"] == "classification" else "regression",
            outputs=data["outputs"],
            classes=data.get("classes"),
            feature_names=signature.get("feature_names"),
        )
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


def _describe(model: Any, booster: Any) -> dict[str, Any]:
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


def _native(model: Any, booster: Any, data: dict[str, Any]) -> tuple[Callable[..., Any],
                                                                       Callable[..., Any] | None]:
    """The native predict and predict_proba that an ONNX export of ``model`` must match."""
    import numpy as np

    if not _is_booster(model):
        proba = getattr(model, "predict_proba", None) if data["task"] == "classification" else None
        return model.predict, proba
    if data["task"] != "classification":
        return (lambda X: _booster_predict(booster, X)), None
    objective = data["objective"]

    def raw(X: Any) -> Any:
        return _booster_predict(booster, X)

    if objective == "binary:logistic":
        def proba(X: Any) -> Any:
            p = raw(X)
            return np.column_stack([1.0 - p, p])

        # XGBClassifier's own rule: class 1 when its probability is above one half.
        return (lambda X: (raw(X) > 0.5).astype(np.int64)), proba
    if objective == "multi:softprob":
        return (lambda X: np.argmax(raw(X), axis=1)), raw
    if objective == "multi:softmax":
        return (lambda X: raw(X).astype(np.int64)), None
    raise UnsupportedFormatError(
        f"ONNX export of a Booster with objective {objective!r} is not supported: the "
        "classification objectives it exports are binary:logistic, multi:softprob and "
        "multi:softmax (save this one as json, ubj or pickle)"
    )


def _save_onnx(model: Any, booster: Any, data: dict[str, Any], request: SaveRequest,
               path: Any) -> dict[str, Any]:
    import numpy as np

    from ._onnx import OnnxPredictor, check_parity

    onnxmltools: Any = require("onnxmltools", "onnx", "the onnx format")
    from onnxmltools.convert.common.data_types import FloatTensorType

    opset = request.options.get("opset", MAX_ONNX_OPSET)
    if isinstance(opset, bool) or not isinstance(opset, int) or not 1 <= opset <= MAX_ONNX_OPSET:
        raise ValueError(f"opset must be an int from 1 to {MAX_ONNX_OPSET}, not {opset!r}")
    native_predict, native_proba = _native(model, booster, data)
    n_features = booster.num_features()
    sample, source = request.sample, "training rows"
    if sample is None:
        sample = np.random.default_rng(0).normal(size=(64, n_features))
        source = "synthetic normal rows (no training rows were recorded)"
    sample = np.asarray(sample, dtype=np.float32)
    missing = _missing_value(model)
    sample, missing_rows = _with_missing_rows(sample, missing)
    # The wrappers predict with the trees up to best_iteration after early stopping, while
    # onnxmltools exports every tree: export the ones predict uses.
    rounds = booster.num_boosted_rounds()
    best = None if _is_booster(model) else getattr(model, "best_iteration", None)
    plain = booster[: best + 1] if best is not None and best + 1 < rounds else booster
    # onnxmltools reads split features from the tree dump and understands only f0, f1...:
    # convert a copy without names (columns are positional in ONNX anyway).
    if plain.feature_names is not None:
        plain = plain.copy()
        plain.feature_names = None
    try:
        onx = onnxmltools.convert_xgboost(
            plain, initial_types=[("input", FloatTensorType([None, n_features]))],
            target_opset=opset,
        )
    except Exception as exc:  # the converter raises bare RuntimeErrors, KeyErrors...
        raise UnsupportedFormatError(
            f"onnxmltools could not convert this xgboost model (objective "
            f"{data['objective']!r}): {type(exc).__name__}: {exc}"
        ) from exc
    if missing is not None:
        _map_missing_to_nan(onx, missing, opset)
    path.write_bytes(onx.SerializeToString())
    classifier = data["task"] == "classification"
    if classifier:
        outputs = {"label": "label"}
        if native_proba is not None:  # multi:softmax exports margins, not probabilities
            outputs["probabilities"] = "probabilities"
    else:
        outputs = {"value": onx.graph.output[0].name}
    predictor = OnnxPredictor(str(path), task="classification" if classifier else "regression",
                              outputs=outputs, classes=data.get("classes"))
    parity = check_parity(native_predict, native_proba, predictor, sample,
                          request.parity_tolerance)
    parity["sample"] = source
    parity["missing_rows"] = missing_rows
    return {"outputs": outputs, "parity": parity,
            "opset": {d.domain or "ai.onnx": d.version for d in onx.opset_import},
            "target_opset": opset, "rounds_exported": plain.num_boosted_rounds()}


def _missing_value(model: Any) -> float | None:
    """The wrapper's ``missing`` when it is a number other than NaN, else None.

    xgboost skips NaN and ``missing`` alike when it walks a tree; the ONNX tree ensemble knows
    only NaN, so another ``missing`` needs a mapping in front of it (:func:`_map_missing_to_nan`).
    """
    missing = None if _is_booster(model) else getattr(model, "missing", None)
    if missing is None or math.isnan(float(missing)):
        return None
    return float(missing)


def _with_missing_rows(sample: Any, missing: float | None) -> tuple[Any, int]:
    """``sample`` and copies of it with a fixed quarter of the values missing (NaN, and the
    model's own ``missing`` value), so parity covers the trees' default directions too."""
    import numpy as np

    holes = np.random.default_rng(0).random(sample.shape) < 0.25
    copies = [np.where(holes, np.float32(value), sample)
              for value in (np.nan, missing) if value is not None]
    return np.concatenate([sample, *copies]), sum(len(c) for c in copies)


def _map_missing_to_nan(onx: Any, missing: float, target_opset: int) -> None:
    """Put ``Where(input == missing, NaN, input)`` in front of the exported trees."""
    import numpy as np
    from onnx import helper, numpy_helper

    graph = onx.graph
    default = [d for d in onx.opset_import if d.domain in ("", "ai.onnx")]
    opset = default[0].version if default else target_opset  # a regressor uses only ai.onnx.ml
    if opset < 11:  # Equal on floats
        raise UnsupportedFormatError(
            f"missing={missing!r} is mapped to NaN in the ONNX graph, which needs opset >= 11 "
            f"(this export targets {opset}): save with a higher opset or missing=np.nan"
        )
    if not default:
        onx.opset_import.append(helper.make_opsetid("", opset))
    source, mapped = graph.input[0].name, "alphazoo_input_missing_as_nan"
    for node in graph.node:
        node.input[:] = [mapped if name == source else name for name in node.input]
    graph.initializer.extend([
        numpy_helper.from_array(np.array(missing, dtype=np.float32), "alphazoo_missing"),
        numpy_helper.from_array(np.array(np.nan, dtype=np.float32), "alphazoo_nan"),
    ])
    first = [helper.make_node("Equal", [source, "alphazoo_missing"], ["alphazoo_is_missing"]),
             helper.make_node("Where", ["alphazoo_is_missing", "alphazoo_nan", source],
                              [mapped])]
    nodes = first + list(graph.node)
    del graph.node[:]
    graph.node.extend(nodes)
