"""Benchmark: the demo's walk-forward on long real data, with each model's metrics and cost.

    python benchmarks/bench_walkforward.py                 # 2012-01-01 .. 2014-12-31, weekly
    python benchmarks/bench_walkforward.py --quick         # from 2014-07-01: a smoke test
    python benchmarks/bench_walkforward.py --models gbdt alstm --start 2013-01-01
    python benchmarks/bench_walkforward.py --json out.json

The walk-forward is :func:`alphazoo.contrib.comparison.compare_models`, the engine behind
``alphazoo demo``, run on one panel of three real symbols (NVDA 1999-2014, ORCL 1995-2014,
YHOO 1996-2014, from ``../shared/data`` relative to the repository root). Each model is
retrained every ``--every`` date on the last ``--window`` dates, every version is saved to a
temporary local ObjectStore as ONNX and loaded back, and the loaded version scores the rows up
to the next retrain; a top-2-with-dropout portfolio trades on the scores net of costs.

Reported per model, next to the equal-weight benchmark:

1. metrics: IC, rank IC, annualised return, information ratio against equal weight, Sharpe
   ratio, max drawdown, turnover, and the largest |served - trained| score;
2. cost: retrains, training seconds per retrain, save+load seconds per version, store bytes
   per version (the bundles' sizes in the store), the served model's single-row latency, and
   the ratio (save+load) / train: what keeping every version costs next to training it;
3. served ONNX vs native, one row: ``compare_models`` keeps results, not models, so a model of
   the same configuration is trained here on the last window, saved and loaded as ONNX, and
   both are timed on the same row in turns (hot, and after 5 ms idle as in a once-per-bar
   loop); speed-up = native / ONNX.

Every ratio comes from one run on one machine. The metrics are for three stocks over one
period: they say what the engine produces, not that any model has an edge.
"""

from __future__ import annotations

import argparse
import importlib.util
import math
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
from _common import git_revision, write_json  # benchmarks/ is sys.path[0] when run as a script
from _measure import (
    PAUSE,
    after_pause,
    benchmark_parser,
    blocked,
    environment,
    loadavg,
    med,
    print_header,
    ratio,
    table,
    versions,
    x,
)

DATA_DIR = Path(__file__).resolve().parents[1].parent / "shared" / "data"
FILES = ("nvda-1999-2014.csv", "orcl-1995-2014.csv", "yhoo-1996-2014.csv")
DEFAULT_MODELS = ("random_forest", "gbdt", "alstm")
START, QUICK_START = "2012-01-01", "2014-07-01"
# Modules each model needs to train and to be served as ONNX.
NEEDS = {
    "random_forest": ("sklearn", "skl2onnx"),
    "gbdt": ("lightgbm", "onnxmltools"),
    "alstm": ("torch", "onnx"),
    "xgboost_gbdt": ("xgboost", "onnxmltools"),
}
FULL = dict(row_repeats=1000, row_warmup=50, cold_repeats=200)
QUICK = dict(row_repeats=200, row_warmup=20, cold_repeats=40)


def xgboost_gbdt(n_features: int) -> Any:
    """The demo's gbdt up to alphazoo 0.1 (xgboost), which README.md's figures measured."""
    from alphazoo.contrib.xgboost_gbdt import XGBoostGBDT

    return XGBoostGBDT(loss="binary", n_estimators=120, max_depth=3, learning_rate=0.05,
                       early_stopping_rounds=15)


# -- data ----------------------------------------------------------------------------------------
def load_panel(folder: Path) -> Any:
    """The three symbols' daily bars as one ``(datetime, instrument)`` panel."""
    from alphazoo.contrib.features import read_bars_csv, to_panel

    if folder.is_file():
        sys.exit(f"bench_walkforward: --data takes the folder holding {', '.join(FILES)}, "
                 f"not one file ({folder})")
    if not folder.is_dir():
        sys.exit(f"bench_walkforward: market data folder not found at {folder}\n"
                 f"  expected ../shared/data relative to the repository root, holding "
                 f"{', '.join(FILES)}; pass --data FOLDER to use another copy.")
    missing = [name for name in FILES if not (folder / name).is_file()]
    if missing:
        sys.exit(f"bench_walkforward: {folder} lacks {', '.join(missing)}")
    bars = {}
    for name in FILES:
        frame = read_bars_csv(folder / name)
        bars[frame.attrs["symbol"]] = frame
    return to_panel(bars)


def describe(panel: Any, folder: Path) -> dict[str, Any]:
    per_symbol = {}
    for symbol, part in panel.groupby(level="instrument"):
        dates = part.index.get_level_values("datetime")
        per_symbol[str(symbol)] = {"rows": len(part), "first": str(dates[0].date()),
                                   "last": str(dates[-1].date())}
    return {"folder": str(folder), "files": list(FILES), "symbols": per_symbol}


# -- served ONNX vs native, one row ----------------------------------------------------------------
def last_window(panel: Any, end: Any, window: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Training windows of the last ``window`` labelled dates, and the row compare_models times.

    Built as :func:`compare_models` builds its inputs (same features, labels and ALSTM window):
    a model trained here has the walk-forward's configuration and about its last version's
    training rows (the walk-forward's last cutoff is the last Monday, not the data's end).
    """
    import pandas as pd

    from alphazoo.contrib.comparison import STEP_LEN
    from alphazoo.contrib.dataset import Dataset
    from alphazoo.contrib.features import compute_features, compute_labels

    labels = compute_labels(panel)["label_return"]
    features = compute_features(panel)
    if end is not None:
        keep = features.index.get_level_values(0) <= pd.Timestamp(end)
        features, labels = features[keep], labels[keep]
    dataset = Dataset(features, labels)
    X, y, index = dataset.prepare(None, sequence=STEP_LEN)  # labelled rows only
    every_row, _, _ = dataset.prepare(None, sequence=STEP_LEN, labels=False)
    dates = index.get_level_values(0)
    distinct = dates.unique()
    keep = np.asarray(dates >= distinct[-min(window, len(distinct))])
    return X[keep], y[keep], every_row[-1:]


def native_vs_served(zoo: Any, name: str, factory: Any, data: tuple[np.ndarray, ...],
                     cfg: dict[str, int]) -> dict[str, Any]:
    """Train one model on ``data``, store it as ONNX, time both on one row in turns."""
    X, y, row = data
    model = factory(X.shape[-1])
    if not getattr(model, "sequential", False):
        X, row = np.ascontiguousarray(X[:, -1, :]), np.ascontiguousarray(row[:, -1, :])
    model.fit(X, y)
    key = f"bench/latency/{name}"
    zoo.save(model, key, format="onnx")
    served = zoo.load(key)
    diff = float(np.max(np.abs(model.predict(row) - served.predict(row))))
    hot_native, hot_onnx = blocked([model.predict, served.predict], [[row], [row]],
                                   cfg["row_repeats"], cfg["row_warmup"])
    cold_native, cold_onnx = after_pause([model.predict, served.predict], [[row], [row]],
                                         cfg["cold_repeats"], PAUSE)
    out = {
        "model": name, "train_rows": len(X), "row_shape": list(row.shape), "max_abs_diff": diff,
        "hot_native_us": med(hot_native) * 1e6, "hot_onnx_us": med(hot_onnx) * 1e6,
        "cold_native_us": med(cold_native) * 1e6, "cold_onnx_us": med(cold_onnx) * 1e6,
        "row_repeats": cfg["row_repeats"], "cold_repeats": cfg["cold_repeats"],
    }
    out["hot_speedup"] = ratio(out["hot_native_us"], out["hot_onnx_us"])
    out["cold_speedup"] = ratio(out["cold_native_us"], out["cold_onnx_us"])
    return out


# -- one run -------------------------------------------------------------------------------------
def run(panel: Any, args: Any, workdir: Path, cfg: dict[str, int]) -> dict[str, Any]:
    from alphazoo.contrib.comparison import compare_models, default_models
    from alphazoo.host import Zoo
    from alphazoo.store import ObjectStore

    zoo = Zoo(ObjectStore(workdir / "store"))
    factories = {**default_models(), "xgboost_gbdt": xgboost_gbdt}
    clock = {"last": time.perf_counter()}
    live = sys.stderr.isatty()

    def progress(done: int, total: int, message: str) -> None:
        if message.endswith("versions saved"):  # compare_models' line when a model is done
            now = time.perf_counter()
            wipe = " " * 70 + "\r" if live else ""  # over the live counter's line
            print(f"{wipe}  [{done}/{total}] {message} in {now - clock['last']:.0f} s",
                  file=sys.stderr, flush=True)
            clock["last"] = now
        elif live:
            print(f"  [{done}/{total}] {message}"[:70].ljust(70), end="\r", file=sys.stderr,
                  flush=True)

    print(f"  walk-forward of {', '.join(args.models)} from {args.start}, retrain "
          f"{args.every}, window {args.window} dates...", file=sys.stderr, flush=True)
    try:
        comparison = compare_models(panel, zoo, models={m: factories[m] for m in args.models},
                                    start=args.start, end=args.end, every=args.every,
                                    window=args.window, progress=progress)
    except ValueError as error:  # bad --start/--end/--every: say so plainly, no traceback
        sys.exit(f"bench_walkforward: {error}")

    models = []
    for result in comparison.models:
        sizes = [zoo.store.size(key) for key in result.versions]
        retrains = max(result.retrains, 1)
        models.append({
            "model": result.model, "ic": result.ic, "rank_ic": result.rank_ic,
            "annualised_return": result.annualised_return,
            "information_ratio": result.information_ratio, "sharpe_ratio": result.sharpe_ratio,
            "max_drawdown": result.max_drawdown, "turnover": result.turnover,
            "final_equity": float(result.equity.iloc[-1]),
            "retrains": result.retrains,
            "train_s_per_retrain": result.train_seconds / retrains,
            "save_load_s_per_version": result.save_load_seconds / retrains,
            "store_cost_ratio": ratio(result.save_load_seconds, result.train_seconds),
            "store_bytes_per_version": sum(sizes) / max(len(sizes), 1),
            "store_bytes_total": sum(sizes),
            "served_latency_us": result.predict_latency_us,
            "served_vs_trained": result.served_vs_trained,
            "first_version": result.versions[0] if result.versions else None,
            "last_version": result.versions[-1] if result.versions else None,
        })
    bench = comparison.benchmark
    benchmark = {"model": bench.model, "annualised_return": bench.annualised_return,
                 "sharpe_ratio": bench.sharpe_ratio,
                 "max_drawdown": bench.max_drawdown, "turnover": bench.turnover,
                 "final_equity": float(bench.equity.iloc[-1])}

    latency = []
    data = last_window(panel, args.end, args.window)
    for name in args.models:
        print(f"  timing served ONNX vs native {name} on one row...", file=sys.stderr,
              flush=True)
        latency.append(native_vs_served(zoo, name, factories[name], data, cfg))
    return {"period": {"start": comparison.start, "end": comparison.end,
                       "scored_rows": comparison.rows, "symbols": comparison.symbols},
            "walk_forward_seconds": comparison.seconds, "models": models,
            "benchmark": benchmark, "latency": latency}


# -- output --------------------------------------------------------------------------------------
def pct(value: float) -> str:
    return "-" if math.isnan(value) else f"{value * 100:.1f}%"


def num(value: float, digits: int = 3) -> str:
    return "-" if math.isnan(value) else f"{value:.{digits}f}"


def report(result: dict[str, Any], out: Any) -> None:
    info, cfg, period = result["environment"], result["config"], result["period"]
    print_header(result, "walk-forward", out)
    spans = ", ".join(f"{s} {d['first']}..{d['last']} ({d['rows']} bars)"
                      for s, d in result["data"]["symbols"].items())
    print(f"  data: {result['data']['folder']}: {spans}", file=out)
    print(f"  walk-forward {period['start']}..{period['end']} ({period['scored_rows']} scored "
          f"rows), retrain {cfg['every']} on the last {cfg['window']} dates, versions saved and "
          f"served as ONNX; top-2 of {len(period['symbols'])} with dropout 1, cost 0.15% per "
          f"unit traded", file=out)

    rows = [[m["model"], num(m["ic"], 4), num(m["rank_ic"], 4), pct(m["annualised_return"]),
             num(m["information_ratio"], 2), num(m["sharpe_ratio"], 2), pct(m["max_drawdown"]),
             num(m["turnover"]), f"{m['served_vs_trained']:.1g}"] for m in result["models"]]
    b = result["benchmark"]
    rows.append([b["model"], "-", "-", pct(b["annualised_return"]), "-",
                 num(b["sharpe_ratio"], 2), pct(b["max_drawdown"]), num(b["turnover"]), "-"])
    table("1. metrics, net of costs (IC, rank IC: mean over dates of the cross-sectional "
          "correlation with next-day returns;\n   IR: against equal weight's daily returns; "
          "Sharpe: mean/std of daily returns, annualised; last column: largest |served - "
          "trained| score)",
          ["model", "IC", "rank IC", "ann. return", "IR vs EW", "Sharpe", "max drawdown",
           "turnover/day", "|served - trained|"], rows, out)

    rows = [[m["model"], str(m["retrains"]), f"{m['train_s_per_retrain']:.3f}",
             f"{m['save_load_s_per_version']:.3f}", x(m["store_cost_ratio"]),
             f"{m['store_bytes_per_version'] / 1024:.1f}", f"{m['served_latency_us']:.1f}"]
            for m in result["models"]]
    table("2. cost per model ((save+load)/train = storing and reloading a version vs training "
          "it; latency: median of 300 single-row calls of the last served version)",
          ["model", "retrains", "train s/retrain", "save+load s/version", "(save+load)/train",
           "store KiB/version", "served latency us"], rows, out)

    rows = [[p["model"], f"{p['hot_native_us']:.1f}", f"{p['hot_onnx_us']:.1f}",
             x(p["hot_speedup"]), f"{p['cold_native_us']:.1f}", f"{p['cold_onnx_us']:.1f}",
             x(p["cold_speedup"]), f"{p['max_abs_diff']:.1g}"] for p in result["latency"]]
    first = result["latency"][0] if result["latency"] else {"row_repeats": 0, "cold_repeats": 0}
    table(f"3. one row, native model.predict vs the served ONNX version (same model, same row; "
          f"median us of {first['row_repeats']} hot calls and of {first['cold_repeats']} calls "
          f"after {PAUSE * 1e3:g} ms idle; speed-up = native / ONNX)",
          ["model", "hot native", "hot ONNX", "speed-up", "idle native", "idle ONNX",
           "speed-up", "|diff|"], rows, out)
    print(f"\nwalk-forward {result['walk_forward_seconds']:.0f} s, total {result['seconds']:.0f} "
          f"s; load average (1/5/15 min) at start {info['loadavg_start']}, at end "
          f"{info.get('loadavg_end')}", file=out)
    if info["loadavg_start"] and info["loadavg_start"][0] > 0.5:
        print("note: the machine was busy when the run started; ratios hold up better than "
              "absolute times", file=out)



#: The distributions whose versions head the report.
REPORTED = (
    "alphazoo", "numpy", "pandas", "scikit-learn", "skl2onnx", "xgboost", "onnxmltools",
    "torch", "onnx", "onnxruntime",
)


# -- main ----------------------------------------------------------------------------------------
def main(argv: list[str] | None = None) -> int:
    shared = benchmark_parser(__doc__)
    # The shared --data names one CSV; this benchmark reads three, so it takes their folder.
    parser = argparse.ArgumentParser(description=shared.description, parents=[shared],
                                     formatter_class=shared.formatter_class,
                                     conflict_handler="resolve")
    parser.add_argument("--data", type=Path, default=DATA_DIR, metavar="FOLDER",
                        help=f"folder holding {', '.join(FILES)} (default {DATA_DIR})")
    parser.add_argument("--start", help=f"first date scored (default {START}; with --quick "
                                        f"{QUICK_START})")
    parser.add_argument("--end", help="last date scored (default: the data's last date)")
    parser.add_argument("--every", default="W-MON",
                        help="retrain schedule, a pandas frequency (default W-MON)")
    parser.add_argument("--window", type=int, default=252,
                        help="training dates per retrain (default 252)")
    parser.add_argument("--models", nargs="+", default=list(DEFAULT_MODELS), metavar="MODEL",
                        help=f"zoo models, space or comma separated (default "
                             f"{' '.join(DEFAULT_MODELS)})")
    args = parser.parse_args(argv)
    args.models = [m for item in args.models for m in item.split(",") if m]
    unknown = [m for m in args.models if m not in NEEDS]
    if unknown or not args.models:
        parser.error(f"--models: choose from {', '.join(NEEDS)}; got {unknown or 'none'}")
    if args.window < 2:
        parser.error("--window must be at least 2 dates")
    args.start = args.start or (QUICK_START if args.quick else START)
    out = sys.stderr if args.json == "-" else sys.stdout
    cfg = QUICK if args.quick else FULL

    needed = ["pandas", "onnxruntime", *(mod for m in args.models for mod in NEEDS[m])]
    missing = sorted({mod for mod in needed if importlib.util.find_spec(mod) is None})
    if missing:
        sys.exit(f"bench_walkforward: install alphazoo's zoo extra and the models' libraries "
                 f"first (missing: {', '.join(missing)})")

    started = time.perf_counter()
    panel = load_panel(args.data)
    result: dict[str, Any] = {
        "quick": args.quick,
        "config": {**cfg, "start": args.start, "end": args.end, "every": args.every,
                   "window": args.window, "models": args.models},
        "environment": environment(versions(*REPORTED), git_revision()),
        "data": describe(panel, args.data),
    }
    with tempfile.TemporaryDirectory(prefix="alphazoo-bench-") as tmp:
        result.update(run(panel, args, Path(tmp), cfg))
    result["seconds"] = time.perf_counter() - started
    result["environment"]["loadavg_end"] = loadavg()
    report(result, out)
    if args.json:
        from alphazoo.jsonable import strict_jsonable  # NaN (the benchmark has no IC) -> null

        write_json(strict_jsonable(result), args.json, out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
