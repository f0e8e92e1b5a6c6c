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
decided from ``sys.modules`` (an object cannot be a scikit-learn estimator unless scikit-learn
is already imported).
"""

from __future__ import annotations

import contextlib
import sys
import warnings
from collections.abc import Iterator
from typing import Any

from alphazoo.compat.installed import installed_versions as _versions
from alphazoo.contracts import FormatSpec, LoadRequest, SavedPayload, SaveRequest
from alphazoo.errors import (
    BundleFormatError,
    UnsupportedFormatError,
    UntrustedModelError,
    require,
)
from alphazoo.hookspecs import hookimpl
from alphazoo.limits import check_zip
from alphazoo.manifest_schema import ONNX_OUTPUTS, array, either, null, obj, string
from alphazoo.trust import may_run_code

from ._common import (
    check_options,
    choose_format,
    class_path,
    dump_pickle,
    load_pickle,
    payload_path,
)

ADAPTER = "sklearn"
FORMATS = ("skops", "pickle", "onnx")
_FILES = {"skops": "model.skops", "pickle": "model.pkl", "onnx": "model.onnx"}
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


def owns(model: Any) -> bool:
    """True for scikit-learn estimators (Pipelines and user subclasses included), decided
    without importing scikit-learn: none can exist unless it is already imported."""
    base = sys.modules.get("sklearn.base")
    if base is None or not isinstance(model, base.BaseEstimator):
        return False
    return type(model).__module__.partition(".")[0] not in FOREIGN_ESTIMATOR_PACKAGES


# -- hooks ---------------------------------------------------------------------------------------
#: The adapter_data each format's loader reads (see :mod:`alphazoo.manifest_schema`).
_TASK = string(choices=("classification", "regression"))
_SKOPS_DATA = obj(optional={"task": _TASK, "untrusted_types": array(string())})
_ONNX_DATA = obj(required={"task": _TASK, "outputs": ONNX_OUTPUTS},
                 optional={"classes": either(array(), null)})
#: The producer_name of the graphs this adapter's ONNX exporter writes.
ONNX_PRODUCERS = ("skl2onnx",)


@hookimpl
def alphazoo_formats() -> list[FormatSpec]:
    return [
        FormatSpec("skops", ADAPTER, True, "skops JSON schema; no code runs on load", True,
                   ("scikit-learn", "skops"), _SKOPS_DATA),
        FormatSpec("pickle", ADAPTER, False, "pickle; runs code on load, trusted only", False,
                   ("scikit-learn",)),
        FormatSpec("onnx", ADAPTER, True, "skl2onnx graph served by onnxruntime", False,
                   ("onnxruntime",), _ONNX_DATA),
    ]


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


@hookimpl
def alphazoo_save(request: SaveRequest) -> SavedPayload | None:
    model = request.model
    if not owns(model):
        return None
    fmt = choose_format("scikit-learn", request.format, FORMATS, "skops")
    check_options("scikit-learn", "save", request.options, ())
    path = request.directory / _FILES[fmt]
    libraries = _versions("scikit-learn", "numpy", "scipy")
    task = _task(model)
    adapter_data: dict[str, Any] = {"task": task}
    notices: list[str] = []
    if fmt == "skops":
        skops_io: Any = require("skops.io", "sklearn", "the skops format")
        with _quiet_svc_attributes():
            skops_io.dump(model, path)
        untrusted = _foreign(skops_io.get_untrusted_types(file=path))
        if untrusted:
            adapter_data["untrusted_types"] = untrusted
            notices.append(
                f"this skops bundle holds types that are not trusted by default ({untrusted}); "
                "loading it will need trusted=True or a signature (save with sign_key=KEY)"
            )
        libraries.update(_versions("skops"))
    elif fmt == "pickle":
        dump_pickle(model, path)
    else:
        adapter_data.update(_save_onnx(model, task, request, path))
        libraries.update(_versions("skl2onnx", "onnx", "onnxruntime"))
    return SavedPayload(
        adapter=ADAPTER,
        format=fmt,
        files=[path.name],
        model_class=class_path(model),
        libraries=libraries,
        adapter_data=adapter_data,
        input_signature=_signature(model, request.sample),
        warnings=notices,
    )


@hookimpl
def alphazoo_load(request: LoadRequest) -> Any:
    manifest = request.manifest
    if manifest.get("adapter") != ADAPTER:
        return None
    check_options("scikit-learn", "load", request.options, ())
    fmt = manifest["format"]
    path = payload_path(request, _FILES)
    if fmt == "skops":
        return _load_skops(request, path)
    if fmt == "pickle":  # the host's trust guard has already run
        return load_pickle(path)
    from ._onnx import OnnxPredictor
    from ._onnx_bounds import check_onnx

    check_onnx(path, request.limits, adapter=ADAPTER, producers=ONNX_PRODUCERS)
    data = manifest.get("adapter_data", {})
    signature = manifest.get("input") or {}
    return OnnxPredictor(
        str(path),
        task=data["task"],
        outputs=data["outputs"],
        classes=data.get("classes"),
        feature_names=signature.get("feature_names"),
    )


def _load_skops(request: LoadRequest, path: Any) -> Any:
    """A skops payload: bounded (zip members, schema and .npy sizes), trust-checked for
    foreign types, and every tree validated before the model is returned."""
    from ._sklearn_trees import validate_trees

    # Before skops reads anything (get_untrusted_types already parses schema.json), and
    # before it is imported: a bomb costs no import.
    check_zip(path, request.limits, npy=True, json_members=("schema.json",))
    skops_io: Any = require("skops.io", "sklearn", "the skops format")
    try:
        unknown = skops_io.get_untrusted_types(file=path)
    except (ValueError, TypeError, KeyError, AttributeError, RecursionError) as exc:
        raise BundleFormatError(path.name, f"not a skops schema skops can read ({exc!r:.200})")
    foreign = _foreign(unknown)
    if foreign and not may_run_code(request):
        raise UntrustedModelError(
            f"this skops bundle holds types that are not trusted by default: {foreign}. "
            "Pass trusted=True (or load with the bundle's sign_key) if you trust them."
        )
    try:
        model = skops_io.load(path, trusted=unknown or None)
    except (ValueError, TypeError, KeyError, AttributeError, IndexError, RecursionError) as exc:
        # skops and numpy report a crafted schema with whatever the failing step raised.
        raise BundleFormatError(path.name, f"skops could not rebuild the model ({exc!r:.200})")
    validate_trees(model, path.name)
    return model


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


def _save_onnx(model: Any, task: str, request: SaveRequest, path: Any) -> dict[str, Any]:
    import numpy as np

    from ._onnx import OnnxPredictor, check_parity

    to_onnx = require("skl2onnx", "onnx", "the onnx format").to_onnx  # type: ignore[attr-defined]

    sample, source = request.sample, "training rows"
    if sample is None:
        n_features = getattr(model, "n_features_in_", None)
        if n_features is None:
            raise UnsupportedFormatError(
                "ONNX export needs a fitted model with n_features_in_, or sample= rows"
            )
        sample = np.random.default_rng(0).normal(size=(64, int(n_features)))
        source = "synthetic normal rows (no training rows were recorded)"
    sample = np.asarray(sample, dtype=np.float32)
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
    path.write_bytes(onx.SerializeToString())
    if classifier:
        outputs = {"label": "label"}
        if hasattr(model, "predict_proba"):  # an SVC without probabilities exports scores
            outputs["probabilities"] = "probabilities"
        classes = np.asarray(model.classes_).tolist()
    else:
        outputs = {"value": onx.graph.output[0].name}
        classes = None
    predictor = OnnxPredictor(str(path), task=task, outputs=outputs, classes=classes)
    proba = getattr(model, "predict_proba", None)  # absent on an SVC without probabilities
    names = getattr(model, "feature_names_in_", None)
    if names is not None and "pandas" in sys.modules:
        # Fitted on a DataFrame: give the native side named columns too, as in production.
        frame = sys.modules["pandas"].DataFrame
        native_predict = lambda X: model.predict(frame(X, columns=names))  # noqa: E731
        native_proba = proba and (lambda X: proba(frame(X, columns=names)))
    else:
        native_predict, native_proba = model.predict, proba
    parity = check_parity(native_predict, native_proba, predictor, sample, request.parity_tolerance)
    parity["sample"] = source
    return {"outputs": outputs, "classes": classes, "parity": parity,
            "opset": {d.domain or "ai.onnx": d.version for d in onx.opset_import}}


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
