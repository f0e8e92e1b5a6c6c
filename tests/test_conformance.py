"""The adapter conformance kit (alphazoo.testing.check_adapter): the built-in adapters, the
zoo and the example plugin pass it; toy adapters broken one way each fail it, at the check
that names what they break."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from _child import HANG_TIMEOUT
from conformance_plugins import Toy

import alphazoo
from alphazoo import AdapterCheckError, AlphazooError, UnsupportedFormatError
from alphazoo.testing import CHECK_NAMES, AdapterCheckReport, check_adapter

EXAMPLE_DIST = Path(__file__).parent / "plugins" / "alphazoo-example"


@pytest.fixture(scope="module")
def data() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(3)
    X = rng.normal(size=(48, 4)).astype(np.float32)
    y = X @ np.array([1.0, -2.0, 0.5, 0.0], np.float32) + 0.1 * rng.normal(size=48)
    return X, y.astype(np.float32)


def _toy(X: np.ndarray, y: np.ndarray) -> Any:
    return lambda: Toy().fit(X, y)


# -- a conforming plugin passes, and says what it did ---------------------------------------------
def test_a_conforming_toy_adapter_passes_every_check(data) -> None:
    X, y = data
    report = check_adapter("conformance_plugins:good", _toy(X, y), X, y)
    assert isinstance(report, AdapterCheckReport)
    assert report.checks == list(CHECK_NAMES)
    assert report.adapter == "toy" and report.formats == ["toy-json", "toy-pickle"]
    assert report.skipped == {"without_library": "no library_modules given"}
    assert report.seconds > 0 and set(report.timings) == set(CHECK_NAMES)
    assert str(report).startswith("conformance_plugins:good: 6 checks passed in ")
    assert "formats toy-json, toy-pickle" in str(report)


@pytest.mark.parametrize("check", CHECK_NAMES)
def test_each_check_runs_alone_as_its_own_test_item(data, check) -> None:
    X, y = data
    report = check_adapter("conformance_plugins:good", _toy(X, y), X, checks=[check])
    assert report.checks == [check]


def test_plugins_are_named_as_modules_or_objects_in_them(data) -> None:
    X, y = data
    import conformance_plugins

    # A dotted object path, and a module object (standing for its name): the module itself
    # has no hooks, so the kit finds no formats in it.
    report = check_adapter("conformance_plugins.good", _toy(X, y), X,
                           checks=["formats", "round_trip"])
    assert report.formats == ["toy-json", "toy-pickle"]
    with pytest.raises(AdapterCheckError, match="^formats: expected alphazoo_formats to "
                                                "declare at least one FormatSpec"):
        check_adapter(conformance_plugins, _toy(X, y), X, checks=["formats"])


def test_the_kit_error_is_an_alphazoo_error_and_an_assertion() -> None:
    assert issubclass(AdapterCheckError, AlphazooError)
    assert issubclass(AdapterCheckError, AssertionError)
    error = AdapterCheckError("trust", "expected X; saw Y", "pkg.plugin")
    assert str(error) == "trust: expected X; saw Y [plugin pkg.plugin]"
    assert (error.check, error.problem, error.plugin) == ("trust", "expected X; saw Y",
                                                          "pkg.plugin")


def test_bad_arguments_are_refused_before_any_check(data) -> None:
    X, y = data
    with pytest.raises(ValueError, match="unknown checks 'speed'.*formats, ownership"):
        check_adapter("conformance_plugins:good", _toy(X, y), X, checks=["speed"])
    with pytest.raises(UnsupportedFormatError, match="'toy-onnx'.*toy-json, toy-pickle"):
        check_adapter("conformance_plugins:good", _toy(X, y), X, formats=["toy-onnx"],
                      checks=["round_trip"])
    with pytest.raises(TypeError, match="import path"):
        check_adapter(Toy(), _toy(X, y), X)  # type: ignore[arg-type]


# -- broken plugins fail at the check that names what they break ----------------------------------
def test_two_default_formats_fail_the_formats_check(data) -> None:
    X, y = data
    with pytest.raises(AdapterCheckError, match=r"^formats: expected exactly one default "
                                                r"format; saw 2: toy-json, toy-pickle") as info:
        check_adapter("conformance_plugins:two_defaults", _toy(X, y), X)
    assert info.value.check == "formats"


def test_an_adapter_that_claims_every_object_fails_ownership(data) -> None:
    X, y = data
    with pytest.raises(AdapterCheckError, match=r"^ownership: expected the plugin to decline a "
                                                r"foreign builtins\.object; adapter 'toy' saved "
                                                r"it in format 'toy-json'"):
        check_adapter("conformance_plugins:claims_everything", _toy(X, y), X)


def test_caller_given_foreign_models_are_checked_too(data) -> None:
    X, y = data

    class Other:  # a model of some other library, which the toy adapter does not know
        pass

    # The well-behaved adapter declines it...
    check_adapter("conformance_plugins:good", _toy(X, y), X, foreign_models=[Other()],
                  checks=["ownership"])
    # ...and a caller-given model a plugin wrongly takes is named (Toy is the good plugin's
    # own class, standing in for another library's model it must not claim).
    with pytest.raises(AdapterCheckError, match=r"^ownership: .*foreign "
                                                r"conformance_plugins\.Toy"):
        check_adapter("conformance_plugins:good", _toy(X, y), X, foreign_models=[Toy()],
                      checks=["ownership"])


def test_declared_model_types_must_cover_the_model(data) -> None:
    X, y = data
    report = check_adapter("conformance_plugins:declares_its_class", _toy(X, y), X,
                           checks=["ownership"])
    assert report.checks == ["ownership"]
    # Whether the host then never asks the adapter to save the model, or the kit sees the
    # declaration miss it, the ownership check is the one that fails.
    with pytest.raises(AdapterCheckError, match=r"^ownership: expected "):
        check_adapter("conformance_plugins:declares_another_class", _toy(X, y), X,
                      checks=["ownership"])


def test_a_load_that_predicts_differently_fails_the_round_trip(data) -> None:
    X, y = data
    with pytest.raises(AdapterCheckError, match=r"^round_trip: format 'toy-json' loaded in a "
                                                r"fresh interpreter: expected the in-process "
                                                r"model's predictions \(rtol=0, atol=0\); "
                                                r"48 of 48 values differ"):
        check_adapter("conformance_plugins:drifting", _toy(X, y), X)
    # A tolerance the adapter documents lets it pass; the offset is 1e-3 per coefficient.
    report = check_adapter("conformance_plugins:drifting", _toy(X, y), X,
                           tolerances={"toy-json": (0.0, 0.05)}, checks=["round_trip"])
    assert report.checks == ["round_trip"]


def test_a_pickle_format_declared_safe_fails_the_trust_check(data) -> None:
    X, y = data
    with pytest.raises(AdapterCheckError, match=r"^trust: format 'toy-pickle' is declared "
                                                r"safe=True, but loading it unpickled "
                                                r"conformance_plugins\.Toy"):
        check_adapter("conformance_plugins:pickle_declared_safe", _toy(X, y), X)


@pytest.mark.slow
def test_a_portable_format_that_needs_the_library_fails_without_library(data) -> None:
    X, y = data
    with pytest.raises(AdapterCheckError, match=r"^without_library: format 'toy-portable' "
                                                r"\(load_requires \[\]\) loaded where sklearn "
                                                r"cannot be imported: expected it to load and "
                                                r"predict; loading raised ImportError: sklearn "
                                                r"is blocked"):
        check_adapter("conformance_plugins:portable_needs_sklearn", _toy(X, y), X,
                      library_modules=("sklearn",))


@pytest.mark.slow
def test_a_plugin_importing_its_library_at_import_fails_light_import(data) -> None:
    X, y = data
    with pytest.raises(AdapterCheckError, match=r"^light_import: expected importing "
                                                r"conformance_heavy_plugin:adapter .*; it "
                                                r"imported sklearn"):
        check_adapter("conformance_heavy_plugin:adapter", _toy(X, y), X)


# -- the built-in adapters, the zoo and the example plugin pass -----------------------------------
def _sklearn(X, y):
    from sklearn.linear_model import LinearRegression

    return LinearRegression().fit(X, y)


def _xgboost(X, y):
    import xgboost

    return xgboost.XGBRegressor(n_estimators=4, max_depth=2).fit(X, y)


def _lightgbm(X, y):
    import lightgbm

    return lightgbm.LGBMRegressor(n_estimators=4, num_leaves=4, min_child_samples=5,
                                  verbose=-1).fit(X, y)


def _gbdt(X, y):
    from alphazoo.contrib.gbdt import LightGBMGBDT

    # binary with several trees: the adapter's ONNX export refuses qlib's "mse" objective name
    # and one-tree binary models (see test_contrib_gbdt.py's xfails).
    return LightGBMGBDT(loss="binary", num_boost_round=8, early_stopping_rounds=0,
                        num_threads=1).fit(X, y)


def _xgboost_gbdt(X, y):
    from alphazoo.contrib.xgboost_gbdt import XGBoostGBDT

    return XGBoostGBDT(n_estimators=8).fit(X, y)


ADAPTERS = {
    "sklearn": dict(plugin="alphazoo.adapters.sklearn", make=lambda X, y: lambda: _sklearn(X, y),
                    library_modules=("sklearn",)),
    # xgboost models are scikit-learn estimators: the xgboost adapter must still decline
    # scikit-learn's own models.
    "xgboost": dict(plugin="alphazoo.adapters.xgboost", make=lambda X, y: lambda: _xgboost(X, y),
                    library_modules=("xgboost",),
                    foreign_models=lambda X, y: [_sklearn(X, y)]),
    # LightGBM's wrappers are scikit-learn estimators too: scikit-learn's own models stay the
    # sklearn adapter's.
    "lightgbm": dict(plugin="alphazoo.adapters.lightgbm",
                     make=lambda X, y: lambda: _lightgbm(X, y),
                     library_modules=("lightgbm",),
                     foreign_models=lambda X, y: [_sklearn(X, y)]),
    "torch": dict(plugin="alphazoo.adapters.torch",
                  make=lambda X, y: lambda zoo: zoo.train(
                      zoo.build("torch_mlp", in_features=4, out_features=1, hidden=(8,)), X, y,
                      epochs=2),
                  library_modules=("torch",),
                  save_options={"onnx": {"exporter": "torchscript"}}),
    "keras": dict(plugin="alphazoo.adapters.keras",
                  make=lambda X, y: lambda zoo: zoo.train(
                      zoo.build("keras_mlp", in_features=4, hidden=(8,)), X, y, epochs=1),
                  library_modules=("keras", "tensorflow")),
    "hmmlearn": dict(plugin="alphazoo.adapters.hmmlearn",
                     make=lambda X, y: lambda zoo: zoo.train(
                         zoo.build("gaussian_hmm", n_components=2, n_iter=5), X),
                     library_modules=("hmmlearn",)),
    # The zoo's plugin declares no formats: its gbdt saves through the lightgbm adapter, its
    # xgboost_gbdt through the xgboost one.
    "contrib-gbdt": dict(plugin="alphazoo.contrib.plugin", make=lambda X, y: lambda: _gbdt(X, y),
                         other_plugins=("alphazoo.adapters.lightgbm",),
                         library_modules=("lightgbm",)),
    "contrib-xgboost_gbdt": dict(plugin="alphazoo.contrib.plugin",
                                 make=lambda X, y: lambda: _xgboost_gbdt(X, y),
                                 other_plugins=("alphazoo.adapters.xgboost",),
                                 library_modules=("xgboost",)),
}
EXPECTED_FORMATS = {
    "sklearn": ["skops", "pickle", "onnx"],
    "xgboost": ["json", "ubj", "pickle", "onnx"],
    "lightgbm": ["text", "pickle", "onnx"],
    "torch": ["json", "safetensors", "pt", "pickle", "onnx"],
    "keras": ["keras", "json", "safetensors", "pickle", "onnx"],
    "hmmlearn": ["json", "pickle"],
    "contrib-gbdt": ["text", "pickle", "onnx"],
    "contrib-xgboost_gbdt": ["json", "ubj", "pickle", "onnx"],
}


@pytest.mark.slow
@pytest.mark.parametrize("name", list(ADAPTERS))
def test_builtin_adapters_and_the_zoo_pass(name, data, monkeypatch) -> None:
    monkeypatch.delenv("ALPHAZOO_SIGNING_KEY", raising=False)
    X, y = data
    case = dict(ADAPTERS[name])
    pytest.importorskip(case["library_modules"][0])
    plugin, make = case.pop("plugin"), case.pop("make")
    if "foreign_models" in case:
        case["foreign_models"] = case["foreign_models"](X, y)
    report = check_adapter(plugin, make(X, y), X, y, **case)
    print(report)
    assert report.checks == list(CHECK_NAMES)
    assert report.formats == EXPECTED_FORMATS[name]
    # Every built-in adapter but hmmlearn has an ONNX format, checked without its library.
    assert ("without_library" in report.skipped) == (name == "hmmlearn")


@pytest.mark.slow
def test_the_example_plugin_passes(data, monkeypatch) -> None:
    X, y = data
    monkeypatch.syspath_prepend(str(EXAMPLE_DIST))  # importable here and in the kit's children
    from alphazoo_example.plugin import MeanForecast

    # The example's JSON format takes Python floats (a numpy float32 mean would not serialize).
    report = check_adapter("alphazoo_example.plugin",
                           lambda: MeanForecast(2.0).fit(X, y.tolist()), X, y)
    assert report.checks == list(CHECK_NAMES)
    assert (report.adapter, report.formats) == ("example", ["mean-json"])


# -- the kit is public but never imported by `import alphazoo` ------------------------------------
def test_the_kit_is_reachable_from_alphazoo_but_not_imported_with_it() -> None:
    code = ("import sys, alphazoo; alphazoo.Zoo; alphazoo.AdapterCheckError; "
            "assert 'alphazoo.testing' not in sys.modules, 'imported eagerly'; "
            "assert alphazoo.testing.check_adapter; "
            # The kit itself imports no ML framework: a plugin's tests pay only for theirs.
            "heavy = [m for m in ('sklearn', 'torch', 'tensorflow', 'xgboost', 'onnxruntime') "
            "if m in sys.modules]; assert not heavy, heavy")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            timeout=HANG_TIMEOUT)
    assert result.returncode == 0, result.stderr
    assert "AdapterCheckError" in alphazoo.__all__
