"""Data, timing and table helpers shared by the benchmark scripts.

Every benchmark measures the same way: the same NVDA bars and features, medians of repeated
calls with the garbage collector off during each timed call, "after a pause" timings for the
once-per-bar case, and plain-text tables. Imported as ``from _measure import ...`` (the
scripts run with ``benchmarks/`` as ``sys.path[0]``).
"""

from __future__ import annotations

import argparse
import csv
import gc
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

__all__ = [
    "COLUMNS", "DEFAULT_DATA", "FEATURES", "PAUSE", "after_pause", "benchmark_parser",
    "blocked", "environment", "load_bars", "paired_save_load", "print_header",
    "manifest_fields", "save_load_summary", "timed_sides",
    "loadavg", "make_features", "med", "ms", "ratio", "table", "time_once", "versions", "x",
    "_fsync",
]

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_DATA = REPO_ROOT.parent / "shared" / "data" / "nvda-1999-2014.csv"
COLUMNS = ("Date", "Open", "High", "Low", "Close", "Adj Close", "Volume")
FEATURES = ("ret_1d", "ret_5d", "ret_20d", "vol_5d", "vol_20d", "ma_5_20")
PAUSE = 0.005  # idle time before each "cold" single-row call (a bar arriving)


def benchmark_parser(doc: str | None) -> argparse.ArgumentParser:
    """The options every benchmark takes: ``--quick``, ``--json [PATH]``, ``--data CSV``."""
    parser = argparse.ArgumentParser(description=(doc or "").split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="fewer repetitions (smoke test)")
    parser.add_argument("--json", nargs="?", const="-", metavar="PATH",
                        help="write the results as JSON to PATH, or to stdout (tables then go "
                             "to stderr) when no PATH is given")
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA,
                        help=f"daily bars CSV (default {DEFAULT_DATA})")
    return parser


def load_bars(path: Path) -> tuple[list[str], np.ndarray]:
    """Dates and adjusted closes of the CSV, oldest first."""
    if not path.is_file():
        sys.exit(
            f"benchmark: market data not found at {path}\n"
            "  expected ../shared/data/nvda-1999-2014.csv relative to the repository root "
            "(columns Date,Open,High,Low,Close,Adj Close,Volume); pass --data PATH to use "
            "another copy."
        )
    with open(path, newline="") as handle:
        reader = csv.DictReader(handle)
        missing = [c for c in COLUMNS if c not in (reader.fieldnames or [])]
        if missing:
            sys.exit(f"benchmark: {path} lacks the columns {missing}")
        rows = sorted(
            ((r["Date"], float(r["Adj Close"])) for r in reader
             if r["Adj Close"] not in ("", "null", "NaN")),
            key=lambda r: r[0],
        )
    dates = [r[0] for r in rows]
    close = np.array([r[1] for r in rows], dtype=np.float64)
    if len(close) < 500 or not np.all(close > 0):
        sys.exit(f"benchmark: {path} has too few rows or non-positive prices")
    return dates, close


def make_features(close: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """1/5/20-day returns, 5/20-day volatility, 5/20 moving-average ratio; next-day-up label."""
    from numpy.lib.stride_tricks import sliding_window_view as windows

    t = np.arange(20, len(close) - 1)  # 20 days of history, one day ahead for the label
    daily = close[1:] / close[:-1] - 1.0  # daily[k] is the return of day k+1
    vol5 = windows(daily, 5).std(axis=1)  # window j ends on day j+5
    vol20 = windows(daily, 20).std(axis=1)  # window j ends on day j+20
    ma5 = windows(close, 5).mean(axis=1)  # window j ends on day j+4
    ma20 = windows(close, 20).mean(axis=1)  # window j ends on day j+19
    X = np.column_stack([
        close[t] / close[t - 1] - 1.0,
        close[t] / close[t - 5] - 1.0,
        close[t] / close[t - 20] - 1.0,
        vol5[t - 5],
        vol20[t - 20],
        ma5[t - 4] / ma20[t - 19] - 1.0,
    ])
    y = (close[t + 1] > close[t]).astype(np.int64)
    return X, y


class _NoGC:
    """Like timeit: no garbage collection inside a timed call (collected between calls)."""

    def __enter__(self) -> None:
        self.enabled = gc.isenabled()
        gc.disable()

    def __exit__(self, *exc: Any) -> None:
        if self.enabled:
            gc.enable()


def time_once(fn: Callable[[], Any]) -> float:
    with _NoGC():
        start = time.perf_counter()
        fn()
        return time.perf_counter() - start


def blocked(fns: list[Callable[[Any], Any]], args: list[list[Any]], repeats: int,
            warmup: int, block: int = 50) -> list[list[float]]:
    """Seconds per call of each of ``fns`` (fn k cycles through ``args[k]``), hot.

    The functions take turns in blocks of ``block`` back-to-back calls, each block after a few
    untimed warm-up calls: every call is timed hot (caches and thread pools awake), and a busy
    moment on the shared machine still hits every side alike. ``warmup`` calls of each function
    run first.
    """
    for i in range(warmup):
        for fn, a in zip(fns, args):
            fn(a[i % len(a)])
    times: list[list[float]] = [[] for _ in fns]
    perf = time.perf_counter
    gc.collect()
    with _NoGC():
        done = 0
        while done < repeats:
            n = min(block, repeats - done)
            for k, fn in enumerate(fns):
                a = args[k]
                for i in range(3):
                    fn(a[(done + i) % len(a)])
                for i in range(done, done + n):
                    arg = a[i % len(a)]
                    start = perf()
                    fn(arg)
                    times[k].append(perf() - start)
            done += n
    return times


def after_pause(fns: list[Callable[[Any], Any]], args: list[list[Any]], repeats: int,
                pause: float) -> list[list[float]]:
    """Seconds per call of each of ``fns`` when every call follows ``pause`` seconds idle.

    A trading loop predicts once per bar, so its calls meet cold caches and parked threads.
    """
    times: list[list[float]] = [[] for _ in fns]
    perf = time.perf_counter
    gc.collect()
    with _NoGC():
        for i in range(repeats):
            for k, fn in enumerate(fns):
                arg = args[k][i % len(args[k])]
                time.sleep(pause)
                start = perf()
                fn(arg)
                times[k].append(perf() - start)
    return times


def med(values: list[float]) -> float:
    return statistics.median(values)


def ratio(a: float, b: float) -> float:
    return a / b if b else float("nan")


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
    fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def table(title: str, header: list[str], rows: list[list[str]], out: Any) -> None:
    widths = [max(len(str(c)) for c in col) for col in zip(header, *rows)]
    print(f"\n{title}", file=out)
    line = "  ".join(h.rjust(w) if i else h.ljust(w)
                     for i, (h, w) in enumerate(zip(header, widths)))
    print(line, file=out)
    print("-" * len(line), file=out)
    for row in rows:
        print("  ".join(str(c).rjust(w) if i else str(c).ljust(w)
                        for i, (c, w) in enumerate(zip(row, widths))), file=out)


def ms(seconds: float) -> str:
    return f"{seconds * 1e3:.1f}" if seconds >= 0.01 else f"{seconds * 1e3:.2f}"


def x(value: float) -> str:
    return f"{value:.2f}x"


def loadavg() -> list[float] | None:
    """The 1, 5 and 15 minute load averages, rounded to 0.01, for a results file's
    environment block (a figure measured on a busy machine says so); None where the platform
    has none."""
    try:
        return [round(v, 2) for v in os.getloadavg()]
    except (AttributeError, OSError):
        return None


def versions(*distributions: str) -> dict[str, str]:
    """``{distribution: version}`` for the report header; ``"missing"`` where not installed."""
    from alphazoo.compat.installed import installed_version

    return {name: installed_version(name) or "missing" for name in distributions}


def environment(versions: dict[str, str], git: str | None, **extra: Any) -> dict[str, Any]:
    """Where and when a benchmark ran: the ``environment`` block of every results file."""
    return {
        "timestamp": datetime.now(timezone.utc).isoformat(timespec="seconds"),  # noqa: UP017
        "cpus": os.cpu_count(), "python": platform.python_version(),
        "platform": platform.platform(), "versions": versions, "git": git,
        "loadavg_start": loadavg(), **extra,
    }


def print_header(result: dict[str, Any], what: str, out: Any, *, details: str = "") -> None:
    """The first two report lines: what ran where, and the library versions."""
    info = result["environment"]
    print(f"alphazoo {info['versions'].get('alphazoo')} {what} benchmark, {info['timestamp']}, "
          f"{info['cpus']} CPUs, Python {info['python']}, "
          f"{'quick' if result['quick'] else 'full'} run, git {info['git']}", file=out)
    print("  " + ", ".join(f"{k} {v}" for k, v in info["versions"].items() if k != "alphazoo")
          + details, file=out)


def timed_sides(sides: dict[str, tuple[Callable[[], Any], Callable[[], Any]]], repeats: int,
                warmup: int) -> dict[str, list[float]]:
    """Seconds of each side's save and load (``{"az": (save, load), "direct": ...}``), run
    in turns.

    After ``warmup`` untimed rounds, each of ``repeats`` rounds times every side's save then
    load, rotating which side goes first, so drift (caches, CPU clock) hits all sides alike.
    Returns lists under ``<side>_save`` and ``<side>_load``.
    """
    order = list(sides.items())
    for _ in range(warmup):
        for save, load in sides.values():
            save()
            load()
    rows: dict[str, list[float]] = {f"{side}_{op}": [] for side in sides
                                    for op in ("save", "load")}
    for i in range(repeats):
        shift = i % len(order)
        for side, (save, load) in order[shift:] + order[:shift]:
            gc.collect()
            rows[f"{side}_save"].append(time_once(save))
            gc.collect()
            rows[f"{side}_load"].append(time_once(load))
    return rows


def paired_save_load(alphazoo: tuple[Callable[[], Any], Callable[[], Any]],
                     direct: tuple[Callable[[], Any], Callable[[], Any]],
                     repeats: int, warmup: int) -> dict[str, list[float]]:
    """:func:`timed_sides` of alphazoo's calls (``az``) and the library's (``direct``)."""
    return timed_sides({"az": alphazoo, "direct": direct}, repeats, warmup)


def save_load_summary(rows: dict[str, list[float]]) -> dict[str, float]:
    """Medians of :func:`timed_sides`' rows, each side's median round trip (save + load of
    the same round) as ``<side>_roundtrip``, and the ratios to the ``direct`` side:
    ``save_ratio``, ``load_ratio`` and ``roundtrip_ratio`` for ``az``,
    ``<side>_roundtrip_ratio`` for any other side."""
    out = {key: med(values) for key, values in rows.items()}
    sides = [key[:-len("_save")] for key in rows if key.endswith("_save")]
    for side in sides:
        out[f"{side}_roundtrip"] = med([save + load for save, load
                                        in zip(rows[f"{side}_save"], rows[f"{side}_load"])])
    out["save_ratio"] = ratio(out["az_save"], out["direct_save"])
    out["load_ratio"] = ratio(out["az_load"], out["direct_load"])
    out["roundtrip_ratio"] = ratio(out["az_roundtrip"], out["direct_roundtrip"])
    for side in sides:
        if side not in ("az", "direct"):
            out[f"{side}_roundtrip_ratio"] = ratio(out[f"{side}_roundtrip"],
                                                   out["direct_roundtrip"])
    return out


def manifest_fields(zoo: Any, saved: str, key: str) -> dict[str, Any]:
    """The manifest of the bundle saved under ``saved``, for ``key``, less what
    ``write_bundle`` adds (protocol, files, signature): what a bare ``write_bundle`` of the
    same payload needs to pass the reader's schema check."""
    fields = {k: v for k, v in zoo.inspect(saved).items()
              if k not in ("protocol", "files", "signature")}
    return {**fields, "key": key}
