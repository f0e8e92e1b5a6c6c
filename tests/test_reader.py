"""The one-file reader (`alphazoo export-reader`) and `Zoo.load_bytes`.

The reader is exported with the real command and imported from the written file. The done-when
test builds a second virtual environment pinned to the LEAN image's versions, without alphazoo,
and loads there the bundles this environment wrote: predictions must equal the originals.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import venv
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from _child import HANG_TIMEOUT

import alphazoo
from alphazoo import ObjectStore, Zoo
from alphazoo.compat import bundles as compat_bundles
from alphazoo.compat.targets import QUANTCONNECT

pytest.importorskip("sklearn", reason="needs alphazoo[sklearn]")
pytest.importorskip("onnxruntime", reason="needs alphazoo[onnx]")

DATA = Path(__file__).parent / "data"
#: The LEAN image's versions that install on this machine's Python 3.11 (DockerfileLeanFoundation).
LEAN_PINS = ("numpy==1.26.4", "pandas==2.3.3", "scikit-learn==1.6.1", "xgboost==3.0.5",
             "hmmlearn==0.3.3", "onnxruntime==1.23.2")




@pytest.fixture(scope="module")
def data() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(11)
    X = rng.normal(size=(200, 4)).astype("float32")
    return {"X": X, "y": (X[:, 0] - 0.5 * X[:, 2] > 0).astype(int),
            "y_reg": X @ np.array([1.0, -0.5, 0.3, 0.2], dtype="float32"),
            "X_new": rng.normal(size=(25, 4)).astype("float32")}


def _expected(model: Any, X: np.ndarray) -> dict[str, list]:
    out = {"predict": np.asarray(model.predict(X)).tolist()}
    if hasattr(model, "predict_proba"):
        out["predict_proba"] = np.asarray(model.predict_proba(X)).tolist()
    return out


@pytest.fixture(scope="module")
def bundles(tmp_path_factory, data) -> dict[str, Any]:
    """Bundles of scikit-learn, xgboost and hmmlearn models, with the natives' predictions.

    ``cases``: key -> (tolerance, expected); tolerance 0 means bit-equal predictions.
    """
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.linear_model import Ridge

    folder = tmp_path_factory.mktemp("reader-store")
    zoo = Zoo(ObjectStore(folder))
    X, y, X_new = data["X"], data["y"], data["X_new"]
    cases: dict[str, tuple[float, dict[str, list]]] = {}

    def keep(model: Any, key: str, fmt: str, tolerance: float, **options: Any) -> None:
        zoo.save(model, key, fmt, **options)
        cases[key] = (tolerance, _expected(model, X_new))

    forest = RandomForestClassifier(n_estimators=6, random_state=0).fit(X, y)
    keep(forest, "sklearn/forest/onnx", "onnx", 1e-6, sample=X[:20])
    keep(Ridge().fit(X, data["y_reg"]), "sklearn/ridge/onnx", "onnx", 1e-5, sample=X[:20])
    zoo.save(forest, "sklearn/forest/pickle", "pickle")
    zoo.save(forest, "sklearn/forest/skops")
    xgboost = pytest.importorskip("xgboost")
    classifier = xgboost.XGBClassifier(n_estimators=8, max_depth=3).fit(X, y)
    for fmt in ("json", "ubj"):
        keep(classifier, f"xgboost/clf/{fmt}", fmt, 0.0)
    keep(classifier, "xgboost/clf/onnx", "onnx", 1e-6, sample=X[:20])
    keep(xgboost.XGBRegressor(n_estimators=8).fit(X, data["y_reg"]), "xgboost/reg/ubj", "ubj",
         0.0)
    three = np.digitize(X[:, 0], [-0.4, 0.4])
    # Per-class intercepts (xgboost 3.1+) are rebuilt on an older xgboost: float32 rounding.
    keep(xgboost.XGBClassifier(n_estimators=4).fit(X, three), "xgboost/multi/json", "json", 1e-6)
    hmm = pytest.importorskip("hmmlearn.hmm")
    model = hmm.GaussianHMM(n_components=2, covariance_type="full", random_state=0).fit(X)
    keep(model, "hmmlearn/gaussian/json", "json", 0.0)
    return {"folder": folder, "zoo": zoo, "cases": cases}


def assert_matches(got: dict[str, Any], tolerance: float, expected: dict[str, list],
                   key: str) -> None:
    for method, values in expected.items():
        want = np.asarray(values)
        have = np.asarray(got[method])
        if tolerance == 0.0 or want.dtype.kind in "iub":  # labels and native formats: equal
            assert np.array_equal(have.reshape(want.shape), want), (key, method)
        else:  # ONNX runs in float32
            np.testing.assert_allclose(have.reshape(want.shape), want, rtol=tolerance * 10,
                                       atol=tolerance, err_msg=f"{key} {method}")


@pytest.mark.slow
def test_the_exported_reader_gives_the_originals_predictions(reader, bundles, data) -> None:
    store = bundles["zoo"].store
    for key, (tolerance, expected) in bundles["cases"].items():
        model = reader.load(store.read_bytes(key))
        got = {"predict": model.predict(data["X_new"])}
        if "predict_proba" in expected:
            got["predict_proba"] = model.predict_proba(data["X_new"])
        else:
            assert not hasattr(model, "predict_proba"), key
        assert_matches(got, tolerance, expected, key)


def test_the_reader_imports_nothing_heavy(reader_file: Path) -> None:
    code = ("import sys; import alphazoo_reader; heavy = {'numpy', 'onnxruntime', 'xgboost', "
            "'sklearn', 'hmmlearn', 'torch', 'keras', 'tensorflow', 'pandas'}; "
            "print(sorted(heavy & {m.split('.')[0] for m in sys.modules}))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            cwd=reader_file.parent, timeout=HANG_TIMEOUT)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def test_every_protocol_is_read_and_every_changed_byte_refused(reader) -> None:
    raw = (DATA / "protocol1-logreg.onnx.bundle").read_bytes()
    expected = json.loads((DATA / "protocol1-logreg.expected.json").read_text())
    model = reader.load(raw)
    assert model.manifest["protocol"] == 1
    np.testing.assert_allclose(model.predict_proba(np.array(expected["rows"])),
                               expected["predict_proba"], rtol=0, atol=1e-7)
    for offset in range(0, len(raw), 13):
        flipped = bytearray(raw)
        flipped[offset] ^= 0x01
        with pytest.raises(alphazoo.BundleIntegrityError):
            reader.load(bytes(flipped))
    with pytest.raises(alphazoo.BundleIntegrityError, match="truncated"):
        reader.load(raw[:-1])
    with pytest.raises(alphazoo.BundleIntegrityError, match="extended"):
        reader.load(raw + b"\0")


def test_protocol_2_bundles_refuse_changed_bytes_too(reader, bundles) -> None:
    raw = bundles["zoo"].store.read_bytes("xgboost/clf/json")
    assert reader.read_bundle_bytes(raw)[0]["protocol"] == 2
    for offset in list(range(0, 400, 7)) + [len(raw) // 2, len(raw) - 40, len(raw) - 1]:
        flipped = bytearray(raw)
        flipped[offset] ^= 0x10
        with pytest.raises(alphazoo.BundleIntegrityError):
            reader.load(bytes(flipped))


def test_pickle_needs_trust_or_a_verifying_signature(reader, bundles, data, tmp_path) -> None:
    from sklearn.linear_model import LogisticRegression

    store = bundles["zoo"].store
    unsigned = store.read_bytes("sklearn/forest/pickle")
    with pytest.raises(alphazoo.UntrustedModelError, match="runs code"):
        reader.load(unsigned)
    assert reader.load(unsigned, trusted=True).predict(data["X_new"]).shape == (25,)
    zoo = Zoo(ObjectStore(tmp_path))
    model = LogisticRegression().fit(data["X"], data["y"])
    zoo.save(model, "signed/lr", "pickle", sign_key="team-secret")
    signed = zoo.store.read_bytes("signed/lr")
    loaded = reader.load(signed, sign_key="team-secret", key="signed/lr")
    assert np.array_equal(loaded.predict(data["X_new"]), model.predict(data["X_new"]))
    with pytest.raises(alphazoo.UntrustedModelError, match="does not verify"):
        reader.load(signed, sign_key="another-secret")
    with pytest.raises(alphazoo.UntrustedModelError, match="not verified"):
        reader.load(signed)
    with pytest.raises(alphazoo.UntrustedModelError, match="signed for key 'signed/lr'"):
        reader.load(signed, sign_key="team-secret", key="elsewhere/lr")


def test_formats_the_reader_cannot_read_are_named(reader, bundles) -> None:
    skops = bundles["zoo"].store.read_bytes("sklearn/forest/skops")
    with pytest.raises(alphazoo.UnsupportedFormatError, match="save it as onnx"):
        reader.load(skops)
    with pytest.raises(alphazoo.BundleIntegrityError, match="not an alphazoo model bundle"):
        reader.load(b"plain text")


def test_zoo_load_bytes(bundles, data, tmp_path) -> None:
    zoo = bundles["zoo"]
    for key, (tolerance, expected) in bundles["cases"].items():
        model = zoo.load_bytes(zoo.store.read_bytes(key))
        assert_matches({"predict": model.predict(data["X_new"])}, tolerance,
                       {"predict": expected["predict"]}, key)
    with pytest.raises(alphazoo.UntrustedModelError):
        zoo.load_bytes(zoo.store.read_bytes("sklearn/forest/pickle"))
    assert zoo.load_bytes(zoo.store.read_bytes("sklearn/forest/pickle"),
                          trusted=True).predict(data["X_new"]).shape == (25,)
    with pytest.raises(alphazoo.BundleIntegrityError):
        zoo.load_bytes(b"ALPHAZOO-BUNDLE\n" + b"\0" * 40)


# -- keras native formats (needs keras and a backend) --------------------------------------------
@pytest.mark.slow
def test_keras_json_and_keras_archives_load_through_the_reader(reader, data, tmp_path) -> None:
    keras = pytest.importorskip("keras", reason="needs alphazoo[keras] or [tensorflow]")
    zoo = Zoo(ObjectStore(tmp_path))
    model = zoo.train(zoo.build("keras_mlp", in_features=4, hidden=(8,)), data["X"],
                      data["y_reg"], epochs=1, batch_size=32)
    expected = np.asarray(model.predict(data["X_new"], verbose=0))
    for fmt in ("keras", "json"):
        zoo.save(model, f"keras/{fmt}", fmt)
        loaded = reader.load(zoo.store.read_bytes(f"keras/{fmt}"))
        assert isinstance(loaded.model, keras.Model)
        np.testing.assert_allclose(loaded.predict(data["X_new"]), expected, rtol=1e-6,
                                   atol=1e-6)


# -- the done-when test: a LEAN-image environment without alphazoo --------------------------------
@pytest.fixture(scope="session")
def lean_python(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A virtual environment with the LEAN image's pins (no alphazoo), built once a session."""
    folder = tmp_path_factory.getbasetemp() / "lean-image-venv"
    python = folder / "bin" / "python"
    if not python.exists():
        try:
            venv.EnvBuilder(with_pip=True, clear=True).create(folder)
        except (OSError, subprocess.CalledProcessError) as exc:
            pytest.skip(f"cannot create a virtual environment here: {exc}")
        installed = subprocess.run(
            [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
             *LEAN_PINS], capture_output=True, text=True, timeout=1800)
        if installed.returncode != 0:
            pytest.skip("cannot install the LEAN image's versions (no package index reachable?):"
                        f" {installed.stderr.strip().splitlines()[-1:]}")
    return python


@pytest.fixture(scope="module")
def more_onnx(tmp_path_factory, data, bundles) -> dict[str, Any]:
    """ONNX bundles of the torch and keras adapters (those installed), with expectations."""
    zoo, cases = bundles["zoo"], dict(bundles["cases"])
    X, X_new = data["X"], data["X_new"]
    if importlib.util.find_spec("torch") is not None:
        model = zoo.train(zoo.build("torch_mlp", in_features=4, out_features=2, hidden=[8]),
                          X, data["y"], epochs=2)
        zoo.save(model, "torch/mlp/onnx", "onnx")
        cases["torch/mlp/onnx"] = (1e-5, {"predict": zoo.predict(model, X_new).tolist()})
    if importlib.util.find_spec("keras") is not None:
        model = zoo.train(zoo.build("keras_mlp", in_features=4, hidden=(8,)), X,
                          data["y_reg"], epochs=1, batch_size=32)
        zoo.save(model, "keras/mlp/onnx", "onnx")
        cases["keras/mlp/onnx"] = (1e-5, {"predict": np.asarray(
            model.predict(X_new, verbose=0)).tolist()})
    return cases


@pytest.mark.slow
def test_a_lean_image_environment_loads_the_bundles_through_the_reader(
        lean_python, reader_file, bundles, more_onnx, data, tmp_path) -> None:
    work = tmp_path / "project"
    work.mkdir()
    (work / "alphazoo_reader.py").write_text(reader_file.read_text())
    store = bundles["zoo"].store
    for index, key in enumerate(more_onnx):
        (work / f"{index}.bundle").write_bytes(store.read_bytes(key))
    np.save(work / "X.npy", data["X_new"])
    script = """
import json, sys
import numpy as np
try:
    import alphazoo  # noqa: F401
    sys.exit("alphazoo is installed here; the test needs an environment without it")
except ImportError:
    pass
import alphazoo_reader, onnxruntime, sklearn, xgboost, hmmlearn
X = np.load("X.npy")
out = {"versions": [np.__version__, sklearn.__version__, xgboost.__version__,
                    hmmlearn.__version__, onnxruntime.__version__]}
for index in range(int(sys.argv[1])):
    model = alphazoo_reader.load(open(f"{index}.bundle", "rb").read())
    got = {"predict": np.asarray(model.predict(X)).tolist()}
    if hasattr(model, "predict_proba"):
        got["predict_proba"] = np.asarray(model.predict_proba(X)).tolist()
    out[str(index)] = got
print(json.dumps(out))
"""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    result = subprocess.run([str(lean_python), "-c", script, str(len(more_onnx))], cwd=work,
                            capture_output=True, text=True, env=env, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    answers = json.loads(result.stdout)
    assert answers["versions"] == ["1.26.4", "1.6.1", "3.0.5", "0.3.3", "1.23.2"]
    for index, (key, (tolerance, expected)) in enumerate(more_onnx.items()):
        # Native payloads carry the exact bits, but another numpy/scipy evaluates the model
        # (hmmlearn's log-sum-exp, say) with other rounding: labels stay equal, floats within
        # a few ulps. Bit-equal predictions are checked where the versions are the same.
        across_versions = tolerance or 1e-12
        assert_matches(answers[str(index)], across_versions, expected, key)
    # The profile's opset limit is onnxruntime 1.23.2's own answer, probed there.
    probe = Path(compat_bundles.__file__).read_text()
    start, end = probe.index("def _varint"), probe.index("def _installed")
    opsets = subprocess.run([str(lean_python), "-c", probe[start:end] + """
import onnxruntime
def ok(opset):
    try:
        onnxruntime.InferenceSession(_relu_model(opset), providers=["CPUExecutionProvider"])
        return True
    except Exception:
        return False
print(max(o for o in range(7, 40) if ok(o)))
"""], capture_output=True, text=True, env=env, timeout=HANG_TIMEOUT)
    assert int(opsets.stdout) == QUANTCONNECT.max_opset
