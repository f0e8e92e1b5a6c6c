"""gymnasium spaces as JSON, for the stable-baselines3 adapter's manifests.

A policy is built for one observation space and one action space; the sb3 adapter records
both in the manifest (``adapter_data``) so that a bundle can be rebuilt without the
environment, checked against an environment at load, and read by a server that has neither
gymnasium nor stable-baselines3 (the ONNX format needs only the shapes).

:func:`encode_space` writes ``Box``, ``Discrete``, ``MultiDiscrete`` and ``MultiBinary``
(the spaces SB3's ``MlpPolicy`` and ``CnnPolicy`` take) as plain JSON; a Box's bounds are one
number when every element shares it, else a flat list, with infinities as the strings
``"inf"`` and ``"-inf"``. :func:`decode_space` builds the gymnasium space back, bit for bit,
after checking its declared size against the load limits (:func:`check_space`, which the
ONNX loader uses alone). Nothing here imports gymnasium until a space is decoded.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from alphazoo.errors import BundleFormatError, UnsupportedFormatError
from alphazoo.limits import LoadLimits, array_bytes, check_bytes
from alphazoo.manifest_schema import Spec, anything, obj, string

__all__ = ["SPACE", "SPACE_TYPES", "check_space", "decode_space", "encode_space", "space_shape"]

#: The space types a bundle may name; decoding looks a class up here and nowhere else.
SPACE_TYPES = ("Box", "Discrete", "MultiDiscrete", "MultiBinary")
#: The declared schema of one encoded space (its fields are checked by :func:`decode_space`).
SPACE: Spec = obj(required={"type": string(choices=SPACE_TYPES)},
                  optional={"shape": anything(), "dtype": string(), "low": anything(),
                            "high": anything(), "n": anything(), "start": anything(),
                            "nvec": anything()})
#: dtypes a Box or MultiDiscrete may declare (gymnasium's own take numbers only).
_DTYPES = ("float16", "float32", "float64", "int8", "int16", "int32", "int64", "uint8",
           "uint16", "uint32", "uint64", "bool")


def encode_space(space: Any) -> dict[str, Any]:
    """``space`` as JSON; raises :class:`~alphazoo.UnsupportedFormatError` for a space type
    other than :data:`SPACE_TYPES` (a ``Dict`` space: save with ``format='pickle'``)."""
    kind = type(space).__name__
    if kind not in SPACE_TYPES or type(space).__module__.split(".")[0] != "gymnasium":
        raise UnsupportedFormatError(
            f"the sb3 adapter's safe formats record {', '.join(SPACE_TYPES)} spaces, not "
            f"{type(space).__module__}.{kind}; save this model with format='pickle'"
        )
    if kind == "Box":
        return {"type": kind, "shape": list(space.shape), "dtype": str(space.dtype),
                "low": _bound(space.low), "high": _bound(space.high)}
    if kind == "Discrete":
        return {"type": kind, "n": int(space.n), "start": int(space.start)}
    if kind == "MultiDiscrete":
        start = getattr(space, "start", None)  # gymnasium >= 1.0
        return {"type": kind, "shape": list(space.shape), "dtype": str(space.dtype),
                "nvec": [int(v) for v in space.nvec.ravel()],
                "start": [0] * space.nvec.size if start is None
                else [int(v) for v in start.ravel()]}
    n = space.n  # an int, or a sequence for a multi-dimensional MultiBinary
    return {"type": kind, "n": int(n) if getattr(n, "ndim", 0) == 0 and not isinstance(
        n, (list, tuple)) else [int(v) for v in n]}


def _bound(values: Any) -> Any:
    flat = [_number(float(v)) for v in values.ravel()]
    return flat[0] if flat and all(v == flat[0] for v in flat) else flat


def _number(value: float) -> Any:
    if math.isfinite(value):
        return value
    if math.isnan(value):
        return "nan"
    return "inf" if value > 0 else "-inf"


def space_shape(data: Mapping[str, Any]) -> tuple[int, ...]:
    """The shape of one sample of the encoded space ``data`` (no gymnasium needed)."""
    kind = data.get("type")
    if kind == "Discrete":
        return ()
    if kind == "MultiBinary":
        n = data.get("n")
        return tuple(_ints(n, "n")) if isinstance(n, list) else (_int(n, "n"),)
    return tuple(_ints(data.get("shape"), "shape"))


def check_space(data: Mapping[str, Any], limits: LoadLimits | None = None,
                what: str = "space") -> dict[str, Any]:
    """The parts of :func:`encode_space`'s ``data``, checked, with numpy only (no gymnasium).

    Returns ``{"type", "shape", ...}`` with what the space is built from (``n``/``start``,
    ``dtype`` and ``nvec`` or ``low``/``high`` as arrays of ``shape``). Its size is checked
    against ``limits`` before any array is made (:class:`~alphazoo.BundleLimitError`); a
    malformed entry (a Box whose bounds do not fit its shape, say) raises
    :class:`~alphazoo.BundleFormatError` naming ``what``. The ``onnx`` format's loader checks
    its spaces with this; :func:`decode_space` builds the gymnasium space from it.
    """
    import numpy as np

    limits = limits or LoadLimits()
    kind = data.get("type")
    try:
        if kind == "Discrete":
            return {"type": kind, "shape": (), "n": _int(data.get("n"), "n", 1),
                    "start": _int(data.get("start", 0), "start", -(2**62))}
        shape = space_shape(data)
        if any(d < 0 for d in shape):
            raise ValueError(f"negative dimension in {list(shape)}")
        count = math.prod(shape)
        if kind == "MultiBinary":
            check_bytes(array_bytes(shape, 1), limits, f"{what} MultiBinary{list(shape)}")
            n = data.get("n")
            return {"type": kind, "shape": shape,
                    "n": list(shape) if isinstance(n, list) else shape[0]}
        dtype = data.get("dtype")
        if dtype not in _DTYPES:
            raise ValueError(f"dtype {dtype!r} is not one of {', '.join(_DTYPES)}")
        check_bytes(array_bytes(shape, 2 * np.dtype(dtype).itemsize), limits,
                    f"{what} {kind}{list(shape)} of {dtype}")
        if kind == "MultiDiscrete":
            nvec = np.array(_ints(data.get("nvec"), "nvec"), dtype=dtype)
            start = np.array(_ints(data.get("start"), "start"), dtype=dtype)
            if nvec.size != count or start.size != count:
                raise ValueError(f"nvec and start need {count} values for shape {list(shape)}")
            return {"type": kind, "shape": shape, "dtype": dtype,
                    "nvec": nvec.reshape(shape), "start": start.reshape(shape)}
        if kind == "Box":
            return {"type": kind, "shape": shape, "dtype": dtype,
                    "low": _bound_array(data.get("low"), shape, dtype, "low"),
                    "high": _bound_array(data.get("high"), shape, dtype, "high")}
    except (TypeError, ValueError, OverflowError) as exc:
        raise BundleFormatError(what, f"not a valid {kind} space: {exc}") from exc
    raise BundleFormatError(what, f"names the space type {kind!r}; a bundle holds one of "
                                  f"{', '.join(SPACE_TYPES)}")


def decode_space(data: Mapping[str, Any], limits: LoadLimits | None = None,
                 what: str = "space") -> Any:
    """The gymnasium space of :func:`encode_space`'s ``data``.

    Its parts are checked first (:func:`check_space`: sizes against ``limits``, then
    :class:`~alphazoo.BundleLimitError`; a malformed entry raises
    :class:`~alphazoo.BundleFormatError` naming ``what``).
    """
    parts = check_space(data, limits, what)
    from gymnasium import spaces

    kind = parts["type"]
    try:
        if kind == "Discrete":
            return spaces.Discrete(parts["n"], start=parts["start"])
        if kind == "MultiBinary":
            return spaces.MultiBinary(parts["n"])
        if kind == "MultiDiscrete":
            if not parts["start"].any():  # as gymnasium < 1.0 makes it, which has no start=
                return spaces.MultiDiscrete(parts["nvec"], dtype=parts["dtype"])
            return spaces.MultiDiscrete(parts["nvec"], dtype=parts["dtype"],
                                        start=parts["start"])
        return spaces.Box(low=parts["low"], high=parts["high"], shape=parts["shape"],
                          dtype=parts["dtype"])
    except (TypeError, ValueError, OverflowError, AssertionError) as exc:
        raise BundleFormatError(what, f"not a valid {kind} space: {exc}") from exc


def _bound_array(value: Any, shape: tuple[int, ...], dtype: str, name: str) -> Any:
    import numpy as np

    values = value if isinstance(value, list) else [value]
    numbers = [float(v) if isinstance(v, str) else v for v in values]  # "inf", "-inf", "nan"
    if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in numbers):
        raise ValueError(f"{name} holds values that are not numbers")
    array = np.array(numbers, dtype=np.float64)
    if len(values) == 1:
        return np.full(shape, array[0]).astype(dtype)
    if array.size != math.prod(shape):
        raise ValueError(f"{name} holds {array.size} values, the shape {list(shape)} needs "
                         f"{math.prod(shape)}")
    return array.reshape(shape).astype(dtype)


def _int(value: Any, name: str, minimum: int = 0) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, not {value!r}")
    return value


def _ints(value: Any, name: str) -> list[int]:
    if not isinstance(value, list):
        raise ValueError(f"{name} must be a list of integers, not {type(value).__name__}")
    return [_int(v, name, minimum=-(2**62)) for v in value]
