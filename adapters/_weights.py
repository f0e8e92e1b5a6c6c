"""Weights as JSON, bit-exact: each array's raw little-endian bytes in base64 with its dtype.

The torch (``state_dict``) and keras (``get_weights()``) ``json`` formats store their arrays
this way. Decimal text (``array.tolist()``, the pattern in LEAN's documentation) also reloads
float32 exactly, but is about 3x larger and 20x slower to parse, and has no spelling for
NaN/inf in strict JSON; base64 costs 4/3 of the raw bytes and round-trips every bit pattern,
NaN payloads and negative zero included. Nothing here runs code on load: a document is JSON,
and arrays are rebuilt with ``numpy.frombuffer`` from a dtype that must be a plain number type.

A document::

    {"format": "alphazoo-weights", "version": 1, "byteorder": "little",
     "tensors": [{"name": "fc.weight", "dtype": "float32", "shape": [64, 20],
                  "data": "<base64>"}, ...],
     ...caller's own keys (architecture, builder, ...)}

A tensor whose type numpy lacks (torch's bfloat16) is stored as a same-width integer view with
``"type": "bfloat16"``; the caller reinterprets it.
"""

from __future__ import annotations

import base64
import json
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from alphazoo.errors import BundleFormatError, BundleIntegrityError
from alphazoo.limits import LoadLimits, check_bytes, check_json_text

__all__ = ["Tensor", "encode_tensors", "decode_tensors", "write_weights", "read_weights"]

FORMAT = "alphazoo-weights"
VERSION = 1
#: Storage dtypes a document may name: numbers only, so decoding never builds an object array.
_ALLOWED_KINDS = "biuf"  # bool, signed, unsigned, float (complex left out: no framework needs it)


@dataclass(frozen=True)
class Tensor:
    """One named array; ``type`` is the framework's dtype name when numpy has none for it."""

    name: str
    array: np.ndarray
    type: str | None = None


def encode_tensors(tensors: Iterable[Tensor] | Mapping[str, np.ndarray]) -> list[dict[str, Any]]:
    """JSON-ready entries for ``tensors`` (a mapping of name to array, or Tensor objects)."""
    items = (
        [Tensor(name, array) for name, array in tensors.items()]
        if isinstance(tensors, Mapping) else list(tensors)
    )
    entries = []
    for tensor in items:
        array = np.asarray(tensor.array)
        if array.dtype.kind not in _ALLOWED_KINDS:
            raise TypeError(f"tensor {tensor.name!r} has dtype {array.dtype}, not a number type")
        # astype, not ascontiguousarray: the latter turns a 0-d array into shape (1,).
        little = array.astype(array.dtype.newbyteorder("<"), order="C", copy=False)
        entry: dict[str, Any] = {
            "name": tensor.name,
            "dtype": little.dtype.name,
            "shape": list(little.shape),
            "data": base64.b64encode(little.tobytes()).decode("ascii"),
        }
        if tensor.type is not None:
            entry["type"] = tensor.type
        entries.append(entry)
    return entries


def decode_tensors(entries: Iterable[Mapping[str, Any]],
                   limits: LoadLimits | None = None) -> list[Tensor]:
    """The tensors of :func:`encode_tensors` entries, in their order (writable arrays).

    Each entry's declared size is checked against ``limits`` (and all of them together)
    before its base64 text is decoded; a malformed entry raises
    :class:`~alphazoo.BundleFormatError`.
    """
    limits = limits or LoadLimits()
    if not isinstance(entries, list):
        raise BundleFormatError("tensors", f"must be an array, not {type(entries).__name__}")
    tensors, total = [], 0
    for entry in entries:
        if not isinstance(entry, Mapping):
            raise BundleFormatError("tensors", f"an entry is a {type(entry).__name__}, not an "
                                               "object")
        name = entry.get("name")
        try:
            dtype = np.dtype(str(entry["dtype"])).newbyteorder("<")
            shape = tuple(int(n) for n in entry["shape"])
            if any(n < 0 for n in shape):
                raise ValueError(f"negative dimension in {list(shape)}")
            # Python integers: numpy's prod wraps around on a crafted shape.
            expected = math.prod(shape) * dtype.itemsize
            check_bytes(expected, limits, f"weights entry {name!r} ({dtype.name}{list(shape)})")
            total += expected
            check_bytes(total, limits, "the weights document's tensors together")
            data = entry["data"]
            if not isinstance(data, str):
                raise TypeError(f"data is a {type(data).__name__}, not base64 text")
            raw = base64.b64decode(data, validate=True)
        except (KeyError, TypeError, ValueError) as exc:
            raise BundleFormatError(f"weights entry {name!r}", f"malformed: {exc}") from exc
        if dtype.kind not in _ALLOWED_KINDS:
            raise BundleIntegrityError(f"weights entry {name!r} names dtype {dtype}")
        if len(raw) != expected:
            raise BundleIntegrityError(
                f"weights entry {name!r} holds {len(raw)} bytes, but {dtype.name}{list(shape)} "
                f"needs {expected}"
            )
        array = np.frombuffer(bytearray(raw), dtype=dtype).reshape(shape)
        tensors.append(Tensor(str(name), array.astype(dtype.newbyteorder("="), copy=False),
                              entry.get("type")))
    return tensors


def write_weights(path: Path, tensors: Iterable[Tensor] | Mapping[str, np.ndarray],
                  **header: Any) -> None:
    """Write a weights document to ``path``; ``header`` adds the caller's own JSON keys."""
    document = {"format": FORMAT, "version": VERSION, "byteorder": "little", **header,
                "tensors": encode_tensors(tensors)}
    with open(path, "w", encoding="ascii") as handle:
        json.dump(document, handle, separators=(",", ":"))


def read_weights(path: Path,
                 limits: LoadLimits | None = None) -> tuple[list[Tensor], dict[str, Any]]:
    """The tensors of the document at ``path`` and its other keys.

    The document's size and each tensor's declared size are checked against ``limits``
    before they are parsed or decoded (:class:`~alphazoo.BundleLimitError`); a file that is
    not such a document raises :class:`~alphazoo.BundleFormatError`.
    """
    limits = limits or LoadLimits()
    check_bytes(path.stat().st_size, limits, f"{path.name} (JSON text)")
    text = path.read_bytes()
    check_json_text(text, limits, path.name)
    try:
        document = json.loads(text.decode("ascii"))
    except (ValueError, RecursionError) as exc:  # not JSON, not ASCII, or nested too deep
        raise BundleFormatError(path.name, f"not a JSON document ({exc!s:.200})") from None
    if not isinstance(document, dict):
        raise BundleFormatError(path.name, "not a JSON object")
    if document.get("format") != FORMAT or document.get("version") != VERSION:
        raise BundleIntegrityError(
            f"{path.name} is not an alphazoo weights document of version {VERSION} "
            f"(format {document.get('format')!r}, version {document.get('version')!r})"
        )
    header = {k: v for k, v in document.items()
              if k not in ("format", "version", "byteorder", "tensors")}
    return decode_tensors(document.get("tensors", []), limits), header
