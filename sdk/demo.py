"""Deprecated: renamed :mod:`alphazoo.example_features` (this module never was ``alphazoo
demo``, which is :mod:`alphazoo.contrib.demo`). Importing it warns; it goes away in the next
release."""

from __future__ import annotations

from .errors import warn_renamed
from .example_features import FEATURES, make_features

__all__ = ["make_features", "FEATURES"]

warn_renamed("alphazoo.demo", "alphazoo.example_features")
