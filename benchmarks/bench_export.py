"""Benchmark: the cost of exporting one model version to ONNX, the step a walk-forward repeats.

A weekly walk-forward exports every version it serves (``alphazoo demo``: 156 exports), so two
choices made for it are measured here, each against the alternative in the same run:

1. torch: ``zoo.save(..., format="onnx", exporter="torchscript")`` (torch's older tracer,
   what ``alstm`` uses) vs ``exporter="dynamo"`` (torch's default) on the demo's ALSTM
   (10 features, 10-step windows, hidden 32, 2 layers) -- the whole save, parity check
   included, and ``torch.onnx.export`` alone for both exporters.
2. scikit-learn: skl2onnx's ``to_onnx`` on a 100-tree forest with its options keyed by the
   model's ``id()`` (what the adapter passes) vs keyed by name (``{"zipmap": False}``, the
   documented form, which makes skl2onnx walk ``dir()`` of every tree).

Medians of repeated calls, alternating the two sides so machine load hits both alike. Data:
real NVDA daily bars (``../shared/data/nvda-1999-2014.csv``), the shared feature set.
"""

from __future__ import annotations

import importlib.util
import io
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any, Callable

import numpy as np
from _common import git_revision, write_json  # benchmarks/ is sys.path[0] when run as a script
from _measure import (
    benchmark_parser,
    environment,
    load_bars,
    loadavg,
    make_features,
    med,
    print_header,
    ratio,
    table,
    versions,
    x,
)

FULL = {"repeats": 7}
QUICK = {"repeats": 3}


def alternate(first: Callable[[], Any], second: Callable[[], Any],
              repeats: int) -> tuple[list[float], list[float]]:
    """Wall times of ``first`` and ``second``, called in turns after one untimed call each."""
    first(), second()
    times: tuple[list[float], list[float]] = ([], [])
    for _ in range(repeats):
        for side, fn in enumerate((first, second)):
            began = time.perf_counter()
            fn()
            times[side].append(time.perf_counter() - began)
    return times


def bench_torch(X: np.ndarray, y: np.ndarray, workdir: Path, repeats: int) -> list[dict]:
    import torch

    import alphazoo
    from alphazoo.contrib.alstm import ALSTM

    step = 10
    windows = np.lib.stride_tricks.sliding_window_view(X, step, axis=0).transpose(0, 2, 1)
    windows = np.ascontiguousarray(windows[:1000], dtype=np.float32)
    target = y[step - 1:step - 1 + len(windows)].astype(np.float32)
    model = ALSTM(d_feat=X.shape[1], hidden_size=32, num_layers=2, step_len=step,
                  n_epochs=3, seed=0).fit(windows, target)
    zoo = alphazoo.Zoo(alphazoo.ObjectStore(workdir / "torch"))
    counter = iter(range(10**6))

    def save(exporter: str) -> Callable[[], Any]:
        return lambda: zoo.save(model, f"alstm/{exporter}-{next(counter)}", format="onnx",
                                exporter=exporter)

    def export(dynamo: bool) -> Callable[[], Any]:
        net, example = model.estimator.eval(), torch.from_numpy(model.sample[:8])

        def run() -> None:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                if dynamo:
                    torch.onnx.export(net, (example,), io.BytesIO(), dynamo=True,
                                      external_data=False, verbose=False,
                                      dynamic_shapes=({0: torch.export.Dim("batch"),
                                                       1: torch.export.Dim("sequence")},))
                else:
                    torch.onnx.export(net, (example,), io.BytesIO(), dynamo=False,
                                      input_names=["input"],
                                      dynamic_axes={"input": {0: "batch", 1: "sequence"}})
        return run

    rows = []
    fast, slow = alternate(save("torchscript"), save("dynamo"), repeats)
    rows.append({"what": "ALSTM zoo.save(format='onnx')", "fast": "exporter='torchscript'",
                 "slow": "exporter='dynamo'", "fast_s": med(fast), "slow_s": med(slow)})
    fast, slow = alternate(export(False), export(True), repeats)
    rows.append({"what": "ALSTM torch.onnx.export alone", "fast": "dynamo=False",
                 "slow": "dynamo=True", "fast_s": med(fast), "slow_s": med(slow)})
    return rows


def bench_sklearn(X: np.ndarray, y: np.ndarray, repeats: int) -> list[dict]:
    from skl2onnx import to_onnx

    from alphazoo.adapters.sklearn import random_forest

    forest = random_forest(n_estimators=100).fit(X, y)
    sample = X[:1].astype(np.float32)
    fast, slow = alternate(
        lambda: to_onnx(forest, sample, options={id(forest): {"zipmap": False}}),
        lambda: to_onnx(forest, sample, options={"zipmap": False}), repeats)
    return [{"what": "forest, 100 trees: skl2onnx to_onnx", "fast": "options by id(model)",
             "slow": "options by name", "fast_s": med(fast), "slow_s": med(slow)}]



#: The distributions whose versions head the report.
REPORTED = (
    "alphazoo", "torch", "onnx", "onnxscript", "onnxruntime", "scikit-learn", "skl2onnx",
    "numpy",
)


def main(argv: list[str] | None = None) -> int:
    args = benchmark_parser(__doc__).parse_args(argv)
    out = sys.stderr if args.json == "-" else sys.stdout
    cfg = QUICK if args.quick else FULL
    missing = [m for m in ("torch", "onnxscript", "onnxruntime", "skl2onnx", "pandas")
               if importlib.util.find_spec(m) is None]
    if missing:
        sys.exit(f"bench_export: install alphazoo[demo] first (missing: {missing})")
    started = time.perf_counter()
    _, close = load_bars(args.data)
    X, y = make_features(close)
    X = ((X - X.mean(axis=0)) / X.std(axis=0)).astype(np.float32)
    result: dict[str, Any] = {"quick": args.quick, "config": cfg,
                              "environment": environment(versions(*REPORTED), git_revision())}
    with tempfile.TemporaryDirectory(prefix="alphazoo-bench-") as tmp:
        print("  torch exporters (the ALSTM)...", file=sys.stderr, flush=True)
        rows = bench_torch(X, y, Path(tmp), cfg["repeats"])
        print("  skl2onnx options...", file=sys.stderr, flush=True)
        rows += bench_sklearn(X, y, cfg["repeats"])
    for row in rows:
        row["speedup"] = ratio(row["slow_s"], row["fast_s"])
    result["rows"] = rows
    result["seconds"] = time.perf_counter() - started
    result["environment"]["loadavg_end"] = loadavg()
    print_header(result, "ONNX export cost per model version", out)
    table(f"median of {cfg['repeats']} calls in turns; speed-up = slow / fast",
          ["what", "fast", "fast s", "slow", "slow s", "speed-up"],
          [[r["what"], r["fast"], f"{r['fast_s']:.3f}", r["slow"], f"{r['slow_s']:.3f}",
            x(r["speedup"])] for r in rows], out)
    if args.json:
        write_json(result, args.json, out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
