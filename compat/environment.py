"""Collectors that describe the environment, and the check of it against the table.

Everything here returns data (dicts and dataclasses) and prints nothing, in the manner of
scikit-learn's ``show_versions``: the CLI and the pytest plugin format the same results. No
library is imported: versions come from package metadata.
"""

from __future__ import annotations

import platform
import re
import sys
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterable

from packaging.specifiers import InvalidSpecifier, Specifier
from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version

from alphazoo.errors import AlphazooError

from .closure import Closure, collect_closure
from .installed import installed_version
from .table import SUPPORTED, Support, distributions_of

__all__ = [
    "CheckRow",
    "CheckReport",
    "collect_system",
    "collect_versions",
    "check_environment",
    "lock_text",
    "closure_lock_text",
    "read_lock",
    "LockFileError",
]

#: Statuses, worst last; a report fails when any row is at FAILING severity.
OK, NOT_INSTALLED, OUT_OF_RANGE, MISSING, LOCK_DIFFERS = (
    "ok", "not installed", "out of range", "missing (required)", "differs from lock"
)
FAILING = frozenset({OUT_OF_RANGE, MISSING, LOCK_DIFFERS})


class LockFileError(AlphazooError, ValueError):
    """A lock file that cannot be read or parsed (a usage error: exit 2)."""


@dataclass
class CheckRow:
    """One library in a compat check."""

    library: str
    installed: str | None
    supported: str
    tested: str
    status: str
    locked: str | None = None
    distribution: str | None = None


@dataclass
class CheckReport:
    """The outcome of :func:`check_environment`."""

    rows: list[CheckRow]
    system: dict[str, str]
    lock: str | None = None
    #: The lock's pins of distributions outside the table (a full closure's), each compared
    #: with what is installed: status "ok" or "differs from lock".
    other_pins: list[CheckRow] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not any(row.status in FAILING for row in [*self.rows, *self.other_pins])

    def as_dict(self) -> dict[str, Any]:
        return {"ok": self.ok, "system": self.system, "lock": self.lock,
                "rows": [asdict(row) for row in self.rows],
                "other_pins": [asdict(row) for row in self.other_pins]}


def collect_system() -> dict[str, str]:
    """Python version, implementation, executable and platform."""
    return {
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "executable": sys.executable,
        "platform": platform.platform(),
        "machine": platform.machine(),
    }


def collect_versions(libraries: Iterable[str] | None = None) -> dict[str, tuple[str, str] | None]:
    """``{library: (distribution, version)}`` for the table's libraries (or ``libraries``);
    None for a library that is not installed. ``python`` is the running interpreter."""
    names = [row.library for row in SUPPORTED] if libraries is None else list(libraries)
    found: dict[str, tuple[str, str] | None] = {}
    for library in names:
        if library == "python":
            found[library] = ("python", platform.python_version())
            continue
        found[library] = None
        for distribution in distributions_of(library):
            version = installed_version(distribution)
            if version is not None:
                found[library] = (distribution, version)
                break
    return found


def check_environment(
    *,
    only: Iterable[str] | None = None,
    require: Iterable[str] = (),
    lock: dict[str, str] | None = None,
    lock_name: str | None = None,
    versions: dict[str, tuple[str, str] | None] | None = None,
) -> CheckReport:
    """Compare installed versions with the table (and with ``lock``, when given).

    ``only`` limits the rows; ``require`` names libraries whose absence fails the check (by
    default a library that is not installed is reported, not failed). ``lock`` maps library
    (or distribution) names to exact versions, as :func:`read_lock` returns; a library whose
    installed version differs from its locked one, or that is locked and not installed, fails.
    ``versions`` replaces the collected versions (for callers that already have them).
    """
    if only is not None:
        only = list(only)
        if not only:
            # An empty --only (a CI variable that expanded to nothing) would check nothing and
            # pass: refuse it rather than let a misconfigured job go green.
            raise ValueError("--only names no library; known: "
                             + ", ".join(row.library for row in SUPPORTED))
    required = [_library_name(name) for name in require]
    unknown = sorted(set(required) - {row.library for row in SUPPORTED})
    if unknown:
        raise ValueError(f"--require names libraries the table does not know: {unknown}; "
                         f"known: {', '.join(row.library for row in SUPPORTED)}")
    # A required library is checked even when ``only`` leaves it out.
    rows_wanted = _select(None if only is None else [*only, *required])
    installed = versions if versions is not None else collect_versions(
        row.library for row in rows_wanted)
    locked = {_library_name(name): version for name, version in (lock or {}).items()}
    rows = []
    for support in rows_wanted:
        found = installed.get(support.library)
        distribution, version = found if found else (None, None)
        rows.append(_row(support, distribution, version, support.library in required,
                         locked.get(support.library)))
    table_names = {row.library for row in SUPPORTED}
    others = [_pin_row(name, version) for name, version in sorted(locked.items())
              if name not in table_names]
    return CheckReport(rows, collect_system(), lock_name, others)


def _pin_row(distribution: str, locked: str) -> CheckRow:
    installed = installed_version(distribution)
    same = installed is not None and _same_version(installed, locked)
    return CheckRow(distribution, installed, "", "", OK if same else LOCK_DIFFERS, locked,
                    distribution)


def _row(support: Support, distribution: str | None, version: str | None, required: bool,
         locked: str | None) -> CheckRow:
    if version is None:
        # A lock pins what was installed: a locked library that is gone has drifted too.
        status = MISSING if required else (LOCK_DIFFERS if locked is not None else NOT_INSTALLED)
    elif not support.contains(version):
        status = OUT_OF_RANGE
    elif locked is not None and not _same_version(version, locked):
        status = LOCK_DIFFERS
    else:
        status = OK
    return CheckRow(support.library, version, support.supported, support.tested, status, locked,
                    distribution)


def _select(only: Iterable[str] | None) -> list[Support]:
    if only is None:
        return list(SUPPORTED)
    wanted = list(dict.fromkeys(_library_name(name) for name in only))
    known = {row.library: row for row in SUPPORTED}
    unknown = [name for name in wanted if name not in known]
    if unknown:
        raise ValueError(f"--only names libraries the table does not know: {unknown}; "
                         f"known: {', '.join(known)}")
    return [known[name] for name in wanted]


def _library_name(name: str) -> str:
    """A table library name for ``name`` (``scikit_learn``, ``tensorflow-cpu`` -> the row's)."""
    canonical = canonicalize_name(name.strip())
    for row in SUPPORTED:
        if canonical == row.library or canonical in row.distributions:
            return row.library
    return canonical


def _same_version(installed: str, locked: str) -> bool:
    """Whether ``installed`` satisfies the pin ``==locked`` (PEP 440: a pin without a local
    label, ``torch==2.13.0``, accepts the installed ``2.13.0+cpu``, as pip does)."""
    try:
        return Specifier(f"=={locked}").contains(Version(installed), prereleases=True)
    except (InvalidSpecifier, InvalidVersion):
        return installed == locked


# -- lock files ----------------------------------------------------------------------------------
_LOCK_LINE = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)\s*==\s*([^\s;#]+)\s*(?:#.*)?$")


def lock_text(versions: dict[str, tuple[str, str] | None] | None = None,
              system: dict[str, str] | None = None) -> str:
    """A lock file for the installed libraries of the table: pip constraints (``name==version``
    per line, by distribution name) headed by comments naming python and the platform.

    ``pip install -c alphazoo.lock -e '.[all]'`` reproduces it; python cannot be pinned by pip,
    so its version is a comment that ``check --lock`` still compares.
    """
    versions = collect_versions() if versions is None else versions
    pins = {found[0]: found[1] for library, found in versions.items()
            if library != "python" and found is not None}
    return _lock_file("alphazoo compat lock: exact versions in use", system, [], pins)


def closure_lock_text(closure: Closure | None = None,
                      system: dict[str, str] | None = None) -> str:
    """A lock of the whole environment alphazoo runs in: every installed distribution that
    alphazoo and its installed extras require, transitively (:func:`collect_closure`).

    Same format as :func:`lock_text`, so ``check --lock`` and ``pip install -c`` read it; a
    requirement that is not installed is named in a comment, since such a lock cannot
    reproduce the environment it describes.
    """
    closure = collect_closure() if closure is None else closure
    notes = [f"not installed, though required: {gap}" for gap in closure.missing]
    return _lock_file("alphazoo compat lock --all: the full closure in use", system, notes,
                      closure.pins)


def _lock_file(title: str, system: dict[str, str] | None, notes: list[str],
               pins: dict[str, str]) -> str:
    system = collect_system() if system is None else system
    stamp = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    lines = [
        f"# {title}; pip reads it as constraints (-c).",
        f"# written {stamp} on {system['platform']}",
        f"# python=={system['python']}",
        *(f"# {note}" for note in notes),
        *(f"{name}=={version}" for name, version in pins.items()),
    ]
    return "\n".join(lines) + "\n"


def read_lock(path: str | Path) -> dict[str, str]:
    """``{name: version}`` from a lock file (``name==version`` lines; ``# python==X`` too).

    Raises :class:`LockFileError` for a missing file or a line that is not an exact pin: a
    range in a lock is a mistake worth stopping for.
    """
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise LockFileError(f"cannot read lock file {str(path)!r}: {exc.strerror}") from exc
    pins: dict[str, str] = {}
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        python = re.match(r"^#\s*python\s*==\s*(\S+)", line)
        if python:
            pins["python"] = python.group(1)
            continue
        if not line or line.startswith("#"):
            continue
        match = _LOCK_LINE.match(line)
        if match is None:
            raise LockFileError(
                f"{path}:{number}: {raw.strip()!r} is not an exact pin (name==version)"
            )
        pins[canonicalize_name(match.group(1))] = match.group(2)
    return pins
