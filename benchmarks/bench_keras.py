"""Benchmark: alphazoo's Keras path against Keras' own calls.

    python benchmarks/bench_keras.py            # full run (about two minutes on 2 cores)
    python benchmarks/bench_keras.py --quick    # fewer repetitions, a smoke test
    python benchmarks/bench_keras.py --json     # tables on stderr, JSON on stdout
    python benchmarks/bench_keras.py --json out.json

Every figure is a ratio against a baseline measured in the same run, on the same machine, on
the same fitted model (absolute times are printed alongside for context only):

1. save / load: ``zoo.save`` + ``zoo.load`` (local ObjectStore in a temp folder) versus Keras'
   own calls writing and reading a file in the same temp folder, per format: ``model.save`` /
   ``keras.saving.load_model(safe_mode=True)`` (keras); ``model.to_json`` + ``get_weights``
   encoded as the same base64 JSON document / ``model_from_json`` + ``set_weights`` (json);
   ``pickle.dump`` / ``pickle.load`` (pickle); ``model.export(format="onnx")`` /
   ``onnxruntime.InferenceSession`` (onnx; alphazoo also runs a parity check, shown apart).
   Target from the issue tracker: ratio <= 1.15. The adapter's hooks are also timed alone
   (no bundle), which splits alphazoo's share between the adapter and the host.
2. JSON weights: encode and decode throughput (MB of raw weights per second) and document size
   over raw weight bytes, alphazoo's base64 tensors versus decimal lists (``tolist()``, the
   pattern in LEAN's documentation), on the trained models' weights and a 4 MB layer stack.
3. prediction: the loaded ONNX predictor versus the native Keras model called three ways
   (``model.predict(x, verbose=0)``, ``model(x)`` converted to numpy, and ``zoo.predict``,
   which is ``model.predict_on_batch``), one row and a 10,000-row batch (medians; speed-up =
   native / onnx).

Data: real NVDA daily bars (``../shared/data/nvda-1999-2014.csv`` relative to the repository
root): the six price features of bench_sklearn.py and a next-day-up label; the LSTM sees
windows of the last 20 days of those features, ``(batch, 20, 6)``.
"""

from __future__ import annotations

import gc
import importlib.util
import json
import pickle
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np
from _common import git_revision, write_json  # benchmarks/ is sys.path[0] when run as a script
from _measure import (  # the same data, timing and table helpers as the sklearn figures
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

FORMATS = ("keras", "json", "pickle", "onnx")
TARGET_RATIO = 1.15
BATCH_ROWS = 10_000
WINDOW = 20  # LSTM input: the last 20 days of features

FULL = dict(io_repeats=9, io_warmup=1, row_repeats=40, row_warmup=5, batch_repeats=5,
            batch_warmup=1, codec_repeats=7, epochs=3)
QUICK = dict(io_repeats=3, io_warmup=1, row_repeats=20, row_warmup=2, batch_repeats=3,
             batch_warmup=1, codec_repeats=3, epochs=1)


# -- 1. save / load -----------------------------------------------------------------------------
def direct_calls(model: Any, fmt: str, path: Path) -> tuple[Callable[[], Any], Callable[[], Any]]:
    """Keras' own save and load calls for ``fmt``, writing/reading ``path``."""
    import keras

    if fmt == "keras":
        def save() -> None:
            model.save(path)

        def load() -> Any:
            return keras.saving.load_model(path, safe_mode=True)
    elif fmt == "json":
        from alphazoo.adapters._weights import decode_tensors, encode_tensors

        def save() -> None:
            document = {"architecture": json.loads(model.to_json()),
                        "tensors": encode_tensors({f"w{i}": w for i, w
                                                   in enumerate(model.get_weights())})}
            path.write_text(json.dumps(document, separators=(",", ":")))

        def load() -> Any:
            document = json.loads(path.read_text())
            rebuilt = keras.models.model_from_json(json.dumps(document["architecture"]))
            rebuilt.set_weights([t.array for t in decode_tensors(document["tensors"])])
            return rebuilt
    elif fmt == "pickle":
        def save() -> None:
            with open(path, "wb") as handle:
                pickle.dump(model, handle, protocol=5)

        def load() -> Any:
            with open(path, "rb") as handle:
                return pickle.load(handle)
    else:
        import onnxruntime

        def save() -> None:
            model.export(str(path), format="onnx", verbose=False)

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
        zoo.save(model, key, format=fmt, sample=sample)

    def az_load() -> Any:
        return zoo.load(key, trusted=trusted)

    rows = paired_save_load((az_save, az_load), (d_save, d_load), cfg["io_repeats"],
                            cfg["io_warmup"])
    out: dict[str, Any] = save_load_summary(rows)
    out.update(model=name, format=fmt, bundle_bytes=zoo.store.size(key),
               payload_bytes=path.stat().st_size)
    out.update(adapter_only(zoo, model, fmt, key, sample, workdir, cfg))
    out["adapter_roundtrip_ratio"] = ratio(out["adapter_save"] + out["adapter_load"],
                                           out["direct_save"] + out["direct_load"])
    if fmt == "onnx":
        # alphazoo's ONNX save = export + parity check (+ bundle); the direct path has no
        # parity check, so report the ratio without it as well.
        out["parity_check"] = parity_seconds(model, path, sample, cfg)
        out["save_ratio_ex_parity"] = ratio(out["az_save"] - out["parity_check"],
                                            out["direct_save"])
        out["roundtrip_ratio_ex_parity"] = ratio(out["az_roundtrip"] - out["parity_check"],
                                                 out["direct_roundtrip"])
    return out


def adapter_only(zoo: Any, model: Any, fmt: str, key: str, sample: np.ndarray, workdir: Path,
                 cfg: dict[str, int]) -> dict[str, float]:
    """The keras adapter's own save and load hooks, without the host's bundle around them.

    The difference between these and the zoo.save/zoo.load figures is the host's share
    (checksummed bundle, fsync, manifest, trust checks), the same for every adapter.
    """
    from alphazoo.adapters import keras as adapter
    from alphazoo.bundle import read_bundle
    from alphazoo.contracts import LoadRequest, SaveRequest

    folder = workdir / f"opened-{key.replace('/', '-')}"
    folder.mkdir()
    opened = read_bundle(zoo.store, key, folder)
    request = LoadRequest(opened.manifest, opened.files, trusted=fmt == "pickle")
    scratch = workdir / f"adapter-{key.replace('/', '-')}"

    def save() -> None:
        scratch.mkdir()
        try:
            adapter.alphazoo_save(SaveRequest(model, fmt, scratch, sample))
        finally:
            for item in scratch.iterdir():
                item.unlink()
            scratch.rmdir()

    saves, loads = [], []
    for i in range(cfg["io_repeats"] + 1):  # the first round is a warm-up
        gc.collect()
        s = time_once(save)
        gc.collect()
        lo = time_once(lambda: adapter.alphazoo_load(request))
        if i:
            saves.append(s)
            loads.append(lo)
    return {"adapter_save": med(saves), "adapter_load": med(loads)}


def parity_seconds(model: Any, path: Path, sample: np.ndarray, cfg: dict[str, int]) -> float:
    """The parity check alone, as zoo.save runs it (a session, then one row and the sample)."""
    import onnx

    from alphazoo.adapters._keras_onnx import check_parity, predictor_class

    output = onnx.load(str(path), load_external_data=False).graph.output[0].name

    def parity() -> None:
        predictor = predictor_class()(str(path), task="classification", output=output)
        check_parity(model, predictor, np.asarray(sample, dtype=np.float32), 1e-4)

    parity()
    return med([time_once(parity) for _ in range(cfg["io_repeats"])])


# -- 2. JSON weights -----------------------------------------------------------------------------
def bench_codec(label: str, weights: list[np.ndarray], cfg: dict[str, int]) -> dict[str, Any]:
    """base64 tensors (alphazoo) versus decimal lists (tolist), both as JSON text."""
    from alphazoo.adapters._weights import decode_tensors, encode_tensors

    raw = sum(w.nbytes for w in weights)
    named = {f"w{i}": w for i, w in enumerate(weights)}

    def b64_encode() -> str:
        return json.dumps(encode_tensors(named), separators=(",", ":"))

    def b64_decode(text: str) -> list[np.ndarray]:
        return [t.array for t in decode_tensors(json.loads(text))]

    def list_encode() -> str:
        return json.dumps([{"dtype": w.dtype.name, "data": w.tolist()} for w in weights],
                          separators=(",", ":"))

    def list_decode(text: str) -> list[np.ndarray]:
        return [np.asarray(e["data"], dtype=e["dtype"]) for e in json.loads(text)]

    out: dict[str, Any] = {"weights": label, "raw_bytes": raw}
    for codec, encode, decode in (("base64", b64_encode, b64_decode),
                                  ("tolist", list_encode, list_decode)):
        text = encode()
        back = decode(text)
        exact = all(a.dtype == b.dtype and a.tobytes() == b.tobytes()
                    for a, b in zip(weights, back))
        enc = med([time_once(encode) for _ in range(cfg["codec_repeats"])])
        dec = med([time_once(lambda decode=decode, text=text: decode(text))
                   for _ in range(cfg["codec_repeats"])])
        out[codec] = {"bytes": len(text), "size_ratio": len(text) / raw, "exact": exact,
                      "encode_s": enc, "decode_s": dec,
                      "encode_mb_s": raw / enc / 1e6, "decode_mb_s": raw / dec / 1e6}
    return out


# -- 3. prediction ------------------------------------------------------------------------------
def bench_predict(zoo: Any, name: str, model: Any, predictor: Any, X_rows: np.ndarray,
                  cfg: dict[str, int]) -> dict[str, Any]:
    import keras

    rows = [X_rows[i:i + 1].astype(np.float32) for i in range(len(X_rows))]

    def predict(a: np.ndarray) -> Any:
        return model.predict(a, verbose=0)

    def call(a: np.ndarray) -> Any:
        return keras.ops.convert_to_numpy(model(a, training=False))

    def zoo_predict(a: np.ndarray) -> Any:  # predict_on_batch, see the adapter's docstring
        return zoo.predict(model, a)

    # The native calls cost milliseconds each (an eager LSTM under TensorFlow: ~0.1 s), so all
    # three sides take turns in short blocks, fewer repetitions than a microsecond call needs.
    sides = [predict, call, zoo_predict, predictor.predict]
    row_predict, row_call, row_zoo, row_onnx = blocked(sides, [rows] * 4, cfg["row_repeats"],
                                                       cfg["row_warmup"], block=10)
    batch = X_rows[np.arange(BATCH_ROWS) % len(X_rows)].astype(np.float32)
    b_predict, b_call, b_zoo, b_onnx = blocked(sides, [[batch]] * 4, cfg["batch_repeats"],
                                               cfg["batch_warmup"], block=1)
    diff = float(np.abs(predictor.predict(batch) - predict(batch)).max())
    out = {
        "model": name,
        "row_predict_us": med(row_predict) * 1e6,
        "row_call_us": med(row_call) * 1e6,
        "row_zoo_us": med(row_zoo) * 1e6,
        "row_onnx_us": med(row_onnx) * 1e6,
        "batch_predict_ms": med(b_predict) * 1e3,
        "batch_call_ms": med(b_call) * 1e3,
        "batch_zoo_ms": med(b_zoo) * 1e3,
        "batch_onnx_ms": med(b_onnx) * 1e3,
        "batch_max_abs_diff": diff,
        "row_repeats": cfg["row_repeats"], "batch_repeats": cfg["batch_repeats"],
    }
    out["row_speedup_predict"] = ratio(out["row_predict_us"], out["row_onnx_us"])
    out["row_speedup_call"] = ratio(out["row_call_us"], out["row_onnx_us"])
    out["batch_speedup_predict"] = ratio(out["batch_predict_ms"], out["batch_onnx_ms"])
    out["batch_speedup_call"] = ratio(out["batch_call_ms"], out["batch_onnx_ms"])
    out["row_speedup_zoo"] = ratio(out["row_zoo_us"], out["row_onnx_us"])
    out["batch_speedup_zoo"] = ratio(out["batch_zoo_ms"], out["batch_onnx_ms"])
    return out


# -- output --------------------------------------------------------------------------------------
def report(result: dict[str, Any], out: Any) -> None:
    info, data = result["environment"], result["data"]
    print_header(result, "keras", out, details=f"; backend {result['backend']}")
    print(f"  data: {data['file']} ({data['rows']} rows, {data['first']}..{data['last']}); "
          f"train {data['train_rows']}, test {data['test_rows']}", file=out)
    for m in result["models"]:
        print(f"  {m['model']}: {m['parameters']} parameters, test accuracy "
              f"{m['test_accuracy']:.3f}, {m['epochs']} epochs", file=out)

    rows = []
    for r in result["save_load"]:
        save, rt = x(r["save_ratio"]), x(r["roundtrip_ratio"])
        if r["format"] == "onnx":
            save += f" ({x(r['save_ratio_ex_parity'])})"
            rt += f" ({x(r['roundtrip_ratio_ex_parity'])})"
        rows.append([r["model"], r["format"], ms(r["az_save"]), ms(r["direct_save"]), save,
                     ms(r["az_load"]), ms(r["direct_load"]), x(r["load_ratio"]), rt,
                     "yes" if r["roundtrip_ratio"] <= TARGET_RATIO else "NO",
                     ms(r["adapter_save"]), ms(r["adapter_load"]),
                     x(r["adapter_roundtrip_ratio"]), f"{r['payload_bytes'] / 1024:.0f}"])
    table(f"1. save + load, alphazoo / direct (median of {result['config']['io_repeats']}; ms; "
          "onnx ratios in parentheses exclude the parity check)",
          ["model", "format", "az save", "direct", "save ratio", "az load", "direct",
           "load ratio", "round-trip ratio", f"<= {TARGET_RATIO}", "adapter save",
           "adapter load", "adapter ratio", "payload KiB"], rows, out)
    print("   adapter = the keras adapter's save/load hooks alone, without the host's bundle "
          "(checksums, fsync, manifest): adapter ratio = (adapter save + load) / direct",
          file=out)

    rows = []
    for c in result["codec"]:
        for codec in ("base64", "tolist"):
            r = c[codec]
            rows.append([c["weights"], codec, f"{c['raw_bytes'] / 1024:.0f}",
                         f"{r['bytes'] / 1024:.0f}", f"{r['size_ratio']:.2f}",
                         f"{r['encode_mb_s']:.0f}", f"{r['decode_mb_s']:.0f}",
                         "yes" if r["exact"] else "NO"])
    table("2. JSON weights: size over raw bytes and throughput (MB of raw weights per second; "
          f"median of {result['config']['codec_repeats']})",
          ["weights", "encoding", "raw KiB", "JSON KiB", "size ratio", "encode MB/s",
           "decode MB/s", "bit-exact"], rows, out)

    rows = [[p["model"], f"{p['row_predict_us']:.0f}", f"{p['row_call_us']:.0f}",
             f"{p['row_zoo_us']:.0f}", f"{p['row_onnx_us']:.1f}", x(p["row_speedup_predict"]),
             x(p["row_speedup_call"]), x(p["row_speedup_zoo"]),
             f"{p['batch_predict_ms']:.1f}", f"{p['batch_call_ms']:.1f}",
             f"{p['batch_zoo_ms']:.1f}", f"{p['batch_onnx_ms']:.1f}",
             x(p["batch_speedup_predict"]), x(p["batch_speedup_call"]),
             x(p["batch_speedup_zoo"]), f"{p['batch_max_abs_diff']:.1g}"]
            for p in result["predict"]]
    first = result["predict"][0]
    table(f"3. prediction, native Keras vs alphazoo ONNX predictor; speed-up = native / onnx; "
          f"zoo = zoo.predict (predict_on_batch)\n   one row: median us of "
          f"{first['row_repeats']} calls; {BATCH_ROWS:,} rows: median ms of "
          f"{first['batch_repeats']}",
          ["model", "row predict", "row model(x)", "row zoo", "row onnx", "vs predict",
           "vs model(x)", "vs zoo", "batch predict", "batch model(x)", "batch zoo",
           "batch onnx", "vs predict", "vs model(x)", "vs zoo", "max |diff|"], rows, out)
    print(f"\ntotal benchmark time {result['seconds']:.0f} s; load average (1/5/15 min) at "
          f"start {info['loadavg_start']}, at end {info.get('loadavg_end')}", file=out)
    if info["loadavg_start"] and info["loadavg_start"][0] > 0.5:
        print("note: the machine was busy when the run started; ratios hold up better than "
              "absolute times, but rerun on an idle machine for figures to quote", file=out)



def progress(message: str, started: float) -> None:
    print(f"  [{time.perf_counter() - started:5.0f} s] {message}...", file=sys.stderr, flush=True)


def windows(X: np.ndarray, y: np.ndarray, length: int) -> tuple[np.ndarray, np.ndarray]:
    """``(batch, length, features)`` windows ending on each day, with that day's label."""
    from numpy.lib.stride_tricks import sliding_window_view

    stacked = sliding_window_view(X, length, axis=0).transpose(0, 2, 1)
    return np.ascontiguousarray(stacked), y[length - 1:]


#: The distributions whose versions head the report.
REPORTED = (
    "alphazoo", "keras", "tensorflow-cpu", "tensorflow", "torch", "tf2onnx", "onnx",
    "onnxruntime", "numpy",
)


# -- main ----------------------------------------------------------------------------------------
def main(argv: list[str] | None = None) -> int:
    parser = benchmark_parser(__doc__)
    args = parser.parse_args(argv)
    out = sys.stderr if args.json == "-" else sys.stdout
    cfg = QUICK if args.quick else FULL
    started = time.perf_counter()

    dates, close = load_bars(args.data)
    X, y = make_features(close)
    # Standardised with the training rows' statistics: raw returns are ~1e-2 and would leave
    # the networks barely trained in a few epochs.
    split = int(len(X) * 0.75)
    mean, std = X[:split].mean(axis=0), X[:split].std(axis=0)
    X = ((X - mean) / std).astype(np.float32)
    Xw, yw = windows(X, y, WINDOW)
    split_w = split - WINDOW + 1

    missing = [m for m in ("keras", "tf2onnx", "onnxruntime")
               if importlib.util.find_spec(m) is None]
    if missing:
        sys.exit(f"bench_keras: install alphazoo[tensorflow,onnx] first (missing: {missing})")

    import keras

    import alphazoo

    result: dict[str, Any] = {
        "quick": args.quick, "config": cfg, "target_ratio": TARGET_RATIO,
        "backend": keras.backend.backend(),
        "environment": environment(versions(*REPORTED), git_revision()),
        "data": {"file": str(args.data), "rows": len(close), "first": dates[0],
                 "last": dates[-1], "train_rows": split, "test_rows": len(X) - split},
        "models": [], "save_load": [], "predict": [], "codec": [],
    }

    with tempfile.TemporaryDirectory(prefix="alphazoo-bench-keras-") as tmp:
        workdir = Path(tmp)
        (workdir / "direct").mkdir()
        zoo = alphazoo.Zoo(alphazoo.ObjectStore(workdir / "store"))
        cases = {
            "keras_mlp": (zoo.build("keras_mlp", in_features=X.shape[1], hidden=(64, 32),
                                    task="classification"),
                          X[:split], y[:split], X[split:], y[split:]),
            "keras_lstm": (zoo.build("keras_lstm", timesteps=WINDOW, features=X.shape[1],
                                     units=32, task="classification"),
                           Xw[:split_w], yw[:split_w], Xw[split_w:], yw[split_w:]),
        }
        for name, (model, X_train, y_train, X_test, y_test) in cases.items():
            progress(f"training {name}", started)
            zoo.train(model, X_train, y_train, epochs=cfg["epochs"], batch_size=64)
            labels = (model.predict(X_test, verbose=0).ravel() > 0.5).astype(int)
            result["models"].append({"model": name, "epochs": cfg["epochs"],
                                     "parameters": int(model.count_params()),
                                     "test_accuracy": float(np.mean(labels == y_test))})
            sample = X_train[:256]
            # TensorFlow leaves ~400k objects for the collector: a full gc.collect() costs
            # ~0.2 s. Freezing them keeps the collections between timed calls short.
            gc.collect()
            gc.freeze()
            for fmt in FORMATS:
                progress(f"measuring save/load {name} {fmt}", started)
                result["save_load"].append(bench_save_load(
                    zoo, name, model, fmt, workdir / "direct", sample, cfg))
            result["codec"].append(bench_codec(name, model.get_weights(), cfg))
            progress(f"measuring predictions {name}", started)
            predictor = zoo.load(f"bench/{name}-onnx")
            result["predict"].append(bench_predict(zoo, name, model, predictor, X_test, cfg))
        rng = np.random.default_rng(0)
        big = [rng.normal(size=(512, 512)).astype(np.float32) for _ in range(4)]
        result["codec"].append(bench_codec("4 x 512x512 float32", big, cfg))

    result["seconds"] = time.perf_counter() - started
    result["environment"]["loadavg_end"] = loadavg()
    report(result, out)
    if args.json:
        write_json(result, args.json, out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
