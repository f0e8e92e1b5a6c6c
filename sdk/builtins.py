"""Deprecated alias of :mod:`alphazoo.host_plugin` (renamed: ``builtins`` is the name of a
standard library module). Importing it warns; it goes in the next release."""

from __future__ import annotations

import warnings

from .host_plugin import FormatTable, HostPlugin

__all__ = ["FormatTable", "HostPlugin"]

warnings.warn(
    "alphazoo.builtins is deprecated and will be removed in the next release: it was renamed "
    "alphazoo.host_plugin (from alphazoo.host_plugin import HostPlugin)",
    DeprecationWarning,
    stacklevel=2,
)
