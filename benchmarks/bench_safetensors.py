"""Benchmark: the safetensors weights format against the JSON (base64) weights format.

    python benchmarks/bench_safetensors.py            # full run (about 2 minutes on 2 cores)
    python benchmarks/bench_safetensors.py --quick    # fewer repetitions, a smoke test
    python benchmarks/bench_safetensors.py --json     # tables on stderr, JSON on stdout
    python benchmarks/bench_safetensors.py --no-keras # torch only (no TensorFlow start-up)

Both formats are safe and bit-exact and keep the same architecture; only the tensor container
differs (raw little-endian bytes behind a JSON header, or base64 text inside a JSON document).
Every figure is a ratio of the two measured in this run, on the same models, in turns:

1. size: the payload file of each format, and the ratio json / safetensors; each against the
   raw bytes of the tensors it holds.
2. load: ``zoo.load`` (local ObjectStore in a temp folder: the bundle read and hashed, the
   payload bounded and read, the module or Keras model rebuilt and filled) and the payload
   read alone (``read_weights`` / ``load_tensors``: the container's own cost; safetensors
   maps a large file, so its tensors are copied once to be read, as json's are decoded),
   median of alternating calls; speed-up = json / safetensors.
3. save: ``zoo.save`` likewise (state_dict or get_weights, the payload, the bundle written and
   fsynced).

Models: a small MLP (``torch_mlp`` / ``keras_mlp``, 6 features, hidden 64-32, a few KB: fixed
costs dominate) and a large MLP of about 25 MB of float32 weights (hidden 2048-2048-1024).
Sizes and times do not depend on training, so the weights are the seeded initial ones.
"""

from __future__ import annotations

import gc
import importlib.util
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from _common import git_revision, write_json  # benchmarks/ is sys.path[0] when run as a script
from _measure import (
    benchmark_parser,
    environment,
    med,
    ms,
    print_header,
    ratio,
    table,
    time_once,
    versions,
    x,
)

FORMATS = ("json", "safetensors")
MODELS = {
    "small": {"hidden": (64, 32)},
    "large": {"hidden": (2048, 2048, 1024)},
}
FULL = {"small": 101, "large": 9, "warmup": 2}
QUICK = {"small": 9, "large": 3, "warmup": 1}
REPORTED = ("alphazoo", "safetensors", "torch", "keras", "numpy")


def alternate(calls: dict[str, Callable[[], Any]], repeats: int, warmup: int
              ) -> dict[str, float]:
    """Median seconds of each call, the calls taking turns (first one alternating)."""
    names = list(calls)
    for _ in range(warmup):
        for name in names:
            calls[name]()
    times: dict[str, list[float]] = {name: [] for name in names}
    for i in range(repeats):
        for name in names if i % 2 == 0 else names[::-1]:
            gc.collect()
            times[name].append(time_once(calls[name]))
    return {name: med(values) for name, values in times.items()}


def payload(zoo: Any, key: str, folder: Path) -> Path:
    from alphazoo.bundle import read_bundle

    folder.mkdir(parents=True, exist_ok=True)
    (path,) = read_bundle(zoo.store, key, folder).files.values()
    return path


def payload_readers(library: str) -> dict[str, Callable[[Path], Any]]:
    """Each format's payload read alone, to tensors (no bundle, no module)."""
    from alphazoo.adapters._safetensors import load_tensors
    from alphazoo.adapters._weights import read_weights

    def read_safetensors(path: Path) -> Any:
        tensors, _ = load_tensors(path, None, "torch" if library == "torch" else "numpy")
        # Mapped from the file (when large): read each byte once, as json's decode does.
        copy = (lambda t: t.clone()) if library == "torch" else (lambda a: a.copy())
        return {name: copy(tensor) for name, tensor in tensors.items()}

    return {"json": lambda path: read_weights(path), "safetensors": read_safetensors}


def bench_model(zoo: Any, library: str, size: str, workdir: Path,
                cfg: dict[str, int]) -> dict[str, Any]:
    hidden = MODELS[size]["hidden"]
    if library == "torch":
        model = zoo.build("torch_mlp", in_features=6, out_features=1, hidden=hidden)
        raw = sum(t.numel() * t.element_size() for t in model.state_dict().values())
    else:
        model = zoo.build("keras_mlp", in_features=6, hidden=hidden)
        raw = sum(w.nbytes for w in model.get_weights())
    repeats = cfg[size]
    keys = {fmt: f"{library}/{size}/{fmt}" for fmt in FORMATS}
    saves = alternate({fmt: (lambda fmt=fmt: zoo.save(model, keys[fmt], format=fmt))
                       for fmt in FORMATS}, repeats, cfg["warmup"])
    loads = alternate({fmt: (lambda fmt=fmt: zoo.load(keys[fmt])) for fmt in FORMATS},
                      repeats, cfg["warmup"])
    paths = {fmt: payload(zoo, keys[fmt], workdir / f"{library}-{size}-{fmt}")
             for fmt in FORMATS}
    readers = payload_readers(library)
    reads = alternate({fmt: (lambda fmt=fmt: readers[fmt](paths[fmt])) for fmt in FORMATS},
                      repeats, cfg["warmup"])
    sizes = {fmt: paths[fmt].stat().st_size for fmt in FORMATS}
    return {
        "library": library, "model": size, "hidden": list(hidden), "raw_bytes": raw,
        "repeats": repeats, "bytes": sizes,
        "size_ratio": ratio(sizes["json"], sizes["safetensors"]),
        "save": saves, "load": loads, "read_payload": reads,
        "save_speedup": ratio(saves["json"], saves["safetensors"]),
        "load_speedup": ratio(loads["json"], loads["safetensors"]),
        "read_speedup": ratio(reads["json"], reads["safetensors"]),
    }


def report(result: dict[str, Any], out: Any) -> None:
    print_header(result, "safetensors vs JSON weights", out)
    rows = result["rows"]
    table("1. payload size (bytes; x raw = file / raw tensor bytes)",
          ["model", "raw", "json", "x raw", "safetensors", "x raw", "json / st"],
          [[f"{r['library']} {r['model']}", f"{r['raw_bytes']:,}", f"{r['bytes']['json']:,}",
            x(r["bytes"]["json"] / r["raw_bytes"]), f"{r['bytes']['safetensors']:,}",
            x(r["bytes"]["safetensors"] / r["raw_bytes"]), x(r["size_ratio"])] for r in rows],
          out)
    table("2. load (ms, median; speed-up = json / safetensors)",
          ["model", "zoo.load json", "safetensors", "speed-up", "payload json", "safetensors",
           "speed-up"],
          [[f"{r['library']} {r['model']}", ms(r["load"]["json"]), ms(r["load"]["safetensors"]),
            x(r["load_speedup"]), ms(r["read_payload"]["json"]),
            ms(r["read_payload"]["safetensors"]), x(r["read_speedup"])] for r in rows], out)
    table("3. save (ms, median; speed-up = json / safetensors)",
          ["model", "zoo.save json", "safetensors", "speed-up"],
          [[f"{r['library']} {r['model']}", ms(r["save"]["json"]), ms(r["save"]["safetensors"]),
            x(r["save_speedup"])] for r in rows], out)


def main(argv: list[str] | None = None) -> int:
    parser = benchmark_parser(__doc__)
    parser.add_argument("--no-keras", action="store_true", help="measure torch only")
    args = parser.parse_args(argv)
    out = sys.stderr if args.json == "-" else sys.stdout
    cfg = QUICK if args.quick else FULL
    for needed in ("torch", "safetensors"):
        if importlib.util.find_spec(needed) is None:
            sys.exit(f"bench_safetensors: install alphazoo[torch,safetensors] ({needed} is "
                     "missing)")
    libraries = ["torch"]
    if not args.no_keras and importlib.util.find_spec("keras") is not None:
        libraries.append("keras")

    import alphazoo

    started = time.perf_counter()
    result: dict[str, Any] = {"quick": args.quick, "config": cfg, "rows": [],
                              "environment": environment(versions(*REPORTED), git_revision())}
    with tempfile.TemporaryDirectory(prefix="alphazoo-bench-") as tmp:
        workdir = Path(tmp)
        zoo = alphazoo.Zoo(alphazoo.ObjectStore(workdir / "store"))
        for library in libraries:
            for size in MODELS:
                print(f"  measuring {library} {size}...", file=sys.stderr, flush=True)
                result["rows"].append(bench_model(zoo, library, size, workdir, cfg))
    result["seconds"] = round(time.perf_counter() - started, 1)
    report(result, out)
    print(f"\n{result['seconds']} s", file=out)
    if args.json:
        write_json(result, args.json, out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
