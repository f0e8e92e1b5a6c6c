"""Weights as safetensors: raw little-endian tensors behind a JSON header, bounded before read.

The torch and keras adapters' ``safetensors`` formats store their tensors this way (an SB3
policy's weights may too). A payload is the safetensors layout any framework reads
(``safetensors.numpy.load_file``, ``safetensors.torch.load_file``, Hugging Face's loaders):

    8 bytes  N, the header's length (unsigned little-endian)
    N bytes  JSON: {"__metadata__": {str: str}, "name": {"dtype": "F32", "shape": [64, 20],
             "data_offsets": [begin, end]}, ...}, space-padded
    rest     the tensors' raw bytes, back to back, each at its offsets

No code runs on load and there is no base64: the payload is the tensors' own bytes plus a
header of a few hundred bytes. alphazoo's facts about the model (the architecture, torch's
state_dict versions, Keras' weight order) are JSON strings in ``__metadata__``
(:func:`metadata`), next to a ``format`` entry the Hugging Face loaders expect.

Loading is bounded before the library allocates (:func:`check_payload`): the header's length
against the file, its JSON against the limits, and each tensor's dtype, shape and offsets
against each other and the payload's size, as the safetensors library will read them (sorted,
contiguous from 0, covering the data exactly). A crafted header claiming a huge tensor or
overlapping offsets is refused with :class:`~alphazoo.BundleFormatError` (or
:class:`~alphazoo.BundleLimitError` for a real but too large one), never a ``MemoryError`` or
the library's own exception. Then safetensors' reader loads it (:func:`load_tensors`).

The ``safetensors`` package is imported only when the format is used.
"""

from __future__ import annotations

import io
import json
import struct
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import import_module
from pathlib import Path
from typing import Any

from alphazoo.errors import BundleFormatError, UnsupportedFormatError, require
from alphazoo.limits import LoadLimits, array_bytes, check_bytes, check_json_text

__all__ = ["DTYPES", "MARKER", "Payload", "TensorEntry", "check_payload", "load_tensors",
           "metadata", "require_safetensors", "save_tensors"]

#: The safetensors dtype codes alphazoo reads, and their widths in bytes. The sub-byte types
#: (F4, F6) are left out: no alphazoo writer makes them.
DTYPES = {
    "BOOL": 1, "U8": 1, "I8": 1, "F8_E5M2": 1, "F8_E4M3": 1, "F8_E5M2FNUZ": 1,
    "F8_E4M3FNUZ": 1, "F8_E8M0": 1, "I16": 2, "U16": 2, "F16": 2, "BF16": 2, "I32": 4,
    "U32": 4, "F32": 4, "I64": 8, "U64": 8, "F64": 8, "C64": 8,
}
#: The ``__metadata__`` entry that marks an alphazoo payload, and its version.
MARKER = ("alphazoo", "safetensors-weights/1")
#: The safetensors library refuses longer headers (its MAX_HEADER_SIZE).
_MAX_HEADER = 100_000_000
#: torch payloads up to this size are read once and handed to safetensors as bytes: mapping a
#: file costs more than reading a small one (70 against 27 microseconds for 11 KB here);
#: larger ones are mapped by the library's file reader. numpy payloads are always mapped:
#: safetensors' numpy reader of bytes lacks bfloat16 (its file reader takes it from
#: ml_dtypes).
_READ_WHOLE = 1 << 20


def require_safetensors(purpose: str = "the safetensors format") -> Any:
    """The ``safetensors`` package, or :class:`~alphazoo.MissingDependencyError` naming
    ``pip install 'alphazoo[safetensors]'``."""
    return require("safetensors", "safetensors", purpose)


@dataclass(frozen=True)
class TensorEntry:
    """One tensor as a payload's header declares it; offsets are in the data section."""

    name: str
    dtype: str
    shape: tuple[int, ...]
    begin: int
    end: int


@dataclass(frozen=True)
class Payload:
    """A checked payload's header: its tensors in offset order and its decoded metadata
    (alphazoo's JSON entries parsed, other entries as the strings they are)."""

    tensors: list[TensorEntry]
    metadata: dict[str, Any]


def metadata(fmt: str, **fields: Any) -> dict[str, str]:
    """The ``__metadata__`` of a payload: ``format`` (``"pt"`` for torch state_dicts, as Hugging
    Face writes and expects), alphazoo's marker, and ``fields`` as JSON strings."""
    return {"format": fmt, MARKER[0]: MARKER[1],
            **{name: json.dumps(value, separators=(",", ":")) for name, value in fields.items()}}


def save_tensors(path: Path, tensors: Mapping[str, Any], framework: str,
                 meta: Mapping[str, str]) -> None:
    """Write ``tensors`` (torch tensors or numpy arrays, by ``framework``: ``"torch"`` or
    ``"numpy"``) to ``path`` with safetensors' own writer. A tensor it cannot hold (a dtype it
    lacks, memory shared between entries) raises :class:`~alphazoo.UnsupportedFormatError`."""
    require_safetensors()
    module = import_module(f"safetensors.{framework}")
    try:
        module.save_file(dict(tensors), str(path), metadata=dict(meta))
    except Exception as exc:  # SafetensorError, ValueError, RuntimeError, KeyError (dtype)
        raise UnsupportedFormatError(
            f"safetensors could not write these weights ({type(exc).__name__}: {exc!s:.300}); "
            "save the model in another format"
        ) from exc


def load_tensors(path: Path, limits: LoadLimits | None, framework: str
                 ) -> tuple[dict[str, Any], Payload]:
    """The tensors of the payload at ``path`` (checked by :func:`check_payload` first), read by
    safetensors' own loader for ``framework`` (``"torch"`` or ``"numpy"``), and its header.

    What the library still refuses after the checks raises
    :class:`~alphazoo.BundleFormatError`.
    """
    small = framework == "torch" and path.stat().st_size <= _READ_WHOLE
    data = path.read_bytes() if small else None
    payload = check_payload(path, limits, data)
    require_safetensors("loading a safetensors bundle")
    module = import_module(f"safetensors.{framework}")
    try:
        tensors = module.load_file(str(path)) if data is None else module.load(data)
    except Exception as exc:  # SafetensorError, or a dtype this framework's reader lacks
        raise BundleFormatError(path.name, f"safetensors could not read it "
                                           f"({type(exc).__name__}: {exc!s:.300})") from None
    if set(tensors) != {entry.name for entry in payload.tensors}:
        raise BundleFormatError(path.name, "safetensors read other tensors than its header "
                                           "declares")
    return dict(tensors), payload


def check_payload(path: Path, limits: LoadLimits | None = None,
                  data: bytes | None = None) -> Payload:
    """Check the header of the safetensors payload at ``path`` against the file and ``limits``,
    reading only the header; return it. ``data``: the file's bytes, already read (``path``
    then only names it in messages).

    Refuses (:class:`~alphazoo.BundleFormatError`) a header length past the file's end, a
    header that is not a JSON object of tensor entries, an unknown dtype, a shape whose bytes
    differ from its offsets, offsets that overlap, leave gaps or do not end where the file
    does, and duplicate names; a tensor (or all of them) larger than ``limits.max_bytes``
    raises :class:`~alphazoo.BundleLimitError`.
    """
    limits = limits or LoadLimits()
    name = path.name
    with open(path, "rb") if data is None else io.BytesIO(data) as handle:
        size = handle.seek(0, io.SEEK_END)
        handle.seek(0)
        head = handle.read(8)
        if len(head) < 8:
            raise BundleFormatError(name, f"{size} bytes, too short for a safetensors header")
        (length,) = struct.unpack("<Q", head)
        if length > size - 8:
            raise BundleFormatError(name, f"the header claims {length:,} bytes, but the file "
                                          f"holds {size - 8:,} after its length")
        check_bytes(length, limits, f"{name} (safetensors header)")
        if length > _MAX_HEADER:
            raise BundleFormatError(name, f"a header of {length:,} bytes (safetensors reads "
                                          f"at most {_MAX_HEADER:,})")
        text = handle.read(length)
    check_json_text(text, limits, f"{name} (safetensors header)")
    header = _parse_object(text, name, "the header")
    tensors = [_entry(key, value, name) for key, value in header.items()
               if key != "__metadata__"]
    _check_layout(tensors, size - 8 - length, name, limits)
    return Payload(tensors, _metadata(header.get("__metadata__"), name, limits))


def _parse_object(text: bytes, name: str, what: str) -> dict[str, Any]:
    """A JSON object from ``text``, refusing duplicate keys (the library would keep one)."""
    def no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        keys = [key for key, _ in pairs]
        if len(set(keys)) != len(keys):
            raise ValueError(f"duplicate keys in {what}")
        return dict(pairs)

    try:
        value = json.loads(text.decode("utf-8"), object_pairs_hook=no_duplicates)
    except (ValueError, RecursionError) as exc:  # not UTF-8, not JSON, duplicates, too deep
        raise BundleFormatError(name, f"{what} is not valid JSON ({exc!s:.200})") from None
    if not isinstance(value, dict):
        raise BundleFormatError(name, f"{what} is a JSON {type(value).__name__}, not an object")
    return value


def _entry(key: str, value: Any, name: str) -> TensorEntry:
    where = f"tensor {key!r}"
    if not isinstance(value, dict) or set(value) != {"dtype", "shape", "data_offsets"}:
        raise BundleFormatError(name, f"{where} is not an entry of dtype, shape and "
                                      "data_offsets")
    dtype, shape, offsets = value["dtype"], value["shape"], value["data_offsets"]
    if dtype not in DTYPES:
        raise BundleFormatError(name, f"{where} has dtype {dtype!r:.40}, not one of "
                                      f"{', '.join(DTYPES)}")
    if not isinstance(shape, list) or not all(_natural(n) for n in shape):
        raise BundleFormatError(name, f"{where} has shape {shape!r:.80}, not a list of "
                                      "non-negative integers")
    if not (isinstance(offsets, list) and len(offsets) == 2 and all(map(_natural, offsets))
            and offsets[0] <= offsets[1]):
        raise BundleFormatError(name, f"{where} has data_offsets {offsets!r:.80}, not "
                                      "[begin, end] with begin <= end")
    return TensorEntry(key, dtype, tuple(shape), offsets[0], offsets[1])


def _natural(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _check_layout(tensors: list[TensorEntry], data: int, name: str,
                  limits: LoadLimits) -> None:
    """Each tensor's bytes match its shape and the tensors tile the data section exactly."""
    tensors.sort(key=lambda entry: (entry.begin, entry.end))
    total = 0
    for entry in tensors:
        declared = array_bytes(entry.shape, DTYPES[entry.dtype])
        what = f"{name} tensor {entry.name!r} ({entry.dtype}{list(entry.shape)})"
        check_bytes(declared, limits, what)
        if declared != entry.end - entry.begin:
            raise BundleFormatError(name, f"tensor {entry.name!r} declares {declared:,} bytes "
                                          f"of {entry.dtype}{list(entry.shape)}, but its "
                                          f"offsets span {entry.end - entry.begin:,}")
        if entry.begin != total:
            problem = "overlap the tensor before" if entry.begin < total else "leave a gap"
            raise BundleFormatError(name, f"tensor {entry.name!r}'s offsets "
                                          f"[{entry.begin}, {entry.end}] {problem} (expected "
                                          f"it at {total})")
        total = entry.end
        check_bytes(total, limits, f"{name} tensors together")
    if total != data:
        raise BundleFormatError(name, f"the tensors declare {total:,} bytes of data, but the "
                                      f"file holds {data:,}")


def _metadata(value: Any, name: str, limits: LoadLimits) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
        raise BundleFormatError(name, "__metadata__ is not an object of strings")
    if value.get(MARKER[0]) != MARKER[1]:
        return dict(value)  # not written by alphazoo: its strings, as they are
    decoded: dict[str, Any] = {}
    for key, text in value.items():
        if key in ("format", MARKER[0]):
            decoded[key] = text
            continue
        raw = text.encode("utf-8")
        check_json_text(raw, limits, f"{name} __metadata__ {key!r}")
        try:
            decoded[key] = json.loads(text)
        except (ValueError, RecursionError) as exc:
            raise BundleFormatError(name, f"__metadata__ {key!r} is not JSON "
                                          f"({exc!s:.200})") from None
    return decoded
