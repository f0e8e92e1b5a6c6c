"""The manifest schema: every malformed field is a BundleFormatError naming the field, at read
time, before an adapter runs; a fuzz test over manifest fields finds no untyped failure."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import alphazoo
from alphazoo.bundle import read_bundle, write_bundle
from alphazoo.manifest_schema import (
    MANIFEST,
    array,
    either,
    integer,
    null,
    obj,
    string,
    validate,
    validate_manifest,
)


@pytest.fixture(scope="module")
def bundles(tmp_path_factory):
    """A memory store with a scikit-learn model saved as onnx, skops and pickle, and each
    bundle's manifest and payload folder (for rewriting it with recomputed hashes)."""
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.linear_model import LogisticRegression

    rng = np.random.default_rng(3)
    X = rng.normal(size=(120, 3))
    y = (X[:, 0] > 0).astype(int)
    zoo = alphazoo.Zoo(f"memory://schema-{id(tmp_path_factory)}")
    zoo.save(LogisticRegression().fit(X, y), "onnx", format="onnx", sample=X[:16])
    zoo.save(RandomForestClassifier(n_estimators=3, max_depth=3).fit(X, y), "skops",
             format="skops")
    zoo.save(LogisticRegression().fit(X, y), "pickle", format="pickle")
    saved = {}
    for fmt in ("onnx", "skops", "pickle"):
        folder = tmp_path_factory.mktemp(fmt)
        opened = read_bundle(zoo.store, fmt, folder)
        manifest = {k: v for k, v in opened.manifest.items()
                    if k not in ("files", "protocol", "signature")}
        saved[fmt] = (manifest, folder, list(opened.files))
    return zoo, saved


def rewrite(zoo, saved, fmt: str, key: str, edit) -> None:
    """Store the ``fmt`` bundle under ``key`` with ``edit(manifest)`` applied, hashes
    recomputed (as anyone who can write the store can)."""
    manifest, folder, names = saved[fmt]
    manifest = {**manifest, "key": key, "adapter_data": dict(manifest["adapter_data"])}
    edit(manifest)
    write_bundle(zoo.store, key, manifest, folder, names)


# -- the declared schema, field by field ---------------------------------------------------------
@pytest.mark.slow
@pytest.mark.parametrize("edit,field", [
    (lambda m: m.update(adapter_data={}), "adapter_data.task"),
    (lambda m: m.update(adapter_data=None), "adapter_data"),
    (lambda m: m.update(adapter_data="outputs"), "adapter_data"),
    (lambda m: m.update(adapter_data=[1, 2]), "adapter_data"),
    (lambda m: m["adapter_data"].pop("outputs"), "adapter_data.outputs"),
    (lambda m: m["adapter_data"].update(outputs=None), "adapter_data.outputs"),
    (lambda m: m["adapter_data"].update(outputs={"label": 5}), "adapter_data.outputs.label"),
    (lambda m: m["adapter_data"].update(task="ranking"), "adapter_data.task"),
    (lambda m: m["adapter_data"].update(classes="0,1"), "adapter_data.classes"),
    (lambda m: m.update(adapter=5), "adapter"),
    (lambda m: m.pop("adapter"), "adapter"),
    (lambda m: m.update(format=None), "format"),
    (lambda m: m.update(input="X"), "input"),
    (lambda m: m.update(input={"feature_names": "abc"}), "input.feature_names"),
    (lambda m: m.update(input={"feature_names": [1, 2]}), "input.feature_names[0]"),
    (lambda m: m.update(libraries=["onnx"]), "libraries"),
    (lambda m: m.update(libraries={"onnx": 1.2}), "libraries.onnx"),
    (lambda m: m.update(key=7), "key"),
    (lambda m: m.update(params="n=3"), "params"),
    (lambda m: m.update(metadata=[]), "metadata"),
])
def test_each_malformed_field_is_a_format_error_naming_it(bundles, edit, field):
    zoo, saved = bundles
    rewrite(zoo, saved, "onnx", "bad", edit)
    for kwargs in ({}, {"trusted": True}):
        with pytest.raises(alphazoo.BundleFormatError) as info:
            zoo.load("bad", **kwargs)
        assert info.value.field == field
        assert str(info.value).startswith(f"malformed bundle: {field}: ")
    # a BundleFormatError is a BundleIntegrityError: code catching corrupt bundles still works
    assert isinstance(info.value, alphazoo.BundleIntegrityError)


def test_outputs_naming_a_missing_graph_output_is_a_format_error(bundles):
    zoo, saved = bundles
    rewrite(zoo, saved, "onnx", "bad-output",
            lambda m: m["adapter_data"].update(outputs={"label": "no-such-output"}))
    with pytest.raises(alphazoo.BundleFormatError, match="no-such-output") as info:
        zoo.load("bad-output")
    assert info.value.field == "adapter_data.outputs"


def test_inspect_validates_the_top_level_too(bundles):
    zoo, saved = bundles
    rewrite(zoo, saved, "onnx", "bad-top", lambda m: m.update(name=["x"]))
    with pytest.raises(alphazoo.BundleFormatError, match="name"):
        zoo.inspect("bad-top")


def test_a_skops_payload_that_is_not_a_zip(bundles, tmp_path):
    zoo, saved = bundles
    manifest = {**saved["skops"][0], "key": "not-zip"}
    (tmp_path / "model.skops").write_bytes(b"PK\x03\x04 but not really a zip")
    write_bundle(zoo.store, "not-zip", manifest, tmp_path, ["model.skops"])
    with pytest.raises(alphazoo.BundleFormatError, match="not a readable zip") as info:
        zoo.load("not-zip")
    assert info.value.field == "model.skops"


def test_validate_names_nested_paths_and_accepts_undeclared_fields():
    spec = obj(required={"a": array(either(integer(minimum=0), null))},
               optional={"b": string(choices=("x", "y"))})
    validate({"a": [1, None], "extra": {"anything": [1]}}, spec, "root")
    with pytest.raises(alphazoo.BundleFormatError) as info:
        validate({"a": [1, -2]}, spec, "root")
    assert info.value.field == "root.a[1]"
    with pytest.raises(alphazoo.BundleFormatError, match="one of 'x', 'y'"):
        validate({"a": [], "b": "z"}, spec, "root")
    with pytest.raises(alphazoo.BundleFormatError, match="true or false|an integer"):
        validate({"a": [True]}, spec, "root")  # a boolean is not an integer in a manifest


def test_every_manifest_the_zoo_writes_passes_the_schema(bundles):
    zoo, saved = bundles
    for fmt in saved:
        validate_manifest(zoo.inspect(fmt))
    assert set(MANIFEST.required) == {"adapter", "format", "files"}


# -- fuzzing -------------------------------------------------------------------------------------
_json = st.recursive(
    st.none() | st.booleans() | st.integers(-2**70, 2**70)
    | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=12),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner,
                                                                max_size=4),
    max_leaves=12,
)
_TOP = ["key", "name", "params", "adapter", "format", "model_class", "libraries", "python",
        "alphazoo", "input", "training", "metadata", "adapter_data", "created", "unknown"]
_DATA = ["task", "outputs", "classes", "untrusted_types", "parity", "opset", "estimator"]


@st.composite
def _edits(draw):
    edits = []
    for _ in range(draw(st.integers(1, 3))):
        where = draw(st.sampled_from(["top", "adapter_data", "outputs", "input"]))
        field = draw(st.sampled_from(_TOP if where == "top" else
                                     _DATA if where == "adapter_data" else
                                     ["label", "probabilities", "value", "feature_names"]))
        value = draw(st.one_of(_json, st.just("__delete__"),
                               st.sampled_from(["sklearn", "xgboost", "onnx", "skops", "label",
                                                "classification", "regression", "pickle"])))
        edits.append((where, field, value))
    return edits


def _apply(manifest: dict, edits) -> None:
    for where, field, value in edits:
        if where == "top":
            target = manifest
        elif where == "adapter_data":
            target = manifest.get("adapter_data")
        elif where == "outputs":
            data = manifest.get("adapter_data")
            target = data.get("outputs") if isinstance(data, dict) else None
        else:
            target = manifest.get("input")
        if not isinstance(target, dict):
            continue
        if value == "__delete__":
            target.pop(field, None)
        else:
            target[field] = value


@pytest.mark.slow
@settings(max_examples=300, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture,
                                 HealthCheck.too_slow])
@given(fmt=st.sampled_from(["onnx", "skops", "pickle"]), edits=_edits(),
       trusted=st.booleans())
def test_fuzzed_manifest_fields_fail_only_with_typed_errors(bundles, fmt, edits, trusted):
    zoo, saved = bundles
    manifest, folder, names = saved[fmt]
    manifest = {**manifest, "key": "fuzz", "adapter_data": dict(manifest["adapter_data"]),
                "input": dict(manifest.get("input") or {})}
    if isinstance(manifest["adapter_data"].get("outputs"), dict):
        manifest["adapter_data"]["outputs"] = dict(manifest["adapter_data"]["outputs"])
    _apply(manifest, edits)
    try:
        write_bundle(zoo.store, "fuzz", manifest, folder, names)
    except (TypeError, ValueError):
        return  # not JSON-serializable as canonical JSON: no such bundle can exist
    try:
        zoo.load("fuzz", trusted=trusted)
    except alphazoo.AlphazooError as exc:
        assert str(exc)  # typed and explained
    except Exception as exc:  # pragma: no cover - the failure this test exists to find
        pytest.fail(f"untyped {type(exc).__name__} for edits {edits}: {exc}")
