"""Deprecated: renamed :mod:`alphazoo.example_features` (this module never was ``alphazoo
demo``, which is :mod:`alphazoo.contrib.demo`). Importing it warns; it goes away in the next
release."""

from __future__ import annotations

import warnings

from .example_features import FEATURES, make_features

__all__ = ["make_features", "FEATURES"]

warnings.warn("alphazoo.demo is deprecated; import make_features and FEATURES from "
              "alphazoo.example_features instead", DeprecationWarning, stacklevel=2)
