"""Benchmark: alphazoo's torch path against torch's and onnxruntime's own calls.

    python benchmarks/bench_torch.py            # full run (about 2 minutes on 2 cores)
    python benchmarks/bench_torch.py --quick    # fewer repetitions, a smoke test
    python benchmarks/bench_torch.py --json     # tables on stderr, JSON on stdout
    python benchmarks/bench_torch.py --json out.json

Every figure is a ratio against a baseline measured in the same run, on the same machine, on
the same trained module (absolute times are printed alongside for context only):

1. save / load of a ~2.7 MB MLP (``torch_mlp``, hidden 1024-512-256): ``zoo.save`` +
   ``zoo.load`` (local ObjectStore in a temp folder) versus torch's own calls writing and
   reading a file in the same temp folder:
   pt (``torch.save(state_dict)``; load = build the module, ``torch.load(weights_only=True)``,
   ``load_state_dict``), pickle (``torch.save(module)`` / ``torch.load(weights_only=False)``),
   onnx (``torch.onnx.export`` of the bare module / ``onnxruntime.InferenceSession``). json has
   no torch equivalent: its row is compared with the direct pt calls. Target from the issue
   tracker: round-trip ratio <= 1.15.
2. JSON weights: encode (state_dict -> document on disk) and decode (document -> state_dict)
   throughput in MB/s of raw tensor bytes, and file sizes against those raw bytes.
3. prediction: the loaded ONNX predictor versus the native module through the adapter
   (numpy in, numpy out, ``torch.no_grad``), ``predict_proba`` on one row (hot; and after
   5 ms idle, as in a loop that predicts once per bar) and on 10,000 rows, for the MLP and a
   ``torch_lstm`` over 20-day windows (medians; speed-up = native / onnx).

Data: real NVDA daily bars (``../shared/data/nvda-1999-2014.csv`` relative to the repository
root), the six price features and next-day-up label of ``bench_sklearn.py``.
"""

from __future__ import annotations

import gc
import importlib.util
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

# benchmarks/ is sys.path[0] when run as a script: the data, timing and table helpers are
# bench_sklearn's, so that the scripts measure the same way.
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
    paired_save_load,
    print_header,
    ratio,
    save_load_summary,
    table,
    time_once,
    versions,
    x,
)

FORMATS = ("pt", "pickle", "json", "onnx")
TARGET_RATIO = 1.15
BATCH_ROWS = 10_000
WINDOW = 20  # days per LSTM input window
SAMPLE_ROWS = 256  # rows Zoo.train records and Zoo.save uses for the ONNX parity check
MLP_PARAMS = {"in_features": len(FEATURES), "out_features": 2, "hidden": (1024, 512, 256)}
LSTM_PARAMS = {"in_features": len(FEATURES), "out_features": 2, "hidden": 32}

FULL = {"io_repeats": 9, "io_warmup": 2, "onnx_repeats": 3, "codec_repeats": 9,
        "row_repeats": 1000, "row_warmup": 100, "cold_repeats": 100, "batch_repeats": 9,
        "batch_warmup": 2}
QUICK = {"io_repeats": 3, "io_warmup": 1, "onnx_repeats": 1, "codec_repeats": 3,
         "row_repeats": 300, "row_warmup": 30, "cold_repeats": 40, "batch_repeats": 5,
         "batch_warmup": 1}


# -- 1. save / load ------------------------------------------------------------------------------
def direct_calls(model: Any, fmt: str, path: Path, example: Any) -> tuple[Any, Any]:
    """torch's own save and load calls for ``fmt`` (json: pt's), writing/reading ``path``."""
    import torch

    from alphazoo.adapters import torch as adapter

    if fmt in ("pt", "json"):
        def save() -> None:
            torch.save(model.state_dict(), path)

        def load() -> Any:
            module = adapter.torch_mlp(**MLP_PARAMS)  # the architecture, as alphazoo builds it
            module.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
            return module.eval()
    elif fmt == "pickle":
        def save() -> None:
            torch.save(model, path)

        def load() -> Any:
            return torch.load(path, map_location="cpu", weights_only=False)
    else:
        import onnxruntime

        from alphazoo.adapters._torch_onnx import quiet_exporter

        shapes = ({0: torch.export.Dim("batch")},)

        def save() -> None:
            with quiet_exporter():  # the same silence alphazoo's export runs in
                torch.onnx.export(model, (example,), str(path), dynamo=True,
                                  external_data=False, input_names=["input"],
                                  dynamic_shapes=shapes, verbose=False)

        def load() -> Any:
            return onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return save, load


def bench_save_load(zoo: Any, model: Any, fmt: str, workdir: Path, example: Any,
                    sample: np.ndarray, cfg: dict[str, int]) -> dict[str, Any]:
    key = f"bench/mlp-{fmt}"
    trusted = fmt == "pickle"
    path = workdir / f"mlp.{fmt}"
    d_save, d_load = direct_calls(model, fmt, path, example)

    def az_save() -> None:
        zoo.save(model, key, format=fmt)

    def az_load() -> Any:
        return zoo.load(key, trusted=trusted)

    repeats = cfg["onnx_repeats"] if fmt == "onnx" else cfg["io_repeats"]
    rows = paired_save_load((az_save, az_load), (d_save, d_load), repeats,
                            1 if fmt == "onnx" else cfg["io_warmup"])
    out: dict[str, Any] = save_load_summary(rows)
    out.update(format=fmt, repeats=repeats, bundle_bytes=zoo.store.size(key),
               payload_bytes=path.stat().st_size)
    out.update(bundle_costs(zoo, fmt, path, workdir, cfg))
    if fmt != "onnx":  # an ONNX save is the export's time, whoever calls it
        out.update(adapter_only(zoo, model, fmt, workdir, d_save, d_load, cfg))
    if fmt == "onnx":
        # zoo.save = export + parity check (+ bundle); the direct path has no parity check.
        out["parity_check"] = parity_cost(zoo, model, key, sample, cfg)
        out["roundtrip_ratio_ex_parity"] = ratio(out["az_roundtrip"] - out["parity_check"],
                                                 out["direct_roundtrip"])
    return out


def bundle_costs(zoo: Any, fmt: str, path: Path, workdir: Path,
                 cfg: dict[str, int]) -> dict[str, float]:
    """Time, in isolation, the host writing and reading a bundle around the payload file
    (checksums, fsync, the copy out of the store): costs of every adapter, not torch's."""
    from alphazoo.bundle import read_bundle, write_bundle

    key = f"bench/bundle-{fmt}"
    fields = manifest_fields(zoo, f"bench/mlp-{fmt}", key)
    extract = workdir / "extract"
    extract.mkdir(exist_ok=True)
    writes, reads = [], []
    for i in range(cfg["codec_repeats"] + 1):  # the first round is a warm-up
        gc.collect()
        write = time_once(lambda: write_bundle(zoo.store, key, fields, path.parent,
                                               [path.name]))
        gc.collect()
        read = time_once(lambda: read_bundle(zoo.store, key, extract))
        if i:
            writes.append(write)
            reads.append(read)
    zoo.store.delete(key)
    return {"bundle_write": med(writes), "bundle_read": med(reads)}


def adapter_only(zoo: Any, model: Any, fmt: str, workdir: Path, d_save: Any, d_load: Any,
                 cfg: dict[str, int]) -> dict[str, float]:
    """The adapter's save and load hooks alone (no bundle, no store) against the direct calls:
    what the torch adapter adds, free of the host's checksum, fsync and copy costs."""
    from alphazoo.contracts import LoadRequest, SaveRequest

    folder = workdir / f"adapter-{fmt}"
    folder.mkdir(exist_ok=True)
    request = SaveRequest(model, fmt, folder, zoo_model="torch_mlp",
                          params={**MLP_PARAMS, "hidden": list(MLP_PARAMS["hidden"])})
    payload = zoo.hook.alphazoo_save(request=request)
    manifest = {"adapter": payload.adapter, "format": payload.format,
                "model_class": payload.model_class, "adapter_data": payload.adapter_data}
    files = {name: folder / name for name in payload.files}

    def save() -> None:
        zoo.hook.alphazoo_save(request=request)

    def load() -> Any:
        return zoo.hook.alphazoo_load(request=LoadRequest(
            manifest, files, trusted=fmt == "pickle",
            build=lambda name, params: zoo.build(name, **params)))

    rows: dict[str, list[float]] = {"save": [], "load": [], "d_save": [], "d_load": []}
    for i in range(cfg["io_repeats"] + 1):  # the first round is a warm-up
        got = {}
        for name, call in (("save", save), ("load", load), ("d_save", d_save),
                           ("d_load", d_load)):
            gc.collect()
            got[name] = time_once(call)
        if i:
            for name, value in got.items():
                rows[name].append(value)
    adapter_rt = med([s + lo for s, lo in zip(rows["save"], rows["load"])])
    direct_rt = med([s + lo for s, lo in zip(rows["d_save"], rows["d_load"])])
    return {"adapter_save": med(rows["save"]), "adapter_load": med(rows["load"]),
            "adapter_roundtrip_ratio": ratio(adapter_rt, direct_rt)}


def parity_cost(zoo: Any, model: Any, key: str, sample: np.ndarray,
                cfg: dict[str, int]) -> float:
    """Seconds of the save-time parity check on the rows Zoo.train kept (session included)."""
    from alphazoo.adapters import torch as adapter
    from alphazoo.adapters._onnx import OnnxPredictor, check_parity
    from alphazoo.bundle import read_bundle

    manifest = zoo.inspect(key)["adapter_data"]
    with tempfile.TemporaryDirectory() as tmp:
        path = read_bundle(zoo.store, key, Path(tmp)).files["model.onnx"]
        times = []
        for _ in range(cfg["codec_repeats"]):
            def check() -> None:
                predictor = OnnxPredictor(str(path), task="classification",
                                          outputs=manifest["outputs"],
                                          classes=manifest["classes"])
                check_parity(lambda X: adapter.predict(model, X),
                             lambda X: adapter.predict_proba(model, X), predictor, sample, 1e-4)
            times.append(time_once(check))
    return med(times)


# -- 2. JSON weights -----------------------------------------------------------------------------
def bench_codec(model: Any, workdir: Path, cfg: dict[str, int]) -> dict[str, Any]:
    import torch

    from alphazoo.adapters._torch_state import state_to_tensors, tensors_to_state
    from alphazoo.adapters._weights import read_weights, write_weights

    state = model.state_dict()
    raw = sum(t.numel() * t.element_size() for t in state.values())
    path, pt_path = workdir / "weights.json", workdir / "state_dict.pt"
    encode, decode, pt_save, pt_load = [], [], [], []
    for _ in range(cfg["codec_repeats"]):
        gc.collect()
        encode.append(time_once(lambda: write_weights(path, state_to_tensors(state))))
        gc.collect()
        decode.append(time_once(lambda: tensors_to_state(read_weights(path)[0])))
        gc.collect()
        pt_save.append(time_once(lambda: torch.save(state, pt_path)))
        gc.collect()
        pt_load.append(time_once(lambda: torch.load(pt_path, weights_only=True)))
    decoded = tensors_to_state(read_weights(path)[0])
    exact = all(torch.equal(decoded[k].view(torch.uint8), v.contiguous().view(torch.uint8))
                for k, v in state.items() if v.ndim)
    mb = raw / 1e6
    return {
        "tensors": len(state), "raw_bytes": raw, "json_bytes": path.stat().st_size,
        "pt_bytes": pt_path.stat().st_size, "bit_exact": exact,
        "encode_s": med(encode), "decode_s": med(decode),
        "encode_mb_s": mb / med(encode), "decode_mb_s": mb / med(decode),
        "pt_save_mb_s": mb / med(pt_save), "pt_load_mb_s": mb / med(pt_load),
    }


# -- 3. prediction -------------------------------------------------------------------------------
def bench_predict(name: str, model: Any, predictor: Any, rows: np.ndarray,
                  cfg: dict[str, int]) -> dict[str, Any]:
    from alphazoo.adapters import torch as adapter

    def native(X: np.ndarray) -> Any:
        return adapter.predict_proba(model, X)

    singles = [rows[i:i + 1] for i in range(len(rows))]  # float64, as a user holds them
    reps, warm = cfg["row_repeats"], cfg["row_warmup"]
    native_row, onnx_row = blocked([native, predictor.predict_proba], [singles, singles],
                                   reps, warm)
    native_cold, onnx_cold = after_pause([native, predictor.predict_proba], [singles, singles],
                                         cfg["cold_repeats"], PAUSE)
    batch = rows[np.arange(BATCH_ROWS) % len(rows)]  # the real rows, repeated
    native_batch, onnx_batch = blocked([native, predictor.predict_proba], [[batch], [batch]],
                                       cfg["batch_repeats"], cfg["batch_warmup"], block=1)
    out = {
        "model": name, "input": list(rows.shape[1:]),
        "row_native_us": med(native_row) * 1e6, "row_onnx_us": med(onnx_row) * 1e6,
        "cold_native_us": med(native_cold) * 1e6, "cold_onnx_us": med(onnx_cold) * 1e6,
        "batch_native_ms": med(native_batch) * 1e3, "batch_onnx_ms": med(onnx_batch) * 1e3,
        "max_abs_diff": float(np.abs(native(batch[:2000]) - predictor.predict_proba(
            batch[:2000])).max()),
    }
    out["row_speedup"] = ratio(out["row_native_us"], out["row_onnx_us"])
    out["cold_speedup"] = ratio(out["cold_native_us"], out["cold_onnx_us"])
    out["batch_speedup"] = ratio(out["batch_native_ms"], out["batch_onnx_ms"])
    return out


# -- output --------------------------------------------------------------------------------------
def report(result: dict[str, Any], out: Any) -> None:
    info, data = result["environment"], result["data"]
    print_header(result, "torch", out, details=f"; torch threads {info['torch_threads']}")
    print(f"  data: {data['file']} ({data['rows']} rows, {data['first']}..{data['last']}); "
          f"train {data['train_rows']}, test {data['test_rows']}; features {', '.join(FEATURES)}",
          file=out)
    for m in result["models"]:
        print(f"  {m['model']}: {m['parameters']:,} parameters, test accuracy "
              f"{m['test_accuracy']:.3f}", file=out)

    rows = []
    for r in result["save_load"]:
        rt, save = x(r["roundtrip_ratio"]), x(r["save_ratio"])
        if r["format"] == "onnx":
            rt += f" ({x(r['roundtrip_ratio_ex_parity'])})"
        meets = "yes" if r["roundtrip_ratio"] <= TARGET_RATIO else "NO"
        rows.append([
            r["format"], "pt" if r["format"] == "json" else r["format"], ms(r["az_save"]),
            ms(r["direct_save"]), save, ms(r["az_load"]), ms(r["direct_load"]),
            x(r["load_ratio"]), rt, "-" if r["format"] == "json" else meets,
            ms(r["bundle_write"]), ms(r["bundle_read"]),
            x(r["adapter_roundtrip_ratio"]) if "adapter_roundtrip_ratio" in r else "-",
            f"{r['payload_bytes'] / 1e6:.2f}",
        ])
    table("1. save + load of the MLP, alphazoo / torch's own calls (median ms; json has no "
          "torch equivalent and is compared with direct pt; onnx: ratio without the parity "
          "check in parentheses)\n   bundle write/read: the host's part (checksums, fsync, "
          "copy), timed on its own; adapter-only: the adapter's save and load hooks without "
          "bundle or store, over the same direct calls",
          ["format", "direct", "az save", "direct", "save ratio", "az load", "direct",
           "load ratio", "round-trip ratio", f"<= {TARGET_RATIO}", "bundle write",
           "bundle read", "adapter-only ratio", "payload MB"], rows, out)

    c = result["codec"]
    table("2. JSON weights of the MLP state_dict (median of "
          f"{result['config']['codec_repeats']}; MB/s of raw tensor bytes)",
          ["tensors", "raw MB", "json MB", "json / raw", "pt / raw", "encode MB/s",
           "decode MB/s", "pt save MB/s", "pt load MB/s", "bit-exact"],
          [[str(c["tensors"]), f"{c['raw_bytes'] / 1e6:.2f}", f"{c['json_bytes'] / 1e6:.2f}",
            x(c["json_bytes"] / c["raw_bytes"]), x(c["pt_bytes"] / c["raw_bytes"]),
            f"{c['encode_mb_s']:.0f}", f"{c['decode_mb_s']:.0f}", f"{c['pt_save_mb_s']:.0f}",
            f"{c['pt_load_mb_s']:.0f}", "yes" if c["bit_exact"] else "NO"]], out)

    rows = [[p["model"], "x".join(str(n) for n in p["input"]), f"{p['row_native_us']:.1f}",
             f"{p['row_onnx_us']:.1f}", x(p["row_speedup"]), f"{p['cold_native_us']:.1f}",
             f"{p['cold_onnx_us']:.1f}", x(p["cold_speedup"]), f"{p['batch_native_ms']:.2f}",
             f"{p['batch_onnx_ms']:.2f}", x(p["batch_speedup"]), f"{p['max_abs_diff']:.1g}"]
            for p in result["predict"]]
    cfg = result["config"]
    table(f"3. predict_proba, native module (adapter, no_grad) vs alphazoo ONNX predictor; "
          f"speed-up = native / onnx\n   one row hot: median us of {cfg['row_repeats']}; one "
          f"row after {PAUSE * 1e3:g} ms idle: median us of {cfg['cold_repeats']}; "
          f"{BATCH_ROWS:,} rows: median ms of {cfg['batch_repeats']}",
          ["model", "input", "row native", "row onnx", "speed-up", "idle native", "idle onnx",
           "speed-up", "batch native ms", "batch onnx ms", "speed-up", "max |diff|"], rows, out)
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



def windows(X: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(rows - WINDOW + 1, WINDOW, features) windows, oldest day first; the last day's label."""
    from numpy.lib.stride_tricks import sliding_window_view

    seq = sliding_window_view(X, WINDOW, axis=0).transpose(0, 2, 1)
    return np.ascontiguousarray(seq), y[WINDOW - 1:]


#: The distributions whose versions head the report.
REPORTED = ("alphazoo", "torch", "onnx", "onnxscript", "onnxruntime", "numpy")


# -- main ----------------------------------------------------------------------------------------
def main(argv: list[str] | None = None) -> int:
    parser = benchmark_parser(__doc__)
    parser.add_argument("--torch-threads", type=int, default=None, metavar="N",
                        help="torch.set_num_threads(N) before measuring (default: torch's own "
                             "choice, one per core)")
    args = parser.parse_args(argv)
    out = sys.stderr if args.json == "-" else sys.stdout
    cfg = QUICK if args.quick else FULL
    started = time.perf_counter()

    dates, close = load_bars(args.data)
    X, y = make_features(close)
    X = (X - X.mean(axis=0)) / X.std(axis=0)  # returns and volatilities on one scale
    split = int(len(X) * 0.75)
    X_train, y_train, X_test, y_test = X[:split], y[:split], X[split:], y[split:]

    missing = [m for m in ("torch", "onnx", "onnxscript", "onnxruntime")
               if importlib.util.find_spec(m) is None]
    if missing:
        sys.exit(f"bench_torch: install alphazoo[torch,onnx] first (missing: {missing})")

    import torch

    import alphazoo

    if args.torch_threads:
        torch.set_num_threads(args.torch_threads)
    result: dict[str, Any] = {
        "quick": args.quick,
        "config": cfg,
        "target_ratio": TARGET_RATIO,
        "environment": environment(versions(*REPORTED), git_revision(),
                                   torch_threads=torch.get_num_threads()),
        "data": {"file": str(args.data), "rows": len(close), "first": dates[0],
                 "last": dates[-1], "features": list(FEATURES), "train_rows": len(X_train),
                 "test_rows": len(X_test)},
        "models": [], "save_load": [], "predict": [],
    }

    with tempfile.TemporaryDirectory(prefix="alphazoo-bench-") as tmp:
        workdir = Path(tmp)
        (workdir / "direct").mkdir()
        zoo = alphazoo.Zoo(alphazoo.ObjectStore(workdir / "store"))
        S_train, s_train = windows(X_train, y_train)
        S_test, s_test = windows(X_test, y_test)
        print("  training the MLP and the LSTM...", file=sys.stderr, flush=True)
        mlp = zoo.train(zoo.build("torch_mlp", **MLP_PARAMS), X_train, y_train, epochs=2)
        lstm = zoo.train(zoo.build("torch_lstm", **LSTM_PARAMS), S_train, s_train, epochs=2)
        for name, model, test_X, test_y in (("mlp", mlp, X_test, y_test),
                                            ("lstm", lstm, S_test, s_test)):
            accuracy = float(np.mean(zoo.predict(model, test_X) == test_y))
            result["models"].append({
                "model": name, "test_accuracy": accuracy,
                "parameters": sum(p.numel() for p in model.parameters())})

        example = torch.from_numpy(X_train[:8].astype(np.float32))
        for fmt in FORMATS:
            print(f"  measuring save/load {fmt}...", file=sys.stderr, flush=True)
            result["save_load"].append(
                bench_save_load(zoo, mlp, fmt, workdir / "direct", example,
                                X_train[:SAMPLE_ROWS], cfg))
        print("  measuring JSON weights...", file=sys.stderr, flush=True)
        result["codec"] = bench_codec(mlp, workdir, cfg)
        for name, model, test_X in (("mlp", mlp, X_test), ("lstm", lstm, S_test)):
            print(f"  measuring predictions {name}...", file=sys.stderr, flush=True)
            zoo.save(model, f"bench/{name}-predict", format="onnx")
            predictor = zoo.load(f"bench/{name}-predict")
            result["predict"].append(bench_predict(name, model, predictor, test_X, cfg))

    result["seconds"] = time.perf_counter() - started
    result["environment"]["loadavg_end"] = _loadavg()
    report(result, out)
    if args.json:
        write_json(result, args.json, out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
