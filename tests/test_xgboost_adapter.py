"""The xgboost adapter: json (default), ubj, pickle and ONNX bundles of XGBClassifier,
XGBRegressor and Booster.

Exactness is checked on the trees themselves (``Booster.save_raw()`` bytes of the loaded model
equal the original's), on ``get_params()`` and on predictions, in this process and in a fresh
one; ONNX bundles are also served in a process where xgboost and scikit-learn cannot be
imported. Data: daily AAPL bars that ship with alphazoo (features at each close, next-day
direction and next-day return), GOOGL rows as unseen inputs.
"""

from __future__ import annotations

import json
import textwrap
from typing import Any

import numpy as np
import pytest
from _child import blocking_prelude, run_python

import alphazoo
from alphazoo.adapters import xgboost as adapter
from alphazoo.adapters._onnx import OnnxPredictor
from alphazoo.bundle import read_bundle
from alphazoo.contracts import LoadRequest
from alphazoo.datasets import load_prices
from alphazoo.example_features import FEATURES, make_features

xgboost = pytest.importorskip("xgboost", reason="xgboost is in the project's [xgboost] extra")

FORMATS = ["json", "ubj", "pickle", "onnx"]
MODELS = ["classifier", "regressor", "multiclass", "booster"]


# -- fixtures and helpers ------------------------------------------------------------------------
@pytest.fixture(scope="module")
def data() -> dict[str, np.ndarray]:
    X, y, _ = make_features(load_prices("AAPL"))
    X_new, _, _ = make_features(load_prices("GOOGL"))  # rows no model has seen
    # Row t+1's one-day return is the return from close t to close t+1: the regression target.
    X_reg, y_reg = X[:-1], X[1:, 0]
    y_three = np.digitize(y_reg, np.quantile(y_reg, [1 / 3, 2 / 3]))  # down / flat / up
    return {"X": X, "y": y, "X_reg": X_reg, "y_reg": y_reg, "y_three": y_three,
            "X_new": X_new[:200]}


def train_models(zoo: alphazoo.Zoo, data: dict[str, np.ndarray]) -> dict[str, Any]:
    small = {"n_estimators": 25, "max_depth": 3}
    booster = xgboost.train({"objective": "binary:logistic", "max_depth": 3, "nthread": 1},
                            xgboost.DMatrix(data["X"], label=data["y"]), num_boost_round=15)
    return {
        "classifier": zoo.train(zoo.build("xgboost_classifier", **small), data["X"], data["y"]),
        "regressor": zoo.train(zoo.build("xgboost_regressor", **small), data["X_reg"],
                               data["y_reg"]),
        "multiclass": zoo.train(zoo.build("xgboost_classifier", **small), data["X_reg"],
                                data["y_three"]),
        "booster": zoo.train(booster, data["X"], data["y"], num_boost_round=5),
    }


@pytest.fixture(scope="module")
def saved(tmp_path_factory: pytest.TempPathFactory, data) -> dict[str, Any]:
    """Every model trained and saved in every format, in one folder store."""
    with pytest.MonkeyPatch.context() as mp:
        mp.delenv("ALPHAZOO_SIGNING_KEY", raising=False)
        store_dir = tmp_path_factory.mktemp("xgboost-zoo")
        zoo = alphazoo.Zoo(alphazoo.ObjectStore(store_dir))
        models = train_models(zoo, data)
        manifests = {(name, fmt): zoo.save(model, f"zoo/{name}/{fmt}", format=fmt)
                     for name, model in models.items() for fmt in FORMATS}
    return {"store_dir": store_dir, "zoo": zoo, "models": models, "manifests": manifests}


def booster_of(model: Any) -> Any:
    return model if isinstance(model, xgboost.Booster) else model.get_booster()


def native_outputs(model: Any, X: np.ndarray) -> dict[str, np.ndarray]:
    if isinstance(model, xgboost.Booster):
        names = model.feature_names
        return {"predict": model.predict(xgboost.DMatrix(X, feature_names=names))}
    out = {"predict": np.asarray(model.predict(X))}
    if hasattr(model, "predict_proba"):
        out["proba"] = np.asarray(model.predict_proba(X))
    return out


def params_text(model: Any) -> str:
    """get_params() as comparable text (``missing`` is NaN, which never equals itself);
    numpy scalars count as the Python numbers they hold."""
    params = model.get_params(deep=False)
    return repr(sorted((k, v.item() if isinstance(v, np.generic) else v)
                       for k, v in params.items()))


def assert_same_model(original: Any, loaded: Any) -> None:
    assert type(loaded) is type(original)
    a, b = booster_of(original), booster_of(loaded)
    assert a.save_raw("ubj") == b.save_raw("ubj")
    assert a.save_raw("json") == b.save_raw("json")
    assert a.feature_names == b.feature_names
    if not isinstance(original, xgboost.Booster):
        assert params_text(loaded) == params_text(original)
        assert loaded.n_features_in_ == original.n_features_in_
        if hasattr(original, "classes_"):
            assert np.array_equal(loaded.classes_, original.classes_)
            assert loaded.n_classes_ == original.n_classes_


# -- registration and ownership ------------------------------------------------------------------
def test_zoo_models_and_formats_are_registered(zoo):
    specs = {spec.name: spec for spec in zoo.models()}
    for name in ("xgboost_classifier", "xgboost_regressor"):
        assert specs[name].library == "xgboost" and specs[name].plugin == "xgboost"
    formats = {(s.name, s.safe) for s in zoo.formats() if s.adapter == "xgboost"}
    assert formats == {("json", True), ("ubj", True), ("pickle", False), ("onnx", True)}
    (default,) = [s.name for s in zoo.formats() if s.adapter == "xgboost" and s.default]
    assert default == "ubj"
    onnx = zoo.format_spec("xgboost", "onnx")
    assert onnx.load_requires == ("onnxruntime",)


def test_built_models_have_the_documented_defaults(zoo):
    clf = zoo.build("xgboost_classifier")
    assert isinstance(clf, xgboost.XGBClassifier)
    assert (clf.n_estimators, clf.max_depth, clf.learning_rate, clf.random_state, clf.n_jobs) == (
        100, 4, 0.1, 0, 1)
    reg = zoo.build("xgboost_regressor", max_depth=2, subsample=0.8, tree_method="hist")
    assert isinstance(reg, xgboost.XGBRegressor)
    assert (reg.max_depth, reg.subsample, reg.tree_method) == (2, 0.8, "hist")


@pytest.mark.slow
def test_ownership(saved):
    for model in saved["models"].values():
        assert adapter.owns(model)
    assert not adapter.owns(xgboost.DMatrix(np.eye(3)))  # an xgboost object, not a model
    assert not adapter.owns({"a": 1})
    from alphazoo.adapters import sklearn as sklearn_adapter

    assert not sklearn_adapter.owns(saved["models"]["classifier"])
    manifest = saved["manifests"]["classifier", "json"]
    assert manifest["adapter"] == "xgboost"
    assert manifest["model_class"] == "xgboost.sklearn.XGBClassifier"
    assert saved["manifests"]["booster", "json"]["model_class"] == "xgboost.core.Booster"


# -- round trips ---------------------------------------------------------------------------------
@pytest.mark.parametrize("fmt", ["json", "ubj", "pickle"])
@pytest.mark.parametrize("name", MODELS)
def test_native_round_trip_is_exact(saved, data, name, fmt):
    zoo, original = saved["zoo"], saved["models"][name]
    manifest = saved["manifests"][name, fmt]
    assert manifest["format"] == fmt
    assert [f["name"] for f in manifest["files"]] == [f"model.{'pkl' if fmt == 'pickle' else fmt}"]
    loaded = zoo.load(f"zoo/{name}/{fmt}", trusted=fmt == "pickle")
    assert loaded is not original
    assert_same_model(original, loaded)
    for X in (data["X"], data["X_new"]):
        expected, got = native_outputs(original, X), native_outputs(loaded, X)
        assert expected.keys() == got.keys()
        for kind in expected:
            assert np.array_equal(expected[kind], got[kind]), kind
    assert np.array_equal(zoo.predict(loaded, data["X_new"]), zoo.predict(original, data["X_new"]))


@pytest.mark.parametrize("fmt", ["json", "ubj"])
@pytest.mark.parametrize("name", ["classifier", "booster"])
def test_payload_is_what_xgboost_itself_writes(saved, tmp_path, name, fmt):
    model = saved["models"][name]
    direct = tmp_path / f"direct.{fmt}"
    model.save_model(str(direct))
    (tmp_path / "bundle").mkdir()
    opened = read_bundle(saved["zoo"].store, f"zoo/{name}/{fmt}", tmp_path / "bundle")
    assert opened.files[f"model.{fmt}"].read_bytes() == direct.read_bytes()


def test_manifest_records_what_the_loader_needs(saved):
    data = saved["manifests"]["classifier", "json"]["adapter_data"]
    assert data["estimator"] == "XGBClassifier" and data["task"] == "classification"
    assert data["objective"] == "binary:logistic" and data["classes"] == [0, 1]
    assert data["rounds"] == 25
    assert data["params"]["n_estimators"] == 25 and data["params"]["missing"] == {"float": "nan"}
    multi = saved["manifests"]["multiclass", "ubj"]["adapter_data"]
    assert multi["classes"] == [0, 1, 2] and multi["objective"] == "multi:softprob"
    booster = saved["manifests"]["booster", "json"]
    assert booster["adapter_data"]["estimator"] == "Booster"
    assert booster["adapter_data"]["rounds"] == 20 and "params" not in booster["adapter_data"]
    manifest = saved["manifests"]["regressor", "json"]
    assert manifest["adapter_data"]["task"] == "regression"
    assert manifest["input"] == {"dtype": "float64", "shape": [None, len(FEATURES)],
                                 "feature_names": None}
    assert manifest["libraries"]["xgboost"] == xgboost.__version__
    assert {"numpy", "scikit-learn"} <= set(manifest["libraries"])
    assert manifest["name"] == "xgboost_regressor" and manifest["params"] == {
        "n_estimators": 25, "max_depth": 3}
    onnx_libraries = saved["manifests"]["classifier", "onnx"]["libraries"]
    assert {"onnxmltools", "onnx", "onnxruntime"} <= set(onnx_libraries)


@pytest.mark.parametrize("name", MODELS)
def test_onnx_round_trip_matches_the_native_model(saved, data, name):
    zoo, original = saved["zoo"], saved["models"][name]
    manifest = saved["manifests"][name, "onnx"]
    parity = manifest["adapter_data"]["parity"]
    # 256 training rows and the same rows with a quarter of the values NaN (missing)
    assert parity["rows"] == 512 and parity["missing_rows"] == 256
    assert parity["sample"] == "training rows"
    assert parity["max_abs_diff"] <= 1e-5
    assert manifest["adapter_data"]["target_opset"] == adapter.MAX_ONNX_OPSET

    loaded = zoo.load(f"zoo/{name}/onnx")
    assert isinstance(loaded, OnnxPredictor)
    X = data["X_new"]
    if name == "regressor":
        assert loaded.task == "regression" and not hasattr(loaded, "predict_proba")
        np.testing.assert_allclose(loaded.predict(X), original.predict(X), rtol=1e-5, atol=1e-6)
        return
    assert loaded.task == "classification" and parity["label_agreement"] == 1.0
    if name == "booster":  # Booster.predict gives P(class 1); the predictor, labels
        p = native_outputs(original, X)["predict"]
        expected_labels, expected_proba = (p > 0.5).astype(np.int64), np.column_stack([1 - p, p])
        assert list(loaded.classes_) == [0, 1]
    else:
        expected_labels, expected_proba = original.predict(X), original.predict_proba(X)
        assert np.array_equal(loaded.classes_, original.classes_)
    assert np.array_equal(loaded.predict(X), expected_labels)
    np.testing.assert_allclose(loaded.predict_proba(X), expected_proba, atol=1e-6, rtol=0)
    assert loaded.predict(X[0]).shape == (1,)  # one row as a 1-D array


# -- fresh processes -----------------------------------------------------------------------------
FRESH_CHILD = textwrap.dedent(
    """
    import json, sys
    from pathlib import Path
    import numpy as np
    import alphazoo

    store, rows, out = sys.argv[1], np.load(sys.argv[2]), Path(sys.argv[3])
    zoo = alphazoo.Zoo(alphazoo.ObjectStore(store))
    result = {}
    for key in zoo.store.keys():
        model = zoo.load(key, trusted=key.endswith("/pickle"))
        entry = {"type": type(model).__name__}
        if hasattr(model, "get_booster") or type(model).__name__ == "Booster":
            booster = model if type(model).__name__ == "Booster" else model.get_booster()
            for raw in ("ubj", "json"):
                (out / (key.replace("/", "-") + "." + raw)).write_bytes(booster.save_raw(raw))
        if hasattr(model, "get_params"):
            entry["params"] = repr(sorted(model.get_params(deep=False).items()))
        if type(model).__name__ == "Booster":
            import xgboost
            dmatrix = xgboost.DMatrix(rows, feature_names=model.feature_names)
            entry["predict"] = model.predict(dmatrix).astype(float).tolist()
        else:
            entry["predict"] = np.asarray(model.predict(rows)).tolist()
        if hasattr(model, "predict_proba"):
            entry["proba"] = np.asarray(model.predict_proba(rows), dtype=float).tolist()
        result[key] = entry
    (out / "result.json").write_text(json.dumps(result))
    """
)


@pytest.mark.slow
def test_every_bundle_loads_exactly_in_a_fresh_process(saved, data, tmp_path):
    rows = tmp_path / "rows.npy"
    np.save(rows, data["X_new"])
    out = tmp_path / "out"
    out.mkdir()
    run_python(FRESH_CHILD, str(saved["store_dir"]), str(rows), str(out), cwd=tmp_path)
    result = json.loads((out / "result.json").read_text())
    assert set(result) == {f"zoo/{n}/{f}" for n in MODELS for f in FORMATS}

    for name in MODELS:
        model = saved["models"][name]
        expected = native_outputs(model, data["X_new"])
        booster = booster_of(model)
        for fmt in FORMATS:
            key = f"zoo/{name}/{fmt}"
            child = result[key]
            if fmt == "onnx":
                assert child["type"] == "OnnxPredictor"
                assert not (out / f"zoo-{name}-{fmt}.ubj").exists()
                continue  # ONNX predictions are compared with the native model above
            assert child["type"] == type(model).__name__, key
            for raw in ("ubj", "json"):
                child_bytes = (out / f"zoo-{name}-{fmt}.{raw}").read_bytes()
                assert child_bytes == booster.save_raw(raw), (key, raw)
            if name != "booster":
                assert child["params"] == params_text(model), key
            assert np.array_equal(np.asarray(child["predict"]), expected["predict"]), key
            assert ("proba" in child) == ("proba" in expected), key
            if "proba" in expected:
                assert np.array_equal(np.asarray(child["proba"]), expected["proba"]), key


BLOCKED_CHILD = blocking_prelude("xgboost", "sklearn", "onnxmltools", "skl2onnx") + textwrap.dedent(
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
    try:  # the block is real: a json bundle needs xgboost
        zoo.load("zoo/classifier/json")
    except ImportError as exc:
        result["json_refused"] = str(exc)
    result["loaded"] = sorted(name for name in sys.modules if name.partition(".")[0] in _BLOCKED)
    with open(out, "w") as handle:
        json.dump(result, handle)
    """
)


@pytest.mark.slow
def test_onnx_bundles_predict_without_xgboost_or_scikit_learn(saved, data, tmp_path):
    rows = tmp_path / "rows.npy"
    np.save(rows, data["X_new"])
    out = tmp_path / "out.json"
    run_python(BLOCKED_CHILD, str(saved["store_dir"]), str(rows), str(out), cwd=tmp_path)
    result = json.loads(out.read_text())

    assert result.pop("loaded") == []
    assert "needs xgboost" in result.pop("json_refused")
    assert set(result) == {f"zoo/{name}/onnx" for name in MODELS}
    X = data["X_new"]
    for name in MODELS:
        model, child = saved["models"][name], result[f"zoo/{name}/onnx"]
        assert child["type"] == "OnnxPredictor"
        if name == "regressor":
            np.testing.assert_allclose(child["predict"], model.predict(X), rtol=1e-5, atol=1e-6)
            assert "proba" not in child
            continue
        if name == "booster":
            p = native_outputs(model, X)["predict"]
            labels, proba = (p > 0.5).astype(np.int64), np.column_stack([1 - p, p])
        else:
            labels, proba = model.predict(X), model.predict_proba(X)
        assert np.array_equal(np.asarray(child["predict"]), labels), name
        np.testing.assert_allclose(np.asarray(child["proba"]), proba, atol=1e-6, rtol=0)


# -- object stores -------------------------------------------------------------------------------
@pytest.mark.slow
def test_default_format_round_trips_through_every_backend(object_store, data):
    zoo = alphazoo.Zoo(object_store)
    model = zoo.train(zoo.build("xgboost_classifier", n_estimators=10), data["X"], data["y"])
    manifest = zoo.save(model, "desk/xgb")
    assert manifest["format"] == "ubj"
    assert object_store.keys() == ["desk/xgb"]
    loaded = alphazoo.Zoo(object_store).load("desk/xgb")
    assert_same_model(model, loaded)
    assert np.array_equal(loaded.predict_proba(data["X_new"]), model.predict_proba(data["X_new"]))


# -- feature names, parameters, boosters ---------------------------------------------------------
def test_dataframe_feature_names_survive_every_format(zoo, data):
    pandas = pytest.importorskip("pandas")
    frame = pandas.DataFrame(data["X"], columns=FEATURES)
    model = zoo.train(zoo.build("xgboost_classifier", n_estimators=10), frame, data["y"])
    new = pandas.DataFrame(data["X_new"], columns=FEATURES)
    for fmt in FORMATS:
        manifest = zoo.save(model, f"named/{fmt}", format=fmt)  # onnx despite named splits
        assert manifest["input"]["feature_names"] == list(FEATURES)
        loaded = zoo.load(f"named/{fmt}", trusted=fmt == "pickle")
        if fmt == "onnx":
            shuffled = new[list(reversed(FEATURES))]  # reordered by name, not position
            np.testing.assert_allclose(loaded.predict_proba(shuffled), model.predict_proba(new),
                                       atol=1e-6)
        else:
            assert list(loaded.feature_names_in_) == list(FEATURES)
            assert np.array_equal(loaded.predict_proba(new), model.predict_proba(new))


def test_tuples_nan_and_extra_parameters_round_trip(zoo, data):
    model = xgboost.XGBRegressor(
        n_estimators=8, monotone_constraints=(1, 0, 0, 0, 0, 0, 0, -1),
        interaction_constraints="[[0, 1], [2, 3, 4]]", eval_metric=["rmse", "mae"],
        missing=np.nan, max_bin=np.int64(64),
        eta=0.2,  # an alias: not a constructor argument, kept in kwargs
    ).fit(data["X_reg"], data["y_reg"])
    zoo.save(model, "constrained")
    loaded = zoo.load("constrained")
    assert loaded.monotone_constraints == (1, 0, 0, 0, 0, 0, 0, -1)
    assert loaded.eval_metric == ["rmse", "mae"] and np.isnan(loaded.missing)
    assert loaded.kwargs == {"eta": 0.2}
    assert type(loaded.max_bin) is int and loaded.max_bin == 64  # numpy scalars become Python's
    assert_same_model(model, loaded)


def mean_abs_error(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """A metric of the user's own: code, so json and ubj cannot store it."""
    return float(np.mean(np.abs(y_true - y_pred)))


@pytest.mark.slow
def test_parameters_that_are_code_are_named_when_left_out(zoo, data):
    model = xgboost.XGBRegressor(n_estimators=5, eval_metric=mean_abs_error).fit(data["X_reg"],
                                                                       data["y_reg"])
    with pytest.warns(UserWarning, match=r"not stored: \['eval_metric'\]"):
        zoo.save(model, "code", format="ubj")
    loaded = zoo.load("code")
    assert loaded.eval_metric is None
    assert np.array_equal(loaded.predict(data["X_new"]), model.predict(data["X_new"]))
    zoo.save(model, "code-pickle", format="pickle")
    assert zoo.load("code-pickle", trusted=True).eval_metric is mean_abs_error


class MyClassifier(xgboost.XGBClassifier):
    """A user's subclass: json and ubj bring it back as the xgboost class."""


@pytest.mark.slow
def test_a_subclass_loads_as_its_xgboost_class(zoo, data):
    model = MyClassifier(n_estimators=5).fit(data["X"], data["y"])
    with pytest.warns(UserWarning, match="loads as that class"):
        zoo.save(model, "sub")
    loaded = zoo.load("sub")
    assert type(loaded) is xgboost.XGBClassifier
    assert np.array_equal(loaded.predict_proba(data["X_new"]), model.predict_proba(data["X_new"]))


@pytest.mark.slow
def test_booster_training_continues_and_predicts_by_position(zoo, data):
    pandas = pytest.importorskip("pandas")
    frame = pandas.DataFrame(data["X"], columns=FEATURES)
    start = xgboost.train({"objective": "binary:logistic", "nthread": 1},
                          xgboost.DMatrix(frame, label=data["y"]), num_boost_round=4)
    before = start.save_raw("ubj")
    grown = zoo.train(start, data["X"], data["y"], num_boost_round=3, params={"eta": 0.05})
    assert grown is not start and start.save_raw("ubj") == before
    assert (start.num_boosted_rounds(), grown.num_boosted_rounds()) == (4, 7)
    assert grown.feature_names == list(FEATURES)
    expected = grown.predict(xgboost.DMatrix(frame))
    assert np.array_equal(zoo.predict(grown, data["X"]), expected)  # numpy: by position
    assert np.array_equal(zoo.predict(grown, frame), expected)
    with pytest.raises(ValueError, match="feature"):  # a DataFrame's names are checked
        zoo.predict(grown, frame.rename(columns={"ret_1d": "other"}))
    labelled = xgboost.DMatrix(frame, label=data["y"])
    assert zoo.train(grown, labelled, num_boost_round=1).num_boosted_rounds() == 8
    with pytest.raises(ValueError, match="pass y=None"):
        zoo.train(grown, labelled, data["y"])


def with_holes(X: np.ndarray, value: float, seed: int = 1) -> np.ndarray:
    """``X`` with about a third of its values replaced by ``value``."""
    return np.where(np.random.default_rng(seed).random(X.shape) < 0.3, value, X)


def test_an_early_stopped_model_keeps_its_best_iteration_in_every_format(zoo, data):
    X, y, half = data["X"], data["y"], len(data["X"]) // 2
    model = xgboost.XGBClassifier(n_estimators=200, max_depth=3, learning_rate=0.3, n_jobs=1,
                                  early_stopping_rounds=5)
    model.fit(X[:half], y[:half], eval_set=[(X[half:], y[half:])], verbose=False)
    rounds = model.get_booster().num_boosted_rounds()
    assert model.best_iteration + 1 < rounds  # predict uses fewer trees than the booster has
    expected = model.predict_proba(data["X_new"])
    for fmt in ("json", "ubj"):
        zoo.save(model, f"early/{fmt}", format=fmt)
        loaded = zoo.load(f"early/{fmt}")
        assert (loaded.best_iteration, loaded.best_score) == (model.best_iteration,
                                                              model.best_score)
        assert np.array_equal(loaded.predict_proba(data["X_new"]), expected)
    # onnxmltools exports every tree; the bundle must hold the ones predict uses.
    manifest = zoo.save(model, "early/onnx", format="onnx", sample=X)
    assert manifest["adapter_data"]["rounds_exported"] == model.best_iteration + 1
    np.testing.assert_allclose(zoo.load("early/onnx").predict_proba(data["X_new"]), expected,
                               atol=1e-6, rtol=0)


def test_onnx_agrees_on_rows_with_missing_values(zoo, data):
    X, y = data["X"], data["y"]
    model = xgboost.XGBClassifier(n_estimators=30, max_depth=3, n_jobs=1).fit(
        with_holes(X, np.nan), y)  # trained with holes: the trees learn default directions
    manifest = zoo.save(model, "nan", format="onnx", sample=X[:100])
    assert manifest["adapter_data"]["parity"]["missing_rows"] == 100
    rows = with_holes(data["X_new"], np.nan, seed=2)
    loaded = zoo.load("nan")
    np.testing.assert_allclose(loaded.predict_proba(rows), model.predict_proba(rows), atol=1e-6,
                               rtol=0)
    assert np.array_equal(loaded.predict(rows), model.predict(rows))


def test_a_missing_value_other_than_nan_means_missing_in_onnx_too(zoo, data):
    model = xgboost.XGBRegressor(n_estimators=30, max_depth=3, n_jobs=1, missing=-999.0)
    model.fit(with_holes(data["X_reg"], -999.0), data["y_reg"])
    manifest = zoo.save(model, "sentinel", format="onnx", sample=data["X_reg"][:100])
    loaded = zoo.load("sentinel")
    for rows in (with_holes(data["X_new"], -999.0, seed=2),
                 with_holes(data["X_new"], np.nan, seed=3)):  # xgboost skips NaN as well
        np.testing.assert_allclose(loaded.predict(rows), model.predict(rows), rtol=1e-5,
                                   atol=1e-6)
    assert manifest["adapter_data"]["parity"]["missing_rows"] == 200  # NaN and -999 copies
    with pytest.raises(alphazoo.UnsupportedFormatError, match="opset >= 11"):
        zoo.save(model, "sentinel-old", format="onnx", opset=10)
    assert zoo.store.keys() == ["sentinel"]


def test_an_xgboost_model_in_a_pipeline_is_the_scikit_learn_adapters(zoo, data):
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    pipeline = make_pipeline(StandardScaler(), xgboost.XGBClassifier(n_estimators=5, n_jobs=1))
    pipeline.fit(data["X"], data["y"])
    assert not adapter.owns(pipeline)
    with pytest.warns(UserWarning, match=r"not trusted by default.*XGBClassifier"):
        manifest = zoo.save(pipeline, "pipe")  # skops stores the xgboost step as an object
    assert (manifest["adapter"], manifest["format"]) == ("sklearn", "skops")
    with pytest.raises(alphazoo.UntrustedModelError):
        zoo.load("pipe")
    loaded = zoo.load("pipe", trusted=True)
    assert np.array_equal(loaded.predict_proba(data["X_new"]),
                          pipeline.predict_proba(data["X_new"]))


@pytest.mark.parametrize("params", [{"_Booster": 1}, {"n_classes_": 7}, {"classes_": [5, 9]},
                                    {"kwargs": {"eta": 1}}, ["max_depth"]])
def test_manifest_parameters_cannot_set_fitted_state(saved, tmp_path, params):
    model = saved["models"]["classifier"]
    payload = tmp_path / "model.json"
    model.save_model(str(payload))
    honest, _ = adapter._encode_params(model.get_params(deep=False))
    request = LoadRequest(
        manifest={"adapter": "xgboost", "format": "json", "adapter_data": {
            "estimator": "XGBClassifier",
            "params": {**honest, **params} if isinstance(params, dict) else params}},
        files={"model.json": payload},
    )
    with pytest.raises(alphazoo.BundleIntegrityError, match="not parameter names"):
        adapter.alphazoo_load(request)
    request.manifest["adapter_data"]["params"] = honest
    assert_same_model(model, adapter.alphazoo_load(request))


# -- errors --------------------------------------------------------------------------------------
def test_pickle_needs_trust(saved):
    zoo = saved["zoo"]
    with pytest.raises(alphazoo.UntrustedModelError, match="trusted=True"):
        zoo.load("zoo/classifier/pickle")


def test_signed_pickle_loads_with_its_key(zoo, saved):
    model = saved["models"]["regressor"]
    zoo.save(model, "signed", format="pickle", sign_key="desk-key")
    with pytest.raises(alphazoo.UntrustedModelError):
        zoo.load("signed")
    assert_same_model(model, zoo.load("signed", sign_key="desk-key"))


@pytest.mark.parametrize("fmt", ["skops", "pt", "keras"])
def test_other_adapters_formats_are_refused(zoo, saved, fmt):
    with pytest.raises(alphazoo.UnsupportedFormatError) as error:
        zoo.save(saved["models"]["classifier"], "x", format=fmt)
    message = str(error.value)
    assert "xgboost" in message and repr(fmt) in message
    assert f"{fmt} is the " in message  # says whose format it is
    for name in FORMATS:
        assert name in message
    assert zoo.store.keys() == []


def test_unknown_options_are_type_errors(zoo, saved):
    model = saved["models"]["classifier"]
    with pytest.raises(TypeError, match=r"save got unexpected options \['compress'\]"):
        zoo.save(model, "x", compress=True)
    with pytest.raises(TypeError, match=r"unexpected options \['opset'\]"):
        zoo.save(model, "x", format="json", opset=13)  # opset is an ONNX option
    with pytest.raises(ValueError, match="opset must be an int from 1 to 15"):
        zoo.save(model, "x", format="onnx", opset=17)
    assert zoo.store.keys() == []
    zoo.save(model, "x")
    with pytest.raises(TypeError, match=r"load got unexpected options \['builder'\]"):
        zoo.load("x", builder=object)


def test_a_lower_opset_can_be_asked_for(zoo, saved, data):
    model = saved["models"]["multiclass"]
    manifest = zoo.save(model, "opset13", format="onnx", opset=13)
    assert manifest["adapter_data"]["target_opset"] == 13
    np.testing.assert_allclose(zoo.load("opset13").predict_proba(data["X_new"]),
                               model.predict_proba(data["X_new"]), atol=1e-6)


def test_unfitted_models_need_pickle(zoo):
    unfitted = zoo.build("xgboost_regressor")
    for fmt in ("json", "ubj", "onnx"):
        with pytest.raises(alphazoo.UnsupportedFormatError, match="fit XGBRegressor first"):
            zoo.save(unfitted, "unfitted", format=fmt)
    assert zoo.store.keys() == []
    zoo.save(unfitted, "unfitted", format="pickle")
    loaded = zoo.load("unfitted", trusted=True)
    assert params_text(loaded) == params_text(unfitted)
    assert zoo.inspect("unfitted")["input"]["shape"] == [None, None]


def test_failed_parity_check_saves_nothing(zoo, saved):
    model = saved["models"]["classifier"]
    with pytest.raises(alphazoo.OnnxParityError, match="not saved"):
        zoo.save(model, "strict", format="onnx", parity_tolerance=-1.0)
    assert zoo.store.keys() == []
    zoo.save(model, "strict", format="onnx")
    assert zoo.store.keys() == ["strict"]


@pytest.mark.slow
def test_an_export_that_disagrees_is_never_stored(zoo, data):
    # onnxmltools 1.16 exports reg:logistic as raw margins; whatever a converter does, an
    # ONNX bundle that exists must predict what the native model predicts.
    model = xgboost.XGBRegressor(objective="reg:logistic", n_estimators=10).fit(data["X"],
                                                                                data["y"])
    try:
        zoo.save(model, "logistic", format="onnx", sample=data["X"])
    except alphazoo.OnnxParityError as exc:
        assert "not saved" in str(exc)
        assert zoo.store.keys() == []
    else:
        np.testing.assert_allclose(zoo.load("logistic").predict(data["X_new"]),
                                   model.predict(data["X_new"]), atol=1e-5)


@pytest.mark.slow
def test_unexportable_booster_objective_is_refused(zoo, data):
    booster = xgboost.train({"objective": "binary:logitraw"},
                            xgboost.DMatrix(data["X"], label=data["y"]), num_boost_round=3)
    with pytest.raises(alphazoo.UnsupportedFormatError, match="binary:logitraw"):
        zoo.save(booster, "raw", format="onnx")
    assert zoo.store.keys() == []
    zoo.save(booster, "raw")  # json keeps any objective
    assert zoo.load("raw").save_raw("ubj") == booster.save_raw("ubj")


@pytest.mark.slow
def test_loader_builds_only_listed_estimators(tmp_path):
    payload = tmp_path / "model.json"
    payload.write_text("{}")
    for name in ("os.system", "builtins.eval", "XGBModel"):
        request = LoadRequest(
            manifest={"adapter": "xgboost", "format": "json",
                      "adapter_data": {"estimator": name, "params": {}}},
            files={"model.json": payload},
        )
        with pytest.raises(alphazoo.BundleIntegrityError, match="holds a Booster or one of"):
            adapter.alphazoo_load(request)
