"""The zoo's ``gbdt``: qlib's LightGBM GBDT (``LGBModel``), checked against qlib itself, and the
xgboost model it replaced under that name (``xgboost_gbdt``), whose old bundles still load.

The model's interface (datasets, arrays, feature names, errors) is tested on ``xgboost_gbdt`` in
test_contrib_model.py; here is what is LightGBM's and qlib's.
"""

from __future__ import annotations

import importlib
import json
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

import alphazoo
from alphazoo.bundle import read_manifest
from alphazoo.contrib.dataset import Dataset
from alphazoo.contrib.features import load_panel
from alphazoo.contrib.model import ModelParameterError

lightgbm = pytest.importorskip("lightgbm")

from alphazoo.contrib.gbdt import XGBOOST_ONLY_PARAMS, LightGBMGBDT  # noqa: E402

DATA = Path(__file__).parent / "data"
SEGMENTS = {"train": ("2015-01-01", "2016-06-30"), "valid": ("2016-07-01", "2016-12-31"),
            "test": ("2017-01-01", "2017-12-31")}

# From tests/data/qlib_gbdt_oracle.py, run with pyqlib 0.9.7 and lightgbm 4.7.0: qlib's own
# LGBModel(**kwargs).fit(dataset) and .predict(dataset, "test") on the bundled panel's features
# and the label named, with the train/valid/test segments above (no valid: "binary_no_valid").
# Per configuration: label, LGBModel kwargs, best_iteration, trees kept, and the float64 test
# predictions' count, sum, sum of squares and first five values.
QLIB: dict[str, dict[str, Any]] = {
    "mse": {
        "label": "label_return", "kwargs": {"num_threads": 1},
        "best_iteration": 1, "trees": 1, "count": 1114,
        "sum": 0.432849950541936, "sum_sq": 0.0005643837502352692,
        "first": [0.000269481479420149, 0.0004918328456259394, 0.000269481479420149,
                  0.0004918328456259394, 0.000269481479420149]},
    "binary": {
        "label": "label_direction", "kwargs": {"loss": "binary", "num_threads": 1},
        "best_iteration": 3, "trees": 3, "count": 1114,
        "sum": 557.2700741858526, "sum_sq": 280.5666895958776,
        "first": [0.4472948915219455, 0.442252876868968, 0.447593927157269,
                  0.5114592877594863, 0.5163472470441038]},
    "mse_bagging": {
        "label": "label_return",
        "kwargs": {"early_stopping_rounds": 0, "num_boost_round": 80, "subsample": 0.8,
                   "bagging_freq": 1, "colsample_bytree": 0.8, "num_leaves": 15,
                   "num_threads": 1},
        "best_iteration": 0, "trees": 80, "count": 1114,
        "sum": 0.9035229314265896, "sum_sq": 0.03966226995214204,
        "first": [-0.0008276022228225862, 0.004096293253246989, -0.001249124665276992,
                  0.005165969088874214, -0.0002112567608591084]},
    "binary_no_valid": {
        "label": "label_direction",
        "kwargs": {"loss": "binary", "num_boost_round": 40, "num_threads": 1},
        "best_iteration": 0, "trees": 40, "count": 1114,
        "sum": 514.6135415903179, "sum_sq": 264.14609072564843,
        "first": [0.2177337521588983, 0.2251744009070417, 0.3040419708484676,
                  0.41294873103688867, 0.49362533667322]},
}
QLIB_LIGHTGBM = "4.7.0"


@pytest.fixture(scope="module")
def panel() -> pd.DataFrame:
    return load_panel()


@pytest.fixture(scope="module")
def ds(panel: pd.DataFrame) -> Dataset:
    return Dataset.from_bars(panel, label="label_return", segments=SEGMENTS)


def _dataset(panel: pd.DataFrame, config: str) -> Dataset:
    segments = {k: v for k, v in SEGMENTS.items() if k != "valid" or "no_valid" not in config}
    return Dataset.from_bars(panel, label=QLIB[config]["label"], segments=segments)


# -- qlib's LGBModel -----------------------------------------------------------------------------
def test_defaults_and_parameters_are_qlibs(zoo):
    model = zoo.build("gbdt")
    assert type(model) is LightGBMGBDT and model.library == "lightgbm" and not model.classifier
    # qlib 0.9.7's LGBModel.__init__(loss="mse", early_stopping_rounds=50, num_boost_round=1000,
    # **kwargs): self.params = {"objective": loss, "verbosity": -1}; self.params.update(kwargs).
    assert model.params == {"loss": "mse", "early_stopping_rounds": 50,
                            "num_boost_round": 1000, "valid_fraction": 0.0}
    assert model.lgb_params == {"objective": "mse", "verbosity": -1}
    tuned = zoo.build("gbdt", loss="binary", num_leaves=7, lambda_l2=3.5, objective="xentropy")
    assert tuned.classifier and tuned.lgb_params == {
        "objective": "xentropy", "verbosity": -1, "num_leaves": 7, "lambda_l2": 3.5}
    # qlib's benchmark kwargs (examples/benchmarks/LightGBM/workflow_config_lightgbm_*.yaml).
    alpha158 = zoo.build("gbdt", preset="qlib_alpha158", num_threads=2)
    assert alpha158.lgb_params == {
        "objective": "mse", "verbosity": -1, "learning_rate": 0.2, "colsample_bytree": 0.8879,
        "subsample": 0.8789, "lambda_l1": 205.6999, "lambda_l2": 580.9768, "max_depth": 8,
        "num_leaves": 210, "num_threads": 2}
    assert LightGBMGBDT.from_preset("qlib_alpha360").params["learning_rate"] == 0.0421


@pytest.mark.parametrize("config", list(QLIB))
def test_same_parameters_give_qlibs_predictions(panel, config):
    if lightgbm.__version__ != QLIB_LIGHTGBM:
        pytest.skip(f"qlib's numbers were computed with lightgbm {QLIB_LIGHTGBM}")
    want = QLIB[config]
    dataset = _dataset(panel, config)
    model = LightGBMGBDT(**want["kwargs"]).fit(dataset)
    booster = model.estimator
    assert isinstance(booster, lightgbm.Booster)
    assert (booster.best_iteration, booster.current_iteration()) == (want["best_iteration"],
                                                                      want["trees"])
    X, _, _ = dataset.prepare("test", labels=False)
    native = np.asarray(booster.predict(X), dtype=np.float64)
    # Bit for bit: the same Datasets, the same parameters, the same lightgbm.train.
    assert len(native) == want["count"]
    assert native[:5].tolist() == want["first"]
    assert float(native.sum()) == want["sum"] and float((native ** 2).sum()) == want["sum_sq"]
    # The zoo's scores are those, as float32.
    np.testing.assert_array_equal(model.predict(dataset).to_numpy(), native.astype(np.float32))
    assert model.best_iteration == (want["best_iteration"] or None)


def test_early_stopping_counts_rounds_and_predicts_with_the_best(ds):
    model = LightGBMGBDT(learning_rate=0.02, num_leaves=7, early_stopping_rounds=10,
                         num_threads=1).fit(ds)
    best, rounds = model.best_iteration, model.state["rounds"]
    assert best is not None and rounds == best + 10 < 1000
    # lightgbm.train keeps only the best rounds' trees (qlib's model is the same).
    assert model.estimator.current_iteration() == best
    # A fit-time override, as qlib's fit(dataset, num_boost_round=..., early_stopping_rounds=...)
    fewer = LightGBMGBDT(learning_rate=0.02, num_leaves=7, num_threads=1)
    fewer.fit(ds, num_boost_round=5, early_stopping_rounds=0)
    assert fewer.best_iteration is None and fewer.state["rounds"] == 5
    assert fewer.params["num_boost_round"] == 1000  # the override does not change the model


def test_valid_fraction_holds_out_the_latest_training_rows(ds):
    no_valid = ds.with_segments(train=SEGMENTS["train"], test=SEGMENTS["test"])
    params = {"learning_rate": 0.05, "num_leaves": 7, "early_stopping_rounds": 10,
              "num_threads": 1}
    model = LightGBMGBDT(valid_fraction=0.25, **params).fit(no_valid)
    X, y, _ = no_valid.prepare("train")
    cut = int(len(X) * 0.75)
    train = lightgbm.Dataset(X[:cut], label=y[:cut])
    raw = lightgbm.train(model.lgb_params, train, num_boost_round=1000,
                         valid_sets=[train, lightgbm.Dataset(X[cut:], label=y[cut:])],
                         callbacks=[lightgbm.early_stopping(10, verbose=False)])
    Xt = no_valid.prepare("test", labels=False)[0]
    assert model.best_iteration == raw.best_iteration
    np.testing.assert_array_equal(model.predict(Xt), raw.predict(Xt).astype(np.float32))
    # qlib's way, the default: without valid rows, every row trains, every round runs.
    qlib_way = LightGBMGBDT(num_boost_round=30, num_threads=1).fit(no_valid)
    assert qlib_way.best_iteration is None and qlib_way.state["rounds"] == 30


def test_binary_learns_up_from_return_or_direction_labels(panel, ds):
    on_returns = LightGBMGBDT(loss="binary", num_boost_round=20, num_threads=1).fit(ds)
    direction = Dataset.from_bars(panel, label="label_direction", segments=SEGMENTS)
    on_direction = LightGBMGBDT(loss="binary", num_boost_round=20, num_threads=1).fit(direction)
    scores = on_returns.predict(ds)
    assert on_returns.classifier and ((scores > 0) & (scores < 1)).all()
    pd.testing.assert_series_equal(scores, on_direction.predict(direction))


def test_a_wrong_width_is_a_value_error(ds):
    model = LightGBMGBDT(num_boost_round=5, num_threads=1).fit(ds)
    X = ds.prepare("test", labels=False)[0]
    with pytest.raises(ValueError, match=r"takes 10 features per row; X has 3"):
        model.predict(X[:4, :3])


# -- parameters: qlib's, LightGBM's, and the old xgboost gbdt's ----------------------------------
def test_bad_parameters_are_model_parameter_errors():
    assert issubclass(ModelParameterError, ValueError)
    with pytest.raises(ModelParameterError, match="'mse' or 'binary'"):
        LightGBMGBDT(loss="huber")
    with pytest.raises(ModelParameterError, match="valid_fraction"):
        LightGBMGBDT(valid_fraction=1.0)


@pytest.mark.parametrize("param", sorted(XGBOOST_ONLY_PARAMS))
def test_xgboost_only_parameters_are_refused_with_the_new_name(zoo, param):
    # LightGBM itself would ignore them silently (qlib's verbosity=-1 hides its warning).
    with pytest.raises(ModelParameterError, match=rf"no parameter '{param}'.*'xgboost_gbdt'"):
        zoo.build("gbdt", **{param: 1})


def test_xgboost_only_parameters_are_no_lightgbm_parameter():
    # The list stays true for the lightgbm installed: none of its names is LightGBM's.
    from lightgbm.basic import _ConfigAliases

    known = _ConfigAliases._get_all_param_aliases()
    names = set(known) | {alias for aliases in known.values() for alias in aliases}
    assert not XGBOOST_ONLY_PARAMS & names


def test_the_old_gbdts_parameters_build_lightgbm_with_lightgbms_meaning(ds):
    # The xgboost gbdt's own parameter names are LightGBM aliases: n_estimators is
    # num_iterations, and wins over num_boost_round (silently, at qlib's verbosity=-1).
    old_style = LightGBMGBDT(n_estimators=12, max_depth=3, learning_rate=0.1, subsample=0.8,
                             colsample_bytree=0.8, random_state=0, n_jobs=1,
                             early_stopping_rounds=0).fit(ds)
    assert old_style.state["rounds"] == 12 and old_style.estimator.current_iteration() == 12
    assert isinstance(old_style.estimator, lightgbm.Booster)


def test_the_old_class_name_still_imports_the_xgboost_model_with_a_warning():
    from alphazoo.contrib.xgboost_gbdt import XGBoostGBDT

    module = importlib.import_module("alphazoo.contrib.gbdt")
    with pytest.warns(DeprecationWarning, match=r"contrib\.gbdt\.GBDT.*XGBoostGBDT.*"
                                                r"'xgboost_gbdt'"):
        old = module.GBDT
    assert old is XGBoostGBDT
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        from alphazoo.contrib.gbdt import LightGBMGBDT as again  # the new names do not warn
    assert again is LightGBMGBDT
    with pytest.raises(AttributeError):
        module.NoSuchModel  # noqa: B018


# -- migration: a bundle the xgboost gbdt saved --------------------------------------------------
def test_a_bundle_saved_when_gbdt_was_xgboost_loads_as_the_xgboost_model(tmp_path):
    xgboost = pytest.importorskip("xgboost")
    from alphazoo.contrib.xgboost_gbdt import XGBoostGBDT

    # Saved by alphazoo before this change (see the .expected.json's "saved_by"): its manifest
    # names "gbdt" and the xgboost adapter.
    expected = json.loads((DATA / "gbdt-xgboost-before-lightgbm.expected.json").read_text())
    store = alphazoo.ObjectStore(tmp_path / "store")
    store.save_bytes("old/gbdt", (DATA / "gbdt-xgboost-before-lightgbm.json.bundle").read_bytes())
    manifest = read_manifest(store, "old/gbdt")
    assert (manifest["name"], manifest["adapter"]) == ("gbdt", "xgboost")
    assert manifest["adapter_data"]["contrib"]["model"] == "gbdt"
    zoo = alphazoo.Zoo(store)
    loaded = zoo.load("old/gbdt")
    assert type(loaded) is XGBoostGBDT and isinstance(loaded.estimator, xgboost.XGBRegressor)
    assert loaded.params == expected["params"] and loaded.state == expected["state"]
    rows = np.array(expected["rows"], dtype=np.float32)
    np.testing.assert_array_equal(loaded.predict(rows), np.float32(expected["predict"]))
    # Saved again, it is recorded under its name of today.
    again = zoo.save(loaded, "new/xgboost_gbdt", format="json")
    assert again["adapter_data"]["contrib"]["model"] == "xgboost_gbdt"
    np.testing.assert_array_equal(zoo.load("new/xgboost_gbdt").predict(rows),
                                  np.float32(expected["predict"]))


# -- saving: the Booster goes to the LightGBM adapter --------------------------------------------
@pytest.fixture(scope="module")
def fitted(panel: pd.DataFrame, ds: Dataset) -> dict[str, LightGBMGBDT]:
    direction = Dataset.from_bars(panel, label="label_direction", segments=SEGMENTS)
    return {
        "mse": LightGBMGBDT(learning_rate=0.02, num_leaves=7, early_stopping_rounds=10,
                            num_threads=1).fit(ds),
        # Early-stopped after several trees (QLIB["binary"]'s configuration).
        "binary": LightGBMGBDT(**QLIB["binary"]["kwargs"]).fit(direction),
    }


@pytest.mark.parametrize("loss, fmt", [("mse", "text"), ("binary", "text"), ("mse", "pickle"),
                                       ("binary", "onnx")])
def test_round_trip_through_the_lightgbm_adapter(panel, ds, fitted, zoo, loss, fmt):
    model = fitted[loss]
    data = ds if loss == "mse" else Dataset.from_bars(panel, label="label_direction",
                                                      segments=SEGMENTS)
    manifest = zoo.save(model, f"zoo/gbdt/{loss}/{fmt}", format=fmt)
    assert (manifest["adapter"], manifest["format"]) == ("lightgbm", fmt)
    assert manifest["model_class"] == "lightgbm.basic.Booster"
    assert manifest["adapter_data"]["contrib"] == {
        "model": "gbdt", "params": model.params, "state": model.state,
        "feature_names": ds.feature_names}
    loaded = zoo.load(f"zoo/gbdt/{loss}/{fmt}", trusted=fmt == "pickle")
    assert type(loaded) is LightGBMGBDT and loaded.classifier == (loss == "binary")
    assert (loaded.params, loaded.state) == (model.params, model.state)
    assert loaded.best_iteration == model.best_iteration
    expected, got = model.predict(data), loaded.predict(data)
    if fmt == "onnx":
        assert "[ONNX, predict only]" in repr(loaded)
        np.testing.assert_allclose(got.to_numpy(), expected.to_numpy(), rtol=0, atol=1e-6)
    else:
        pd.testing.assert_series_equal(got, expected)  # LightGBM's own trees: bit for bit


def test_onnx_of_qlibs_mse_objective(ds, fitted, zoo):
    zoo.save(fitted["mse"], "zoo/gbdt/mse/onnx", format="onnx")
    loaded = zoo.load("zoo/gbdt/mse/onnx")
    np.testing.assert_allclose(loaded.predict(ds).to_numpy(), fitted["mse"].predict(ds).to_numpy(),
                               rtol=0, atol=1e-6)


def test_onnx_of_a_one_tree_binary_model(ds, zoo):
    one = LightGBMGBDT(loss="binary", num_boost_round=1, num_leaves=7, learning_rate=0.05,
                       num_threads=1).fit(ds)
    X = ds.prepare("test", labels=False)[0]
    # Every probability above one half, where onnxruntime's own label of the converted
    # trees said "down" (the adapter now labels by the probabilities).
    assert (one.predict(X) > 0.5).all()
    zoo.save(one, "zoo/gbdt/one/onnx", format="onnx")
    np.testing.assert_allclose(zoo.load("zoo/gbdt/one/onnx").predict(X), one.predict(X),
                               rtol=0, atol=1e-6)


def test_a_lightgbm_gbdt_bundle_is_not_mistaken_for_the_old_xgboost_one(ds, fitted, zoo):
    # Only a "gbdt" record from the xgboost adapter is the old model.
    zoo.save(fitted["mse"], "zoo/gbdt/today")
    assert read_manifest(zoo.store, "zoo/gbdt/today")["adapter_data"]["contrib"]["model"] == \
        "gbdt"
    assert type(zoo.load("zoo/gbdt/today")) is LightGBMGBDT
