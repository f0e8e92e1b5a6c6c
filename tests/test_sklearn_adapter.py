"""The scikit-learn adapter: skops (default), pickle and ONNX bundles of estimators and Pipelines.

Round trips are checked exactly (predictions, get_params() and fitted state) in this process
and in a fresh one; ONNX bundles are also served in a process where scikit-learn, skl2onnx and
skops cannot be imported.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from typing import Any

import numpy as np
import pytest
from _child import HANG_TIMEOUT, blocking_prelude, run_python

import alphazoo
from alphazoo.adapters._onnx import OnnxPredictor, check_parity

ZOO_MODELS = ["random_forest", "svm", "gradient_boosting", "logistic_regression"]
FORMATS = ["skops", "pickle", "onnx"]
SMALL = {"random_forest": {"n_estimators": 12}, "gradient_boosting": {"n_estimators": 15}}


# -- fixtures and helpers ------------------------------------------------------------------------
@pytest.fixture(scope="module")
def data() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(2024)
    X = rng.normal(size=(150, 4))
    y = (X[:, 0] + 0.5 * X[:, 1] - 0.3 * X[:, 3] + 0.2 * rng.normal(size=150) > 0).astype(int)
    y_reg = X @ np.array([1.0, -2.0, 0.5, 0.0]) + 0.1 * rng.normal(size=150)
    X_new = rng.normal(size=(40, 4))  # rows no model has seen
    return {"X": X, "y": y, "y_reg": y_reg, "X_new": X_new}


@pytest.fixture(scope="module")
def saved(tmp_path_factory: pytest.TempPathFactory, data) -> dict[str, Any]:
    """Every zoo model built, trained and saved in every format, in one store."""
    with pytest.MonkeyPatch.context() as mp:
        mp.delenv("ALPHAZOO_SIGNING_KEY", raising=False)
        store_dir = tmp_path_factory.mktemp("sklearn-zoo")
        zoo = alphazoo.Zoo(alphazoo.ObjectStore(store_dir))
        models, manifests = {}, {}
        for name in ZOO_MODELS:
            model = zoo.train(zoo.build(name, **SMALL.get(name, {})), data["X"], data["y"])
            models[name] = model
            for fmt in FORMATS:
                manifests[name, fmt] = zoo.save(model, f"zoo/{name}/{fmt}", format=fmt)
    return {"store_dir": store_dir, "zoo": zoo, "models": models, "manifests": manifests}


def native_outputs(model: Any, X: np.ndarray) -> dict[str, np.ndarray]:
    out = {"predict": np.asarray(model.predict(X))}
    if hasattr(model, "predict_proba"):
        out["proba"] = np.asarray(model.predict_proba(X))
    return out


def assert_same(a: Any, b: Any, path: str = "model") -> None:
    """Exact equality of two fitted scikit-learn objects: parameters and fitted state."""
    from sklearn.base import BaseEstimator
    from sklearn.tree._tree import Tree

    assert type(a) is type(b), f"{path}: {type(a)} != {type(b)}"
    if isinstance(a, BaseEstimator):
        assert_same(a.get_params(deep=False), b.get_params(deep=False), f"{path}.get_params()")
        fitted_a = {k for k in vars(a) if k.endswith("_") and not k.startswith("_")}
        fitted_b = {k for k in vars(b) if k.endswith("_") and not k.startswith("_")}
        assert fitted_a == fitted_b, f"{path}: fitted attributes differ"
        for name in sorted(fitted_a):
            assert_same(getattr(a, name), getattr(b, name), f"{path}.{name}")
    elif isinstance(a, Tree):
        cls_a, args_a, state_a = a.__reduce__()
        cls_b, args_b, state_b = b.__reduce__()
        assert cls_a is cls_b
        assert_same(args_a, args_b, f"{path}.args")
        assert_same(state_a, state_b, f"{path}.state")
    elif isinstance(a, np.ndarray):
        assert a.dtype == b.dtype and a.shape == b.shape, path
        if a.dtype == object:
            for i, (x, y) in enumerate(zip(a.ravel(), b.ravel())):
                assert_same(x, y, f"{path}[{i}]")
        elif a.dtype.fields:  # structured (tree nodes): field by field, padding aside
            for field in a.dtype.names:
                assert np.array_equal(a[field], b[field], equal_nan=True), f"{path}.{field}"
        else:
            assert np.array_equal(a, b, equal_nan=a.dtype.kind in "fc"), path
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), path
        for i, (x, y) in enumerate(zip(a, b)):
            assert_same(x, y, f"{path}[{i}]")
    elif isinstance(a, dict):
        assert a.keys() == b.keys(), path
        for key in a:
            assert_same(a[key], b[key], f"{path}[{key!r}]")
    elif isinstance(a, float) and np.isnan(a):
        assert np.isnan(b), path
    elif isinstance(a, np.random.RandomState):
        assert_same(list(a.get_state()), list(b.get_state()), path)
    else:
        assert a == b, f"{path}: {a!r} != {b!r}"


def final_step(model: Any) -> Any:
    return model.steps[-1][1] if hasattr(model, "steps") else model


# -- registration --------------------------------------------------------------------------------
def test_zoo_models_are_registered(zoo):
    specs = {spec.name: spec for spec in zoo.models()}
    for name in ZOO_MODELS:
        assert name in specs
        assert specs[name].library == "scikit-learn"
        assert specs[name].plugin == "sklearn"
    formats = {(spec.name, spec.safe) for spec in zoo.formats() if spec.adapter == "sklearn"}
    assert formats == {("skops", True), ("pickle", False), ("onnx", True)}
    (default,) = [s.name for s in zoo.formats() if s.adapter == "sklearn" and s.default]
    assert default == "skops"


def test_built_models_are_what_the_zoo_promises(zoo):
    from sklearn.ensemble import GradientBoostingRegressor, RandomForestClassifier
    from sklearn.pipeline import Pipeline
    from sklearn.svm import SVC

    assert isinstance(zoo.build("random_forest"), RandomForestClassifier)
    assert isinstance(zoo.build("gradient_boosting", task="regression"), GradientBoostingRegressor)
    svm = zoo.build("svm", C=2.0)
    assert isinstance(svm, Pipeline) and isinstance(final_step(svm), SVC)
    assert final_step(svm).C == 2.0
    with pytest.raises(ValueError, match="task"):
        zoo.build("random_forest", task="ranking")


# -- round trips ---------------------------------------------------------------------------------
@pytest.mark.slow
@pytest.mark.parametrize("fmt", ["skops", "pickle"])
@pytest.mark.parametrize("name", ZOO_MODELS)
def test_native_round_trip_is_exact(saved, data, name, fmt):
    zoo, original = saved["zoo"], saved["models"][name]
    manifest = saved["manifests"][name, fmt]
    assert manifest["format"] == fmt and manifest["adapter"] == "sklearn"
    assert manifest["name"] == name

    loaded = zoo.load(f"zoo/{name}/{fmt}", trusted=fmt == "pickle")
    assert loaded is not original and type(loaded) is type(original)
    for X in (data["X"], data["X_new"]):
        expected, got = native_outputs(original, X), native_outputs(loaded, X)
        assert expected.keys() == got.keys()
        for kind in expected:
            assert np.array_equal(expected[kind], got[kind]), kind
    assert np.array_equal(zoo.predict(loaded, data["X_new"]), original.predict(data["X_new"]))

    assert loaded.get_params().keys() == original.get_params().keys()
    assert_same(original, loaded)
    est_a, est_b = final_step(original), final_step(loaded)
    for attr in ("coef_", "intercept_", "feature_importances_", "support_vectors_", "dual_coef_"):
        if hasattr(est_a, attr):
            assert np.array_equal(getattr(est_a, attr), getattr(est_b, attr)), attr


@pytest.mark.parametrize("name", ZOO_MODELS)
def test_onnx_round_trip_matches_the_native_model(saved, data, name):
    zoo, original = saved["zoo"], saved["models"][name]
    manifest = saved["manifests"][name, "onnx"]
    parity = manifest["adapter_data"]["parity"]
    assert parity["rows"] == len(data["X"]) and parity["sample"] == "training rows"
    assert parity["label_agreement"] == 1.0
    for library in ("skl2onnx", "onnx", "onnxruntime", "scikit-learn"):
        assert library in manifest["libraries"]

    loaded = zoo.load(f"zoo/{name}/onnx")
    assert isinstance(loaded, OnnxPredictor)
    assert loaded.task == "classification"
    assert np.array_equal(loaded.classes_, original.classes_)
    for X in (data["X"], data["X_new"]):
        assert np.array_equal(loaded.predict(X), original.predict(X))
        if hasattr(original, "predict_proba"):
            np.testing.assert_allclose(
                loaded.predict_proba(X), original.predict_proba(X), atol=1e-5
            )
        else:  # the scaler + SVC without probability=True: labels only
            with pytest.raises(AttributeError):
                loaded.predict_proba(X)
    assert loaded.predict(data["X_new"][0]).shape == (1,)  # one row as a 1-D array


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("name", ["random_forest", "svm", "gradient_boosting"])
def test_regression_models_round_trip(zoo, data, name, fmt):
    X, y, X_new = data["X"], data["y_reg"], data["X_new"]
    model = zoo.train(zoo.build(name, task="regression", **SMALL.get(name, {})), X, y)
    manifest = zoo.save(model, f"reg/{name}", format=fmt)
    assert manifest["adapter_data"]["task"] == "regression"
    loaded = zoo.load(f"reg/{name}", trusted=fmt == "pickle")
    if fmt == "onnx":
        assert isinstance(loaded, OnnxPredictor) and loaded.task == "regression"
        assert manifest["adapter_data"]["parity"]["max_abs_diff"] <= 1e-4
        np.testing.assert_allclose(
            loaded.predict(X_new), model.predict(X_new), rtol=1e-5, atol=1e-4
        )
    else:
        assert np.array_equal(loaded.predict(X_new), model.predict(X_new))
        assert_same(model, loaded)


def test_default_format_is_skops(zoo, data):
    import skops

    model = zoo.train(zoo.build("logistic_regression"), data["X"], data["y"])
    manifest = zoo.save(model, "default")
    assert manifest["format"] == "skops"
    assert [f["name"] for f in manifest["files"]] == ["model.skops"]
    assert manifest["libraries"]["skops"] == skops.__version__
    assert manifest["input"] == {"dtype": "float64", "shape": [None, 4], "feature_names": None}


# -- fresh processes -----------------------------------------------------------------------------
FRESH_CHILD = textwrap.dedent(
    """
    import json, sys
    import numpy as np
    import alphazoo

    store, rows, out = sys.argv[1:4]
    zoo = alphazoo.Zoo(alphazoo.ObjectStore(store))
    X = np.load(rows)
    result = {}
    for key in zoo.store.keys():
        model = zoo.load(key, trusted=key.endswith("/pickle"))
        entry = {"type": type(model).__name__, "predict": np.asarray(model.predict(X)).tolist()}
        try:  # an ONNX predictor without a probability output raises AttributeError
            entry["proba"] = np.asarray(model.predict_proba(X), dtype=float).tolist()
        except AttributeError:
            pass
        result[key] = entry
    with open(out, "w") as handle:
        json.dump(result, handle)
    """
)


@pytest.mark.slow
def test_every_bundle_loads_in_a_fresh_process(saved, data, tmp_path):
    rows = tmp_path / "rows.npy"
    np.save(rows, data["X_new"])
    out = tmp_path / "out.json"
    run_python(FRESH_CHILD, str(saved["store_dir"]), str(rows), str(out), cwd=tmp_path)
    result = json.loads(out.read_text())
    assert set(result) == {f"zoo/{n}/{f}" for n in ZOO_MODELS for f in FORMATS}

    for name in ZOO_MODELS:
        expected = native_outputs(saved["models"][name], data["X_new"])
        for fmt in FORMATS:
            child = result[f"zoo/{name}/{fmt}"]
            want_type = "OnnxPredictor" if fmt == "onnx" else type(saved["models"][name]).__name__
            assert child["type"] == want_type
            assert np.array_equal(np.asarray(child["predict"]), expected["predict"]), (name, fmt)
            assert ("proba" in child) == ("proba" in expected), (name, fmt)
            if "proba" in expected:
                proba = np.asarray(child["proba"])
                if fmt == "onnx":
                    np.testing.assert_allclose(proba, expected["proba"], atol=1e-5)
                else:
                    assert np.array_equal(proba, expected["proba"]), (name, fmt)


BLOCKED_CHILD = blocking_prelude("sklearn", "skl2onnx", "skops") + textwrap.dedent(
    """
    import json, sys


    import numpy as np
    import alphazoo

    store, rows, out = sys.argv[1:4]
    zoo = alphazoo.Zoo(alphazoo.ObjectStore(store))
    X = np.load(rows)
    result = {}
    for key in zoo.store.keys():
        if not key.endswith("/onnx"):
            continue
        model = zoo.load(key)
        entry = {"type": type(model).__name__, "predict": model.predict(X).tolist()}
        if "probabilities" in model.outputs:
            entry["proba"] = model.predict_proba(X).astype(float).tolist()
        result[key] = entry
    try:  # the block is real: a skops bundle needs what is missing here
        zoo.load("zoo/logistic_regression/skops")
    except ImportError:
        result["skops_refused"] = True
    result["loaded"] = sorted(
        name for name in sys.modules if name.partition(".")[0] in _BLOCKED
    )
    with open(out, "w") as handle:
        json.dump(result, handle)
    """
)


@pytest.mark.slow
def test_onnx_bundles_predict_without_scikit_learn(saved, data, tmp_path):
    rows = tmp_path / "rows.npy"
    np.save(rows, data["X_new"])
    out = tmp_path / "out.json"
    run_python(BLOCKED_CHILD, str(saved["store_dir"]), str(rows), str(out), cwd=tmp_path)
    result = json.loads(out.read_text())

    assert result.pop("loaded") == []
    assert result.pop("skops_refused") is True
    assert set(result) == {f"zoo/{name}/onnx" for name in ZOO_MODELS}
    for name in ZOO_MODELS:
        model, child = saved["models"][name], result[f"zoo/{name}/onnx"]
        assert child["type"] == "OnnxPredictor"
        assert np.array_equal(np.asarray(child["predict"]), model.predict(data["X_new"]))
        if hasattr(model, "predict_proba"):
            np.testing.assert_allclose(
                np.asarray(child["proba"]), model.predict_proba(data["X_new"]), atol=1e-5, rtol=0
            )
        else:
            assert "proba" not in child
    assert sum("proba" in child for child in result.values()) == 3


# -- feature names and signatures ----------------------------------------------------------------
@pytest.mark.parametrize("fmt", FORMATS)
def test_dataframe_feature_names_are_recorded(zoo, data, fmt):
    import pandas as pd
    columns = ["ret_1", "ret_5", "volatility", "rsi"]
    frame = pd.DataFrame(data["X"], columns=columns)
    new = pd.DataFrame(data["X_new"], columns=columns)
    model = zoo.train(zoo.build("random_forest", n_estimators=8), frame, data["y"])

    manifest = zoo.save(model, "frame", format=fmt)
    assert manifest["input"]["feature_names"] == columns
    assert manifest["input"]["shape"] == [None, 4]
    assert manifest["training"]["rows"] == len(frame)
    assert zoo.inspect("frame")["input"] == manifest["input"]

    loaded = zoo.load("frame", trusted=fmt == "pickle")
    assert list(loaded.feature_names_in_) == columns
    assert np.array_equal(loaded.predict(new), model.predict(new))


def test_pipeline_signature_without_feature_names(saved):
    manifest = saved["manifests"]["svm", "skops"]
    assert manifest["model_class"] == "sklearn.pipeline.Pipeline"
    assert manifest["input"]["feature_names"] is None
    assert manifest["input"]["shape"] == [None, 4]


# -- unsupported models and formats --------------------------------------------------------------
def test_object_no_adapter_owns_is_refused(zoo):
    with pytest.raises(alphazoo.UnsupportedModelError) as error:
        zoo.save({"a": 1}, "x")
    message = str(error.value)
    assert "builtins.dict" in message
    assert "sklearn" in message
    for fmt in FORMATS:
        assert f"sklearn:{fmt}" in message
    assert isinstance(error.value, TypeError)
    assert not zoo.store.contains_key("x")


def test_sklearn_model_with_an_unknown_format_is_refused(zoo, data):
    model = zoo.train(zoo.build("logistic_regression"), data["X"], data["y"])
    with pytest.raises(alphazoo.UnsupportedFormatError) as error:
        zoo.save(model, "x", format="ubj")
    message = str(error.value)
    for fmt in ("skops", "pickle", "onnx", "ubj"):
        assert fmt in message
    assert isinstance(error.value, ValueError)
    assert zoo.store.keys() == []


def test_onnx_export_of_an_unfitted_model_is_refused(zoo):
    with pytest.raises(alphazoo.UnsupportedFormatError, match="fitted"):
        zoo.save(zoo.build("logistic_regression"), "unfitted", format="onnx")
    assert zoo.store.keys() == []


def test_onnx_export_without_training_rows_uses_a_synthetic_sample(zoo, data):
    from sklearn.linear_model import LogisticRegression

    model = LogisticRegression().fit(data["X"], data["y"])  # not trained through the zoo
    manifest = zoo.save(model, "synthetic", format="onnx")
    assert manifest["adapter_data"]["parity"]["sample"].startswith("synthetic")
    assert manifest["training"] is None
    np.testing.assert_allclose(
        zoo.load("synthetic").predict_proba(data["X_new"]), model.predict_proba(data["X_new"]),
        atol=1e-5,
    )


# -- ONNX parity ---------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def predictors(tmp_path_factory, data) -> dict[str, Any]:
    """A real classifier and regressor exported to ONNX, with their native models."""
    from sklearn.linear_model import LinearRegression, LogisticRegression

    zoo = alphazoo.Zoo(alphazoo.ObjectStore(tmp_path_factory.mktemp("parity")))
    clf = LogisticRegression().fit(data["X"], data["y"])
    reg = LinearRegression().fit(data["X"], data["y_reg"])
    zoo.save(clf, "clf", format="onnx", sample=data["X"])
    zoo.save(reg, "reg", format="onnx", sample=data["X"])
    return {"clf": clf, "reg": reg, "onnx_clf": zoo.load("clf"), "onnx_reg": zoo.load("reg")}


def test_check_parity_passes_when_the_export_agrees(predictors, data):
    onnx_clf, clf = predictors["onnx_clf"], predictors["clf"]
    report = check_parity(clf.predict, clf.predict_proba, onnx_clf, data["X_new"], 1e-4)
    assert report["rows"] == len(data["X_new"]) and report["label_agreement"] == 1.0
    assert report["max_abs_diff"] <= 1e-5
    reg, onnx_reg = predictors["reg"], predictors["onnx_reg"]
    assert check_parity(reg.predict, None, onnx_reg, data["X_new"], 1e-4)["max_abs_diff"] <= 1e-4


def test_check_parity_raises_on_disagreeing_labels(predictors, data):
    onnx_clf = predictors["onnx_clf"]

    def wrong_labels(X):
        labels = onnx_clf.predict(X).copy()
        labels[:3] = 1 - labels[:3]
        return labels

    with pytest.raises(alphazoo.OnnxParityError, match="3 of 40 rows"):
        check_parity(wrong_labels, None, onnx_clf, data["X_new"], 1e-4)


def test_check_parity_raises_on_disagreeing_probabilities(predictors, data):
    onnx_clf, clf = predictors["onnx_clf"], predictors["clf"]

    def shifted_proba(X):
        return clf.predict_proba(X) + np.array([0.01, -0.01])

    with pytest.raises(alphazoo.OnnxParityError, match="probabilities differ"):
        check_parity(clf.predict, shifted_proba, onnx_clf, data["X_new"], 1e-4)


def test_check_parity_raises_on_disagreeing_regression_values(predictors, data):
    onnx_reg, reg = predictors["onnx_reg"], predictors["reg"]
    with pytest.raises(alphazoo.OnnxParityError, match="predictions differ"):
        check_parity(lambda X: reg.predict(X) + 0.5, None, onnx_reg, data["X_new"], 1e-4)


def test_check_parity_forgives_labels_only_on_probability_ties(predictors, data):
    onnx_clf = predictors["onnx_clf"]
    X = data["X_new"]
    proba = onnx_clf.predict_proba(X).astype(np.float64)
    gaps = np.abs(proba[:, 1] - proba[:, 0])
    order = np.argsort(gaps)
    tie, clear = order[0], order[-1]
    tolerance = float(gaps[tie]) + 1e-9  # only the closest call counts as a tie
    assert gaps[order[1]] > tolerance

    def flip(rows):
        def predict(X_):
            labels = onnx_clf.predict(X_).copy()
            labels[rows] = 1 - labels[rows]
            return labels
        return predict

    def same_proba(X_):
        return onnx_clf.predict_proba(X_)

    report = check_parity(flip([tie]), same_proba, onnx_clf, X, tolerance)
    assert report["label_agreement"] == pytest.approx(1 - 1 / len(X))
    with pytest.raises(alphazoo.OnnxParityError, match="1 of"):
        check_parity(flip([tie, clear]), same_proba, onnx_clf, X, tolerance)


@pytest.mark.slow
def test_failed_parity_check_saves_nothing(zoo, data):
    model = zoo.train(zoo.build("logistic_regression"), data["X"], data["y"])
    with pytest.raises(alphazoo.OnnxParityError, match="not saved"):
        zoo.save(model, "strict", format="onnx", parity_tolerance=-1.0)
    assert zoo.store.keys() == []
    zoo.save(model, "strict", format="onnx")  # the default tolerance is met
    assert zoo.store.keys() == ["strict"]


@pytest.mark.parametrize("library,make", [
    ("xgboost", lambda m, X, y: m.XGBClassifier(n_estimators=3).fit(X, y)),
    ("hmmlearn.hmm", lambda m, X, y: m.GaussianHMM(n_components=2, n_iter=5).fit(X)),
    ("lightgbm", lambda m, X, y: m.LGBMClassifier(n_estimators=3, verbose=-1).fit(X, y)),
])
def test_other_libraries_estimators_are_not_claimed(store, data, library, make):
    # XGBClassifier and hmmlearn's models subclass scikit-learn's BaseEstimator; skops would
    # store them as untrusted types. With only this adapter loaded, the error names the class.
    import importlib

    from alphazoo.adapters import sklearn as sklearn_adapter

    model = make(importlib.import_module(library), data["X"], data["y"])
    assert not sklearn_adapter.owns(model)
    zoo = alphazoo.Zoo(store, plugins=[sklearn_adapter], discover=False)
    with pytest.raises(alphazoo.UnsupportedModelError, match=type(model).__qualname__):
        zoo.save(model, "foreign")
    assert not zoo.store.contains_key("foreign")


def test_onnx_predictor_reorders_dataframe_columns_by_name(zoo, data):
    import pandas
    frame = pandas.DataFrame(data["X"], columns=["a", "b", "c", "d"])
    model = zoo.train(zoo.build("logistic_regression"), frame, data["y"])
    zoo.save(model, "named", format="onnx")
    onnx = zoo.load("named")
    shuffled = frame[["d", "b", "a", "c"]]
    assert np.allclose(onnx.predict_proba(shuffled), model.predict_proba(frame), atol=1e-5)
    with pytest.raises(ValueError, match=r"missing the model's feature columns \['c'\]"):
        onnx.predict(frame[["a", "b", "d"]])


@pytest.mark.slow
def test_missing_onnx_converter_names_the_extra(tmp_path):
    code = f"""
import sys
sys.modules["skl2onnx"] = None  # as if alphazoo[onnx] were not installed
import numpy as np, alphazoo
zoo = alphazoo.Zoo(alphazoo.ObjectStore({str(tmp_path)!r}))
model = zoo.train(zoo.build("logistic_regression"), np.eye(4), [0, 1, 0, 1])
try:
    zoo.save(model, "m", format="onnx")
except alphazoo.MissingDependencyError as exc:
    print(isinstance(exc, ImportError), exc)
"""
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            timeout=HANG_TIMEOUT)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("True the onnx format needs skl2onnx")
    assert "pip install 'alphazoo[onnx]'" in result.stdout


def test_a_step_skl2onnx_cannot_convert_gives_a_clear_error(zoo, data):
    # An xgboost estimator inside a scikit-learn Pipeline belongs to the scikit-learn adapter
    # (skops and pickle store it); skl2onnx has no converter registered for it.
    xgboost = pytest.importorskip("xgboost", reason="xgboost is in the project's [all] extra")
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    model = make_pipeline(StandardScaler(), xgboost.XGBClassifier(n_estimators=3))
    model.fit(data["X"], data["y"])
    with pytest.raises(alphazoo.UnsupportedFormatError,
                       match=r"cannot convert this Pipeline.*XGBClassifier.*'skops' or 'pickle'"):
        zoo.save(model, "pipe/onnx", format="onnx")
    assert not zoo.store.contains_key("pipe/onnx")
