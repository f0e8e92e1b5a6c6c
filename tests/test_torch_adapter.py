"""The torch adapter: json (default), pt, pickle and ONNX bundles of ``nn.Module`` objects.

Exactness is checked byte for byte: every state_dict tensor (float64, bfloat16, int64 buffers,
NaN payloads and negative zero included) and every prediction, in this process and in a fresh
one. ONNX bundles are served in a process where importing torch fails, at batch sizes and
sequence lengths other than those they were exported with.
"""

from __future__ import annotations

import json
import textwrap
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from _child import blocking_prelude, run_python

import alphazoo
from alphazoo.adapters._onnx import OnnxPredictor

torch = pytest.importorskip("torch", reason="the torch adapter tests need torch")
nn = torch.nn

FORMATS = ["json", "safetensors", "pt", "pickle", "onnx"]
TESTS_DIR = Path(__file__).resolve().parent
#: model name -> the formats it is saved in by the ``saved`` fixture.
SAVED = {
    "mlp_clf": FORMATS,
    "mlp_f64": ["json", "safetensors", "pt"],
    "user": ["json", "safetensors", "pt", "pickle"],
    "lstm": FORMATS,
}
LABELS = np.array([2, 5, 7])  # not 0..K-1: predict must map outputs back to these


class UserNet(nn.Module):
    """A user's module (not a zoo model) with buffers of every awkward kind."""

    def __init__(self, n_in: int = 6, n_out: int = 1) -> None:
        super().__init__()
        self.linear = nn.Linear(n_in, 4).double()
        self.norm = nn.BatchNorm1d(4)  # running stats + an int64 num_batches_tracked
        self.out = nn.Linear(4, n_out)
        self.register_buffer("scale", torch.linspace(0.5, 1.5, 4).to(torch.bfloat16))
        self.register_buffer("count", torch.tensor(7, dtype=torch.int64))
        # Bit patterns a decimal round trip would lose; unused by forward.
        self.register_buffer("special", torch.tensor(
            [float("nan"), -0.0, float("inf"), 1e-45, -3.4e38], dtype=torch.float32))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.linear(x.double()) * self.scale.double()
        return self.out(self.norm(h.float()))


class FlatSequenceNet(nn.Module):
    """Flattens (batch, sequence, features): only a fixed window length can work."""

    def __init__(self, steps: int = 5, features: int = 3) -> None:
        super().__init__()
        self.linear = nn.Linear(steps * features, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(x.flatten(1))


# -- fixtures and helpers ------------------------------------------------------------------------
@pytest.fixture(scope="module")
def data() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(7)
    X = rng.normal(size=(160, 6))
    score = X[:, 0] + 0.8 * X[:, 1] - 0.5 * X[:, 2]
    y_clf = LABELS[np.digitize(score, [-0.5, 0.5])]
    y_reg = X @ np.array([1.0, -0.5, 0.3, 0.0, 0.2, 0.1]) + 0.05 * rng.normal(size=160)
    S = rng.normal(size=(120, 10, 3))  # (batch, sequence, features)
    y_seq = S[:, -3:, 0].mean(axis=1) - 0.5 * S[:, -1, 2]
    return {"X": X, "y_clf": y_clf, "y_reg": y_reg, "X_new": rng.normal(size=(30, 6)),
            "S": S, "y_seq": y_seq, "S_new": rng.normal(size=(9, 10, 3)),
            "S_long": rng.normal(size=(4, 23, 3)), "S_short": rng.normal(size=(17, 2, 3)),
            "S_one": rng.normal(size=(1, 1, 3))}


@pytest.fixture(scope="module")
def saved(tmp_path_factory: pytest.TempPathFactory, data) -> dict[str, Any]:
    """The test models trained and saved in their formats, in one folder store."""
    with pytest.MonkeyPatch.context() as mp:
        mp.delenv("ALPHAZOO_SIGNING_KEY", raising=False)
        store_dir = tmp_path_factory.mktemp("torch-zoo")
        zoo = alphazoo.Zoo(alphazoo.ObjectStore(store_dir))
        X, S = data["X"], data["S"]
        fit = {"epochs": 3, "batch_size": 32}
        models = {
            "mlp_clf": zoo.train(zoo.build("torch_mlp", in_features=6, out_features=3,
                                           hidden=[16, 8], batch_norm=True),
                                 X, data["y_clf"], **fit),
            # Built float32 by the zoo, then made float64: the reload must keep float64.
            "mlp_f64": zoo.train(zoo.build("torch_mlp", in_features=6, out_features=1,
                                           hidden=[8]).double(), X, data["y_reg"], **fit),
            "user": zoo.train(UserNet(), X, data["y_reg"], **fit),
            "lstm": zoo.train(zoo.build("torch_lstm", in_features=3, out_features=1, hidden=8),
                              S, data["y_seq"], **fit),
        }
        manifests = {(name, fmt): zoo.save(models[name], f"{name}/{fmt}", format=fmt)
                     for name, formats in SAVED.items() for fmt in formats}
    return {"store_dir": store_dir, "zoo": zoo, "models": models, "manifests": manifests}


def rows_for(name: str, data: dict[str, np.ndarray]) -> np.ndarray:
    return data["S_new"] if name == "lstm" else data["X_new"]


def state_bytes(module: Any) -> dict[str, tuple[str, list[int], str]]:
    """Every state_dict tensor as (dtype, shape, hex of its raw bytes)."""
    return {
        name: (str(t.dtype), list(t.shape),
               t.detach().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes().hex())
        for name, t in module.state_dict().items()
    }


def native(model: Any, X: np.ndarray) -> dict[str, np.ndarray]:
    from alphazoo.adapters import torch as adapter

    out = {"predict": adapter.predict(model, X)}
    if getattr(model, "classes_", None) is not None:
        out["proba"] = adapter.predict_proba(model, X)
    return out


# -- registration and building -------------------------------------------------------------------
def test_models_and_formats_are_registered(zoo):
    specs = {spec.name: spec for spec in zoo.models()}
    for name in ("torch_mlp", "torch_lstm"):
        assert specs[name].library == "torch" and specs[name].plugin == "torch"
    formats = {(s.name, s.safe, s.default) for s in zoo.formats() if s.adapter == "torch"}
    assert formats == {("json", True, True), ("safetensors", True, False), ("pt", True, False),
                       ("pickle", False, False), ("onnx", True, False)}
    (row,) = [p for p in zoo.plugins() if p.name == "torch"]
    assert row.requires[0].startswith("torch")


def test_zoo_models_are_seeded_and_shaped(zoo):
    a = zoo.build("torch_mlp", in_features=5, out_features=2, hidden=(7,))
    b = zoo.build("torch_mlp", in_features=5, out_features=2, hidden=(7,))
    c = zoo.build("torch_mlp", in_features=5, out_features=2, hidden=(7,), seed=1)
    assert state_bytes(a) == state_bytes(b) != state_bytes(c)
    assert [m.out_features for m in a.modules() if isinstance(m, nn.Linear)] == [7, 2]
    lstm = zoo.build("torch_lstm", in_features=3, out_features=2, hidden=4, layers=2)
    assert lstm.lstm.num_layers == 2 and lstm.lstm.batch_first
    assert lstm(torch.zeros(5, 11, 3)).shape == (5, 2)
    with pytest.raises(ValueError, match="activation"):
        zoo.build("torch_mlp", in_features=5, out_features=2, activation="swishy")


# -- training and prediction ---------------------------------------------------------------------
@pytest.mark.slow
def test_training_is_deterministic_and_picks_the_loss_from_y(zoo, data):
    X, y = data["X"], data["y_clf"]

    def trained(seed: int) -> Any:
        model = zoo.build("torch_mlp", in_features=6, out_features=3, hidden=[8], dropout=0.1)
        return zoo.train(model, X, y, epochs=2, batch_size=16, seed=seed)

    first, again, other = trained(0), trained(0), trained(3)
    assert state_bytes(first) == state_bytes(again) != state_bytes(other)
    assert not first.training
    assert np.array_equal(first.classes_, LABELS)
    labels = zoo.predict(first, data["X_new"])
    assert set(labels) <= set(LABELS.tolist()) and labels.shape == (30,)
    proba = native(first, data["X_new"])["proba"]
    assert proba.shape == (30, 3) and np.allclose(proba.sum(axis=1), 1.0)
    assert np.array_equal(LABELS[proba.argmax(axis=1)], labels)

    regressor = zoo.train(zoo.build("torch_mlp", in_features=6, out_features=1, hidden=[8]),
                          X, data["y_reg"], epochs=40, lr=1e-2)
    assert not hasattr(regressor, "classes_")
    values = zoo.predict(regressor, X)
    assert values.shape == (160,) and values.dtype == np.float32
    assert np.mean((values - data["y_reg"]) ** 2) < 0.5 * np.var(data["y_reg"])  # it learned


def test_training_errors_are_clear(zoo, data):
    model = zoo.build("torch_mlp", in_features=6, out_features=2)
    with pytest.raises(ValueError, match="2 outputs for 3 classes"):
        zoo.train(model, data["X"], data["y_clf"])
    with pytest.raises(TypeError, match=r"unexpected options \['momentum'\]"):
        zoo.train(model, data["X"], data["y_reg"], momentum=0.9)
    with pytest.raises(ValueError, match="rows"):
        zoo.train(model, data["X"], data["y_reg"][:10])


def test_predict_restores_the_training_mode(zoo, data):
    model = zoo.build("torch_mlp", in_features=6, out_features=1, dropout=0.5).train()
    first = zoo.predict(model, data["X_new"])
    assert model.training  # eval only for the call: dropout off, so predictions repeat
    assert np.array_equal(first, zoo.predict(model, data["X_new"]))


# -- round trips in this process -----------------------------------------------------------------
@pytest.mark.slow
@pytest.mark.parametrize(("name", "fmt"), [(n, f) for n, fs in SAVED.items() for f in fs
                                           if f != "onnx"])
def test_round_trip_is_bit_exact(saved, data, name, fmt):
    zoo, original = saved["zoo"], saved["models"][name]
    options = {"builder": UserNet} if name == "user" and fmt != "pickle" else {}
    loaded = zoo.load(f"{name}/{fmt}", trusted=fmt == "pickle", **options)
    assert loaded is not original and type(loaded) is type(original)
    assert not loaded.training
    assert state_bytes(loaded) == state_bytes(original)
    expected, got = native(original, rows_for(name, data)), native(loaded, rows_for(name, data))
    assert expected.keys() == got.keys()
    for kind in expected:
        assert np.array_equal(expected[kind], got[kind]), kind
    if name == "mlp_f64":
        assert {t.dtype for t in loaded.parameters()} == {torch.float64}


@pytest.mark.slow
def test_manifests_record_builder_task_and_input(saved):
    import onnx
    import onnxruntime

    manifests = saved["manifests"]
    clf = manifests["mlp_clf", "json"]
    assert clf["adapter"] == "torch" and clf["name"] == "torch_mlp"
    assert clf["model_class"] == "alphazoo.adapters._torch_models.MLP"
    assert clf["adapter_data"]["builder"] == {
        "zoo_model": "torch_mlp",
        "params": {"in_features": 6, "out_features": 3, "hidden": [16, 8], "batch_norm": True},
    }
    assert clf["adapter_data"]["task"] == "classification"
    assert clf["adapter_data"]["classes"] == LABELS.tolist()
    assert clf["libraries"]["torch"] == torch.__version__
    assert clf["input"]["shape"] == [None, 6]
    assert [f["name"] for f in clf["files"]] == ["weights.json"]
    assert [f["name"] for f in manifests["mlp_clf", "pt"]["files"]] == ["state_dict.pt"]

    user = manifests["user", "pt"]
    assert user["adapter_data"]["builder"] is None
    assert user["model_class"].endswith("UserNet") and user["adapter_data"]["task"] == "regression"

    seq = manifests["lstm", "onnx"]
    assert seq["input"]["shape"] == [None, None, 3]
    assert seq["input"]["layout"] == "batch, sequence, features"
    data = seq["adapter_data"]
    assert data["dynamic_axes"] == {"0": "batch", "1": "sequence"}
    assert data["parity"]["rows"] == 120 and data["parity"]["sample"] == "sample rows"
    assert data["parity"]["max_abs_diff"] <= 1e-5
    assert data["opset"]["ai.onnx"] >= 17
    assert seq["libraries"]["onnx"] == onnx.__version__
    assert seq["libraries"]["onnxruntime"] == onnxruntime.__version__
    assert manifests["mlp_clf", "onnx"]["adapter_data"]["parity"]["label_agreement"] == 1.0


@pytest.mark.slow
def test_json_document_is_self_describing(saved, tmp_path):
    from alphazoo.adapters._weights import read_weights
    from alphazoo.bundle import read_bundle

    opened = read_bundle(saved["zoo"].store, "user/json", tmp_path)
    tensors, header = read_weights(opened.files["weights.json"])
    by_name = {t.name: t for t in tensors}
    assert header["architecture"]["class"].endswith("UserNet")
    assert header["versions"]["norm"] == {"version": nn.BatchNorm1d._version}
    assert by_name["scale"].type == "bfloat16" and by_name["scale"].array.dtype == np.int16
    assert by_name["count"].array.dtype == np.int64 and by_name["count"].array.shape == ()
    assert by_name["linear.weight"].array.dtype == np.float64
    special = by_name["special"].array
    assert np.isnan(special[0]) and np.signbit(special[1]) and special[3] > 0


@pytest.mark.slow
def test_a_reloaded_module_is_saved_again_with_the_same_builder(saved, data):
    zoo = saved["zoo"]
    zoo.save(zoo.load("mlp_clf/pt"), "again/mlp", format="json")
    assert zoo.inspect("again/mlp")["adapter_data"]["builder"]["zoo_model"] == "torch_mlp"
    zoo.save(zoo.load("user/json", builder=UserNet), "again/user", format="pt")
    assert zoo.inspect("again/user")["adapter_data"]["builder"] is None
    again = zoo.load("again/mlp")
    assert state_bytes(again) == state_bytes(saved["models"]["mlp_clf"])


@pytest.mark.slow
def test_json_round_trip_on_every_backend(object_store, data):
    zoo = alphazoo.Zoo(object_store)
    model = zoo.train(zoo.build("torch_mlp", in_features=6, out_features=1, hidden=[4]),
                      data["X"], data["y_reg"], epochs=1)
    zoo.save(model, "models/mlp")
    loaded = zoo.load("models/mlp")
    assert state_bytes(loaded) == state_bytes(model)
    assert np.array_equal(zoo.predict(loaded, data["X_new"]), zoo.predict(model, data["X_new"]))


# -- builders ------------------------------------------------------------------------------------
@pytest.mark.slow
def test_user_module_weights_need_a_builder(saved, data):
    zoo = saved["zoo"]
    for fmt in ("json", "safetensors", "pt"):
        with pytest.raises(alphazoo.UnsupportedModelError) as error:
            zoo.load(f"user/{fmt}")
        message = str(error.value)
        assert "builder=" in message and "UserNet" in message and f"user/{fmt}" in message
        loaded = zoo.load(f"user/{fmt}", builder=lambda: UserNet(6, 1))
        assert state_bytes(loaded) == state_bytes(saved["models"]["user"])


@pytest.mark.slow
def test_a_builder_of_another_architecture_is_refused(saved):
    zoo = saved["zoo"]
    with pytest.raises(alphazoo.UnsupportedModelError, match="does not fit the UserNet"):
        zoo.load("user/json", builder=lambda: UserNet(n_in=5))
    with pytest.raises(TypeError, match="not an nn.Module"):
        zoo.load("user/pt", builder=dict)
    with pytest.raises(TypeError, match="callable"):
        zoo.load("user/pt", builder=UserNet())  # a module is not a builder


# -- fresh processes -----------------------------------------------------------------------------
FRESH_CHILD = textwrap.dedent(
    """
    import json, sys
    import numpy as np
    import alphazoo

    store, tests_dir, rows, seqs, keys, out = sys.argv[1:7]
    sys.path.insert(0, tests_dir)
    from test_torch_adapter import UserNet, native, state_bytes  # the user's own code

    zoo = alphazoo.Zoo(alphazoo.ObjectStore(store))
    X, S = np.load(rows), np.load(seqs)
    result = {}
    for key in json.loads(keys):
        name, fmt = key.split("/")
        options = {"builder": UserNet} if name == "user" and fmt != "pickle" else {}
        model = zoo.load(key, trusted=fmt == "pickle", **options)
        rows_ = S if name == "lstm" else X
        entry = {"type": type(model).__name__}
        if fmt == "onnx":
            entry["predict"] = np.asarray(model.predict(rows_), dtype=float).tolist()
            if "probabilities" in model.outputs:
                entry["proba"] = model.predict_proba(rows_).astype(float).tolist()
        else:
            entry["state"] = state_bytes(model)
            entry.update({k: v.tolist() for k, v in native(model, rows_).items()})
        result[key] = entry

    # Under the torch backend a Keras model is an nn.Module, but the keras adapter's to save.
    import os
    os.environ["KERAS_BACKEND"] = "torch"
    import keras
    import torch
    from alphazoo.adapters import torch as adapter
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    result["keras"] = [isinstance(model, torch.nn.Module), adapter.owns(model),
                       adapter.owns(torch.nn.Linear(3, 2))]
    with open(out, "w") as handle:
        json.dump(result, handle)
    """
)


@pytest.mark.slow
def test_every_bundle_loads_exactly_in_a_fresh_process(saved, data, tmp_path):
    rows, seqs, out = tmp_path / "rows.npy", tmp_path / "seqs.npy", tmp_path / "out.json"
    np.save(rows, data["X_new"])
    np.save(seqs, data["S_new"])
    keys = [f"{n}/{f}" for n, fs in SAVED.items() for f in fs]
    run_python(FRESH_CHILD, str(saved["store_dir"]), str(TESTS_DIR), str(rows), str(seqs),
               json.dumps(keys), str(out), cwd=tmp_path)
    result = json.loads(out.read_text())
    assert result.pop("keras") == [True, False, True]
    assert sorted(result) == sorted(keys)
    for name, formats in SAVED.items():
        model = saved["models"][name]
        expected = native(model, rows_for(name, data))
        for fmt in formats:
            child = result[f"{name}/{fmt}"]
            if fmt == "onnx":
                assert child["type"] == "OnnxPredictor"
                got = np.asarray(child["predict"])
                if "proba" in expected:
                    assert np.array_equal(got, expected["predict"])
                    np.testing.assert_allclose(child["proba"], expected["proba"], atol=1e-5)
                else:
                    np.testing.assert_allclose(got, expected["predict"], atol=1e-5, rtol=1e-5)
                continue
            assert child["type"] == type(model).__name__
            assert {k: tuple(v) for k, v in child["state"].items()} == {
                k: (d, s, b) for k, (d, s, b) in state_bytes(model).items()}, (name, fmt)
            assert np.array_equal(np.asarray(child["predict"]), expected["predict"]), (name, fmt)
            assert ("proba" in child) == ("proba" in expected)
            if "proba" in expected:
                assert np.array_equal(np.asarray(child["proba"]), expected["proba"])


BLOCKED_CHILD = blocking_prelude("torch") + textwrap.dedent(
    """
    import json, sys

    import numpy as np
    import alphazoo

    store, inputs, out = sys.argv[1:4]
    arrays = np.load(inputs)
    zoo = alphazoo.Zoo(alphazoo.ObjectStore(store))
    result = {"models": sorted(m.name for m in zoo.models() if m.library == "torch")}
    clf = zoo.load("mlp_clf/onnx")
    result["clf"] = {"predict": clf.predict(arrays["X_new"]).tolist(),
                     "proba": clf.predict_proba(arrays["X_new"]).astype(float).tolist()}
    seq = zoo.load("lstm/onnx")
    result["lstm"] = {name: seq.predict(arrays[name]).astype(float).tolist()
                      for name in ("S_new", "S_long", "S_short", "S_one")}
    for attempt in ("load", "build"):
        try:
            if attempt == "load":
                zoo.load("mlp_clf/json")
            else:
                zoo.build("torch_mlp", in_features=2, out_features=1)
        except alphazoo.MissingDependencyError as exc:
            result[attempt] = str(exc)
    result["loaded"] = sorted(n for n in sys.modules if n.partition(".")[0] == "torch")
    with open(out, "w") as handle:
        json.dump(result, handle)
    """
)


@pytest.mark.slow
def test_onnx_bundles_predict_without_torch(saved, data, tmp_path):
    inputs, out = tmp_path / "inputs.npz", tmp_path / "out.json"
    names = ("X_new", "S_new", "S_long", "S_short", "S_one")
    np.savez(inputs, **{name: data[name] for name in names})
    run_python(BLOCKED_CHILD, str(saved["store_dir"]), str(inputs), str(out), cwd=tmp_path)
    result = json.loads(out.read_text())

    assert result["loaded"] == []
    # listed without importing torch: the adapter's models and the zoo's (contrib) torch models
    assert result["models"] == ["alstm", "policy_gradient", "torch_lstm", "torch_mlp"]
    for attempt in ("load", "build"):
        assert "needs torch" in result[attempt] and "alphazoo[torch]" in result[attempt]
    clf = saved["models"]["mlp_clf"]
    expected = native(clf, data["X_new"])
    assert np.array_equal(np.asarray(result["clf"]["predict"]), expected["predict"])
    np.testing.assert_allclose(result["clf"]["proba"], expected["proba"], atol=1e-5)
    lstm = saved["models"]["lstm"]
    shapes = set()
    for name, values in result["lstm"].items():  # batch sizes 9, 4, 17, 1; windows 10, 23, 2, 1
        got = np.asarray(values)
        shapes.add(data[name].shape[:2])
        assert got.shape == (len(data[name]),)
        np.testing.assert_allclose(got, native(lstm, data[name])["predict"], atol=1e-5,
                                   rtol=1e-5)
    assert len({s[0] for s in shapes}) == 4 and len({s[1] for s in shapes}) == 4


# -- ONNX export ---------------------------------------------------------------------------------
@pytest.mark.slow
def test_onnx_parity_is_checked_before_saving(zoo, data):
    model = zoo.train(zoo.build("torch_mlp", in_features=6, out_features=1, hidden=[4]),
                      data["X"], data["y_reg"], epochs=1)
    with pytest.raises(alphazoo.OnnxParityError, match="not saved"):
        zoo.save(model, "strict", format="onnx", parity_tolerance=-1.0)
    assert zoo.store.keys() == []


@pytest.mark.slow
def test_onnx_sample_comes_from_example_input_or_sample(zoo, data):
    model = zoo.build("torch_mlp", in_features=6, out_features=1, hidden=[4])  # not trained
    manifest = zoo.save(model, "untrained", format="onnx")
    assert manifest["adapter_data"]["parity"]["sample"] == "MLP.example_input(64)"
    loaded = zoo.load("untrained")
    assert isinstance(loaded, OnnxPredictor) and loaded.task == "regression"
    np.testing.assert_allclose(loaded.predict(data["X_new"]), zoo.predict(model, data["X_new"]),
                               atol=1e-5)
    user = UserNet()  # no example_input, never trained through the zoo
    with pytest.raises(alphazoo.UnsupportedFormatError, match="sample="):
        zoo.save(user, "user", format="onnx")
    with pytest.raises(alphazoo.UnsupportedFormatError, match="float32"):
        zoo.save(user, "user", format="onnx", sample=data["X"])  # it computes in float64
    assert zoo.store.keys() == ["untrained"]


@pytest.mark.slow
def test_onnx_export_refuses_to_freeze_a_dynamic_axis(zoo, data):
    model = FlatSequenceNet()
    window = data["S"][:, :5]
    with pytest.raises(alphazoo.UnsupportedFormatError, match=r"fixed input axes \{1: 5\}"):
        zoo.save(model, "flat", format="onnx", sample=window)
    assert zoo.store.keys() == []
    manifest = zoo.save(model, "flat", format="onnx", sample=window, dynamic_axes={0: "batch"},
                        opset=18)
    assert manifest["adapter_data"]["dynamic_axes"] == {"0": "batch"}
    # The default tracer exported it; with the sequence axis free it could not, and dynamo,
    # tried next, named the axis it would have frozen (the refusal above).
    assert manifest["adapter_data"]["exporter"] == "torchscript"
    assert manifest["adapter_data"]["opset"]["ai.onnx"] == 18
    loaded = zoo.load("flat")
    np.testing.assert_allclose(loaded.predict(window[:3]), zoo.predict(model, window[:3]),
                               atol=1e-5)


# -- errors --------------------------------------------------------------------------------------
@pytest.mark.slow
def test_pickle_needs_trust(saved):
    with pytest.raises(alphazoo.UntrustedModelError, match="trusted=True"):
        saved["zoo"].load("user/pickle")


def test_a_torch_module_in_a_foreign_format_is_refused(zoo):
    model = zoo.build("torch_mlp", in_features=3, out_features=1)
    with pytest.raises(alphazoo.UnsupportedFormatError) as error:
        zoo.save(model, "x", format="skops")
    message = str(error.value)
    assert "torch" in message and "'skops'" in message
    for fmt in FORMATS:
        assert fmt in message
    assert zoo.store.keys() == []


@pytest.mark.slow
def test_unknown_options_are_refused(saved):
    zoo = saved["zoo"]
    model = saved["models"]["mlp_clf"]
    with pytest.raises(TypeError, match=r"save \(format 'json'\) got unexpected options"):
        zoo.save(model, "bad", format="json", opset=17)
    with pytest.raises(TypeError, match="dynamic_axes must map"):
        zoo.save(model, "bad", format="onnx", dynamic_axes={5: "batch"})
    with pytest.raises(TypeError, match=r"unexpected options \['map_location'\]"):
        zoo.load("mlp_clf/pt", map_location="cpu")
    with pytest.raises(TypeError, match=r"load \(format 'onnx'\) got unexpected options"):
        zoo.load("mlp_clf/onnx", builder=UserNet)
    assert not zoo.store.contains_key("bad")


def test_an_object_no_adapter_owns_names_torch(zoo):
    with pytest.raises(alphazoo.UnsupportedModelError) as error:
        zoo.save({"weights": [1.0]}, "x")
    message = str(error.value)
    assert "builtins.dict" in message and "torch" in message
    for fmt in FORMATS:
        assert f"torch:{fmt}" in message
    assert not zoo.store.contains_key("x")


# -- exactness corner cases ----------------------------------------------------------------------
class TiedNet(nn.Module):
    """Shares one weight between two layers; a non-persistent buffer that forward uses."""

    def __init__(self) -> None:
        super().__init__()
        self.encode = nn.Linear(4, 4)
        self.decode = nn.Linear(4, 4)
        self.decode.weight = self.encode.weight
        self.register_buffer("mask", torch.tensor([1.0, 0.0, 1.0, 0.5]), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decode(self.encode(x) * self.mask)


class StatefulNet(nn.Module):
    """Keeps non-tensor extra state in its state_dict (which json cannot hold, pt can)."""

    def __init__(self) -> None:
        super().__init__()
        self.linear = nn.Linear(3, 1)
        self.window = 0

    def get_extra_state(self) -> dict[str, int]:
        return {"window": self.window}

    def set_extra_state(self, state: dict[str, int]) -> None:
        self.window = state["window"]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(x)


@pytest.mark.parametrize("fmt", ["json", "safetensors", "pt"])
def test_tied_weights_and_buffer_dtypes_survive_a_dtype_change(zoo, fmt):
    model = TiedNet().double()  # converted after building: the builder makes float32
    zoo.save(model, "tied", format=fmt)
    loaded = zoo.load("tied", builder=TiedNet)
    assert loaded.decode.weight is loaded.encode.weight  # still one parameter
    assert len(list(loaded.parameters())) == len(list(model.parameters())) == 3
    assert loaded.mask.dtype == torch.float64
    assert state_bytes(loaded) == state_bytes(model)
    X = np.linspace(-1.0, 1.0, 12).reshape(3, 4)
    assert np.array_equal(zoo.predict(loaded, X), zoo.predict(model, X))
    with torch.no_grad():  # training the reload moves both layers together, as in the original
        loaded.encode.weight.add_(1.0)
    assert torch.equal(loaded.decode.weight, loaded.encode.weight)


def test_extra_state_refused_by_json_round_trips_through_pt(zoo):
    model = StatefulNet()
    model.window = 21
    with pytest.raises(alphazoo.UnsupportedFormatError, match="'pt'"):
        zoo.save(model, "stateful", format="json")
    zoo.save(model, "stateful", format="pt")  # the format the error recommends must load
    loaded = zoo.load("stateful", builder=StatefulNet)
    assert loaded.window == 21
    assert torch.equal(loaded.linear.weight, model.linear.weight)


@pytest.mark.slow
def test_input_signature_names_the_dtype_the_model_computes_in(saved):
    manifests = saved["manifests"]
    # Trained on float64 numpy rows, but these modules compute in float32 / float64.
    assert manifests["mlp_clf", "json"]["input"]["dtype"] == "float32"
    assert manifests["mlp_f64", "pt"]["input"]["dtype"] == "float64"
    assert manifests["lstm", "onnx"]["input"]["dtype"] == "float32"


@pytest.mark.slow
def test_onnx_exports_from_two_threads(zoo, data):
    import threading

    models = [zoo.build("torch_lstm", in_features=3, out_features=1, hidden=4, seed=seed)
              for seed in (0, 1)]
    errors: list[BaseException] = []

    def save(index: int) -> None:
        try:
            zoo.save(models[index], f"lstm{index}", format="onnx", sample=data["S"][:16])
        except BaseException as exc:  # reported below, with the thread's exception
            errors.append(exc)

    threads = [threading.Thread(target=save, args=(i,)) for i in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    for index, model in enumerate(models):  # both keep a free sequence axis
        loaded = zoo.load(f"lstm{index}")
        assert zoo.inspect(f"lstm{index}")["adapter_data"]["dynamic_axes"]["1"] == "sequence"
        np.testing.assert_allclose(loaded.predict(data["S_long"]),
                                   native(model, data["S_long"])["predict"], atol=1e-5)


@pytest.mark.slow
@pytest.mark.parametrize("name", ["mlp_clf", "lstm"])
def test_the_torchscript_exporter_writes_the_same_model(saved, data, tmp_path, name):
    # The older exporter, chosen for speed, must give what the module computes, with the
    # same free axes: classifier heads, and an LSTM over other window lengths.
    zoo = alphazoo.Zoo(alphazoo.ObjectStore(tmp_path))
    model = saved["models"][name]
    manifest = zoo.save(model, "m", format="onnx", exporter="torchscript",
                        sample=rows_for(name, data)[:16])
    assert manifest["adapter_data"]["exporter"] == "torchscript"
    loaded = zoo.load("m")
    inputs = ["X_new"] if name == "mlp_clf" else ["S_new", "S_long", "S_short"]
    for key in inputs:
        expected = native(model, data[key])
        np.testing.assert_allclose(loaded.predict(data[key]), expected["predict"], atol=1e-5)
        if "proba" in expected:
            np.testing.assert_allclose(loaded.predict_proba(data[key]), expected["proba"],
                                       atol=1e-6)
    with pytest.raises(ValueError, match="exporter must be one of dynamo, torchscript"):
        zoo.save(model, "bad", format="onnx", exporter="jit")
