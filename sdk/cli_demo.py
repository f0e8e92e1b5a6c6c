"""``alphazoo demo``: options, the progress display, and the results table.

Progress is weighted by what each model costs, not by how many versions it saves: the demo's
three models save 52 versions each, but an ALSTM version costs several times a forest's, so a
count of versions would reach two thirds with most of the wait still ahead. Each model's cost
per version (:data:`SECONDS_PER_VERSION`) was measured once on a loaded 2-core machine; the
remaining-time estimate rescales those figures by how fast this machine has actually been so
far, so it corrects itself as the run goes.
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import asdict
from typing import Any, Callable

from .cli_output import Column, console, emit, fitted_table, print_json

__all__ = ["MODEL_CHOICES", "SECONDS_PER_VERSION", "CostClock", "add_parser", "demo_table",
           "parse_models", "run"]

EXIT_OK, EXIT_FAILURE = 0, 1

#: The models ``--models`` accepts: those :func:`alphazoo.contrib.comparison.default_models`
#: sizes for weekly retrains (a test keeps the two lists equal). Other zoo models, such as
#: ``svm``, have no weekly configuration here.
MODEL_CHOICES = ("random_forest", "gbdt", "alstm")

#: Wall seconds per weekly version (train + save + load), measured once on 2 cores at load
#: average 4-8: the demo table's "train s" + "save+load s" over its 52 versions (forest
#: 24.3 + 21.9 s, alstm 96.9 + 40.3 s). gbdt (LightGBM) is scaled from a later run at load
#: 10-12, 3.7 + 14.4 s against the forest's 25.7 + 19.6 s. Only their ratios shape the bar;
#: the time estimate rescales them by the speed this run has shown so far.
SECONDS_PER_VERSION = {"random_forest": 0.89, "gbdt": 0.36, "alstm": 2.64}
#: Imports, features and windows before the first version, in the same units (about 5 of
#: that run's 13 s outside the versions; the rest, backtests and chart, follows each model).
SETUP_SECONDS = 5.0


def add_parser(commands: Any, store_option: Any, json_option: Any) -> None:
    """Add ``demo`` to the ``alphazoo`` subcommands."""
    summary = ("Walk-forward backtest of several zoo models on bundled data, served through "
               "ONNX; prints their metrics and draws their equity curves.")
    demo = commands.add_parser("demo", help=summary, description=summary + (
        " Five symbols' daily bars (2015-2017, shipped with alphazoo): each model is retrained "
        "every Monday of 2017 on the previous year, every version is saved as ONNX under demo/ "
        "in the store (earlier demo/ objects are replaced; the store folder is created if "
        "needed) and reloaded to score the week; a top-2-of-5 portfolio with dropout trades on "
        "the scores, net of costs. 3 1/2-4 minutes on two busy cores, most of it alstm. Needs "
        "alphazoo[demo]."))
    demo.add_argument("--models", metavar="NAMES", default=",".join(MODEL_CHOICES),
                      help=f"comma-separated, from: {', '.join(MODEL_CHOICES)} "
                      "(default: all three)")
    demo.add_argument("--chart", metavar="PNG", default="alphazoo-demo.png",
                      help="where to write the equity chart (default: %(default)s; '' for none)")
    store_option(demo)
    json_option(demo)


def parse_models(text: str) -> list[str]:
    """``--models`` as a list; raises ValueError with a message for a shell user."""
    models = [name.strip() for name in text.split(",") if name.strip()]
    unknown = [name for name in models if name not in MODEL_CHOICES]
    if unknown or not models:
        got = ", ".join(repr(name) for name in unknown) or "none"
        raise ValueError(
            f"argument --models: the demo runs {', '.join(MODEL_CHOICES)}; got {got}. (Other "
            "zoo models in `alphazoo models` have no weekly configuration in the demo.)")
    return list(dict.fromkeys(models))


class CostClock:
    """Progress weighted by cost, and the time left, from ``compare_models``' callbacks.

    ``compare_models`` gives every model the same number of steps, in order; step ``done``
    therefore belongs to model ``(done - 1) // per_model``.
    """

    def __init__(self, models: list[str], clock: Callable[[], float] = time.perf_counter):
        self.models = models
        fallback = max(SECONDS_PER_VERSION.values())
        self.costs = [SECONDS_PER_VERSION.get(name, fallback) for name in models]
        self.clock = clock
        self.started = clock()
        self.per_model = 0
        self.done = 0

    @property
    def total(self) -> float:
        """The whole run in weight units (SETUP_SECONDS plus every version's cost)."""
        return SETUP_SECONDS + sum(cost * self.per_model for cost in self.costs)

    def update(self, done: int, total: int) -> None:
        self.per_model = max(1, total // max(1, len(self.models)))
        self.done = done

    @property
    def completed(self) -> float:
        """Weight units finished (setup counts as done once the first step is reported)."""
        units = SETUP_SECONDS if self.per_model else 0.0
        for number, cost in enumerate(self.costs):
            steps = min(max(self.done - number * self.per_model, 0), self.per_model)
            units += cost * steps
        return units

    @property
    def elapsed(self) -> float:
        return self.clock() - self.started

    def remaining(self) -> float | None:
        """Seconds left: the units left at the speed measured so far (None before any)."""
        completed = self.completed
        if not self.per_model or completed <= 0:
            return None
        return (self.total - completed) * self.elapsed / completed

    def describe_remaining(self) -> str:
        left = self.remaining()
        if left is None:
            return "estimating"
        if left < 1:
            return "finishing"
        minutes, seconds = divmod(int(round(left)), 60)
        return f"about {minutes} min {seconds:02d} s left" if minutes else f"about {seconds} s left"


def run(args: argparse.Namespace, models: list[str]) -> int:
    """``alphazoo demo``: run, then print the table (or JSON)."""
    from alphazoo.contrib.demo import run_demo

    from .cli_store import open_store

    store = open_store(args.store, create=True)  # the demo is meant to make its store
    chart = args.chart or None
    err = console(stderr=True)
    cost = CostClock(models)
    if err.is_terminal:
        result = _with_bar(err, cost, lambda progress: run_demo(
            store, models=models, chart=chart, progress=progress))
    else:
        result = run_demo(store, models=models, chart=chart, progress=_log(cost, models))
    if args.json:
        return _json(result)
    out = console()
    comparison = result.comparison
    emit(out,
         f"\nWeekly walk-forward {comparison.start} .. {comparison.end} on "
         f"{', '.join(comparison.symbols)}: each Monday a model is retrained on the year "
         f"before, saved as ONNX to [cyan]{result.store}[/] and served from there; a top-2 "
         "portfolio with dropout trades on its scores, 0.15% cost per unit traded.\n")
    emit(out, demo_table(out, comparison))
    emit(out, "IC: the mean daily correlation of scores with next-day returns across the "
              "symbols; rank IC the same on ranks. IR vs EW: the information ratio of the "
              "portfolio's daily net returns over the equal-weight benchmark's. Five stocks "
              "over one year show the workflow, not an edge: read the figures as a worked "
              "example.")
    if result.chart:
        emit(out, f"Equity curves: [cyan]{result.chart}[/]")
    if comparison.models:
        where = f" --store {args.store}" if args.store else ""
        emit(out, f"Every version is in the store: alphazoo store ls demo/{where}  |  "
                  f"alphazoo inspect {comparison.models[0].versions[-1]}{where}")
    emit(out, f"Finished in {comparison.seconds:.0f} s.")
    return _chart_failed(result.chart_error)


def _with_bar(err: Any, cost: CostClock, work: Callable[[Any], Any]) -> Any:
    from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn, TimeElapsedColumn

    columns = (TextColumn("{task.description}"), BarColumn(bar_width=24), TaskProgressColumn(),
               TimeElapsedColumn(), TextColumn("{task.fields[left]}"))
    with Progress(*columns, console=err) as bar:
        task = bar.add_task("building features", total=None, left="")

        def progress(done: int, total: int, message: str) -> None:
            cost.update(done, total)
            bar.update(task, completed=cost.completed, total=cost.total,
                       description=message, left=cost.describe_remaining())

        return work(progress)


def _log(cost: CostClock, models: list[str]) -> Callable[[int, int, str], None]:
    """Plain lines for logs and pipes: one at the start, every 10 versions and at each
    model's end, flushed at once (a pipe would otherwise hold them in a buffer)."""
    print(f"alphazoo demo: {', '.join(models)}; building features", file=sys.stderr,
          flush=True)

    def log(done: int, total: int, message: str) -> None:
        cost.update(done, total)
        if "versions saved" in message or done % 10 == 0:
            share = cost.completed / cost.total if cost.total else 0.0
            print(f"[{cost.elapsed:4.0f} s {share:4.0%}] {message}; "
                  f"{cost.describe_remaining()}", file=sys.stderr, flush=True)

    return log


def demo_table(out: Any, comparison: Any) -> Any:
    """The results table laid out for console ``out``: at 80 or 100 columns the least
    needed columns go, and every figure stays whole."""
    columns = [
        Column("model", wrap=False), Column("IC", number=True),
        Column("rank IC", priority=3, short="rIC", number=True),
        Column("ann. return", short="return", number=True),
        Column("max DD", number=True),
        Column("IR vs EW", priority=2, short="IR", number=True),
        Column("retrains", priority=6, short="n", number=True),
        Column("train s", priority=4, short="fit s", number=True),
        Column("save+load s", priority=5, short="io s", number=True),
        Column("predict µs/row", priority=1, short="µs/row", number=True),
    ]
    rows = [[row.model, _fmt(row.ic, ".3f"), _fmt(row.rank_ic, ".3f"),
             f"{row.annualised_return:+.1%}", f"{row.max_drawdown:.1%}",
             _fmt(row.information_ratio, ".2f"), str(row.retrains or ""),
             _fmt(row.train_seconds, ".1f", blank_zero=True),
             _fmt(row.save_load_seconds, ".1f", blank_zero=True),
             _fmt(row.predict_latency_us, ".0f")]
            for row in [*comparison.models, comparison.benchmark]]
    return fitted_table(out, "Out-of-sample, 2017", columns, rows)


def _json(result: Any) -> int:
    from .jsonable import strict_jsonable

    payload = asdict(result.comparison)
    for row in [*payload["models"], payload["benchmark"]]:
        row["equity"] = {str(day.date()): value for day, value in row["equity"].items()}
    payload.update(chart=result.chart, store=result.store, chart_error=result.chart_error)
    print_json(strict_jsonable(payload))
    return _chart_failed(result.chart_error)


def _chart_failed(error: str | None) -> int:
    # The figures are printed first: a chart that could not be written loses nothing else.
    if error is None:
        return EXIT_OK
    print(f"alphazoo: error: {error}", file=sys.stderr)
    return EXIT_FAILURE


def _fmt(value: float, spec: str, blank_zero: bool = False) -> str:
    if value != value or (blank_zero and value == 0):  # NaN: not applicable to this row
        return ""
    return format(value, spec)

