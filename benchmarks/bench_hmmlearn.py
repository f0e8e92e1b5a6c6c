"""Benchmark: alphazoo's hmmlearn path against plain pickle and the bare JSON document.

    python benchmarks/bench_hmmlearn.py            # full run (15-30 s on 2 cores)
    python benchmarks/bench_hmmlearn.py --quick    # fewer repetitions, a smoke test
    python benchmarks/bench_hmmlearn.py --json     # tables on stderr, JSON on stdout
    python benchmarks/bench_hmmlearn.py --json out.json

hmmlearn has no serializer of its own (its documentation says to pickle a model), so the
baselines are:

1. save / load: ``zoo.save`` + ``zoo.load`` (local ObjectStore in a temp folder) versus
   - for ``pickle``: ``pickle.dump``/``pickle.load`` of the model into a file in the same temp
     folder, the call a user makes without alphazoo (target from the issue tracker: <= 1.15);
   - for ``json``: the same plain pickle (a different, unsafe format: the ratio is what the
     safe format costs, not alphazoo's overhead), and the JSON document alone
     (``alphazoo.adapters.hmmlearn.write_json``/``read_json`` on a file, no bundle), whose
     ratio is the bundle's overhead (same 1.15 target).
2. size: the JSON payload against the raw bytes of the parameters it holds (the sum of its
   arrays' ``nbytes``) and against the pickle payload.
3. JSON encode/decode throughput (MB/s of raw parameter bytes): ``write_json`` and
   ``read_json`` alone.

Every baseline write goes to a new file, as ``zoo.save`` does (see :class:`FreshPath`).
Garbage collection is off inside timed calls; a young-generation collection runs between
them (a full one costs ~0.1 s with scikit-learn and scipy loaded).

There is no ONNX section: no ONNX converter exists for hmmlearn models.

Data: real NVDA daily bars (``../shared/data/nvda-1999-2014.csv`` relative to the repository
root): daily % log returns and their 10-day volatility (Gaussian models), returns binned into
quintiles (CategoricalHMM). The fitted models hold 0.1-2 KB of parameters, where fixed costs
dominate every figure, so one more GaussianHMM with 30 states over 50 features and full
covariances (0.6 MB) is included; its parameters are drawn at random, not fitted (the data
has two features), and it is marked "synthetic".

All sides run with one BLAS/OpenMP thread (threadpoolctl): hmmlearn's KMeans initialisation
with free-running OpenMP threads took seconds per fit on this shared 2-core machine.
"""

from __future__ import annotations

import gc
import importlib.util
import pickle
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np
from _common import git_revision, write_json  # benchmarks/ is sys.path[0] when run as a script
from _measure import (
    _fsync,
    benchmark_parser,
    environment,
    load_bars,
    loadavg,
    manifest_fields,
    med,
    ms,
    print_header,
    ratio,
    table,
    time_once,
    versions,
    x,
)

from alphazoo.compat.installed import installed_versions

TARGET_RATIO = 1.15
FORMATS = ("json", "pickle")
_VERSION_LOOKUPS = ("hmmlearn", "numpy", "scipy", "scikit-learn", "alphazoo")

FULL = dict(io_repeats=15, io_warmup=2, codec_repeats=60, codec_warmup=5, part_repeats=9)
QUICK = dict(io_repeats=5, io_warmup=1, codec_repeats=15, codec_warmup=2, part_repeats=3)


# -- data and models -----------------------------------------------------------------------------
def make_features(close: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(% log return, 10-day volatility) per day, and the returns binned into quintiles."""
    returns = np.diff(np.log(close)) * 100.0
    vol = np.lib.stride_tricks.sliding_window_view(returns, 10).std(axis=1)
    X = np.column_stack([returns[9:], vol])
    edges = np.quantile(X[:, 0], [0.2, 0.4, 0.6, 0.8])
    symbols = np.searchsorted(edges, X[:, 0])[:, None].astype(np.int64)
    return X, symbols


def synthetic_gaussian(n_components: int = 30, n_features: int = 50) -> Any:
    """A valid full-covariance GaussianHMM with random parameters (not fitted)."""
    from hmmlearn.hmm import GaussianHMM

    rng = np.random.default_rng(0)
    model = GaussianHMM(n_components, covariance_type="full", random_state=0)
    model.startprob_ = rng.dirichlet(np.ones(n_components))
    model.transmat_ = rng.dirichlet(np.ones(n_components), size=n_components)
    model.means_ = rng.normal(size=(n_components, n_features))
    factors = rng.normal(size=(n_components, n_features, n_features))
    model.covars_ = factors @ factors.transpose(0, 2, 1) / n_features + 0.1 * np.eye(n_features)
    model.score(rng.normal(size=(20, n_features)))  # hmmlearn's own checks, sets n_features
    return model


def raw_parameter_bytes(path: Path) -> int:
    """The bytes of the arrays a JSON document holds (what a binary dump would need)."""
    from alphazoo.adapters._weights import read_weights

    tensors, _ = read_weights(path)
    return sum(t.array.nbytes for t in tensors)


# -- 1. save / load ------------------------------------------------------------------------------
class FreshPath:
    """A new file name per write, as in ``zoo.save`` (which writes into a new temp folder).

    On ext4, truncating a file that holds data and writing it again forces the old blocks out
    (``auto_da_alloc``): about 2 ms per overwrite here, against 0.2 ms for a new file. Reusing
    one path would slow the baselines by that and flatter alphazoo's ratios.
    """

    def __init__(self, folder: Path, stem: str, suffix: str) -> None:
        self.folder, self.stem, self.suffix, self.count = folder, stem, suffix, 0

    @property
    def current(self) -> Path:
        return self.folder / f"{self.stem}-{self.count}{self.suffix}"

    def next(self) -> Path:
        self.count += 1
        return self.current


def paired(sides: dict[str, tuple[Callable[[], Any], Callable[[], Any]]],
           cfg: dict[str, int]) -> dict[str, dict[str, float]]:
    """Median save, load and save+load seconds of each side; sides take turns every round,
    in a rotating order, so a busy moment on the shared machine hits all of them."""
    for _ in range(cfg["io_warmup"]):
        for save, load in sides.values():
            save()
            load()
    gc.collect()
    names = list(sides)
    times: dict[str, dict[str, list[float]]] = {n: {"save": [], "load": [], "rt": []}
                                                for n in names}
    for i in range(cfg["io_repeats"]):
        for name in names[i % len(names):] + names[:i % len(names)]:
            save, load = sides[name]
            gc.collect(1)
            s = time_once(save)
            gc.collect(1)
            lo = time_once(load)
            times[name]["save"].append(s)
            times[name]["load"].append(lo)
            times[name]["rt"].append(s + lo)
    return {n: {k: med(v) for k, v in t.items()} for n, t in times.items()}


def bench_save_load(zoo: Any, name: str, model: Any, rows: np.ndarray | None, workdir: Path,
                    cfg: dict[str, int]) -> list[dict[str, Any]]:
    from alphazoo.adapters.hmmlearn import read_json
    from alphazoo.adapters.hmmlearn import write_json as write_document

    pkl, doc = FreshPath(workdir, name, ".pkl"), FreshPath(workdir, name, ".json")

    def pickle_save() -> None:
        with open(pkl.next(), "wb") as handle:
            pickle.dump(model, handle, protocol=5)

    def pickle_load() -> Any:
        with open(pkl.current, "rb") as handle:
            return pickle.load(handle)

    def az(fmt: str) -> tuple[Callable[[], Any], Callable[[], Any]]:
        key = f"bench/{name}/{fmt}"
        return (lambda: zoo.save(model, key, format=fmt),
                lambda: zoo.load(key, trusted=fmt == "pickle"))

    medians = paired({
        "az_json": az("json"),
        "az_pickle": az("pickle"),
        "pickle": (pickle_save, pickle_load),
        "json_doc": (lambda: write_document(model, doc.next()), lambda: read_json(doc.current)),
    }, cfg)
    # The loaded model must be the saved one, or the timings compare different work.
    for fmt in FORMATS:
        loaded = zoo.load(f"bench/{name}/{fmt}", trusted=fmt == "pickle")
        if rows is not None and not np.array_equal(loaded.predict(rows), model.predict(rows)):
            sys.exit(f"bench_hmmlearn: {name} {fmt} round trip changed predictions")

    results = []
    for fmt, base, base_label in (("pickle", "pickle", "pickle file"),
                                  ("json", "json_doc", "JSON document file"),
                                  ("json", "pickle", "pickle file (other format)")):
        a, b = medians[f"az_{fmt}"], medians[base]
        results.append({
            "model": name, "format": fmt, "baseline": base_label,
            "same_format": base != "pickle" or fmt == "pickle",
            "az_save": a["save"], "base_save": b["save"], "az_load": a["load"],
            "base_load": b["load"], "az_roundtrip": a["rt"], "base_roundtrip": b["rt"],
            "save_ratio": ratio(a["save"], b["save"]), "load_ratio": ratio(a["load"], b["load"]),
            "roundtrip_ratio": ratio(a["rt"], b["rt"]),
        })
    return results


def breakdown(zoo: Any, name: str, fmt: str, workdir: Path,
              cfg: dict[str, int]) -> dict[str, Any]:
    """Time, in isolation, the pieces alphazoo adds around the payload's own write and read."""
    from alphazoo.bundle import read_bundle, write_bundle

    source = zoo.store.read_bytes(f"bench/{name}/{fmt}")
    key = f"bench/breakdown-{name}-{fmt}"
    fields = manifest_fields(zoo, f"bench/{name}/{fmt}", key)
    payload_dir = workdir / f"payload-{name}-{fmt}"
    payload_dir.mkdir()
    zoo.store.save_bytes(key, source)
    opened = read_bundle(zoo.store, key, payload_dir)
    (payload,) = opened.files.values()
    extract = workdir / f"extract-{name}-{fmt}"
    extract.mkdir()
    parts: dict[str, list[float]] = {"version_lookups": [], "bundle_write": [],
                                     "bundle_read": [], "fsync": []}
    gc.collect()
    for i in range(cfg["part_repeats"] + 1):  # the first round is a warm-up
        gc.collect(1)
        got = {
            "version_lookups": time_once(lambda: installed_versions(*_VERSION_LOOKUPS)),
            "bundle_write": time_once(lambda: write_bundle(
                zoo.store, key, fields, payload_dir, [payload.name])),
            "bundle_read": time_once(lambda: read_bundle(zoo.store, key, extract)),
            "fsync": time_once(lambda: _fsync(payload)),
        }
        if i:
            for k, v in got.items():
                parts[k].append(v)
    zoo.store.delete(key)
    out: dict[str, Any] = {k: med(v) for k, v in parts.items()}
    out.update(model=name, format=fmt, payload_bytes=payload.stat().st_size)
    return out


# -- 2. and 3. size and codec --------------------------------------------------------------------
def bench_codec(name: str, model: Any, workdir: Path, cfg: dict[str, int]) -> dict[str, Any]:
    from alphazoo.adapters.hmmlearn import read_json
    from alphazoo.adapters.hmmlearn import write_json as write_document

    fresh = FreshPath(workdir, f"codec-{name}", ".json")
    doc, pkl = fresh.next(), workdir / f"codec-{name}.pkl"
    write_document(model, doc)
    pkl.write_bytes(pickle.dumps(model, protocol=5))
    raw = raw_parameter_bytes(doc)
    for _ in range(cfg["codec_warmup"]):
        write_document(model, fresh.next())
        read_json(fresh.current)
    encode, decode = [], []
    gc.collect()
    for _ in range(cfg["codec_repeats"]):
        gc.collect(1)
        encode.append(time_once(lambda: write_document(model, fresh.next())))
        gc.collect(1)
        decode.append(time_once(lambda: read_json(fresh.current)))
    enc, dec = med(encode), med(decode)
    return {"model": name, "raw_bytes": raw, "json_bytes": doc.stat().st_size,
            "pickle_bytes": pkl.stat().st_size, "encode_s": enc, "decode_s": dec,
            "encode_mb_s": raw / enc / 1e6, "decode_mb_s": raw / dec / 1e6,
            "json_over_raw": ratio(doc.stat().st_size, raw),
            "pickle_over_raw": ratio(pkl.stat().st_size, raw)}


# -- output --------------------------------------------------------------------------------------
def report(result: dict[str, Any], out: Any) -> None:
    info, data = result["environment"], result["data"]
    print_header(result, "hmmlearn", out)
    print(f"  data: {data['file']} ({data['rows']} rows, {data['first']}..{data['last']}); "
          f"train {data['train_rows']} days of (% log return, 10-day volatility); "
          "one BLAS/OpenMP thread", file=out)
    for m in result["models"]:
        print(f"  {m['model']}: {m['description']}", file=out)

    rows = []
    for r in result["save_load"]:
        meets = ("yes" if r["roundtrip_ratio"] <= TARGET_RATIO else "NO") if r["same_format"] \
            else "-"
        rows.append([r["model"], r["format"], r["baseline"], ms(r["az_save"]),
                     ms(r["base_save"]), x(r["save_ratio"]), ms(r["az_load"]),
                     ms(r["base_load"]), x(r["load_ratio"]), x(r["roundtrip_ratio"]), meets])
    table(f"1. save + load, alphazoo / baseline (median of {result['config']['io_repeats']}; ms; "
          "the target applies to same-format baselines)",
          ["model", "format", "baseline", "az save", "base", "save ratio", "az load", "base",
           "load ratio", "round-trip ratio", f"<= {TARGET_RATIO}"], rows, out)

    rows = [[b["model"], b["format"], ms(b["version_lookups"]), ms(b["bundle_write"]),
             ms(b["fsync"]), ms(b["bundle_read"]), f"{b['payload_bytes'] / 1024:.1f}"]
            for b in result["breakdown"]]
    table("   where alphazoo's time goes (ms, each part timed on its own; bundle write "
          "includes its fsync)",
          ["model", "format", "version lookups", "bundle write", "of it fsync",
           "bundle read", "payload KiB"], rows, out)

    rows = [[c["model"], f"{c['raw_bytes']:,}", f"{c['json_bytes']:,}", x(c["json_over_raw"]),
             f"{c['pickle_bytes']:,}", x(c["pickle_over_raw"])] for c in result["codec"]]
    table("2. size: JSON payload and pickle vs the raw bytes of the parameter arrays",
          ["model", "raw bytes", "JSON bytes", "JSON / raw", "pickle bytes", "pickle / raw"],
          rows, out)

    rows = [[c["model"], ms(c["encode_s"]), f"{c['encode_mb_s']:.1f}", ms(c["decode_s"]),
             f"{c['decode_mb_s']:.1f}"] for c in result["codec"]]
    table(f"3. JSON encode (write_json to a file) and decode (read_json, model rebuilt), "
          f"median of {result['config']['codec_repeats']}; MB/s of raw parameter bytes",
          ["model", "encode ms", "encode MB/s", "decode ms", "decode MB/s"], rows, out)
    print("\nONNX: not measured; no ONNX converter exists for hmmlearn models.", file=out)
    print(f"total benchmark time {result['seconds']:.0f} s; load average (1/5/15 min) at start "
          f"{info['loadavg_start']}, at end {info.get('loadavg_end')}", file=out)
    if info["loadavg_start"] and info["loadavg_start"][0] > 0.5:
        print("note: the machine was busy when the run started; ratios hold up better than "
              "absolute times, but rerun on an idle machine for figures to quote", file=out)



#: The distributions whose versions head the report.
REPORTED = ("alphazoo", "hmmlearn", "scikit-learn", "scipy", "numpy")


# -- main ----------------------------------------------------------------------------------------
def main(argv: list[str] | None = None) -> int:
    parser = benchmark_parser(__doc__)
    args = parser.parse_args(argv)
    out = sys.stderr if args.json == "-" else sys.stdout
    cfg = QUICK if args.quick else FULL
    started = time.perf_counter()

    if importlib.util.find_spec("hmmlearn") is None:
        sys.exit("bench_hmmlearn: install alphazoo[hmmlearn] first")
    if not args.data.is_file():
        sys.exit(f"bench_hmmlearn: market data not found at {args.data}; expected "
                 "../shared/data/nvda-1999-2014.csv relative to the repository root (columns "
                 "Date,Open,High,Low,Close,Adj Close,Volume), or pass --data PATH")
    dates, close = load_bars(args.data)  # bench_sklearn's reader: same file, same checks
    X, symbols = make_features(close)
    split = int(len(X) * 0.75)

    from hmmlearn.hmm import GMMHMM, CategoricalHMM, GaussianHMM
    from threadpoolctl import threadpool_limits

    import alphazoo

    threads = threadpool_limits(1)  # held for the whole run; see the module docstring
    result: dict[str, Any] = {
        "quick": args.quick, "config": cfg, "target_ratio": TARGET_RATIO,
        "environment": environment(versions(*REPORTED), git_revision(), threads=1),
        "data": {"file": str(args.data), "rows": len(close), "first": dates[0],
                 "last": dates[-1], "train_rows": split},
        "models": [], "save_load": [], "breakdown": [], "codec": [],
    }
    with tempfile.TemporaryDirectory(prefix="alphazoo-bench-") as tmp:
        workdir = Path(tmp)
        (workdir / "direct").mkdir()
        zoo = alphazoo.Zoo(alphazoo.ObjectStore(workdir / "store"))
        train, test = X[:split], X[split:]
        models = {
            "gaussian_hmm": (zoo.train(zoo.build("gaussian_hmm"), train), test,
                             "zoo model: GaussianHMM, 3 states, diag covariances"),
            "gaussian_full": (zoo.train(GaussianHMM(3, "full", n_iter=100, random_state=0),
                                        train), test, "GaussianHMM, 3 states, full covariances"),
            "gmm_full": (zoo.train(GMMHMM(2, n_mix=2, covariance_type="full", n_iter=50,
                                          random_state=0), train), test,
                         "GMMHMM, 2 states x 2 mixtures, full covariances"),
            "categorical": (zoo.train(CategoricalHMM(3, n_iter=100, random_state=0),
                                      symbols[:split]), symbols[split:],
                            "CategoricalHMM, 3 states over 5 return quintiles"),
            "synthetic_30x50": (synthetic_gaussian(), None,
                                "GaussianHMM, 30 states x 50 features, full covariances; "
                                "random parameters, not fitted"),
        }
        for name, (model, rows, description) in models.items():
            result["models"].append({"model": name, "description": description})
            print(f"  measuring save/load {name}...", file=sys.stderr, flush=True)
            result["save_load"].extend(bench_save_load(zoo, name, model, rows,
                                                       workdir / "direct", cfg))
            for fmt in FORMATS:
                result["breakdown"].append(breakdown(zoo, name, fmt, workdir, cfg))
            print(f"  measuring JSON codec {name}...", file=sys.stderr, flush=True)
            result["codec"].append(bench_codec(name, model, workdir, cfg))
    threads.restore_original_limits()

    result["seconds"] = time.perf_counter() - started
    result["environment"]["loadavg_end"] = loadavg()
    report(result, out)
    if args.json:
        write_json(result, args.json, out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
