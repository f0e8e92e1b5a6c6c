"""Loading a skops payload in one pass over its schema.

skops builds its node tree (every ``.npy`` member read, every type looked up) once for
``get_untrusted_types`` and again for ``load``. Asking first and loading second, as skops'
documentation shows, therefore costs a forest's tree twice: measured on a 100-tree forest
(9 MB payload), ``get_untrusted_types`` took 28 ms next to ``load``'s 49 ms. This module
asks ``load`` directly with the types the caller trusts, and only when skops refuses it
asks which types were in the way: the refused (rare) path pays two passes, the common path
one. The trust rule is unchanged, and skops still decides which types are unsafe; its audit
runs before anything is constructed.

Before skops reads anything, the archive's declarations are checked against the load's
limits (:func:`alphazoo.limits.check_zip`), and after it, every tree's node arrays
(:func:`alphazoo.adapters._sklearn_trees.validate_trees`).
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

from alphazoo.errors import BundleFormatError, UntrustedModelError, require
from alphazoo.limits import LoadLimits, check_zip

from ._sklearn_trees import validate_trees

__all__ = ["load_skops"]

#: What skops and numpy raise on a crafted schema, from whichever step failed.
_SCHEMA_ERRORS = (ValueError, TypeError, KeyError, AttributeError, IndexError, RecursionError)


def load_skops(
    path: Path,
    limits: LoadLimits | None,
    *,
    trusted_types: Iterable[str],
    may_run_code: bool,
    recorded_types: Iterable[str] = (),
    data: bytes | None = None,
) -> Any:
    """The model in the skops file at ``path``, bounded, trust-checked and tree-validated.

    ``trusted_types`` are the type names trusted on every load (scikit-learn's state holders
    whose arrays :func:`validate_trees` checks). ``may_run_code`` is the load's trust
    decision: when True, any type in the file is accepted, starting with ``recorded_types``
    (the ``untrusted_types`` the save recorded, so a trusted load of a bundle with a user's
    own class still takes one pass); when False, a type outside ``trusted_types`` raises
    :class:`~alphazoo.UntrustedModelError` naming those types. A schema skops cannot read or
    rebuild is a :class:`~alphazoo.BundleFormatError`. ``data``: the payload's verified bytes,
    read in place of the file (``path`` then only names it in messages).
    """
    # Before skops is imported or reads anything: a bomb costs no import.
    check_zip(path, limits, npy=True, json_members=("schema.json",), data=data)
    skops_io: Any = require("skops.io", "sklearn", "the skops format")
    refused: Any = require("skops.io.exceptions", "sklearn", "the skops format")
    trusted = set(trusted_types)
    if may_run_code:
        trusted.update(recorded_types)
    try:
        model = _load(skops_io, path, data, sorted(trusted),
                      refused.UntrustedTypesFoundException)
    except refused.UntrustedTypesFoundException:
        unknown = _untrusted_types(skops_io, path, data)
        if not may_run_code:
            foreign = [name for name in unknown if name not in trusted]
            raise UntrustedModelError(
                f"this skops bundle holds types that are not trusted by default: "
                f"{foreign}. Pass trusted=True (or load with the bundle's sign_key) if "
                "you trust them."
            ) from None
        model = _load(skops_io, path, data, sorted(trusted.union(unknown)), None)
    validate_trees(model, path.name)
    return model


def _load(skops_io: Any, path: Path, data: bytes | None, trusted: list[str],
          refusal: Any) -> Any:
    try:
        if data is not None:
            return skops_io.loads(data, trusted=trusted)
        return skops_io.load(path, trusted=trusted)
    except _SCHEMA_ERRORS as exc:
        if refusal is not None and isinstance(exc, refusal):
            raise
        # skops and numpy report a crafted schema with whatever the failing step raised.
        raise BundleFormatError(
            path.name, f"skops could not rebuild the model ({exc!r:.200})") from None


def _untrusted_types(skops_io: Any, path: Path, data: bytes | None) -> list[str]:
    try:
        if data is not None:
            return list(skops_io.get_untrusted_types(data=data))
        return list(skops_io.get_untrusted_types(file=path))
    except _SCHEMA_ERRORS as exc:
        raise BundleFormatError(
            path.name, f"not a skops schema skops can read ({exc!r:.200})") from None
