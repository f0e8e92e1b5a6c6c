"""The manifest's declared schema, checked when a bundle is read.

A bundle's hashes say its bytes are the ones its writer stored; anyone can write a bundle with
consistent hashes, so a manifest is input like any other. Every field the host or an adapter
reads is declared here (the top level in :data:`MANIFEST`) or in the adapter's format table
(``FormatSpec.adapter_data``, the part of the manifest only that format reads), and
:func:`validate` checks a value against a declaration before anything uses it. A field of the
wrong type, a missing required field or a value outside its choices raises
:class:`~alphazoo.BundleFormatError` whose ``field`` is the dotted path (``adapter_data.outputs``,
``files[0].size``), so a crafted manifest ends in one typed error instead of a ``KeyError`` or
``TypeError`` deep inside an adapter.

Fields not declared are allowed and left alone: a later alphazoo (or a plugin) may record more,
and only what is read needs a type. Declarations are plain values built with the helpers below::

    obj(required={"task": string(choices=("classification", "regression"))},
        optional={"classes": either(array(), null)})
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from .errors import BundleFormatError

__all__ = [
    "MANIFEST", "ONNX_OUTPUTS", "Spec", "anything", "array", "boolean", "either", "integer",
    "null", "number", "obj", "string", "validate", "validate_adapter_data", "validate_manifest",
]


@dataclass(frozen=True)
class Spec:
    """One declared value: its JSON kind and, by kind, what is inside it.

    Build one with :func:`string`, :func:`integer`, :func:`number`, :func:`boolean`,
    :data:`null`, :func:`array`, :func:`obj`, :func:`either` or :func:`anything`.
    """

    kind: str  # "string" "integer" "number" "boolean" "null" "array" "object" "either" "any"
    choices: tuple[Any, ...] | None = None
    minimum: float | None = None
    items: Spec | None = None
    required: Mapping[str, Spec] = field(default_factory=dict)
    optional: Mapping[str, Spec] = field(default_factory=dict)
    values: Spec | None = None
    options: tuple[Spec, ...] = ()

    def describe(self) -> str:
        """A short phrase for error messages: ``"a string"``, ``"an object or null"``..."""
        if self.kind == "either":
            return " or ".join(option.describe() for option in self.options)
        if self.choices is not None:
            return "one of " + ", ".join(repr(c) for c in self.choices)
        return {"string": "a string", "integer": "an integer", "number": "a number",
                "boolean": "true or false", "null": "null", "array": "an array",
                "object": "an object", "any": "any value"}[self.kind]


def string(choices: tuple[str, ...] | None = None) -> Spec:
    """A JSON string, optionally one of ``choices``."""
    return Spec("string", choices=choices)


def integer(minimum: int | None = None) -> Spec:
    """A JSON integer (not a boolean, not 1.0), at least ``minimum`` when given."""
    return Spec("integer", minimum=minimum)


def number() -> Spec:
    """A finite JSON number (integer or float, not a boolean)."""
    return Spec("number")


def boolean() -> Spec:
    """``true`` or ``false``."""
    return Spec("boolean")


#: JSON ``null``.
null = Spec("null")


def array(items: Spec | None = None) -> Spec:
    """A JSON array whose every item matches ``items`` (anything when None)."""
    return Spec("array", items=items)


def obj(required: Mapping[str, Spec] | None = None, optional: Mapping[str, Spec] | None = None,
        values: Spec | None = None) -> Spec:
    """A JSON object with ``required`` and ``optional`` fields; ``values`` types every other
    field's value (undeclared fields are otherwise allowed, with any value)."""
    return Spec("object", required=dict(required or {}), optional=dict(optional or {}),
                values=values)


def either(*options: Spec) -> Spec:
    """A value matching any one of ``options``."""
    return Spec("either", options=options)


def anything() -> Spec:
    """Any JSON value."""
    return Spec("any")


def validate(value: Any, spec: Spec, path: str) -> None:
    """Raise :class:`~alphazoo.BundleFormatError` naming ``path`` (and deeper fields) where
    ``value`` does not match ``spec``."""
    if spec.kind == "any":
        return
    if spec.kind == "either":
        for option in spec.options:
            if _matches_kind(value, option):
                validate(value, option, path)
                return
        _fail(path, spec, value)
    if not _matches_kind(value, spec):
        _fail(path, spec, value)
    if spec.choices is not None and value not in spec.choices:
        _fail(path, spec, value)
    if spec.minimum is not None and value < spec.minimum:
        raise BundleFormatError(path, f"must be at least {spec.minimum}, not {value!r}")
    if spec.kind == "array" and spec.items is not None:
        for index, item in enumerate(value):
            validate(item, spec.items, f"{path}[{index}]")
    elif spec.kind == "object":
        for name, inner in spec.required.items():
            if name not in value:
                raise BundleFormatError(f"{path}.{name}" if path else name,
                                        f"missing; it must be {inner.describe()}")
        for name, item in value.items():
            member = spec.required.get(name) or spec.optional.get(name) or spec.values
            if member is not None:
                validate(item, member, f"{path}.{name}" if path else str(name))


def _matches_kind(value: Any, spec: Spec) -> bool:
    kind = spec.kind
    if kind == "string":
        return isinstance(value, str)
    if kind == "integer":
        return isinstance(value, int) and not isinstance(value, bool)
    if kind == "number":
        return (isinstance(value, (int, float)) and not isinstance(value, bool)
                and math.isfinite(value))
    if kind == "boolean":
        return isinstance(value, bool)
    if kind == "null":
        return value is None
    if kind == "array":
        return isinstance(value, list)
    if kind == "object":
        return isinstance(value, dict)
    return kind in ("any", "either")


def _fail(path: str, spec: Spec, value: Any) -> None:
    shown = repr(value)
    shown = shown if len(shown) <= 60 else shown[:57] + "..."
    raise BundleFormatError(path or "manifest",
                            f"must be {spec.describe()}, not {_json_type(value)} {shown}")


def _json_type(value: Any) -> str:
    return {bool: "boolean", int: "integer", float: "number", str: "string", list: "array",
            dict: "object", type(None): "null"}.get(type(value), type(value).__name__)


_OPTIONAL_STRING = either(string(), null)
_FILE = obj(required={"name": string(), "size": integer(minimum=0), "sha256": string()})

#: The top level of every manifest (bundle protocols 1 and 2). Required: what the host needs
#: to find the payload and its reader; the rest is typed when present.
MANIFEST = obj(
    required={"adapter": string(), "format": string(), "files": array(_FILE)},
    optional={
        "protocol": integer(minimum=1),
        "signature": _OPTIONAL_STRING,
        "key": _OPTIONAL_STRING,
        "name": _OPTIONAL_STRING,
        "params": either(obj(), null),
        "model_class": _OPTIONAL_STRING,
        "libraries": either(obj(values=_OPTIONAL_STRING), null),
        "python": _OPTIONAL_STRING,
        "alphazoo": _OPTIONAL_STRING,
        "input": either(obj(optional={
            "dtype": _OPTIONAL_STRING,
            "shape": either(array(either(integer(), null, string())), null),
            "feature_names": either(array(string()), null),
            "layout": _OPTIONAL_STRING,
        }), null),
        "training": either(obj(), null),
        "metadata": either(obj(), null),
        "adapter_data": obj(),
        "created": _OPTIONAL_STRING,
    },
)

#: ``adapter_data.outputs`` of an ONNX bundle: output names by role (label, probabilities,
#: value), each the name of one of the graph's outputs (checked against the graph on load).
ONNX_OUTPUTS = obj(values=string())


def validate_manifest(manifest: Any) -> None:
    """Check a parsed manifest against :data:`MANIFEST`."""
    validate(manifest, MANIFEST, "")


def validate_adapter_data(manifest: Mapping[str, Any], spec: Spec | None) -> None:
    """Check ``manifest["adapter_data"]`` (an empty object when absent) against the format's
    declared ``spec``; None declares only that it is an object."""
    data = manifest.get("adapter_data", {})
    validate(data, spec if spec is not None else obj(), "adapter_data")
