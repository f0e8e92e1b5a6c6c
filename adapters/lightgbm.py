"""lightgbm adapter: Booster, LGBMClassifier, LGBMRegressor and LGBMRanker as text, pickle or ONNX.

=========  ====================================================  ==========================
format     what is stored                                        loads with
=========  ====================================================  ==========================
text       LightGBM's own model string, the default: every      lightgbm (no code runs)
           tree, bit-exact predictions
pickle     the pickled object (runs code: trusted only)          lightgbm
onnx       an onnxmltools graph, parity-checked when saved       onnxruntime only
=========  ====================================================  ==========================

**text** stores ``Booster.model_to_string(num_iteration=-1)``: every tree, including those
after the best iteration of an early-stopped model, and the pandas categories of a model
fitted on ``category`` columns. Predictions of the loaded model equal the original's bit for
bit (``predict_proba`` too). ``best_iteration`` is recorded in the manifest and set again on
load, so ``predict`` uses the same trees as before. For the scikit-learn wrappers
(``LGBMClassifier``, ``LGBMRegressor``, ``LGBMRanker``, ``LGBMModel``) the manifest also
holds ``get_params()`` and the fitted attributes ``predict`` reads (classes and their dtype,
feature counts, objective, ``best_iteration_``, ``best_score_``, whether it was fitted with
feature names) as JSON (:mod:`alphazoo.adapters._lightgbm_state`), so the bundle loads as the
same class with equal ``get_params()``. The class comes from that short list, never from a
class path in the bundle. Not stored: ``evals_result_`` and parameters that are code (saving
says which were left out); a callable objective is refused (pickle keeps it). Before LightGBM
parses a model string, the whole text is checked in Python
(:mod:`alphazoo.adapters._lightgbm_text`): LightGBM's C++ reader trusts offsets, counts and
child indexes in the text, so a hostile bundle could otherwise make it read out of bounds.

**onnx** converts with ``onnxmltools.convert_lightgbm`` (target opset at most
:data:`MAX_ONNX_OPSET`) and checks the graph against the native model on the training rows
(and on copies with a quarter of the values missing) before anything is written; an
early-stopped model exports the trees its ``predict`` uses. Categorical splits export (as
chains of equality branches) when the model was fitted on integer codes with
``categorical_feature=``. What it refuses, each as an error naming the text format: a model
fitted on pandas ``category`` columns (the graph takes floats; a served DataFrame would be
read as category values, not codes), linear trees (``linear_tree=True``: the converter drops
the leaves' linear models), a callable objective, objectives the converter does not know
(``cross_entropy``: :class:`~alphazoo.UnsupportedFormatError`) and those it converts into
something else (``multiclassova``, random forests: :class:`~alphazoo.OnnxParityError` from
the parity check). Classifiers give labels and probabilities; regressors and rankers values.
A classifying Booster (``binary``, ``multiclass``) exports as a classifier, so its
predictor's ``predict`` gives labels where ``Booster.predict`` gives probabilities.

``Zoo.predict(booster, X)`` returns ``Booster.predict(X)``; ``Zoo.train(booster, X, y,
**kwargs)`` continues boosting with ``lightgbm.train(params, Dataset(X, y),
init_model=booster, **kwargs)`` (``params``: the booster's own parameters, updated with a
``params=`` dict; ``num_boost_round=10`` by default) and returns the new Booster.

Nothing is imported from lightgbm until a model is handled; whether a model is ours is
decided from its declared classes, ``lightgbm.basic.Booster`` and
``lightgbm.sklearn.LGBMModel``, looked up in ``sys.modules``. As those are nearer in a
wrapper's MRO than scikit-learn's ``BaseEstimator``, this adapter, when loaded, takes the
wrappers from the scikit-learn adapter (which refuses them when this one is not loaded).
"""

from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import Any

from alphazoo.contracts import LoadRequest
from alphazoo.errors import BundleFormatError, BundleIntegrityError, UnsupportedFormatError, require
from alphazoo.hookspecs import hookimpl
from alphazoo.manifest_schema import (
    ONNX_OUTPUTS,
    array,
    boolean,
    either,
    integer,
    null,
    obj,
    string,
)

from ._common import class_path, dump_pickle
from ._lightgbm_onnx import MAX_ONNX_OPSET, ONNX_PRODUCERS, write_onnx
from ._lightgbm_state import (
    ESTIMATORS,
    decode_params,
    decode_scores,
    encode_params,
    encode_scores,
    fitted_state,
    rebuild,
)
from ._lightgbm_text import check_model_text
from .base import Adapter, Format, Saving, onnx_reader, pickle_format, read_payload

__all__ = [
    "ADAPTER",
    "ESTIMATORS",
    "MAX_ONNX_OPSET",
    "ONNX_PRODUCERS",
    "lightgbm_classifier",
    "lightgbm_regressor",
    "owns",
]

_BOOSTER = "Booster"
_DEFAULT_NAME = re.compile(r"Column_[0-9]+")
#: LightGBM's names for the number of boosting rounds (``num_iterations`` and its aliases).
_ROUND_ALIASES = frozenset({"num_iterations", "num_iteration", "n_iter", "num_tree", "num_trees",
                            "num_round", "num_rounds", "nrounds", "num_boost_round",
                            "n_estimators", "max_iter"})


# -- formats: lightgbm's own write and read code -------------------------------------------------
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


def _write_text(model: Any, path: Path, saving: Saving) -> None:
    """``model_to_string`` of every tree, plus the wrapper's class, parameters and state."""
    booster = _trained_booster(model, saving)
    data = saving.data
    if data["estimator"] is None:
        raise UnsupportedFormatError(
            f"the text format reloads Booster and the wrappers {', '.join(ESTIMATORS)}; "
            f"{class_path(model)} is none of them: save it with format='pickle'"
        )
    if data["estimator"] == _BOOSTER:
        data["best_iteration"] = int(booster.best_iteration)
        data["best_score"] = encode_scores(booster.best_score)
    else:
        data["state"] = fitted_state(model)
        params, left_out = encode_params(model.get_params(deep=False))
        data["params"] = params
        if left_out:
            saving.notices.append(
                f"parameters that are code or have no JSON form are not stored: {left_out}; "
                "the loaded model predicts the same but a refit would use the defaults "
                "(format='pickle' keeps them)"
            )
        if type(model).__name__ != data["estimator"]:
            saving.notices.append(
                f"{class_path(model)} is stored as lightgbm.{data['estimator']}: "
                "it loads as that class (format='pickle' keeps the subclass)"
            )
    # num_iteration=-1: every tree; the default would drop those after best_iteration.
    path.write_text(booster.model_to_string(num_iteration=-1), encoding="utf-8")


def _read_text(path: Path, request: LoadRequest) -> Any:
    """A text payload file: its size checked before it is read, then :func:`_read_text_bytes`."""
    return _read_text_bytes(read_payload(path, request.limits,
                                         f"{path.name} (LightGBM model string)"), request)


def _read_text_bytes(data: bytes, request: LoadRequest) -> Any:
    """A text payload: checked (:func:`check_model_text`), then parsed by LightGBM and, for a
    wrapper, rebuilt from the manifest's parameters and fitted state."""
    facts = request.manifest.get("adapter_data") or {}
    name = facts.get("estimator")
    if name != _BOOSTER and name not in ESTIMATORS:
        raise BundleIntegrityError(
            f"the manifest names the estimator {name!r}; a LightGBM text bundle holds a "
            f"Booster or one of {', '.join(ESTIMATORS)}"
        )
    text = check_model_text(data, request.limits)
    params = None if name == _BOOSTER else decode_params(facts.get("params") or {})
    lightgbm: Any = require("lightgbm", "lightgbm", "loading a LightGBM text bundle")
    try:
        booster = lightgbm.Booster(model_str=text)
    except (lightgbm.basic.LightGBMError, ValueError) as exc:
        raise BundleFormatError("model.txt", f"LightGBM could not read it: {exc}") from None
    try:
        if name == _BOOSTER:
            booster.best_iteration = int(facts.get("best_iteration", -1))
            booster.best_score = decode_scores(facts.get("best_score") or {})
            return booster
        if params is None or not isinstance(facts.get("state"), dict):
            raise BundleIntegrityError(f"the manifest has no fitted state for the {name}")
        return rebuild(name, params, facts["state"], booster, _objective(text))
    except (AttributeError, KeyError, TypeError, ValueError) as exc:
        # The host checked adapter_data against _TEXT_DATA; this catches what a schema
        # cannot say (a tagged float that is not one, a class map that does not fit).
        raise BundleIntegrityError(
            f"the manifest's fitted state for the {name} does not decode: "
            f"{type(exc).__name__}: {exc}") from None


def _objective(text: str) -> str:
    """The objective's name in the model string's header (``binary`` of ``objective=binary
    sigmoid:1``), or "" when it has none."""
    header = text[:text.find("\nTree=")]
    start = header.find("\nobjective=")
    if start < 0:
        return ""
    line = header[start + len("\nobjective="):].partition("\n")[0]
    return line.partition(" ")[0]


def _write_pickle(model: Any, path: Path, saving: Saving) -> None:
    _trained_booster(model, saving)
    dump_pickle(model, path)


def _write_onnx(model: Any, path: Path, saving: Saving) -> None:
    booster = _trained_booster(model, saving)
    write_onnx(model, booster, path, saving)


def _describe(model: Any) -> dict[str, Any]:
    """The class a text bundle loads as; task, objective and classes once fitted."""
    facts: dict[str, Any] = {"estimator": _estimator_name(model)}
    booster = _fitted_booster(model)
    if booster is not None:
        facts.update(_learner_facts(model, booster))
    return facts


#: The adapter_data the text loader reads (see :mod:`alphazoo.manifest_schema`).
_STATE = obj(
    required={"objective": either(string(), null), "n_features": integer(minimum=0),
              "n_features_in": integer(minimum=-1), "best_iteration": integer(minimum=-1),
              "best_score": obj(values=obj()), "fitted_with_feature_names": boolean()},
    optional={"classes": obj(required={"values": array(), "dtype": string()})},
)
_TEXT_DATA = obj(required={"estimator": string()},
                 optional={"params": either(obj(), null), "state": either(_STATE, null),
                           "best_iteration": integer(minimum=-1),
                           "best_score": either(obj(values=obj()), null)})

ADAPTER = Adapter(
    "lightgbm",
    library="lightgbm",
    model_types=["lightgbm.basic.Booster", "lightgbm.sklearn.LGBMModel"],
    formats=[
        Format("text", "model.txt", True, "LightGBM's own model string; no code runs on load",
               write=_write_text, read=_read_text, read_bytes=_read_text_bytes, default=True,
               load_requires=("lightgbm",), adapter_data=_TEXT_DATA),
        pickle_format(("lightgbm",), write=_write_pickle),
        Format("onnx", "model.onnx", True, "onnxmltools graph served by onnxruntime",
               write=_write_onnx, read=onnx_reader("lightgbm", ONNX_PRODUCERS),
               load_requires=("onnxruntime",), save_options=("opset",),
               records=("onnxmltools", "onnx", "onnxruntime"),
               adapter_data=obj(required={"task": string(), "outputs": ONNX_OUTPUTS},
                                optional={"classes": either(array(), null)})),
    ],
    records=("lightgbm", "numpy"),
    describe=_describe,
    signature=lambda model, sample: _signature(model, sample),
    hints={
        "json": "LightGBM's own text model string is the safe format: format='text'",
        "skops": "LightGBM's own text model string is the safe format: format='text'",
    },
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
    return ["lightgbm>=4.3", "onnxmltools>=1.12", "onnxruntime>=1.19"]


@hookimpl
def alphazoo_register_models(register: Any) -> None:
    register("lightgbm_classifier", lightgbm_classifier, library="lightgbm")
    register("lightgbm_regressor", lightgbm_regressor, library="lightgbm")


@hookimpl
def alphazoo_train(model: Any, X: Any, y: Any, params: dict[str, Any]) -> Any:
    if not owns(model):
        return None
    if not _is_booster(model):
        return model.fit(X, y, **params)
    lightgbm: Any = sys.modules["lightgbm"]
    kwargs = dict(params)
    # The booster's own parameters (its objective above all) unless the caller overrides
    # them; its round count would override num_boost_round, so it is left out.
    booster_params = {k: v for k, v in (model.params or {}).items() if k not in _ROUND_ALIASES}
    booster_params.update(kwargs.pop("params", None) or {})
    booster_params.setdefault("verbosity", -1)
    kwargs.setdefault("num_boost_round", 10)
    return lightgbm.train(booster_params, lightgbm.Dataset(X, label=y), init_model=model,
                          **kwargs)


@hookimpl
def alphazoo_predict(model: Any, X: Any) -> Any:
    if not owns(model):
        return None
    return model.predict(X)


# -- zoo models ----------------------------------------------------------------------------------
def lightgbm_classifier(
    n_estimators: int = 100, num_leaves: int = 15, learning_rate: float = 0.1,
    random_state: int = 0, n_jobs: int = 1, verbose: int = -1, **params: Any,
) -> Any:
    """Gradient-boosted trees classifier (LightGBM LGBMClassifier).

    Small, deterministic defaults for daily bars; one thread keeps single-row prediction
    latency low (raise ``n_jobs`` for large training sets) and ``verbose=-1`` keeps training
    quiet. Other keyword arguments go to ``LGBMClassifier``.
    """
    lightgbm: Any = require("lightgbm", "lightgbm", "this zoo model")
    return lightgbm.LGBMClassifier(n_estimators=n_estimators, num_leaves=num_leaves,
                                   learning_rate=learning_rate, random_state=random_state,
                                   n_jobs=n_jobs, verbose=verbose, **params)


def lightgbm_regressor(
    n_estimators: int = 100, num_leaves: int = 15, learning_rate: float = 0.1,
    random_state: int = 0, n_jobs: int = 1, verbose: int = -1, **params: Any,
) -> Any:
    """Gradient-boosted trees regressor (LightGBM LGBMRegressor), squared error by default.

    Same defaults as ``lightgbm_classifier``; other keyword arguments go to ``LGBMRegressor``.
    """
    lightgbm: Any = require("lightgbm", "lightgbm", "this zoo model")
    return lightgbm.LGBMRegressor(n_estimators=n_estimators, num_leaves=num_leaves,
                                  learning_rate=learning_rate, random_state=random_state,
                                  n_jobs=n_jobs, verbose=verbose, **params)


# -- helpers -------------------------------------------------------------------------------------
def _is_booster(model: Any) -> bool:
    return isinstance(model, sys.modules["lightgbm"].Booster)


def _fitted_booster(model: Any) -> Any:
    """The model's Booster, or None for an unfitted wrapper."""
    if _is_booster(model):
        return model
    fitted = getattr(model, "__sklearn_is_fitted__", None)
    return model.booster_ if fitted is not None and fitted() else None


def _estimator_name(model: Any) -> str | None:
    """``Booster`` or the nearest lightgbm wrapper class of ``model`` in :data:`ESTIMATORS`."""
    if _is_booster(model):
        return _BOOSTER
    lightgbm = sys.modules["lightgbm"]
    for cls in type(model).__mro__:
        if cls.__name__ in ESTIMATORS and getattr(lightgbm, cls.__name__, None) is cls:
            return cls.__name__
    return None


#: Objectives whose Booster predicts class probabilities.
CLASSIFYING_OBJECTIVES = ("binary", "multiclass", "multiclassova")


def _learner_facts(model: Any, booster: Any) -> dict[str, Any]:
    """Task, objective and classes of a fitted model."""
    objective = _booster_objective(booster)
    facts: dict[str, Any] = {"objective": objective,
                             "rounds": int(booster.current_iteration())}
    lightgbm = sys.modules["lightgbm"]
    if _is_booster(model):
        classifier = objective in CLASSIFYING_OBJECTIVES
        ranker = objective.startswith(("lambdarank", "rank_xendcg"))
    else:
        classifier = isinstance(model, lightgbm.LGBMClassifier)
        ranker = isinstance(model, lightgbm.LGBMRanker)
    facts["task"] = "classification" if classifier else "ranking" if ranker else "regression"
    if classifier:
        classes = getattr(model, "classes_", None)
        n_classes = max(2, booster.num_model_per_iteration())
        facts["classes"] = (list(range(n_classes)) if classes is None
                            else [c.item() if hasattr(c, "item") else c for c in classes])
    return facts


def _booster_objective(booster: Any) -> str:
    """The objective's name as the model string's header has it (``binary``, ``regression``)."""
    dumped = booster.model_to_string(num_iteration=1)  # the header and one iteration's trees
    for line in dumped.split("\n", 20)[:20]:
        if line.startswith("objective="):
            return line.partition("=")[2].split(" ")[0]
    return "custom"


def _signature(model: Any, sample: Any) -> dict[str, Any]:
    booster = _fitted_booster(model)
    n_features = booster.num_feature() if booster is not None else None
    names = booster.feature_name() if booster is not None else None
    if names is not None and all(_DEFAULT_NAME.fullmatch(n) for n in names):
        names = None  # LightGBM's Column_0, Column_1...: fitted on unnamed columns
    dtype = getattr(sample, "dtype", None)
    return {
        "dtype": str(dtype) if dtype is not None else "float64",
        "shape": [None, n_features],
        "feature_names": [str(n) for n in names] if names is not None else None,
    }
