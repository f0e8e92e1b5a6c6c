"""The catboost adapter: cbm (default), json, onnx and pickle bundles of CatBoostClassifier,
CatBoostRegressor and the bare CatBoost class.

cbm and pickle are checked bit for bit (the payload is CatBoost's own file; predictions and
probabilities equal), json within CatBoost's own parsing of its leaf values, ONNX within
float32 rounding, in this process and in fresh ones (ONNX with catboost blocked from import).
Data: daily bars that ship with alphazoo (features at each close, next-day direction and
next-day return) with the ticker as a categorical column; GOOGL rows as unseen inputs.
"""

from __future__ import annotations

import json
import struct
import textwrap
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from _child import blocking_prelude, run_python

import alphazoo
from alphazoo.adapters import catboost as adapter
from alphazoo.adapters._onnx import OnnxPredictor
from alphazoo.bundle import read_bundle
from alphazoo.contracts import LoadRequest
from alphazoo.datasets import load_prices
from alphazoo.example_features import FEATURES, make_features
from alphazoo.limits import LoadLimits

catboost = pytest.importorskip("catboost", reason="catboost is in the project's [catboost] extra")

FORMATS = ["cbm", "json", "onnx", "pickle"]
MODELS = ["classifier", "regressor", "multiclass", "bare"]
QUIET = {"verbose": False, "allow_writing_files": False, "thread_count": 1}
#: CatBoost 1.2.10 reads some of its JSON leaf values one unit in the last place off.
JSON_TOLERANCE = 1e-12


# -- fixtures and helpers ------------------------------------------------------------------------
@pytest.fixture(scope="module")
def data() -> dict[str, Any]:
    X, y, _ = make_features(load_prices("AAPL"))
    X_new, _, _ = make_features(load_prices("GOOGL"))  # rows no model has seen
    # Row t+1's one-day return is the return from close t to close t+1: the regression target.
    X_reg, y_reg = X[:-1], X[1:, 0]
    y_three = np.array(["down", "flat", "up"])[np.digitize(y_reg, np.quantile(y_reg, [1 / 3,
                                                                                      2 / 3]))]
    return {"X": X, "y": y, "X_reg": X_reg, "y_reg": y_reg, "y_three": y_three,
            "X_new": X_new[:200]}


@pytest.fixture(scope="module")
def tickers() -> dict[str, Any]:
    """Three tickers' rows in one frame, the ticker a categorical column."""
    pandas = pytest.importorskip("pandas")
    frames, labels = [], []
    for symbol in ("AAPL", "GOOGL", "TSLA"):
        X, y, _ = make_features(load_prices(symbol))
        frame = pandas.DataFrame(X, columns=FEATURES)
        frame["ticker"] = symbol
        frames.append(frame)
        labels.append(y)
    frame = pandas.concat(frames, ignore_index=True)
    return {"X": frame, "y": np.concatenate(labels)}


def train_models(zoo: alphazoo.Zoo, data: dict[str, Any]) -> dict[str, Any]:
    small = {"iterations": 30, "depth": 3}
    bare = catboost.CatBoost({"loss_function": "Logloss", "iterations": 20, **QUIET})
    return {
        "classifier": zoo.train(zoo.build("catboost_classifier", **small), data["X"], data["y"]),
        "regressor": zoo.train(zoo.build("catboost_regressor", **small), data["X_reg"],
                               data["y_reg"]),
        "multiclass": zoo.train(zoo.build("catboost_classifier", **small), data["X_reg"],
                                data["y_three"]),
        "bare": zoo.train(bare, data["X"], data["y"]),
    }


@pytest.fixture(scope="module")
def saved(tmp_path_factory: pytest.TempPathFactory, data) -> dict[str, Any]:
    """Every model trained and saved in every format, in one folder store."""
    with pytest.MonkeyPatch.context() as mp:
        mp.delenv("ALPHAZOO_SIGNING_KEY", raising=False)
        store_dir = tmp_path_factory.mktemp("catboost-zoo")
        mp.chdir(store_dir.parent)  # where a stray catboost_info folder would appear
        zoo = alphazoo.Zoo(alphazoo.ObjectStore(store_dir))
        models = train_models(zoo, data)
        manifests = {(name, fmt): zoo.save(model, f"zoo/{name}/{fmt}", format=fmt)
                     for name, model in models.items() for fmt in FORMATS}
    return {"store_dir": store_dir, "zoo": zoo, "models": models, "manifests": manifests}


def outputs(model: Any, X: Any) -> dict[str, np.ndarray]:
    """What a user reads from a CatBoost model: predict (raw sums for the bare class) and,
    for classifiers, predict_proba."""
    out = {"predict": np.asarray(model.predict(X))}
    if isinstance(model, catboost.CatBoostClassifier):
        out["proba"] = np.asarray(model.predict_proba(X))
    elif type(model) is catboost.CatBoost:
        out["proba"] = np.asarray(model.predict(X, prediction_type="Probability"))
        out["label"] = np.asarray(model.predict(X, prediction_type="Class"))
    return out


def cbm_bytes(model: Any, folder: Path) -> bytes:
    path = folder / "direct.cbm"
    model.save_model(str(path))
    return path.read_bytes()


def trees(model: Any, folder: Path) -> dict[str, Any]:
    """The model's trees, feature borders, CTRs and bias as CatBoost's JSON writer gives them.

    Not the cbm bytes: CatBoost writes the training parameters it keeps in a model in hash
    order, which changes when a model is loaded and saved again (1.2.10).
    """
    path = folder / "direct.json"
    model.save_model(str(path), format="json")
    document = json.loads(path.read_text())
    document.pop("model_info")
    return document


# -- registration and ownership ------------------------------------------------------------------
def test_zoo_models_and_formats_are_registered(zoo):
    specs = {spec.name: spec for spec in zoo.models()}
    for name in ("catboost_classifier", "catboost_regressor"):
        assert specs[name].library == "catboost" and specs[name].plugin == "catboost"
    formats = {(s.name, s.safe) for s in zoo.formats() if s.adapter == "catboost"}
    assert formats == {("cbm", True), ("json", True), ("onnx", True), ("pickle", False)}
    (default,) = [s.name for s in zoo.formats() if s.adapter == "catboost" and s.default]
    assert default == "cbm"
    assert zoo.format_spec("catboost", "onnx").load_requires == ("onnxruntime",)
    assert zoo.format_spec("catboost", "cbm").load_requires == ("catboost",)


def test_built_models_are_quiet_bounded_and_write_no_files(zoo, data, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    clf = zoo.build("catboost_classifier")
    assert isinstance(clf, catboost.CatBoostClassifier)
    params = clf.get_params()
    assert (params["iterations"], params["depth"], params["learning_rate"],
            params["random_seed"], params["thread_count"], params["verbose"],
            params["allow_writing_files"]) == (200, 4, 0.1, 0, 1, False, False)
    reg = zoo.build("catboost_regressor", depth=2, l2_leaf_reg=5.0, iterations=10)
    assert isinstance(reg, catboost.CatBoostRegressor)
    assert (reg.get_params()["depth"], reg.get_params()["l2_leaf_reg"]) == (2, 5.0)
    zoo.train(reg, data["X_reg"], data["y_reg"])
    assert list(tmp_path.iterdir()) == []  # no catboost_info folder, no logs


def test_ownership(saved, data):
    for model in saved["models"].values():
        assert adapter.owns(model)
    assert not adapter.owns(catboost.Pool(data["X"], data["y"]))  # catboost's, not a model
    assert not adapter.owns({"a": 1})
    from alphazoo.adapters import sklearn as sklearn_adapter

    assert not sklearn_adapter.owns(saved["models"]["classifier"])
    manifest = saved["manifests"]["classifier", "cbm"]
    assert (manifest["adapter"], manifest["format"]) == ("catboost", "cbm")
    assert manifest["model_class"] == "catboost.core.CatBoostClassifier"
    assert saved["manifests"]["bare", "cbm"]["model_class"] == "catboost.core.CatBoost"


# -- round trips ---------------------------------------------------------------------------------
@pytest.mark.parametrize("fmt", ["cbm", "pickle"])
@pytest.mark.parametrize("name", MODELS)
def test_cbm_and_pickle_round_trips_are_exact(saved, data, tmp_path, name, fmt):
    zoo, original = saved["zoo"], saved["models"][name]
    loaded = zoo.load(f"zoo/{name}/{fmt}", trusted=fmt == "pickle")
    assert loaded is not original and type(loaded) is type(original)
    assert trees(loaded, tmp_path) == trees(original, tmp_path)
    for X in (data["X"], data["X_new"]):
        expected, got = outputs(original, X), outputs(loaded, X)
        assert expected.keys() == got.keys()
        for kind in expected:
            assert np.array_equal(expected[kind], got[kind]), kind
    if hasattr(original, "classes_"):
        assert np.array_equal(loaded.classes_, original.classes_)
    assert np.array_equal(zoo.predict(loaded, data["X_new"]), zoo.predict(original, data["X_new"]))


@pytest.mark.parametrize("name", MODELS)
def test_json_round_trip_agrees_to_the_last_digits(saved, data, name):
    zoo, original = saved["zoo"], saved["models"][name]
    loaded = zoo.load(f"zoo/{name}/json")
    assert type(loaded) is type(original)
    assert loaded.tree_count_ == original.tree_count_
    expected, got = outputs(original, data["X_new"]), outputs(loaded, data["X_new"])
    for kind in expected:
        if expected[kind].dtype.kind in "OUi":  # labels
            assert np.array_equal(expected[kind], got[kind]), kind
        else:
            np.testing.assert_allclose(got[kind], expected[kind], rtol=JSON_TOLERANCE,
                                       atol=JSON_TOLERANCE)
    if hasattr(original, "classes_"):
        assert np.array_equal(loaded.classes_, original.classes_)


def test_payloads_are_what_catboost_itself_writes(saved, tmp_path):
    model = saved["models"]["classifier"]
    (tmp_path / "bundle").mkdir()
    opened = read_bundle(saved["zoo"].store, "zoo/classifier/cbm", tmp_path / "bundle")
    assert opened.files["model.cbm"].read_bytes() == cbm_bytes(model, tmp_path)
    model.save_model(str(tmp_path / "direct.json"), format="json")
    (tmp_path / "bundle-json").mkdir()
    opened = read_bundle(saved["zoo"].store, "zoo/classifier/json", tmp_path / "bundle-json")
    written = json.loads(opened.files["model.json"].read_text())
    direct = json.loads((tmp_path / "direct.json").read_text())
    assert written["oblivious_trees"] == direct["oblivious_trees"]


def test_manifest_records_what_the_loader_needs(saved):
    data = saved["manifests"]["classifier", "cbm"]["adapter_data"]
    assert data == {"estimator": "CatBoostClassifier", "task": "classification",
                    "loss_function": "Logloss", "trees": 30, "n_features": len(FEATURES),
                    "cat_features": [], "classes": [0, 1]}
    multi = saved["manifests"]["multiclass", "json"]["adapter_data"]
    assert multi["classes"] == ["down", "flat", "up"] and multi["loss_function"] == "MultiClass"
    bare = saved["manifests"]["bare", "cbm"]["adapter_data"]
    assert (bare["estimator"], bare["task"], bare["classes"]) == ("CatBoost", "classification",
                                                                  [0, 1])
    manifest = saved["manifests"]["regressor", "cbm"]
    assert manifest["adapter_data"]["task"] == "regression"
    assert manifest["input"] == {"dtype": "float64", "shape": [None, len(FEATURES)],
                                 "feature_names": None}
    assert manifest["libraries"]["catboost"] == catboost.__version__
    assert manifest["name"] == "catboost_regressor"
    assert manifest["params"] == {"iterations": 30, "depth": 3}
    onnx_libraries = saved["manifests"]["classifier", "onnx"]["libraries"]
    assert {"catboost", "onnx", "onnxruntime"} <= set(onnx_libraries)


@pytest.mark.parametrize("name", MODELS)
def test_onnx_round_trip_matches_the_native_model(saved, data, name):
    zoo, original = saved["zoo"], saved["models"][name]
    facts = saved["manifests"][name, "onnx"]["adapter_data"]
    parity = facts["parity"]
    # the training rows, and the same rows with a quarter of the values NaN (missing)
    assert parity["rows"] == 2 * parity["missing_rows"] and parity["sample"] == "training rows"
    assert parity["max_abs_diff"] <= 1e-5

    loaded = zoo.load(f"zoo/{name}/onnx")
    assert isinstance(loaded, OnnxPredictor)
    X = data["X_new"]
    if name == "regressor":
        assert loaded.task == "regression" and not hasattr(loaded, "predict_proba")
        np.testing.assert_allclose(loaded.predict(X), original.predict(X), rtol=1e-5, atol=1e-6)
        return
    assert loaded.task == "classification" and parity["label_agreement"] == 1.0
    native = outputs(original, X)
    labels = native.get("label", native["predict"]).ravel()
    assert np.array_equal(loaded.predict(X), labels)
    proba = loaded.predict_proba(X)
    assert proba.dtype == np.float32 and proba.shape == native["proba"].shape
    np.testing.assert_allclose(proba, native["proba"], atol=1e-6, rtol=0)
    assert list(loaded.classes_) == facts["classes"]
    assert loaded.predict(X[0]).shape == (1,)  # one row as a 1-D array


@pytest.mark.slow
def test_default_format_round_trips_through_every_backend(object_store, data):
    store = object_store
    zoo = alphazoo.Zoo(store)
    model = zoo.train(zoo.build("catboost_classifier", iterations=10), data["X"], data["y"])
    assert zoo.save(model, "desk/cb")["format"] == "cbm"
    loaded = alphazoo.Zoo(store).load("desk/cb")
    assert np.array_equal(loaded.predict_proba(data["X_new"]), model.predict_proba(data["X_new"]))


def test_a_ranker_round_trips_and_exports_its_scores(zoo, data):
    groups = np.arange(len(data["X_reg"])) // 5  # a week of days per query
    model = catboost.CatBoostRanker(iterations=20, **QUIET).fit(data["X_reg"], data["y_reg"],
                                                               group_id=groups)
    for fmt in ("cbm", "json", "onnx"):
        manifest = zoo.save(model, f"rank/{fmt}", format=fmt)
        assert manifest["adapter_data"]["task"] == "ranking"
        loaded = zoo.load(f"rank/{fmt}")
        expected = model.predict(data["X_new"])
        if fmt == "cbm":
            assert type(loaded) is catboost.CatBoostRanker
            assert np.array_equal(loaded.predict(data["X_new"]), expected)
        else:  # json: CatBoost's own parsing; onnx: float32, served as values
            tolerance = JSON_TOLERANCE if fmt == "json" else 1e-5
            np.testing.assert_allclose(loaded.predict(data["X_new"]), expected,
                                       rtol=tolerance, atol=tolerance)


# -- categorical features ------------------------------------------------------------------------
def test_categorical_features_round_trip_in_cbm_and_json_and_are_refused_by_onnx(zoo, tickers):
    X, y = tickers["X"], tickers["y"]
    model = zoo.train(zoo.build("catboost_classifier", iterations=30, cat_features=["ticker"]),
                      X, y)
    manifest = zoo.save(model, "tickers")
    assert manifest["format"] == "cbm"
    assert manifest["adapter_data"]["cat_features"] == [len(FEATURES)]
    assert manifest["input"]["feature_names"] == [*FEATURES, "ticker"]
    rows = X.iloc[::7].copy()
    rows.loc[rows.index[::3], "ticker"] = "COKE"  # a category no tree has seen
    loaded = zoo.load("tickers")
    assert np.array_equal(loaded.predict_proba(rows), model.predict_proba(rows))
    assert loaded.get_cat_feature_indices() == [len(FEATURES)]

    zoo.save(model, "tickers-json", format="json")
    np.testing.assert_allclose(zoo.load("tickers-json").predict_proba(rows),
                               model.predict_proba(rows), rtol=0, atol=JSON_TOLERANCE)

    with pytest.raises(alphazoo.UnsupportedFormatError, match=r"categorical features.*'cbm'"):
        zoo.save(model, "tickers-onnx", format="onnx")
    assert not zoo.store.contains_key("tickers-onnx")


# -- refusals ------------------------------------------------------------------------------------
def test_text_features_are_refused_by_json_and_onnx_but_kept_by_cbm(zoo, tickers):
    X = tickers["X"].iloc[:300].copy()
    X["news"] = np.array(["shares rally", "shares slide", "flat session"])[np.arange(300) % 3]
    model = catboost.CatBoostClassifier(iterations=5, text_features=["news"],
                                        cat_features=["ticker"], **QUIET).fit(X, tickers["y"][:300])
    with pytest.raises(alphazoo.UnsupportedFormatError, match="text or embedding features"):
        zoo.save(model, "news", format="json")
    with pytest.raises(alphazoo.UnsupportedFormatError, match="text features"):
        zoo.save(model, "news", format="onnx")
    assert zoo.store.keys() == []
    zoo.save(model, "news")
    assert np.array_equal(zoo.load("news").predict_proba(X), model.predict_proba(X))


@pytest.mark.parametrize("params,reason", [
    ({"grow_policy": "Depthwise"}, "non-symmetric"),
    ({"grow_policy": "Lossguide"}, "non-symmetric"),
    ({"loss_function": "MultiRMSE"}, "several targets"),
])
def test_onnx_refuses_what_catboost_cannot_export(zoo, data, params, reason):
    target = data["X_reg"][:, :2] if params.get("loss_function") == "MultiRMSE" else data["y_reg"]
    model = catboost.CatBoostRegressor(iterations=5, **params, **QUIET).fit(data["X_reg"], target)
    with pytest.raises(alphazoo.UnsupportedFormatError, match=reason):
        zoo.save(model, "x", format="onnx")
    assert zoo.store.keys() == []
    zoo.save(model, "x", format="json")  # CatBoost's own formats hold them
    np.testing.assert_allclose(zoo.load("x").predict(data["X_new"]), model.predict(data["X_new"]),
                               rtol=JSON_TOLERANCE, atol=JSON_TOLERANCE)


def test_an_export_that_disagrees_is_never_stored(zoo, data):
    # Poisson's predict is exp(raw sum); CatBoost's ONNX graph gives the raw sum.
    model = catboost.CatBoostRegressor(iterations=10, loss_function="Poisson", **QUIET).fit(
        data["X_reg"], np.round(np.abs(data["y_reg"]) * 100))
    with pytest.raises(alphazoo.OnnxParityError, match="not saved"):
        zoo.save(model, "poisson", format="onnx", sample=data["X_reg"])
    assert zoo.store.keys() == []


def test_unfitted_models_need_pickle(zoo):
    unfitted = zoo.build("catboost_regressor")
    for fmt in ("cbm", "json", "onnx"):
        with pytest.raises(alphazoo.UnsupportedFormatError, match="fit CatBoostRegressor first"):
            zoo.save(unfitted, "unfitted", format=fmt)
    assert zoo.store.keys() == []
    zoo.save(unfitted, "unfitted", format="pickle")
    assert zoo.load("unfitted", trusted=True).get_params() == unfitted.get_params()
    assert zoo.inspect("unfitted")["input"]["shape"] == [None, None]


def test_pickle_needs_trust(saved):
    with pytest.raises(alphazoo.UntrustedModelError, match="trusted=True"):
        saved["zoo"].load("zoo/classifier/pickle")


@pytest.mark.parametrize("fmt", ["skops", "ubj", "pt"])
def test_other_adapters_formats_are_refused(zoo, saved, fmt):
    with pytest.raises(alphazoo.UnsupportedFormatError) as error:
        zoo.save(saved["models"]["classifier"], "x", format=fmt)
    message = str(error.value)
    assert "CatBoost" in message and repr(fmt) in message and f"{fmt} is the " in message
    for name in FORMATS:
        assert name in message
    assert zoo.store.keys() == []


class MyClassifier(catboost.CatBoostClassifier):
    """A user's subclass: cbm and json bring it back as the CatBoost class."""


def test_a_subclass_loads_as_its_catboost_class(zoo, data):
    model = MyClassifier(iterations=5, **QUIET).fit(data["X"], data["y"])
    assert adapter.owns(model)
    with pytest.warns(UserWarning, match="loads as that class"):
        zoo.save(model, "sub")
    loaded = zoo.load("sub")
    assert type(loaded) is catboost.CatBoostClassifier
    assert np.array_equal(loaded.predict_proba(data["X_new"]), model.predict_proba(data["X_new"]))


# -- malformed and oversized payloads ------------------------------------------------------------
def load_request(payload: Path, fmt: str = "cbm", estimator: Any = "CatBoostClassifier",
                 limits: LoadLimits | None = None) -> LoadRequest:
    return LoadRequest(manifest={"adapter": "catboost", "format": fmt,
                                 "adapter_data": {"estimator": estimator}},
                       files={payload.name: payload}, limits=limits)


def crafted_cbm(saved: dict[str, Any], tmp_path: Path) -> bytes:
    return cbm_bytes(saved["models"]["classifier"], tmp_path)


@pytest.mark.parametrize("mangle,problem", [
    (lambda good: b"", "not a CatBoost model file"),
    (lambda good: b"PK\x03\x04" + good[4:], "not a CatBoost model file"),
    (lambda good: good[:6], "ends inside its header"),
    # CatBoost 1.2.10 reads past the buffer on these (a crash, or a 4 GB allocation):
    (lambda good: good[:10], "declares a model core of"),
    (lambda good: good[:4] + struct.pack("<I", 0xFFFFFFF0) + good[8:], "declares a model core"),
    (lambda good: good[:4] + struct.pack("<IQ", 0xFFFFFFFF, 1 << 40) + good[8:],
     "declares a model core"),
    # framed right, refused by CatBoost's own flatbuffers verification
    (lambda good: b"CBM1" + struct.pack("<I", 64) + b"\xff" * 64, "CatBoost could not read it"),
])
def test_a_malformed_cbm_is_a_typed_error(saved, tmp_path, mangle, problem):
    payload = tmp_path / "model.cbm"
    payload.write_bytes(mangle(crafted_cbm(saved, tmp_path)))
    with pytest.raises(alphazoo.BundleFormatError, match=problem):
        adapter.alphazoo_load(load_request(payload))


@pytest.mark.parametrize("text,problem", [
    # CatBoost itself loads these three as a model without trees
    ('{"oblivious_trees": [}', "not a JSON document"),
    ("TRUNCATED", "not a JSON document"),
    ('{"features_info": {}}', "a model without trees"),
    ("[]", "is an object, not list"),
    ("null", "is an object, not NoneType"),
])
def test_a_malformed_json_model_is_a_typed_error(saved, tmp_path, text, problem):
    payload = tmp_path / "model.json"
    if text == "TRUNCATED":
        saved["models"]["classifier"].save_model(str(payload), format="json")
        text = payload.read_text()[: len(payload.read_text()) // 2]
    payload.write_text(text)
    with pytest.raises(alphazoo.BundleFormatError, match=problem):
        adapter.alphazoo_load(load_request(payload, "json"))


@pytest.mark.parametrize("where,value,problem", [
    # CatBoost 1.2.10's JSON reader indexes its binary features with split_index unchecked:
    # each of these crashed the process before the adapter checked them.
    ("split_index", 10**9, "split_index is 1000000000, outside"),
    ("split_index", -(2**31), "split_index is -2147483648, outside"),
    ("split_index", "3", "split_index is '3', outside"),
    ("float_feature_index", 8, "float_feature_index is 8, outside the model's 8 entries"),
])
def test_a_json_split_outside_the_feature_tables_is_refused(saved, tmp_path, where, value,
                                                           problem):
    payload = tmp_path / "model.json"
    saved["models"]["classifier"].save_model(str(payload), format="json")
    document = json.loads(payload.read_text())
    document["oblivious_trees"][3]["splits"][1][where] = value
    payload.write_text(json.dumps(document))
    with pytest.raises(alphazoo.BundleFormatError, match=problem):
        adapter.alphazoo_load(load_request(payload, "json"))


def _set_leaf(document: dict[str, Any], value: Any) -> None:
    document["oblivious_trees"][2]["leaf_values"][1] = value


def _set_feature_border(document: dict[str, Any], value: Any) -> None:
    document["features_info"]["float_features"][0]["borders"][0] = value


def _set_split_border(document: dict[str, Any], value: Any) -> None:
    document["oblivious_trees"][0]["splits"][0]["border"] = value


def _set_bias(document: dict[str, Any], value: Any) -> None:
    document["scale_and_bias"][1] = [value]


@pytest.mark.parametrize("edit", [_set_leaf, _set_feature_border, _set_split_border, _set_bias])
@pytest.mark.parametrize("value", [float("nan"), float("inf"), -float("inf"), "1e999", "0.5"])
def test_a_json_model_with_values_that_are_not_finite_numbers_is_refused(saved, tmp_path,
                                                                         edit, value):
    payload = tmp_path / "model.json"
    saved["models"]["classifier"].save_model(str(payload), format="json")
    document = json.loads(payload.read_text())
    edit(document, 12345.5 if value == "1e999" else value)
    text = json.dumps(document)  # NaN and Infinity as Python's writer spells them
    payload.write_text(text.replace("12345.5", "1e999"))
    with pytest.raises(alphazoo.BundleFormatError, match="not a finite number"):
        adapter.alphazoo_load(load_request(payload, "json"))


@pytest.mark.parametrize("fmt", ["cbm", "json"])
def test_a_payload_that_is_not_the_recorded_model_is_refused(saved, tmp_path, fmt):
    payload = tmp_path / f"model.{fmt}"
    saved["models"]["classifier"].save_model(str(payload), format=fmt)  # 30 trees
    request = load_request(payload, fmt)
    request.manifest["adapter_data"].update(trees=30, n_features=len(FEATURES))
    assert adapter.alphazoo_load(request).tree_count_ == 30
    request.manifest["adapter_data"]["trees"] = 31
    with pytest.raises(alphazoo.BundleFormatError, match="trees=30, the manifest records 31"):
        adapter.alphazoo_load(request)


def test_an_oversized_payload_is_refused_before_catboost_reads_it(saved, tmp_path):
    good = crafted_cbm(saved, tmp_path)
    payload = tmp_path / "model.cbm"
    payload.write_bytes(good)
    small = LoadLimits(max_bytes=len(good) - 1)
    with pytest.raises(alphazoo.BundleLimitError, match="max_bytes"):
        adapter.alphazoo_load(load_request(payload, limits=small))
    model = adapter.alphazoo_load(load_request(payload, limits=LoadLimits(max_bytes=len(good))))
    assert isinstance(model, catboost.CatBoostClassifier)
    with pytest.raises(alphazoo.BundleLimitError):  # the zoo passes its own limit down
        saved["zoo"].load("zoo/classifier/cbm", max_bytes=1000)


@pytest.mark.parametrize("fmt", ["cbm", "json"])
@pytest.mark.parametrize("name,estimator,loss", [
    ("classifier", "CatBoostRanker", "Logloss"), ("classifier", "CatBoostRegressor", "Logloss"),
    ("multiclass", "CatBoostRanker", "MultiClass"), ("regressor", "CatBoostClassifier", "RMSE"),
])
def test_an_estimator_that_does_not_serve_the_models_loss_is_refused(saved, tmp_path, fmt,
                                                                     name, estimator, loss):
    payload = tmp_path / f"model.{fmt}"
    saved["models"][name].save_model(str(payload), format=fmt)
    honest = type(saved["models"][name]).__name__
    assert type(adapter.alphazoo_load(load_request(payload, fmt, honest))).__name__ == honest
    with pytest.raises(alphazoo.BundleIntegrityError,
                       match=f"names the estimator {estimator}, .* the loss '{loss}'"):
        adapter.alphazoo_load(load_request(payload, fmt, estimator))
    request = load_request(payload, fmt, honest)
    request.manifest["adapter_data"]["loss_function"] = "Quantile"
    with pytest.raises(alphazoo.BundleIntegrityError, match="records the loss 'Quantile'"):
        adapter.alphazoo_load(request)


@pytest.mark.parametrize("name", ["os.system", "CatBoostBase", None])
def test_loader_builds_only_listed_estimators(saved, tmp_path, name):
    payload = tmp_path / "model.cbm"
    payload.write_bytes(crafted_cbm(saved, tmp_path))
    with pytest.raises(alphazoo.BundleIntegrityError, match="holds one of"):
        adapter.alphazoo_load(load_request(payload, estimator=name))


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
        entry = {"type": type(model).__name__,
                 "predict": np.asarray(model.predict(rows)).tolist()}
        if hasattr(model, "predict_proba"):
            entry["proba"] = np.asarray(model.predict_proba(rows), dtype=float).tolist()
        if hasattr(model, "save_model"):
            model.save_model(str(out / (key.replace("/", "-") + ".json")), format="json")
        result[key] = entry
    (out / "result.json").write_text(json.dumps(result))
    """
)


@pytest.mark.slow
def test_every_bundle_loads_in_a_fresh_process(saved, data, tmp_path):
    rows = tmp_path / "rows.npy"
    np.save(rows, data["X_new"])
    out = tmp_path / "out"
    out.mkdir()
    run_python(FRESH_CHILD, str(saved["store_dir"]), str(rows), str(out), cwd=tmp_path)
    result = json.loads((out / "result.json").read_text())
    assert set(result) == {f"zoo/{n}/{f}" for n in MODELS for f in FORMATS}
    for name in MODELS:
        model = saved["models"][name]
        expected = np.asarray(model.predict(data["X_new"]))
        for fmt in ("cbm", "pickle"):
            key = f"zoo/{name}/{fmt}"
            child = result[key]
            assert child["type"] == type(model).__name__
            written = json.loads((out / f"zoo-{name}-{fmt}.json").read_text())
            written.pop("model_info")
            assert written == trees(model, tmp_path)
            assert np.array_equal(np.asarray(child["predict"], dtype=expected.dtype), expected)
            if "proba" in child:
                assert np.array_equal(np.asarray(child["proba"]), model.predict_proba(
                    data["X_new"]))
        assert result[f"zoo/{name}/onnx"]["type"] == "OnnxPredictor"


BLOCKED_CHILD = blocking_prelude("catboost", "sklearn") + textwrap.dedent(
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
    try:  # the block is real: a cbm bundle needs catboost
        zoo.load("zoo/classifier/cbm")
    except ImportError as exc:
        result["cbm_refused"] = str(exc)
    result["loaded"] = sorted(name for name in sys.modules if name.partition(".")[0] in _BLOCKED)
    with open(out, "w") as handle:
        json.dump(result, handle)
    """
)


@pytest.mark.slow
def test_onnx_bundles_predict_without_catboost(saved, data, tmp_path):
    rows = tmp_path / "rows.npy"
    np.save(rows, data["X_new"])
    out = tmp_path / "out.json"
    run_python(BLOCKED_CHILD, str(saved["store_dir"]), str(rows), str(out), cwd=tmp_path)
    result = json.loads(out.read_text())
    assert result.pop("loaded") == []
    assert "needs catboost" in result.pop("cbm_refused")
    assert set(result) == {f"zoo/{name}/onnx" for name in MODELS}
    X = data["X_new"]
    for name in MODELS:
        model, child = saved["models"][name], result[f"zoo/{name}/onnx"]
        assert child["type"] == "OnnxPredictor"
        native = outputs(model, X)
        if name == "regressor":
            np.testing.assert_allclose(child["predict"], native["predict"], rtol=1e-5, atol=1e-6)
            continue
        labels = native.get("label", native["predict"]).ravel()
        assert np.array_equal(np.asarray(child["predict"]), labels), name
        np.testing.assert_allclose(np.asarray(child["proba"]), native["proba"], atol=1e-6, rtol=0)


def test_import_and_discovery_import_no_catboost(tmp_path):
    code = ("import sys, alphazoo; zoo = alphazoo.Zoo(alphazoo.ObjectStore('store')); "
            "formats = [s.name for s in zoo.formats() if s.adapter == 'catboost']; "
            "models = [s.name for s in zoo.models() if s.library == 'catboost']; "
            "assert formats == ['cbm', 'json', 'onnx', 'pickle'], formats; "
            "assert models == ['catboost_classifier', 'catboost_regressor'], models; "
            "heavy = [m for m in ('catboost', 'onnx', 'onnxruntime', 'sklearn') "
            "if m in sys.modules]; assert not heavy, heavy")
    run_python(code, cwd=tmp_path)


# -- the conformance kit -------------------------------------------------------------------------
@pytest.mark.slow
@pytest.mark.parametrize("model", ["regressor", "classifier"])
def test_the_adapter_passes_the_conformance_kit_in_every_format(data, monkeypatch, model):
    from alphazoo.testing import CHECK_NAMES, check_adapter

    monkeypatch.delenv("ALPHAZOO_SIGNING_KEY", raising=False)
    X, y = (data["X_reg"], data["y_reg"]) if model == "regressor" else (data["X"], data["y"])
    report = check_adapter(
        "alphazoo.adapters.catboost",
        lambda zoo: zoo.train(zoo.build(f"catboost_{model}", iterations=20), X, y), X, y,
        library_modules=("catboost",),
        foreign_models=[_sklearn_model(X, y)],
        tolerances={"json": (JSON_TOLERANCE, JSON_TOLERANCE)},
    )
    assert report.checks == list(CHECK_NAMES) and report.skipped == {}
    assert report.adapter == "catboost" and report.formats == FORMATS


def _sklearn_model(X: np.ndarray, y: np.ndarray) -> Any:
    """A scikit-learn estimator the catboost adapter must decline (skipped without sklearn)."""
    linear_model = pytest.importorskip("sklearn.linear_model")
    return linear_model.LinearRegression().fit(X, y)

