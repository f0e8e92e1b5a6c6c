"""Benchmark: 1,000 walk-forward windows of a small model, sequential vs a 2-worker Dask cluster.

    python benchmarks/walkforward_scale.py --windows 1000     # about 10 min on 2 busy cores
    python benchmarks/walkforward_scale.py --quick            # 100 windows: a smoke test
    python benchmarks/walkforward_scale.py --json out.json

One command starts everything it needs and tears it down: moto's S3 server in a child process
on a free port of 127.0.0.1 (so its in-memory bucket does not count in the client's memory), a
bucket, and a ``distributed.LocalCluster`` of 2 worker processes with 1 thread each.

The data are ORCL's daily bars 1995-2014 (``../shared/data/orcl-1995-2014.csv``): the six
features of the other benchmarks and the next-day-up label. A ``Ridge`` model is retrained
every Monday on the last 120 bars (``label_horizon=1``): the last ``--windows`` Mondays are the
windows (about 1,015 exist). With more windows than Mondays every trading day becomes a
window instead (the report says which). Every window is saved as a version (skops, the
scikit-learn default) of one series, so the store grows to ``--windows`` versions.

The same windows run four ways, each into a fresh store:

1. ``walk_forward`` sequentially into a local folder store;
2. ``walk_forward`` sequentially into the S3 store;
3. ``walk_forward(executor=client.get_executor())`` into the S3 store: the fits run on the
   workers, the predictions and saves in the client, in window order;
4. ``map_train`` on the cluster into the S3 store: each worker fits and saves its windows.

Reported per run: wall time, speedup against the sequential runs, peak RSS of the client
process and of each worker process (sampled every 20 ms; with Dask the client hosts the
scheduler too; workers are restarted and warmed up before each run), the save cost per version
over the first and the last 50 windows (medians) and their ratio (a store whose saves cost
more as it fills shows a ratio above 1), and one listing of the full store at the end
(``store.keys()``, median of 3): what a save that lists the store pays per save.
Sequential and ``walk_forward`` runs time each ``Zoo.save`` in the client (a ``Zoo``
subclass); ``map_train`` saves happen in the workers, so there it is a task's duration in the
Dask task stream (fit + save, by start time) minus the median fit time the results report.
"""

from __future__ import annotations

import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
import uuid
from pathlib import Path
from typing import Any

from _common import git_revision, write_json  # benchmarks/ is sys.path[0] when run as a script
from _measure import (
    benchmark_parser,
    environment,
    load_bars,
    make_features,
    print_header,
    table,
    versions,
)

DEFAULT_DATA = Path(__file__).resolve().parents[1].parent / "shared/data/orcl-1995-2014.csv"
FEATURE_NAMES = ("ret_1d", "ret_5d", "ret_20d", "vol_5d", "vol_20d", "ma_5_20")
LENGTH = 120  # bars in each rolling training window
EDGE = 50  # windows at each end whose save cost is compared


# -- the model and the data ----------------------------------------------------------------------
def fit_ridge(X: Any, y: Any) -> Any:
    """The small model: a Ridge regression of the next-day-up label on six features."""
    from sklearn.linear_model import Ridge

    return Ridge(alpha=1.0).fit(X, y)


def load_frame(path: Path) -> tuple[Any, Any]:
    import pandas as pd

    if not path.is_file():
        sys.exit(f"walkforward_scale: market data not found at {path}\n  expected "
                 "../shared/data/orcl-1995-2014.csv relative to the repository root (columns "
                 "Date,Open,High,Low,Close,Adj Close,Volume); pass --data PATH for another copy.")
    dates, close = load_bars(path)
    X, y = make_features(close)
    index = pd.DatetimeIndex(dates[20:len(close) - 1])  # the rows make_features keeps
    return (pd.DataFrame(X, index=index, columns=list(FEATURE_NAMES)),
            pd.Series(y.astype(float), index=index))


def schedule(index: Any, windows: int) -> tuple[list[Any], str]:
    """The last ``windows`` Mondays after the first full window, else trading days."""
    import pandas as pd

    first = index[LENGTH + 1]
    mondays = list(pd.date_range(first.normalize(), index[-1], freq="W-MON"))
    if len(mondays) >= windows:
        return mondays[-windows:], "weekly (Mondays)"
    days = list(index[LENGTH + 1:])
    if len(days) < windows:
        sys.exit(f"walkforward_scale: the data has only {len(days)} trading days after the "
                 f"first {LENGTH}-bar window; ask for at most that many --windows")
    return days[-windows:], "daily (every trading day: too few Mondays)"


# -- measuring -----------------------------------------------------------------------------------
class PeakRSS:
    """The largest RSS of the listed processes, sampled every ``every`` seconds in a thread."""

    def __init__(self, pids: list[int], every: float = 0.02) -> None:
        import psutil

        self.processes = [psutil.Process(pid) for pid in pids]
        self.peaks = [p.memory_info().rss for p in self.processes]
        self.every, self.stop = every, threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self.stop.wait(self.every):
            for i, process in enumerate(self.processes):
                self.peaks[i] = max(self.peaks[i], process.memory_info().rss)

    def __enter__(self) -> PeakRSS:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join()


def timed_zoo(store: Any) -> Any:
    """A Zoo that records how long each ``save`` took, in order (``zoo.save_seconds``)."""
    from alphazoo import Zoo

    class TimedZoo(Zoo):
        def save(self, *args: Any, **kwargs: Any) -> dict[str, Any]:
            started = time.perf_counter()
            try:
                return super().save(*args, **kwargs)
            finally:
                self.save_seconds.append(time.perf_counter() - started)

    zoo = TimedZoo(store)
    zoo.save_seconds = []
    return zoo


def warm_up() -> None:
    """Import what every window needs and discover the plugins, so no run pays for that."""
    import numpy as np
    import sklearn.linear_model  # noqa: F401

    from alphazoo import Zoo

    zoo = Zoo("memory://alphazoo-scale-warm-up")
    zoo.save(fit_ridge(np.eye(3), np.arange(3.0)), "warm-up")


def loadavg() -> list[float]:
    return [round(v, 2) for v in os.getloadavg()]


def edges(values: list[float]) -> tuple[float, float]:
    n = min(EDGE, len(values) // 2)
    return statistics.median(values[:n]), statistics.median(values[-n:])


# -- moto and the cluster ------------------------------------------------------------------------
def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_moto() -> tuple[subprocess.Popen[bytes], dict[str, Any], str]:
    """moto's S3 server in a child process, a bucket in it, and the store's options."""
    try:
        import boto3
        import moto.server  # noqa: F401
        import s3fs  # noqa: F401
    except ImportError as exc:
        sys.exit(f"walkforward_scale: the S3 runs need moto[server], boto3 and s3fs "
                 f"(pip install -e '.[s3,test]'): {exc}")
    # Dummy credentials only, in this process and its children (moto, the Dask workers).
    os.environ.update(AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY="testing",
                      AWS_DEFAULT_REGION="us-east-1", AWS_CONFIG_FILE=os.devnull,
                      AWS_SHARED_CREDENTIALS_FILE=os.devnull)
    os.environ.pop("AWS_PROFILE", None)
    for name in ("NO_PROXY", "no_proxy"):
        os.environ[name] = ",".join(filter(None, ["127.0.0.1", "localhost",
                                                  os.environ.get(name)]))
    port = free_port()
    server = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1",
                               "-p", str(port)], stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
    endpoint = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            urllib.request.urlopen(endpoint + "/moto-api/", timeout=2).close()
            break
        except OSError:
            if server.poll() is not None or time.monotonic() > deadline:
                server.kill()
                sys.exit(f"walkforward_scale: moto's server did not start on {endpoint}")
            time.sleep(0.2)
    bucket = f"alphazoo-scale-{uuid.uuid4().hex[:8]}"
    boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1",
                 aws_access_key_id="testing",
                 aws_secret_access_key="testing").create_bucket(Bucket=bucket)
    options = {"endpoint_url": endpoint, "key": "testing", "secret": "testing",
               "client_kwargs": {"region_name": "us-east-1"}}
    return server, options, bucket


# -- the runs ------------------------------------------------------------------------------------
def run_walk_forward(X: Any, y: Any, cutoffs: list[Any], store: Any, name: str,
                     executor: Any = None) -> tuple[Any, float, list[float]]:
    from alphazoo.training import walk_forward

    zoo = timed_zoo(store)
    started = time.perf_counter()
    result = walk_forward(X, y, fit_ridge, every=cutoffs, window="rolling", length=LENGTH,
                          label_horizon=1, start=cutoffs[0], zoo=zoo, save_as=name,
                          executor=executor, keep_models=False)
    return result, time.perf_counter() - started, zoo.save_seconds


def run_map_train(X: Any, y: Any, folds: list[Any], store: Any, name: str,
                  client: Any) -> tuple[list[Any], float, list[float], list[float]]:
    from distributed import get_task_stream

    from alphazoo.training import TrainJob, map_train

    jobs = []
    for fold in folds:
        rows = X.index.isin(fold.train_index)
        jobs.append(TrainJob(fit_ridge, (X[rows], y[rows]), save_as=name,
                             metadata={"cutoff": str(fold.cutoff)}))
    with get_task_stream(client) as stream:
        started = time.perf_counter()
        results = map_train(jobs, client.get_executor(), store=store, return_models=False,
                            raise_errors=True)
        wall = time.perf_counter() - started
    tasks = sorted((start, stop) for task in stream.data for kind, start, stop in
                   ((s["action"], s["start"], s["stop"]) for s in task["startstops"])
                   if kind == "compute")
    return results, wall, [stop - start for start, stop in tasks], [r.seconds for r in results]


def check_series(store: Any, name: str, count: int) -> float:
    """Exit unless ``store`` holds versions 1..count of ``name`` with ``latest.json`` at the
    last; return the median seconds of listing the full store (``store.keys()``, 3 times)."""
    from alphazoo.training.model_versions import LATEST
    from alphazoo.training.model_versions import versions as stored_versions

    found = stored_versions(store, name)
    latest = store.read_json(f"{name}/{LATEST}")["version"]
    if found != list(range(1, count + 1)) or latest != count:
        sys.exit(f"walkforward_scale: {store.url} holds versions {found[:3]}..{found[-3:]} "
                 f"({len(found)}) and latest {latest}, expected 1..{count}")
    timings = []
    for _ in range(3):
        started = time.perf_counter()
        store.keys()
        timings.append(time.perf_counter() - started)
    return statistics.median(timings)


def main(argv: list[str] | None = None) -> int:
    parser = benchmark_parser(__doc__)
    parser.set_defaults(data=DEFAULT_DATA)
    parser.add_argument("--windows", type=int, default=None,
                        help="windows (saved versions) per run (default 1000; --quick 100)")
    parser.add_argument("--workers", type=int, default=2, help="Dask worker processes")
    args = parser.parse_args(argv)
    args.windows = args.windows or (100 if args.quick else 1000)
    if args.windows < 2:
        parser.error("--windows must be at least 2")
    out = sys.stderr if args.json == "-" else sys.stdout

    import distributed

    from alphazoo import ObjectStore

    X, y = load_frame(args.data)
    cutoffs, step = schedule(X.index, args.windows)
    result: dict[str, Any] = {
        "quick": args.quick,
        "environment": environment(versions("alphazoo", "scikit-learn", "dask", "distributed",
                                            "moto", "s3fs", "pandas"), git_revision()),
        "config": {"windows": args.windows, "step": step, "length_bars": LENGTH,
                   "model": "sklearn Ridge(alpha=1.0), 6 features", "format": "skops (default)",
                   "workers": args.workers, "threads_per_worker": 1, "data": str(args.data),
                   "first_cutoff": str(cutoffs[0].date()), "last_cutoff": str(cutoffs[-1].date())},
        "runs": [],
    }
    print_header(result, "walk-forward at scale", out,
                 details=f"; {args.windows} {step} windows {cutoffs[0].date()}.."
                         f"{cutoffs[-1].date()}, Ridge on {LENGTH} bars, {args.workers} workers")
    me = os.getpid()
    warm_up()
    runs: list[dict[str, Any]] = result["runs"]

    def record(label: str, store_kind: str, wall: float, saves: list[float], client_peak: int,
               workers: list[int] | None = None, *, listing: float, **extra: Any) -> None:
        first, last = edges(saves)
        runs.append({"run": label, "store": store_kind, "wall_s": round(wall, 3),
                     "versions": len(saves), "save_first_ms": round(first * 1e3, 3),
                     "save_last_ms": round(last * 1e3, 3), "save_growth": round(last / first, 3),
                     "client_peak_rss_mb": round(client_peak / 2**20, 1),
                     "worker_peak_rss_mb": [round(w / 2**20, 1) for w in workers or []],
                     "full_listing_ms": round(listing * 1e3, 3),
                     "loadavg_after": loadavg(), **extra})
        print(f"  {label} into {store_kind}: {wall:.1f} s, save {first * 1e3:.1f} -> "
              f"{last * 1e3:.1f} ms", file=sys.stderr, flush=True)

    server, options, bucket = start_moto()
    try:
        with tempfile.TemporaryDirectory(prefix="alphazoo-scale-") as folder:
            def s3(prefix: str) -> Any:
                return ObjectStore(f"s3://{bucket}/{prefix}", storage_options=options)

            with PeakRSS([me]) as rss:
                sequential, wall, saves = run_walk_forward(
                    X, y, cutoffs, ObjectStore(Path(folder) / "store"), "orcl/ridge")
            if len(sequential.folds) != args.windows:
                sys.exit(f"walkforward_scale: {len(sequential.folds)} folds for "
                         f"{args.windows} cutoffs")
            listing = check_series(ObjectStore(Path(folder) / "store"), "orcl/ridge",
                                   args.windows)
            record("walk_forward, sequential", "local folder", wall, saves, rss.peaks[0],
                   listing=listing)

            with PeakRSS([me, server.pid]) as rss:
                _, wall, saves = run_walk_forward(X, y, cutoffs, s3("sequential"), "orcl/ridge")
            listing = check_series(s3("sequential"), "orcl/ridge", args.windows)
            record("walk_forward, sequential", "S3 (moto)", wall, saves, rss.peaks[0],
                   listing=listing,
                   moto_peak_rss_mb=round(rss.peaks[1] / 2**20, 1))

            started = time.perf_counter()
            with distributed.LocalCluster(n_workers=args.workers, threads_per_worker=1,
                                          processes=True, dashboard_address=None) as cluster, \
                    distributed.Client(cluster) as client:
                result["config"]["cluster_start_s"] = round(time.perf_counter() - started, 2)

                def fresh_workers() -> list[int]:
                    # ru_maxrss would not do: a spawned worker inherits its nanny's peak.
                    client.restart()
                    client.run(warm_up)
                    return list(client.run(os.getpid).values())

                with PeakRSS([me, server.pid, *fresh_workers()]) as rss:
                    _, wall, saves = run_walk_forward(X, y, cutoffs, s3("dask-walk-forward"),
                                                      "orcl/ridge", client.get_executor())
                listing = check_series(s3("dask-walk-forward"), "orcl/ridge", args.windows)
                record(f"walk_forward, fits on {args.workers} Dask workers", "S3 (moto)", wall,
                       saves, rss.peaks[0], rss.peaks[2:], listing=listing,
                       moto_peak_rss_mb=round(rss.peaks[1] / 2**20, 1))

                with PeakRSS([me, server.pid, *fresh_workers()]) as rss:
                    results, wall, tasks, fits = run_map_train(
                        X, y, sequential.folds, s3("dask-map-train"), "orcl/ridge", client)
                listing = check_series(s3("dask-map-train"), "orcl/ridge", args.windows)
                fit = statistics.median(fits)
                task_first, task_last = edges(tasks)
                record(f"map_train on {args.workers} Dask workers", "S3 (moto)", wall,
                       [t - fit for t in tasks], rss.peaks[0], rss.peaks[2:], listing=listing,
                       moto_peak_rss_mb=round(rss.peaks[1] / 2**20, 1),
                       task_first_ms=round(task_first * 1e3, 3),
                       task_last_ms=round(task_last * 1e3, 3), fit_median_ms=round(fit * 1e3, 3),
                       workers_used=len({r.worker for r in results}))
    finally:
        server.terminate()
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()

    local, remote = runs[0]["wall_s"], runs[1]["wall_s"]
    rows = []
    for run in runs:
        workers = run["worker_peak_rss_mb"]
        rows.append([run["run"], run["store"], f"{run['wall_s']:.1f}",
                     f"{local / run['wall_s']:.2f}x", f"{remote / run['wall_s']:.2f}x",
                     f"{run['client_peak_rss_mb']:.0f}",
                     " / ".join(f"{w:.0f}" for w in workers) if workers else "-",
                     f"{run['save_first_ms']:.1f}", f"{run['save_last_ms']:.1f}",
                     f"{run['save_growth']:.2f}x", f"{run['full_listing_ms']:.1f}"])
    n = min(EDGE, args.windows // 2)
    table(f"{args.windows} windows, one version each (save ms: medians of the first and last "
          f"{n})", ["run", "store", "wall s", "vs seq local", "vs seq S3", "client MB",
                    "workers MB", "save first", "save last", "last/first", "listing"], rows,
          out)
    print(f"\nloadavg at the start {result['environment']['loadavg_start']}, at the end "
          f"{loadavg()}; cluster start {result['config']['cluster_start_s']} s (not in the "
          "wall times)", file=out)
    if args.json:
        write_json(result, args.json, out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
