"""``alphazoo demo``: the zoo end to end on the data that ships with the package.

Five symbols' daily bars (AAPL, COKE, GOOGL, TSLA, YHOO, 2015-2017). Three zoo models --
scikit-learn ``random_forest``, xgboost ``gbdt`` and torch ``alstm`` -- are retrained every
Monday of 2017 on the year before, each version is saved to the store as ONNX
(``demo/<model>/v000001`` ...) and reloaded to score the week, and a top-2-of-5 portfolio with
dropout trades on the scores net of costs (:func:`~alphazoo.contrib.comparison.compare_models`).
:func:`run_demo` returns the figures and writes a PNG of the equity curves; the CLI prints the
table. Needs ``alphazoo[demo]``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from alphazoo.host import Zoo
from alphazoo.store import ObjectStore

from .comparison import Comparison, Progress, compare_models

__all__ = ["DEMO_MODELS", "DemoResult", "run_demo"]

#: The models ``alphazoo demo`` runs, in table order.
DEMO_MODELS = ("random_forest", "gbdt", "alstm")


@dataclass
class DemoResult:
    """The comparison, where the chart went and where the versions are."""

    comparison: Comparison
    chart: str | None
    store: str


def run_demo(
    store: ObjectStore,
    *,
    models: Sequence[str] = DEMO_MODELS,
    chart: str | Path | None = "alphazoo-demo.png",
    progress: Progress = lambda done, total, message: None,
) -> DemoResult:
    """Run the demo's walk-forward into ``store`` (its ``demo/`` objects are replaced)."""
    from .features import load_panel

    for key in [k for k in store.keys() if k.startswith("demo/")]:
        store.delete(key)  # each run writes fresh version series
    comparison = compare_models(load_panel(), Zoo(store), models=models, start="2017-01-01",
                                every="W-MON", window=252, topk=2, n_drop=1, prefix="demo",
                                progress=progress)
    path = draw_equity(comparison, Path(chart)) if chart else None
    return DemoResult(comparison, path, store.url)


def draw_equity(comparison: Comparison, path: Path) -> str:
    """Equity curves of every model and the benchmark, as a PNG at ``path``."""
    import matplotlib

    matplotlib.use("Agg")  # files only: no display on servers and CI
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(9, 4.8), dpi=110)
    for result in [*comparison.models, comparison.benchmark]:
        style = ({"color": "0.4", "linestyle": "--"} if result is comparison.benchmark else {})
        axes.plot(result.equity.index, result.equity.to_numpy(), label=result.model, **style)
    axes.set_title(f"alphazoo demo: weekly retraining, top-2 of {len(comparison.symbols)} "
                   "with dropout, net of costs")
    axes.set_ylabel("equity (start = 1.0)")
    axes.grid(alpha=0.3)
    axes.legend(loc="upper left", fontsize=8)
    figure.autofmt_xdate()
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path)
    plt.close(figure)
    return str(path)
