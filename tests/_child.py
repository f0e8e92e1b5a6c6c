"""Child Python processes for the adapter tests: a fresh interpreter per load test.

``run_python`` runs a script in a new interpreter (loading in a fresh process is what proves a
bundle carries everything it needs). ``blocking_prelude`` is source for children in which some
libraries cannot be imported: the ONNX tests prove that a bundle predicts with only numpy and
onnxruntime, so the child makes importing a training library raise ImportError, as on a
machine that never installed it, and stops if the block does not hold.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

__all__ = ["HANG_TIMEOUT", "blocking_prelude", "run_python"]

#: Seconds before a child process counts as hung. A limit against hangs, not a performance
#: claim: on a busy 2-core machine a child that trains and exports can take minutes.
HANG_TIMEOUT = 1800


def run_python(code: str, *args: str, cwd: Path, env: dict[str, str] | None = None,
               unset: tuple[str, ...] = (), timeout: float = HANG_TIMEOUT,
               ) -> subprocess.CompletedProcess:
    """Run ``code`` with ``args`` in a fresh interpreter; fail the test if it fails.

    A developer's ``$ALPHAZOO_SIGNING_KEY`` (and the variables in ``unset``) are removed, so
    the child sees what the test intends; ``env`` adds variables.
    """
    dropped = {"ALPHAZOO_SIGNING_KEY", *unset}
    child_env = {k: v for k, v in os.environ.items() if k not in dropped} | (env or {})
    result = subprocess.run([sys.executable, "-c", code, *args], cwd=cwd, env=child_env,
                            capture_output=True, text=True, timeout=timeout, check=False)
    assert result.returncode == 0, f"child failed:\n{result.stdout}\n{result.stderr[-6000:]}"
    return result


def blocking_prelude(*modules: str) -> str:
    """Python source that blocks importing ``modules`` (and their submodules) from here on."""
    return f'''
import importlib.abc, sys

_BLOCKED = {sorted(modules)!r}


class _Blocker(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] in _BLOCKED:
            raise ImportError(f"{{name}} is blocked for this test")
        return None


sys.meta_path.insert(0, _Blocker())
for _name in _BLOCKED:
    try:
        __import__(_name)
    except ImportError:
        pass
    else:
        raise SystemExit(f"{{_name}} could be imported")
'''
