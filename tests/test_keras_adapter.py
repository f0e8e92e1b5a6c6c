"""The keras adapter: .keras (default), JSON weights, pickle and ONNX bundles of Keras 3 models.

One module fixture trains the two zoo models (an MLP and an LSTM) under TensorFlow, builds a
functional classifier, and saves all three in every format into one store. Three child
processes then load that store: one under TensorFlow (bit-equal weights and predictions), one
under ``KERAS_BACKEND=torch`` (bit-equal weights, predictions to float32 rounding, and ONNX
exports made under torch), and one where keras, tensorflow and torch cannot be imported (the
ONNX bundles still predict). Importing TensorFlow costs seconds, hence so few processes.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from _child import HANG_TIMEOUT, blocking_prelude, run_python

import alphazoo
from alphazoo.adapters.keras import UnknownKerasClassError

keras = pytest.importorskip("keras", reason="the keras adapter needs keras (alphazoo[tensorflow])")

FORMATS = ["keras", "json", "safetensors", "pickle", "onnx"]
MODELS = ["mlp", "lstm", "functional"]
ONNX_TOL = 1e-5  # float32 rounding between Keras' kernels and onnxruntime's


# -- fixtures and helpers ------------------------------------------------------------------------
@pytest.fixture(scope="module")
def data() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(7)
    X = rng.normal(size=(160, 6))
    y = X @ np.array([0.5, -1.0, 0.25, 0.0, 0.8, -0.3]) + 0.05 * rng.normal(size=160)
    seq = rng.normal(size=(120, 8, 3))  # (batch, timesteps, features)
    y_seq = seq[:, -3:, 0].sum(axis=1) - 0.5 * seq[:, :, 2].mean(axis=1)
    return {"X": X, "y": y, "X_new": rng.normal(size=(40, 6)), "seq": seq, "y_seq": y_seq,
            "seq_new": rng.normal(size=(30, 8, 3))}


def functional_classifier() -> Any:
    """A functional (not Sequential) three-class softmax model, untrained and uncompiled."""
    inputs = keras.Input((6,), name="bars")
    hidden = keras.layers.Dense(
        12, activation="tanh", kernel_initializer=keras.initializers.GlorotUniform(seed=3)
    )(inputs)
    outputs = keras.layers.Dense(
        3, activation="softmax", kernel_initializer=keras.initializers.GlorotUniform(seed=4)
    )(hidden)
    return keras.Model(inputs, outputs, name="functional_classifier")  # left uncompiled


@pytest.fixture(scope="module")
def saved(tmp_path_factory: pytest.TempPathFactory, data) -> dict[str, Any]:
    """The models, trained once, saved in every format into one store."""
    with pytest.MonkeyPatch.context() as mp:
        mp.delenv("ALPHAZOO_SIGNING_KEY", raising=False)
        store_dir = tmp_path_factory.mktemp("keras-zoo")
        zoo = alphazoo.Zoo(alphazoo.ObjectStore(store_dir))
        models = {
            "mlp": zoo.train(zoo.build("keras_mlp", in_features=6, hidden=(16, 8)),
                             data["X"], data["y"], epochs=2, batch_size=32),
            # No shapes given: the LSTM takes (timesteps, features) from the training data.
            "lstm": zoo.train(zoo.build("keras_lstm", units=8), data["seq"], data["y_seq"],
                              epochs=1, batch_size=32),
            "functional": functional_classifier(),
        }
        manifests = {}
        for name, model in models.items():
            for fmt in FORMATS:
                # The functional model was never trained: its ONNX parity check runs on
                # synthetic rows made from its input shape.
                manifests[name, fmt] = zoo.save(model, f"zoo/{name}/{fmt}", format=fmt)
    inputs = {"mlp": data["X_new"], "lstm": data["seq_new"], "functional": data["X_new"]}
    return {"store_dir": store_dir, "zoo": zoo, "models": models, "manifests": manifests,
            "inputs": inputs}


def assert_same_weights(expected: list[np.ndarray], got: list[np.ndarray]) -> None:
    """Bit-for-bit equality: dtype, shape and every byte."""
    assert len(expected) == len(got)
    for i, (a, b) in enumerate(zip(expected, got)):
        a, b = np.asarray(a), np.asarray(b)
        assert (a.dtype, a.shape) == (b.dtype, b.shape), i
        assert a.tobytes() == b.tobytes(), f"weight {i} differs"


def save_inputs(saved: dict[str, Any], folder: Path) -> None:
    for name, X in saved["inputs"].items():
        np.save(folder / f"{name}.npy", X)


# -- registration and discovery ------------------------------------------------------------------
def test_formats_and_zoo_models_are_registered(zoo):
    formats = {(s.name, s.safe) for s in zoo.formats() if s.adapter == "keras"}
    assert formats == {("keras", True), ("json", True), ("safetensors", True), ("pickle", False),
                       ("onnx", True)}
    (default,) = [s.name for s in zoo.formats() if s.adapter == "keras" and s.default]
    assert default == "keras"
    onnx_spec = zoo.format_spec("keras", "onnx")
    assert onnx_spec is not None and onnx_spec.load_requires == ("onnxruntime",)
    specs = {spec.name: spec for spec in zoo.models()}
    for name in ("keras_mlp", "keras_lstm"):
        assert specs[name].library == "keras" and specs[name].plugin == "keras"


def test_discovery_and_owns_import_no_framework(tmp_path):
    code = textwrap.dedent(
        """
        import json, sys
        import alphazoo
        from alphazoo.adapters import keras as adapter

        zoo = alphazoo.Zoo(alphazoo.ObjectStore(sys.argv[1]))
        names = [s.name for s in zoo.formats() if s.adapter == "keras"]
        models = [m.name for m in zoo.models() if m.plugin == "keras"]
        owned = [adapter.owns(obj) for obj in (object(), {}, [1.0])]
        heavy = [m for m in ("keras", "tensorflow", "torch", "numpy", "onnxruntime")
                 if m in sys.modules]
        print(json.dumps({"formats": names, "models": models, "owned": owned, "heavy": heavy}))
        """
    )
    # Only this adapter: the other adapters' own imports are test_plugins.py's business.
    env = {**os.environ, "ALPHAZOO_DISABLE_PLUGINS": "sklearn,xgboost,torch,hmmlearn"}
    result = subprocess.run([sys.executable, "-c", code, str(tmp_path)], capture_output=True,
                            text=True, timeout=HANG_TIMEOUT, check=False, env=env)
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout)
    assert out["formats"] == FORMATS
    assert sorted(out["models"]) == ["keras_lstm", "keras_mlp"]
    assert out["owned"] == [False, False, False]
    assert out["heavy"] == []


def test_owns_only_keras_models():
    from alphazoo.adapters import keras as adapter

    assert adapter.owns(functional_classifier())
    assert not adapter.owns(keras.layers.Dense(2))  # a layer is not a model
    assert not adapter.owns(np.zeros(3))


# -- zoo models ----------------------------------------------------------------------------------
@pytest.mark.slow
def test_zoo_models_have_the_promised_shape_and_heads(zoo, saved):
    assert saved["models"]["lstm"].input_shape == (None, 8, 3)  # batch axis left open
    assert saved["models"]["mlp"].input_shape == (None, 6)
    binary = zoo.build("keras_mlp", in_features=4, task="classification")
    multi = zoo.build("keras_mlp", in_features=4, out_features=3, task="classification")
    lstm = zoo.build("keras_lstm", timesteps=5, features=2, units=4, dense=3)
    assert binary.layers[-1].activation.__name__ == "sigmoid"
    assert binary.loss == "binary_crossentropy"
    assert multi.layers[-1].activation.__name__ == "softmax"
    assert multi.output_shape == (None, 3)
    assert lstm.input_shape == (None, 5, 2) and lstm.output_shape == (None, 1)
    # Same seed, same initial weights: builds are reproducible.
    assert_same_weights(zoo.build("keras_mlp", in_features=4).get_weights(),
                        zoo.build("keras_mlp", in_features=4).get_weights())
    with pytest.raises(ValueError, match="task"):
        zoo.build("keras_mlp", in_features=4, task="ranking")


@pytest.mark.slow
def test_train_is_quiet_and_predict_handles_large_batches(saved, data, capsys):
    from alphazoo.adapters.keras import ONE_BATCH_ROWS

    zoo, model = saved["zoo"], saved["models"]["mlp"]
    clone = keras.models.clone_model(model)
    clone.compile(optimizer="adam", loss="mse")
    zoo.train(clone, data["X"][:32], data["y"][:32], epochs=1)
    assert capsys.readouterr().out == ""  # verbose=0 by default
    assert len(clone.history.history["loss"]) == 1
    big = np.tile(data["X"], (ONE_BATCH_ROWS // len(data["X"]) + 2, 1))
    assert len(big) > ONE_BATCH_ROWS  # model.predict's path, in batches
    large = zoo.predict(model, big)
    assert isinstance(large, np.ndarray) and large.shape == (len(big), 1)
    small = zoo.predict(model, big[:100])  # predict_on_batch's path
    np.testing.assert_allclose(large[:100], small, rtol=1e-6, atol=1e-6)
    direct = keras.ops.convert_to_numpy(model(big[:100].astype(np.float32), training=False))
    np.testing.assert_allclose(small, direct, rtol=1e-6, atol=1e-6)


# -- round trips in this process -----------------------------------------------------------------
@pytest.mark.slow
@pytest.mark.parametrize("fmt", ["keras", "json", "safetensors", "pickle"])
@pytest.mark.parametrize("name", MODELS)
def test_native_round_trip_is_bit_exact(saved, name, fmt):
    zoo, original = saved["zoo"], saved["models"][name]
    manifest = saved["manifests"][name, fmt]
    assert (manifest["adapter"], manifest["format"]) == ("keras", fmt)
    assert manifest["adapter_data"]["backend"] == "tensorflow"
    assert manifest["libraries"]["keras"] == keras.__version__

    loaded = zoo.load(f"zoo/{name}/{fmt}", trusted=fmt == "pickle")
    assert loaded is not original and type(loaded) is type(original)
    assert [layer.name for layer in loaded.layers] == [layer.name for layer in original.layers]
    assert_same_weights(original.get_weights(), loaded.get_weights())
    X = saved["inputs"][name]
    assert np.array_equal(zoo.predict(loaded, X), zoo.predict(original, X))
    assert np.array_equal(loaded.predict(X, verbose=0), original.predict(X, verbose=0))


@pytest.mark.slow
def test_keras_format_keeps_optimizer_state_and_json_does_not(saved):
    zoo, original = saved["zoo"], saved["models"]["mlp"]
    steps = int(original.optimizer.iterations.numpy())
    assert steps > 0
    native = zoo.load("zoo/mlp/keras")
    assert int(native.optimizer.iterations.numpy()) == steps
    assert_same_weights([v.numpy() for v in original.optimizer.variables],
                        [v.numpy() for v in native.optimizer.variables])
    from_json = zoo.load("zoo/mlp/json")  # compiled from its config, a fresh optimizer
    assert type(from_json.optimizer) is type(original.optimizer)
    assert int(from_json.optimizer.iterations.numpy()) == 0


@pytest.mark.slow
def test_json_bundle_is_the_documented_lean_pattern(saved, tmp_path):
    from alphazoo.adapters._weights import read_weights
    from alphazoo.bundle import read_bundle

    manifest = saved["manifests"]["lstm", "json"]
    assert [f["name"] for f in manifest["files"]] == ["model.json"]
    original = saved["models"]["lstm"]
    opened = read_bundle(saved["zoo"].store, "zoo/lstm/json", tmp_path)
    tensors, header = read_weights(opened.files["model.json"])
    assert header["architecture"] == json.loads(original.to_json())
    assert [t.name for t in tensors] == [w.path for w in original.weights]
    assert_same_weights(original.get_weights(), [t.array for t in tensors])
    assert manifest["adapter_data"]["weights"]["tensors"] == len(tensors)


@pytest.mark.slow
def test_default_format_is_keras(zoo, saved):
    manifest = zoo.save(saved["models"]["mlp"], "default")
    assert manifest["format"] == "keras"
    assert [f["name"] for f in manifest["files"]] == ["model.keras"]
    assert manifest["input"] == {"dtype": "float32", "shape": [None, 6],
                                 "feature_names": None, "layout": "(batch, features)"}


@pytest.mark.parametrize("fmt", ["json", "safetensors"])
def test_bfloat16_weights_round_trip_through_json(zoo, fmt):
    model = keras.Sequential([keras.Input((4,)),
                              keras.layers.Dense(3, dtype="bfloat16",
                                                 kernel_initializer="random_normal")])
    zoo.save(model, "bf16", format=fmt)
    loaded = zoo.load("bf16")
    assert loaded.get_weights()[0].dtype.name == "bfloat16"
    assert_same_weights(model.get_weights(), loaded.get_weights())


@pytest.mark.slow
def test_safetensors_bundle_is_plain_safetensors_in_get_weights_order(saved, tmp_path):
    safetensors = pytest.importorskip("safetensors")
    from safetensors.numpy import load_file

    from alphazoo.bundle import read_bundle

    manifest = saved["manifests"]["lstm", "safetensors"]
    assert [f["name"] for f in manifest["files"]] == ["model.safetensors"]
    assert manifest["libraries"]["safetensors"] == safetensors.__version__
    original = saved["models"]["lstm"]
    path = read_bundle(saved["zoo"].store, "zoo/lstm/safetensors", tmp_path).files[
        "model.safetensors"]
    arrays = load_file(str(path))  # the plain library's reader: tensors by variable path
    assert sorted(arrays) == sorted(w.path for w in original.weights)
    assert_same_weights(original.get_weights(), [arrays[w.path] for w in original.weights])
    with safetensors.safe_open(str(path), "np") as handle:
        meta = handle.metadata()
    assert json.loads(meta["architecture"]) == json.loads(original.to_json())
    assert json.loads(meta["order"]) == [w.path for w in original.weights]
    # No base64: the file is the tensors' raw bytes plus the header (mostly the architecture).
    import struct

    (length,) = struct.unpack("<Q", path.read_bytes()[:8])
    raw = sum(np.asarray(w).nbytes for w in original.get_weights())
    assert manifest["files"][0]["size"] == path.stat().st_size == 8 + length + raw


def test_safetensors_weights_must_fit_their_metadata(zoo, tmp_path):
    from safetensors.numpy import save_file

    from alphazoo.adapters._keras_json import load_safetensors
    from alphazoo.adapters._safetensors import metadata

    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    arrays = {v.path: w for v, w in zip(model.weights, model.get_weights())}
    architecture = json.loads(model.to_json())
    cases = {
        "no order": (metadata("keras", architecture=architecture), "'order'"),
        "order of other names": (metadata("keras", architecture=architecture,
                                          order=["a", "b"]), "'order'"),
        "no architecture": (metadata("keras", order=list(arrays)), "'architecture'"),
        "shapes swapped": (metadata("keras", architecture=architecture,
                                    order=list(arrays)[::-1]), "has shape"),
    }
    for name, (meta, message) in cases.items():
        path = tmp_path / f"{name}.safetensors"
        save_file(arrays, str(path), metadata=meta)
        with pytest.raises(alphazoo.BundleIntegrityError, match=message):
            load_safetensors(keras, path, None, safe_mode=True)


def test_a_crafted_safetensors_header_is_refused_before_keras_reads_it(zoo, tmp_path):
    import struct

    from _crafted import rebundle

    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    zoo.save(model, "real", format="safetensors")
    header = json.dumps({"w": {"dtype": "F32", "shape": [1 << 20, 1 << 20],
                               "data_offsets": [0, 1 << 42]}}).encode()
    payload = tmp_path / "model.safetensors"
    payload.write_bytes(struct.pack("<Q", len(header)) + header + b"\0" * 16)
    rebundle(zoo.store, "real", "crafted", payload)
    with pytest.raises(alphazoo.BundleLimitError, match="F32"):
        zoo.load("crafted")


# -- ONNX ----------------------------------------------------------------------------------------
@pytest.mark.slow
@pytest.mark.parametrize("name", MODELS)
def test_onnx_round_trip_matches_the_native_model(saved, name):
    from alphazoo.adapters.keras import KerasOnnxPredictor

    zoo, original = saved["zoo"], saved["models"][name]
    manifest = saved["manifests"][name, "onnx"]
    data = manifest["adapter_data"]
    parity = data["parity"]
    assert parity["max_abs_diff"] <= ONNX_TOL and parity["tolerance"] == 1e-4
    assert parity["batch_sizes"][0] == 1 and parity["batch_sizes"][1] > 1
    expected_sample = "synthetic" if name == "functional" else "training rows"
    assert parity["sample"].startswith(expected_sample)
    assert data["exporter"] == "keras" and data["opset"]["ai.onnx"] >= 13
    assert data["input_shape"][0] is None  # dynamic batch axis
    for library in ("onnx", "onnxruntime", "tf2onnx", "keras", "tensorflow-cpu"):
        assert library in manifest["libraries"], library

    loaded = zoo.load(f"zoo/{name}/onnx")
    assert isinstance(loaded, KerasOnnxPredictor)
    assert loaded.task == ("classification" if name == "functional" else "regression")
    X = saved["inputs"][name]
    got, want = loaded.predict(X), zoo.predict(original, X)
    assert got.dtype == np.float32 and got.shape == want.shape
    np.testing.assert_allclose(got, want, rtol=ONNX_TOL, atol=ONNX_TOL)
    np.testing.assert_allclose(loaded.predict(X[0]), want[:1], rtol=ONNX_TOL, atol=ONNX_TOL)


@pytest.mark.slow
def test_lstm_onnx_accepts_any_batch_size(saved, data):
    zoo, lstm = saved["zoo"], saved["models"]["lstm"]
    predictor = zoo.load("zoo/lstm/onnx")
    assert predictor.input_layout == "(batch, timesteps, features)"
    assert not isinstance(predictor.input_shape[0], int)
    assert predictor.input_shape[1:] == [8, 3]
    windows = np.concatenate([data["seq"], data["seq_new"]])
    for batch in (1, 2, 17, len(windows)):
        np.testing.assert_allclose(predictor.predict(windows[:batch]),
                                   zoo.predict(lstm, windows[:batch]),
                                   rtol=ONNX_TOL, atol=ONNX_TOL)
    with pytest.raises(ValueError, match=r"\(batch, timesteps, features\)"):
        predictor.predict(windows[0, 0])  # one step is not a window


@pytest.mark.slow
def test_saved_model_fallback_exporter_and_opset(zoo, saved):
    mlp = saved["models"]["mlp"]
    manifest = zoo.save(mlp, "fallback", format="onnx", exporter="saved_model", opset=13,
                        sample=saved["inputs"]["mlp"])
    data = manifest["adapter_data"]
    assert data["exporter"] == "saved_model" and data["opset"]["ai.onnx"] == 13
    assert data["parity"]["max_abs_diff"] <= ONNX_TOL
    X = saved["inputs"]["mlp"]
    np.testing.assert_allclose(zoo.load("fallback").predict(X), zoo.predict(mlp, X),
                               rtol=ONNX_TOL, atol=ONNX_TOL)


@pytest.mark.slow
def test_failed_parity_check_saves_nothing(zoo, saved):
    mlp = saved["models"]["mlp"]
    with pytest.raises(alphazoo.OnnxParityError, match="not saved"):
        zoo.save(mlp, "strict", format="onnx", parity_tolerance=-1.0)
    assert zoo.store.keys() == []


def test_onnx_refuses_models_with_several_outputs(zoo):
    inputs = keras.Input((3,))
    model = keras.Model(inputs, [keras.layers.Dense(1)(inputs), keras.layers.Dense(2)(inputs)])
    with pytest.raises(alphazoo.UnsupportedFormatError, match="one input and one output"):
        zoo.save(model, "two-heads", format="onnx")
    assert zoo.store.keys() == []
    zoo.save(model, "two-heads", format="json")  # the native formats hold it
    loaded = zoo.load("two-heads")
    assert_same_weights(model.get_weights(), loaded.get_weights())


# -- fresh processes -----------------------------------------------------------------------------
LOAD_CHILD = textwrap.dedent(
    """
    import json, sys
    from pathlib import Path
    import numpy as np
    import alphazoo
    import keras

    store, folder, save_onnx = sys.argv[1], Path(sys.argv[2]), sys.argv[3] == "1"
    zoo = alphazoo.Zoo(alphazoo.ObjectStore(store))
    report = {"backend": keras.backend.backend(), "keys": []}
    for key in zoo.store.keys():
        _, name, fmt = key.split("/")
        model = zoo.load(key, trusted=fmt == "pickle")
        X = np.load(folder / f"{name}.npy")
        arrays = {"prediction": np.asarray(zoo.predict(model, X))}
        if fmt != "onnx":
            arrays.update({f"w{i}": w for i, w in enumerate(model.get_weights())})
            if save_onnx and fmt == "keras":  # export under this backend, parity-checked
                zoo.save(model, f"{report['backend']}/{name}/onnx", format="onnx", sample=X)
        np.savez(folder / f"{name}-{fmt}.npz", **arrays)
        report["keys"].append(key)
    (folder / "report.json").write_text(json.dumps(report))
    """
)


def _child_results(folder: Path, name: str, fmt: str) -> tuple[np.ndarray, list[np.ndarray]]:
    with np.load(folder / f"{name}-{fmt}.npz") as npz:
        weights = [npz[f"w{i}"] for i in range(len(npz.files) - 1)]
        return npz["prediction"], weights


@pytest.mark.slow
def test_every_bundle_loads_bit_exact_in_a_fresh_tensorflow_process(saved, tmp_path):
    save_inputs(saved, tmp_path)
    run_python(LOAD_CHILD, str(saved["store_dir"]), str(tmp_path), "0", cwd=tmp_path,
               unset=("KERAS_BACKEND",))
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["backend"] == "tensorflow"
    assert sorted(report["keys"]) == sorted(f"zoo/{n}/{f}" for n in MODELS for f in FORMATS)
    for name in MODELS:
        original, X = saved["models"][name], saved["inputs"][name]
        expected = saved["zoo"].predict(original, X)
        for fmt in FORMATS:
            prediction, weights = _child_results(tmp_path, name, fmt)
            if fmt == "onnx":
                np.testing.assert_allclose(prediction, expected, rtol=ONNX_TOL, atol=ONNX_TOL)
                continue
            assert_same_weights(original.get_weights(), weights)
            assert prediction.dtype == expected.dtype
            assert np.array_equal(prediction, expected), (name, fmt)


@pytest.mark.slow
def test_the_same_bundles_load_under_the_torch_backend(saved, tmp_path):
    pytest.importorskip("torch", reason="the torch backend needs torch")
    save_inputs(saved, tmp_path)
    store_dir = tmp_path / "store"  # a copy: the child adds torch-made ONNX bundles
    import shutil

    shutil.copytree(saved["store_dir"], store_dir)
    run_python(LOAD_CHILD, str(store_dir), str(tmp_path), "1", cwd=tmp_path,
               env={"KERAS_BACKEND": "torch"})
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["backend"] == "torch"
    zoo = alphazoo.Zoo(alphazoo.ObjectStore(store_dir))
    for name in MODELS:
        original, X = saved["models"][name], saved["inputs"][name]
        expected = saved["zoo"].predict(original, X)
        for fmt in FORMATS:
            prediction, weights = _child_results(tmp_path, name, fmt)
            if fmt != "onnx":
                assert_same_weights(original.get_weights(), weights)
            # Other kernels: equal to float32 rounding, not bit for bit.
            np.testing.assert_allclose(prediction, expected, rtol=ONNX_TOL, atol=ONNX_TOL)
        # The ONNX export made under torch: parity-checked there, served here.
        manifest = zoo.inspect(f"torch/{name}/onnx")
        assert manifest["adapter"] == "keras"  # not the torch adapter: a Keras model is an
        # nn.Module under this backend
        assert manifest["adapter_data"]["backend"] == "torch"
        assert manifest["adapter_data"]["exporter"] == "torch"
        assert manifest["adapter_data"]["parity"]["max_abs_diff"] <= ONNX_TOL
        assert "torch" in manifest["libraries"]
        assert "onnxscript" in manifest["libraries"]  # torch's exporter wrote the graph
        assert "tf2onnx" not in manifest["libraries"]
        torch_onnx = zoo.load(f"torch/{name}/onnx")
        for batch in (1, 5, len(X)):
            np.testing.assert_allclose(torch_onnx.predict(X[:batch]), expected[:batch],
                                       rtol=ONNX_TOL, atol=ONNX_TOL)


_UNUSED_HERE = ("keras", "tensorflow", "torch", "tf2onnx", "jax")
BLOCKED_CHILD = blocking_prelude(*_UNUSED_HERE) + textwrap.dedent(
    """
    import json, sys
    from pathlib import Path


    import numpy as np
    import alphazoo

    store, folder = sys.argv[1], Path(sys.argv[2])
    zoo = alphazoo.Zoo(alphazoo.ObjectStore(store))
    result = {}
    for key in zoo.store.keys():
        _, name, fmt = key.split("/")
        if fmt != "onnx":
            continue
        model = zoo.load(key)
        X = np.load(folder / f"{name}.npy")
        result[key] = {"type": type(model).__name__,
                       "batches": {str(n): model.predict(X[:n]).tolist()
                                   for n in (1, 3, len(X))},
                       "one_sample": model.predict(X[0]).tolist()}
    try:  # the block is real: a .keras bundle needs what is missing here
        zoo.load("zoo/mlp/keras")
    except ImportError as exc:
        result["keras_refused"] = str(exc)
    result["loaded"] = sorted(n for n in sys.modules if n.partition(".")[0] in _BLOCKED)
    (folder / "blocked.json").write_text(json.dumps(result))
    """
)


@pytest.mark.slow
def test_onnx_bundles_predict_without_keras_tensorflow_or_torch(saved, tmp_path):
    save_inputs(saved, tmp_path)
    run_python(BLOCKED_CHILD, str(saved["store_dir"]), str(tmp_path), cwd=tmp_path,
               unset=("KERAS_BACKEND",))
    result = json.loads((tmp_path / "blocked.json").read_text())
    assert result.pop("loaded") == []
    assert "keras" in result.pop("keras_refused")
    assert set(result) == {f"zoo/{name}/onnx" for name in MODELS}
    for name in MODELS:
        child = result[f"zoo/{name}/onnx"]
        X = saved["inputs"][name]
        expected = saved["zoo"].predict(saved["models"][name], X)
        assert child["type"] == "KerasOnnxPredictor"
        for n, rows in child["batches"].items():
            np.testing.assert_allclose(np.asarray(rows), expected[:int(n)],
                                       rtol=ONNX_TOL, atol=ONNX_TOL)
        np.testing.assert_allclose(np.asarray(child["one_sample"]), expected[:1],
                                   rtol=ONNX_TOL, atol=ONNX_TOL)


# -- safety --------------------------------------------------------------------------------------
@pytest.mark.slow
def test_pickle_needs_trust(saved):
    zoo = saved["zoo"]
    with pytest.raises(alphazoo.UntrustedModelError):
        zoo.load("zoo/mlp/pickle")


@pytest.fixture(scope="module")
def lambda_model() -> Any:
    model = keras.Sequential([keras.Input((4,)), keras.layers.Lambda(lambda x: x * 2.0 + 1.0),
                              keras.layers.Dense(2, kernel_initializer="ones")])
    return model


@pytest.mark.parametrize("fmt", ["keras", "json", "safetensors"])
def test_safe_mode_refuses_lambda_code_unless_trusted(zoo, lambda_model, fmt):
    with pytest.warns(UserWarning, match="Lambda layers"):
        manifest = zoo.save(lambda_model, "lambda", format=fmt)
    assert manifest["adapter_data"]["lambda_layers"] == [lambda_model.layers[0].name]
    with pytest.raises(alphazoo.UntrustedModelError, match="safe mode refused"):
        zoo.load("lambda")
    loaded = zoo.load("lambda", trusted=True)  # trust turns Keras' safe_mode off
    X = np.arange(8, dtype=np.float32).reshape(2, 4)
    assert np.array_equal(zoo.predict(loaded, X), zoo.predict(lambda_model, X))


def test_signed_lambda_bundle_loads_with_its_key(zoo, lambda_model):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        zoo.save(lambda_model, "signed", sign_key="k" * 32)
    loaded = zoo.load("signed", sign_key="k" * 32)
    assert_same_weights(lambda_model.get_weights(), loaded.get_weights())


@pytest.fixture
def unsafe_process() -> Any:
    """A process that called keras.config.enable_unsafe_deserialization() (restored after)."""
    from keras.src.backend.common import global_state

    before = global_state.get_global_attribute("safe_mode_saving")
    keras.config.enable_unsafe_deserialization()
    yield
    global_state.set_global_attribute("safe_mode_saving", before)


@pytest.mark.parametrize("fmt", ["keras", "json", "safetensors"])
def test_process_wide_unsafe_deserialization_does_not_open_untrusted_bundles(
        zoo, lambda_model, unsafe_process, fmt):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        zoo.save(lambda_model, "lambda", format=fmt)
    with pytest.raises(alphazoo.UntrustedModelError, match="safe mode refused"):
        zoo.load("lambda")  # Keras alone would run the Lambda's bytecode here
    assert zoo.load("lambda", trusted=True) is not None


def test_a_signed_bundle_copied_to_another_key_stays_in_safe_mode(zoo, lambda_model):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        zoo.save(lambda_model, "signed", format="json", sign_key="k" * 32)
    zoo.store.save_bytes("replayed", zoo.store.read_bytes("signed"))
    # The host refuses the replay for every format (alphazoo.trust) before Keras sees it.
    with pytest.raises(alphazoo.UntrustedModelError, match="signed for key 'signed'"):
        zoo.load("replayed", sign_key="k" * 32)
    assert zoo.load("signed", sign_key="k" * 32) is not None
    assert zoo.load("replayed", trusted=True) is not None


def test_a_json_weight_type_must_be_a_number_type(tmp_path):
    from alphazoo.adapters._keras_json import load_json
    from alphazoo.adapters._weights import Tensor, write_weights

    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    weights = [Tensor(v.path, w.view(np.int32), "__loader__")
               for v, w in zip(model.weights, model.get_weights())]
    write_weights(tmp_path / "model.json", weights, architecture=json.loads(model.to_json()))
    with pytest.raises(alphazoo.BundleIntegrityError, match="'__loader__'"):
        load_json(keras, tmp_path / "model.json", None, safe_mode=True)


@pytest.mark.slow
def test_unsafe_keras_versions_need_trust(monkeypatch, saved):
    monkeypatch.setattr(keras, "__version__", "3.13.0")
    with pytest.raises(alphazoo.UntrustedModelError, match="safe_mode"):
        saved["zoo"].load("zoo/mlp/keras")
    assert saved["zoo"].load("zoo/mlp/json", trusted=True) is not None


# -- custom classes ------------------------------------------------------------------------------
@keras.saving.register_keras_serializable(package="alphazoo_tests")
class Scaled(keras.Model):
    """A subclassed model with a config: registered, so it loads by name."""

    def __init__(self, units: int = 2, factor: float = 1.0, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.units, self.factor = units, factor
        self.dense = keras.layers.Dense(units, kernel_initializer="glorot_uniform")

    def call(self, x: Any) -> Any:
        return self.dense(x) * self.factor

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "units": self.units, "factor": self.factor}


class Unregistered(keras.Model):
    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.dense = keras.layers.Dense(2)

    def call(self, x: Any) -> Any:
        return self.dense(x)


@pytest.mark.parametrize("fmt", ["keras", "json", "safetensors"])
def test_registered_subclassed_model_round_trips(zoo, data, fmt):
    model = Scaled(units=3, factor=0.5)
    X = data["X_new"].astype(np.float32)
    model(X[:1])
    zoo.save(model, "scaled", format=fmt)
    loaded = zoo.load("scaled")
    assert type(loaded) is Scaled and loaded.factor == 0.5
    assert_same_weights(model.get_weights(), loaded.get_weights())
    assert np.array_equal(zoo.predict(loaded, X), zoo.predict(model, X))


def test_unregistered_class_needs_custom_objects(zoo, data):
    model = Unregistered()
    X = data["X_new"].astype(np.float32)
    model(X[:1])
    zoo.save(model, "custom", format="json")
    with pytest.raises(TypeError, match="custom_objects"):
        zoo.load("custom")
    loaded = zoo.load("custom", custom_objects={"Unregistered": Unregistered})
    assert_same_weights(model.get_weights(), loaded.get_weights())


# -- errors --------------------------------------------------------------------------------------
@pytest.mark.slow
def test_unknown_format_names_the_keras_formats(zoo, saved):
    with pytest.raises(alphazoo.UnsupportedFormatError) as error:
        zoo.save(saved["models"]["mlp"], "x", format="skops")
    message = str(error.value)
    assert "keras adapter" in message
    for fmt in (*FORMATS, "skops"):
        assert repr(fmt) in message or fmt in message
    assert zoo.store.keys() == []


@pytest.mark.slow
def test_unknown_options_raise_type_error(zoo, saved):
    mlp = saved["models"]["mlp"]
    with pytest.raises(TypeError, match=r"\['opset'\]"):
        zoo.save(mlp, "x", format="keras", opset=13)  # an ONNX-only option
    with pytest.raises(TypeError, match=r"\['dynamic_axes'\].*opset, exporter"):
        zoo.save(mlp, "x", format="onnx", dynamic_axes={})
    with pytest.raises(ValueError, match="exporter"):
        zoo.save(mlp, "x", format="onnx", exporter="tflite")
    assert zoo.store.keys() == []
    zoo.save(mlp, "x", format="json")
    with pytest.raises(TypeError, match=r"\['builder'\].*custom_objects"):
        zoo.load("x", builder=lambda: None)


@pytest.mark.parametrize("architecture,error", [
    ({"class_name": "Dense", "config": "not a config"}, alphazoo.BundleFormatError),
    ({"module": "keras", "class_name": "Dense", "config": {"units": "x"}},
     alphazoo.BundleFormatError),
    ([1, 2, 3], alphazoo.BundleFormatError),
    ({"class_name": "NoSuchLayer", "config": {}}, UnknownKerasClassError),
])
def test_an_architecture_keras_cannot_rebuild_is_a_typed_error(tmp_path, architecture, error):
    # Intact hashes over a crafted architecture: Keras' own ValueError/TypeError/AttributeError
    # come back as alphazoo errors naming the payload.
    import keras
    from _crafted import rebundle

    from alphazoo.adapters._weights import read_weights, write_weights
    from alphazoo.bundle import read_bundle

    zoo = alphazoo.Zoo(tmp_path / "store")
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    zoo.save(model, "k/json", format="json")
    (tmp_path / "opened").mkdir()
    opened = read_bundle(zoo.store, "k/json", tmp_path / "opened")
    (name,) = [getattr(entry, "name", entry) for entry in opened.files]
    tensors, _ = read_weights(tmp_path / "opened" / name)
    crafted = tmp_path / "crafted" / name
    crafted.parent.mkdir()
    write_weights(crafted, tensors, architecture=architecture)
    rebundle(zoo.store, "k/json", "k/crafted", crafted)
    with pytest.raises(error, match="json payload") as raised:
        zoo.load("k/crafted")
    assert isinstance(raised.value, alphazoo.AlphazooError)
