"""Fresh interpreters for the conformance kit: load bundles where nothing was imported before.

A load in the process that saved the model proves little: the model's classes, the library
and whatever the save imported are all there already. :func:`run_child` starts a new Python
(the same executable, with the caller's import path) that registers the plugins from their
import paths, optionally makes some libraries unimportable first, loads bundles from a folder
store and writes what it saw (predictions as ``.npy`` files, the rest as JSON) for the parent
to judge. The child decides nothing: every verdict is the parent's, so its message can name
the check.
"""

from __future__ import annotations

import importlib
import inspect
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

__all__ = ["CHILD_TIMEOUT", "ChildFailed", "child_environment", "resolve_plugin", "run_child"]

#: Seconds before a child interpreter counts as hung: a limit against hangs, not a performance
#: claim (importing TensorFlow on a busy 2-core machine takes tens of seconds).
CHILD_TIMEOUT = 900.0

def resolve_plugin(path: str) -> Any:
    """The plugin object at ``path``: a module (``"pkg.plugin"``) or an object in one
    (``"pkg.plugin:adapter"``, the entry-point spelling, or ``"pkg.plugin.adapter"``).

    Standard library only: the fresh interpreters run its source before alphazoo is imported.
    """
    module, _, attribute = path.partition(":")
    if not attribute:
        try:
            return importlib.import_module(module)
        except ModuleNotFoundError as exc:
            if exc.name != module or "." not in module:
                raise
            module, attribute = module.rsplit(".", 1)
    obj: Any = importlib.import_module(module)
    for part in filter(None, attribute.split(".")):
        obj = getattr(obj, part)
    return obj


# The child's program. It imports only the standard library until it has blocked the
# libraries it must do without, then alphazoo, numpy and the plugins under test.
_CHILD_SOURCE = r'''
import importlib, importlib.abc, json, sys, traceback

job = json.loads(open(sys.argv[1], encoding="utf-8").read())
result = {"loads": {}}
blocked = set(job["blocked"])


class Blocker(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] in blocked:
            raise ImportError(f"{name} is blocked by alphazoo.testing (as if not installed)")
        return None


if blocked:
    sys.meta_path.insert(0, Blocker())
    # A .pth file or sitecustomize may have imported one already: then the block cannot hold.
    early = sorted(name for name in blocked if name in sys.modules)
    if early:
        raise SystemExit(f"cannot block {', '.join(early)}: imported at interpreter start-up")


# <resolve_plugin>


def raised(what, exc):
    # The error first, on one line; then the last frames, for the plugin's author.
    frames = "".join(traceback.format_tb(exc.__traceback__, limit=-3))
    return f"{what} raised {type(exc).__name__}: {exc}\nlast frames:\n{frames}"


def write():
    with open(job["out"], "w", encoding="utf-8") as handle:
        json.dump(result, handle)


try:
    if job["probe_imports"]:
        # Importing the plugin and reading its tables is what discovery and `alphazoo
        # plugins` do: both must leave the ML frameworks unimported.
        resolve_plugin(job["plugins"][0])
        from alphazoo import Zoo

        probe = Zoo("memory://alphazoo-testing-probe", plugins=[resolve_plugin(job["plugins"][0])],
                    discover=False)
        probe.formats()
        probe.models()
        result["imported"] = sorted(
            name for name in job["heavy"]
            if name in sys.modules or any(m.startswith(name + ".") for m in sys.modules))
    import numpy as np
    from alphazoo import ObjectStore, UntrustedModelError, Zoo

    zoo = Zoo(ObjectStore(job["store"]), plugins=[resolve_plugin(p) for p in job["plugins"]],
              discover=False)
    X = np.load(job["X"], allow_pickle=False)
    recording = []
    # Unpickling a class or function goes through pickle.find_class, which Python audits: a
    # format that unpickles while declaring itself safe is seen here, whatever its code says.
    # Libraries imported during a load may pickle for their own ends (dask tokenizes functions
    # by pickling them): an event under an import statement is not the bundle's.
    def audit(event, args):
        if not recording or event != "pickle.find_class":
            return
        frame = sys._getframe(1)
        while frame is not None:
            if frame.f_code.co_filename.startswith("<frozen importlib"):
                return
            frame = frame.f_back
        recording[-1].append(".".join(map(str, args)))

    sys.addaudithook(audit)
    for item in job["loads"]:
        seen = result["loads"][item["format"]] = {}
        if item["probe_untrusted"]:
            try:
                zoo.load(item["key"])
                seen["untrusted"] = "loaded"
            except UntrustedModelError:
                seen["untrusted"] = "refused"
            except Exception as exc:
                seen["untrusted"] = f"{type(exc).__name__}: {exc}"
        found = []
        recording.append(found)
        try:
            model = zoo.load(item["key"], trusted=item["trusted"])
        except Exception as exc:
            seen["error"] = raised("loading", exc)
            continue
        finally:
            recording.pop()
        seen["unpickled"] = found
        try:
            np.save(item["predictions"], np.asarray(zoo.predict(model, X)), allow_pickle=False)
        except Exception as exc:
            seen["error"] = raised("predicting", exc)
except BaseException:
    result["crash"] = traceback.format_exc(limit=-5)
write()
'''
# One definition: the child runs the parent's own resolve_plugin, its annotations left
# unevaluated (they name typing's Any, which the child does not import).
_CHILD_SOURCE = "from __future__ import annotations\n" + _CHILD_SOURCE.replace(
    "# <resolve_plugin>\n", inspect.getsource(resolve_plugin))


class ChildFailed(RuntimeError):
    """The child interpreter died before reporting (the parent turns this into a check
    failure naming the check that needed the child)."""


def child_environment() -> dict[str, str]:
    """The environment of a child: this process's, with its import path and without a
    signing key (the child must see bundles as a stranger would, so an unsafe format is
    refused unless trusted)."""
    dropped = {"ALPHAZOO_SIGNING_KEY", "ALPHAZOO_REQUIRE_SIGNATURE", "PYTHONSTARTUP"}
    env = {name: value for name, value in os.environ.items() if name not in dropped}
    # What the caller can import (a test folder pytest put on sys.path, a plugin beside a
    # notebook), the child can too. Installed folders are left to the child's own site setup:
    # listing them in PYTHONPATH would stop it from reading their .pth files.
    prefixes = {sys.prefix, sys.base_prefix, sys.exec_prefix}
    extra = []
    for entry in sys.path:
        path = os.path.abspath(entry or os.getcwd())
        if (os.path.isdir(path) and not any(path.startswith(p) for p in prefixes)
                and "site-packages" not in path and "dist-packages" not in path):
            extra.append(path)
    existing = env.get("PYTHONPATH")
    env["PYTHONPATH"] = os.pathsep.join(dict.fromkeys(extra + ([existing] if existing else [])))
    return env


def run_child(job: dict[str, Any], folder: Path, timeout: float = CHILD_TIMEOUT
              ) -> dict[str, Any]:
    """Run the child program on ``job`` in ``folder``; returns what it reported.

    ``job`` holds ``plugins`` (import paths, the plugin under test first), ``blocked``
    (top-level module names to make unimportable), ``probe_imports`` and ``heavy`` (report
    which of ``heavy`` importing the plugin pulled in), ``store`` (a folder store), ``X`` (a
    ``.npy`` file) and ``loads`` (``key``, ``format``, ``trusted``, ``probe_untrusted``,
    ``predictions``: where to write them). Raises :class:`ChildFailed` when the child dies
    without reporting or runs past ``timeout`` seconds.
    """
    name = f"child-{len(list(folder.glob('child-*.job.json')))}"
    job_file, out_file = folder / f"{name}.job.json", folder / f"{name}.out.json"
    job_file.write_text(json.dumps({**job, "out": str(out_file)}), encoding="utf-8")
    try:
        completed = subprocess.run([sys.executable, "-c", _CHILD_SOURCE, str(job_file)],
                                   cwd=folder, env=child_environment(), capture_output=True,
                                   text=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired as exc:
        raise ChildFailed(f"the child interpreter ran past {timeout:.0f} s "
                          "(raise timeout= if the library is slow to import)") from exc
    if not out_file.exists():
        raise ChildFailed(f"the child interpreter exited with code {completed.returncode} "
                          f"before reporting: {completed.stderr[-3000:]}")
    report: dict[str, Any] = json.loads(out_file.read_text(encoding="utf-8"))
    return report
