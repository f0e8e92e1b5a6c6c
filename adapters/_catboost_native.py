"""CatBoost's own model files, written and read through CatBoost's ``save_model``/``load_model``.

The catboost adapter's ``cbm`` and ``json`` formats go through here. Writing is CatBoost's own
``save_model(path, format=...)``; reading is ``load_model``, after alphazoo has bounded and
checked what it can about the payload, because CatBoost's C++ reader is not hardened against a
crafted file:

- a ``.cbm`` file is ``CBM1``, the size of its flatbuffers core (a little-endian ``ui32``, or
  ``0xFFFFFFFF`` and a ``ui64``), the core, then the CTR tables of categorical features.
  CatBoost 1.2 trusts that size: a file cut short after its header can crash the process
  (``load_model(blob=...)`` reads past the buffer) or make it allocate the declared size.
  :func:`check_cbm` refuses such a file with :class:`~alphazoo.BundleFormatError` before
  CatBoost sees it, and the payload's size is checked against the load's ``max_bytes``.
- the bytes are handed over as ``load_model(stream=io.BytesIO(data))``: CatBoost's stream
  reader checks every read against what is there, where its ``blob=`` reader does not.
- every exception of CatBoost's reader (``CatBoostError`` and the ``ValueError`` of a mangled
  parameters document) becomes :class:`~alphazoo.BundleFormatError` naming the payload.
- a JSON model is parsed by Python first (CatBoost's reader loads a broken document as a model
  without trees) and its splits' indices are checked against its feature tables
  (:func:`check_json_splits`): CatBoost indexes its table of binary features with them
  unchecked, and one ``split_index`` of 10**9 crashes the process; its leaf values, weights,
  borders and scale and bias must be finite numbers (:func:`check_json_numbers`).

What these checks cannot give: fuzzing 1.2.10 with bytes flipped deep inside a valid cbm core
found files that pass CatBoost's own flatbuffers verification and still crash the loading
process (1 of 300 mutated files through the stream reader). Valid JSON models with one number
changed or a list entry dropped or repeated crashed CatBoost's JSON reader in 5 of 150 cases
before the split check and in none of 400 (loaded and predicted) after it, which is a sample,
not a proof. The hashes of a bundle exclude accidental damage; against a writer who means harm,
sign bundles (``sign_key=``) and load with ``require_signature=True``. Nothing in either format
runs Python code.
"""

from __future__ import annotations

import io
import json
import math
import struct
import sys
from pathlib import Path
from typing import Any

from alphazoo.errors import BundleFormatError, UnsupportedFormatError, require
from alphazoo.limits import LoadLimits, check_bytes, check_json_text

from .base import read_payload

__all__ = ["CBM_MAGIC", "check_cbm", "check_json_numbers", "check_json_splits", "load_cbm",
           "load_json", "save_native"]

#: The first four bytes of every ``.cbm`` file (CatBoost's model format descriptor).
CBM_MAGIC = b"CBM1"
_SIZE_ESCAPE = 0xFFFFFFFF  # Arcadia's SaveSize: a ui32, or this and then a ui64


def check_cbm(data: bytes, limits: LoadLimits | None, name: str = "model.cbm") -> None:
    """Refuse ``data`` unless it is a ``.cbm`` file whose declared core fits in it and the whole
    is within ``limits.max_bytes`` (:class:`~alphazoo.BundleLimitError`)."""
    check_bytes(len(data), limits or LoadLimits(), name)
    if data[:4] != CBM_MAGIC:
        raise BundleFormatError(name, f"not a CatBoost model file (it starts {data[:4]!r}, "
                                      f"not {CBM_MAGIC!r})")
    offset = 8
    if len(data) < offset:
        raise BundleFormatError(name, "the file ends inside its header")
    (core,) = struct.unpack_from("<I", data, 4)
    if core == _SIZE_ESCAPE:
        offset = 16
        if len(data) < offset:
            raise BundleFormatError(name, "the file ends inside its header")
        (core,) = struct.unpack_from("<Q", data, 8)
    if core == 0 or core > len(data) - offset:
        raise BundleFormatError(name, f"the header declares a model core of {core:,} bytes, "
                                      f"but {len(data) - offset:,} bytes follow it")


def save_native(model: Any, path: Path, fmt: str) -> None:
    """CatBoost's ``model.save_model(path, format=fmt)``; its refusals (a model kind the format
    cannot hold) become :class:`~alphazoo.UnsupportedFormatError`."""
    catboost: Any = sys.modules["catboost"]
    try:
        model.save_model(str(path), format=fmt)
    except catboost.CatBoostError as exc:
        raise UnsupportedFormatError(
            f"CatBoost cannot write this model as {fmt}: {_reason(exc)}; save it as 'cbm' "
            "(CatBoost's own format holds every model) or 'pickle'"
        ) from None


def load_cbm(cls: type, data: bytes, limits: LoadLimits | None) -> Any:
    """A new ``cls()`` loaded from the ``.cbm`` bytes ``data``, checked first."""
    check_cbm(data, limits)
    return _load(cls, "model.cbm", lambda model: model.load_model(stream=io.BytesIO(data)))


def load_json(cls: type, path: Path, limits: LoadLimits | None) -> Any:
    """A new ``cls()`` loaded from CatBoost's JSON model at ``path``, bounded first."""
    limits = limits or LoadLimits()
    text = read_payload(path, limits)
    check_json_text(text, limits, path.name)
    # CatBoost's JSON reader takes what it can from a broken document: a truncated file, or
    # `{"oblivious_trees": [}`, loads as a model without trees. Python's parser says no.
    try:
        document = json.loads(text)
    except ValueError as exc:
        raise BundleFormatError(path.name, f"not a JSON document ({exc})") from None
    if not isinstance(document, dict):
        raise BundleFormatError(path.name, f"a CatBoost JSON model is an object, not "
                                           f"{type(document).__name__}")
    check_json_splits(document, path.name)
    check_json_numbers(document, path.name)
    del document, text
    return _load(cls, path.name, lambda model: model.load_model(str(path), format="json"))


def check_json_splits(document: dict[str, Any], name: str = "model.json") -> None:
    """Refuse a CatBoost JSON model whose splits point outside its feature tables.

    CatBoost 1.2.10's JSON reader indexes its table of binary features (the borders of float
    features, the values of one-hot categorical features, the borders of CTRs, in that order)
    with each split's ``split_index`` unchecked: an index past the table crashes the process.
    Feature indices are checked against the feature lists the same way.
    """
    info = document.get("features_info")
    if not isinstance(info, dict):
        raise BundleFormatError(name, "has no features_info object")
    tables = {key: info.get(key) or [] for key in ("float_features", "categorical_features",
                                                   "ctrs")}
    if not all(isinstance(table, list) and all(isinstance(item, dict) for item in table)
               for table in tables.values()):
        raise BundleFormatError(name, "features_info holds a feature list that is not a list "
                                      "of objects")
    binary = sum(len(item.get(field) or []) for key, field in (
        ("float_features", "borders"), ("categorical_features", "values"), ("ctrs", "borders"))
        for item in tables[key])
    bounds = {"split_index": binary, "float_feature_index": len(tables["float_features"]),
              "cat_feature_index": len(tables["categorical_features"])}
    for split in _splits(document, name):
        for field, bound in bounds.items():
            if field not in split and field != "split_index":
                continue
            value = split.get(field)
            if type(value) is not int or not 0 <= value < bound:
                raise BundleFormatError(name, f"a split's {field} is {value!r}, outside the "
                                              f"model's {bound} entries")


def check_json_numbers(document: dict[str, Any], name: str = "model.json") -> None:
    """Refuse a CatBoost JSON model whose leaf values, leaf weights, split borders, feature
    borders or scale and bias are not finite numbers.

    CatBoost never writes NaN or an infinity there (Python's JSON parser reads ``NaN``,
    ``Infinity`` and ``1e999`` as such), and its reader takes them as they come: a NaN leaf
    makes every prediction through it NaN, an infinite border sends every row one way.
    """
    def numbers(values: Any, what: str) -> None:
        for value in values if isinstance(values, list) else [values]:
            if (isinstance(value, bool) or not isinstance(value, (int, float))
                    or not math.isfinite(value)):
                raise BundleFormatError(name, f"{what} holds {value!r}, not a finite number")

    info = document.get("features_info") or {}
    for key in ("float_features", "ctrs"):
        for item in info.get(key) or []:
            numbers(item.get("borders") or [], f"features_info.{key} borders")
    if "scale_and_bias" in document:
        scale_and_bias = document["scale_and_bias"]
        if not (isinstance(scale_and_bias, list) and len(scale_and_bias) == 2):
            raise BundleFormatError(name, "scale_and_bias is not [scale, [bias, ...]]")
        numbers(scale_and_bias[0], "scale_and_bias")
        numbers(scale_and_bias[1], "scale_and_bias")
    for tree in document.get("oblivious_trees") or []:
        for key in ("leaf_values", "leaf_weights"):
            numbers(tree.get(key) or [], f"oblivious_trees {key}")
    for tree in document.get("trees") or []:
        stack = [tree]
        while stack:  # _splits already checked that every node is an object
            node = stack.pop()
            for key in ("value", "weight"):
                if key in node:
                    numbers(node[key], f"trees leaf {key}")
            stack.extend(node[side] for side in ("left", "right") if side in node)
    for split in _splits(document, name):
        if "border" in split:
            numbers(split["border"], "a split's border")


def _splits(document: dict[str, Any], name: str) -> Any:
    """Every split of the model's trees: symmetric (``oblivious_trees``) or not (``trees``)."""
    for key in ("oblivious_trees", "trees"):
        trees = document.get(key) or []
        if not isinstance(trees, list):
            raise BundleFormatError(name, f"{key} is not a list")
        for tree in trees:
            stack = [tree]
            while stack:
                node = stack.pop()
                if not isinstance(node, dict):
                    raise BundleFormatError(name, f"{key} holds a node that is not an object")
                splits = node.get("splits") or ([node["split"]] if "split" in node else [])
                if not isinstance(splits, list) or not all(isinstance(s, dict) for s in splits):
                    raise BundleFormatError(name, f"{key} holds a split that is not an object")
                yield from splits
                stack.extend(node[side] for side in ("left", "right") if side in node)


def _load(cls: type, name: str, load: Any) -> Any:
    require("catboost", "catboost", f"loading a CatBoost {name} bundle")
    model = cls()
    try:
        load(model)
    # CatBoostError from the C++ reader; ValueError (JSONDecodeError, UnicodeDecodeError) when
    # the parameters document inside a damaged model does not parse.
    except (sys.modules["catboost"].CatBoostError, ValueError) as exc:
        raise BundleFormatError(name, f"CatBoost could not read it: {_reason(exc)}") from None
    if model.tree_count_ == 0:  # CatBoost trains at least one tree
        raise BundleFormatError(name, "CatBoost read a model without trees from it")
    return model


def _reason(exc: Exception) -> str:
    """CatBoost's message without the C++ source location it starts with."""
    text = str(exc).strip()
    head, sep, rest = text.partition(": ")
    return rest if sep and (".cpp:" in head or ".h:" in head) else text
