"""alphazoo: a plugin-based model zoo for trading algorithms.

Build and train models from any ML library, save them safely into an object store (pickle,
JSON weights, ONNX), load them back elsewhere and serve predictions; QuantConnect LEAN's
Object Store and training workflow with qlib's model zoo, on a pluggy plugin host.

Importing alphazoo imports no ML framework; adapters import theirs on first use.
"""

from __future__ import annotations

from importlib import metadata as _metadata

from .contracts import FormatSpec, LoadRequest, ModelSpec, SavedPayload, SaveRequest
from .discovery import PluginInfo, PluginLoadWarning
from .errors import (
    AlphazooError,
    BundleIntegrityError,
    IncompatibleVersionError,
    InvalidKeyError,
    MissingDependencyError,
    ModelNotFoundError,
    ObjectNotFoundError,
    OnnxParityError,
    StorageLimitError,
    UnsupportedFormatError,
    UnsupportedModelError,
    UntrustedModelError,
    VersionMismatchWarning,
)
from .hookspecs import hookimpl
from .host import Zoo
from .registry import register_model, unregister_model
from .store import TIERS, ObjectStore, StoreUsage



def __getattr__(name: str) -> object:
    # The training runtime (schedules, executors, multiprocessing) loads on first use, so
    # `import alphazoo` stays cheap for code that only serves models.
    if name == "TrainingQuotaExceeded":
        from .training.quota import TrainingQuotaExceeded

        return TrainingQuotaExceeded
    raise AttributeError(f"module 'alphazoo' has no attribute {name!r}")


try:
    __version__ = _metadata.version("alphazoo")
except _metadata.PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0+unknown"

__all__ = [
    "Zoo",
    "ObjectStore",
    "StoreUsage",
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
    "ObjectNotFoundError",
    "StorageLimitError",
    "BundleIntegrityError",
    "UntrustedModelError",
    "UnsupportedModelError",
    "UnsupportedFormatError",
    "ModelNotFoundError",
    "OnnxParityError",
    "MissingDependencyError",
    "IncompatibleVersionError",
    "VersionMismatchWarning",
    "TrainingQuotaExceeded",
    "__version__",
]
