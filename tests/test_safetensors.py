"""The ``safetensors`` weights format of the torch and keras adapters.

Round trips are bit-exact; the payload is the plain safetensors layout (read back with
safetensors' own numpy and torch readers, and a file written by the plain library loads
through alphazoo); crafted headers (a huge tensor, overlapping offsets, a length past the end)
are refused with typed alphazoo errors before the library reads them; the bundle's hash
covers the payload; and safetensors is imported only when the format is used.
"""

from __future__ import annotations

import json
import struct
import textwrap
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from _child import run_python
from _crafted import rebundle

import alphazoo
from alphazoo import BundleFormatError, BundleIntegrityError, BundleLimitError, LoadLimits
from alphazoo.adapters._safetensors import MARKER, check_payload
from alphazoo.bundle import read_bundle

torch = pytest.importorskip("torch", reason="the torch safetensors tests need torch")
safetensors_numpy = pytest.importorskip("safetensors.numpy")
safetensors_torch = pytest.importorskip("safetensors.torch")
nn = torch.nn


class OddNet(nn.Module):
    """Tensors of every awkward kind: float64, bfloat16, an int64 scalar, NaN and -0.0."""

    def __init__(self) -> None:
        super().__init__()
        self.linear = nn.Linear(6, 4).double()
        self.norm = nn.BatchNorm1d(4)  # running stats + num_batches_tracked (int64 scalar)
        self.out = nn.Linear(4, 1)
        self.register_buffer("scale", torch.linspace(0.5, 1.5, 4).to(torch.bfloat16))
        self.register_buffer("special", torch.tensor(
            [float("nan"), -0.0, float("inf"), 1e-45, -3.4e38], dtype=torch.float32))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.linear(x.double()) * self.scale.double()
        return self.out(self.norm(h.float()))


@pytest.fixture
def X() -> np.ndarray:
    return np.random.default_rng(5).normal(size=(40, 6))


@pytest.fixture
def trained(zoo, X) -> Any:
    y = X[:, 0] - 0.5 * X[:, 1]
    return zoo.train(zoo.build("torch_mlp", in_features=6, out_features=1, hidden=[8],
                               batch_norm=True), X, y, epochs=2)


def state_bytes(module: Any) -> dict[str, tuple[str, list[int], bytes]]:
    return {name: (str(t.dtype), list(t.shape),
                   t.detach().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
            for name, t in module.state_dict().items()}


def payload_of(zoo: Any, key: str, folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    opened = read_bundle(zoo.store, key, folder)
    (path,) = [p for name, p in opened.files.items() if name.endswith(".safetensors")]
    return path


def write_payload(path: Path, header: dict[str, Any] | bytes, data: bytes = b"",
                  length: int | None = None) -> Path:
    """A safetensors file from its parts; ``length`` overrides the header length field."""
    raw = header if isinstance(header, bytes) else json.dumps(header).encode()
    path.write_bytes(struct.pack("<Q", len(raw) if length is None else length) + raw + data)
    return path


def f32(shape: list[int], begin: int, end: int) -> dict[str, Any]:
    return {"dtype": "F32", "shape": shape, "data_offsets": [begin, end]}


# -- round trips ---------------------------------------------------------------------------------
def test_torch_round_trip_is_bit_exact_for_every_dtype(zoo, X):
    model = zoo.train(OddNet(), X, X[:, 0], epochs=1)
    manifest = zoo.save(model, "odd", format="safetensors")
    assert [f["name"] for f in manifest["files"]] == ["weights.safetensors"]
    assert manifest["libraries"]["safetensors"]  # the version that wrote it
    loaded = zoo.load("odd", builder=OddNet)
    assert state_bytes(loaded) == state_bytes(model)
    assert loaded.scale.dtype == torch.bfloat16 and loaded.linear.weight.dtype == torch.float64
    assert np.array_equal(zoo.predict(loaded, X), zoo.predict(model, X))


def test_a_zoo_model_reloads_by_itself_with_its_builder_and_classes(zoo, X):
    labels = np.array([3, 8])
    model = zoo.train(zoo.build("torch_mlp", in_features=6, out_features=2, hidden=[5]), X,
                      labels[(X[:, 0] > 0).astype(int)], epochs=2)
    manifest = zoo.save(model, "clf", format="safetensors")
    assert manifest["adapter_data"]["builder"]["zoo_model"] == "torch_mlp"
    loaded = zoo.load("clf")
    assert np.array_equal(loaded.classes_, labels)
    assert np.array_equal(zoo.predict(loaded, X), zoo.predict(model, X))
    assert state_bytes(loaded) == state_bytes(model)


def test_the_payload_is_the_tensors_bytes_plus_a_header(zoo, trained, tmp_path):
    zoo.save(trained, "st", format="safetensors")
    zoo.save(trained, "js", format="json")
    path = payload_of(zoo, "st", tmp_path / "st")
    (length,) = struct.unpack("<Q", path.read_bytes()[:8])
    tensors = sum(t.numel() * t.element_size() for t in trained.state_dict().values())
    assert path.stat().st_size == 8 + length + tensors  # no per-tensor overhead, no base64
    json_size = zoo.inspect("js")["files"][0]["size"]
    assert path.stat().st_size < json_size


# -- the layout other frameworks read ------------------------------------------------------------
def test_alphazoo_payloads_are_read_by_the_plain_library(zoo, X, tmp_path):
    model = zoo.train(OddNet(), X, X[:, 0], epochs=1)
    zoo.save(model, "odd", format="safetensors")
    path = payload_of(zoo, "odd", tmp_path)
    state = model.state_dict()
    from_torch = safetensors_torch.load_file(str(path))
    assert set(from_torch) == set(state)
    def raw(t: Any) -> bytes:
        return t.contiguous().reshape(-1).view(torch.uint8).numpy().tobytes()

    for name, tensor in state.items():
        assert from_torch[name].dtype == tensor.dtype, name
        assert raw(from_torch[name]) == raw(tensor), name
    # numpy has no bfloat16: safetensors' numpy reader takes it from ml_dtypes once imported.
    ml_dtypes = pytest.importorskip("ml_dtypes")
    from_numpy = safetensors_numpy.load_file(str(path))
    assert from_numpy["scale"].dtype == ml_dtypes.bfloat16
    assert np.array_equal(from_numpy["linear.weight"], state["linear.weight"].numpy())
    assert from_numpy["norm.num_batches_tracked"].dtype == np.int64
    from safetensors import safe_open

    with safe_open(str(path), "np") as handle:
        meta = handle.metadata()
    assert meta["format"] == "pt" and meta[MARKER[0]] == MARKER[1]  # as Hugging Face expects
    assert json.loads(meta["architecture"])["class"].endswith("OddNet")
    assert json.loads(meta["versions"])["norm"] == {"version": nn.BatchNorm1d._version}


def test_a_file_written_by_the_plain_library_loads_through_alphazoo(zoo, trained, X, tmp_path):
    zoo.save(trained, "mine", format="safetensors")
    plain = tmp_path / "weights.safetensors"
    safetensors_torch.save_file(dict(trained.state_dict()), str(plain))  # no metadata at all
    mine = payload_of(zoo, "mine", tmp_path / "mine")
    # The same tensors at the same offsets: only the header's __metadata__ differs.
    assert safetensors_numpy.load_file(str(plain)).keys() == \
        safetensors_numpy.load_file(str(mine)).keys()
    plain_bytes, mine_bytes = plain.read_bytes(), mine.read_bytes()
    tensors = sum(t.numel() * t.element_size() for t in trained.state_dict().values())
    assert plain_bytes[-tensors:] == mine_bytes[-tensors:]
    rebundle(zoo.store, "mine", "plain", plain)
    loaded = zoo.load("plain")
    assert state_bytes(loaded) == state_bytes(trained)
    assert np.array_equal(zoo.predict(loaded, X), zoo.predict(trained, X))


# -- hostile payloads ----------------------------------------------------------------------------
HOSTILE = {
    # name: (header, data, length override, error, message)
    "length past the end": (b"{}", b"", 2**63, BundleFormatError, "claims 9,223"),
    "too short": (None, b"", None, BundleFormatError, "too short"),
    "huge tensor": ({"w": f32([100_000, 100_000], 0, 40_000_000_000)}, b"\0" * 16, None,
                    BundleLimitError, "40,000,000,000"),
    "huge shape, small offsets": ({"w": f32([100_000, 100_000], 0, 16)}, b"\0" * 16, None,
                                  BundleLimitError, "max_bytes"),
    "offsets past the data": ({"w": f32([1000, 1000], 0, 4_000_000)}, b"\0" * 16, None,
                              BundleFormatError, "declare 4,000,000 bytes of data, but the "
                                                 "file holds 16"),
    "shape disagrees with offsets": ({"w": f32([1000], 0, 16)}, b"\0" * 16, None,
                                     BundleFormatError, "offsets span 16"),
    "overlapping offsets": ({"a": f32([4], 0, 16), "b": f32([4], 8, 24)}, b"\0" * 24, None,
                            BundleFormatError, "overlap"),
    "one region twice": ({"a": f32([4], 0, 16), "b": f32([4], 0, 16)}, b"\0" * 16, None,
                         BundleFormatError, "overlap"),
    "a gap": ({"a": f32([4], 0, 16), "b": f32([4], 20, 36)}, b"\0" * 36, None,
              BundleFormatError, "gap"),
    "trailing bytes": ({"a": f32([4], 0, 16)}, b"\0" * 20, None, BundleFormatError,
                       "file holds 20"),
    "unknown dtype": ({"w": {"dtype": "F128", "shape": [1], "data_offsets": [0, 16]}},
                      b"\0" * 16, None, BundleFormatError, "dtype 'F128'"),
    "sub-byte dtype": ({"w": {"dtype": "F4", "shape": [2], "data_offsets": [0, 1]}},
                       b"\0", None, BundleFormatError, "dtype 'F4'"),
    "negative dimension": ({"w": f32([-4], 0, 16)}, b"\0" * 16, None, BundleFormatError,
                           "shape"),
    "boolean dimension": ({"w": f32([True], 0, 4)}, b"\0" * 4, None, BundleFormatError,
                          "shape"),
    "float offsets": ({"w": {"dtype": "F32", "shape": [1], "data_offsets": [0.0, 4.0]}},
                      b"\0" * 4, None, BundleFormatError, "data_offsets"),
    "extra entry keys": ({"w": {**f32([1], 0, 4), "code": "x"}}, b"\0" * 4, None,
                         BundleFormatError, "not an entry"),
    "duplicate names": (b'{"w":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},'
                        b'"w":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}', b"\0" * 8,
                        None, BundleFormatError, "duplicate"),
    "not JSON": (b"\xff\xfe{", b"", None, BundleFormatError, "not valid JSON"),
    "not an object": (b"[1, 2]", b"", None, BundleFormatError, "not an object"),
    "metadata of numbers": ({"__metadata__": {"a": 1}}, b"", None, BundleFormatError,
                            "__metadata__"),
    "alphazoo metadata not JSON": ({"__metadata__": {MARKER[0]: MARKER[1], "versions": "{"}},
                                   b"", None, BundleFormatError, "'versions' is not JSON"),
    "a header too deep to parse": (b"[" * 100_000 + b"]" * 100_000, b"", None,
                                   BundleFormatError, "JSON"),
}


@pytest.mark.parametrize("case", list(HOSTILE))
def test_crafted_headers_are_refused_before_the_library_reads_them(case, tmp_path):
    header, data, length, error, message = HOSTILE[case]
    path = tmp_path / "weights.safetensors"
    if header is None:
        path.write_bytes(b"\x01\x02")
    else:
        write_payload(path, header, data, length)
    with pytest.raises(error, match=message.replace("(", r"\(")):
        check_payload(path, LoadLimits(max_bytes=64 * 1024 * 1024))


def test_large_payloads_are_mapped_and_bounded_the_same(zoo, X, tmp_path):
    from alphazoo.adapters._safetensors import load_tensors

    # Over 1 MiB: safetensors maps the file instead of taking its bytes.
    model = zoo.build("torch_mlp", in_features=6, out_features=1, hidden=[1024, 512])
    zoo.save(model, "big", format="safetensors")
    assert zoo.inspect("big")["files"][0]["size"] > 1 << 20
    loaded = zoo.load("big")
    assert state_bytes(loaded) == state_bytes(model)
    assert np.array_equal(zoo.predict(loaded, X), zoo.predict(model, X))
    half = 1 << 20
    crafted = write_payload(tmp_path / "w.safetensors",
                            {"a": f32([half // 4], 0, half), "b": f32([half // 4], 8, half + 8)},
                            b"\0" * (half + 8))
    with pytest.raises(BundleFormatError, match="overlap"):
        load_tensors(crafted, None, "torch")


def test_the_library_alone_fails_on_them_with_its_own_errors(tmp_path):
    # Why the checks exist: what the library raises is no alphazoo error a caller can catch.
    from safetensors import SafetensorError

    path = write_payload(tmp_path / "w.safetensors", {"a": f32([4], 0, 16),
                                                      "b": f32([4], 8, 24)}, b"\0" * 24)
    with pytest.raises(SafetensorError):
        safetensors_numpy.load_file(str(path))
    assert not issubclass(SafetensorError, alphazoo.AlphazooError)


def test_a_real_tensor_over_the_limit_is_a_limit_error(zoo, tmp_path):
    model = zoo.build("torch_mlp", in_features=6, out_features=1, hidden=[1024])
    zoo.save(model, "st", format="safetensors")
    path = payload_of(zoo, "st", tmp_path)
    check_payload(path)  # within the default limits
    # 1024x6 float32 = 24,576 bytes: over 20,000, with the header well under it.
    with pytest.raises(BundleLimitError, match=r"tensor 'layers\.0\.weight' \(F32\[1024, 6\]\) "
                                               r"needs 24,576"):
        check_payload(path, LoadLimits(max_bytes=20_000))


@pytest.mark.parametrize(("case", "error"), [
    ("huge tensor", BundleLimitError), ("overlapping offsets", BundleFormatError),
    ("length past the end", BundleFormatError)])
def test_hostile_payloads_in_a_bundle_give_typed_errors_on_load(zoo, trained, tmp_path, case,
                                                               error):
    zoo.save(trained, "real", format="safetensors")
    header, data, length, _, _ = HOSTILE[case]
    payload = write_payload(tmp_path / "weights.safetensors", header, data, length)
    rebundle(zoo.store, "real", "crafted", payload)  # hashes recomputed: the bundle is intact
    with pytest.raises(error):
        zoo.load("crafted")


def test_a_changed_payload_byte_fails_the_bundle_hash(zoo, trained, tmp_path):
    zoo.save(trained, "st", format="safetensors")
    blob = bytearray(zoo.store.read_bytes("st"))
    # The last weight's bytes sit at the payload's end; flip one inside the tensor data.
    header = blob.index(b'{"__metadata__"')
    (length,) = struct.unpack("<Q", bytes(blob[header - 8:header]))
    blob[header + length + 3] ^= 0x01
    zoo.store.save_bytes("st", bytes(blob))
    with pytest.raises(BundleIntegrityError, match="weights.safetensors|hash|sha256"):
        zoo.load("st")


def test_tensors_safetensors_cannot_hold_are_refused_at_save(zoo):
    class ComplexNet(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.register_buffer("phase", torch.ones(2, dtype=torch.complex64))

    with pytest.raises(alphazoo.UnsupportedFormatError, match="safetensors format holds dense "
                                                              "real tensors"):
        zoo.save(ComplexNet(), "c", format="safetensors")
    assert not zoo.store.contains_key("c")


# -- imports -------------------------------------------------------------------------------------
@pytest.mark.slow
def test_discovery_and_the_formats_command_import_no_safetensors(tmp_path):
    code = textwrap.dedent("""
        import contextlib, io, json, sys
        import alphazoo
        from alphazoo.cli import main
        names = [(s.adapter, s.name, s.safe) for s in alphazoo.Zoo(sys.argv[1]).formats()
                 if s.name == "safetensors"]
        with contextlib.redirect_stdout(io.StringIO()) as out:
            main(["formats"])
        print(json.dumps({"names": names, "listed": "safetensors" in out.getvalue(),
                          "loaded": [m for m in sys.modules
                                     if m.partition(".")[0] in ("safetensors", "torch")]}))
    """)
    result = json.loads(run_python(code, str(tmp_path / "store"), cwd=tmp_path).stdout)
    assert result["loaded"] == []
    # The sb3 adapter stores its policies' weights in the same container.
    assert sorted(result["names"]) == [["keras", "safetensors", True],
                                       ["sb3", "safetensors", True],
                                       ["torch", "safetensors", True]]
    assert result["listed"]


MISSING_CHILD = textwrap.dedent("""
    import json, sys
    import numpy as np
    import alphazoo
    {prelude}
    zoo = alphazoo.Zoo(alphazoo.ObjectStore(sys.argv[1]))
    model = zoo.build("torch_mlp", in_features=3, out_features=1)
    result = {{}}
    for attempt in ("save", "load"):
        try:
            if attempt == "save":
                zoo.save(model, "new", format="safetensors")
            else:
                zoo.load("saved")
        except alphazoo.MissingDependencyError as exc:
            result[attempt] = str(exc)
    zoo.save(model, "other", format="json")  # the other formats are unaffected
    result["stored"] = zoo.store.keys()
    print(json.dumps(result))
""")


@pytest.mark.slow
def test_without_the_package_the_format_names_the_extra_to_install(zoo, trained, tmp_path):
    from _child import blocking_prelude

    zoo.save(trained, "saved", format="safetensors")
    code = MISSING_CHILD.format(prelude=blocking_prelude("safetensors"))
    result = json.loads(run_python(code, str(tmp_path / "store"), cwd=tmp_path).stdout)
    for attempt in ("save", "load"):
        assert "pip install 'alphazoo[safetensors]'" in result[attempt], result
    assert "new" not in result["stored"] and "other" in result["stored"]


# -- the conformance kit -------------------------------------------------------------------------
CONFORMANCE = {
    "torch": lambda X, y: lambda zoo: zoo.train(
        zoo.build("torch_mlp", in_features=4, out_features=1, hidden=(8,)), X, y, epochs=2),
    "keras": lambda X, y: lambda zoo: zoo.train(
        zoo.build("keras_mlp", in_features=4, hidden=(8,)), X, y, epochs=1),
}


@pytest.mark.slow
@pytest.mark.parametrize("adapter", list(CONFORMANCE))
def test_the_format_passes_the_conformance_kit(adapter):
    pytest.importorskip(adapter)
    from alphazoo.testing import CHECK_NAMES, check_adapter

    rng = np.random.default_rng(3)
    X = rng.normal(size=(48, 4)).astype(np.float32)
    y = (X @ np.array([1.0, -2.0, 0.5, 0.0], np.float32)).astype(np.float32)
    report = check_adapter(f"alphazoo.adapters.{adapter}", CONFORMANCE[adapter](X, y), X, y,
                           formats=["safetensors"], library_modules=(adapter,))
    assert report.checks == list(CHECK_NAMES)
    assert report.formats == ["safetensors"]
