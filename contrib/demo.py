"""``alphazoo demo``: the zoo end to end on the data that ships with the package.

Five symbols' daily bars (AAPL, COKE, GOOGL, TSLA, YHOO, 2015-2017). Three zoo models --
scikit-learn ``random_forest``, LightGBM ``gbdt`` and torch ``alstm`` -- are retrained every
Monday of 2017 on the year before, each version is saved to the store as ONNX
(``demo/<model>/v000001`` ...) and reloaded to score the week, and a top-2-of-5 portfolio with
dropout trades on the scores net of costs (:func:`~alphazoo.contrib.comparison.compare_models`).
:func:`run_demo` returns the figures and writes a PNG of the equity curves; the CLI prints the
table. Needs ``alphazoo[demo]``.
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from alphazoo.host import Zoo
from alphazoo.store import ObjectStore

from .comparison import Comparison, Progress, compare_models, model_factories

__all__ = ["DEMO_MODELS", "DemoResult", "check_chart_path", "draw_equity", "run_demo"]

#: The models ``alphazoo demo`` runs, in table order.
DEMO_MODELS = ("random_forest", "gbdt", "alstm")


@dataclass
class DemoResult:
    """The comparison, where the chart went and where the versions are.

    ``chart_error`` says why no chart was drawn when drawing failed after the run (the
    figures are kept all the same).
    """

    comparison: Comparison
    chart: str | None
    store: str
    chart_error: str | None = None


def run_demo(
    store: ObjectStore,
    *,
    models: Sequence[str] = DEMO_MODELS,
    chart: str | Path | None = "alphazoo-demo.png",
    progress: Progress = lambda done, total, message: None,
) -> DemoResult:
    """Run the demo's walk-forward into ``store`` (its ``demo/`` objects are replaced).

    Bad ``models`` or a ``chart`` that cannot be written are refused before anything runs or
    any earlier demo object is deleted. Should drawing still fail after the run, the result
    says why in ``chart_error`` rather than losing the run.
    """
    from .features import load_panel

    model_factories(models)  # a typo must not cost the previous run's versions
    path = Path(chart) if chart else None
    if path is not None:
        check_chart_path(path)
    for key in [k for k in store.keys() if k.startswith("demo/")]:
        store.delete(key)  # each run writes fresh version series
    comparison = compare_models(load_panel(), Zoo(store), models=models, start="2017-01-01",
                                every="W-MON", window=252, topk=2, n_drop=1, prefix="demo",
                                progress=progress)
    drawn, error = None, None
    if path is not None:
        try:
            drawn = draw_equity(comparison, path)
        except (OSError, ImportError, ValueError) as exc:  # a full disk, a vanished folder
            error = f"could not write the chart {str(path)!r}: {type(exc).__name__}: {exc}"
    return DemoResult(comparison, drawn, store.url, error)


def check_chart_path(path: Path) -> None:
    """Refuse a chart ``path`` that cannot be written (or drawn), before a long run."""
    if importlib.util.find_spec("matplotlib") is None:
        raise ImportError("the demo's chart needs matplotlib: pip install 'alphazoo[demo]', "
                          "or pass no chart (--chart '')")
    if path.is_dir():
        raise IsADirectoryError(f"the chart {str(path)!r} is a folder; give a .png file path")
    if path.exists():
        if not os.access(path, os.W_OK):
            raise PermissionError(f"the chart {str(path)!r} exists and cannot be overwritten")
        return
    folder = path.parent
    while not folder.exists():  # draw_equity creates the missing folders
        folder = folder.parent
    if not folder.is_dir():
        raise NotADirectoryError(f"cannot write the chart {str(path)!r}: {str(folder)!r} is a "
                                 "file, not a folder")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise PermissionError(f"cannot write the chart {str(path)!r}: the folder "
                              f"{str(folder)!r} is not writable")


def draw_equity(comparison: Comparison, path: Path) -> str:
    """Equity curves of every model and the benchmark, as a PNG at ``path``."""
    # A bare Figure, not pyplot: no backend switch and no global figure left behind in the
    # caller's session (a notebook keeps its inline backend).
    from matplotlib.figure import Figure

    figure = Figure(figsize=(9, 4.8), dpi=110)
    axes = figure.subplots()
    for result in [*comparison.models, comparison.benchmark]:
        style: dict[str, Any] = ({"color": "0.4", "linestyle": "--"}
                                 if result is comparison.benchmark else {})
        axes.plot(result.equity.index, result.equity.to_numpy(), label=result.model, **style)
    axes.set_title(f"alphazoo demo: weekly retraining, top-2 of {len(comparison.symbols)} "
                   "with dropout, net of costs")
    axes.set_ylabel("equity (start = 1.0)")
    axes.grid(alpha=0.3)
    axes.legend(loc="upper left", fontsize=8)
    figure.autofmt_xdate()
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    # PNG whatever the name says, at exactly that path: from the name alone matplotlib would
    # write "eq" as "eq.png", "eq.svg" as SVG, and refuse "eq.xyz" after the whole run.
    figure.savefig(path, format="png")
    return str(path)
