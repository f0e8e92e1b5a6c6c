"""scikit-learn adapter: estimators and Pipelines as skops, pickle or ONNX.

=========  ====================================================  ==========================
format     what is stored                                        loads with
=========  ====================================================  ==========================
skops      skops' JSON schema + arrays (default; no code runs)   scikit-learn, skops
pickle     the pickled object (runs code: trusted only)          scikit-learn
onnx       a skl2onnx graph, parity-checked when saved           onnxruntime only
=========  ====================================================  ==========================

skops refuses types it does not know (a user's own transformer, say); such a bundle loads
with ``trusted=True`` or a valid signature, like pickle. ONNX bundles load as an
:class:`~alphazoo.adapters._onnx.OnnxPredictor`: ``predict`` and ``predict_proba`` with no
scikit-learn installed. Classifiers export with ``zipmap=False`` so probabilities are one
float32 matrix, not a list of dicts.

Nothing is imported from scikit-learn until a model is handled; whether a model is ours is
decided from its declared base class, ``sklearn.base.BaseEstimator``, looked up in
``sys.modules`` (an object cannot be a scikit-learn estimator unless scikit-learn is already
imported). The formats are declared once, as :class:`~alphazoo.adapters.base.Format` rows.
"""

from __future__ import annotations

import contextlib
import sys
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from alphazoo.contracts import LoadRequest
from alphazoo.errors import (
    UnsupportedFormatError,
    require,
)
from alphazoo.hookspecs import hookimpl
from alphazoo.manifest_schema import ONNX_OUTPUTS, array, either, null, obj, string

from .base import Adapter, Format, Saving, onnx_facts, onnx_reader, onnx_sample, pickle_format

__all__ = ["ADAPTER", "FOREIGN_ESTIMATOR_PACKAGES", "ONNX_PRODUCERS", "SKLEARN_STATE_TYPES",
           "gradient_boosting", "logistic_regression", "owns", "random_forest", "svm"]

#: scikit-learn's own state holders that skops leaves untrusted only because it has not vetted
#: them (trees, neighbour indexes, optimizer state): they hold arrays, not code references.
#: An exact list, not the "sklearn." prefix: skops calls a listed name on load, and functions
#: in scikit-learn's namespace (its test helpers run scripts) must stay untrusted. The tree
#: types' index arrays (decision trees, histogram boosting, KD and ball trees) are trusted only
#: because every loaded one then passes
#: :func:`alphazoo.adapters._sklearn_trees.validate_trees` before the model is returned.
SKLEARN_STATE_TYPES = frozenset({
    "sklearn.tree._tree.Tree",
    "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor",
    "sklearn.neighbors._kd_tree.KDTree",
    "sklearn.neighbors._ball_tree.BallTree",
    "sklearn.metrics._dist_metrics.EuclideanDistance64",
    "sklearn.neural_network._stochastic_optimizers.AdamOptimizer",
    "sklearn.neural_network._stochastic_optimizers.SGDOptimizer",
})

#: Libraries whose models subclass scikit-learn's BaseEstimator but are not scikit-learn's:
#: their own adapters save them (skops would store them as untrusted types), so this adapter
#: leaves them alone and the error for a missing adapter names the right library.
FOREIGN_ESTIMATOR_PACKAGES = frozenset({"xgboost", "lightgbm", "catboost", "hmmlearn"})
#: The producer_name of the graphs this adapter's ONNX exporter writes.
ONNX_PRODUCERS = ("skl2onnx",)


def _owns(model: Any) -> bool:
    # The host gives a model to the plugin whose declared class is nearest in its MRO, so an
    # XGBClassifier is xgboost's whenever that adapter is loaded. This guard covers the case
    # where it is not (disabled, or not installed): skops would store the estimator as
    # untrusted types, so the save is refused with an error naming the class instead.
    if type(model).__module__.partition(".")[0] in FOREIGN_ESTIMATOR_PACKAGES:
        return False
    return any(isinstance(model, cls) for cls in ADAPTER.declared_classes())


# -- formats: scikit-learn's own write and read code ---------------------------------------------
def _write_skops(model: Any, path: Path, saving: Saving) -> None:
    skops_io: Any = require("skops.io", "sklearn", "the skops format")
    with _quiet_svc_attributes():
        skops_io.dump(model, path)
    untrusted = _foreign(skops_io.get_untrusted_types(file=path))
    if untrusted:
        saving.data["untrusted_types"] = untrusted
        saving.notices.append(
            f"this skops bundle holds types that are not trusted by default ({untrusted}); "
            "loading it will need trusted=True or a signature (save with sign_key=KEY)"
        )


def _read_skops(path: Path, request: LoadRequest) -> Any:
    """A skops payload: bounded (zip members, schema and .npy sizes), trust-checked for
    foreign types by the host's decision, and every tree validated before it is returned."""
    from ._skops_load import load_skops

    recorded = (request.manifest.get("adapter_data") or {}).get("untrusted_types", ())
    return load_skops(path, request.limits, trusted_types=SKLEARN_STATE_TYPES,
                      may_run_code=request.may_run_code, recorded_types=recorded)


def _read_skops_bytes(data: bytes, request: LoadRequest) -> Any:
    """:func:`_read_skops` from the payload's verified bytes: no file is written for it."""
    from ._skops_load import load_skops

    recorded = (request.manifest.get("adapter_data") or {}).get("untrusted_types", ())
    return load_skops(Path("model.skops"), request.limits, trusted_types=SKLEARN_STATE_TYPES,
                      may_run_code=request.may_run_code, recorded_types=recorded, data=data)


def _write_onnx(model: Any, path: Path, saving: Saving) -> None:
    import numpy as np

    to_onnx = require("skl2onnx", "onnx", "the onnx format").to_onnx  # type: ignore[attr-defined]

    n_features = getattr(model, "n_features_in_", None)
    sample, source = onnx_sample(
        saving.request.sample, (n_features,),
        missing="ONNX export needs a fitted model with n_features_in_, or sample= rows")
    task = saving.data["task"]
    classifier = task == "classification"
    # Keyed by the model's id, not by name: skl2onnx resolves string keys by walking dir() of
    # every sub-estimator (each tree of a forest), which cost ~0.2 s per 60-tree export.
    options = {id(model): {"zipmap": False}} if classifier else None
    from skl2onnx.common.exceptions import MissingConverter, MissingShapeCalculator

    try:
        with _quiet_svc_attributes():
            onx = to_onnx(model, sample[:1], options=options)
    except (MissingConverter, MissingShapeCalculator) as exc:
        # A step skl2onnx cannot convert (a user's transformer, another library's estimator
        # inside a Pipeline): say which, and what will store it, instead of its raw error.
        steps = sorted({type(step).__name__ for step in _steps(model)
                        if type(step).__module__.partition(".")[0] != "sklearn"})
        raise UnsupportedFormatError(
            f"skl2onnx cannot convert this {type(model).__name__} to ONNX"
            + (f" (steps from outside scikit-learn: {', '.join(steps)})" if steps else "")
            + "; save it as 'skops' or 'pickle' instead. skl2onnx said: "
            + str(exc).strip().splitlines()[0]
        ) from exc
    if classifier:
        outputs = {"label": "label"}
        if hasattr(model, "predict_proba"):  # an SVC without probabilities exports scores
            outputs["probabilities"] = "probabilities"
        classes = np.asarray(model.classes_).tolist()
    else:
        outputs = {"value": onx.graph.output[0].name}
        classes = None
    proba = getattr(model, "predict_proba", None)  # absent on an SVC without probabilities
    names = getattr(model, "feature_names_in_", None)
    if names is not None and "pandas" in sys.modules:
        # Fitted on a DataFrame: give the native side named columns too, as in production.
        frame = sys.modules["pandas"].DataFrame
        native_predict = lambda X: model.predict(frame(X, columns=names))  # noqa: E731
        native_proba = proba and (lambda X: proba(frame(X, columns=names)))
    else:
        native_predict, native_proba = model.predict, proba
    saving.data.update(onnx_facts(onx, path, saving, task=task, outputs=outputs,
                                  classes=classes, native_predict=native_predict,
                                  native_proba=native_proba, sample=sample,
                                  sample_source=source))


#: The adapter_data each format's loader reads (see :mod:`alphazoo.manifest_schema`).
_TASK = string(choices=("classification", "regression"))

ADAPTER = Adapter(
    "sklearn",
    library="scikit-learn",
    model_types=["sklearn.base.BaseEstimator"],
    formats=[
        Format("skops", "model.skops", True, "skops JSON schema; no code runs on load",
               write=_write_skops, read=_read_skops, read_bytes=_read_skops_bytes,
               default=True,
               load_requires=("scikit-learn", "skops"), records=("skops",),
               adapter_data=obj(optional={"task": _TASK, "untrusted_types": array(string())})),
        pickle_format(("scikit-learn",)),
        Format("onnx", "model.onnx", True, "skl2onnx graph served by onnxruntime",
               write=_write_onnx, read=onnx_reader("sklearn", ONNX_PRODUCERS),
               load_requires=("onnxruntime",), records=("skl2onnx", "onnx", "onnxruntime"),
               adapter_data=obj(required={"task": _TASK, "outputs": ONNX_OUTPUTS},
                                optional={"classes": either(array(), null)})),
    ],
    records=("scikit-learn", "numpy", "scipy"),
    describe=lambda model: {"task": _task(model)},
    signature=lambda model, sample: _signature(model, sample),
    owns=lambda model: _owns(model),
)
owns = ADAPTER.owns

# The hooks pluggy finds on this module.
alphazoo_formats = ADAPTER.alphazoo_formats
alphazoo_model_types = ADAPTER.alphazoo_model_types
alphazoo_save = ADAPTER.alphazoo_save
alphazoo_load = ADAPTER.alphazoo_load


@hookimpl
def alphazoo_requirements() -> list[str]:
    return ["scikit-learn>=1.5", "skops>=0.12", "skl2onnx>=1.17", "onnxruntime>=1.19"]


@hookimpl
def alphazoo_register_models(register: Any) -> None:
    register("random_forest", random_forest, library="scikit-learn")
    register("svm", svm, library="scikit-learn")
    register("gradient_boosting", gradient_boosting, library="scikit-learn")
    register("logistic_regression", logistic_regression, library="scikit-learn")


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
def random_forest(
    task: str = "classification", n_estimators: int = 100, max_depth: int | None = 6,
    min_samples_leaf: int = 5, random_state: int = 0, **params: Any,
) -> Any:
    """Random forest (scikit-learn); task 'classification' or 'regression'."""
    ensemble: Any = require("sklearn.ensemble", "sklearn", "this zoo model")

    if _is_classification(task):
        cls = ensemble.RandomForestClassifier
    else:
        cls = ensemble.RandomForestRegressor
    return cls(n_estimators=n_estimators, max_depth=max_depth, min_samples_leaf=min_samples_leaf,
               random_state=random_state, **params)


def svm(task: str = "classification", C: float = 1.0, kernel: str = "rbf", random_state: int = 0,
        **params: Any) -> Any:
    """Support vector machine behind a StandardScaler (scikit-learn)."""
    require("sklearn", "sklearn", "this zoo model")
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    from sklearn.svm import SVC, SVR

    if _is_classification(task):
        # No probability=True: scikit-learn 1.9 deprecates it (Platt scaling on internal CV);
        # wrap the pipeline in CalibratedClassifierCV when probabilities are needed.
        estimator = SVC(C=C, kernel=kernel, random_state=random_state, **params)
    else:
        estimator = SVR(C=C, kernel=kernel, **params)
    return make_pipeline(StandardScaler(), estimator)


def gradient_boosting(
    task: str = "classification", n_estimators: int = 100, learning_rate: float = 0.1,
    max_depth: int = 3, random_state: int = 0, **params: Any,
) -> Any:
    """Gradient-boosted trees (scikit-learn); task 'classification' or 'regression'."""
    ensemble: Any = require("sklearn.ensemble", "sklearn", "this zoo model")

    if _is_classification(task):
        cls = ensemble.GradientBoostingClassifier
    else:
        cls = ensemble.GradientBoostingRegressor
    return cls(n_estimators=n_estimators, learning_rate=learning_rate, max_depth=max_depth,
               random_state=random_state, **params)


def logistic_regression(C: float = 1.0, max_iter: int = 1000, **params: Any) -> Any:
    """Logistic regression behind a StandardScaler (scikit-learn), for direction labels."""
    require("sklearn", "sklearn", "this zoo model")
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    return make_pipeline(StandardScaler(), LogisticRegression(C=C, max_iter=max_iter, **params))


# -- helpers -------------------------------------------------------------------------------------
def _is_classification(task: str) -> bool:
    if task not in ("classification", "regression"):
        raise ValueError(f"task must be 'classification' or 'regression', not {task!r}")
    return task == "classification"


def _task(model: Any) -> str:
    from sklearn.base import is_classifier

    return "classification" if is_classifier(model) else "regression"


def _foreign(untrusted: list[str]) -> list[str]:
    """Of the types skops does not trust, those :data:`SKLEARN_STATE_TYPES` does not cover."""
    return [name for name in untrusted if name not in SKLEARN_STATE_TYPES]


@contextlib.contextmanager
def _quiet_svc_attributes() -> Iterator[None]:
    # skops and skl2onnx read an SVC's probA_/probB_, which scikit-learn 1.9 deprecates with a
    # FutureWarning even when the user never asked for probabilities: noise, not news.
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", r"Attribute `prob[AB]_` was deprecated", FutureWarning)
        yield


def _steps(model: Any) -> list[Any]:
    """``model`` and, for Pipelines and other meta-estimators, the estimators inside it."""
    found = [model]
    for step in getattr(model, "steps", None) or []:
        found += _steps(step[1])
    for name in ("estimator", "base_estimator", "final_estimator"):
        inner = getattr(model, name, None)
        if inner is not None and hasattr(inner, "fit"):
            found += _steps(inner)
    return found


def _signature(model: Any, sample: Any) -> dict[str, Any]:
    names = getattr(model, "feature_names_in_", None)
    n_features = getattr(model, "n_features_in_", None)
    dtype = getattr(sample, "dtype", None)
    return {
        "dtype": str(dtype) if dtype is not None else "float64",
        "shape": [None, int(n_features) if n_features is not None else None],
        "feature_names": [str(n) for n in names] if names is not None else None,
    }
