"""Benchmark: alphazoo's catboost path against CatBoost's, pickle's and onnxruntime's own calls.

    python benchmarks/bench_catboost.py            # full run (about a minute on 2 cores)
    python benchmarks/bench_catboost.py --quick    # fewer repetitions, a smoke test
    python benchmarks/bench_catboost.py --json     # tables on stderr, JSON on stdout
    python benchmarks/bench_catboost.py --json out.json

Every figure is a ratio against a baseline measured in the same run, on the same machine, on
the same fitted model (absolute times are printed alongside for context only):

1. save / load: ``zoo.save`` + ``zoo.load`` (local ObjectStore in a temp folder) versus
   CatBoost's own calls writing and reading a file in the same temp folder, per format: cbm
   and json (``save_model(path, format=...)`` / ``load_model(path, format=...)`` into a new
   estimator), pickle (``pickle.dumps`` / ``pickle.loads`` of the file's bytes), onnx
   (``save_model(path, format="onnx")`` / ``onnxruntime.InferenceSession``). Alongside: the
   adapter's own save/load hooks on a plain folder (no bundle) against the same direct calls,
   which separates what the catboost adapter adds (the cbm framing check, the JSON read-back
   at save, the ONNX parity check) from the host's fixed costs (checksums, fsync, limits).
2. prediction: the loaded ONNX predictor versus the native model's ``predict_proba`` (or
   ``predict`` for the regressor) on one row (hot, back-to-back calls; and after 5 ms idle, as
   in a loop that predicts once per bar) and on a 10,000-row batch (medians; speed-up =
   native / onnx).

Data: real NVDA daily bars (``../shared/data/nvda-1999-2014.csv`` relative to the repository
root), the six price features and next-day-up label of ``bench_sklearn.py``; the regressor
predicts the next day's return.
"""

from __future__ import annotations

import importlib.util
import os
import pickle
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

# benchmarks/ is sys.path[0] when run as a script.
import numpy as np
from _common import git_revision, write_json
from _measure import (
    FEATURES,
    PAUSE,
    after_pause,
    benchmark_parser,
    blocked,
    environment,
    load_bars,
    make_features,
    med,
    ms,
    print_header,
    ratio,
    save_load_summary,
    table,
    timed_sides,
    versions,
    x,
)

from alphazoo.adapters import catboost as cb_adapter
from alphazoo.contracts import LoadRequest, SaveRequest

FORMATS = ("cbm", "json", "pickle", "onnx")
TARGET_RATIO = 1.15
BATCH_ROWS = 10_000
SAMPLE_ROWS = 256  # rows Zoo.train records and Zoo.save uses for the ONNX parity check
#: (name, zoo model, iterations, depth)
MODELS = (("clf_100x4", "catboost_classifier", 100, 4),
          ("clf_300x6", "catboost_classifier", 300, 6),
          ("reg_100x4", "catboost_regressor", 100, 4))

FULL = {"io_repeats": 7, "io_warmup": 2, "row_repeats": 2000, "row_warmup": 200,
        "cold_repeats": 200, "batch_repeats": 15, "batch_warmup": 2}
QUICK = {"io_repeats": 3, "io_warmup": 1, "row_repeats": 300, "row_warmup": 30,
         "cold_repeats": 40, "batch_repeats": 5, "batch_warmup": 1}


# -- 1. save / load ------------------------------------------------------------------------------
def direct_calls(model: Any, fmt: str, path: Path) -> tuple[Any, Any]:
    """CatBoost's (or pickle's, onnxruntime's) own save and load calls for ``fmt``."""
    if fmt in ("cbm", "json"):
        def save() -> None:
            model.save_model(str(path), format=fmt)

        def load() -> Any:
            return type(model)().load_model(str(path), format=fmt)
    elif fmt == "pickle":
        def save() -> None:
            path.write_bytes(pickle.dumps(model, protocol=5))

        def load() -> Any:
            return pickle.loads(path.read_bytes())
    else:
        import onnxruntime

        def save() -> None:
            model.save_model(str(path), format="onnx")

        def load() -> Any:
            return onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return save, load


def bench_save_load(zoo: Any, name: str, model: Any, fmt: str, workdir: Path,
                    sample: np.ndarray, cfg: dict[str, int]) -> dict[str, Any]:
    key = f"bench/{name}-{fmt}"
    trusted = fmt == "pickle"
    path = workdir / f"{name}.{fmt}"
    d_save, d_load = direct_calls(model, fmt, path)

    def az_save() -> None:
        zoo.save(model, key, format=fmt)

    def az_load() -> Any:
        return zoo.load(key, trusted=trusted)

    az_save()
    manifest = zoo.inspect(key)
    hook_dir = workdir / f"hooks-{name}-{fmt}"
    hook_dir.mkdir(exist_ok=True)
    files = {f["name"]: hook_dir / f["name"] for f in manifest["files"]}

    def hook_save() -> None:
        cb_adapter.alphazoo_save(SaveRequest(model, fmt, hook_dir, sample))

    def hook_load() -> Any:
        return cb_adapter.alphazoo_load(LoadRequest(manifest, files, trusted))

    rows = timed_sides({"az": (az_save, az_load), "hook": (hook_save, hook_load),
                        "direct": (d_save, d_load)}, cfg["io_repeats"], cfg["io_warmup"])
    out: dict[str, Any] = save_load_summary(rows)
    out.update(model=name, format=fmt, bundle_bytes=zoo.store.size(key),
               payload_bytes=path.stat().st_size)
    return out


# -- 2. prediction -------------------------------------------------------------------------------
def bench_predict(name: str, model: Any, predictor: Any, X_rows: np.ndarray,
                  cfg: dict[str, int]) -> dict[str, Any]:
    rows = [X_rows[i:i + 1] for i in range(len(X_rows))]  # (1, n) float64, as a user holds it
    reps, warm = cfg["row_repeats"], cfg["row_warmup"]
    classifier = hasattr(model, "predict_proba")
    fns = ([model.predict_proba, predictor.predict_proba] if classifier
           else [model.predict, predictor.predict])
    native_row, onnx_row = blocked(fns, [rows, rows], reps, warm)
    native_cold, onnx_cold = after_pause(fns, [rows, rows], cfg["cold_repeats"], PAUSE)
    batch = X_rows[np.arange(BATCH_ROWS) % len(X_rows)]  # the real rows, repeated
    native_batch, onnx_batch = blocked(fns, [[batch], [batch]], cfg["batch_repeats"],
                                       cfg["batch_warmup"], block=1)
    out = {
        "model": name, "call": "predict_proba" if classifier else "predict",
        "row_repeats": reps, "cold_repeats": cfg["cold_repeats"],
        "batch_repeats": cfg["batch_repeats"],
        "row_native_us": med(native_row) * 1e6, "row_onnx_us": med(onnx_row) * 1e6,
        "cold_native_us": med(native_cold) * 1e6, "cold_onnx_us": med(onnx_cold) * 1e6,
        "batch_native_ms": med(native_batch) * 1e3, "batch_onnx_ms": med(onnx_batch) * 1e3,
    }
    out["row_speedup"] = ratio(out["row_native_us"], out["row_onnx_us"])
    out["cold_speedup"] = ratio(out["cold_native_us"], out["cold_onnx_us"])
    out["batch_speedup"] = ratio(out["batch_native_ms"], out["batch_onnx_ms"])
    return out


# -- output --------------------------------------------------------------------------------------
def report(result: dict[str, Any], out: Any) -> None:
    info, data = result["environment"], result["data"]
    print_header(result, "catboost", out)
    print(f"  data: {data['file']} ({data['rows']} rows, {data['first']}..{data['last']}); "
          f"train {data['train_rows']}, test {data['test_rows']}; features {', '.join(FEATURES)}",
          file=out)
    for m in result["models"]:
        print(f"  {m['model']}: {m['description']}; ONNX vs native max |diff| on test rows "
              f"{m['onnx_max_abs_diff']:.2g}", file=out)
    rows = [[r["model"], r["format"], ms(r["az_save"]), ms(r["direct_save"]), x(r["save_ratio"]),
             ms(r["az_load"]), ms(r["direct_load"]), x(r["load_ratio"]), x(r["roundtrip_ratio"]),
             "yes" if r["roundtrip_ratio"] <= TARGET_RATIO else "NO",
             x(r["hook_roundtrip_ratio"]), f"{r['payload_bytes'] / 1024:.0f}"]
            for r in result["save_load"]]
    table(f"1. save + load, alphazoo / direct (median of {result['config']['io_repeats']}; ms)\n"
          "   adapter only: the catboost adapter's save and load hooks without a bundle, "
          "round trip / direct",
          ["model", "format", "az save", "direct", "save ratio", "az load", "direct",
           "load ratio", "round-trip ratio", f"<= {TARGET_RATIO}", "adapter only",
           "payload KiB"], rows, out)
    rows = [[p["model"], p["call"], f"{p['row_native_us']:.1f}", f"{p['row_onnx_us']:.1f}",
             x(p["row_speedup"]), f"{p['cold_native_us']:.1f}", f"{p['cold_onnx_us']:.1f}",
             x(p["cold_speedup"]), f"{p['batch_native_ms']:.2f}", f"{p['batch_onnx_ms']:.2f}",
             x(p["batch_speedup"])] for p in result["predict"]]
    first = result["predict"][0]
    table(f"2. native CatBoost vs alphazoo ONNX predictor; speed-up = native / onnx\n"
          f"   one row hot: median us of {first['row_repeats']} back-to-back calls; one row "
          f"after {PAUSE * 1e3:g} ms idle: median us of {first['cold_repeats']}; "
          f"{BATCH_ROWS:,} rows: median ms of {first['batch_repeats']}",
          ["model", "call", "row native", "row onnx", "speed-up", "idle native", "idle onnx",
           "speed-up", "batch native ms", "batch onnx ms", "speed-up"], rows, out)
    print(f"\ntotal benchmark time {result['seconds']:.0f} s; load average (1/5/15 min) at "
          f"start {info['loadavg_start']}, at end {info.get('loadavg_end')}", file=out)
    if info["loadavg_start"] and info["loadavg_start"][0] > 0.5:
        print("note: the machine was busy when the run started; ratios hold up better than "
              "absolute times, but rerun on an idle machine for figures to quote", file=out)


def _loadavg() -> list[float] | None:
    try:
        return [round(v, 2) for v in os.getloadavg()]
    except (AttributeError, OSError):
        return None


#: The distributions whose versions head the report.
REPORTED = ("alphazoo", "catboost", "onnx", "onnxruntime", "numpy")


def main(argv: list[str] | None = None) -> int:
    parser = benchmark_parser(__doc__)
    args = parser.parse_args(argv)
    out = sys.stderr if args.json == "-" else sys.stdout
    cfg = QUICK if args.quick else FULL
    started = time.perf_counter()

    dates, close = load_bars(args.data)
    X, y = make_features(close)
    split = int(len(X) * 0.75)
    # The regressor's target: the next day's return (row t+1's one-day return).
    y_next = np.append(X[1:, 0], 0.0)
    X_train, X_test = X[:split], X[split:]

    missing = [m for m in ("catboost", "onnx", "onnxruntime")
               if importlib.util.find_spec(m) is None]
    if missing:
        sys.exit(f"bench_catboost: install alphazoo[catboost,onnx] first (missing: {missing})")

    import alphazoo

    result: dict[str, Any] = {
        "quick": args.quick, "config": cfg, "target_ratio": TARGET_RATIO,
        "environment": environment(versions(*REPORTED), git_revision()),
        "data": {"file": str(args.data), "rows": len(close), "first": dates[0],
                 "last": dates[-1], "features": list(FEATURES), "train_rows": len(X_train),
                 "test_rows": len(X_test)},
        "models": [], "save_load": [], "predict": [],
    }
    with tempfile.TemporaryDirectory(prefix="alphazoo-bench-") as tmp:
        workdir = Path(tmp)
        (workdir / "direct").mkdir()
        zoo = alphazoo.Zoo(alphazoo.ObjectStore(workdir / "store"))
        for name, zoo_model, iterations, depth in MODELS:
            target = y[:split] if zoo_model == "catboost_classifier" else y_next[:split]
            model = zoo.train(zoo.build(zoo_model, iterations=iterations, depth=depth),
                              X_train, target)
            zoo.save(model, f"bench/{name}-check", format="onnx")
            predictor = zoo.load(f"bench/{name}-check")
            if hasattr(model, "predict_proba"):
                diff = np.abs(predictor.predict_proba(X_test) - model.predict_proba(X_test))
            else:
                diff = np.abs(predictor.predict(X_test) - model.predict(X_test))
            result["models"].append({
                "model": name, "onnx_max_abs_diff": float(diff.max()),
                "description": f"{type(model).__name__}, {iterations} trees of depth {depth}"})
            for fmt in FORMATS:
                print(f"  measuring save/load {name} {fmt}...", file=sys.stderr, flush=True)
                result["save_load"].append(bench_save_load(
                    zoo, name, model, fmt, workdir / "direct", X_train[:SAMPLE_ROWS], cfg))
            print(f"  measuring predictions {name}...", file=sys.stderr, flush=True)
            result["predict"].append(bench_predict(name, model, predictor, X_test, cfg))

    result["seconds"] = time.perf_counter() - started
    result["environment"]["loadavg_end"] = _loadavg()
    report(result, out)
    if args.json:
        write_json(result, args.json, out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
