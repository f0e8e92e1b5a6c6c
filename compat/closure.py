"""The full dependency closure of the running environment, for ``alphazoo compat lock --all``.

The table's lock pins only the ML libraries alphazoo checks; a reproducible environment needs
every distribution they pull in as well (a new ``botocore`` or ``distributed`` release is enough
to break an install). This walks installed distributions' declared requirements through
``importlib.metadata`` (no import of any library, no network), the way pip would have followed
them, and returns exact versions.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from importlib import metadata
from typing import Iterable

from packaging.markers import default_environment
from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name

__all__ = ["Closure", "collect_closure"]


@dataclass
class Closure:
    """What :func:`collect_closure` found.

    ``pins`` maps each installed distribution of the closure (canonical name) to its version;
    ``missing`` lists requirements the closure needs that are not installed, as
    ``"name (needed by parent)"`` (a lock of such an environment would not reproduce it).
    """

    pins: dict[str, str]
    missing: list[str] = field(default_factory=list)


def collect_closure(roots: Iterable[str] = ("alphazoo",), *, all_extras: bool = True,
                    include_roots: bool = False) -> Closure:
    """Every installed distribution that ``roots`` require, transitively, with its version.

    A root's extras are followed when ``all_extras`` (alphazoo's ``[all,test]``, say) but only
    as far as they are installed: an extra nobody installed is not part of this environment.
    A requirement reached through another distribution counts with the extras it was asked
    for (``dask[distributed]`` brings ``distributed``). Markers are evaluated for the running
    interpreter. ``include_roots`` also pins the roots themselves (off by default: a project's
    own lock pins its dependencies, not the project).
    """
    environment: dict[str, str] = {key: str(value)
                                   for key, value in default_environment().items()}
    pins: dict[str, str] = {}
    missing: list[str] = []
    roots = [canonicalize_name(root) for root in roots]
    # (distribution, extras asked for, who asked, whether only a root's extra asked)
    queue: deque[tuple[str, frozenset[str], str | None, bool]] = deque(
        (root, frozenset({"*"}) if all_extras else frozenset(), None, False) for root in roots)
    seen: set[tuple[str, frozenset[str]]] = set()
    while queue:
        name, extras, parent, optional = queue.popleft()
        if (name, extras) in seen:
            continue
        seen.add((name, extras))
        try:
            distribution = metadata.distribution(name)
        except metadata.PackageNotFoundError:
            # An extra of a root that nobody installed is not part of this environment; a
            # requirement of something installed is a gap worth reporting.
            if parent is not None and not optional:
                missing.append(f"{name} (needed by {parent})")
            continue
        if parent is not None or include_roots:
            pins[name] = distribution.version
        for requirement, via_extra in _requirements(distribution, extras, environment):
            queue.append((canonicalize_name(requirement.name), frozenset(requirement.extras),
                          name, via_extra and parent is None))
    return Closure(dict(sorted(pins.items())), sorted(set(missing)))


def _requirements(distribution: metadata.Distribution, extras: frozenset[str],
                  environment: dict[str, str]) -> list[tuple[Requirement, bool]]:
    """The distribution's requirements that apply here with ``extras`` ("*": every extra),
    each with whether only an extra asked for it."""
    offered = distribution.metadata.get_all("Provides-Extra") or []
    wanted = set(offered) if "*" in extras else {canonicalize_name(e) for e in extras}
    found = []
    for text in distribution.requires or []:
        try:
            requirement = Requirement(text)
        except InvalidRequirement:
            continue  # metadata we cannot read cannot be locked either; pip skipped it too
        if requirement.marker is None:
            found.append((requirement, False))
            continue
        if requirement.marker.evaluate({**environment, "extra": ""}):
            found.append((requirement, False))
        elif any(requirement.marker.evaluate({**environment, "extra": extra})
                 for extra in wanted):
            found.append((requirement, True))
    return found
