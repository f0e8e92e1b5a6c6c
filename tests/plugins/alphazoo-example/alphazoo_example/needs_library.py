"""A plugin that imports fine but adapts a library that is not installed, as alphazoo's own
hmmlearn adapter does on a machine without hmmlearn: discovery must not import the library,
and ``alphazoo plugins`` must not call the plugin "loaded"."""

import alphazoo


@alphazoo.hookimpl
def alphazoo_requirements():
    # The first requirement names the library the plugin adapts (alphazoo's convention).
    return ["alphazoo-example-absent-library>=1.0"]
