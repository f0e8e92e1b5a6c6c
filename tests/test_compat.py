"""The compat layer: the supported table, `alphazoo compat check/lock`, and its pytest plugin.

Out-of-range environments are real ones: an old skops is installed with pip into a folder put
first on PYTHONPATH, so package metadata reports it exactly as on a user's machine.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from _child import HANG_TIMEOUT
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.utils import canonicalize_name

from alphazoo.compat.environment import (
    LockFileError,
    check_environment,
    collect_versions,
    lock_text,
    read_lock,
)
from alphazoo.compat.installed import installed_version
from alphazoo.compat.table import SUPPORTED, support_for

ROOT = Path(__file__).resolve().parent.parent
#: An skops release below the table's minimum (0.12): small and pure Python.
OLD_SKOPS = "0.11.0"


def run(*args: str, env: dict[str, str] | None = None, cwd: Path | None = None,
        ) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *args], capture_output=True, text=True,
                          timeout=HANG_TIMEOUT, env=env, cwd=cwd)


def cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return run("-m", "alphazoo.cli", *args, env=env)


@pytest.fixture(scope="module")
def old_skops_env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """Environment variables under which skops 0.11 (out of range) is the installed skops."""
    target = tmp_path_factory.mktemp("old-skops")
    result = run("-m", "pip", "install", "--quiet", "--no-deps", "--disable-pip-version-check",
                 "--target", str(target), f"skops=={OLD_SKOPS}")
    assert result.returncode == 0, result.stderr
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(target), env.get("PYTHONPATH")]))
    return env


# -- the table -----------------------------------------------------------------------------------
def _pyproject() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())


def _requirements(project: dict, extra: str) -> list[Requirement]:
    raw = project["dependencies"] if extra == "core" else project["optional-dependencies"][extra]
    return [Requirement(text) for text in raw if not text.startswith("alphazoo")]


def test_table_agrees_with_pyproject_extras():
    project = _pyproject()["project"]
    for row in SUPPORTED:
        if row.library == "python":
            # requires-python carries only the floor (an upper bound there breaks resolvers);
            # the table's max is the newest Python tested.
            assert SpecifierSet(project["requires-python"]) == SpecifierSet(f">={row.min}")
            continue
        names = {row.library, *row.distributions}
        found = [r for r in _requirements(project, row.extra) if r.name in names]
        assert found, f"{row.library}: not in pyproject's {row.extra!r} extra"
        for requirement in found:
            assert requirement.specifier == row.specifier, (
                f"{row.library}: table says {row.supported}, pyproject's {row.extra!r} extra "
                f"says {requirement.specifier}"
            )


def test_every_ml_library_in_the_extras_is_in_the_table():
    project = _pyproject()["project"]
    for extra in ("sklearn", "xgboost", "torch", "keras", "tensorflow", "hmmlearn", "sb3",
                  "lightgbm", "catboost", "onnx", "safetensors"):
        for requirement in _requirements(project, extra):
            assert support_for(canonicalize_name(requirement.name)) is not None, (
                f"{requirement.name} (extra {extra!r}) is missing from compat/table.py"
            )


def test_table_ranges_are_ordered_and_hold_the_tested_version():
    for row in SUPPORTED:
        assert row.contains(row.tested), row
        assert not row.contains(row.max), row


# -- collectors and the check --------------------------------------------------------------------
def test_collectors_return_data_without_importing_libraries():
    code = ("import sys, json; from alphazoo.compat.environment import collect_versions; "
            "v = collect_versions(); heavy = [m for m in ('sklearn', 'torch', 'tensorflow', "
            "'xgboost', 'onnxruntime', 'keras') if m in sys.modules]; "
            "print(json.dumps({'versions': v, 'heavy': heavy}))")
    result = run("-c", code)
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout)
    assert out["heavy"] == []
    assert out["versions"]["python"][1] == ".".join(map(str, sys.version_info[:3]))
    assert out["versions"]["tensorflow"][0] in ("tensorflow", "tensorflow-cpu")


def test_statuses_of_a_described_environment():
    versions = {"numpy": ("numpy", "2.4.6"), "xgboost": ("xgboost", "1.7.6"), "torch": None,
                "hmmlearn": None}
    report = check_environment(only=["numpy", "xgboost", "torch", "hmmlearn"],
                               require=["hmmlearn"], versions=versions)
    status = {row.library: row.status for row in report.rows}
    assert status == {"numpy": "ok", "xgboost": "out of range", "torch": "not installed",
                      "hmmlearn": "missing (required)"}
    assert not report.ok
    assert check_environment(only=["numpy", "torch"], versions=versions).ok


def test_a_locked_library_that_is_not_installed_fails():
    versions = {"numpy": ("numpy", "2.4.6"), "torch": None, "hmmlearn": None}
    report = check_environment(only=["numpy", "torch", "hmmlearn"], versions=versions,
                               lock={"numpy": "2.4.6", "torch": "2.13.0+cpu"})
    status = {row.library: row.status for row in report.rows}
    assert status == {"numpy": "ok", "torch": "differs from lock",
                      "hmmlearn": "not installed"}
    assert not report.ok


@pytest.mark.parametrize("version,inside", [
    ("2.13.0+cpu", True), ("2.13.0.post1", True), ("2.6.0", True),
    ("2.14.0rc1", False),         # a pre-release of the excluded max is excluded too
    ("2.14.0.dev20260101", False), ("2.6.0rc1", False), ("2.5.1", False),
    ("not-a-version", False),
])
def test_range_edges(version, inside):
    assert support_for("torch").contains(version) is inside


def test_local_version_tags_are_in_range():
    assert support_for("torch").contains("2.13.0+cpu")
    assert not support_for("torch").contains("2.14.0+cpu")


def test_check_passes_in_this_environment():
    result = cli("compat", "check")
    assert result.returncode == 0, result.stdout + result.stderr
    for row in SUPPORTED:
        assert row.library in result.stdout
    assert "every installed library is in range" in result.stdout


def test_check_json_lists_every_library():
    result = cli("compat", "check", "--json")
    assert result.returncode == 0
    data = json.loads(result.stdout)
    assert data["ok"] is True
    assert [row["library"] for row in data["rows"]] == [row.library for row in SUPPORTED]
    assert {"library", "installed", "supported", "tested", "status"} <= set(data["rows"][0])


@pytest.mark.slow
def test_check_fails_on_an_out_of_range_library(old_skops_env):
    result = cli("compat", "check", "--json", env=old_skops_env)
    assert result.returncode == 1, result.stdout + result.stderr
    rows = {row["library"]: row for row in json.loads(result.stdout)["rows"]}
    assert rows["skops"]["installed"] == OLD_SKOPS
    assert rows["skops"]["status"] == "out of range"
    assert rows["scikit-learn"]["status"] == "ok"
    # --only leaves the out-of-range library out, and the check passes.
    assert cli("compat", "check", "--only", "numpy,scikit-learn",
               env=old_skops_env).returncode == 0
    table = cli("compat", "check", env=old_skops_env)
    assert "FAILED: skops" in table.stdout
    # ...and says what to run.
    assert "skops (out of range): pip install 'skops>=0.12,<0.17'" in table.stdout


@pytest.mark.parametrize("args", [["--only", "numpy,notalib"], ["--require", "notalib"],
                                  ["--lock", "no-such-file.lock"],
                                  # empty: a CI variable that expanded to nothing
                                  ["--only", ""], ["--only", ","]])
def test_usage_errors_exit_2(args):
    result = cli("compat", "check", *args)
    assert result.returncode == 2
    assert "error:" in result.stderr


@pytest.mark.slow
def test_lock_round_trip_and_differences(tmp_path):
    lock = tmp_path / "alphazoo.lock"
    assert cli("compat", "lock", "-o", str(lock)).returncode == 0
    pins = read_lock(lock)
    versions = collect_versions()
    assert pins["python"] == versions["python"][1]
    assert pins["numpy"] == versions["numpy"][1]
    # pip reads it: every non-comment line is a valid exact requirement.
    for line in lock.read_text().splitlines():
        if line and not line.startswith("#"):
            assert str(Requirement(line).specifier).startswith("==")
    assert cli("compat", "check", "--lock", str(lock)).returncode == 0

    lock.write_text(lock.read_text().replace(f"numpy=={pins['numpy']}", "numpy==1.26.4"))
    result = cli("compat", "check", "--lock", str(lock), "--json")
    assert result.returncode == 1
    numpy_row = next(r for r in json.loads(result.stdout)["rows"] if r["library"] == "numpy")
    assert numpy_row["status"] == "differs from lock"
    assert numpy_row["locked"] == "1.26.4"


def test_only_and_require_combine():
    versions = {"numpy": ("numpy", "2.4.6"), "torch": None}
    report = check_environment(only=["numpy"], require=["torch"], versions=versions)
    assert [(row.library, row.status) for row in report.rows] == [
        ("numpy", "ok"), ("torch", "missing (required)")]
    result = cli("compat", "check", "--only", "numpy", "--require", "scikit_learn", "--json")
    assert result.returncode == 0, result.stderr
    assert [row["library"] for row in json.loads(result.stdout)["rows"]] == [
        "numpy", "scikit-learn"]


def test_lock_entries_outside_the_table_are_checked_too(tmp_path):
    # A full-closure lock pins scipy; a scipy that differs from it fails like a table row.
    lock = tmp_path / "freeze.lock"
    lock.write_text(lock_text() + "scipy==1.0.0\n")
    result = cli("compat", "check", "--lock", str(lock), "--json")
    assert result.returncode == 1, result.stdout + result.stderr
    data = json.loads(result.stdout)
    assert [(row["library"], row["locked"], row["status"]) for row in data["other_pins"]] == [
        ("scipy", "1.0.0", "differs from lock")]
    assert data["lock"] == str(lock)
    installed = installed_version("scipy")
    lock.write_text(lock_text() + f"scipy=={installed}\n")
    result = cli("compat", "check", "--lock", str(lock), "--json")
    assert result.returncode == 0, result.stdout + result.stderr
    assert json.loads(result.stdout)["other_pins"][0]["status"] == "ok"


def test_lock_to_stdout_matches_the_collector():
    result = cli("compat", "lock")
    assert result.returncode == 0
    body = [line for line in result.stdout.splitlines() if not line.startswith("#")]
    expected = [line for line in lock_text().splitlines() if not line.startswith("#")]
    assert body == expected


def test_a_lock_line_that_is_not_an_exact_pin_is_refused(tmp_path):
    lock = tmp_path / "ranges.lock"
    lock.write_text("numpy>=1.26\n")
    with pytest.raises(LockFileError, match="not an exact pin"):
        read_lock(lock)
    assert cli("compat", "check", "--lock", str(lock)).returncode == 2


# -- the pytest plugin ---------------------------------------------------------------------------
PLUGIN_TESTS = '''
import pytest


def test_store_is_empty_and_writable(alphazoo_store):
    assert len(alphazoo_store) == 0
    alphazoo_store.save("a/b.txt", "x")
    assert alphazoo_store.read("a/b.txt") == "x"


@pytest.mark.alphazoo_plugins("sklearn")
def test_zoo_holds_only_the_named_plugins(alphazoo_zoo, alphazoo_store):
    assert alphazoo_zoo.store is alphazoo_store
    names = {row.name for row in alphazoo_zoo.plugins()}
    assert names == {"alphazoo.host", "alphazoo.adapters.sklearn"}
    assert {spec.adapter for spec in alphazoo_zoo.formats()} == {"sklearn"}


def test_zoo_without_marker_discovers_installed_plugins(alphazoo_zoo):
    assert "sklearn" in {row.name for row in alphazoo_zoo.plugins()}
'''


def _pytest(tmp_path: Path, *args: str, env: dict[str, str] | None = None,
            ) -> subprocess.CompletedProcess:
    (tmp_path / "test_user.py").write_text(PLUGIN_TESTS)
    return run("-m", "pytest", "-p", "no:cacheprovider", "test_user.py", *args, env=env,
               cwd=tmp_path)


@pytest.mark.slow
def test_pytest_plugin_fixtures_and_compat_gate_pass_here(tmp_path):
    result = _pytest(tmp_path, "--alphazoo-compat", "-v")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "3 passed" in result.stdout
    assert "alphazoo compat:" in result.stdout  # the report header


@pytest.mark.slow
def test_pytest_compat_gate_fails_the_session_at_start(tmp_path, old_skops_env):
    result = _pytest(tmp_path, "--alphazoo-compat", env=old_skops_env)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "alphazoo compat check failed" in result.stdout
    assert "skops" in result.stdout and "out of range" in result.stdout
    assert "passed" not in result.stdout  # no test ran
    # Without the option the same environment runs the tests.
    assert _pytest(tmp_path, env=old_skops_env).returncode == 0


@pytest.mark.slow
def test_pytest_lock_option_alone_turns_the_gate_on(tmp_path):
    lock = tmp_path / "drifted.lock"
    lock.write_text(lock_text().replace(f"numpy=={collect_versions()['numpy'][1]}",
                                        "numpy==1.26.4"))
    result = _pytest(tmp_path, "--alphazoo-lock", str(lock))
    assert result.returncode == 1, result.stdout + result.stderr
    assert "differs from lock" in result.stdout
    assert "pip install 'numpy==1.26.4'" in result.stdout
    assert "passed" not in result.stdout  # no test ran


@pytest.mark.slow
def test_pytest_marker_takes_module_objects(tmp_path):
    (tmp_path / "test_modules.py").write_text(
        "import pytest\nimport alphazoo.adapters.xgboost as xgb_adapter\n\n"
        "@pytest.mark.alphazoo_plugins(xgb_adapter)\n"
        "def test_x(alphazoo_zoo):\n"
        "    assert {s.adapter for s in alphazoo_zoo.formats()} == {'xgboost'}\n")
    result = run("-m", "pytest", "-p", "no:cacheprovider", "test_modules.py", cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.slow
def test_pytest_marker_with_an_unknown_plugin_name_is_a_usage_error(tmp_path):
    (tmp_path / "test_bad.py").write_text(
        "import pytest\n\n@pytest.mark.alphazoo_plugins('nope')\n"
        "def test_x(alphazoo_zoo):\n    pass\n")
    result = run("-m", "pytest", "-p", "no:cacheprovider", "test_bad.py", cwd=tmp_path)
    assert result.returncode != 0
    assert "no installed alphazoo plugin of that name" in result.stdout
