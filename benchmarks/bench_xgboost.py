"""Benchmark: alphazoo's xgboost path against xgboost's, pickle's and onnxruntime's own calls.

    python benchmarks/bench_xgboost.py            # full run (about a minute on 2 cores)
    python benchmarks/bench_xgboost.py --quick    # fewer repetitions, a smoke test
    python benchmarks/bench_xgboost.py --json     # tables on stderr, JSON on stdout
    python benchmarks/bench_xgboost.py --json out.json

Every figure is a ratio against a baseline measured in the same run, on the same machine, on
the same fitted model (absolute times are printed alongside for context only):

1. save / load: ``zoo.save`` + ``zoo.load`` (local ObjectStore in a temp folder) versus the
   library's own calls writing and reading a file in the same temp folder, per format: json
   and ubj (``save_model`` / ``load_model`` into a new estimator with the model's ``n_jobs``,
   or ``Booster(model_file=)``),
   pickle (``pickle.dumps`` / ``pickle.loads`` of the file's bytes), onnx
   (``onnxmltools.convert_xgboost`` / ``onnxruntime.InferenceSession``). Target from the
   issue tracker: round-trip ratio <= 1.15. Alongside: the host's bundle write and read timed
   alone, and the adapter's own save/load hooks on a plain folder (no bundle) against the
   direct calls, which separates what the xgboost adapter adds from the host's fixed costs
   (checksums, fsync, the store's limit check).
2. sizes and throughput: the JSON and UBJ payloads against the trees' raw arrays (every
   number of the tree arrays as 4 bytes, flags as 1), and MB/s of xgboost's own JSON and UBJ
   writers and readers.
3. prediction: the loaded ONNX predictor versus the native XGBClassifier, ``predict_proba`` on
   one row (hot, back-to-back calls; and after 5 ms idle, as in a loop that predicts once per
   bar) and on a 10,000-row batch (medians; speed-up = native / onnx).

Data: real NVDA daily bars (``../shared/data/nvda-1999-2014.csv`` relative to the repository
root), the six price features and next-day-up label of ``bench_sklearn.py``.
"""

from __future__ import annotations

import gc
import importlib.util
import json
import os
import pickle
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

# benchmarks/ is sys.path[0] when run as a script: the data, timing and table helpers are
# bench_sklearn's, so that both scripts measure the same way.
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
    manifest_fields,
    med,
    ms,
    print_header,
    ratio,
    save_load_summary,
    table,
    time_once,
    timed_sides,
    versions,
    x,
)

from alphazoo.adapters import xgboost as xgb_adapter
from alphazoo.contracts import LoadRequest, SaveRequest

FORMATS = ("json", "ubj", "pickle", "onnx")
TARGET_RATIO = 1.15
BATCH_ROWS = 10_000
SAMPLE_ROWS = 256  # rows Zoo.train records and Zoo.save uses for the ONNX parity check
#: (name, kind, trees, depth): the zoo's default classifier, a larger one, a bare Booster.
MODELS = (("clf_100x4", "classifier", 100, 4), ("clf_300x6", "classifier", 300, 6),
          ("booster_100x4", "booster", 100, 4))
#: Tree arrays stored one byte per entry; every other number counts as 4 (float32 / int32).
BYTE_ARRAYS = frozenset({"default_left", "split_type"})

FULL = {"io_repeats": 7, "io_warmup": 2, "row_repeats": 2000, "row_warmup": 200,
        "cold_repeats": 200, "batch_repeats": 15, "batch_warmup": 2, "part_repeats": 7}
QUICK = {"io_repeats": 3, "io_warmup": 1, "row_repeats": 300, "row_warmup": 30,
         "cold_repeats": 40, "batch_repeats": 5, "batch_warmup": 1, "part_repeats": 3}


# -- 1. save / load ------------------------------------------------------------------------------
def direct_calls(model: Any, fmt: str, path: Path) -> tuple[Any, Any]:
    """The libraries' own save and load calls for ``fmt``, writing/reading ``path``."""
    import xgboost

    booster_only = isinstance(model, xgboost.Booster)
    if fmt in ("json", "ubj"):
        def save() -> None:
            model.save_model(str(path))

        def load() -> Any:
            if booster_only:
                return xgboost.Booster(model_file=str(path))
            # The same thread count as alphazoo's loader (which restores get_params()):
            # load_model's speed depends on it.
            loaded = type(model)(n_jobs=model.n_jobs)
            loaded.load_model(str(path))
            return loaded
    elif fmt == "pickle":
        def save() -> None:
            path.write_bytes(pickle.dumps(model, protocol=5))

        def load() -> Any:
            return pickle.loads(path.read_bytes())
    else:
        import onnxruntime
        from onnxmltools import convert_xgboost
        from onnxmltools.convert.common.data_types import FloatTensorType

        booster = model if booster_only else model.get_booster()
        n_features = booster.num_features()

        def save() -> None:
            onx = convert_xgboost(booster, initial_types=[
                ("input", FloatTensorType([None, n_features]))], target_opset=15)
            path.write_bytes(onx.SerializeToString())

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

    # The adapter's own hooks on a plain folder, without the bundle (hashing, fsync, limits):
    # what the xgboost adapter adds on top of the library, apart from the host's guarantees.
    az_save()
    manifest = zoo.inspect(key)
    hook_dir = workdir / f"hooks-{name}-{fmt}"
    hook_dir.mkdir(exist_ok=True)
    files = {f["name"]: hook_dir / f["name"] for f in manifest["files"]}

    def hook_save() -> None:
        xgb_adapter.alphazoo_save(SaveRequest(model, fmt, hook_dir, sample))

    def hook_load() -> Any:
        return xgb_adapter.alphazoo_load(LoadRequest(manifest, files, trusted))

    rows = timed_sides({"az": (az_save, az_load), "hook": (hook_save, hook_load),
                        "direct": (d_save, d_load)}, cfg["io_repeats"], cfg["io_warmup"])
    out: dict[str, Any] = save_load_summary(rows)
    out.update(model=name, format=fmt, bundle_bytes=zoo.store.size(key),
               payload_bytes=path.stat().st_size)
    out.update(bundle_costs(zoo, name, fmt, path, workdir, cfg))
    if fmt == "onnx":
        # zoo.save = export + parity check (+ bundle); the direct path has no parity check.
        parity = zoo.inspect(key)["adapter_data"]["parity"]
        out["parity_rows"] = parity["rows"]
        out["parity_check"] = parity_cost(model, path, sample, cfg)
        out["roundtrip_ratio_ex_parity"] = ratio(out["az_roundtrip"] - out["parity_check"],
                                                 out["direct_roundtrip"])
        out["hook_roundtrip_ratio_ex_parity"] = ratio(
            out["hook_roundtrip"] - out["parity_check"], out["direct_roundtrip"])
    return out


def bundle_costs(zoo: Any, name: str, fmt: str, path: Path, workdir: Path,
                 cfg: dict[str, int]) -> dict[str, float]:
    """Time, in isolation, writing and reading the bundle around the payload file."""
    from alphazoo.bundle import read_bundle, write_bundle

    key = f"bench/bundle-{name}-{fmt}"
    fields = manifest_fields(zoo, f"bench/{name}-{fmt}", key)
    extract = workdir / "extract"
    extract.mkdir(exist_ok=True)
    parts: dict[str, list[float]] = {"bundle_write": [], "bundle_read": []}
    for i in range(cfg["part_repeats"] + 1):  # the first round is a warm-up
        gc.collect()
        write = time_once(lambda: write_bundle(zoo.store, key, fields, path.parent,
                                               [path.name]))
        read = time_once(lambda: read_bundle(zoo.store, key, extract))
        if i:
            parts["bundle_write"].append(write)
            parts["bundle_read"].append(read)
    zoo.store.delete(key)
    return {k: med(v) for k, v in parts.items()}


def parity_cost(model: Any, path: Path, sample: np.ndarray, cfg: dict[str, int]) -> float:
    """Seconds of the save-time parity check: a session on the export, the training rows
    that Zoo.train recorded compared with the native model."""
    import xgboost

    from alphazoo.adapters._onnx import OnnxPredictor, check_parity

    if isinstance(model, xgboost.Booster):
        def proba(X: np.ndarray) -> np.ndarray:  # as the adapter's parity check does
            p = model.inplace_predict(X)
            return np.column_stack([1 - p, p])

        def predict(X: np.ndarray) -> np.ndarray:
            return (model.inplace_predict(X) > 0.5).astype(np.int64)
    else:
        predict, proba = model.predict, model.predict_proba
    outputs = {"label": "label", "probabilities": "probabilities"}

    def parity() -> None:
        predictor = OnnxPredictor(str(path), task="classification", outputs=outputs,
                                  classes=[0, 1])
        check_parity(predict, proba, predictor, sample, 1e-4)

    parity()
    return med([time_once(parity) for _ in range(cfg["part_repeats"])])


# -- 2. sizes ------------------------------------------------------------------------------------
def raw_tree_bytes(model: Any) -> int:
    """Bytes of the trees' arrays held as float32/int32 (flags as uint8): the floor a
    binary layout of the same numbers would need."""
    import xgboost

    booster = model if isinstance(model, xgboost.Booster) else model.get_booster()
    trees = json.loads(booster.save_raw("json"))["learner"]["gradient_booster"]["model"]["trees"]
    total = 0
    for tree in trees:
        for field, values in tree.items():
            if isinstance(values, list) and values and isinstance(values[0], (int, float)):
                total += len(values) * (1 if field in BYTE_ARRAYS else 4)
    return total


def bench_sizes(name: str, model: Any, save_load: list[dict[str, Any]],
                cfg: dict[str, int]) -> dict[str, Any]:
    import xgboost

    booster = model if isinstance(model, xgboost.Booster) else model.get_booster()
    raw = raw_tree_bytes(model)
    out: dict[str, Any] = {"model": name, "raw_tree_bytes": raw}
    for fmt in ("json", "ubj"):
        data = booster.save_raw(fmt)
        encode = med([time_once(lambda f=fmt: booster.save_raw(f))
                      for _ in range(cfg["part_repeats"])])
        decode = med([time_once(lambda d=data: xgboost.Booster(model_file=bytearray(d)))
                      for _ in range(cfg["part_repeats"])])
        row = next(r for r in save_load if r["model"] == name and r["format"] == fmt)
        out[f"{fmt}_bytes"] = row["payload_bytes"]
        out[f"{fmt}_bundle_bytes"] = row["bundle_bytes"]
        out[f"{fmt}_vs_raw"] = ratio(row["payload_bytes"], raw)
        out[f"{fmt}_encode_mb_s"] = len(data) / encode / 1e6
        out[f"{fmt}_decode_mb_s"] = len(data) / decode / 1e6
    out["json_vs_ubj"] = ratio(out["json_bytes"], out["ubj_bytes"])
    return out


# -- 3. prediction -------------------------------------------------------------------------------
def bench_predict(name: str, model: Any, predictor: Any, X_rows: np.ndarray,
                  cfg: dict[str, int]) -> dict[str, Any]:
    rows = [X_rows[i:i + 1] for i in range(len(X_rows))]  # (1, n) float64, as a user holds it
    reps, warm = cfg["row_repeats"], cfg["row_warmup"]
    fns = [model.predict_proba, predictor.predict_proba]
    native_row, onnx_row = blocked(fns, [rows, rows], reps, warm)
    native_cold, onnx_cold = after_pause(fns, [rows, rows], cfg["cold_repeats"], PAUSE)
    batch = X_rows[np.arange(BATCH_ROWS) % len(X_rows)]  # the real rows, repeated
    native_batch, onnx_batch = blocked(fns, [[batch], [batch]], cfg["batch_repeats"],
                                       cfg["batch_warmup"], block=1)
    out = {
        "model": name, "row_repeats": reps, "cold_repeats": cfg["cold_repeats"],
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
    print_header(result, "xgboost", out)
    print(f"  data: {data['file']} ({data['rows']} rows, {data['first']}..{data['last']}); "
          f"train {data['train_rows']}, test {data['test_rows']}; features {', '.join(FEATURES)}",
          file=out)
    for m in result["models"]:
        accuracy = f"test accuracy {m['test_accuracy']:.3f}, " if "test_accuracy" in m else ""
        print(f"  {m['model']}: {m['description']}; {accuracy}ONNX vs native max |proba diff| "
              f"on test rows {m['onnx_max_abs_diff']:.2g}", file=out)

    rows = []
    for r in result["save_load"]:
        rt, hook = x(r["roundtrip_ratio"]), x(r["hook_roundtrip_ratio"])
        if r["format"] == "onnx":
            rt += f" ({x(r['roundtrip_ratio_ex_parity'])})"
            hook += f" ({x(r['hook_roundtrip_ratio_ex_parity'])})"
        rows.append([
            r["model"], r["format"], ms(r["az_save"]), ms(r["direct_save"]), x(r["save_ratio"]),
            ms(r["az_load"]), ms(r["direct_load"]), x(r["load_ratio"]), rt,
            "yes" if r["roundtrip_ratio"] <= TARGET_RATIO else "NO",
            ms(r["bundle_write"]), ms(r["bundle_read"]), hook,
        ])
    table(f"1. save + load, alphazoo / direct (median of {result['config']['io_repeats']}; ms; "
          "onnx ratios in parentheses exclude the save-time parity check)\n"
          "   bundle write / read: the host's part, timed alone; adapter only: the xgboost "
          "adapter's save and load hooks without a bundle, round trip / direct",
          ["model", "format", "az save", "direct", "save ratio", "az load", "direct",
           "load ratio", "round-trip ratio", f"<= {TARGET_RATIO}", "bundle write",
           "bundle read", "adapter only"], rows, out)

    rows = [[s["model"], f"{s['raw_tree_bytes'] / 1024:.0f}",
             f"{s['json_bytes'] / 1024:.0f}", x(s["json_vs_raw"]),
             f"{s['ubj_bytes'] / 1024:.0f}", x(s["ubj_vs_raw"]), x(s["json_vs_ubj"]),
             f"{s['json_encode_mb_s']:.0f} / {s['json_decode_mb_s']:.0f}",
             f"{s['ubj_encode_mb_s']:.0f} / {s['ubj_decode_mb_s']:.0f}"]
            for s in result["sizes"]]
    table("2. payload sizes (KiB) against the raw tree arrays, and xgboost's own encode / decode "
          "throughput (MB/s, save_raw / Booster(model_file=bytes))",
          ["model", "raw trees", "json", "json/raw", "ubj", "ubj/raw", "json/ubj",
           "json MB/s enc/dec", "ubj MB/s enc/dec"], rows, out)

    rows = [[p["model"], f"{p['row_native_us']:.1f}", f"{p['row_onnx_us']:.1f}",
             x(p["row_speedup"]), f"{p['cold_native_us']:.1f}", f"{p['cold_onnx_us']:.1f}",
             x(p["cold_speedup"]), f"{p['batch_native_ms']:.2f}", f"{p['batch_onnx_ms']:.2f}",
             x(p["batch_speedup"])] for p in result["predict"]]
    first = result["predict"][0]
    table(f"3. predict_proba, native XGBClassifier vs alphazoo ONNX predictor; speed-up = native / "
          f"onnx\n   one row hot: median us of {first['row_repeats']} back-to-back calls; one row "
          f"after {PAUSE * 1e3:g} ms idle: median us of {first['cold_repeats']}; "
          f"{BATCH_ROWS:,} rows: median ms of {first['batch_repeats']}",
          ["model", "row native", "row onnx", "speed-up", "idle native", "idle onnx",
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



# -- main ----------------------------------------------------------------------------------------
def build(kind: str, trees: int, depth: int, X: np.ndarray, y: np.ndarray, zoo: Any) -> Any:
    import xgboost

    if kind == "classifier":
        return zoo.train(zoo.build("xgboost_classifier", n_estimators=trees, max_depth=depth),
                         X, y)
    booster = xgboost.train({"objective": "binary:logistic", "max_depth": depth, "eta": 0.1,
                             "nthread": 1, "seed": 0}, xgboost.DMatrix(X, label=y), trees - 1)
    # The last round through Zoo.train, so that Zoo.save has training rows for the parity check.
    return zoo.train(booster, X, y, num_boost_round=1)


#: The distributions whose versions head the report.
REPORTED = ("alphazoo", "xgboost", "scikit-learn", "onnxmltools", "onnx", "onnxruntime", "numpy")


def main(argv: list[str] | None = None) -> int:
    parser = benchmark_parser(__doc__)
    args = parser.parse_args(argv)
    out = sys.stderr if args.json == "-" else sys.stdout
    cfg = QUICK if args.quick else FULL
    started = time.perf_counter()

    dates, close = load_bars(args.data)
    X, y = make_features(close)
    split = int(len(X) * 0.75)
    X_train, y_train, X_test, y_test = X[:split], y[:split], X[split:], y[split:]

    missing = [m for m in ("xgboost", "sklearn", "onnxmltools", "onnxruntime")
               if importlib.util.find_spec(m) is None]
    if missing:
        sys.exit(f"bench_xgboost: install alphazoo[xgboost,sklearn,onnx] first (missing: "
                 f"{missing})")

    import alphazoo

    result: dict[str, Any] = {
        "quick": args.quick,
        "config": cfg,
        "target_ratio": TARGET_RATIO,
        "environment": environment(versions(*REPORTED), git_revision()),
        "data": {"file": str(args.data), "rows": len(close), "first": dates[0],
                 "last": dates[-1], "features": list(FEATURES), "train_rows": len(X_train),
                 "test_rows": len(X_test)},
        "models": [], "save_load": [], "sizes": [], "predict": [],
    }

    with tempfile.TemporaryDirectory(prefix="alphazoo-bench-") as tmp:
        workdir = Path(tmp)
        (workdir / "direct").mkdir()
        zoo = alphazoo.Zoo(alphazoo.ObjectStore(workdir / "store"))
        for name, kind, trees, depth in MODELS:
            model = build(kind, trees, depth, X_train, y_train, zoo)
            zoo.save(model, f"bench/{name}-check", format="onnx")
            predictor = zoo.load(f"bench/{name}-check")
            if kind == "classifier":
                native = model.predict_proba(X_test)
                facts = {"test_accuracy": float(model.score(X_test, y_test))}
            else:
                import xgboost

                p = model.predict(xgboost.DMatrix(X_test))
                native, facts = np.column_stack([1 - p, p]), {}
            diff = float(np.abs(predictor.predict_proba(X_test) - native).max())
            description = (f"{'XGBClassifier' if kind == 'classifier' else 'Booster'}, "
                           f"{trees} trees of depth {depth}")
            result["models"].append({"model": name, "description": description,
                                     "onnx_max_abs_diff": diff, **facts})
            for fmt in FORMATS:
                print(f"  measuring save/load {name} {fmt}...", file=sys.stderr, flush=True)
                result["save_load"].append(bench_save_load(
                    zoo, name, model, fmt, workdir / "direct", X_train[:SAMPLE_ROWS], cfg))
            result["sizes"].append(bench_sizes(name, model, result["save_load"], cfg))
            if kind == "classifier":
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
