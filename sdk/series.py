"""The keys of a versioned model series: ``<name>/v000001``, ``<name>/latest.json``.

The layout itself is described in :mod:`alphazoo.training.model_versions`; the key spelling
lives here, light and on its own, so that the registry (:mod:`alphazoo.model_registry`), which
the zoo imports, spells keys the same way without importing the training package.
"""

from __future__ import annotations

import re

from .keys import normalize_key

__all__ = ["LATEST", "VERSION_NAME", "version_key"]

#: The pointer object in each series folder.
LATEST = "latest.json"
#: A version's last key segment: ``v`` and at least six digits.
VERSION_NAME = re.compile(r"v(\d{6,})")


def version_key(name: str, version: int) -> str:
    """The key of version ``version`` of series ``name``: ``"spy/gbdt/v000007"``."""
    if version < 1:
        raise ValueError(f"model versions count from 1, got {version}")
    return f"{normalize_key(name)}/v{version:06d}"
