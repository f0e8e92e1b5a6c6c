"""Which plugin owns a model, decided before any plugin's library code runs.

Adapters name the classes they own in ``alphazoo_model_types`` (``"sklearn.base.BaseEstimator"``).
The host resolves a name only when its module is already imported (a model of a library cannot
exist before the library is), never importing one, and the plugin whose class comes first in
``type(model).__mro__`` owns the model: an ``xgboost.XGBRegressor`` is xgboost's although it is
also a scikit-learn ``BaseEstimator``. Only the owner's ``alphazoo_train``,
``alphazoo_predict`` and ``alphazoo_save`` run for it, so a broken third-party plugin cannot
break the models of other adapters.

A model no declared class matches goes through the chain of plugins that declare no classes,
one at a time, as pluggy would call them; an exception one of them raises that is not an
alphazoo error becomes a :class:`~alphazoo.PluginHookError` naming the plugin and the hook.
"""

from __future__ import annotations

import sys
from types import ModuleType
from typing import Any, Callable

import pluggy

from .errors import AlphazooError, PluginConflictError, PluginHookError

__all__ = ["ModelOwners", "OWNED_HOOKS", "resolve_class"]

#: The hooks whose implementations are routed to the owner of the model they are given.
OWNED_HOOKS = ("alphazoo_train", "alphazoo_predict", "alphazoo_save")


def resolve_class(path: str) -> type | None:
    """The class ``path`` (``"module.QualifiedName"`` or ``"module:QualifiedName"``) names,
    when its module is already in ``sys.modules``; None otherwise. Never imports anything."""
    if ":" in path:
        module_name, _, qualname = path.partition(":")
        candidates = [(module_name, qualname)]
    else:
        parts = path.split(".")
        # The longest imported module prefix first: "a.b.C" may be class C of module a.b, or
        # the nested class b.C of module a.
        candidates = [(".".join(parts[:cut]), ".".join(parts[cut:]))
                      for cut in range(len(parts) - 1, 0, -1)]
    for module_name, qualname in candidates:
        found: Any = sys.modules.get(module_name)
        if found is None:
            continue
        for attribute in qualname.split("."):
            # Only what is already defined: getattr could run a module's lazy __getattr__
            # (scikit-learn has one), which imports submodules.
            found = vars(found).get(attribute) if isinstance(found, (ModuleType, type)) else None
        if isinstance(found, type):
            return found
    return None


class ModelOwners:
    """The owner table of one plugin manager: which plugin trains, predicts with and saves a
    model.

    ``collect(hook_name)`` calls a collecting hook plugin by plugin and returns ``[(plugin
    name, answer)]`` (the host's, which reports a failing plugin instead of raising). A
    plugin's declared classes are static: they are gathered once per set of registered
    plugins. ``is_builtin(name)`` is true for alphazoo's own adapters: in the fallback chain
    their exceptions are their models' (a TypeError for an option the adapter does not take)
    and pass unchanged, while a third-party plugin's become :class:`PluginHookError`. (Once
    every built-in adapter declares its classes, none of them is in that chain.)
    """

    def __init__(self, pm: pluggy.PluginManager,
                 collect: Callable[[str], list[tuple[str, Any]]],
                 is_builtin: Callable[[str], bool] = lambda name: False) -> None:
        self._pm = pm
        self._collect = collect
        self._is_builtin = is_builtin
        self._declared: dict[str, tuple[str, ...]] = {}
        self._declared_for: tuple[int, ...] | None = None
        self._resolved: dict[str, type] = {}
        # The class -> plugins table, valid while neither the declarations nor the set of
        # imported modules change (an import can make a declared path resolvable).
        self._claims: dict[type, list[str]] = {}
        self._claims_for: tuple[tuple[int, ...] | None, int] | None = None
        self._chains: dict[str, tuple[tuple[int, ...], list[pluggy.HookImpl]]] = {}

    def declared(self) -> dict[str, tuple[str, ...]]:
        """Each plugin's declared class paths, for the plugins that declare at least one."""
        impls = self._pm.hook.alphazoo_model_types.get_hookimpls()
        identity = tuple(id(impl) for impl in impls)
        if identity != self._declared_for:  # a plugin was registered or removed since
            self._declared = {
                name: tuple(str(path) for path in answer)
                for name, answer in self._collect("alphazoo_model_types") if answer
            }
            self._declared_for = identity
        return self._declared

    def owner(self, model: Any) -> str | None:
        """The name of the plugin owning ``model``, or None when no declared class matches.

        Raises :class:`~alphazoo.PluginConflictError` when two plugins declare the nearest
        matching class.
        """
        claims = self._claim_table()
        if not claims:
            return None
        for cls in type(model).__mro__:
            plugins = claims.get(cls)
            if not plugins:
                continue
            if len(plugins) > 1:
                raise PluginConflictError(plugins, f"{cls.__module__}.{cls.__qualname__}")
            return plugins[0]
        return None

    def _claim_table(self) -> dict[type, list[str]]:
        declared = self.declared()
        key = (self._declared_for, len(sys.modules))
        if key == self._claims_for:
            return self._claims
        claims: dict[type, list[str]] = {}
        for plugin, paths in declared.items():
            for path in paths:
                cls = self._resolved.get(path)
                if cls is None:
                    cls = resolve_class(path)
                    if cls is None:
                        continue
                    self._resolved[path] = cls  # a class, once imported, stays
                if plugin not in claims.setdefault(cls, []):
                    claims[cls].append(plugin)
        self._claims, self._claims_for = claims, key
        return claims

    def _chain(self, hook_name: str, skip: str) -> list[pluggy.HookImpl]:
        """The plain implementations of ``hook_name`` but ``skip``'s, in pluggy's call order."""
        impls = getattr(self._pm.hook, hook_name).get_hookimpls()
        identity = tuple(id(impl) for impl in impls)
        cached = self._chains.get(hook_name)
        if cached is None or cached[0] != identity:
            chain = [impl for impl in reversed(impls)
                     if not (impl.wrapper or impl.hookwrapper) and impl.plugin_name != skip]
            cached = self._chains[hook_name] = (identity, chain)
        return cached[1]

    def call(self, hook_name: str, model: Any, kwargs: dict[str, Any],
             skip: str) -> Any:
        """The answer of ``model``'s owner to ``hook_name``, or of the first plugin of the
        fallback chain that answers; None when none does.

        ``skip`` names the plugin calling this (the host), whose own implementation is the
        router, not an answer.
        """
        impls = self._chain(hook_name, skip)
        owner = self.owner(model)
        if owner is not None:
            for impl in impls:
                if impl.plugin_name == owner:
                    return _call(impl, kwargs)  # the owner's errors are its model's: as raised
            return None
        declaring = self.declared()
        for impl in impls:
            if impl.plugin_name in declaring:
                continue  # it named its classes, and this model is none of them
            try:
                answer = _call(impl, kwargs)
            except AlphazooError:
                raise  # typed on purpose, with a message that says what to do
            except Exception as exc:
                if self._is_builtin(impl.plugin_name):
                    raise
                raise PluginHookError(impl.plugin_name, hook_name, exc) from exc
            if answer is not None:
                return answer
        return None

    def bypassed(self, hook_name: str) -> list[Any]:
        """The plugins whose plain implementation of ``hook_name`` the router calls itself:
        removed from the hook caller the host uses, so none is called twice. Hook wrappers
        stay, and run around the router."""
        return [self._pm.get_plugin(impl.plugin_name)
                for impl in getattr(self._pm.hook, hook_name).get_hookimpls()
                if not (impl.wrapper or impl.hookwrapper)]


def _call(impl: pluggy.HookImpl, kwargs: dict[str, Any]) -> Any:
    # pluggy lets an implementation take fewer arguments than its spec.
    return impl.function(**{name: kwargs[name] for name in impl.argnames if name in kwargs})
