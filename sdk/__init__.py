"""alphazoo: a plugin-based model zoo for trading algorithms.

Build and train models from any ML library, save them safely into an object store (pickle,
JSON weights, ONNX), load them back elsewhere and serve predictions; QuantConnect LEAN's
Object Store and training workflow with qlib's model zoo, on a pluggy plugin host.

Importing alphazoo imports no ML framework; adapters import theirs on first use.
"""

from __future__ import annotations

from functools import cache as _cache
from typing import TYPE_CHECKING

# The public names, each with the submodule it lives in: the one list of them. ``__all__`` and
# ``dir(alphazoo)`` are derived from it. They are imported on first use (PEP 562), so `import
# alphazoo` costs about a millisecond: entry-point plugins, the pytest plugin and
# `alphazoo.compat` load only what they touch. `from alphazoo import Zoo` works as ever. (The
# TYPE_CHECKING imports below repeat it for type checkers; tests/test_package.py checks they
# agree.)
_EXPORTS = {
    "Zoo": "host",
    "ObjectStore": "store", "StoreUsage": "store_limits", "FsckReport": "leftovers",
    "TIERS": "store_limits",
    "hookimpl": "hookspecs",
    "register_model": "registry", "unregister_model": "registry",
    "FormatSpec": "contracts", "ModelSpec": "contracts", "SaveRequest": "contracts",
    "SavedPayload": "contracts", "LoadRequest": "contracts",
    "PluginInfo": "discovery", "PluginLoadWarning": "discovery",
    "AlphazooError": "errors", "InvalidKeyError": "errors", "KeyConflictError": "errors",
    "KeyEscapeError": "errors", "ObjectNotFoundError": "errors", "ObjectChangedError": "errors",
    "StorageLimitError": "errors", "BundleIntegrityError": "errors",
    "BundleFormatError": "errors", "BundleLimitError": "errors", "LoadLimits": "limits",
    "UntrustedModelError": "errors", "UnsupportedModelError": "errors",
    "UnsupportedFormatError": "errors", "ModelNotFoundError": "errors",
    "OnnxParityError": "errors", "SpaceMismatchError": "errors",
    "MissingDependencyError": "errors",
    "IncompatibleVersionError": "errors", "PluginError": "errors", "PluginHookError": "errors",
    "PluginConflictError": "errors", "AlphazooWarning": "errors",
    "VersionMismatchWarning": "errors", "SaveWarning": "errors", "AdapterCheckError": "errors",
    "TrainingQuotaExceeded": "training.quota",
    "ModelRegistry": "model_registry", "AliasConflictError": "errors",
    "AliasNotFoundError": "errors", "PromotionRefusedError": "errors",
    "RegistryRecordError": "errors", "InvalidAliasError": "errors",
    "RegistryUsageError": "errors", "ModelRejectedError": "errors",
}

if TYPE_CHECKING:  # for type checkers and IDEs: the same names, imported eagerly
    # "X as X": an explicit re-export (PEP 484), as __all__ is not a literal list.
    from .contracts import FormatSpec as FormatSpec
    from .contracts import LoadRequest as LoadRequest
    from .contracts import ModelSpec as ModelSpec
    from .contracts import SavedPayload as SavedPayload
    from .contracts import SaveRequest as SaveRequest
    from .discovery import PluginInfo as PluginInfo
    from .discovery import PluginLoadWarning as PluginLoadWarning
    from .errors import AdapterCheckError as AdapterCheckError
    from .errors import AliasConflictError as AliasConflictError
    from .errors import AliasNotFoundError as AliasNotFoundError
    from .errors import AlphazooError as AlphazooError
    from .errors import AlphazooWarning as AlphazooWarning
    from .errors import BundleFormatError as BundleFormatError
    from .errors import BundleIntegrityError as BundleIntegrityError
    from .errors import BundleLimitError as BundleLimitError
    from .errors import IncompatibleVersionError as IncompatibleVersionError
    from .errors import InvalidAliasError as InvalidAliasError
    from .errors import InvalidKeyError as InvalidKeyError
    from .errors import KeyConflictError as KeyConflictError
    from .errors import KeyEscapeError as KeyEscapeError
    from .errors import MissingDependencyError as MissingDependencyError
    from .errors import ModelNotFoundError as ModelNotFoundError
    from .errors import ModelRejectedError as ModelRejectedError
    from .errors import ObjectChangedError as ObjectChangedError
    from .errors import ObjectNotFoundError as ObjectNotFoundError
    from .errors import OnnxParityError as OnnxParityError
    from .errors import PluginConflictError as PluginConflictError
    from .errors import PluginError as PluginError
    from .errors import PluginHookError as PluginHookError
    from .errors import PromotionRefusedError as PromotionRefusedError
    from .errors import RegistryRecordError as RegistryRecordError
    from .errors import RegistryUsageError as RegistryUsageError
    from .errors import SaveWarning as SaveWarning
    from .errors import SpaceMismatchError as SpaceMismatchError
    from .errors import StorageLimitError as StorageLimitError
    from .errors import UnsupportedFormatError as UnsupportedFormatError
    from .errors import UnsupportedModelError as UnsupportedModelError
    from .errors import UntrustedModelError as UntrustedModelError
    from .errors import VersionMismatchWarning as VersionMismatchWarning
    from .hookspecs import hookimpl as hookimpl
    from .host import Zoo as Zoo
    from .leftovers import FsckReport as FsckReport
    from .limits import LoadLimits as LoadLimits
    from .model_registry import ModelRegistry as ModelRegistry
    from .registry import register_model as register_model
    from .registry import unregister_model as unregister_model
    from .store import ObjectStore as ObjectStore
    from .store_limits import TIERS as TIERS
    from .store_limits import StoreUsage as StoreUsage
    from .training.quota import TrainingQuotaExceeded as TrainingQuotaExceeded


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
    elif name in _submodules():
        # ``alphazoo.errors`` works before anything imported the submodule.
        value = importlib.import_module(f".{name}", __name__)
    else:
        raise AttributeError(f"module 'alphazoo' has no attribute {name!r}")
    globals()[name] = value  # later lookups skip this function
    return value


@_cache  # tools probe attributes (``__wrapped__``...): read the folder once
def _submodules() -> frozenset[str]:
    """The public submodules and subpackages, read from the package folder."""
    import pkgutil

    return frozenset(info.name for info in pkgutil.iter_modules(__path__)
                     if not info.name.startswith("_"))


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))


__all__ = [*_EXPORTS, "__version__"]
