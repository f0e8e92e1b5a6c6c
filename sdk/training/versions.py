"""Deprecated: renamed :mod:`alphazoo.training.model_versions` (the name said "library
versions"; the module keeps a trained model's series of versions). Importing this module warns;
it goes away in the next release."""

from __future__ import annotations

import sys
import types
from typing import Any

from alphazoo.errors import warn_renamed

from . import model_versions
from .model_versions import *  # noqa: F403  (the old module's names, unchanged)
from .model_versions import __all__  # noqa: F401

warn_renamed("alphazoo.training.versions", "alphazoo.training.model_versions")


class _CallableModule(types.ModuleType):
    # Importing this module binds alphazoo.training.versions to it, hiding the function
    # alphazoo.training.versions(store, name) of the same name; calling the module keeps that
    # call working for the release this shim lives.
    def __call__(self, *args: Any, **kwargs: Any) -> list[int]:
        return model_versions.versions(*args, **kwargs)


sys.modules[__name__].__class__ = _CallableModule
