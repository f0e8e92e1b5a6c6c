"""alphazoo: a plugin-based model zoo for trading algorithms.

Build and train models from any ML library, save them safely into an object store (pickle,
JSON weights, ONNX), load them back elsewhere and serve predictions; QuantConnect LEAN's
Object Store and training workflow with qlib's model zoo, on a pluggy plugin host.

Importing alphazoo imports no ML framework; adapters import theirs on first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

# Public names and the submodule each lives in. They are imported on first use (PEP 562), so
# `import alphazoo` costs about a millisecond: entry-point plugins, the pytest plugin and
# `alphazoo.compat` load only what they touch. `from alphazoo import Zoo` works as ever.
_EXPORTS = {
    "Zoo": "host",
    "ObjectStore": "store", "StoreUsage": "store", "TIERS": "store", "FsckReport": "leftovers",
    "hookimpl": "hookspecs",
    "register_model": "registry", "unregister_model": "registry",
    "FormatSpec": "contracts", "ModelSpec": "contracts", "SaveRequest": "contracts",
    "SavedPayload": "contracts", "LoadRequest": "contracts",
    "PluginInfo": "discovery", "PluginLoadWarning": "discovery",
    "AlphazooError": "errors", "InvalidKeyError": "errors", "ObjectNotFoundError": "errors",
    "KeyConflictError": "errors", "KeyEscapeError": "errors", "ObjectChangedError": "errors",
    "StorageLimitError": "errors", "BundleIntegrityError": "errors",
    "BundleFormatError": "errors", "BundleLimitError": "errors", "LoadLimits": "limits",
    "UntrustedModelError": "errors", "UnsupportedModelError": "errors",
    "UnsupportedFormatError": "errors", "ModelNotFoundError": "errors",
    "OnnxParityError": "errors", "MissingDependencyError": "errors",
    "IncompatibleVersionError": "errors", "VersionMismatchWarning": "errors",
    "PluginError": "errors", "PluginHookError": "errors", "PluginConflictError": "errors",
    "TrainingQuotaExceeded": "training.quota",
}
#: Submodules reachable as attributes (``alphazoo.errors``) before anything imported them.
_SUBMODULES = frozenset({
    "backends", "builtins", "bundle", "cli", "contracts", "datasets", "demo", "discovery",
    "errors", "hookspecs", "host", "host_plugin", "keys", "leftovers", "limits", "manifest_schema",
    "model_facts", "ownership", "reader", "registry", "staging", "store", "training", "trust",
})

if TYPE_CHECKING:  # for type checkers and IDEs: the same names, imported eagerly
    from .contracts import FormatSpec, LoadRequest, ModelSpec, SavedPayload, SaveRequest
    from .discovery import PluginInfo, PluginLoadWarning
    from .errors import (
        AlphazooError,
        BundleFormatError,
        BundleIntegrityError,
        BundleLimitError,
        IncompatibleVersionError,
        InvalidKeyError,
        KeyConflictError,
        KeyEscapeError,
        MissingDependencyError,
        ModelNotFoundError,
        ObjectChangedError,
        ObjectNotFoundError,
        OnnxParityError,
        PluginConflictError,
        PluginError,
        PluginHookError,
        StorageLimitError,
        UnsupportedFormatError,
        UnsupportedModelError,
        UntrustedModelError,
        VersionMismatchWarning,
    )
    from .hookspecs import hookimpl
    from .host import Zoo
    from .leftovers import FsckReport
    from .limits import LoadLimits
    from .registry import register_model, unregister_model
    from .store import TIERS, ObjectStore, StoreUsage
    from .training.quota import TrainingQuotaExceeded


def __getattr__(name: str) -> object:
    import importlib

    if name == "__version__":
        from importlib import metadata

        try:
            value: object = metadata.version("alphazoo")
        except metadata.PackageNotFoundError:  # a source tree that is not installed
            value = "0+unknown"
    elif name in _EXPORTS:
        value = getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
    elif name in _SUBMODULES:
        value = importlib.import_module(f".{name}", __name__)
    else:
        raise AttributeError(f"module 'alphazoo' has no attribute {name!r}")
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))


__all__ = [
    "Zoo",
    "ObjectStore",
    "StoreUsage",
    "FsckReport",
    "TIERS",
    "hookimpl",
    "register_model",
    "unregister_model",
    "FormatSpec",
    "ModelSpec",
    "SaveRequest",
    "SavedPayload",
    "LoadRequest",
    "PluginInfo",
    "PluginLoadWarning",
    "AlphazooError",
    "InvalidKeyError",
    "KeyConflictError",
    "KeyEscapeError",
    "ObjectNotFoundError",
    "ObjectChangedError",
    "StorageLimitError",
    "BundleIntegrityError",
    "BundleFormatError",
    "BundleLimitError",
    "LoadLimits",
    "UntrustedModelError",
    "UnsupportedModelError",
    "UnsupportedFormatError",
    "ModelNotFoundError",
    "OnnxParityError",
    "MissingDependencyError",
    "IncompatibleVersionError",
    "VersionMismatchWarning",
    "PluginError",
    "PluginHookError",
    "PluginConflictError",
    "TrainingQuotaExceeded",
    "__version__",
]
