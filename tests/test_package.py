"""The top-level package: every public name resolves, and importing it loads nothing else."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from _child import HANG_TIMEOUT

import alphazoo


def test_every_public_name_resolves_to_what_its_module_defines():
    import importlib

    for name in alphazoo.__all__:
        value = getattr(alphazoo, name)
        if name == "__version__":
            assert isinstance(value, str) and value
            continue
        module = importlib.import_module(f"alphazoo.{alphazoo._EXPORTS[name]}")
        assert value is getattr(module, name), name
    assert set(alphazoo._EXPORTS) | {"__version__"} == set(alphazoo.__all__)


@pytest.mark.slow
def test_import_alphazoo_loads_no_submodule_until_a_name_is_used():
    code = (
        "import json, sys, alphazoo\n"
        "before = sorted(m for m in sys.modules if m.startswith('alphazoo.'))\n"
        "alphazoo.errors, alphazoo.Zoo\n"
        "after = sorted(m for m in sys.modules if m.startswith('alphazoo.'))\n"
        "print(json.dumps([before, after]))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            timeout=HANG_TIMEOUT)
    assert result.returncode == 0, result.stderr
    before, after = json.loads(result.stdout)
    assert before == []
    assert "alphazoo.host" in after and "alphazoo.errors" in after


def test_unknown_names_raise_attribute_error():
    import pytest

    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        alphazoo.nope  # noqa: B018


def test_public_names_dir_and_the_type_checking_imports_agree():
    import ast
    from pathlib import Path

    names = set(alphazoo.__all__) - {"__version__"}
    assert set(alphazoo._EXPORTS) == names and len(alphazoo.__all__) == len(set(alphazoo.__all__))
    assert set(alphazoo.__all__) <= set(dir(alphazoo))
    tree = ast.parse(Path(alphazoo.__file__).read_text())
    block = next(node for node in tree.body
                 if isinstance(node, ast.If) and getattr(node.test, "id", "") == "TYPE_CHECKING")
    imported = {alias.name: node.module for node in ast.walk(block)
                if isinstance(node, ast.ImportFrom) for alias in node.names}
    assert imported == {name: module for name, module in alphazoo._EXPORTS.items()}


def test_submodules_are_attributes_before_anything_imports_them():
    code = ("import sys, alphazoo\n"
            "assert 'alphazoo.ownership' not in sys.modules\n"
            "print(alphazoo.ownership.__name__, alphazoo.model_facts.__name__)\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            timeout=HANG_TIMEOUT)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["alphazoo.ownership", "alphazoo.model_facts"]


def test_every_warning_category_derives_from_alphazoo_warning():
    import ast
    import importlib
    from pathlib import Path

    import alphazoo.adapters
    import alphazoo.compat
    import alphazoo.contrib

    roots = {"alphazoo": Path(alphazoo.__file__).parent,
             "alphazoo.adapters": Path(alphazoo.adapters.__file__).parent,
             "alphazoo.compat": Path(alphazoo.compat.__file__).parent,
             "alphazoo.contrib": Path(alphazoo.contrib.__file__).parent}
    found = []
    for package, root in roots.items():
        for path in root.rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text())):
                bases = [ast.unparse(base) for base in getattr(node, "bases", [])]
                if isinstance(node, ast.ClassDef) and any("Warning" in b for b in bases):
                    parts = path.relative_to(root).with_suffix("").parts
                    module = ".".join((package, *parts)).removesuffix(".__init__")
                    found.append((module, node.name))
    assert ("alphazoo.discovery", "PluginLoadWarning") in found
    for module, name in found:
        cls = getattr(importlib.import_module(module), name)
        assert issubclass(cls, alphazoo.AlphazooWarning), f"{module}.{name}"
    assert issubclass(alphazoo.AlphazooWarning, UserWarning)


def test_lock_file_error_is_an_alphazoo_error():
    from alphazoo.compat.environment import LockFileError

    assert issubclass(LockFileError, alphazoo.AlphazooError)
    assert issubclass(LockFileError, ValueError)  # what callers caught before


def test_import_and_plugin_discovery_import_no_ml_framework():
    # Every built-in adapter is discovered and asked for its formats and models; none may
    # import its library for that (a model of it cannot exist before the library is imported).
    heavy = ("torch", "tensorflow", "keras", "sklearn", "xgboost", "hmmlearn", "lightgbm",
             "catboost", "onnxruntime", "stable_baselines3", "gymnasium", "safetensors")
    code = ("import json, sys, alphazoo\n"
            "zoo = alphazoo.Zoo('memory://package-discovery')\n"
            "adapters = sorted({spec.adapter for spec in zoo.formats()})\n"
            "models = zoo.models()\n"
            f"print(json.dumps([adapters, [m for m in {heavy!r} if m in sys.modules]]))\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            timeout=HANG_TIMEOUT)
    assert result.returncode == 0, result.stderr
    adapters, imported = json.loads(result.stdout)
    assert {"sb3", "torch", "lightgbm", "catboost"} <= set(adapters)
    assert imported == []
