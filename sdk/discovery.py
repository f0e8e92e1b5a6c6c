"""Plugin discovery through the ``alphazoo`` entry-point group.

pluggy's own ``load_setuptools_entrypoints`` stops at the first plugin that fails to import; a
model zoo must keep working when one third-party plugin is broken, so each entry point is loaded
on its own: a failure becomes a :class:`PluginLoadWarning` and a ``failed`` row in
``alphazoo plugins``. ``ALPHAZOO_DISABLE_PLUGINS=name,...`` blocks plugins by entry-point name.
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass, field
from importlib import metadata

import pluggy

from .hookspecs import PROJECT

__all__ = ["PluginInfo", "PluginLoadWarning", "discover_plugins", "disabled_plugins"]

ENTRY_POINT_GROUP = PROJECT


class PluginLoadWarning(UserWarning):
    """A plugin could not be loaded; alphazoo goes on without it."""


@dataclass
class PluginInfo:
    """One row of ``alphazoo plugins``."""

    name: str
    distribution: str
    version: str
    module: str
    status: str  # "loaded", "failed", "blocked" or "builtin"
    hooks: list[str] = field(default_factory=list)
    error: str | None = None
    requires: list[str] = field(default_factory=list)


def disabled_plugins() -> set[str]:
    """Entry-point names listed in ``$ALPHAZOO_DISABLE_PLUGINS``."""
    raw = os.environ.get("ALPHAZOO_DISABLE_PLUGINS", "")
    return {name.strip() for name in raw.split(",") if name.strip()}


def discover_plugins(pm: pluggy.PluginManager) -> list[PluginInfo]:
    """Load and register every plugin of the entry-point group; never raises for a plugin."""
    blocked = disabled_plugins()
    rows: list[PluginInfo] = []
    seen: set[tuple[str, str]] = set()
    for entry_point in sorted(metadata.entry_points(group=ENTRY_POINT_GROUP), key=lambda e: e.name):
        dist = entry_point.dist
        # One distribution found twice on sys.path is one plugin; two distributions using one
        # name both get a row, and the second fails to register with pluggy's message.
        identity = (entry_point.name, dist.name if dist else "?")
        if identity in seen:
            continue
        seen.add(identity)
        row = PluginInfo(
            name=entry_point.name,
            distribution=dist.name if dist else "?",
            version=dist.version if dist else "?",
            module=entry_point.value,
            status="loaded",
        )
        rows.append(row)
        if entry_point.name in blocked:
            row.status = "blocked"
            pm.set_blocked(entry_point.name)
            continue
        try:
            plugin = entry_point.load()
            pm.register(plugin, name=entry_point.name)
        except Exception as exc:  # a broken plugin must not take the host down
            row.status = "failed"
            row.error = f"{type(exc).__name__}: {exc}"
            warnings.warn(
                f"alphazoo plugin {entry_point.name!r} ({row.distribution} {row.version}) "
                f"failed to load and is skipped: {row.error}",
                PluginLoadWarning,
                stacklevel=3,
            )
    return rows
