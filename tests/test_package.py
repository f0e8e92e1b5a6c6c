"""The top-level package: every public name resolves, and importing it loads nothing else."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

import alphazoo

from _child import HANG_TIMEOUT


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
