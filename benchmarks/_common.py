"""Helpers shared by the benchmark scripts (run as ``python benchmarks/<script>.py``)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any, TextIO

__all__ = ["git_revision", "write_json"]


def git_revision() -> str | None:
    """The repository's HEAD (short), marked when the working tree has changes."""
    root = Path(__file__).resolve().parent.parent
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=root,
                              capture_output=True, text=True, timeout=10)
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"],
                               cwd=root, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    if head.returncode != 0:
        return None
    return head.stdout.strip() + (" (uncommitted changes)" if dirty.stdout.strip() else "")


def write_json(result: dict[str, Any], destination: str, out: TextIO) -> None:
    """``--json``: to standard output for ``-``, else into the file ``destination``."""
    text = json.dumps(result, indent=2)
    if destination == "-":
        print(text)
    else:
        Path(destination).write_text(text + "\n")
        print(f"JSON written to {destination}", file=out)
