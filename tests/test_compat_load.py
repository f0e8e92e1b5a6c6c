"""Load-time version checks: bundles saved under other library versions.

The main case is real: a second virtual environment with an older scikit-learn (1.7) saves
bundles that this environment (scikit-learn 1.9) loads. Cases no installable release can
produce here (a major version apart, an ONNX opset newer than onnxruntime) rewrite the manifest
of a real bundle and pack it again, as a bundle from that environment would be.
"""

from __future__ import annotations

import json
import site
import subprocess
import sys
import sysconfig
import warnings
from pathlib import Path

import numpy as np
import pytest
from packaging.version import Version

import alphazoo
from alphazoo.bundle import read_bundle, write_bundle
from alphazoo.compat.bundles import check_bundle_versions, onnxruntime_max_opset
from alphazoo.compat.installed import installed_version

# Trains real models or starts real processes and servers: deselect with -m 'not slow'.
pytestmark = pytest.mark.slow

OLD_SKLEARN = "1.7.2"

SAVE_IN_OLD_ENV = '''
import json, sys
import numpy as np
import sklearn
import alphazoo
from alphazoo.datasets import load_prices
from alphazoo.example_features import make_features

store = sys.argv[1]
X, y, _ = make_features(load_prices())
zoo = alphazoo.Zoo(store)
model = zoo.train(zoo.build("random_forest", n_estimators=20), X[:600], y[:600])
for fmt in ("pickle", "skops", "onnx"):
    zoo.save(model, f"old/rf-{fmt}", format=fmt)
np.save(sys.argv[2], model.predict_proba(X[600:700]))
print(json.dumps({"sklearn": sklearn.__version__}))
'''


def sharing_venv(root: Path, *packages: str) -> str:
    """A new virtual environment that has ``packages`` of its own and, behind them, every
    package of the environment running the tests; returns its python.

    ``--system-site-packages`` would expose the base interpreter's packages, not this one's,
    and in a venv (as CI runs) the base has none of the project's dependencies. So the new
    venv gets its own packages first, then a ``.pth`` that adds this environment's site
    folders after its own: its packages win, everything else (numpy, skops, alphazoo) is this
    environment's, as after a partial upgrade.
    """
    venv = root / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300)
    python = str(venv / "bin" / "python")
    install = subprocess.run(
        [python, "-m", "pip", "install", "--quiet", "--no-deps", "--disable-pip-version-check",
         *packages], capture_output=True, text=True, timeout=1800)
    assert install.returncode == 0, install.stderr
    own = subprocess.run(
        [python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True, text=True, check=True, timeout=300).stdout.strip()
    # Every site folder this interpreter reads: its own, and the base's too when it is itself
    # a venv with --system-site-packages.
    shared = dict.fromkeys([*site.getsitepackages(), sysconfig.get_paths()["purelib"],
                            sysconfig.get_paths()["platlib"]])
    # Processed after the venv's own packages; addsitedir also runs this environment's .pth
    # files, which is how an editable alphazoo is found.
    Path(own, "zz_shared_with_tests.pth").write_text(
        "".join(f"import site; site.addsitedir({path!r})\n" for path in shared))
    return python


@pytest.fixture(scope="module")
def old_env_bundles(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """Bundles saved by a real second virtual environment with scikit-learn 1.7."""
    root = tmp_path_factory.mktemp("old-sklearn")
    python = sharing_venv(root, f"scikit-learn=={OLD_SKLEARN}")
    script = root / "save.py"
    script.write_text(SAVE_IN_OLD_ENV)
    store, expected = root / "store", root / "expected.npy"
    saved = subprocess.run([python, str(script), str(store), str(expected)],
                           capture_output=True, text=True, timeout=1800)
    assert saved.returncode == 0, saved.stderr
    assert json.loads(saved.stdout.splitlines()[-1])["sklearn"] == OLD_SKLEARN
    return {"store": store, "expected": np.load(expected)}


@pytest.fixture(scope="module")
def rows() -> np.ndarray:
    from alphazoo.datasets import load_prices
    from alphazoo.example_features import make_features

    X, _, _ = make_features(load_prices())
    return X[600:700]


def test_old_bundles_record_the_old_version(old_env_bundles):
    zoo = alphazoo.Zoo(old_env_bundles["store"])
    assert zoo.inspect("old/rf-pickle")["libraries"]["scikit-learn"] == OLD_SKLEARN
    assert installed_version("scikit-learn") != OLD_SKLEARN


def test_pickle_from_another_minor_version_is_refused(old_env_bundles):
    zoo = alphazoo.Zoo(old_env_bundles["store"])
    with pytest.raises(alphazoo.IncompatibleVersionError) as error:
        zoo.load("old/rf-pickle", trusted=True)
    message = str(error.value)
    assert OLD_SKLEARN in message and installed_version("scikit-learn") in message
    assert "scikit-learn" in message and "allow_version_mismatch=True" in message
    assert f"pip install 'scikit-learn=={OLD_SKLEARN}'" in message
    assert (error.value.library, error.value.saved) == ("scikit-learn", OLD_SKLEARN)


def test_allow_version_mismatch_loads_the_pickle_with_a_warning(old_env_bundles, rows):
    from sklearn.exceptions import InconsistentVersionWarning

    zoo = alphazoo.Zoo(old_env_bundles["store"])
    with pytest.warns(alphazoo.VersionMismatchWarning, match="scikit-learn") as caught:
        # scikit-learn's own warning when unpickling another version's estimator.
        warnings.simplefilter("ignore", InconsistentVersionWarning)
        model = zoo.load("old/rf-pickle", trusted=True, allow_version_mismatch=True)
    mismatches = [w for w in caught if issubclass(w.category, alphazoo.VersionMismatchWarning)]
    assert any(Path(w.filename).name == Path(__file__).name for w in mismatches)
    # The caller already passed the flag: the warning says what was done, not to pass it.
    message = str(mismatches[0].message)
    assert "allow_version_mismatch=True" in message and "to try anyway" not in message
    assert OLD_SKLEARN in message
    np.testing.assert_array_equal(model.predict_proba(rows), old_env_bundles["expected"])


def test_trust_is_still_required_when_versions_are_allowed(old_env_bundles):
    zoo = alphazoo.Zoo(old_env_bundles["store"])
    with pytest.raises(alphazoo.UntrustedModelError):
        zoo.load("old/rf-pickle", allow_version_mismatch=True)


@pytest.mark.parametrize("fmt", ["skops", "onnx"])
def test_safe_formats_load_across_minor_versions_silently(old_env_bundles, rows, fmt):
    from sklearn.exceptions import InconsistentVersionWarning

    zoo = alphazoo.Zoo(old_env_bundles["store"])
    with warnings.catch_warnings():
        warnings.simplefilter("error", alphazoo.VersionMismatchWarning)
        # scikit-learn's own note on estimators from 1.7 (skops restores them through
        # __setstate__); alphazoo itself has nothing to warn about within a major version.
        warnings.simplefilter("ignore", InconsistentVersionWarning)
        model = zoo.load(f"old/rf-{fmt}")
    np.testing.assert_allclose(model.predict_proba(rows), old_env_bundles["expected"],
                               atol=1e-5 if fmt == "onnx" else 0)


# -- other versions, recorded into real bundles ----------------------------------------------
def _rewrite(zoo: alphazoo.Zoo, key: str, new_key: str, tmp_path: Path, **changes) -> None:
    """Pack the bundle under ``key`` again under ``new_key`` with manifest ``changes``."""
    tmp_path.mkdir(parents=True, exist_ok=True)
    opened = read_bundle(zoo.store, key, tmp_path)
    manifest = dict(opened.manifest)
    for field, value in changes.items():
        if isinstance(value, dict):
            manifest[field] = {**(manifest.get(field) or {}), **value}
        else:
            manifest[field] = value
    manifest["key"] = new_key
    for name in ("protocol", "files", "signature"):
        manifest.pop(name)
    write_bundle(zoo.store, new_key, manifest, tmp_path, list(opened.files))


@pytest.fixture(scope="module")
def saved(tmp_path_factory) -> alphazoo.Zoo:
    from alphazoo.datasets import load_prices
    from alphazoo.example_features import make_features

    X, y, _ = make_features(load_prices())
    zoo = alphazoo.Zoo(tmp_path_factory.mktemp("store"))
    model = zoo.train(zoo.build("random_forest", n_estimators=10), X[:500], y[:500])
    for fmt in ("skops", "pickle", "onnx"):
        zoo.save(model, f"rf/{fmt}", format=fmt)
    return zoo


def test_a_major_version_apart_warns_for_safe_formats(saved, tmp_path):
    _rewrite(saved, "rf/skops", "rf/skops-0.24", tmp_path, libraries={"scikit-learn": "0.24.2"})
    with pytest.warns(alphazoo.VersionMismatchWarning, match=r"scikit-learn 0\.24\.2"):
        saved.load("rf/skops-0.24")


def test_numpy_minor_differences_do_not_stop_a_pickle(saved, tmp_path):
    # numpy does not unpickle the model (scikit-learn does): only a major difference warns.
    numpy = installed_version("numpy")
    major = int(numpy.split(".")[0])
    _rewrite(saved, "rf/pickle", "rf/pickle-np", tmp_path, libraries={"numpy": f"{major}.0.0"})
    with warnings.catch_warnings():
        warnings.simplefilter("error", alphazoo.VersionMismatchWarning)
        saved.load("rf/pickle-np", trusted=True)
    _rewrite(saved, "rf/pickle", "rf/pickle-np1", tmp_path / "2",
             libraries={"numpy": f"{major - 1}.26.4"})
    with pytest.warns(alphazoo.VersionMismatchWarning, match="numpy"):
        saved.load("rf/pickle-np1", trusted=True)


def test_a_pickle_that_records_no_versions_warns(saved, tmp_path):
    # A bundle from a plugin that does not fill SavedPayload.libraries: nothing to compare.
    _rewrite(saved, "rf/pickle", "rf/pickle-unrecorded", tmp_path, libraries=None)
    with pytest.warns(alphazoo.VersionMismatchWarning,
                      match="does not record which scikit-learn version"):
        saved.load("rf/pickle-unrecorded", trusted=True)


def test_onnx_ignores_converter_versions(saved, tmp_path):
    _rewrite(saved, "rf/onnx", "rf/onnx-old-converter", tmp_path,
             libraries={"skl2onnx": "0.1.0", "scikit-learn": "0.20.0"})
    with warnings.catch_warnings():
        warnings.simplefilter("error", alphazoo.VersionMismatchWarning)
        saved.load("rf/onnx-old-converter")


def test_onnx_opset_newer_than_the_runtime_is_refused(saved, tmp_path):
    limit = onnxruntime_max_opset()
    _rewrite(saved, "rf/onnx", "rf/onnx-future", tmp_path,
             adapter_data={"opset": {"ai.onnx": limit + 1, "ai.onnx.ml": 1}})
    with pytest.raises(alphazoo.IncompatibleVersionError, match=f"opset {limit + 1}"):
        saved.load("rf/onnx-future", allow_version_mismatch=True)


def test_onnxruntime_max_opset_is_what_onnxruntime_accepts():
    import onnxruntime
    from onnx import TensorProto, helper

    limit = onnxruntime_max_opset()

    def accepts(opset: int) -> bool:
        node = helper.make_node("Relu", ["x"], ["y"])
        info = helper.make_tensor_value_info
        graph = helper.make_graph([node], "g", [info("x", TensorProto.FLOAT, [1])],
                                  [info("y", TensorProto.FLOAT, [1])])
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
        model.ir_version = 8
        try:
            onnxruntime.InferenceSession(model.SerializeToString())
        except Exception:
            return False
        return True

    assert limit is not None and limit >= 15
    assert accepts(limit) and not accepts(limit + 1)


@pytest.mark.parametrize("fmt,saved_v,installed_v,severity", [
    ("pickle", "1.7.2", "1.9.1", "error"),
    ("pickle", "1.9.0", "1.9.1", None),
    ("skops", "1.7.2", "1.9.1", None),
    ("skops", "0.24.2", "1.9.1", "warning"),
    ("json", "0.3.2", "0.4.0", "warning"),   # 0.x: the minor is the major
    ("json", "0.3.2", "0.3.3", None),
    ("pickle", "0.3.2", "0.4.0", "error"),
    ("pickle", "2.13.0+cpu", "2.13.1", None),   # local tags do not make another minor
    ("pickle", "1.9.1.post1", "1.9.1", None),
    ("pickle", "1.10.0rc1", "1.9.1", "error"),
    # Not PEP 440: nothing to compare by, so a pickle is refused and other formats warn.
    ("pickle", "custom-build", "1.9.1", "error"),
    ("skops", "custom-build", "1.9.1", "warning"),
])
def test_policy_by_format(fmt, saved_v, installed_v, severity):
    manifest = {"key": "k", "format": fmt, "libraries": {"lib": saved_v}}
    findings = check_bundle_versions(manifest, ("lib",), installed={"lib": installed_v})
    assert [f.severity for f in findings] == ([severity] if severity else [])
    if severity == "error":
        assert f"pip install 'lib=={saved_v}'" in findings[0].message


def test_any_unsafe_format_gets_the_pickle_policy():
    # A plugin's unsafe format need not be called "pickle" (joblib, cloudpickle...).
    manifest = {"key": "k", "format": "joblib", "libraries": {"lib": "1.7.2"}}
    assert check_bundle_versions(manifest, ("lib",), installed={"lib": "1.9.1"}) == []
    findings = check_bundle_versions(manifest, ("lib",), pickled=True,
                                     installed={"lib": "1.9.1"})
    assert [f.severity for f in findings] == ["error"]


def test_malformed_manifests_do_not_crash_the_check():
    odd = [{"key": "k", "format": "skops", "libraries": ["scikit-learn"]},
           {"key": "k", "format": "onnx", "adapter_data": {"opset": {"ai.onnx": "new"}}},
           {"key": "k", "format": "onnx", "adapter_data": {"opset": 21}}]
    for manifest in odd:
        assert check_bundle_versions(manifest, ("onnxruntime",), installed={}) == []


class _JoblibPlugin:
    """A third-party adapter whose unsafe format is not named "pickle"."""

    @alphazoo.hookimpl
    def alphazoo_formats(self):
        return [alphazoo.FormatSpec("joblib", "toy", False, "pickled with joblib", True,
                                    ("scikit-learn",))]

    @alphazoo.hookimpl
    def alphazoo_save(self, request):
        if not isinstance(request.model, dict):
            return None
        import pickle

        (request.directory / "model.pkl").write_bytes(pickle.dumps(request.model))
        return alphazoo.SavedPayload("toy", "joblib", ["model.pkl"], "dict",
                                     libraries={"scikit-learn": "1.7.2"})

    @alphazoo.hookimpl
    def alphazoo_load(self, request):
        if request.manifest.get("adapter") != "toy":
            return None
        import pickle

        return pickle.loads(request.files["model.pkl"].read_bytes())


def test_the_host_applies_the_pickle_policy_to_an_unsafe_plugin_format(tmp_path):
    zoo = alphazoo.Zoo(tmp_path, plugins=[_JoblibPlugin()], discover=False)
    zoo.save({"w": 1}, "toy/model")
    with pytest.raises(alphazoo.IncompatibleVersionError, match="pickle saved with scikit-learn"):
        zoo.load("toy/model", trusted=True)
    with pytest.warns(alphazoo.VersionMismatchWarning, match="scikit-learn 1.7.2"):
        assert zoo.load("toy/model", trusted=True, allow_version_mismatch=True) == {"w": 1}


# -- a silent format break: xgboost 3.1+ JSON read by xgboost 3.0 -----------------------------
OLD_XGBOOST = "3.0.5"  # QuantConnect's image, and its scikit-learn: xgboost 3.0's estimator
OLD_XGBOOST_SKLEARN = "1.6.1"  # wrappers predate the tags API that scikit-learn 1.8 requires

READ_IN_OLD_XGBOOST = '''
import json, sys, warnings
import numpy as np
import xgboost
import alphazoo

store, rows = sys.argv[1], np.load(sys.argv[2])
zoo = alphazoo.Zoo(store)
out = {"xgboost": xgboost.__version__}
for fmt in ("json", "ubj"):
    try:
        zoo.load(f"xgb/{fmt}")
        out[fmt] = "loaded"
    except alphazoo.IncompatibleVersionError as exc:
        out[fmt] = str(exc)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model = zoo.load(f"xgb/{fmt}", allow_version_mismatch=True)
    out[fmt + "_warned"] = any(issubclass(w.category, alphazoo.VersionMismatchWarning)
                               for w in caught)
    out[fmt + "_proba"] = model.predict_proba(rows)[:, 1].tolist()
print(json.dumps(out))
'''


def test_xgboost_31_json_is_refused_by_xgboost_30_which_would_misread_it(tmp_path):
    import xgboost

    from alphazoo.datasets import load_prices
    from alphazoo.example_features import make_features

    if Version(xgboost.__version__) < Version("3.1"):
        pytest.skip(f"the bundles must come from xgboost 3.1 or later; {xgboost.__version__} "
                    "is installed")
    X, y, _ = make_features(load_prices())
    zoo = alphazoo.Zoo(tmp_path / "store")
    model = zoo.train(zoo.build("xgboost_classifier", n_estimators=20), X[:600], y[:600])
    for fmt in ("json", "ubj"):
        zoo.save(model, f"xgb/{fmt}", format=fmt)
    rows = tmp_path / "rows.npy"
    np.save(rows, X[600:700])
    python = sharing_venv(tmp_path, f"xgboost=={OLD_XGBOOST}",
                          f"scikit-learn=={OLD_XGBOOST_SKLEARN}")
    script = tmp_path / "read.py"
    script.write_text(READ_IN_OLD_XGBOOST)
    done = subprocess.run([python, str(script), str(tmp_path / "store"), str(rows)],
                          capture_output=True, text=True, timeout=1800)
    assert done.returncode == 0, done.stderr[-4000:]
    out = json.loads(done.stdout.splitlines()[-1])
    assert out["xgboost"] == OLD_XGBOOST
    expected = model.predict_proba(X[600:700])[:, 1]
    for fmt in ("json", "ubj"):
        # Refused by default, naming both versions and the fix...
        assert f"xgboost {xgboost.__version__}" in out[fmt] and OLD_XGBOOST in out[fmt]
        assert "pip install 'xgboost>=3.1'" in out[fmt] and "intercept" in out[fmt]
        # ...because what the old release reads is not the model: the refusal is not caution.
        assert out[f"{fmt}_warned"]
        assert np.max(np.abs(np.array(out[f"{fmt}_proba"]) - expected)) > 1e-3


def test_format_breaks_apply_only_across_the_boundary():
    manifest = {"key": "m", "format": "json", "libraries": {"xgboost": "3.2.0"}}
    findings = check_bundle_versions(manifest, ["xgboost"], installed={"xgboost": "3.0.5"})
    assert [(f.library, f.severity) for f in findings] == [("xgboost", "error")]
    for installed in ("3.1.0", "3.2.1"):
        assert check_bundle_versions(manifest, ["xgboost"], installed={"xgboost": installed}) == []
    # Below the boundary on both sides: only the usual rule (a major apart warns).
    older = {**manifest, "libraries": {"xgboost": "3.0.5"}}
    findings = check_bundle_versions(older, ["xgboost"], installed={"xgboost": "2.1.4"})
    assert [f.severity for f in findings] == ["warning"]
    onnx = {**manifest, "format": "onnx"}
    assert check_bundle_versions(onnx, ["onnxruntime"], installed={"xgboost": "3.0.5",
                                                                    "onnxruntime": None}) == []
