"""Installed distribution versions, read from package metadata without importing anything.

Cached per process: parsing a distribution's metadata costs milliseconds (scipy's about two),
and a save records several versions; installs do not change under a running process.
"""

from __future__ import annotations

from functools import lru_cache
from importlib import metadata

__all__ = ["installed_version", "installed_versions"]


@lru_cache(maxsize=None)
def installed_version(distribution: str) -> str | None:
    """The installed version of ``distribution``, or None when it is not installed."""
    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return None


def installed_versions(*distributions: str) -> dict[str, str]:
    """``{name: version}`` for those of ``distributions`` that are installed."""
    found = {}
    for name in distributions:
        version = installed_version(name)
        if version is not None:
            found[name] = version
    return found
