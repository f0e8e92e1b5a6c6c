"""Values reduced to JSON types, for manifests and ``--json`` output.

numpy arrays and scalars become lists and numbers, sets sorted lists, anything else its
``repr``; :func:`strict_jsonable` also turns NaN and infinities into None (strict JSON).
"""

from __future__ import annotations

import json
import math
from typing import Any

__all__ = ["jsonable", "strict_jsonable"]


def jsonable(value: Any) -> Any:
    """``value`` reduced to JSON types (numpy scalars and tuples included)."""
    return json.loads(json.dumps(value, default=_json_default))


def strict_jsonable(value: Any) -> Any:
    """``value`` reduced to JSON types, with NaN and infinities as None: strict JSON, which a
    bundle manifest must be and other tools' parsers expect."""
    def finite(item: Any) -> Any:
        if isinstance(item, float):
            return item if math.isfinite(item) else None
        if isinstance(item, dict):
            return {key: finite(inner) for key, inner in item.items()}
        if isinstance(item, list):
            return [finite(inner) for inner in item]
        return item

    return finite(jsonable(value))


def _json_default(value: Any) -> Any:
    if hasattr(value, "tolist"):
        return value.tolist()
    if isinstance(value, (set, frozenset)):
        return sorted(value)
    return repr(value)
