"""Signed-only loading, the key-binding rule for every format, configurable load limits, and
tree validation that lets real scikit-learn models through."""

from __future__ import annotations

import numpy as np
import pytest

import alphazoo
from alphazoo.bundle import write_bundle
from alphazoo.limits import DEFAULT_MAX_BYTES, LoadLimits

KEY = "team-key"


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch):
    for name in ("ALPHAZOO_SIGNING_KEY", "ALPHAZOO_REQUIRE_SIGNATURE", "ALPHAZOO_MAX_BYTES"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(5)
    X = rng.normal(size=(200, 4))
    return X, (X[:, 0] - X[:, 2] > 0).astype(int)


@pytest.fixture(scope="module")
def forest(data):
    from sklearn.ensemble import RandomForestClassifier

    X, y = data
    return RandomForestClassifier(n_estimators=5, max_depth=4, random_state=0).fit(X, y)


@pytest.fixture
def zoo(tmp_path):
    return alphazoo.Zoo(str(tmp_path / "store"))


# -- signed-only loading -------------------------------------------------------------------------
@pytest.mark.parametrize("fmt", ["skops", "onnx"])
def test_require_signature_refuses_unsigned_safe_formats(zoo, forest, data, fmt):
    X, _ = data
    zoo.save(forest, "plain", format=fmt, sample=X[:32])
    zoo.load("plain")  # a safe format loads unsigned by default
    for kwargs in ({"require_signature": True}, {"require_signature": True, "trusted": True},
                   {"require_signature": True, "sign_key": KEY}):
        with pytest.raises(alphazoo.UntrustedModelError, match="signed-only loading is on"):
            zoo.load("plain", **kwargs)


def test_require_signature_loads_a_bundle_signed_for_this_key(zoo, forest, data):
    X, _ = data
    zoo.save(forest, "signed", format="skops", sign_key=KEY)
    model = zoo.load("signed", require_signature=True, sign_key=KEY)
    assert np.array_equal(model.predict(X), forest.predict(X))
    with pytest.raises(alphazoo.UntrustedModelError, match="no signing key was given"):
        zoo.load("signed", require_signature=True)
    with pytest.raises(alphazoo.UntrustedModelError, match="does not verify"):
        zoo.load("signed", require_signature=True, sign_key="other-key")


def test_require_signature_per_zoo_and_by_environment(tmp_path, forest, monkeypatch):
    path = str(tmp_path / "store")
    alphazoo.Zoo(path).save(forest, "plain", format="skops")
    alphazoo.Zoo(path).save(forest, "signed", format="skops", sign_key=KEY)
    strict = alphazoo.Zoo(path, require_signature=True)
    with pytest.raises(alphazoo.UntrustedModelError, match="it is not signed"):
        strict.load("plain")
    with pytest.raises(alphazoo.UntrustedModelError):
        strict.load("plain", require_signature=False)  # a load cannot waive the zoo's demand
    strict.load("signed", sign_key=KEY)

    relaxed = alphazoo.Zoo(path)
    monkeypatch.setenv("ALPHAZOO_REQUIRE_SIGNATURE", "1")
    with pytest.raises(alphazoo.UntrustedModelError, match="ALPHAZOO_REQUIRE_SIGNATURE"):
        relaxed.load("plain", trusted=True)
    monkeypatch.setenv("ALPHAZOO_SIGNING_KEY", KEY)  # the key may come from the environment
    relaxed.load("signed")
    monkeypatch.setenv("ALPHAZOO_REQUIRE_SIGNATURE", "perhaps")
    with pytest.raises(ValueError, match="must be 1 or 0"):
        relaxed.load("signed")
    monkeypatch.setenv("ALPHAZOO_REQUIRE_SIGNATURE", "0")
    relaxed.load("plain")


# -- a signature vouches for its key, in every format --------------------------------------------
@pytest.mark.parametrize("fmt", ["skops", "onnx", "pickle"])
def test_a_signed_bundle_copied_to_another_key_is_refused(zoo, forest, data, fmt):
    X, _ = data
    zoo.save(forest, "team/model", format=fmt, sign_key=KEY, sample=X[:32])
    zoo.store.save_bytes("other/model", zoo.store.read_bytes("team/model"))
    with pytest.raises(alphazoo.UntrustedModelError, match="signed for key 'team/model'"):
        zoo.load("other/model", sign_key=KEY)
    with pytest.raises(alphazoo.UntrustedModelError, match="signed for key 'team/model'"):
        zoo.load("other/model", sign_key=KEY, require_signature=True, trusted=True)
    zoo.load("other/model", sign_key=KEY, trusted=True)  # the caller vouches instead
    zoo.load("team/model", sign_key=KEY)


def test_a_signed_keras_bundle_copied_to_another_key_is_refused_before_keras_runs(
        zoo, tmp_path):
    # The host decides before the adapter: the payload is never opened, Keras never imported.
    (tmp_path / "model.keras").write_bytes(b"not opened")
    manifest = {"key": "team/keras", "adapter": "keras", "format": "keras",
                "adapter_data": {"backend": "tensorflow", "task": "regression"}}
    write_bundle(zoo.store, "team/keras", manifest, tmp_path, ["model.keras"],
                 KEY.encode())
    zoo.store.save_bytes("other/keras", zoo.store.read_bytes("team/keras"))
    with pytest.raises(alphazoo.UntrustedModelError, match="signed for key 'team/keras'"):
        zoo.load("other/keras", sign_key=KEY)


def test_one_trust_function_decides_for_the_adapters():
    from alphazoo.contracts import LoadRequest
    from alphazoo.trust import may_run_code

    manifest = {"key": "a", "adapter": "keras", "format": "keras"}
    assert may_run_code(LoadRequest(manifest, {}, trusted=True, key="b"))
    assert may_run_code(LoadRequest(manifest, {}, signature_valid=True, key="a"))
    assert not may_run_code(LoadRequest(manifest, {}, signature_valid=True, key="b"))
    assert not may_run_code(LoadRequest(manifest, {}, key="a"))


# -- load limits ---------------------------------------------------------------------------------
def test_max_bytes_per_load_per_zoo_and_by_environment(tmp_path, forest, monkeypatch):
    path = str(tmp_path / "store")
    alphazoo.Zoo(path).save(forest, "rf", format="skops")
    with pytest.raises(alphazoo.BundleLimitError) as info:
        alphazoo.Zoo(path).load("rf", max_bytes=1000)
    error = info.value
    assert (error.limit, error.maximum) == ("max_bytes", 1000) and error.value > 1000
    assert "max_bytes=1,000" in str(error) and f"{error.value:,}" in str(error)
    alphazoo.Zoo(path).load("rf", max_bytes=10**8)
    with pytest.raises(alphazoo.BundleLimitError):
        alphazoo.Zoo(path, max_bytes=1000).load("rf")
    alphazoo.Zoo(path, max_bytes=1000).load("rf", max_bytes=10**8)  # the load's own wins
    monkeypatch.setenv("ALPHAZOO_MAX_BYTES", "1000")
    with pytest.raises(alphazoo.BundleLimitError):
        alphazoo.Zoo(path).load("rf")
    monkeypatch.setenv("ALPHAZOO_MAX_BYTES", "lots")
    with pytest.raises(ValueError, match="ALPHAZOO_MAX_BYTES"):
        alphazoo.Zoo(path).load("rf")


@pytest.mark.parametrize("value", [0, -1, 1.5, "10", True])
def test_load_limits_must_be_positive_integers(value):
    with pytest.raises(ValueError, match="max_bytes must be a positive integer"):
        LoadLimits(max_bytes=value)
    with pytest.raises(ValueError):
        alphazoo.Zoo("memory://limits", max_bytes=value)


def test_the_default_limit_is_far_above_real_bundles(zoo, data):
    from sklearn.ensemble import RandomForestRegressor

    X, y = data
    model = RandomForestRegressor(n_estimators=100, max_depth=None, random_state=0).fit(X, y)
    manifest = zoo.save(model, "big", format="skops")
    size = sum(entry["size"] for entry in manifest["files"])
    assert size * 10 < DEFAULT_MAX_BYTES
    assert np.array_equal(zoo.load("big").predict(X), model.predict(X))


# -- tree validation lets real models through ----------------------------------------------------
def _tree_models(X, y):
    from sklearn.ensemble import (
        ExtraTreesRegressor,
        GradientBoostingClassifier,
        HistGradientBoostingClassifier,
        RandomForestClassifier,
    )
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    from sklearn.tree import DecisionTreeRegressor

    categories = np.column_stack([X, (np.abs(X[:, 0]) * 3).astype(int) % 4])
    return [
        (RandomForestClassifier(n_estimators=10, random_state=0).fit(X, y), X),
        (ExtraTreesRegressor(n_estimators=5, random_state=0).fit(X, X[:, 1]), X),
        (GradientBoostingClassifier(n_estimators=10, random_state=0).fit(X, y), X),
        (make_pipeline(StandardScaler(), DecisionTreeRegressor(max_depth=None)).fit(X, y), X),
        (HistGradientBoostingClassifier(max_iter=10, categorical_features=[4])
         .fit(categories, y), categories),
    ]


def test_real_tree_models_pass_validation_and_predict_the_same(zoo, data):
    X, y = data
    for index, (model, inputs) in enumerate(_tree_models(X, y)):
        # Categorical histogram boosting stores a functools.partial, which skops does not
        # trust: that bundle loads with trusted=True, and its trees are validated all the same.
        categorical = index == 4
        with pytest.warns(UserWarning) if categorical else _no_warning():
            zoo.save(model, f"trees/{index}", format="skops")
        loaded = zoo.load(f"trees/{index}", trusted=categorical)
        assert np.array_equal(loaded.predict(inputs), model.predict(inputs)), type(model)


def _no_warning():
    import contextlib
    import warnings

    @contextlib.contextmanager
    def scope():
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            yield

    return scope()


def test_validation_counts_every_tree(data):
    from alphazoo.adapters._sklearn_trees import validate_trees

    X, y = data
    forest, _ = _tree_models(X, y)[0]
    assert validate_trees(forest, "forest") == 10
    boosted, _ = _tree_models(X, y)[4]
    assert validate_trees(boosted, "hgb") == 10  # one TreePredictor per iteration (binary)


def test_a_tree_whose_depth_exceeds_max_depth_is_refused(data):
    from sklearn.tree import DecisionTreeClassifier

    from alphazoo.adapters._sklearn_trees import validate_trees

    X, y = data
    model = DecisionTreeClassifier(max_depth=3, random_state=0).fit(X, y)
    state = model.tree_.__getstate__()
    state["max_depth"] = 1
    model.tree_.__setstate__(state)
    with pytest.raises(alphazoo.BundleFormatError, match="max_depth 1 but the nodes are 3 deep"):
        validate_trees(model, "tree")


# -- bounds on the other formats -----------------------------------------------------------------
def _keras_bundle(zoo, folder, key: str, members) -> None:
    from _crafted import write_zip

    write_zip(folder / "model.keras", members)
    manifest = {"key": key, "adapter": "keras", "format": "keras",
                "adapter_data": {"backend": "tensorflow", "task": "regression"}}
    write_bundle(zoo.store, key, manifest, folder, ["model.keras"])


def test_a_keras_archive_inflating_past_the_limit_is_refused(zoo, tmp_path):
    from _crafted import Bomb

    _keras_bundle(zoo, tmp_path, "keras/bomb", [
        ("metadata.json", b"{}"), ("config.json", b"{}"),
        ("model.weights.h5", Bomb(b"", 0, 300 * 2**20))])
    with pytest.raises(alphazoo.BundleLimitError, match="model.weights.h5") as info:
        zoo.load("keras/bomb", trusted=True)
    assert info.value.value > 300 * 2**20


def test_a_keras_archive_whose_hdf5_declares_gigabytes_is_refused(zoo, tmp_path):
    import h5py

    weights = tmp_path / "weights.h5"
    with h5py.File(weights, "w") as handle:  # chunked and compressed: a small file
        handle.create_dataset("layers/dense/vars/0", shape=(2**28,), dtype="f8",
                              chunks=(2**16,), compression="gzip")
    assert weights.stat().st_size < 100_000
    folder = tmp_path / "bundle"
    folder.mkdir()
    _keras_bundle(zoo, folder, "keras/h5", [
        ("metadata.json", b"{}"), ("config.json", b"{}"),
        ("model.weights.h5", weights.read_bytes())])
    with pytest.raises(alphazoo.BundleLimitError, match="dataset") as info:
        zoo.load("keras/h5", trusted=True)
    assert info.value.value == 2**31


def test_json_weights_declaring_a_huge_tensor_are_refused_before_decoding(tmp_path):
    import json

    from alphazoo.adapters._weights import read_weights

    path = tmp_path / "weights.json"
    entry = {"name": "w", "dtype": "float32", "shape": [10**6, 10**6], "data": ""}
    path.write_text(json.dumps({"format": "alphazoo-weights", "version": 1,
                                "tensors": [entry]}))
    with pytest.raises(alphazoo.BundleLimitError, match=r"weights entry 'w'") as info:
        read_weights(path)
    assert info.value.value == 4 * 10**12
    entry["shape"] = [2**62, 4]  # numpy's prod would wrap around to 0 here
    path.write_text(json.dumps({"format": "alphazoo-weights", "version": 1,
                                "tensors": [entry]}))
    with pytest.raises(alphazoo.BundleLimitError):
        read_weights(path)
    path.write_text("[1, 2]")
    with pytest.raises(alphazoo.BundleFormatError, match="not a JSON object"):
        read_weights(path)


def test_a_torch_state_dict_zip_inflating_past_the_limit_is_refused(zoo, tmp_path):
    from _crafted import Bomb, rebundle, write_zip

    torch = pytest.importorskip("torch")
    module = zoo.build("torch_mlp", in_features=4, out_features=1)
    zoo.save(module, "torch/pt", format="pt")
    assert isinstance(zoo.load("torch/pt"), torch.nn.Module)
    bomb = tmp_path / "state_dict.pt"
    write_zip(bomb, [("archive/data.pkl", b"\x80\x02}q\x00."),
                     ("archive/data/0", Bomb(b"", 0, 300 * 2**20))])
    rebundle(zoo.store, "torch/pt", "torch/bomb", bomb)
    with pytest.raises(alphazoo.BundleLimitError, match="archive/data/0"):
        zoo.load("torch/bomb")


@pytest.mark.parametrize("algorithm", ["kd_tree", "ball_tree"])
def test_neighbour_indexes_are_validated_too(zoo, data, algorithm):
    from sklearn.neighbors import KNeighborsClassifier

    X, y = data
    model = KNeighborsClassifier(n_neighbors=3, algorithm=algorithm).fit(X, y)
    zoo.save(model, f"knn/{algorithm}", format="skops")
    assert np.array_equal(zoo.load(f"knn/{algorithm}").predict(X), model.predict(X))
    _, idx_array, node_data, _ = model._tree.get_arrays()
    idx_array[0] = 10**9  # a crafted index into the training data: queries read far outside
    zoo.save(model, f"knn-crafted/{algorithm}", format="skops")
    with pytest.raises(alphazoo.BundleFormatError, match="idx_array entry lies outside"):
        zoo.load(f"knn-crafted/{algorithm}", trusted=True)
    idx_array[0] = 0
    node_data["is_leaf"][-1] = 0  # a last-level node claiming children that do not exist
    zoo.save(model, f"knn-childless/{algorithm}", format="skops")
    with pytest.raises(alphazoo.BundleFormatError, match="not marked a leaf"):
        zoo.load(f"knn-childless/{algorithm}")


def test_json_whose_objects_would_dwarf_its_text_is_refused(tmp_path):
    import json

    from alphazoo.adapters._weights import read_weights

    path = tmp_path / "weights.json"
    padding = "[" + "[]," * 100_000 + "[]]"  # 300 KB of text, 100,001 list objects
    path.write_text('{"format": "alphazoo-weights", "version": 1, "tensors": [], '
                    f'"padding": {padding}}}')
    json.loads(path.read_text())  # valid JSON: only its size in memory is the problem
    with pytest.raises(alphazoo.BundleLimitError, match="as Python objects"):
        read_weights(path, LoadLimits(max_bytes=2_000_000))
    assert read_weights(path, LoadLimits(max_bytes=50_000_000))[0] == []


@pytest.mark.slow
def test_a_manifest_whose_objects_would_dwarf_its_text_is_refused(zoo, forest, tmp_path):
    from alphazoo.bundle import read_bundle

    manifest = zoo.save(forest, "rf", format="skops")
    payload = read_bundle(zoo.store, "rf", tmp_path).files["model.skops"]
    fields = {k: v for k, v in manifest.items() if k not in ("files", "protocol", "signature")}
    write_bundle(zoo.store, "padded", {**fields, "key": "padded",
                                       "metadata": {"padding": [[]] * 200_000}},
                 payload.parent, [payload.name])
    with pytest.raises(alphazoo.BundleLimitError, match="the manifest of 'padded'"):
        zoo.load("padded", max_bytes=10_000_000)
    zoo.load("padded", max_bytes=100_000_000)
