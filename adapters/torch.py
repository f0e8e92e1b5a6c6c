"""torch adapter (work in progress: formats and models land with issue 3)."""

from __future__ import annotations

from alphazoo.hookspecs import hookimpl

ADAPTER = "torch"


@hookimpl
def alphazoo_requirements() -> list[str]:
    # The first requirement names the adapter's own library: `alphazoo plugins` shows its
    # installed version.
    return ["torch>=2.4"]
