"""Benchmark: alphazoo's lightgbm path against LightGBM's, pickle's and onnxruntime's own calls.

    python benchmarks/bench_lightgbm.py            # full run (about a minute on 2 cores)
    python benchmarks/bench_lightgbm.py --quick    # fewer repetitions, a smoke test
    python benchmarks/bench_lightgbm.py --json     # tables on stderr, JSON on stdout

Every figure is a ratio against a baseline measured in the same run, on the same machine, on
the same fitted model (absolute times are printed alongside for context only):

1. save / load: ``zoo.save`` + ``zoo.load`` (local ObjectStore in a temp folder) versus the
   library's own calls writing and reading a file in the same temp folder, per format: text
   (``booster.save_model`` / ``Booster(model_file=)``; for a wrapper the direct side loads
   only the Booster, while alphazoo also rebuilds the ``LGBMClassifier`` around it),
   pickle (``pickle.dumps`` / ``pickle.loads``), onnx (``onnxmltools.convert_lightgbm`` /
   ``onnxruntime.InferenceSession``; alphazoo also checks parity at save). Alongside: the
   text check alphazoo runs before LightGBM parses a model string, timed alone against
   LightGBM's own parse of the same string (``Booster(model_str=)``).
2. prediction: the loaded ONNX predictor versus the native ``LGBMClassifier.predict_proba``,
   on one row (hot, back-to-back calls; and after 5 ms idle, as in a loop that predicts once
   per bar) and on a 10,000-row batch (medians; speed-up = native / onnx).

Data: real NVDA daily bars (``../shared/data/nvda-1999-2014.csv`` relative to the repository
root), the six price features and next-day-up label of ``bench_sklearn.py``.
"""

from __future__ import annotations

import importlib.util
import pickle
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

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
    loadavg,
    make_features,
    med,
    ms,
    paired_save_load,
    print_header,
    ratio,
    save_load_summary,
    table,
    time_once,
    versions,
    x,
)

FORMATS = ("text", "pickle", "onnx")
BATCH_ROWS = 10_000
#: The rows the adapter hooks get for the ONNX parity check (Zoo.train records 256): set in main.
SAMPLE: Any = None
#: (name, kind, trees, leaves): the zoo's default classifier, a larger one, a bare Booster.
MODELS = (("clf_100x15", "classifier", 100, 15), ("clf_300x63", "classifier", 300, 63),
          ("booster_100x15", "booster", 100, 15))
FULL = {"io_repeats": 7, "io_warmup": 2, "row_repeats": 2000, "row_warmup": 200,
        "cold_repeats": 200, "batch_repeats": 15, "batch_warmup": 2, "part_repeats": 7}
QUICK = {"io_repeats": 3, "io_warmup": 1, "row_repeats": 300, "row_warmup": 30,
         "cold_repeats": 40, "batch_repeats": 5, "batch_warmup": 1, "part_repeats": 3}
REPORTED = ("alphazoo", "lightgbm", "scikit-learn", "onnxmltools", "onnx", "onnxruntime",
            "numpy")


def direct_calls(model: Any, fmt: str, path: Path) -> tuple[Any, Any]:
    """The libraries' own save and load calls for ``fmt``, writing/reading ``path``."""
    import lightgbm

    booster = model if isinstance(model, lightgbm.Booster) else model.booster_
    if fmt == "text":
        def save() -> None:
            booster.save_model(str(path), num_iteration=-1)

        def load() -> Any:
            return lightgbm.Booster(model_file=str(path))
    elif fmt == "pickle":
        def save() -> None:
            path.write_bytes(pickle.dumps(model, protocol=5))

        def load() -> Any:
            return pickle.loads(path.read_bytes())
    else:
        import onnxruntime
        from onnxmltools import convert_lightgbm
        from onnxmltools.convert.common.data_types import FloatTensorType

        def save() -> None:
            onx = convert_lightgbm(model, initial_types=[
                ("input", FloatTensorType([None, booster.num_feature()]))], target_opset=15,
                zipmap=False)
            path.write_bytes(onx.SerializeToString())

        def load() -> Any:
            return onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return save, load


def bench_save_load(zoo: Any, name: str, model: Any, fmt: str, workdir: Path,
                    cfg: dict[str, int]) -> dict[str, Any]:
    key = f"bench/{name}-{fmt}"
    path = workdir / f"{name}.{fmt}"
    rows = paired_save_load(
        (lambda: zoo.save(model, key, format=fmt),
         lambda: zoo.load(key, trusted=fmt == "pickle")),
        direct_calls(model, fmt, path), cfg["io_repeats"], cfg["io_warmup"])
    out: dict[str, Any] = save_load_summary(rows)
    out.update(model=name, format=fmt, bundle_bytes=zoo.store.size(key),
               payload_bytes=path.stat().st_size)
    out["hook_roundtrip"] = hook_roundtrip(zoo, key, model, fmt, workdir, cfg)
    out["hook_roundtrip_ratio"] = ratio(out["hook_roundtrip"], out["direct_roundtrip"])
    if fmt == "text":
        import lightgbm

        from alphazoo.adapters._lightgbm_text import check_model_text

        data = path.read_bytes()
        text = data.decode()
        out["check"] = med([time_once(lambda: check_model_text(data))
                            for _ in range(cfg["part_repeats"])])
        out["parse"] = med([time_once(lambda: lightgbm.Booster(model_str=text))
                            for _ in range(cfg["part_repeats"])])
        out["check_vs_parse"] = ratio(out["check"], out["parse"])
    return out


def hook_roundtrip(zoo: Any, key: str, model: Any, fmt: str, workdir: Path,
                   cfg: dict[str, int]) -> float:
    """Seconds of the adapter's own save and load hooks on a plain folder, without the
    bundle (checksums, fsync, manifest): what the lightgbm adapter adds to the library."""
    from alphazoo.adapters import lightgbm as adapter
    from alphazoo.contracts import LoadRequest, SaveRequest

    manifest = zoo.inspect(key)
    folder = workdir / f"hooks-{key.replace('/', '-')}"
    folder.mkdir(exist_ok=True)
    files = {f["name"]: folder / f["name"] for f in manifest["files"]}
    sample = SAMPLE if fmt == "onnx" else None

    def once() -> None:
        adapter.alphazoo_save(SaveRequest(model, fmt, folder, sample))
        adapter.alphazoo_load(LoadRequest(manifest, files, fmt == "pickle"))

    once()
    return med([time_once(once) for _ in range(cfg["io_repeats"])])


def bench_predict(name: str, model: Any, predictor: Any, X_rows: np.ndarray,
                  cfg: dict[str, int]) -> dict[str, Any]:
    rows = [X_rows[i:i + 1] for i in range(len(X_rows))]  # (1, n) float64, as a user holds it
    fns = [model.predict_proba, predictor.predict_proba]
    native_row, onnx_row = blocked(fns, [rows, rows], cfg["row_repeats"], cfg["row_warmup"])
    native_cold, onnx_cold = after_pause(fns, [rows, rows], cfg["cold_repeats"], PAUSE)
    batch = X_rows[np.arange(BATCH_ROWS) % len(X_rows)]  # the real rows, repeated
    native_batch, onnx_batch = blocked(fns, [[batch], [batch]], cfg["batch_repeats"],
                                       cfg["batch_warmup"], block=1)
    out = {
        "model": name, "row_repeats": cfg["row_repeats"], "cold_repeats": cfg["cold_repeats"],
        "batch_repeats": cfg["batch_repeats"],
        "row_native_us": med(native_row) * 1e6, "row_onnx_us": med(onnx_row) * 1e6,
        "cold_native_us": med(native_cold) * 1e6, "cold_onnx_us": med(onnx_cold) * 1e6,
        "batch_native_ms": med(native_batch) * 1e3, "batch_onnx_ms": med(onnx_batch) * 1e3,
    }
    out["row_speedup"] = ratio(out["row_native_us"], out["row_onnx_us"])
    out["cold_speedup"] = ratio(out["cold_native_us"], out["cold_onnx_us"])
    out["batch_speedup"] = ratio(out["batch_native_ms"], out["batch_onnx_ms"])
    return out


def report(result: dict[str, Any], out: Any) -> None:
    data = result["data"]
    print_header(result, "lightgbm", out)
    print(f"  data: {data['file']} ({data['rows']} rows); train {data['train_rows']}, test "
          f"{data['test_rows']}; features {', '.join(FEATURES)}", file=out)
    for m in result["models"]:
        print(f"  {m['model']}: {m['description']}; ONNX vs native max |proba diff| on test "
              f"rows {m['onnx_max_abs_diff']:.2g}", file=out)
    rows = [[r["model"], r["format"], f"{r['payload_bytes'] / 1024:.0f}", ms(r["az_save"]),
             ms(r["direct_save"]), x(r["save_ratio"]), ms(r["az_load"]), ms(r["direct_load"]),
             x(r["load_ratio"]), x(r["roundtrip_ratio"]), x(r["hook_roundtrip_ratio"]),
             f"{ms(r['check'])} / {ms(r['parse'])} = {x(r['check_vs_parse'])}"
             if "check" in r else "-"] for r in result["save_load"]]
    table(f"1. save + load, alphazoo / direct (median of {result['config']['io_repeats']}; ms); "
          "text check: alphazoo's check of the model string / LightGBM's parse of it;\n"
          "   adapter only: the adapter's save and load hooks without a bundle, round trip / "
          "direct",
          ["model", "format", "KiB", "az save", "direct", "save ratio", "az load", "direct",
           "load ratio", "round-trip ratio", "adapter only", "text check / parse"], rows, out)
    rows = [[p["model"], f"{p['row_native_us']:.1f}", f"{p['row_onnx_us']:.1f}",
             x(p["row_speedup"]), f"{p['cold_native_us']:.1f}", f"{p['cold_onnx_us']:.1f}",
             x(p["cold_speedup"]), f"{p['batch_native_ms']:.2f}", f"{p['batch_onnx_ms']:.2f}",
             x(p["batch_speedup"])] for p in result["predict"]]
    first = result["predict"][0]
    table(f"2. predict_proba, native LGBMClassifier vs alphazoo ONNX predictor; speed-up = "
          f"native / onnx\n   one row hot: median us of {first['row_repeats']}; one row after "
          f"{PAUSE * 1e3:g} ms idle: median us of {first['cold_repeats']}; {BATCH_ROWS:,} rows: "
          f"median ms of {first['batch_repeats']}",
          ["model", "row native", "row onnx", "speed-up", "idle native", "idle onnx",
           "speed-up", "batch native ms", "batch onnx ms", "speed-up"], rows, out)
    info = result["environment"]
    print(f"\ntotal benchmark time {result['seconds']:.0f} s; load average (1/5/15 min) at "
          f"start {info['loadavg_start']}, at end {info.get('loadavg_end')}", file=out)


def build(kind: str, trees: int, leaves: int, X: np.ndarray, y: np.ndarray, zoo: Any) -> Any:
    import lightgbm

    if kind == "classifier":
        return zoo.train(zoo.build("lightgbm_classifier", n_estimators=trees,
                                   num_leaves=leaves), X, y)
    booster = lightgbm.train({"objective": "binary", "num_leaves": leaves, "num_threads": 1,
                              "verbose": -1, "seed": 0}, lightgbm.Dataset(X, label=y),
                             trees - 1)
    # The last round through Zoo.train, so that Zoo.save has training rows for the parity check.
    return zoo.train(booster, X, y, num_boost_round=1)


def main(argv: list[str] | None = None) -> int:
    args = benchmark_parser(__doc__).parse_args(argv)
    out = sys.stderr if args.json == "-" else sys.stdout
    cfg = QUICK if args.quick else FULL
    started = time.perf_counter()
    missing = [m for m in ("lightgbm", "sklearn", "onnxmltools", "onnxruntime")
               if importlib.util.find_spec(m) is None]
    if missing:
        sys.exit(f"bench_lightgbm: install alphazoo[lightgbm,onnx] first (missing: {missing})")

    import alphazoo

    dates, close = load_bars(args.data)
    X, y = make_features(close)
    split = int(len(X) * 0.75)
    X_train, y_train, X_test = X[:split], y[:split], X[split:]
    global SAMPLE
    SAMPLE = X_train[:256]
    result: dict[str, Any] = {
        "quick": args.quick, "config": cfg,
        "environment": environment(versions(*REPORTED), git_revision()),
        "data": {"file": str(args.data), "rows": len(close), "first": dates[0],
                 "last": dates[-1], "train_rows": len(X_train), "test_rows": len(X_test)},
        "models": [], "save_load": [], "predict": [],
    }
    with tempfile.TemporaryDirectory(prefix="alphazoo-bench-") as tmp:
        workdir = Path(tmp)
        (workdir / "direct").mkdir()
        zoo = alphazoo.Zoo(alphazoo.ObjectStore(workdir / "store"))
        for name, kind, trees, leaves in MODELS:
            model = build(kind, trees, leaves, X_train, y_train, zoo)
            zoo.save(model, f"bench/{name}-check", format="onnx")
            predictor = zoo.load(f"bench/{name}-check")
            if kind == "classifier":
                native = model.predict_proba(X_test)
            else:
                p = model.predict(X_test)
                native = np.column_stack([1 - p, p])
            label = "LGBMClassifier" if kind == "classifier" else "Booster"
            diff = float(np.abs(predictor.predict_proba(X_test) - native).max())
            result["models"].append({"model": name, "onnx_max_abs_diff": diff,
                                     "description": f"{label}, {trees} trees of {leaves} leaves"})
            for fmt in FORMATS:
                print(f"  measuring save/load {name} {fmt}...", file=sys.stderr, flush=True)
                result["save_load"].append(bench_save_load(zoo, name, model, fmt,
                                                           workdir / "direct", cfg))
            if kind == "classifier":
                print(f"  measuring predictions {name}...", file=sys.stderr, flush=True)
                result["predict"].append(bench_predict(name, model, predictor, X_test, cfg))
    result["seconds"] = time.perf_counter() - started
    result["environment"]["loadavg_end"] = loadavg()
    report(result, out)
    if args.json:
        write_json(result, args.json, out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
