"""The zoo's model interface (``Model``) on ``xgboost_gbdt`` and ``SklearnModel``, and the contrib
plugin. (The LightGBM ``gbdt`` has its own tests, in test_contrib_gbdt.py.)

Everything runs on the bundled panel's real features with real xgboost/scikit-learn and real
stores. The rows a model learned from are checked by refitting the library's own estimator
(with the wrapper's fitted parameters) on the rows we expect and comparing predictions exactly.
"""

from __future__ import annotations

import copy
import json
import math

import numpy as np
import pandas as pd
import pytest
from _child import run_python

from alphazoo.bundle import read_bundle, read_manifest, write_bundle
from alphazoo.cli import main
from alphazoo.contrib.dataset import Dataset
from alphazoo.contrib.features import load_panel
from alphazoo.contrib.model import NotFittedError, is_onnx_predictor
from alphazoo.errors import UnsupportedModelError, UntrustedModelError

xgboost = pytest.importorskip("xgboost")
pytest.importorskip("sklearn")

from alphazoo.contrib.sklearn_models import SklearnModel  # noqa: E402
from alphazoo.contrib.xgboost_gbdt import XGBoostGBDT  # noqa: E402

SEGMENTS = {"train": ("2015-01-01", "2016-06-30"), "valid": ("2016-07-01", "2016-12-31"),
            "test": ("2017-01-01", "2017-12-31")}
CONTRIB = {"gbdt": "lightgbm", "xgboost_gbdt": "xgboost", "alstm": "torch", "lstm": "keras",
           "cnn": "keras", "mlp": "keras", "hmm_regime": "hmmlearn", "policy_gradient": "torch"}
ADAPTER = {"xgboost_gbdt": "xgboost", "xgboost_gbdt_binary": "xgboost",
           "random_forest": "sklearn", "svm": "sklearn", "gradient_boosting": "sklearn"}


@pytest.fixture(scope="module")
def panel() -> pd.DataFrame:
    return load_panel()


@pytest.fixture(scope="module")
def ds(panel: pd.DataFrame) -> Dataset:
    return Dataset.from_bars(panel, label="label_return", segments=SEGMENTS)


@pytest.fixture(scope="module")
def fitted(ds: Dataset) -> dict[str, object]:
    # Enough rounds that early stopping, not n_estimators, ends the noisy-return regression.
    return {
        "xgboost_gbdt": XGBoostGBDT(n_estimators=200, learning_rate=0.1).fit(ds),
        "xgboost_gbdt_binary": XGBoostGBDT(loss="binary", n_estimators=60,
                                           learning_rate=0.1).fit(ds),
        "random_forest": SklearnModel("random_forest", n_estimators=20, max_depth=5).fit(ds),
        "svm": SklearnModel("svm").fit(ds),
        "gradient_boosting": SklearnModel("gradient_boosting", n_estimators=20).fit(ds),
    }


def _same_xgb(model: XGBoostGBDT) -> object:
    """An unfitted xgboost estimator with the parameters ``model`` trained its own with."""
    return type(model.estimator)(**model.estimator.get_params())


# -- the qlib interface --------------------------------------------------------------------------
@pytest.mark.slow
def test_fit_dataset_learns_train_and_stops_on_valid(ds, fitted):
    X, y, _ = ds.prepare("train")
    Xv, yv, _ = ds.prepare("valid")
    Xt = ds.prepare("test", labels=False)[0]
    gbdt = fitted["xgboost_gbdt"]
    raw = _same_xgb(gbdt).fit(X, y, eval_set=[(Xv, yv)], verbose=False)
    assert raw.best_iteration == gbdt.best_iteration
    np.testing.assert_array_equal(gbdt.predict(Xt), raw.predict(Xt))
    assert gbdt.feature_names == ds.feature_names
    # The scikit-learn wrapper has no early stopping: train rows only, valid rows unused.
    alone = SklearnModel("random_forest", n_estimators=20, max_depth=5).fit(X, y)
    np.testing.assert_array_equal(fitted["random_forest"].predict(Xt), alone.predict(Xt))


@pytest.mark.parametrize("name", ["xgboost_gbdt", "random_forest"])
@pytest.mark.parametrize("segment", ["test", "valid", None])
def test_predict_dataset_is_a_score_series_on_the_segment(ds, fitted, name, segment):
    model = fitted[name]
    scores = model.predict(ds, segment=segment)
    X, _, index = ds.prepare(segment, labels=False)
    assert isinstance(scores, pd.Series) and scores.name == "score"
    assert scores.index.equals(index) and list(scores.index.names) == ["datetime", "instrument"]
    np.testing.assert_array_equal(scores.to_numpy(), model.predict(X))
    if segment is not None:
        first, last = (pd.Timestamp(d) for d in SEGMENTS[segment])
        dates = scores.index.get_level_values(0)
        assert dates.min() >= first and dates.max() <= last
    if segment == "test":
        # Each symbol's last bar has no label yet, and is scored all the same.
        assert len(scores) > len(ds.prepare("test")[2])
    with pytest.raises(KeyError, match="no segment 'nope'"):
        model.predict(ds, segment="nope")


@pytest.mark.parametrize("make", [lambda: XGBoostGBDT(n_estimators=20),
                                  lambda: SklearnModel("gradient_boosting", n_estimators=10)],
                         ids=["xgboost_gbdt", "gradient_boosting"])
def test_fit_and_predict_on_arrays(ds, make):
    X, y, _ = ds.prepare("train")
    model = make()
    assert model.fit(X, y) is model and model.fitted
    scores = model.predict(X[:7])
    assert isinstance(scores, np.ndarray) and scores.shape == (7,) and scores.dtype == np.float32
    # A list of rows works like an array.
    np.testing.assert_array_equal(model.predict(X[:7].tolist()), scores)


@pytest.mark.parametrize("model", [XGBoostGBDT(), SklearnModel("svm")], ids=["xgboost_gbdt", "svm"])
def test_unfitted_models_say_what_to_do(ds, zoo, model):
    for data in (ds, np.zeros((3, 10), np.float32)):
        with pytest.raises(NotFittedError, match=r"not fitted.*fit\(dataset\) or fit\(X, y\)"
                                                 r".*zoo\.load"):
            model.predict(data)
    assert issubclass(NotFittedError, ValueError)
    with pytest.raises(NotFittedError, match="fit it first"):
        zoo.save(model, "models/unfitted")
    assert zoo.store.keys() == []  # nothing half-written


@pytest.mark.parametrize("cls", [XGBoostGBDT,
                                 lambda: SklearnModel("random_forest", n_estimators=5)],
                         ids=["xgboost_gbdt", "random_forest"])
def test_bad_fit_inputs_are_refused(ds, cls):
    X, y, _ = ds.prepare("train")
    with pytest.raises(TypeError, match="pass no y"):
        cls().fit(ds, y)
    nan_y = y.copy()
    nan_y[[3, 50]] = np.nan
    with pytest.raises(ValueError, match="2 NaN or infinite labels"):
        cls().fit(X, nan_y)
    with pytest.raises(ValueError, match="has 10 rows but y has"):
        cls().fit(X[:10], y[:11])
    for bad in (X[:, 0], X[:, None, :]):
        with pytest.raises(ValueError, match=r"takes X of shape \(rows, features\)"):
            cls().fit(bad, y)
    nan_X = X.copy()
    nan_X[1, 1] = np.nan
    with pytest.raises(ValueError, match="NaN or infinite values"):
        cls().fit(nan_X, y)
    with pytest.raises(ValueError, match="no rows to fit on"):
        cls().fit(ds.with_segments(train=("1990-01-01", "1990-12-31")))
    with pytest.raises(ValueError, match="learns a label"):
        cls().fit(X)


def test_bad_constructor_arguments():
    with pytest.raises(ValueError, match="loss must be"):
        XGBoostGBDT(loss="huber")
    with pytest.raises(ValueError, match="valid_fraction"):
        XGBoostGBDT(valid_fraction=1.0)
    with pytest.raises(ValueError, match="random_forest, svm"):
        SklearnModel("knn")


@pytest.mark.slow
@pytest.mark.parametrize("name", ["xgboost_gbdt", "random_forest"])
def test_bad_predict_shapes_are_value_errors_native_and_onnx(ds, fitted, zoo, name):
    model = fitted[name]
    zoo.save(model, f"models/{name}", format="onnx")
    onnx = zoo.load(f"models/{name}")
    X = ds.prepare("test", labels=False)[0]
    for candidate in (model, onnx):
        for bad in (X[0], X[:2, None, :]):
            with pytest.raises(ValueError, match=r"\(rows, features\)"):
                candidate.predict(bad)
        # 3 columns for a 10-feature model: a ValueError naming both counts, whichever
        # estimator (native or onnxruntime) sits behind the model.
        with pytest.raises(ValueError, match=r"(?s)(3.*10|10.*3)"):
            candidate.predict(X[:4, :3])


@pytest.mark.parametrize("name", ["xgboost_gbdt", "random_forest"])
def test_no_rows_give_no_scores_native_and_onnx(ds, fitted, zoo, name):
    # xgboost, scikit-learn and onnxruntime each treat an empty batch their own way (an
    # empty array, "0 samples", a reshape error); a model answers alike whichever serves it.
    model = fitted[name]
    zoo.save(model, f"models/{name}", format="onnx")
    X = ds.prepare("test", labels=False)[0]
    for candidate in (model, zoo.load(f"models/{name}")):
        empty = candidate.predict(X[:0])
        assert isinstance(empty, np.ndarray) and empty.shape == (0,)
        assert empty.dtype == np.float32
        with pytest.raises(ValueError, match=r"(?s)(3.*10|10.*3)"):
            candidate.predict(X[:0, :3])  # an empty batch of the wrong width is still wrong
        none = candidate.predict(ds.with_segments(test=("2030-01-01", None)))
        assert isinstance(none, pd.Series) and none.empty and none.name == "score"


@pytest.mark.parametrize("name", ["xgboost_gbdt", "random_forest"])
def test_a_dataset_with_other_feature_columns_is_refused(ds, fitted, zoo, name):
    model = fitted[name]
    # The same ten columns in another order: same width, so only the names can tell.
    swapped = Dataset(ds.features[ds.feature_names[::-1]], ds.labels, ds.segments)
    zoo.save(model, f"models/{name}", format="onnx")
    for candidate in (model, zoo.load(f"models/{name}")):
        with pytest.raises(ValueError, match="fitted on features .* but the dataset has"):
            candidate.predict(swapped)
        pd.testing.assert_series_equal(candidate.predict(ds), model.predict(ds), atol=1e-5)


def test_feature_names_belong_to_the_last_successful_fit(ds):
    X, y, _ = ds.prepare("train")
    model = XGBoostGBDT(n_estimators=5).fit(ds)
    assert model.feature_names == ds.feature_names
    model.fit(X[:, ::-1], y)  # arrays carry no names: the dataset's are no longer true
    assert model.feature_names is None
    with pytest.raises(TypeError):
        model.fit(ds, no_such_option=1)  # refused by xgboost: the array-fitted model stays
    assert model.feature_names is None
    swapped = Dataset(ds.features[ds.feature_names[::-1]], ds.labels, ds.segments)
    np.testing.assert_array_equal(model.predict(swapped).to_numpy(),
                                  model.predict(swapped.prepare("test", labels=False)[0]))


def test_an_onnx_loaded_model_cannot_be_saved_again_and_says_why(ds, fitted, zoo):
    zoo.save(fitted["xgboost_gbdt"], "zoo/served", format="onnx")
    served = zoo.load("zoo/served")
    before = zoo.store.keys()
    for fmt in ("onnx", "json", None):
        with pytest.raises(UnsupportedModelError, match="loaded from an ONNX bundle"):
            zoo.save(served, "zoo/again", format=fmt)
    assert zoo.store.keys() == before  # nothing half-written
    # Fitting it again gives a native model, which saves like any other.
    served.fit(ds)
    assert not is_onnx_predictor(served.estimator)
    zoo.save(served, "zoo/again", format="json")
    pd.testing.assert_series_equal(zoo.load("zoo/again").predict(ds), served.predict(ds))


# -- xgboost_gbdt: early stopping and the binary loss -------------------------------------------
def test_early_stopping_keeps_the_best_round_and_predicts_with_it(ds, fitted):
    gbdt = fitted["xgboost_gbdt"]
    best, rounds = gbdt.best_iteration, gbdt.state["rounds"]
    assert best is not None and best < gbdt.params["n_estimators"]
    # Stopped after early_stopping_rounds without improvement, well short of n_estimators.
    assert rounds == best + gbdt.params["early_stopping_rounds"] + 1 < gbdt.params["n_estimators"]
    curve = gbdt.estimator.evals_result()["validation_0"]["rmse"]
    assert len(curve) == rounds and int(np.argmin(curve)) == best
    X = ds.prepare("test", labels=False)[0]
    kept = gbdt.estimator.predict(X, iteration_range=(0, best + 1))
    every = gbdt.estimator.predict(X, iteration_range=(0, rounds))
    np.testing.assert_array_equal(gbdt.predict(X), kept)
    assert not np.allclose(kept, every)  # the choice of rounds shows in the scores


def test_without_valid_the_date_ordered_tail_of_train_is_held_out(ds):
    no_valid = ds.with_segments(train=SEGMENTS["train"], test=SEGMENTS["test"])
    model = XGBoostGBDT(n_estimators=80, learning_rate=0.1, valid_fraction=0.25).fit(no_valid)
    X, y, index = no_valid.prepare("train")
    cut = int(len(X) * 0.75)
    dates = index.get_level_values(0)
    assert dates[:cut].max() <= dates[cut:].min()  # the held-out rows are the latest dates
    raw = _same_xgb(model).fit(X[:cut], y[:cut], eval_set=[(X[cut:], y[cut:])], verbose=False)
    Xt = no_valid.prepare("test", labels=False)[0]
    assert model.best_iteration == raw.best_iteration
    np.testing.assert_array_equal(model.predict(Xt), raw.predict(Xt))
    # fit(X, y) holds out the same tail.
    arrays = XGBoostGBDT(n_estimators=80, learning_rate=0.1, valid_fraction=0.25).fit(X, y)
    np.testing.assert_array_equal(arrays.predict(Xt), model.predict(Xt))
    # valid_fraction=0: every row trains, no stopping.
    full = XGBoostGBDT(n_estimators=15, valid_fraction=0.0).fit(X, y)
    assert full.best_iteration is None and full.state["rounds"] == 15
    # A valid segment with no rows (a walk-forward fold's) counts as none: the tail is held out.
    empty_valid = ds.with_segments(train=SEGMENTS["train"], valid=("2030-01-01", "2030-12-31"),
                                   test=SEGMENTS["test"])
    held = XGBoostGBDT(n_estimators=80, learning_rate=0.1, valid_fraction=0.25).fit(empty_valid)
    assert held.best_iteration == model.best_iteration
    np.testing.assert_array_equal(held.predict(Xt), model.predict(Xt))


def test_binary_loss_scores_p_up_for_return_and_direction_labels(panel, ds, fitted):
    binary = fitted["xgboost_gbdt_binary"]
    assert binary.classifier and isinstance(binary.estimator, xgboost.XGBClassifier)
    scores = binary.predict(ds)
    assert ((scores >= 0) & (scores <= 1)).all() and scores.nunique() > 10
    X, y, _ = ds.prepare("train")
    Xv, yv, _ = ds.prepare("valid")
    raw = _same_xgb(binary).fit(X, (y > 0).astype(int), eval_set=[(Xv, (yv > 0).astype(int))],
                                verbose=False)
    Xt = ds.prepare("test", labels=False)[0]
    np.testing.assert_array_equal(binary.predict(Xt), raw.predict_proba(Xt)[:, 1])
    direction = Dataset.from_bars(panel, label="label_direction", segments=SEGMENTS)
    assert set(np.unique(direction.prepare("train")[1])) == {0.0, 1.0}
    same = XGBoostGBDT(loss="binary", n_estimators=60, learning_rate=0.1).fit(direction)
    pd.testing.assert_series_equal(same.predict(direction), scores)


# -- round trips through a real store ------------------------------------------------------------
@pytest.mark.parametrize("name, fmt", [
    ("xgboost_gbdt", "json"), ("xgboost_gbdt", "ubj"), ("xgboost_gbdt", "onnx"),
    ("xgboost_gbdt_binary", "onnx"),
    ("random_forest", "skops"), ("random_forest", "onnx"), ("svm", "skops"), ("svm", "onnx"),
    ("gradient_boosting", "skops"), ("gradient_boosting", "onnx"),
])
def test_round_trip_through_the_store(ds, fitted, zoo, name, fmt):
    model = fitted[name]
    manifest = zoo.save(model, f"zoo/{name}/{fmt}", format=fmt)
    assert (manifest["adapter"], manifest["format"]) == (ADAPTER[name], fmt)
    loaded = zoo.load(f"zoo/{name}/{fmt}")
    assert type(loaded) is type(model)
    assert loaded.params == model.params and loaded.state == model.state
    assert loaded.feature_names == model.feature_names == ds.feature_names
    assert is_onnx_predictor(loaded.estimator) == (fmt == "onnx")
    assert ("[ONNX, predict only]" if fmt == "onnx" else "[fitted]") in repr(loaded)
    expected, got = model.predict(ds), loaded.predict(ds)
    assert got.index.equals(expected.index) and got.name == "score"
    if fmt == "onnx":
        np.testing.assert_allclose(got.to_numpy(), expected.to_numpy(), rtol=0, atol=1e-5)
    else:
        np.testing.assert_array_equal(got.to_numpy(), expected.to_numpy())


@pytest.mark.parametrize("name", ["xgboost_gbdt", "random_forest"])
def test_pickle_bundles_keep_the_hosts_trust_rules(ds, fitted, zoo, name):
    model = fitted[name]
    zoo.save(model, f"zoo/{name}/pickle", format="pickle")
    with pytest.raises(UntrustedModelError, match="trusted=True"):
        zoo.load(f"zoo/{name}/pickle")
    loaded = zoo.load(f"zoo/{name}/pickle", trusted=True)
    assert type(loaded) is type(model) and loaded.state == model.state
    pd.testing.assert_series_equal(loaded.predict(ds), model.predict(ds))


# -- the plugin ----------------------------------------------------------------------------------
def test_cli_lists_the_contrib_models(capsys, monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    assert main(["models", "--json"]) == 0
    rows = {row["name"]: row for row in json.loads(capsys.readouterr().out)}
    for name, library in CONTRIB.items():
        assert (rows[name]["library"], rows[name]["plugin"]) == (library, "contrib"), name
        assert rows[name]["description"]
    assert "sklearn" not in rows  # the wrapper is not a zoo name of its own
    for name in ("random_forest", "svm", "gradient_boosting"):
        assert (rows[name]["library"], rows[name]["plugin"]) == ("scikit-learn", "sklearn")


def test_build_by_name(zoo):
    model = zoo.build("xgboost_gbdt", loss="binary", n_estimators=7)
    assert type(model) is XGBoostGBDT and not model.fitted
    assert model.params == XGBoostGBDT(loss="binary", n_estimators=7).params and model.classifier
    from sklearn.ensemble import GradientBoostingClassifier, RandomForestClassifier
    from sklearn.pipeline import Pipeline
    from sklearn.svm import SVC

    assert type(zoo.build("random_forest")) is RandomForestClassifier
    assert type(zoo.build("gradient_boosting")) is GradientBoostingClassifier
    svm = zoo.build("svm")
    assert isinstance(svm, Pipeline) and isinstance(svm[-1], SVC)


def test_zoo_trains_predicts_and_saves_a_model(ds, zoo):
    X, y, _ = ds.prepare("train")
    Xt = ds.prepare("test", labels=False)[0]
    model = zoo.build("xgboost_gbdt", n_estimators=30)
    assert zoo.train(model, X, y) is model
    np.testing.assert_array_equal(zoo.predict(model, Xt), model.predict(Xt))
    np.testing.assert_array_equal(model.predict(Xt),
                                  XGBoostGBDT(n_estimators=30).fit(X, y).predict(Xt))
    manifest = zoo.save(model, "zoo/built", format="json")
    # The host's name and params are the wrapper's; the estimator's bundle is xgboost's own.
    assert (manifest["name"], manifest["params"]) == ("xgboost_gbdt", {"n_estimators": 30})
    assert manifest["training"]["rows"] == len(X)
    assert manifest["model_class"].endswith("XGBRegressor")
    assert manifest["adapter_data"]["contrib"] == {
        "model": "xgboost_gbdt", "params": model.params, "state": model.state,
        "feature_names": None}
    loaded = zoo.load("zoo/built")
    np.testing.assert_array_equal(zoo.predict(loaded, Xt), model.predict(Xt))


def test_a_bundle_naming_an_unknown_contrib_model_is_refused(fitted, zoo, tmp_path):
    # A real bundle as a newer alphazoo would write it: the saved gbdt bundle, its manifest's
    # record renamed, packed again with the bundle module (unsigned, so no signature to forge).
    # Monkeypatching MODELS or faking a LoadRequest would test less of the real load path.
    zoo.save(fitted["xgboost_gbdt"], "zoo/today", format="json")
    opened = read_bundle(zoo.store, "zoo/today", tmp_path)
    for key, record in [("zoo/future", {"model": "from_the_future"}),
                        ("zoo/garbled", {"model": "xgboost_gbdt",
                                         "params": ["not", "a", "dict"]}),
                        ("zoo/newer", {"model": "xgboost_gbdt",
                                       "params": {"loss": "mse", "grow": 1}}),
                        ("zoo/value", {"model": "xgboost_gbdt", "params": {"loss": "quantile"}})]:
        manifest = {k: v for k, v in opened.manifest.items()
                    if k not in ("protocol", "files", "signature")}
        contrib = {**manifest["adapter_data"]["contrib"], **record}
        manifest["adapter_data"] = {**manifest["adapter_data"], "contrib": contrib}
        manifest["key"] = key
        write_bundle(zoo.store, key, manifest, tmp_path, list(opened.files))
        with pytest.raises(UnsupportedModelError, match="upgrade alphazoo"):
            zoo.load(key)
    assert type(zoo.load("zoo/today")) is XGBoostGBDT  # the untouched bundle still loads


class _Plain:
    """An estimator of a library no adapter serves."""

    n_features_in_ = 10


def test_a_model_whose_estimator_no_adapter_takes_names_the_estimator(ds, zoo):
    from alphazoo.contrib.model import Model

    class Unserved(Model):
        name, library = "unserved", "lightgbm"

        def _fit(self, X, y, X_valid, y_valid, **fit_params):
            self.estimator = _Plain()

        def _predict_native(self, X):
            return np.zeros(len(X))

    model = Unserved().fit(ds)
    with pytest.raises(UnsupportedModelError, match=r"unserved model's estimator, a "
                                                     r"test_contrib_model\._Plain.*'lightgbm'"):
        zoo.save(model, "zoo/unserved")
    assert zoo.store.keys() == []


def test_non_finite_state_is_stored_as_null(ds, fitted, zoo):
    model = copy.copy(fitted["xgboost_gbdt"])
    model.state = {**fitted["xgboost_gbdt"].state, "curve": [1.5, math.nan, math.inf],
                   "worst": -math.inf, "nested": {"x": np.float32("nan")},
                   "array": np.array([0.25, np.nan])}
    manifest = zoo.save(model, "zoo/nan", format="json")  # the manifest is strict JSON
    want = {**fitted["xgboost_gbdt"].state, "curve": [1.5, None, None], "worst": None,
            "nested": {"x": None}, "array": [0.25, None]}
    assert manifest["adapter_data"]["contrib"]["state"] == want
    assert read_manifest(zoo.store, "zoo/nan")["adapter_data"]["contrib"]["state"] == want
    loaded = zoo.load("zoo/nan")
    assert loaded.state == want and loaded.best_iteration == model.best_iteration
    pd.testing.assert_series_equal(loaded.predict(ds), model.predict(ds))


@pytest.mark.slow
def test_discovery_imports_no_ml_library_or_pandas(tmp_path):
    code = """
import json, sys
import alphazoo
specs = {spec.name: [spec.library, spec.plugin] for spec in alphazoo.Zoo().models()}
heavy = ["pandas", "torch", "tensorflow", "keras", "xgboost", "sklearn", "hmmlearn", "onnx",
         "onnxruntime", "skl2onnx", "scipy", "exchange_calendars"]
print(json.dumps({"specs": specs, "imported": [name for name in heavy if name in sys.modules],
                  "contrib": sorted(m for m in sys.modules if m.startswith("alphazoo.contrib."))}))
"""
    result = json.loads(run_python(code, cwd=tmp_path).stdout.strip().splitlines()[-1])
    for name, library in CONTRIB.items():
        assert result["specs"][name] == [library, "contrib"]
    assert result["imported"] == []
    # Builders import their model module when a model is built, not when it is listed.
    assert result["contrib"] == ["alphazoo.contrib.plugin"]
