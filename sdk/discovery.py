"""Plugin discovery through the ``alphazoo`` entry-point group.

pluggy's own ``load_setuptools_entrypoints`` stops at the first plugin that fails to import; a
model zoo must keep working when one third-party plugin is broken, so each entry point is loaded
on its own: a failure becomes a :class:`PluginLoadWarning` and a ``failed`` row in
``alphazoo plugins``. A plugin implementing a hook no spec defines (``alphazoo_sav``, a typo
that pluggy would otherwise accept silently and never call) fails the same way, its row naming
the hook and the nearest spec; hooks marked ``optionalhook=True`` are allowed.
``ALPHAZOO_DISABLE_PLUGINS=name,...`` blocks plugins by entry-point name.
"""

from __future__ import annotations

import difflib
import os
import warnings
from dataclasses import dataclass, field
from importlib import metadata

import pluggy

from .errors import AlphazooWarning
from .hookspecs import PROJECT

__all__ = ["PluginInfo", "PluginLoadWarning", "discover_plugins", "disabled_plugins",
           "plugin_trouble", "register_checked", "settle_status"]

ENTRY_POINT_GROUP = PROJECT


class PluginLoadWarning(AlphazooWarning):
    """A plugin could not be loaded; alphazoo goes on without it."""


@dataclass
class PluginInfo:
    """One row of ``alphazoo plugins``."""

    name: str
    distribution: str
    version: str
    module: str
    #: "loaded", "failed", "blocked", "builtin", or "library missing" (registered, but the
    #: library it adapts is not installed: ``install`` says how to get it).
    status: str
    hooks: list[str] = field(default_factory=list)
    error: str | None = None
    requires: list[str] = field(default_factory=list)
    #: What to run so that a "library missing" plugin (or its optional parts) works.
    install: str | None = None


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
            problem = register_checked(pm, plugin, entry_point.name)
        except Exception as exc:  # a broken plugin must not take the host down
            problem = f"{type(exc).__name__}: {exc}"
        if problem is not None:
            row.status = "failed"
            row.error = problem
            warnings.warn(
                f"alphazoo plugin {entry_point.name!r} ({row.distribution} {row.version}) "
                f"failed to load and is skipped: {row.error}",
                PluginLoadWarning,
                stacklevel=3,
            )
    return rows


def register_checked(pm: pluggy.PluginManager, plugin: object, name: str) -> str | None:
    """Register ``plugin`` under ``name`` unless it implements a hook no spec defines.

    Returns None when registered; otherwise the plugin stays unregistered and the reason is
    returned (``"unknown hook 'alphazoo_sav' (did you mean alphazoo_save?)"``). pluggy accepts
    such an implementation and never calls it, so a misspelt hook would fail silently.
    """
    pm.register(plugin, name=name)
    try:
        pm.check_pending()  # every plugin registered before passed it: a failure is this one's
    except pluggy.PluginValidationError:
        reasons = [_unknown_hook(pm, caller.name) for caller in pm.get_hookcallers(plugin) or []
                   if not caller.has_spec() and any(
                       impl.plugin is plugin and not impl.optionalhook
                       for impl in caller.get_hookimpls())]
        pm.unregister(plugin)
        return "; ".join(reasons) or "implements a hook no alphazoo hookspec defines"
    return None


def _unknown_hook(pm: pluggy.PluginManager, hook_name: str) -> str:
    known = sorted(name for name, caller in vars(pm.hook).items()
                   if not name.startswith("_") and caller.has_spec())
    nearest = difflib.get_close_matches(hook_name, known, n=1)
    hint = f"did you mean {nearest[0]}?" if nearest else f"the hooks are: {', '.join(known)}"
    return f"unknown hook {hook_name!r}, which no alphazoo hookspec defines ({hint})"


def settle_status(row: PluginInfo) -> None:
    """Turn a "loaded" row into "library missing" when its library is not installed.

    A plugin's first requirement names the library it adapts (the convention of
    ``alphazoo_requirements``). Read from package metadata, never imported: discovery must
    not import an ML framework. Missing optional requirements (the ONNX tools) keep the
    plugin loaded and only fill ``install``.
    """
    from packaging.requirements import InvalidRequirement, Requirement

    from alphazoo.compat.installed import installed_version

    if row.status != "loaded" or not row.requires:
        return
    missing = []
    for text in row.requires:
        try:
            name = Requirement(text).name
        except InvalidRequirement:
            continue
        if installed_version(name) is None:
            missing.append(name)
    if not missing:
        return
    row.install = _install_command(row, missing)
    try:
        library = Requirement(row.requires[0]).name
    except InvalidRequirement:
        return
    if library in missing:
        # The libraries column already says which is missing: the status says what to run.
        row.status = "library missing"
        row.error = row.install
    else:
        row.error = f"without {', '.join(missing)} (optional); {row.install}"


def _install_command(row: PluginInfo, missing: list[str]) -> str:
    """``pip install ...`` for ``missing``: alphazoo's own extra when one holds them."""
    if row.distribution == "alphazoo":
        extras = _alphazoo_extras()
        # The plugin's namesake extra first (sklearn, hmmlearn...), then the smallest one.
        candidates = sorted(extras, key=lambda extra: (extra != row.name, len(extras[extra])))
        chosen = []
        for name in missing:
            extra = next((e for e in candidates if name in extras[e]), None)
            if extra is not None and extra not in chosen:
                chosen.append(extra)
        if chosen:
            return f'pip install "alphazoo[{",".join(chosen)}]"'
    return "pip install " + " ".join(missing)


def _alphazoo_extras() -> dict[str, set[str]]:
    """alphazoo's extras and the distribution names each requires directly."""
    from packaging.requirements import InvalidRequirement, Requirement

    extras: dict[str, set[str]] = {}
    try:
        texts = metadata.requires("alphazoo") or []
    except metadata.PackageNotFoundError:
        return extras
    for text in texts:
        try:
            requirement = Requirement(text)
        except InvalidRequirement:
            continue
        marker = str(requirement.marker or "")
        if "extra ==" not in marker:
            continue
        extra = marker.split("extra ==")[1].strip().strip("\"'")
        extras.setdefault(extra, set()).add(requirement.name)
    return extras


def plugin_trouble(rows: list[PluginInfo], name: str | None = None) -> str:
    """A sentence on plugins that are installed but not working, for error messages.

    With ``name``: about that plugin when it is the one in trouble; otherwise every failed or
    blocked plugin, whose models and formats are absent. (A plugin missing its library still
    registers them, and its adapter names the library when it is used.) Empty when all is well.
    """
    troubled = [row for row in rows if row.status in ("failed", "blocked")]
    named = [row for row in troubled if row.name == name]
    if named:
        return f"; {_trouble(named[0])} (see `alphazoo plugins`)"
    if not troubled:
        return ""
    return ("; note " + "; ".join(_trouble(row) for row in troubled)
            + " (see `alphazoo plugins`)")


def _trouble(row: PluginInfo) -> str:
    if row.status == "failed":
        return f"plugin {row.name!r} is installed but failed to load: {row.error}"
    return f"plugin {row.name!r} is blocked by $ALPHAZOO_DISABLE_PLUGINS"
