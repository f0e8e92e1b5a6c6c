"""The quantconnect target: LEAN's image as a named profile, and for one bundle whether it loads
there and why not (`alphazoo inspect --target`, `Zoo.check_target`, `zoo.save(target=...)`,
`alphazoo compat check --target`). Bundles are real ones saved here."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from _child import HANG_TIMEOUT

import alphazoo
from alphazoo import ObjectStore, Zoo
from alphazoo.compat.targets import QUANTCONNECT, TARGETS, target_for, verdict

sklearn = pytest.importorskip("sklearn", reason="needs alphazoo[sklearn]")


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "alphazoo.cli", *args], capture_output=True,
                          text=True, timeout=HANG_TIMEOUT)


@pytest.fixture(scope="module")
def data() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(7)
    X = rng.normal(size=(120, 4)).astype("float32")
    return X, (X[:, 0] + 0.3 * X[:, 1] > 0).astype(int)


@pytest.fixture(scope="module")
def saved(tmp_path_factory, data) -> tuple[Zoo, Path]:
    """One bundle per default format of the installed adapters, plus ONNX."""
    from sklearn.ensemble import RandomForestClassifier

    folder = tmp_path_factory.mktemp("target-store")
    zoo = Zoo(ObjectStore(folder))
    X, y = data
    forest = RandomForestClassifier(n_estimators=4, random_state=0).fit(X, y)
    zoo.save(forest, "rf/default", sample=X[:8])
    zoo.save(forest, "rf/onnx", "onnx", sample=X[:8])
    zoo.save(forest, "rf/pickle", "pickle")
    xgboost = pytest.importorskip("xgboost")
    zoo.save(xgboost.XGBClassifier(n_estimators=4).fit(X, y), "xgb/default")
    hmm = pytest.importorskip("hmmlearn.hmm")
    zoo.save(hmm.GaussianHMM(n_components=2, random_state=0).fit(X), "hmm/default")
    return zoo, folder


def test_the_profile_is_lean_s_image_dated_with_its_source() -> None:
    assert TARGETS["quantconnect"] is QUANTCONNECT is target_for("quantconnect")
    assert "DockerfileLeanFoundation" in QUANTCONNECT.source and QUANTCONNECT.as_of
    pins = QUANTCONNECT.pins
    assert (pins["numpy"], pins["scikit-learn"], pins["xgboost"], pins["onnxruntime"],
            pins["keras"], pins["hmmlearn"]) == ("1.26.4", "1.6.1", "3.0.5", "1.23.2",
                                                  "3.13.0", "0.3.3")
    assert QUANTCONNECT.version_of("skops") is None and QUANTCONNECT.python == "3.11"
    with pytest.raises(ValueError, match="known: quantconnect"):
        target_for("colab")


def test_each_default_format_gets_the_right_verdict(saved) -> None:
    zoo, _ = saved
    skops = zoo.check_target("rf/default", "quantconnect")
    assert zoo.inspect("rf/default")["format"] == "skops"
    assert not skops.loads and any("skops is absent" in r for r in skops.reasons)
    assert skops.instead == "onnx"
    onnx = zoo.check_target("rf/onnx")
    assert onnx.loads and onnx.reasons == ()
    xgb = zoo.check_target("xgb/default")
    assert xgb.loads  # xgboost JSON: 3.x there too
    saved = zoo.inspect("xgb/default")["libraries"]["xgboost"].split(".")
    if (int(saved[0]), int(saved[1])) >= (3, 1):  # base_score as a vector: see the reader
        assert any("base_score" in note and "exported reader" in note for note in xgb.warnings)
    assert zoo.check_target("hmm/default").loads  # hmmlearn JSON, the same 0.3.3
    pickled = zoo.check_target("rf/pickle")
    assert not pickled.loads and "same minor version" in " ".join(pickled.reasons)


def test_an_onnx_opset_above_onnxruntime_1_23_is_refused(saved) -> None:
    zoo, _ = saved
    manifest = zoo.inspect("rf/onnx")
    assert manifest["adapter_data"]["opset"]["ai.onnx"] <= QUANTCONNECT.max_opset
    newer = {**manifest, "adapter_data": {**manifest["adapter_data"],
                                          "opset": {"ai.onnx": QUANTCONNECT.max_opset + 1}}}
    found = verdict(newer, "quantconnect", load_requires=("onnxruntime",))
    assert not found.loads
    assert "onnxruntime 1.23.2" in found.reasons[0] and "opsets up to 23" in found.reasons[0]


def test_save_for_quantconnect_refuses_and_names_a_format_that_loads(data, tmp_path) -> None:
    from sklearn.linear_model import LogisticRegression

    zoo = Zoo(ObjectStore(tmp_path))
    X, y = data
    model = LogisticRegression().fit(X, y)
    with pytest.raises(alphazoo.UnsupportedFormatError,
                       match=r"would not load on quantconnect: .*skops is absent.*format='onnx'"):
        zoo.save(model, "lr", target="quantconnect")
    assert zoo.store.keys() == []  # nothing stored
    manifest = zoo.save(model, "lr", "onnx", target="quantconnect", sample=X[:5])
    assert manifest["format"] == "onnx" and zoo.check_target("lr").loads


@pytest.mark.slow
def test_inspect_target_on_the_command_line(saved) -> None:
    _, folder = saved
    no = cli("inspect", "rf/default", "--target", "quantconnect", "--store", str(folder))
    assert no.returncode == 1
    answer = json.loads(no.stdout)
    assert answer["loads"] is False and answer["instead"] == "onnx"
    yes = cli("inspect", "rf/onnx", "--target", "quantconnect", "--store", str(folder))
    assert yes.returncode == 0 and json.loads(yes.stdout)["loads"] is True


@pytest.mark.slow
def test_compat_check_target_lists_formats_that_load_there() -> None:
    result = cli("compat", "check", "--target", "quantconnect", "--json")
    report = json.loads(result.stdout)
    assert result.returncode == (1 if report["adapters_without_a_format"] else 0)
    rows = {(r["adapter"], r["format"]): r for r in report["formats"]}
    assert rows[("sklearn", "skops")]["loads"] is False
    assert rows[("sklearn", "onnx")]["loads"] is True
    assert "opset is at most 23" in rows[("sklearn", "onnx")]["why"][-1]
    libraries = {r["library"]: r for r in report["libraries"]}
    assert libraries["skops"]["status"] == "absent there"
    assert libraries["onnxruntime"]["there"] == "1.23.2"
    table = cli("compat", "check", "--target", "quantconnect")
    assert "Bundles saved here, loaded on quantconnect" in table.stdout
    unknown = cli("compat", "check", "--target", "nowhere")
    assert unknown.returncode == 2 and "unknown target" in unknown.stderr
