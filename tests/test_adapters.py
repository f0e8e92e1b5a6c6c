"""What all five adapters promise together: discovery without imports, one format table with a
safe default each, clear errors for objects and formats nobody handles, and the shared pieces
(`_weights`: bit-exact JSON tensors; `_common`: format and option checks)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from _child import HANG_TIMEOUT

import alphazoo
from alphazoo.adapters._common import check_options, choose_format
from alphazoo.adapters._weights import (
    Tensor,
    decode_tensors,
    encode_tensors,
    read_weights,
    write_weights,
)

ADAPTERS = {
    # adapter: (its library's distribution, the formats the issue names)
    "sklearn": ("scikit-learn", {"skops", "pickle", "onnx"}),
    "xgboost": ("xgboost", {"json", "ubj", "pickle", "onnx"}),
    "torch": ("torch", {"json", "safetensors", "pt", "pickle", "onnx"}),
    "keras": ("keras", {"json", "safetensors", "keras", "pickle", "onnx"}),
    "hmmlearn": ("hmmlearn", {"json", "pickle"}),
    "sb3": ("stable-baselines3", {"json", "safetensors", "pickle", "onnx"}),
    "lightgbm": ("lightgbm", {"text", "pickle", "onnx"}),
}
HEAVY = ("torch", "tensorflow", "keras", "sklearn", "xgboost", "hmmlearn", "lightgbm", "catboost",
         "onnxruntime", "onnx", "skops", "pandas", "stable_baselines3", "gymnasium", "safetensors")


def test_plugins_lists_every_adapter_with_its_library_version_without_importing_it():
    code = (
        "import json, sys\n"
        "from alphazoo.cli import collect_plugins\n"
        "from alphazoo import Zoo\n"
        "rows = collect_plugins()\n"
        "formats = [(f.adapter, f.name, f.safe, f.default) for f in Zoo().formats()]\n"
        f"heavy = [m for m in {HEAVY!r} if m in sys.modules]\n"
        "print(json.dumps({'rows': rows, 'formats': formats, 'heavy': heavy}))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            timeout=HANG_TIMEOUT)
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout)
    assert out["heavy"] == []
    rows = {row["name"]: row for row in out["rows"]}
    from alphazoo.compat.installed import installed_version

    for adapter, (library, _) in ADAPTERS.items():
        row = rows[adapter]
        assert row["status"] == "loaded", row
        first = row["requires"][0]
        assert first["name"] == library
        assert first["installed"] == installed_version(library) is not None


@pytest.fixture(scope="module")
def formats() -> list[alphazoo.FormatSpec]:
    return alphazoo.Zoo("memory://adapters-formats").formats()


@pytest.mark.parametrize("adapter", sorted(ADAPTERS))
def test_each_adapter_declares_the_promised_formats_with_one_safe_default(formats, adapter):
    specs = [spec for spec in formats if spec.adapter == adapter]
    assert {spec.name for spec in specs} == ADAPTERS[adapter][1]
    defaults = [spec for spec in specs if spec.default]
    assert len(defaults) == 1 and defaults[0].safe, defaults
    assert {spec.name for spec in specs if not spec.safe} == {"pickle"}


def test_an_object_no_adapter_handles_names_adapters_and_formats(tmp_path):
    zoo = alphazoo.Zoo(tmp_path / "store")
    with pytest.raises(alphazoo.UnsupportedModelError) as error:
        zoo.save({"weights": [1, 2]}, "a/dict")
    message = str(error.value)
    assert "builtins.dict" in message
    for adapter in ADAPTERS:
        assert adapter in message
    assert "xgboost:ubj" in message and "torch:pt" in message and "hmmlearn:json" in message
    assert len(zoo.store) == 0


def _refusal(zoo, model, fmt):
    with pytest.raises(alphazoo.UnsupportedFormatError) as error:
        zoo.save(model, "refused", fmt)
    assert len(zoo.store) == 0
    return str(error.value)


def test_a_format_of_another_adapter_is_refused_naming_the_adapters_that_write_it(tmp_path):
    from sklearn.linear_model import LinearRegression

    zoo = alphazoo.Zoo(tmp_path / "store")
    model = LinearRegression().fit(np.eye(3), [1.0, 2.0, 3.0])
    assert "the scikit-learn adapter writes skops, pickle, onnx, not 'pt'" in _refusal(
        zoo, model, "pt")
    assert _refusal(zoo, model, "pt").endswith("; pt is the torch adapter's format")
    # Every adapter that writes json is named, in order, and the owner (sklearn) is not.
    writers = sorted({spec.adapter for spec in zoo.formats() if spec.name == "json"})
    assert "sklearn" not in writers and len(writers) > 2
    assert _refusal(zoo, model, "json").endswith(
        f"; json is a format of the {', '.join(writers[:-1])} and {writers[-1]} adapters")
    # No adapter writes it: the message stays the owner's.
    assert _refusal(zoo, model, "nonesuch").endswith("not 'nonesuch'")


def test_an_adapters_own_reason_for_a_missing_format_comes_first(tmp_path):
    from hmmlearn.hmm import GaussianHMM

    zoo = alphazoo.Zoo(tmp_path / "store")
    model = GaussianHMM(n_components=2, n_iter=2, random_state=0).fit(
        np.random.default_rng(0).normal(size=(40, 1)))
    message = _refusal(zoo, model, "onnx")
    reason, _, writers = message.partition("; onnx is a format of the ")
    assert "no ONNX converter exists for hmmlearn models" in reason
    assert "sklearn" in writers and "hmmlearn" not in writers


# -- _weights: bit-exact JSON tensors -------------------------------------------------------------
def _bits(array: np.ndarray) -> bytes:
    return np.ascontiguousarray(array).tobytes()


@pytest.mark.parametrize("dtype", ["float16", "float32", "float64", "int8", "int64", "uint16",
                                   "bool"])
def test_weights_round_trip_bit_exact(tmp_path, dtype):
    rng = np.random.default_rng(0)
    array = (rng.normal(size=(3, 5)) * 100).astype(dtype)
    if array.dtype.kind == "f":
        array.flat[0], array.flat[1], array.flat[2] = np.nan, -0.0, np.inf
    path = tmp_path / "w.json"
    write_weights(path, {"w": array, "t": array.T, "scalar": array[0, 0]}, arch={"n": 1})
    tensors, header = read_weights(path)
    assert header == {"arch": {"n": 1}}
    by_name = {tensor.name: tensor.array for tensor in tensors}
    for name, original in {"w": array, "t": array.T, "scalar": np.asarray(array[0, 0])}.items():
        assert by_name[name].dtype == original.dtype
        assert by_name[name].shape == original.shape
        assert _bits(by_name[name]) == _bits(original)
        assert by_name[name].flags.writeable


def test_weights_keep_nan_payloads_and_big_endian_values():
    payload = np.array([0x7FC00001, 0xFFC12345], dtype=np.uint32).view(np.float32)
    big = np.arange(4, dtype=">f8")
    tensors = decode_tensors(encode_tensors({"nan": payload, "big": big}))
    assert _bits(tensors[0].array) == _bits(payload)
    np.testing.assert_array_equal(tensors[1].array, big)


def test_weights_carry_a_framework_type_name():
    raw = np.array([0x3F80, 0xC000], dtype=np.uint16).view(np.int16)  # bfloat16 1.0, -2.0
    (tensor,) = decode_tensors(encode_tensors([Tensor("b", raw, "bfloat16")]))
    assert tensor.type == "bfloat16" and _bits(tensor.array) == _bits(raw)


def test_weights_refuse_object_arrays():
    with pytest.raises(TypeError, match="not a number type"):
        encode_tensors({"o": np.array([{"a": 1}], dtype=object)})


@pytest.mark.parametrize("change,match", [
    ({"dtype": "object"}, "names dtype"),
    ({"dtype": "V8"}, "names dtype"),
    ({"shape": [4, 4]}, "needs"),
    ({"data": "not base64!"}, "malformed"),
    ({"dtype": "no-such-type"}, "malformed"),
])
def test_malformed_weights_are_integrity_errors(change, match):
    (entry,) = encode_tensors({"w": np.ones((2, 2), dtype=np.float32)})
    entry.update(change)
    with pytest.raises(alphazoo.BundleIntegrityError, match=match):
        decode_tensors([entry])


def test_a_json_file_of_another_kind_is_refused(tmp_path):
    path = tmp_path / "other.json"
    path.write_text(json.dumps({"format": "something-else", "tensors": []}))
    with pytest.raises(alphazoo.BundleIntegrityError, match="not an alphazoo weights document"):
        read_weights(Path(path))


# -- _common ---------------------------------------------------------------------------------------
def test_choose_format_defaults_and_names_the_alternatives():
    assert choose_format("demo", None, ("json", "pickle"), "json") == "json"
    assert choose_format("demo", "pickle", ("json", "pickle"), "json") == "pickle"
    with pytest.raises(alphazoo.UnsupportedFormatError,
                       match=r"demo adapter writes json, pickle, not 'onnx' \(no converter\)"):
        choose_format("demo", "onnx", ("json", "pickle"), "json", hints={"onnx": "no converter"})


def test_check_options_names_what_the_adapter_takes():
    check_options("demo", "load", {"builder": 1}, ("builder",))
    with pytest.raises(TypeError, match=r"unexpected options \['bulder'\]; it takes: builder"):
        check_options("demo", "load", {"bulder": 1}, ("builder",))
    with pytest.raises(TypeError, match="it takes: none"):
        check_options("demo", "save", {"x": 1}, ())


# -- base ------------------------------------------------------------------------------------------
def test_the_base_runs_prepare_before_every_write_and_a_format_may_set_the_signature(tmp_path):
    from alphazoo.adapters.base import Adapter, Format
    from alphazoo.contracts import SaveRequest

    class Demo:
        pass

    seen: list[tuple[str, dict]] = []

    def write(name):
        def writer(model, path, saving):
            seen.append((name, dict(saving.data)))
            path.write_text(name)
            if name == "graph":
                saving.input_signature = {"dtype": "float32", "shape": [None, 2]}
        return writer

    adapter = Adapter(
        "demo", library="demo", model_types=[], owns=lambda model: isinstance(model, Demo),
        formats=[Format("plain", "m.txt", True, "text", write=write("plain"), read=print,
                        default=True),
                 Format("graph", "g.txt", True, "graph", write=write("graph"), read=print)],
        describe=lambda model: {"kind": "demo"},
        prepare=lambda model, saving: saving.data.update(task=saving.request.zoo_model),
        signature=lambda model, sample: {"dtype": "float64", "shape": [None, 2]},
    )
    plain = adapter.alphazoo_save(SaveRequest(Demo(), None, tmp_path, zoo_model="demo_model"))
    graph = adapter.alphazoo_save(SaveRequest(Demo(), "graph", tmp_path))
    # prepare's facts reach the writer and the manifest, after describe's.
    assert seen == [("plain", {"kind": "demo", "task": "demo_model"}),
                    ("graph", {"kind": "demo", "task": None})]
    assert plain.adapter_data == {"kind": "demo", "task": "demo_model"}
    assert plain.input_signature["dtype"] == "float64"
    assert graph.input_signature["dtype"] == "float32"  # the format's own, not the adapter's
    assert adapter.alphazoo_save(SaveRequest(object(), None, tmp_path)) is None


def _demo_adapter(written: list[str]):
    from alphazoo.adapters.base import Adapter, Format

    def write(model, path, saving):
        written.append(saving.format)
        path.write_text(json.dumps(model))

    def read(path, request):
        return json.loads(path.read_text())

    return Adapter("demo", library="demo", model_types=["builtins.dict"], formats=[
        Format("json", "model.json", True, "JSON", write=write, read=read, default=True),
        Format("jsonl", "model.jsonl", True, "JSON lines", write=write, read=read),
        Format("onnx", "model.onnx", True, "a graph", write=write, read=read,
               save_options=("opset",)),
    ])


def test_base_names_the_format_only_for_an_option_another_format_takes(tmp_path):
    from alphazoo.contracts import SaveRequest

    adapter = _demo_adapter([])
    with pytest.raises(TypeError, match=r"demo adapter's save \(format 'json'\) got unexpected "
                                        r"options \['opset'\]; it takes: none"):
        adapter.alphazoo_save(SaveRequest({}, None, tmp_path, options={"opset": 13}))
    with pytest.raises(TypeError, match=r"demo adapter's save got unexpected options "
                                        r"\['compress'\]; it takes: none"):
        adapter.alphazoo_save(SaveRequest({}, "jsonl", tmp_path, options={"compress": True}))
    with pytest.raises(TypeError, match=r"save got unexpected options \['compress'\]; it "
                                        r"takes: opset"):
        adapter.alphazoo_save(SaveRequest({}, "onnx", tmp_path, options={"compress": True}))
    assert list(tmp_path.iterdir()) == []


def test_base_tells_a_shared_writer_which_format_it_writes(tmp_path):
    from alphazoo.contracts import SaveRequest

    written: list[str] = []
    adapter = _demo_adapter(written)
    for fmt in (None, "jsonl"):
        payload = adapter.alphazoo_save(SaveRequest({"a": 1}, fmt, tmp_path))
        assert payload is not None and payload.format == (fmt or "json")
    assert written == ["json", "jsonl"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.json", "model.jsonl"]


def test_onnx_sample_takes_the_given_rows_or_makes_repeatable_ones():
    from alphazoo.adapters.base import onnx_sample

    rows, source = onnx_sample([[1, 2], [3, 4]], (2,))
    assert rows.dtype == np.float32 and rows.tolist() == [[1, 2], [3, 4]]
    assert source == "training rows"
    made, source = onnx_sample(None, (3,), rows=8)
    assert made.shape == (8, 3) and made.dtype == np.float32
    assert source.startswith("synthetic normal rows")
    assert np.array_equal(made, onnx_sample(None, (3,), rows=8)[0])
    with pytest.raises(alphazoo.UnsupportedFormatError, match="pass sample= rows"):
        onnx_sample(None, (None,), missing="the width is unknown: pass sample= rows")
