"""The supported-version table: one row per library alphazoo works with.

LEAN publishes a table of the ML libraries (and versions) its images carry, and warns that
other versions can fail fatally; this is that table for alphazoo, made executable by
``alphazoo compat check``. Ranges are ``min`` inclusive, ``max`` exclusive, like the specifiers
in pyproject's extras; a test fails when the two disagree, so change both together. ``tested``
is the version the test suite ran against when the row was last reviewed.
"""

from __future__ import annotations

from dataclasses import dataclass

from packaging.specifiers import SpecifierSet
from packaging.version import InvalidVersion, Version

__all__ = ["Support", "SUPPORTED", "support_for", "distributions_of"]


@dataclass(frozen=True)
class Support:
    """One library's supported range ``[min, max)`` and the version tested."""

    library: str
    min: str
    max: str
    tested: str
    #: The pyproject extra that installs it ("core" for alphazoo's own dependencies).
    extra: str
    #: Distribution names that provide the library (tensorflow ships as tensorflow-cpu too).
    distributions: tuple[str, ...] = ()

    @property
    def specifier(self) -> SpecifierSet:
        return SpecifierSet(f">={self.min},<{self.max}")

    @property
    def supported(self) -> str:
        return f">={self.min},<{self.max}"

    def contains(self, version: str) -> bool:
        """True when ``version`` is in range (local tags such as ``+cpu`` are ignored)."""
        try:
            public = Version(version).public
        except InvalidVersion:
            return False
        return self.specifier.contains(public, prereleases=True)


SUPPORTED: tuple[Support, ...] = (
    Support("python", "3.11", "3.14", "3.11.7", "core"),
    Support("numpy", "1.26", "3", "2.4.6", "core"),
    Support("pluggy", "1.5", "2", "1.7.0", "core"),
    Support("scikit-learn", "1.5", "1.10", "1.9.1", "sklearn"),
    Support("skops", "0.12", "0.17", "0.16.0", "sklearn"),
    Support("xgboost", "2.1", "3.3", "3.2.0", "xgboost"),
    Support("torch", "2.6", "2.14", "2.13.0", "torch"),
    Support("tensorflow", "2.18", "2.22", "2.21.0", "tensorflow",
            ("tensorflow", "tensorflow-cpu")),
    Support("keras", "3.14", "3.16", "3.15.1", "keras"),
    Support("hmmlearn", "0.3.2", "0.4", "0.3.3", "hmmlearn"),
    # LEAN's image ships 1.2.8 (compat/targets.py).
    Support("catboost", "1.2.5", "1.3", "1.2.10", "catboost"),
    # LEAN's image ships stable-baselines3 2.7.1 (compat/targets.py), inside this range.
    Support("stable-baselines3", "2.3", "2.10", "2.9.2", "sb3"),
    Support("gymnasium", "0.29.1", "1.5", "1.4.0", "sb3"),
    # LEAN's image ships 4.6.0.
    Support("lightgbm", "4.3", "4.8", "4.7.0", "lightgbm"),
    Support("onnx", "1.16", "1.24", "1.23.2", "onnx"),
    Support("onnxruntime", "1.19", "1.32", "1.31.1", "onnx"),
    Support("skl2onnx", "1.17", "1.21", "1.20.0", "onnx"),
    Support("onnxmltools", "1.12", "1.17", "1.16.0", "onnx"),
    Support("tf2onnx", "1.16", "1.18", "1.17.0", "onnx"),
    Support("onnxscript", "0.1", "0.8", "0.7.2", "onnx"),
    Support("safetensors", "0.4", "0.9", "0.8.0", "safetensors"),
)

_BY_NAME = {row.library: row for row in SUPPORTED}


def support_for(library: str) -> Support | None:
    """The table's row for ``library`` (a distribution name such as ``tensorflow-cpu`` finds
    its library's row), or None."""
    row = _BY_NAME.get(library)
    if row is not None:
        return row
    for candidate in SUPPORTED:
        if library in candidate.distributions:
            return candidate
    return None


def distributions_of(library: str) -> tuple[str, ...]:
    """The distribution names that may provide ``library``, most common first."""
    row = _BY_NAME.get(library)
    if row is not None and row.distributions:
        return row.distributions
    return (library,)
