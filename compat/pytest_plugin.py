"""alphazoo's pytest plugin (entry point ``pytest11``): a compat gate and two fixtures.

``pytest --alphazoo-compat`` runs the ``alphazoo compat check`` before any test and ends the
session with its table when the environment is outside the supported table (exit code 1, as
the CLI's check, so a CI job fails the same way whichever it runs). ``--alphazoo-lock FILE``
also compares with a lock file and ``--alphazoo-require LIB,...`` fails on missing libraries;
either one turns the check on by itself.

Fixtures:

``alphazoo_store``
    An empty :class:`~alphazoo.ObjectStore` in the test's temporary folder.
``alphazoo_zoo``
    A :class:`~alphazoo.Zoo` over ``alphazoo_store``. With the marker
    ``@pytest.mark.alphazoo_plugins(*plugins)`` it holds only those plugins (modules, objects,
    or names of installed ``alphazoo`` entry points such as ``"sklearn"``) and nothing is
    discovered, so a plugin author tests their plugin alone; without it, every installed
    plugin is loaded, as in production.

The module is imported by every pytest session in an environment where alphazoo is installed,
so it imports nothing heavy: the ``alphazoo`` package loads its parts on first use, and the
check and the fixtures import theirs only when they run.
"""

from __future__ import annotations

from importlib import metadata
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from alphazoo import ObjectStore, Zoo

__all__ = ["alphazoo_store", "alphazoo_zoo"]

_MARKER = "alphazoo_plugins"
_REPORT = pytest.StashKey[Any]()


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("alphazoo", "alphazoo environment checks")
    group.addoption("--alphazoo-compat", action="store_true", default=False,
                    help="fail the session at start when installed ML libraries are outside "
                    "alphazoo's supported-version table (see `alphazoo compat check`)")
    group.addoption("--alphazoo-lock", metavar="FILE", default=None,
                    help="also require the versions of this lock file (implies "
                    "--alphazoo-compat)")
    group.addoption("--alphazoo-require", metavar="LIB,...", default=None,
                    help="fail when one of these is not installed (implies --alphazoo-compat)")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        f"{_MARKER}(*plugins): the alphazoo_zoo fixture holds only these plugins (modules, "
        "objects or installed entry-point names)",
    )


def pytest_sessionstart(session: pytest.Session) -> None:
    config = session.config
    lock_path = config.getoption("--alphazoo-lock")
    require = config.getoption("--alphazoo-require")
    # A lock or a requirement given alone asks for the check; ignoring it would pass silently.
    if not (config.getoption("--alphazoo-compat") or lock_path or require):
        return
    from .cli import format_report
    from .environment import LockFileError, check_environment, read_lock

    try:
        report = check_environment(
            lock=read_lock(lock_path) if lock_path else None, lock_name=lock_path,
            require=[n.strip() for n in require.split(",") if n.strip()] if require else (),
        )
    except (LockFileError, ValueError) as exc:
        raise pytest.UsageError(f"--alphazoo-compat: {exc}") from exc
    config.stash[_REPORT] = report
    if not report.ok:
        pytest.exit("alphazoo compat check failed (before any test ran)\n"
                    + format_report(report), returncode=pytest.ExitCode.TESTS_FAILED)


def pytest_report_header(config: pytest.Config) -> str | None:
    report = config.stash.get(_REPORT, None)
    if report is None:
        return None
    checked = [row for row in report.rows if row.installed]
    lock = f", matching {report.lock}" if report.lock else ""
    return f"alphazoo compat: {len(checked)} installed libraries in range{lock}"


@pytest.fixture
def alphazoo_store(tmp_path: Any) -> ObjectStore:
    """An empty alphazoo ObjectStore in the test's temporary folder."""
    from alphazoo import ObjectStore

    return ObjectStore(tmp_path / "alphazoo-store")


@pytest.fixture
def alphazoo_zoo(request: pytest.FixtureRequest, alphazoo_store: ObjectStore) -> Zoo:
    """A Zoo over ``alphazoo_store``: only the plugins of ``@pytest.mark.alphazoo_plugins``
    when the test has that marker, every installed plugin otherwise."""
    from alphazoo import Zoo

    marker = request.node.get_closest_marker(_MARKER)
    if marker is None:
        return Zoo(alphazoo_store)
    return Zoo(alphazoo_store, plugins=[_plugin(item) for item in marker.args], discover=False)


def _plugin(item: Any) -> Any:
    if not isinstance(item, str):
        return item
    points = {point.name: point for point in metadata.entry_points(group="alphazoo")}
    if item not in points:
        raise pytest.UsageError(
            f"@pytest.mark.{_MARKER}({item!r}): no installed alphazoo plugin of that name; "
            f"installed: {', '.join(sorted(points)) or 'none'}"
        )
    return points[item].load()
