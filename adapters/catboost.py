"""catboost adapter: CatBoostClassifier, CatBoostRegressor, CatBoostRanker and CatBoost as
CatBoost's own binary model, its JSON model, ONNX or pickle.

=========  ====================================================  ==========================
format     what is stored                                        loads with
=========  ====================================================  ==========================
cbm        CatBoost's binary model (``save_model`` format        catboost (no code runs)
           ``cbm``), the default: every model CatBoost trains,
           categorical and text features included; bit-exact
json       CatBoost's JSON model (readable); not for text or     catboost (no code runs)
           embedding features
onnx       CatBoost's own ONNX export, parity-checked when       onnxruntime only
           saved; not for categorical, text or embedding
           features, non-symmetric trees or multi-target losses
pickle     the pickled object (runs code: trusted only)          catboost
=========  ====================================================  ==========================

**cbm** stores exactly what ``model.save_model(path)`` writes (its bytes are the payload): the
trees, the CTR tables of categorical features, the class names and the training parameters
CatBoost keeps in a model. A loaded model predicts bit for bit what the saved one did, with
equal ``classes_``; it is safe in that no Python code runs (CatBoost's C++ reader parses a
flatbuffers core), with the limits :mod:`alphazoo.adapters._catboost_native` describes (the
framing is checked before CatBoost reads it; a crafted core can still crash CatBoost, so
sign bundles that others can write). Loading reads the verified bytes from memory
(``load_model(stream=...)``): no file is written for it.

**json** stores ``save_model(path, format="json")``, safe in the same sense as cbm (no code
runs; alphazoo parses the document and checks its splits against its feature tables before
CatBoost reads it, but CatBoost's reader is not hardened, so sign shared stores). CatBoost
refuses to write it for models with text or embedding features (its JSON has no place for their
processing); that refusal, and any other, is an :class:`~alphazoo.UnsupportedFormatError` at
save, and each JSON file is read back with CatBoost before it is stored, so a json bundle that
exists loads. CatBoost's JSON holds leaf values as 17-digit decimals, but its reader parses
some of them one unit in the last place off (CatBoost 1.2.10): predictions agree within about
1e-15, not bit for bit, and labels agree except where a probability sits within that distance
of the threshold.

**onnx** is CatBoost's own exporter (:mod:`alphazoo.adapters._catboost_onnx` says what it
refuses and what alphazoo changes in the graph: classifiers give ``predict_proba`` as a
float32 tensor). Checked against the native model on the training rows and on copies with a
quarter of the values missing before anything is written; it loads as an
:class:`~alphazoo.adapters._onnx.OnnxPredictor` that needs only numpy and onnxruntime, with
float32 rounding (probabilities within 1e-6).

Every loaded model is built as the CatBoost class the manifest names from a fixed list
(:data:`ESTIMATORS`), never from a class path in the bundle; a subclass of one loads as that
class (``pickle`` keeps the subclass). ``get_params()`` of a loaded model are the parameters
CatBoost stored in it: the ones given at construction plus ``loss_function``, with
``verbose=False`` stored as 0.

Nothing is imported from catboost until a model is handled; whether a model is ours is decided
from its declared class, ``catboost.core.CatBoost``, looked up in ``sys.modules``.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from alphazoo.contracts import LoadRequest
from alphazoo.errors import BundleFormatError, BundleIntegrityError, UnsupportedFormatError, require
from alphazoo.hookspecs import hookimpl
from alphazoo.manifest_schema import ONNX_OUTPUTS, array, either, integer, null, obj, string

from ._catboost_native import load_cbm, load_json, save_native
from ._catboost_onnx import CLASSIFICATION_LOSSES, ONNX_PRODUCERS, onnx_refusal, write_onnx
from ._common import class_path, dump_pickle
from .base import Adapter, Format, Saving, onnx_reader, pickle_format, read_payload

__all__ = [
    "ADAPTER",
    "ESTIMATORS",
    "ONNX_PRODUCERS",
    "catboost_classifier",
    "catboost_regressor",
    "onnx_refusal",
    "owns",
]

#: The CatBoost classes a cbm or json bundle loads back as, by name.
ESTIMATORS = ("CatBoostClassifier", "CatBoostRegressor", "CatBoostRanker", "CatBoost")


# -- formats: CatBoost's own write and read code ------------------------------------------------
def _check_fitted(model: Any, saving: Saving) -> None:
    """Only pickle stores an unfitted model; cbm, json and onnx hold trained trees."""
    if saving.format != "pickle" and not model.is_fitted():
        raise UnsupportedFormatError(
            f"the {saving.format} format stores a trained model: fit {type(model).__name__} "
            "first (pickle can store an unfitted one)"
        )


def _write_native(model: Any, path: Path, saving: Saving) -> None:
    """cbm and json: ``save_model``'s own file; json is read back before it is kept."""
    _check_fitted(model, saving)
    name = saving.data["estimator"]
    if name is None:
        raise UnsupportedFormatError(
            f"the {saving.format} format reloads {', '.join(ESTIMATORS)}; "
            f"{class_path(model)} is none of them: save it with format='pickle'"
        )
    if type(model).__name__ != name:
        saving.notices.append(f"{class_path(model)} is stored as catboost.{name}: it loads "
                              "as that class (format='pickle' keeps the subclass)")
    if saving.format == "json" and (model.get_text_feature_indices()
                                    or model.get_embedding_feature_indices()):
        raise UnsupportedFormatError(
            "CatBoost's JSON model cannot hold text or embedding features: save this model "
            "as 'cbm' (the default) or 'pickle'"
        )
    save_native(model, path, saving.format)
    if saving.format == "json":
        _check_json_reloads(model, path)


def _check_json_reloads(model: Any, path: Path) -> None:
    """Refuse a JSON file CatBoost wrote but cannot read back as the same trees."""
    try:
        again = load_json(type(model), path, None)
    except BundleFormatError as exc:
        raise UnsupportedFormatError(
            f"CatBoost wrote this model as JSON but cannot read the file back ({exc.problem}); "
            "save it as 'cbm' (the default) or 'pickle'"
        ) from None
    if again.tree_count_ != model.tree_count_ or list(again.feature_names_) != list(
            model.feature_names_):
        raise UnsupportedFormatError(
            "CatBoost's JSON file of this model reads back as a different model; save it as "
            "'cbm' (the default) or 'pickle'"
        )


def _estimator_class(request: LoadRequest) -> type:
    fmt = request.manifest["format"]
    catboost: Any = require("catboost", "catboost", f"loading a CatBoost {fmt} bundle")
    name = (request.manifest.get("adapter_data") or {}).get("estimator")
    if name not in ESTIMATORS:
        raise BundleIntegrityError(
            f"the manifest names the estimator {name!r}; a CatBoost {fmt} bundle holds one of "
            f"{', '.join(ESTIMATORS)}"
        )
    return getattr(catboost, name)


def _read_cbm_bytes(data: bytes, request: LoadRequest) -> Any:
    return _recorded(load_cbm(_estimator_class(request), data, request.limits), request)


def _read_cbm(path: Path, request: LoadRequest) -> Any:
    return _read_cbm_bytes(read_payload(path, request.limits), request)


def _read_json(path: Path, request: LoadRequest) -> Any:
    return _recorded(load_json(_estimator_class(request), path, request.limits), request)


def _recorded(model: Any, request: LoadRequest) -> Any:
    """``model``, after checking it has the trees and features the manifest recorded, and a
    loss its estimator class serves (a CatBoostRanker over a classifier's Logloss ranks by
    log-odds; a CatBoostClassifier over RMSE thresholds regressed values)."""
    data = request.manifest.get("adapter_data") or {}
    found = {"trees": model.tree_count_, "n_features": len(model.feature_names_)}
    for fact, value in found.items():
        if fact in data and data[fact] != value:
            raise BundleFormatError(
                f"model.{request.manifest['format']}",
                f"holds a model with {fact}={value}, the manifest records {data[fact]!r}")
    loss = str(model.get_all_params().get("loss_function", ""))
    name = type(model).__name__
    classifies = loss in CLASSIFICATION_LOSSES
    if (name == "CatBoostClassifier" and not classifies) or (
            name in ("CatBoostRegressor", "CatBoostRanker") and classifies):
        raise BundleIntegrityError(
            f"the manifest names the estimator {name}, but the model was trained with the "
            f"loss {loss!r}, which {name} does not serve; the manifest does not describe "
            "this model")
    recorded = data.get("loss_function")
    if isinstance(recorded, str) and recorded and recorded != loss:
        raise BundleIntegrityError(f"the manifest records the loss {recorded!r}; the model was "
                                   f"trained with {loss!r}")
    return model


def _write_pickle(model: Any, path: Path, saving: Saving) -> None:
    _check_fitted(model, saving)
    dump_pickle(model, path)


def _write_onnx(model: Any, path: Path, saving: Saving) -> None:
    _check_fitted(model, saving)
    write_onnx(model, path, saving)


def _describe(model: Any) -> dict[str, Any]:
    """The class a cbm or json bundle loads as; task, loss, classes and features once fitted."""
    facts: dict[str, Any] = {"estimator": _estimator_name(model)}
    if not model.is_fitted():
        return facts
    loss = str(model.get_all_params().get("loss_function", ""))
    catboost = sys.modules["catboost"]
    if isinstance(model, catboost.CatBoostClassifier) or (
            not isinstance(model, (catboost.CatBoostRegressor, catboost.CatBoostRanker))
            and loss in CLASSIFICATION_LOSSES):
        task = "classification"
    elif isinstance(model, catboost.CatBoostRanker):
        task = "ranking"
    else:
        task = "regression"
    facts.update(task=task, loss_function=loss, trees=int(model.tree_count_),
                 n_features=len(model.feature_names_),
                 cat_features=[int(i) for i in model.get_cat_feature_indices()])
    if task == "classification":
        facts["classes"] = [c.item() if hasattr(c, "item") else c for c in model.classes_]
    return facts


_NATIVE_DATA = obj(required={"estimator": string(ESTIMATORS)},
                   optional={"trees": integer(1), "n_features": integer(1)})

ADAPTER = Adapter(
    "catboost",
    library="CatBoost",
    model_types=["catboost.core.CatBoost"],
    formats=[
        Format("cbm", "model.cbm", True,
               "CatBoost's binary model; no code runs on load (a crafted file can crash "
               "CatBoost: sign shared stores)",
               write=_write_native, read=_read_cbm, read_bytes=_read_cbm_bytes, default=True,
               load_requires=("catboost",), adapter_data=_NATIVE_DATA),
        Format("json", "model.json", True,
               "CatBoost's JSON model; no code runs on load (a crafted file can crash "
               "CatBoost: sign shared stores)",
               write=_write_native, read=_read_json,
               load_requires=("catboost",), adapter_data=_NATIVE_DATA),
        Format("onnx", "model.onnx", True, "CatBoost's ONNX export served by onnxruntime",
               write=_write_onnx, read=onnx_reader("catboost", ONNX_PRODUCERS),
               load_requires=("onnxruntime",), records=("onnx", "onnxruntime"),
               adapter_data=obj(required={"task": string(), "outputs": ONNX_OUTPUTS},
                                optional={"classes": either(array(), null)})),
        pickle_format(("catboost",), write=_write_pickle),
    ],
    records=("catboost", "numpy"),
    describe=_describe,
    signature=lambda model, sample: _signature(model, sample),
    hints={
        "skops": "CatBoost's own cbm is the safe format",
        "ubj": "CatBoost's binary format is cbm",
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
    return ["catboost>=1.2.5", "onnxruntime>=1.19"]


@hookimpl
def alphazoo_register_models(register: Any) -> None:
    register("catboost_classifier", catboost_classifier, library="catboost")
    register("catboost_regressor", catboost_regressor, library="catboost")


@hookimpl
def alphazoo_train(model: Any, X: Any, y: Any, params: dict[str, Any]) -> Any:
    if not owns(model):
        return None
    return model.fit(X, y, **params)


@hookimpl
def alphazoo_predict(model: Any, X: Any) -> Any:
    if not owns(model):
        return None
    return model.predict(X)


# -- zoo models ----------------------------------------------------------------------------------
def catboost_classifier(
    iterations: int = 200, depth: int = 4, learning_rate: float = 0.1, random_seed: int = 0,
    thread_count: int = 1, verbose: bool = False, allow_writing_files: bool = False,
    **params: Any,
) -> Any:
    """Gradient-boosted oblivious trees classifier (CatBoost CatBoostClassifier).

    Quiet and tidy by default: no progress lines (``verbose=False``) and no ``catboost_info``
    folder of training logs in the working directory (``allow_writing_files=False``). One
    thread keeps training from taking every core of a shared machine and single-row latency
    low (raise ``thread_count`` for large training sets). Pass ``cat_features=[...]`` for
    categorical columns. Other keyword arguments go to ``CatBoostClassifier``.
    """
    catboost: Any = require("catboost", "catboost", "this zoo model")
    return catboost.CatBoostClassifier(
        iterations=iterations, depth=depth, learning_rate=learning_rate,
        random_seed=random_seed, thread_count=thread_count, verbose=verbose,
        allow_writing_files=allow_writing_files, **params)


def catboost_regressor(
    iterations: int = 200, depth: int = 4, learning_rate: float = 0.1, random_seed: int = 0,
    thread_count: int = 1, verbose: bool = False, allow_writing_files: bool = False,
    **params: Any,
) -> Any:
    """Gradient-boosted oblivious trees regressor (CatBoost CatBoostRegressor), RMSE by default.

    Same defaults as ``catboost_classifier``; other keyword arguments go to
    ``CatBoostRegressor``.
    """
    catboost: Any = require("catboost", "catboost", "this zoo model")
    return catboost.CatBoostRegressor(
        iterations=iterations, depth=depth, learning_rate=learning_rate,
        random_seed=random_seed, thread_count=thread_count, verbose=verbose,
        allow_writing_files=allow_writing_files, **params)


# -- helpers -------------------------------------------------------------------------------------
def _estimator_name(model: Any) -> str | None:
    """The nearest class of ``model`` in :data:`ESTIMATORS` that is catboost's own."""
    catboost = sys.modules["catboost"]
    for cls in type(model).__mro__:
        if cls.__name__ in ESTIMATORS and getattr(catboost, cls.__name__, None) is cls:
            return cls.__name__
    return None


def _signature(model: Any, sample: Any) -> dict[str, Any]:
    fitted = model.is_fitted()
    names = [str(n) for n in model.feature_names_] if fitted else None
    # CatBoost names unnamed columns "0", "1"...: those are positions, not names to check.
    if names is not None and names == [str(i) for i in range(len(names))]:
        names = None
    dtype = getattr(sample, "dtype", None)
    if dtype is None and getattr(sample, "dtypes", None) is not None:  # a DataFrame
        kinds = {str(d) for d in sample.dtypes}
        dtype = kinds.pop() if len(kinds) == 1 else "mixed"
    return {
        "dtype": str(dtype) if dtype is not None else "float64",
        "shape": [None, len(model.feature_names_) if fitted else None],
        "feature_names": names,
    }
