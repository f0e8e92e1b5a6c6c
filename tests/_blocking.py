"""Source for child processes in which some libraries cannot be imported.

The ONNX tests prove that a bundle predicts with only numpy and onnxruntime: the child runs
this prelude first, so importing a training library raises ImportError, as on a machine that
never installed it, and the child stops if the block does not hold.
"""

from __future__ import annotations

__all__ = ["blocking_prelude"]


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
