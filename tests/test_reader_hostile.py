"""The one-file reader against crafted bundles: checked before parsed, bounded, typed errors.

Every bundle here is self-consistent (its hashes match) unless a test says otherwise; what is
hostile is the manifest or the payload. Bombs that onnxruntime would allocate run in a child
under an address-space limit, so a missing check fails the test instead of the machine.
"""

from __future__ import annotations

import base64
import builtins
import json
import pickle
import struct
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
from _child import HANG_TIMEOUT
from _crafted import Bomb, constant_of_shape_onnx, write_zip

from alphazoo import ObjectStore
from alphazoo.bundle import write_bundle

pytest.importorskip("onnxruntime", reason="needs alphazoo[onnx]")

KEY = b"team-key"
ADDRESS_SPACE = 2 * 1024 * 1024 * 1024




def bundle(tmp_path: Path, payload: bytes, *, key: str = "m/x", sign_key: bytes | None = None,
           **manifest: Any) -> bytes:
    folder = tmp_path / "payload"
    folder.mkdir(exist_ok=True)
    (folder / "model.bin").write_bytes(payload)
    store = ObjectStore(tmp_path / "store")
    fields = {"key": key, "adapter": "sklearn", "format": "onnx", "model_class": "X", **manifest}
    write_bundle(store, key, fields, folder, ["model.bin"], sign_key)
    return store.read_bytes(key)


class _Pwn:
    def __reduce__(self) -> tuple[Any, ...]:
        return exec, ("import builtins; builtins._reader_pwned = True",)


def test_the_manifest_is_parsed_only_after_the_closing_sha256_verifies(reader, tmp_path) -> None:
    raw = bytearray(bundle(tmp_path, b"x"))
    length = struct.unpack(">HQ", raw[16:26])[1]
    raw[26:26 + length] = b"[" * length  # not JSON, and the closing SHA-256 no longer matches
    with pytest.raises(reader.BundleIntegrityError, match="SHA-256 does not match"):
        reader.read_bundle_bytes(bytes(raw))


def test_a_signature_grants_trust_only_for_the_key_given(reader, tmp_path) -> None:
    signed = bundle(tmp_path, pickle.dumps(_Pwn()), key="team/a", sign_key=KEY,
                    format="pickle")
    try:
        for kwargs in ({}, {"key": "other/b"}):  # bytes copied to another key, or no key told
            with pytest.raises(reader.UntrustedModelError, match="vouches only for the key"):
                reader.load(signed, sign_key=KEY, **kwargs)
        assert not hasattr(builtins, "_reader_pwned")
        reader.load(signed, sign_key=KEY, key="team/a")
        assert builtins._reader_pwned is True  # the same bytes under their own key do load
    finally:
        builtins.__dict__.pop("_reader_pwned", None)


def test_max_bytes_bounds_the_bundle_and_names_the_limit(reader, tmp_path) -> None:
    raw = bundle(tmp_path, b"x" * 5000)
    with pytest.raises(reader.BundleLimitError, match="limit max_bytes=4,096"):
        reader.load(raw, max_bytes=4096)
    with pytest.raises(reader.ReaderError):
        reader.load(raw, max_bytes=4096)


def test_a_keras_archive_is_bounded_by_its_members_declared_sizes(reader, tmp_path) -> None:
    archive = tmp_path / "bomb.keras"
    write_zip(archive, [("config.json", b"{}"), ("model.weights.h5", Bomb(b"", 0, 64 << 20))])
    raw = bundle(tmp_path, archive.read_bytes(), adapter="keras", format="keras")
    with pytest.raises(reader.BundleLimitError, match=r"members.*limit max_bytes=1,048,576"):
        reader.load(raw, trusted=True, max_bytes=1 << 20)
    with pytest.raises(reader.BundleIntegrityError, match="not a zip"):
        reader.load(bundle(tmp_path, b"PK\3\4 no zip", adapter="keras", format="keras"),
                    trusted=True)


def _weights(shape: list[int], data: bytes = b"") -> bytes:
    return json.dumps({"format": "alphazoo-weights", "version": 1, "hmmlearn": {}, "tensors": [
        {"name": "t", "dtype": "float64", "shape": shape,
         "data": base64.b64encode(data).decode()}]}).encode()


@pytest.mark.parametrize("payload, error, match", [
    # int64 products wrap around: 2**32 * 2**32 * 8 bytes "is" 0 bytes, as the data given
    (_weights([2**32, 2**32]), "BundleLimitError", "shape"),
    (_weights([-1, 0]), "BundleIntegrityError", "bad dimensions"),
    (b"[]", "BundleIntegrityError", "not an object"),
    (json.dumps({"format": "alphazoo-weights", "version": 1, "tensors": [7]}).encode(),
     "BundleIntegrityError", "not an object"),
])
def test_weights_documents_are_checked_before_arrays_are_made(reader, tmp_path, payload, error,
                                                              match) -> None:
    raw = bundle(tmp_path, payload, adapter="hmmlearn", format="json")
    with pytest.raises(getattr(reader, error), match=match):
        reader.load(raw)


def test_malformed_manifests_and_payloads_raise_the_readers_errors(reader, tmp_path) -> None:
    cases = [bundle(tmp_path, b"\xff\x00 not protobuf"),
             bundle(tmp_path, b"", adapter_data=["not", "an", "object"]),
             bundle(tmp_path, b"{}", adapter="xgboost", format="json",
                    adapter_data={"estimator": "Booster"})]
    for raw in cases:
        with pytest.raises(reader.BundleIntegrityError):
            reader.load(raw)


CHILD = textwrap.dedent("""
    import importlib.util, resource, sys
    resource.setrlimit(resource.RLIMIT_AS, (int(sys.argv[2]), int(sys.argv[2])))
    spec = importlib.util.spec_from_file_location("alphazoo_reader", sys.argv[1])
    reader = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(reader)
    import onnxruntime  # imported before the bombs, so a refusal is not an import failure
    for path in sys.argv[3:]:
        try:
            reader.load(open(path, "rb").read())
            print("loaded")
        except reader.ReaderError as exc:
            print(type(exc).__name__, str(exc).replace("\\n", " "))
""")


@pytest.mark.slow  # a bounded child interpreter per case
def test_onnx_graphs_that_declare_gigabytes_are_refused_before_a_session(
        reader_file, tmp_path) -> None:
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper

    paths = []
    for via in ("constant", "initializer"):  # 40 GB of ConstantOfShape, folded at session start
        constant_of_shape_onnx(tmp_path / f"{via}.onnx", 100_000, 100_000, via=via)
        paths.append((tmp_path / f"{via}.onnx").read_bytes())

    def graph(initializer: Any) -> bytes:
        model = helper.make_model(helper.make_graph(
            [helper.make_node("Add", ["X", "w"], ["Y"])], "g",
            [helper.make_tensor_value_info("X", TensorProto.FLOAT, [None, 1])],
            [helper.make_tensor_value_info("Y", TensorProto.FLOAT, [None, 1])], [initializer]),
            opset_imports=[helper.make_opsetid("", 13)])
        model.ir_version = 8
        return model.SerializeToString()

    huge = TensorProto(name="w", data_type=TensorProto.FLOAT, dims=[60_000, 60_000])  # no data
    paths.append(graph(huge))
    values = TensorProto(name="w", data_type=TensorProto.FLOAT, dims=[1], float_data=[1.0])
    indices = TensorProto(name="i", data_type=TensorProto.INT64, dims=[1], int64_data=[0])
    sparse = helper.make_sparse_tensor(values, indices, [60_000, 60_000])  # densified: 14 GB
    model = onnx.ModelProto()
    model.ParseFromString(graph(TensorProto(name="unused", data_type=TensorProto.FLOAT)))
    model.graph.sparse_initializer.append(sparse)
    paths.append(model.SerializeToString())
    outside = TensorProto(name="w", data_type=TensorProto.FLOAT, dims=[1])
    outside.data_location = TensorProto.EXTERNAL
    outside.external_data.add(key="location", value="/etc/hostname")
    paths.append(graph(outside))
    files = []
    for number, payload in enumerate(paths):
        folder = tmp_path / str(number)
        folder.mkdir()
        files.append(folder / "bundle")
        files[-1].write_bytes(bundle(folder, payload))
    result = subprocess.run([sys.executable, "-c", CHILD, str(reader_file), str(ADDRESS_SPACE),
                             *map(str, files)], capture_output=True, text=True,
                            timeout=HANG_TIMEOUT)
    assert result.returncode == 0, result.stderr[-3000:]
    lines = result.stdout.strip().splitlines()
    assert [line.split()[0] for line in lines] == ["BundleLimitError"] * 4 + [
        "BundleIntegrityError"], lines
    assert all("max_bytes=268,435,456" in line for line in lines[:4]), lines
    assert "external_data" in lines[4]


def test_keras_hdf5_weights_are_bounded_by_their_declared_shapes(reader, tmp_path) -> None:
    h5py = pytest.importorskip("h5py")
    weights = tmp_path / "model.weights.h5"
    with h5py.File(weights, "w") as handle:  # 14 GB declared; unwritten chunks take no space
        handle.create_dataset("layers/dense/vars/0", shape=(60_000, 60_000), dtype="float32",
                              chunks=(1000, 1000), compression="gzip")
    archive = tmp_path / "model.keras"
    write_zip(archive, [("config.json", b"{}"), ("model.weights.h5", weights.read_bytes())])
    raw = bundle(tmp_path, archive.read_bytes(), adapter="keras", format="keras")
    with pytest.raises(reader.BundleLimitError, match=r"model.weights.h5:/layers/dense/vars/0"):
        reader.load(raw, trusted=True)


def test_a_manifest_is_bounded_by_what_its_json_becomes(reader, tmp_path) -> None:
    raw = bundle(tmp_path, b"x", padding=[[]] * 40_000)  # 160 kB of text, MBs of lists
    with pytest.raises(reader.BundleLimitError, match="the manifest .*as Python objects"):
        reader.load(raw, max_bytes=1 << 20)
    assert reader.read_bundle_bytes(raw)[0]["padding"] == [[]] * 40_000  # fine by default


@pytest.mark.slow  # a bounded child interpreter per case
def test_xgboost_json_counts_are_checked_before_xgboost_reads_them(reader_file, tmp_path) -> None:
    xgboost = pytest.importorskip("xgboost")
    import numpy as np

    X = np.random.default_rng(0).normal(size=(60, 3))
    booster = xgboost.train({"max_depth": 2}, xgboost.DMatrix(X, X[:, 0] > 0), 2)
    booster.save_model(tmp_path / "m.json")
    booster.save_model(tmp_path / "m.ubj")
    one = b"size_leaf_vectorSL" + (1).to_bytes(8, "big") + b"1"
    ubj = (tmp_path / "m.ubj").read_bytes()
    assert one in ubj
    ubj = ubj.replace(one, b"size_leaf_vectorSL" + (10).to_bytes(8, "big") + b"1000000000")
    files = []
    for number, (where, field) in enumerate([("tree", "size_leaf_vector"),  # a segfault
                                             ("learner", "num_class")]):  # 8 GB allocated
        model = json.loads((tmp_path / "m.json").read_text())
        learner = model["learner"]
        params = (learner["gradient_booster"]["model"]["trees"][0]["tree_param"]
                  if where == "tree" else learner["learner_model_param"])
        params[field] = "1000000000"
        folder = tmp_path / str(number)
        folder.mkdir()
        files.append(folder / "bundle")
        files[-1].write_bytes(bundle(folder, json.dumps(model).encode(), adapter="xgboost",
                                     format="json", adapter_data={"estimator": "Booster"}))
    (tmp_path / "ubj").mkdir()
    files.append(tmp_path / "ubj" / "bundle")
    files[-1].write_bytes(bundle(tmp_path / "ubj", ubj, adapter="xgboost", format="ubj",
                                 adapter_data={"estimator": "Booster"}))
    result = subprocess.run([sys.executable, "-c", CHILD, str(reader_file), str(ADDRESS_SPACE),
                             *map(str, files)], capture_output=True, text=True,
                            timeout=HANG_TIMEOUT)
    assert result.returncode == 0, (result.returncode, result.stderr[-3000:])
    lines = result.stdout.strip().splitlines()
    assert lines[0].startswith("BundleIntegrityError") and "exceed the tree" in lines[0], lines
    assert lines[1].startswith("BundleLimitError") and "xgboost num_class" in lines[1], lines
    assert lines[2].startswith("BundleIntegrityError ") and "exceed the tree" in lines[2], lines


def test_keras_archive_members_are_counted_before_zipfile_reads_them(reader, tmp_path,
                                                                    monkeypatch) -> None:
    archive = tmp_path / "many.keras"
    write_zip(archive, [(f"{n}.json", b"") for n in range(10_001)])
    raw = bundle(tmp_path, archive.read_bytes(), adapter="keras", format="keras")

    def refuse(*args: Any) -> None:
        raise AssertionError("zipfile read the central directory before it was counted")

    monkeypatch.setattr(reader.zipfile, "ZipFile", refuse)
    with pytest.raises(reader.BundleLimitError, match="limit max_members=10,000"):
        reader.load(raw, trusted=True)


def test_a_signature_lifts_keras_safe_mode_only_for_the_key_given(reader, tmp_path) -> None:
    keras = pytest.importorskip("keras")
    import numpy as np
    model = keras.Sequential([keras.Input((2,)), keras.layers.Lambda(lambda x: x * 2.0)])
    model.save(tmp_path / "lambda.keras")  # a Lambda runs code: safe mode refuses it
    raw = bundle(tmp_path, (tmp_path / "lambda.keras").read_bytes(), key="team/k",
                 sign_key=KEY, adapter="keras", format="keras")
    for kwargs in ({}, {"key": "other/k"}):
        with pytest.raises(reader.UntrustedModelError, match="safe mode refused"):
            reader.load(raw, sign_key=KEY, **kwargs)
    loaded = reader.load(raw, sign_key=KEY, key="team/k")
    assert loaded.model.predict(np.array([[1.0, 2.0]]), verbose=0).tolist() == [[2.0, 4.0]]


def test_standing_alone_the_reader_raises_its_own_error_classes(reader_file, tmp_path) -> None:
    path = tmp_path / "b"
    path.write_bytes(bundle(tmp_path, b"x" * 5000))
    code = textwrap.dedent("""
        import importlib.util, sys
        sys.modules["alphazoo"] = None  # as on QuantConnect: alphazoo cannot be imported
        spec = importlib.util.spec_from_file_location("alphazoo_reader", sys.argv[1])
        reader = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(reader)
        try:
            reader.load(open(sys.argv[2], "rb").read(), max_bytes=4096)
        except reader.ReaderError as exc:
            print(type(exc).__module__, type(exc).__name__, exc.limit, exc.maximum, exc)
    """)
    result = subprocess.run([sys.executable, "-c", code, str(reader_file), str(path)],
                            capture_output=True, text=True, timeout=HANG_TIMEOUT)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.startswith("alphazoo_reader BundleLimitError max_bytes 4096 "), (
        result.stdout)
    assert "limit max_bytes=4,096" in result.stdout
