"""Deprecated alias of :mod:`alphazoo.host_plugin` (renamed: ``builtins`` is the name of a
standard library module). Importing it warns; it goes in the next release."""

from __future__ import annotations

from .errors import warn_renamed
from .host_plugin import FormatTable, HostPlugin

__all__ = ["FormatTable", "HostPlugin"]

warn_renamed("alphazoo.builtins", "alphazoo.host_plugin")
