"""The source text of :mod:`alphazoo.reader` as a standalone module (``alphazoo export-reader``)."""

from __future__ import annotations

import importlib.util
from datetime import datetime, timezone
from pathlib import Path

__all__ = ["reader_source"]


def reader_source() -> str:
    """:mod:`alphazoo.reader`'s source, headed by where and when it was exported.

    Read from the installed file, not imported: the module is written to be copied as is
    (it imports nothing from alphazoo unless alphazoo happens to be installed).
    """
    from alphazoo.compat.installed import installed_version

    spec = importlib.util.find_spec("alphazoo.reader")
    if spec is None or spec.origin is None:  # pragma: no cover - a broken installation
        raise FileNotFoundError("alphazoo.reader is not installed with this alphazoo")
    source = Path(spec.origin).read_text(encoding="utf-8")
    stamp = datetime.now(timezone.utc).strftime("%Y-%m-%d")
    header = (f"# Exported by alphazoo {installed_version('alphazoo') or 'unknown'} on {stamp} "
              "(`alphazoo export-reader`); Apache-2.0.\n"
              "# Standalone: standard library + numpy, and the model's library when loading.\n")
    return header + source
