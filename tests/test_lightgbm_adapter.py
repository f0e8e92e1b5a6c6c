"""The lightgbm adapter: text (default), pickle and ONNX bundles of Booster, LGBMClassifier,
LGBMRegressor and LGBMRanker.

Exactness is checked on the trees (the loaded model's model string equals the original's), on
``get_params()``, the fitted attributes and predictions, in this process and in a fresh one;
ONNX bundles are also served in a process where lightgbm and scikit-learn cannot be imported.
Hostile model strings (huge, malformed, with out-of-range offsets, counts and child indexes)
are refused with typed errors before LightGBM's C++ reader sees them. Data: daily AAPL bars
that ship with alphazoo (features at each close, next-day direction and return), GOOGL rows as
unseen inputs.
"""

from __future__ import annotations

import json
import re
import textwrap
from typing import Any

import numpy as np
import pytest
from _child import blocking_prelude, run_python
from _crafted import rebundle

import alphazoo
from alphazoo.adapters import lightgbm as adapter
from alphazoo.adapters._lightgbm_text import check_model_text
from alphazoo.bundle import read_bundle
from alphazoo.contracts import LoadRequest
from alphazoo.datasets import load_prices
from alphazoo.example_features import FEATURES, make_features
from alphazoo.limits import LoadLimits

lightgbm = pytest.importorskip("lightgbm", reason="lightgbm is in the project's [lightgbm] extra")

FORMATS = ["text", "pickle", "onnx"]
MODELS = ["classifier", "regressor", "multiclass", "labels", "ranker", "booster"]
SMALL = {"n_estimators": 20, "num_leaves": 7}


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
    X, y = data["X"], data["y"]
    words = np.where(y == 1, "up", "down")  # string classes keep their dtype
    # A ranker: days grouped by month (about 21 rows), relevance = the return's tercile.
    group = [21] * (len(data["X_reg"]) // 21)
    rows = sum(group)
    ranker = lightgbm.LGBMRanker(verbose=-1, **SMALL).fit(
        data["X_reg"][:rows], data["y_three"][:rows], group=group)
    booster = lightgbm.train({"objective": "binary", "num_leaves": 7, "verbose": -1,
                              "num_threads": 1}, lightgbm.Dataset(X, label=y),
                             num_boost_round=15)
    return {
        "classifier": zoo.train(zoo.build("lightgbm_classifier", **SMALL), X, y),
        "regressor": zoo.train(zoo.build("lightgbm_regressor", **SMALL), data["X_reg"],
                               data["y_reg"]),
        "multiclass": zoo.train(zoo.build("lightgbm_classifier", **SMALL), data["X_reg"],
                                data["y_three"]),
        "labels": zoo.train(zoo.build("lightgbm_classifier", class_weight={"up": 2.0},
                                      **SMALL), X, words),
        "ranker": ranker,
        "booster": zoo.train(booster, X, y, num_boost_round=5),
    }


@pytest.fixture(scope="module")
def saved(tmp_path_factory: pytest.TempPathFactory, data) -> dict[str, Any]:
    """Every model trained and saved in every format it has, in one folder store."""
    with pytest.MonkeyPatch.context() as mp:
        mp.delenv("ALPHAZOO_SIGNING_KEY", raising=False)
        store_dir = tmp_path_factory.mktemp("lightgbm-zoo")
        zoo = alphazoo.Zoo(alphazoo.ObjectStore(store_dir))
        models = train_models(zoo, data)
        manifests = {(name, fmt): zoo.save(model, f"zoo/{name}/{fmt}", format=fmt)
                     for name, model in models.items() for fmt in FORMATS}
    return {"store_dir": store_dir, "zoo": zoo, "models": models, "manifests": manifests}


def booster_of(model: Any) -> Any:
    return model if isinstance(model, lightgbm.Booster) else model.booster_


def native_outputs(model: Any, X: Any) -> dict[str, np.ndarray]:
    out = {"predict": np.asarray(model.predict(X))}
    if hasattr(model, "predict_proba"):
        out["proba"] = np.asarray(model.predict_proba(X))
    return out


def assert_same_model(original: Any, loaded: Any) -> None:
    assert type(loaded) is type(original)
    a, b = booster_of(original), booster_of(loaded)
    assert a.model_to_string(num_iteration=-1) == b.model_to_string(num_iteration=-1)
    assert a.best_iteration == b.best_iteration
    assert a.feature_name() == b.feature_name()
    if isinstance(original, lightgbm.Booster):
        return
    assert loaded.get_params() == original.get_params()
    assert loaded.n_features_in_ == original.n_features_in_
    assert loaded.n_features_ == original.n_features_
    assert loaded.best_iteration_ == original.best_iteration_
    assert loaded.best_score_ == original.best_score_
    assert loaded.objective_ == original.objective_
    if hasattr(original, "classes_"):
        assert loaded.classes_.dtype == original.classes_.dtype
        assert np.array_equal(loaded.classes_, original.classes_)
        assert loaded.n_classes_ == original.n_classes_


# -- registration and ownership ------------------------------------------------------------------
def test_zoo_models_and_formats_are_registered(zoo):
    specs = {spec.name: spec for spec in zoo.models()}
    for name in ("lightgbm_classifier", "lightgbm_regressor"):
        assert specs[name].library == "lightgbm" and specs[name].plugin == "lightgbm"
    formats = {(s.name, s.safe) for s in zoo.formats() if s.adapter == "lightgbm"}
    assert formats == {("text", True), ("pickle", False), ("onnx", True)}
    (default,) = [s.name for s in zoo.formats() if s.adapter == "lightgbm" and s.default]
    assert default == "text"
    assert zoo.format_spec("lightgbm", "onnx").load_requires == ("onnxruntime",)
    assert zoo.format_spec("lightgbm", "text").load_requires == ("lightgbm",)


def test_built_models_have_the_documented_defaults(zoo):
    clf = zoo.build("lightgbm_classifier")
    assert isinstance(clf, lightgbm.LGBMClassifier)
    assert (clf.n_estimators, clf.num_leaves, clf.learning_rate, clf.random_state, clf.n_jobs,
            clf.verbose) == (100, 15, 0.1, 0, 1, -1)
    reg = zoo.build("lightgbm_regressor", num_leaves=4, subsample=0.8, subsample_freq=1)
    assert isinstance(reg, lightgbm.LGBMRegressor)
    assert (reg.num_leaves, reg.subsample, reg.subsample_freq) == (4, 0.8, 1)


def test_ownership_wins_over_the_scikit_learn_adapter(saved):
    from alphazoo.adapters import sklearn as sklearn_adapter

    for model in saved["models"].values():
        assert adapter.owns(model)
    assert not adapter.owns(lightgbm.Dataset(np.eye(3)))  # a lightgbm object, not a model
    assert not adapter.owns({"a": 1})
    assert not sklearn_adapter.owns(saved["models"]["classifier"])
    manifests = saved["manifests"]
    assert manifests["classifier", "text"]["adapter"] == "lightgbm"
    assert manifests["classifier", "text"]["model_class"] == "lightgbm.sklearn.LGBMClassifier"
    assert manifests["booster", "text"]["model_class"] == "lightgbm.basic.Booster"
    assert saved["zoo"].owner_of(saved["models"]["regressor"]) == "lightgbm"


# -- round trips ---------------------------------------------------------------------------------
@pytest.mark.parametrize("fmt", ["text", "pickle"])
@pytest.mark.parametrize("name", MODELS)
def test_native_round_trip_is_exact(saved, data, name, fmt):
    zoo, original = saved["zoo"], saved["models"][name]
    manifest = saved["manifests"][name, fmt]
    assert [f["name"] for f in manifest["files"]] == ["model.txt" if fmt == "text"
                                                      else "model.pkl"]
    loaded = zoo.load(f"zoo/{name}/{fmt}", trusted=fmt == "pickle")
    assert loaded is not original
    assert_same_model(original, loaded)
    for X in (data["X"], data["X_new"]):
        expected, got = native_outputs(original, X), native_outputs(loaded, X)
        assert expected.keys() == got.keys()
        for kind in expected:
            assert np.array_equal(expected[kind], got[kind]), kind
    assert np.array_equal(zoo.predict(loaded, data["X_new"]), zoo.predict(original, data["X_new"]))


def test_the_payload_is_lightgbms_own_model_string(saved, tmp_path):
    model = saved["models"]["regressor"]
    bundle = read_bundle(saved["zoo"].store, "zoo/regressor/text", tmp_path)
    payload = bundle.files["model.txt"]
    # Byte for byte what LightGBM's own save_model writes, so LightGBM reads it as its own.
    native = tmp_path / "native.txt"
    model.booster_.save_model(str(native), num_iteration=-1)
    assert payload.read_bytes() == native.read_bytes()
    loaded = lightgbm.Booster(model_file=str(payload))
    assert np.array_equal(loaded.predict(np.zeros((1, len(FEATURES)))),
                          model.booster_.predict(np.zeros((1, len(FEATURES)))))


def test_manifest_records_what_the_loader_needs(saved):
    manifests = saved["manifests"]
    clf = manifests["labels", "text"]
    data = clf["adapter_data"]
    assert data["estimator"] == "LGBMClassifier" and data["task"] == "classification"
    assert data["classes"] == ["down", "up"] and data["objective"] == "binary"
    assert data["state"]["classes"] == {"values": ["down", "up"], "dtype": "<U4"}
    assert data["params"]["class_weight"] == {"items": [["up", 2.0]]}
    assert clf["libraries"].keys() >= {"lightgbm", "numpy", "scikit-learn"}
    assert clf["input"]["shape"] == [None, len(FEATURES)]
    assert clf["input"]["feature_names"] is None  # fitted on a numpy array
    booster = manifests["booster", "text"]["adapter_data"]
    assert booster["estimator"] == "Booster" and booster["best_iteration"] == 0
    assert "params" not in booster and "state" not in booster
    assert manifests["ranker", "text"]["adapter_data"]["task"] == "ranking"
    onnx = manifests["multiclass", "onnx"]["adapter_data"]
    assert onnx["outputs"] == {"label": "label", "probabilities": "probabilities"}
    assert onnx["classes"] == [0, 1, 2] and onnx["target_opset"] == adapter.MAX_ONNX_OPSET
    assert onnx["parity"]["missing_rows"] > 0 and onnx["rounds_exported"] == SMALL[
        "n_estimators"]


@pytest.mark.parametrize("name", MODELS)
def test_onnx_round_trip_matches_the_native_model(saved, data, name):
    model = saved["models"][name]
    loaded = saved["zoo"].load(f"zoo/{name}/onnx")
    assert type(loaded).__name__ == "OnnxPredictor"
    X = data["X_new"]
    if name in ("regressor", "ranker"):  # values: within float32 rounding
        np.testing.assert_allclose(loaded.predict(X), model.predict(X), rtol=1e-5, atol=1e-6)
        return
    if name == "booster":  # Booster.predict gives P(class 1); the predictor labels and probas
        p = model.predict(X)
        labels, proba = np.argmax(np.column_stack([1 - p, p]), axis=1), np.column_stack([1 - p, p])
    else:
        labels, proba = model.predict(X), model.predict_proba(X)
    assert np.array_equal(loaded.predict(X), labels)
    np.testing.assert_allclose(loaded.predict_proba(X), proba, atol=1e-6, rtol=0)


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
        if not key.startswith("zoo/") or key.endswith("/onnx"):
            continue
        model = zoo.load(key, trusted=key.endswith("/pickle"))
        booster = model if type(model).__name__ == "Booster" else model.booster_
        entry = {"type": type(model).__name__, "predict": model.predict(X).tolist(),
                 "trees": booster.model_to_string(num_iteration=-1)}
        if hasattr(model, "predict_proba"):
            entry["proba"] = model.predict_proba(X).tolist()
        result[key] = entry
    with open(out, "w") as handle:
        json.dump(result, handle)
    """
)


@pytest.mark.slow
def test_every_bundle_loads_exactly_in_a_fresh_process(saved, data, tmp_path):
    rows = tmp_path / "rows.npy"
    np.save(rows, data["X_new"])
    out = tmp_path / "out.json"
    run_python(FRESH_CHILD, str(saved["store_dir"]), str(rows), str(out), cwd=tmp_path)
    result = json.loads(out.read_text())
    assert set(result) == {f"zoo/{n}/{f}" for n in MODELS for f in ("text", "pickle")}
    for key, child in result.items():
        model = saved["models"][key.split("/")[1]]
        expected = native_outputs(model, data["X_new"])
        assert child["type"] == type(model).__name__, key
        assert child["trees"] == booster_of(model).model_to_string(num_iteration=-1), key
        # JSON keeps a float64's repr exactly, so equal lists mean equal bits.
        assert child["predict"] == expected["predict"].tolist(), key
        assert ("proba" in child) == ("proba" in expected), key
        if "proba" in expected:
            assert child["proba"] == expected["proba"].tolist(), key


BLOCKED_CHILD = blocking_prelude("lightgbm", "sklearn", "onnxmltools", "skl2onnx") + (
    textwrap.dedent(
        """
        import json, sys
        import numpy as np
        import alphazoo

        store, rows, out = sys.argv[1:4]
        zoo = alphazoo.Zoo(alphazoo.ObjectStore(store))
        X = np.load(rows)
        result = {}
        for key in zoo.store.keys():
            if key.startswith("zoo/") and key.endswith("/onnx"):
                model = zoo.load(key)
                result[key] = {"type": type(model).__name__, "predict": model.predict(X).tolist(),
                               "proba": model.predict_proba(X).tolist()
                               if "probabilities" in model.outputs else None}
        try:  # the block is real: a text bundle needs lightgbm
            zoo.load("zoo/classifier/text")
        except ImportError as exc:
            result["text_refused"] = str(exc)
        result["loaded"] = sorted(m for m in sys.modules if m.partition(".")[0] in _BLOCKED)
        with open(out, "w") as handle:
            json.dump(result, handle)
        """
    ))


@pytest.mark.slow
def test_onnx_bundles_predict_without_lightgbm_or_scikit_learn(saved, data, tmp_path):
    rows = tmp_path / "rows.npy"
    np.save(rows, data["X_new"])
    out = tmp_path / "out.json"
    run_python(BLOCKED_CHILD, str(saved["store_dir"]), str(rows), str(out), cwd=tmp_path)
    result = json.loads(out.read_text())
    assert result.pop("loaded") == []
    assert "needs lightgbm" in result.pop("text_refused")
    assert set(result) == {f"zoo/{n}/onnx" for n in MODELS}
    for key, child in result.items():
        model = saved["models"][key.split("/")[1]]
        served = saved["zoo"].load(key)
        assert child["type"] == "OnnxPredictor"
        assert child["predict"] == served.predict(data["X_new"]).tolist(), key
        if child["proba"] is not None:
            np.testing.assert_allclose(child["proba"], model.predict_proba(data["X_new"])
                                       if hasattr(model, "predict_proba") else
                                       served.predict_proba(data["X_new"]), atol=1e-6)


def test_the_one_file_reader_serves_onnx_and_names_what_it_does_not_read(saved, data):
    from alphazoo import reader

    store = saved["zoo"].store
    served = reader.load(store.read_bytes("zoo/multiclass/onnx"))
    model = saved["models"]["multiclass"]
    assert np.array_equal(served.predict(data["X_new"]), model.predict(data["X_new"]))
    with pytest.raises(alphazoo.UnsupportedFormatError, match="'lightgbm' bundle in format "
                                                              "'text'.*save it as onnx"):
        reader.load(store.read_bytes("zoo/multiclass/text"))


# -- categorical features and early stopping on the bundled bars ---------------------------------
def _frame(X: np.ndarray) -> Any:
    """The example features as a DataFrame with a pandas category column: the weekday."""
    pandas = pytest.importorskip("pandas")
    frame = pandas.DataFrame(X, columns=list(FEATURES))
    days = np.array(["mon", "tue", "wed", "thu", "fri"])[np.arange(len(X)) % 5]
    frame["weekday"] = pandas.Categorical(days, categories=["mon", "tue", "wed", "thu", "fri"])
    return frame


def _categorical_target(frame: Any, y_reg: np.ndarray) -> np.ndarray:
    # The weekday matters, so the trees split on it.
    return y_reg + 0.01 * frame["weekday"].cat.codes.isin([1, 3]).to_numpy()


def test_pandas_category_columns_round_trip_exactly_in_text(zoo, data):
    frame = _frame(data["X_reg"])
    target = _categorical_target(frame, data["y_reg"])
    model = zoo.train(zoo.build("lightgbm_regressor", min_data_per_group=5, cat_smooth=1,
                                **SMALL), frame, target)
    assert "num_cat=0" in booster_of(model).model_to_string()  # some trees...
    assert re.search(r"num_cat=[1-9]", booster_of(model).model_to_string())  # ...split on it
    manifest = zoo.save(model, "cat/text")
    assert manifest["input"]["feature_names"] == [*FEATURES, "weekday"]
    loaded = zoo.load("cat/text")
    assert_same_model(model, loaded)
    assert booster_of(loaded).pandas_categorical == [["mon", "tue", "wed", "thu", "fri"]]
    new = _frame(data["X_new"])
    assert np.array_equal(loaded.predict(new), model.predict(new))
    assert list(loaded.feature_names_in_) == [*FEATURES, "weekday"]
    # The graph would read a served DataFrame's categories as values, not codes.
    with pytest.raises(alphazoo.UnsupportedFormatError, match="pandas 'category' columns"):
        zoo.save(model, "cat/onnx", format="onnx")
    assert not zoo.store.contains_key("cat/onnx")


def test_categorical_feature_codes_round_trip_in_text_and_onnx(zoo, data):
    X = np.column_stack([data["X_reg"], np.arange(len(data["X_reg"])) % 5])
    target = data["y_reg"] + 0.01 * np.isin(X[:, -1], [1, 3])
    model = lightgbm.LGBMRegressor(min_data_per_group=5, cat_smooth=1, verbose=-1, **SMALL)
    model.fit(X, target, categorical_feature=[X.shape[1] - 1])
    assert re.search(r"num_cat=[1-9]", model.booster_.model_to_string())
    zoo.save(model, "codes/text")
    loaded = zoo.load("codes/text")
    assert_same_model(model, loaded)
    assert np.array_equal(loaded.predict(X), model.predict(X))
    zoo.save(model, "codes/onnx", format="onnx", sample=X)
    served = zoo.load("codes/onnx")
    np.testing.assert_allclose(served.predict(X), model.predict(X), rtol=1e-5, atol=1e-6)


def _early_stopped(data: dict[str, np.ndarray]) -> Any:
    X, y = data["X"], data["y"]
    split = int(len(X) * 0.7)
    model = lightgbm.LGBMClassifier(n_estimators=300, learning_rate=0.2, num_leaves=15,
                                    verbose=-1, n_jobs=1)
    model.fit(X[:split], y[:split], eval_X=(X[split:],), eval_y=(y[split:],),
              callbacks=[lightgbm.early_stopping(5, verbose=False)])
    return model


@pytest.mark.parametrize("fmt", FORMATS)
def test_an_early_stopped_model_predicts_the_same_after_reload(zoo, data, fmt):
    model = _early_stopped(data)
    assert 0 < model.best_iteration_ < 300
    X = data["X_new"]
    zoo.save(model, f"early/{fmt}", format=fmt, sample=data["X"])
    loaded = zoo.load(f"early/{fmt}", trusted=fmt == "pickle")
    if fmt == "onnx":
        np.testing.assert_allclose(loaded.predict_proba(X), model.predict_proba(X), atol=1e-6)
        assert np.array_equal(loaded.predict(X), model.predict(X))
        return
    assert loaded.best_iteration_ == model.best_iteration_
    assert loaded.best_score_ == model.best_score_
    assert np.array_equal(loaded.predict_proba(X), model.predict_proba(X))
    assert np.array_equal(loaded.predict(X), model.predict(X))


def test_a_booster_keeps_its_trees_past_the_best_iteration(zoo, data):
    X, y = data["X_reg"], data["y_reg"]
    split = int(len(X) * 0.7)
    train = lightgbm.Dataset(X[:split], label=y[:split])
    booster = lightgbm.train(
        {"objective": "regression", "num_leaves": 7, "learning_rate": 0.3, "verbose": -1},
        train, num_boost_round=200, valid_sets=[train.create_valid(X[split:], label=y[split:])],
        callbacks=[lightgbm.early_stopping(3, verbose=False)], keep_training_booster=True)
    best, rounds = booster.best_iteration, booster.current_iteration()
    assert 0 < best < rounds  # the trees after the best one are still there
    for fmt in FORMATS:
        zoo.save(booster, f"kept/{fmt}", format=fmt, sample=X)
    loaded = zoo.load("kept/text")
    assert (loaded.best_iteration, loaded.current_iteration()) == (best, rounds)
    assert np.array_equal(loaded.predict(data["X_new"]), booster.predict(data["X_new"]))
    assert np.array_equal(loaded.predict(X, num_iteration=-1), booster.predict(X, num_iteration=-1))
    assert zoo.store.contains_key("kept/onnx")
    onnx = zoo.load("kept/onnx")
    assert onnx.predict(X).shape == (len(X),)
    np.testing.assert_allclose(onnx.predict(X), booster.predict(X), rtol=1e-5, atol=1e-6)
    assert zoo.inspect("kept/onnx")["adapter_data"]["rounds_exported"] == best


# -- parameters and state ------------------------------------------------------------------------
def test_parameters_that_are_code_are_named_when_left_out(zoo, data):
    model = lightgbm.LGBMRegressor(random_state=np.random.RandomState(0), verbose=-1, **SMALL)
    model.fit(data["X_reg"], data["y_reg"])
    with pytest.warns(alphazoo.SaveWarning, match=r"\['random_state'\]"):
        zoo.save(model, "code/params")
    loaded = zoo.load("code/params")
    assert loaded.random_state is None
    assert np.array_equal(loaded.predict(data["X_new"]), model.predict(data["X_new"]))


def test_linear_trees_round_trip_in_text_but_not_onnx(zoo, data):
    model = lightgbm.LGBMRegressor(linear_tree=True, verbose=-1, **SMALL)
    model.fit(data["X_reg"], data["y_reg"])
    assert "is_linear=1" in model.booster_.model_to_string()
    zoo.save(model, "linear/text")
    loaded = zoo.load("linear/text")
    assert_same_model(model, loaded)
    assert np.array_equal(loaded.predict(data["X_new"]), model.predict(data["X_new"]))
    with pytest.raises(alphazoo.UnsupportedFormatError, match="linear trees"):
        zoo.save(model, "linear/onnx", format="onnx")


@pytest.mark.parametrize("objective,error", [
    ("cross_entropy", alphazoo.UnsupportedFormatError),  # the converter refuses it
    ("multiclassova", alphazoo.OnnxParityError),  # converted, but computes something else
])
def test_objectives_onnx_cannot_express_are_never_stored(zoo, data, objective, error):
    y = data["y"] if objective == "cross_entropy" else np.digitize(
        data["X"][:, 0], np.quantile(data["X"][:, 0], [1 / 3, 2 / 3]))
    params = {"objective": objective, "verbose": -1, "num_leaves": 7}
    if objective == "multiclassova":
        params["num_class"] = 3
    booster = lightgbm.train(params, lightgbm.Dataset(data["X"], label=y), num_boost_round=5)
    with pytest.raises(error, match="format='text'"):
        zoo.save(booster, f"objective/{objective}", format="onnx")
    assert not zoo.store.contains_key(f"objective/{objective}")
    zoo.save(booster, f"objective/{objective}")
    assert np.array_equal(zoo.load(f"objective/{objective}").predict(data["X_new"]),
                          booster.predict(data["X_new"]))


@pytest.mark.parametrize("alias,canonical", [
    ("mse", "regression"), ("l2", "regression"), ("rmse", "regression"),
    ("mean_squared_error", "regression"), ("l1", "regression_l1"), ("mae", "regression_l1"),
    ("softmax", "multiclass"), ("xendcg", "rank_xendcg"),
])
def test_a_booster_trained_with_an_objective_alias_exports_to_onnx(zoo, data, alias, canonical):
    # onnxmltools reads the objective as given to lightgbm.train and knows none of these.
    X, y = data["X_reg"], data["y_reg"]
    group = None
    if canonical == "multiclass":
        y = data["y_three"]
    elif canonical == "rank_xendcg":
        group = [21] * (len(X) // 21)
        X, y = X[:sum(group)], data["y_three"][:sum(group)]
    params = {"objective": alias, "verbose": -1, "num_leaves": 7}
    if canonical == "multiclass":
        params["num_class"] = 3
    booster = lightgbm.train(params, lightgbm.Dataset(X, label=y, group=group),
                             num_boost_round=5)
    trees = booster.model_to_string()
    manifest = zoo.save(booster, f"alias/{alias}", format="onnx", sample=X)
    assert booster.params["objective"] == alias and booster.model_to_string() == trees
    assert manifest["adapter_data"]["objective"] == canonical
    served, X_new = zoo.load(f"alias/{alias}"), data["X_new"]
    if canonical == "multiclass":
        proba = booster.predict(X_new)
        np.testing.assert_allclose(served.predict_proba(X_new), proba, atol=1e-6, rtol=0)
        assert np.array_equal(served.predict(X_new), np.argmax(proba, axis=1))
    else:
        np.testing.assert_allclose(served.predict(X_new), booster.predict(X_new), rtol=1e-5,
                                   atol=1e-6)


def test_a_wrapper_with_an_objective_alias_exports_to_onnx(zoo, data):
    model = lightgbm.LGBMRegressor(objective="mse", verbose=-1, **SMALL)
    model.fit(data["X_reg"], data["y_reg"])
    zoo.save(model, "alias/wrapper", format="onnx")
    np.testing.assert_allclose(zoo.load("alias/wrapper").predict(data["X_new"]),
                               model.predict(data["X_new"]), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("kind", ["classifier", "booster"])
def test_a_one_tree_binary_model_labels_as_lightgbm_does(zoo, data, kind):
    # One small step from the average: every leaf value positive and below one half, which
    # onnxruntime's TreeEnsembleClassifier took for probabilities, labelling every row 0.
    X, y = data["X"], data["y"]
    if kind == "classifier":
        model = lightgbm.LGBMClassifier(n_estimators=1, num_leaves=7, learning_rate=0.05,
                                        verbose=-1).fit(X, y)
        booster, labels = model.booster_, model.predict(data["X_new"])
    else:
        model = booster = lightgbm.train(
            {"objective": "binary", "num_leaves": 7, "learning_rate": 0.05, "verbose": -1},
            lightgbm.Dataset(X, label=y), num_boost_round=1)
        p = booster.predict(data["X_new"])
        labels = np.argmax(np.column_stack([1 - p, p]), axis=1)
    trees = booster.trees_to_dataframe()
    leaves = trees.loc[trees["left_child"].isna(), "value"]
    assert ((leaves > 0) & (leaves < 0.5)).all()
    assert labels.any()
    zoo.save(model, f"one/{kind}", format="onnx")
    assert np.array_equal(zoo.load(f"one/{kind}").predict(data["X_new"]), labels)


@pytest.mark.parametrize("params", [
    {"min_child_samples": 100_000},  # one-leaf trees: LightGBM writes their arrays empty
    {"boosting_type": "dart"}, {"boosting_type": "rf", "subsample": 0.5, "subsample_freq": 1},
    {"monotone_constraints": [1] + [0] * (len(FEATURES) - 1)},
    {"interaction_constraints": [[0, 1], list(range(2, len(FEATURES)))]},
    {"objective": "quantile", "alpha": 0.9},
])
def test_other_kinds_of_trees_pass_the_check_and_round_trip(zoo, data, params):
    model = lightgbm.LGBMRegressor(verbose=-1, **{**SMALL, "n_estimators": 5, **params})
    model.fit(data["X_reg"], data["y_reg"])
    zoo.save(model, "kinds")
    loaded = zoo.load("kinds")
    assert_same_model(model, loaded)
    assert np.array_equal(loaded.predict(data["X_new"]), model.predict(data["X_new"]))


def test_a_callable_objective_needs_pickle(zoo, data):
    def l2(y_true, y_pred):
        return y_pred - y_true, np.ones_like(y_true)

    model = lightgbm.LGBMRegressor(objective=l2, verbose=-1, **SMALL).fit(
        data["X_reg"], data["y_reg"])
    for fmt in ("text", "onnx"):
        with pytest.raises(alphazoo.UnsupportedFormatError, match="pickle"):
            zoo.save(model, f"custom/{fmt}", format=fmt)


def test_unfitted_models_need_pickle(zoo):
    for fmt in ("text", "onnx"):
        with pytest.raises(alphazoo.UnsupportedFormatError, match="fit LGBMRegressor first"):
            zoo.save(lightgbm.LGBMRegressor(), f"unfitted/{fmt}", format=fmt)
    zoo.save(lightgbm.LGBMRegressor(num_leaves=5), "unfitted/pickle", format="pickle")
    assert zoo.load("unfitted/pickle", trusted=True).num_leaves == 5


def test_a_subclass_loads_as_its_lightgbm_class(zoo, data):
    class Mine(lightgbm.LGBMRegressor):
        pass

    model = Mine(verbose=-1, **SMALL).fit(data["X_reg"], data["y_reg"])
    with pytest.warns(alphazoo.SaveWarning, match="loads as that class"):
        zoo.save(model, "sub")
    loaded = zoo.load("sub")
    assert type(loaded) is lightgbm.LGBMRegressor
    assert np.array_equal(loaded.predict(data["X_new"]), model.predict(data["X_new"]))


def test_booster_training_continues(zoo, data):
    booster = lightgbm.train({"objective": "regression", "verbose": -1},
                             lightgbm.Dataset(data["X_reg"], label=data["y_reg"]),
                             num_boost_round=3)
    more = zoo.train(booster, data["X_reg"], data["y_reg"], num_boost_round=4)
    assert isinstance(more, lightgbm.Booster)
    assert (booster.current_iteration(), more.current_iteration()) == (3, 7)
    assert np.array_equal(zoo.predict(more, data["X_new"]), more.predict(data["X_new"]))


@pytest.mark.parametrize("params", [{"_Booster": 1}, {"classes_": [5, 9]}, {"kwargs": {}},
                                    ["num_leaves"], {"num_leaves": {"bogus": 1}},
                                    {"n_jobs": 10**6}, {"num_threads": "all"}])
def test_manifest_parameters_cannot_set_fitted_state(saved, tmp_path, params):
    model = saved["models"]["classifier"]
    payload = tmp_path / "model.txt"
    payload.write_text(model.booster_.model_to_string(num_iteration=-1))
    honest = saved["manifests"]["classifier", "text"]["adapter_data"]
    request = LoadRequest(
        manifest={"adapter": "lightgbm", "format": "text", "adapter_data": {
            **honest,
            "params": {**honest["params"], **params} if isinstance(params, dict) else params}},
        files={"model.txt": payload},
    )
    with pytest.raises(alphazoo.BundleIntegrityError, match="LightGBM parameters? "):
        adapter.alphazoo_load(request)
    request.manifest["adapter_data"] = honest
    assert_same_model(model, adapter.alphazoo_load(request))


@pytest.mark.parametrize("edit,match", [
    (lambda d: d.update(estimator="Dataset"), "names the estimator 'Dataset'"),
    (lambda d: d["state"].update(n_features=3), "says 3 features"),
    (lambda d: d["state"].update(classes={"values": [0, 1, 2], "dtype": "<i8"}),
     "lists 3 classes"),
    (lambda d: d["state"].update(classes={"values": [0, 1], "dtype": "V8"}),
     "classes do not decode"),
    (lambda d: d.pop("state"), "no fitted state"),
    (lambda d: d["state"].update(best_score={"valid": {"auc": {"float": "high"}}}),
     "fitted state .* does not decode"),
    (lambda d: d["state"].update(best_iteration="many"), "fitted state .* does not decode"),
    (lambda d: d["state"].update(classes={"values": [0], "dtype": "<i8"}),
     "lists 1 classes; the model string is a binary model"),
    (lambda d: d.update(estimator="LGBMRanker"),
     "LGBMRanker, but the model string's trees were fitted for classification"),
    (lambda d: d.update(estimator="LGBMRegressor"), "fitted for classification"),
])
def test_a_manifest_that_disagrees_with_its_model_string_is_refused(saved, tmp_path, edit,
                                                                      match):
    model = saved["models"]["classifier"]
    payload = tmp_path / "model.txt"
    payload.write_text(model.booster_.model_to_string(num_iteration=-1))
    facts = json.loads(json.dumps(saved["manifests"]["classifier", "text"]["adapter_data"]))
    edit(facts)
    request = LoadRequest(manifest={"adapter": "lightgbm", "format": "text",
                                    "adapter_data": facts}, files={"model.txt": payload})
    with pytest.raises(alphazoo.BundleIntegrityError, match=match):
        adapter.alphazoo_load(request)


@pytest.mark.parametrize("name,estimator,family", [
    ("regressor", "LGBMRanker", "regression"), ("regressor", "LGBMClassifier", "regression"),
    ("ranker", "LGBMRegressor", "ranking"), ("multiclass", "LGBMRanker", "classification"),
])
def test_a_wrapper_over_trees_of_another_task_is_refused(saved, tmp_path, name, estimator,
                                                         family):
    model = saved["models"][name]
    payload = tmp_path / "model.txt"
    payload.write_text(model.booster_.model_to_string(num_iteration=-1))
    facts = json.loads(json.dumps(saved["manifests"][name, "text"]["adapter_data"]))
    request = LoadRequest(manifest={"adapter": "lightgbm", "format": "text",
                                    "adapter_data": facts}, files={"model.txt": payload})
    assert_same_model(model, adapter.alphazoo_load(request))
    facts["estimator"] = estimator
    if estimator == "LGBMClassifier":
        facts["state"]["classes"] = {"values": [0, 1], "dtype": "<i8"}
    with pytest.raises(alphazoo.BundleIntegrityError,
                       match=f"names the estimator {estimator}, .* fitted for {family}"):
        adapter.alphazoo_load(request)


# -- hostile model strings -----------------------------------------------------------------------
@pytest.fixture(scope="module")
def model_text(saved) -> str:
    """A real model string: three classes, three trees per iteration."""
    return saved["models"]["multiclass"].booster_.model_to_string(num_iteration=-1)


def _tree_line(text: str, key: str, tree: int = 0) -> str:
    block = text.split(f"Tree={tree}\n", 1)[1]
    return next(line for line in block.split("\n") if line.startswith(f"{key}="))


def _replace_in_tree(text: str, key: str, value: str, tree: int = 0) -> str:
    line = _tree_line(text, key, tree)
    head, block = text.split(f"Tree={tree}\n", 1)
    return head + f"Tree={tree}\n" + block.replace(line, f"{key}={value}", 1)


def _first_tree_values(text: str, key: str) -> list[str]:
    return _tree_line(text, key).partition("=")[2].split(" ")


HOSTILE = {
    "not a model": lambda t: "hello\n",
    "truncated in a tree": lambda t: t[: t.index("Tree=1") + 40],
    "NUL byte": lambda t: t.replace("tree\n", "tree\n\0", 1),
    "num_class 0": lambda t: t.replace("num_class=3", "num_class=0", 1),
    "trees per iteration differ": lambda t: t.replace("num_tree_per_iteration=3",
                                                      "num_tree_per_iteration=9", 1),
    "max_feature_idx huge": lambda t: re.sub(r"max_feature_idx=\d+", "max_feature_idx=2000000000",
                                             t, count=1),
    "tree_sizes huge": lambda t: re.sub(r"tree_sizes=(\d+)", lambda m: f"tree_sizes={9**12}", t,
                                        count=1),
    "tree_sizes shifted": lambda t: re.sub(r"tree_sizes=(\d+)",
                                           lambda m: f"tree_sizes={int(m[1]) + 7}", t, count=1),
    "tree_sizes short": lambda t: re.sub(r"tree_sizes=\d+ ", "tree_sizes=", t, count=1),
    "num_leaves huge": lambda t: _replace_in_tree(t, "num_leaves", "2000000000"),
    "num_leaves overflow": lambda t: _replace_in_tree(t, "num_leaves", "99999999999999"),
    "leaf_value short": lambda t: _replace_in_tree(t, "leaf_value", "0.5"),
    "child cycle": lambda t: _replace_in_tree(
        t, "left_child", " ".join(["0"] + _first_tree_values(t, "left_child")[1:])),
    "child out of range": lambda t: _replace_in_tree(
        t, "right_child", " ".join(["-99"] + _first_tree_values(t, "right_child")[1:])),
    "split feature out of range": lambda t: _replace_in_tree(
        t, "split_feature", " ".join(["77"] + _first_tree_values(t, "split_feature")[1:])),
    "categorical split without categories": lambda t: _replace_in_tree(
        t, "decision_type", " ".join(["1"] + _first_tree_values(t, "decision_type")[1:])),
    "missing type 3": lambda t: _replace_in_tree(
        t, "decision_type", " ".join(["12"] + _first_tree_values(t, "decision_type")[1:])),
    "unknown tree key": lambda t: t.replace("\nshrinkage=", "\nbogus=1\nshrinkage=", 1),
    "tree not closed": lambda t: t[: t.index("\nshrinkage=", t.index("Tree=0"))] + "\nshrinkage=1",
    "parameter line without colon": lambda t: t.replace("[boosting: gbdt]", "[boosting]", 1),
    "pandas categories not lists": lambda t: t.rstrip("\n").rsplit("\n", 1)[0]
    + '\npandas_categorical:{"a": 1}\n',
    "not UTF-8": lambda t: t.replace("tree\n", "tree\n\udcff", 1),
    # LightGBM's reader raises a C++ exception on a value that is not a number, on an OpenMP
    # thread: the process aborts (SIGABRT) unless the check refuses it first.
    "leaf_value not a number": lambda t: _replace_first_value(t, "leaf_value", "x1"),
    "threshold garbled": lambda t: _replace_first_value(t, "threshold", "9.87y88e-05"),
    "leaf_weight not a number": lambda t: _replace_first_value(t, "leaf_weight", "1e"),
    "internal_value not a number": lambda t: _replace_first_value(t, "internal_value", "--1"),
    "internal_weight not a number": lambda t: _replace_first_value(t, "internal_weight",
                                                                   "1..5"),
    "shrinkage not a number": lambda t: _replace_in_tree(t, "shrinkage", "0.1x"),
    "split_gain not a number": lambda t: _replace_first_value(t, "split_gain", "Infinity"),
    "internal_count not an integer": lambda t: _replace_first_value(t, "internal_count", "1.5"),
    "leaf_count not an integer": lambda t: _replace_first_value(t, "leaf_count", "7x"),
}


#: What each refusal names (the check that caught it, not only that something did).
REFUSALS = {
    "not a model": "start with the line 'tree'", "truncated in a tree": "not closed",
    "NUL byte": "NUL", "num_class 0": "num_class is 0",
    "trees per iteration differ": "differs from num_class",
    "max_feature_idx huge": "max_feature_idx \\+ 1 = 2000000001",
    "tree_sizes huge": "tree_sizes is", "tree_sizes shifted": "puts tree 1 at offset",
    "tree_sizes short": "tree_sizes lists", "num_leaves huge": "num_leaves = 2000000000",
    "num_leaves overflow": "num_leaves is 99999999999999", "leaf_value short": "leaf_value",
    "child cycle": "reaches node 0 twice", "child out of range": "right_child is -99",
    "split feature out of range": "split_feature is 77",
    "categorical split without categories": "num_cat=0", "missing type 3": "missing type 3",
    "unknown tree key": "'bogus=1'", "tree not closed": "not closed by an empty line",
    "parameter line without colon": "'\\[boosting\\]'",
    "pandas categories not lists": "pandas_categorical", "not UTF-8": "not UTF-8",
    "leaf_value not a number": "tree 0 leaf_value is not a line of numbers \\('x1'\\)",
    "threshold garbled": "threshold is not a line of numbers \\('9.87y88e-05'\\)",
    "leaf_weight not a number": "leaf_weight is not a line of numbers",
    "internal_value not a number": "internal_value is not a line of numbers",
    "internal_weight not a number": "internal_weight is not a line of numbers",
    "shrinkage not a number": "shrinkage is not a line of numbers",
    "split_gain not a number": "split_gain is not a line of numbers \\('Infinity'\\)",
    "internal_count not an integer": "internal_count is not a line of integers",
    "leaf_count not an integer": "leaf_count is not a line of integers",
}


def _replace_first_value(text: str, key: str, value: str, tree: int = 0) -> str:
    return _replace_in_tree(text, key, " ".join([value] + _first_tree_values(text, key)[1:]),
                            tree)


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_a_malformed_model_string_is_refused_before_lightgbm_reads_it(model_text, case):
    hostile = HOSTILE[case](model_text)
    assert hostile != model_text
    with pytest.raises(alphazoo.BundleFormatError, match=f"model.txt: .*{REFUSALS[case]}"):
        check_model_text(hostile.encode("utf-8", "surrogateescape"))


def test_real_model_strings_pass_the_check(saved, model_text):
    assert check_model_text(model_text.encode()) == model_text
    for model in saved["models"].values():
        text = booster_of(model).model_to_string(num_iteration=-1)
        assert check_model_text(text.encode()) == text


def test_numbers_as_lightgbm_spells_them_pass_the_check_and_load(model_text):
    """The grammar is LightGBM's writer's ("{:.17g}" through fmt): exponents, inf, nan."""
    # Without tree_sizes (LightGBM then finds the trees by reading): edits change lengths.
    model_text = re.sub(r"\ntree_sizes=[^\n]*", "", model_text, count=1)
    spelled = ["-inf", "inf", "nan", "-nan", "1e+300", "-1.5e-07", "0", "-0.25", "7.", ".5"]
    text = model_text
    for key, value in zip(["threshold", "leaf_value", "split_gain", "internal_value",
                           "leaf_weight", "internal_weight", "leaf_value", "threshold",
                           "leaf_value", "split_gain"], spelled, strict=True):
        values = _first_tree_values(text, key)
        values[spelled.index(value) % len(values)] = value
        text = _replace_in_tree(text, key, " ".join(values))
    assert check_model_text(text.encode()) == text
    lightgbm.Booster(model_str=text)  # and LightGBM reads every one of them


def test_random_edits_of_numbers_never_crash_lightgbm(model_text, data, tmp_path):
    """A few hundred single-value edits of the float and count arrays: each is refused by
    the check or read by LightGBM, in a child process, where an abort would show."""
    # Without tree_sizes, which would refuse every edit that changes a length.
    (tmp_path / "model.txt").write_text(re.sub(r"\ntree_sizes=[^\n]*", "", model_text,
                                               count=1))
    np.save(tmp_path / "X.npy", data["X_reg"][:50])
    code = textwrap.dedent("""
        import random, sys
        import lightgbm, numpy as np
        from alphazoo.adapters._lightgbm_text import check_model_text
        from alphazoo.errors import BundleFormatError
        text, X = open("model.txt").read(), np.load("X.npy")
        keys = ("leaf_value", "threshold", "leaf_weight", "internal_value", "internal_weight",
                "shrinkage", "split_gain", "leaf_count", "internal_count")
        lines = [i for i, line in enumerate(text.split("\\n"))
                 if line.partition("=")[0] in keys and line.partition("=")[2]]
        tokens = ["x1", "9.87y88e-05", "1e", "e5", "-", ".", "--1", "1..2", "+1", "0x10",
                  "1_0", "NaN", "Infinity", "nan(1)", "1e999", "\\u0661", "-.e1", "inf", "7"]
        rng = random.Random(15)
        refused = read = 0
        for _ in range(int(sys.argv[1])):
            rows = text.split("\\n")
            row = rng.choice(lines)
            key, _, line = rows[row].partition("=")
            values = line.split(" ")
            at = rng.randrange(len(values))
            value = values[at]
            if rng.random() < 0.5:
                value = rng.choice(tokens)
            else:
                where = rng.randrange(len(value) + 1)
                value = value[:where] + rng.choice("xe.-+9 E/") + value[where + 1:]
            values[at] = value
            rows[row] = key + "=" + " ".join(values)
            edited = "\\n".join(rows)
            try:
                check_model_text(edited.encode())
            except BundleFormatError:
                refused += 1
                continue
            lightgbm.Booster(model_str=edited).predict(X)
            read += 1
        print(refused, read)
    """)
    result = run_python(code, "300", cwd=tmp_path)
    refused, read = map(int, result.stdout.split("\n")[-2].split())
    assert refused + read == 300
    assert refused > 50 and read > 50  # both paths were exercised


def test_a_huge_model_string_is_refused_by_size_before_it_is_read(model_text):
    with pytest.raises(alphazoo.BundleLimitError, match="max_bytes"):
        check_model_text(model_text.encode(), LoadLimits(max_bytes=len(model_text) - 1))
    # pandas categories are JSON: bounded as Python objects, not only as text.
    brackets = model_text.rstrip("\n").rsplit("\n", 1)[0] + "\npandas_categorical:" + (
        "[" + "[]," * 20000 + "[]]") + "\n"
    with pytest.raises(alphazoo.BundleLimitError, match="pandas_categorical"):
        check_model_text(brackets.encode(), LoadLimits(max_bytes=len(brackets) * 5))


def test_a_hostile_bundle_with_good_hashes_fails_with_a_typed_error(saved, tmp_path):
    """Through zoo.load: the bundle is self-consistent (hashes match), its model string lies."""
    zoo = saved["zoo"]
    text = saved["models"]["regressor"].booster_.model_to_string(num_iteration=-1)
    payload = tmp_path / "model.txt"
    payload.write_text(_replace_in_tree(text, "num_leaves", "2000000000"))
    rebundle(zoo.store, "zoo/regressor/text", "hostile/leaves", payload)
    with pytest.raises(alphazoo.BundleFormatError, match="num_leaves"):
        zoo.load("hostile/leaves")
    payload.write_text(text + "x" * 4096)
    rebundle(zoo.store, "zoo/regressor/text", "hostile/big", payload)
    with pytest.raises(alphazoo.BundleLimitError):
        zoo.load("hostile/big", max_bytes=len(text) + 100)


def test_an_onnx_graph_onnxruntime_refuses_is_a_typed_error_naming_the_key(saved, tmp_path):
    """Through the shared ONNX reader of adapters/base.py: onnxruntime's InvalidGraph, Fail
    and InvalidArgument at session creation become BundleFormatError."""
    import onnx

    zoo = saved["zoo"]
    source = read_bundle(zoo.store, "zoo/regressor/onnx", tmp_path).files["model.onnx"]
    graph = onnx.load(str(source))
    graph.graph.node[0].op_type = "NoSuchOperator"
    onnx.save(graph, str(source))
    rebundle(zoo.store, "zoo/regressor/onnx", "hostile/graph", source)
    with pytest.raises(alphazoo.BundleFormatError,
                       match="model.onnx: onnxruntime cannot open the graph of bundle "
                             "'hostile/graph' \\(InvalidGraph"):
        zoo.load("hostile/graph")


# -- errors --------------------------------------------------------------------------------------
def test_pickle_needs_trust(saved):
    with pytest.raises(alphazoo.UntrustedModelError, match="trusted=True"):
        saved["zoo"].load("zoo/classifier/pickle")


@pytest.mark.parametrize("fmt", ["json", "skops", "ubj"])
def test_other_adapters_formats_are_refused(zoo, saved, fmt):
    with pytest.raises(alphazoo.UnsupportedFormatError, match="text, pickle, onnx"):
        zoo.save(saved["models"]["regressor"], "wrong", format=fmt)


def test_unknown_options_are_type_errors(zoo, saved):
    with pytest.raises(TypeError, match="format 'text'"):
        zoo.save(saved["models"]["regressor"], "opts", opset=12)
    with pytest.raises(ValueError, match="opset"):
        zoo.save(saved["models"]["regressor"], "opts", format="onnx", opset=99)


def test_without_this_adapter_the_scikit_learn_adapter_still_refuses_lightgbm(store, data):
    from alphazoo.adapters import sklearn as sklearn_adapter

    model = lightgbm.LGBMClassifier(n_estimators=3, verbose=-1).fit(data["X"], data["y"])
    assert not sklearn_adapter.owns(model)
    zoo = alphazoo.Zoo(store, plugins=[sklearn_adapter], discover=False)
    with pytest.raises(alphazoo.UnsupportedModelError, match="LGBMClassifier"):
        zoo.save(model, "refused")
    assert not zoo.store.contains_key("refused")
    both = alphazoo.Zoo(store, plugins=[sklearn_adapter, adapter], discover=False)
    assert both.save(model, "taken")["adapter"] == "lightgbm"
