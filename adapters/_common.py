"""Small pieces every adapter needs: format and option checks, pickle files, class names.

Kept here so the adapters say the same thing the same way (one wording for an unknown
format, one for an unknown option) and the pickle code that the trust guard protects exists
once.
"""

from __future__ import annotations

import pickle
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from alphazoo.errors import UnsupportedFormatError

__all__ = ["check_options", "choose_format", "class_path", "dump_pickle", "load_pickle"]


def choose_format(adapter: str, requested: str | None, formats: Iterable[str], default: str,
                  *, hints: Mapping[str, str] | None = None) -> str:
    """The format to write: ``requested``, or ``default`` when None.

    Raises :class:`~alphazoo.UnsupportedFormatError` naming the adapter's formats when
    ``requested`` is not one of them; ``hints`` adds a reason for a format that cannot exist
    for this library (hmmlearn has no ONNX converter, say); which other adapter writes a format
    is the host's to say, as it knows them all.
    """
    names = tuple(formats)
    fmt = default if requested is None else requested
    if fmt in names:
        return fmt
    reason = (hints or {}).get(fmt)
    why = f" ({reason})" if reason else ""
    raise UnsupportedFormatError(
        f"the {adapter} adapter writes {', '.join(names)}, not {fmt!r}{why}"
    )


def check_options(adapter: str, action: str, options: Mapping[str, Any],
                  accepted: Iterable[str]) -> None:
    """Raise TypeError for keyword arguments of ``Zoo.save``/``Zoo.load`` the adapter lacks."""
    known = tuple(accepted)
    unknown = sorted(set(options) - set(known))
    if unknown:
        takes = ", ".join(known) if known else "none"
        raise TypeError(
            f"the {adapter} adapter's {action} got unexpected options {unknown}; it takes: "
            f"{takes}"
        )


def class_path(obj: Any) -> str:
    """``module.QualifiedName`` of ``obj``'s class, as recorded in manifests."""
    cls = type(obj)
    return f"{cls.__module__}.{cls.__qualname__}"


def dump_pickle(obj: Any, path: Path) -> None:
    """Pickle ``obj`` to ``path`` (protocol 5: out-of-band friendly, Python >= 3.8)."""
    with open(path, "wb") as handle:
        pickle.dump(obj, handle, protocol=5)


def load_pickle(path: Path) -> Any:
    """Unpickle ``path``. Runs code: call only after the host's trust guard has passed."""
    with open(path, "rb") as handle:
        return pickle.load(handle)
