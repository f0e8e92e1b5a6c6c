"""The README is the front door: its example runs and its commands are the ones CI uses."""

from __future__ import annotations

import ast
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from _child import HANG_TIMEOUT

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()


def _blocks(language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", README, flags=re.S)


def _run_example(marker: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """Run the README's python block containing ``marker`` in a fresh interpreter in ``cwd``."""
    example = next(block for block in _blocks("python") if marker in block)
    result = subprocess.run([sys.executable, "-c", example], cwd=cwd, capture_output=True,
                            text=True, timeout=HANG_TIMEOUT,
                            env={**os.environ, "PYTHONWARNINGS": "ignore"})
    assert result.returncode == 0, result.stderr
    return result


@pytest.mark.slow
def test_python_api_example_runs(tmp_path: Path) -> None:
    result = _run_example("from alphazoo import Zoo", tmp_path)
    assert "aapl/config" in result.stdout and "'rows': " in result.stdout
    assert (tmp_path / "storage" / "aapl" / "rf-onnx").is_file()


@pytest.mark.slow
def test_training_example_runs(tmp_path: Path) -> None:
    result = _run_example("from alphazoo.training", tmp_path)
    # The version the user reads is the store's newest key (the first, unsaved training is
    # not a version of the series), not the served-model counter that also counts it.
    assert "8 trainings; in service: aapl/rf-weekly/v000008" in result.stdout
    assert "monthly folds" in result.stdout
    assert (tmp_path / "storage" / "aapl" / "rf-weekly" / "latest.json").is_file()


@pytest.mark.slow
def test_follow_example_runs(tmp_path: Path) -> None:
    result = _run_example("served.follow(", tmp_path)
    lines = result.stdout.splitlines()
    assert lines[0].startswith("serving demo/logit/v000001 [")
    assert lines[1] == "serving demo/logit/v000002"
    assert lines[2] == "serving demo/logit/v000001 after 3 swaps, 0 failed"


def test_ci_runs_the_readme_test_command_in_a_new_venv() -> None:
    test_command = next(line for block in _blocks("bash") for line in block.splitlines()
                        if "pytest" in line)
    ci = (ROOT / ".ci" / "run").read_text()
    # .ci/run times the install and the tests apart: the two halves, joined, are the command.
    halves = dict(re.findall(r"^(INSTALL|TESTS)='(.*)'$", ci, flags=re.MULTILINE))
    assert f"{halves['INSTALL']} && {halves['TESTS']}" == test_command
    assert 'eval "$INSTALL"' in ci and 'eval "$TESTS"' in ci
    # ...inside a virtual environment it creates anew, not on packages left on the machine.
    assert re.search(r'rm -rf "\$VENV"\npython3? -m venv "\$VENV"', ci)
    assert "requirements/test.txt" in test_command


def test_demo_command_is_documented() -> None:
    demo = next(line for block in _blocks("bash") for line in block.splitlines()
                if "alphazoo demo" in line)
    # torch pinned first (an unpinned one pulls CUDA), then the demo extra through its lock,
    # then the demo.
    assert demo == ('python -m pip install torch==2.13.0 && python -m pip install '
                    '-c requirements/demo.txt -e ".[demo]" && alphazoo demo')
    assert "\ndemo = [" in (ROOT / "pyproject.toml").read_text()


@pytest.mark.slow
def test_zoo_example_runs(tmp_path: Path) -> None:
    result = _run_example("alphazoo.contrib", tmp_path)
    assert "[ONNX, predict only]" in result.stdout and "'rank_ic'" in result.stdout
    weights = ast.literal_eval(result.stdout.strip().splitlines()[-1])  # the optimizer's dict
    assert abs(sum(weights.values()) - 1) < 1e-6 and min(weights.values()) >= 0
    assert (tmp_path / "storage" / "zoo" / "gbdt").is_file()


def test_plugin_example_works_as_a_plugin(tmp_path: Path,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    import types

    import alphazoo

    source = next(block for block in _blocks("python") if "my_package/alphazoo_plugin.py" in block)
    module = types.ModuleType("readme_plugin")
    monkeypatch.setitem(sys.modules, "readme_plugin", module)  # as an imported plugin is
    exec(compile(source, "README.md", "exec"), module.__dict__)
    zoo = alphazoo.Zoo(alphazoo.ObjectStore(tmp_path), plugins=[module], discover=False)
    model = zoo.train(zoo.build("mean_forecast"), [[0], [0]], [1.0, 3.0])
    assert zoo.owner_of(model) == "readme_plugin"  # from the class it declares
    assert zoo.save(model, "mean/x")["format"] == "mean-json"
    assert zoo.load("mean/x").predict([[0]]) == [2.0]
    with pytest.raises(alphazoo.UnsupportedFormatError, match="mean-json"):
        zoo.save(model, "mean/y", format="onnx")


@pytest.mark.slow
def test_plugin_conformance_example_passes_on_the_readme_plugin(tmp_path: Path) -> None:
    plugin = next(block for block in _blocks("python") if "my_package/alphazoo_plugin.py" in block)
    example = next(block for block in _blocks("python") if "check_adapter(" in block)
    (tmp_path / "my_package").mkdir()
    (tmp_path / "my_package" / "__init__.py").write_text("")
    (tmp_path / "my_package" / "alphazoo_plugin.py").write_text(plugin)
    (tmp_path / "test_mean_conformance.py").write_text(example)
    env = {**os.environ, "PYTHONPATH": str(tmp_path)}
    env.pop("ALPHAZOO_SIGNING_KEY", None)
    result = subprocess.run([sys.executable, "-m", "pytest", "-q", "-s", "-p", "no:cacheprovider",
                             "test_mean_conformance.py"], cwd=tmp_path, capture_output=True,
                            text=True, timeout=HANG_TIMEOUT, env=env)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "my_package.alphazoo_plugin: 6 checks passed in" in result.stdout
    assert "formats mean-json" in result.stdout


def test_every_hook_is_documented_in_the_plugin_section() -> None:
    from alphazoo import hookspecs

    section = README.split("## Writing a plugin", 1)[1].split("\n## ", 1)[0]
    hooks = [name for name, value in vars(hookspecs).items()
             if callable(value) and hasattr(value, f"{hookspecs.PROJECT}_spec")]
    assert "alphazoo_model_types" in hooks and len(hooks) >= 9
    undocumented = [name for name in hooks if f"`{name}" not in section]
    assert not undocumented, f"hooks missing from README's 'Writing a plugin': {undocumented}"
