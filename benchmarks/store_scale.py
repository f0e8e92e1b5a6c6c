"""The object store at scale: does a save cost the same in a full store as in an empty one?

1. **save_bytes of 1 KiB**, empty store vs a store of ``--objects`` objects (default 100,000),
   on a folder store and on ``memory://``: medians of ``--samples`` saves each, the two stores
   timed alternately in the same run; the headline is their ratio (the goal: within 1.3x).
2. **Filling** the store to ``--objects`` objects one ``save_bytes`` at a time (the store's own
   public API, nothing written behind its back): seconds per 10,000 objects across the fill.
   Linear time means those blocks stay flat; the last block over the first is printed.
3. **Small-model overhead**: ``zoo.save`` of a tiny scikit-learn model (pickle format) next to
   the library's own ``pickle.dump`` into a file in the same folder, and the bare store save of
   the same bytes; ``zoo.load`` next to ``pickle.load``; medians, with the differences in
   milliseconds.

Run: ``python benchmarks/store_scale.py --objects 100000``. The folder stores live under
``--folder`` (default ``/dev/shm`` where it exists, a RAM file system, else the temporary
directory): there an fsync costs nothing, so what is timed is the store's own work, and any
cost that grows with the store shows in full. On a disk every save also pays two fsyncs
(about 3-6 ms here), which makes a 100,000-object fill take 10-20 min and hides such costs;
``--folder /tmp --objects 10000`` measures that case. ``--quick`` uses 10,000 objects and
fewer samples (a smoke test). ``--json [PATH]`` writes the figures.
"""

from __future__ import annotations

import argparse
import gc
import os
import pickle
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import git_revision, write_json  # noqa: E402

import alphazoo  # noqa: E402
from alphazoo import ObjectStore  # noqa: E402
from alphazoo.bundle import write_bundle  # noqa: E402

PAYLOAD = os.urandom(1024)
BLOCK = 10_000


def timed(fn: Callable[[], Any]) -> float:
    gc.disable()
    try:
        start = time.perf_counter()
        fn()
        return time.perf_counter() - start
    finally:
        gc.enable()


def fill(store: ObjectStore, count: int, out: Any) -> tuple[list[float], list[float]]:
    """Save ``count`` 1 KiB objects; wall and CPU seconds per block of 10,000 (or fewer at
    the end). CPU time is this process's own work, which other load on the machine does not
    stretch the way it stretches wall time."""
    walls, cpus = [], []
    start, cpu = time.perf_counter(), time.process_time()
    for index in range(count):
        store.save_bytes(f"fill/{index // 1000:04d}/{index:06d}", PAYLOAD)
        if (index + 1) % BLOCK == 0 or index + 1 == count:
            now, now_cpu = time.perf_counter(), time.process_time()
            walls.append(now - start)
            cpus.append(now_cpu - cpu)
            start, cpu = now, now_cpu
            print(f"  {store.url}: {index + 1:,} objects", file=out, flush=True)
    return walls, cpus


def paired_saves(empty: ObjectStore, full: ObjectStore, samples: int) -> tuple[float, float]:
    """Medians of 1 KiB saves of new keys into each store, alternating between them."""
    times: dict[str, list[float]] = {"empty": [], "full": []}
    for index in range(samples):
        for name, store in (("empty", empty), ("full", full)):
            key = f"probe/{index:06d}"
            times[name].append(timed(lambda store=store, key=key: store.save_bytes(key, PAYLOAD)))
    for store in (empty, full):  # not timed: the stores go back to what they held
        for index in range(samples):
            store.delete(f"probe/{index:06d}")
    return statistics.median(times["empty"]), statistics.median(times["full"])


def backend_figures(kind: str, objects: int, samples: int, root: Path,
                    out: Any) -> dict[str, Any]:
    limits = {"max_files": objects + 10 * samples, "max_size": 1 << 40}
    if kind == "local":
        empty = ObjectStore(root / "empty", **limits)
        full = ObjectStore(root / "full", **limits)
    else:
        name = uuid.uuid4().hex
        empty = ObjectStore(f"memory://scale-empty-{name}", **limits)
        full = ObjectStore(f"memory://scale-full-{name}", **limits)
    blocks, cpu_blocks = fill(full, objects, out)
    assert full.usage().objects == objects
    empty_median, full_median = paired_saves(empty, full, samples)
    figures = {
        "objects": objects,
        "save_1kib_empty_ms": empty_median * 1e3,
        "save_1kib_full_ms": full_median * 1e3,
        "ratio_full_over_empty": full_median / empty_median,
        "fill_seconds_per_block": blocks,
        "fill_cpu_seconds_per_block": cpu_blocks,
        "fill_cpu_last_over_first_block": cpu_blocks[-1] / cpu_blocks[0]
        if len(cpu_blocks) > 1 else 1.0,
        "fill_block": BLOCK,
        "fill_total_seconds": sum(blocks),
        "fill_last_over_first_block": blocks[-1] / blocks[0] if len(blocks) > 1 else 1.0,
    }
    empty.delete_all() if kind == "memory" else None
    full.delete_all() if kind == "memory" else None
    return figures


def small_model(root: Path, samples: int) -> dict[str, Any]:
    """zoo.save of a tiny fitted model vs pickle.dump into a file, same folder (``root``)."""
    import numpy as np
    from sklearn.linear_model import LogisticRegression

    rng = np.random.default_rng(0)
    features = rng.normal(size=(200, 6))
    model = LogisticRegression().fit(features, features[:, 0] > 0)
    folder = root / "small"
    folder.mkdir()
    zoo = alphazoo.Zoo(ObjectStore(folder / "store"))
    store = zoo.store
    data = pickle.dumps(model, protocol=5)
    direct_path = folder / "direct.pkl"
    staged = folder / "staged"
    staged.mkdir()

    def direct() -> None:
        with open(direct_path, "wb") as handle:
            pickle.dump(model, handle, protocol=5)

    def direct_fsync() -> None:
        with open(direct_path, "wb") as handle:
            pickle.dump(model, handle, protocol=5)
            handle.flush()
            os.fsync(handle.fileno())

    def direct_load() -> None:
        with open(direct_path, "rb") as handle:
            pickle.load(handle)

    def staged_bundle() -> None:
        # What a bundle costs without a temporary folder per save: the payload written to
        # one staged file, then packed (manifest, hashes) into the store.
        with open(staged / "model.pkl", "wb") as handle:
            pickle.dump(model, handle, protocol=5)
        write_bundle(store, "models/staged", {"adapter": "sklearn", "format": "pickle"},
                     staged, ["model.pkl"])

    calls = {
        "pickle.dump": direct,
        "pickle.dump + fsync": direct_fsync,
        "store.save_bytes(pickle bytes)": lambda: store.save_bytes("raw/model", data),
        "pickle.dump + write_bundle": staged_bundle,
        "zoo.save(format='pickle')": lambda: zoo.save(model, "models/tiny", format="pickle"),
        "pickle.load": direct_load,
        "zoo.load(trusted=True)": lambda: zoo.load("models/tiny", trusted=True),
    }
    for fn in calls.values():  # warm up: imports, folders, first writes
        fn()
    times: dict[str, list[float]] = {name: [] for name in calls}
    for _ in range(samples):
        for name, fn in calls.items():
            times[name].append(timed(fn))
    medians = {name: statistics.median(values) * 1e3 for name, values in times.items()}
    return {"payload_bytes": len(data), "folder": str(root), "median_ms": medians,
            "zoo_minus_pickle_dump_fsync_ms":
                medians["zoo.save(format='pickle')"] - medians["pickle.dump + fsync"],
            "zoo_load_minus_pickle_load_ms":
                medians["zoo.load(trusted=True)"] - medians["pickle.load"],
            "bundle_minus_pickle_dump_fsync_ms":
                medians["pickle.dump + write_bundle"] - medians["pickle.dump + fsync"]}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--objects", type=int, default=100_000)
    parser.add_argument("--samples", type=int, default=300, help="timed saves per store")
    parser.add_argument("--backends", default="local,memory")
    parser.add_argument("--folder", type=Path, default=Path("/dev/shm") if Path("/dev/shm").is_dir()
                        else None, help="where the folder stores are made (default /dev/shm)")
    parser.add_argument("--quick", action="store_true", help="10,000 objects, 100 samples")
    parser.add_argument("--json", nargs="?", const="-", metavar="PATH")
    args = parser.parse_args()
    if args.quick:
        args.objects, args.samples = 10_000, 100
    out = sys.stderr if args.json == "-" else sys.stdout
    result: dict[str, Any] = {"git": git_revision(), "backends": {}}
    with tempfile.TemporaryDirectory(prefix="alphazoo-scale-", dir=args.folder) as folder:
        root = Path(folder)
        result["folder"] = folder
        print(f"folder stores in {folder}", file=out)
        for kind in args.backends.split(","):
            print(f"{kind}: filling {args.objects:,} objects", file=out, flush=True)
            result["backends"][kind] = figures = backend_figures(
                kind, args.objects, args.samples, root, out)
            blocks = ", ".join(f"{value:.1f}" for value in figures["fill_seconds_per_block"])
            cpus = ", ".join(f"{value:.1f}" for value in figures["fill_cpu_seconds_per_block"])
            print(f"\n{kind}: save_bytes 1 KiB, median of {args.samples}\n"
                  f"  empty store          {figures['save_1kib_empty_ms']:.3f} ms\n"
                  f"  {args.objects:,}-object store {figures['save_1kib_full_ms']:.3f} ms\n"
                  f"  ratio full/empty     {figures['ratio_full_over_empty']:.2f}x\n"
                  f"  fill: {figures['fill_total_seconds']:.1f} s; seconds per {BLOCK:,}: "
                  f"{blocks}; last/first block "
                  f"{figures['fill_last_over_first_block']:.2f}x\n"
                  f"  fill CPU seconds per {BLOCK:,}: {cpus}; last/first block "
                  f"{figures['fill_cpu_last_over_first_block']:.2f}x\n", file=out, flush=True)
    # Twice: in --folder (RAM: the work alphazoo adds, with nothing hidden behind an fsync)
    # and in the temporary directory (the disk: what a user's save sees, where the library's
    # own durable write pays its fsync too).
    result["small_model"] = {}
    for where in (args.folder, None):
        with tempfile.TemporaryDirectory(prefix="alphazoo-small-", dir=where) as folder:
            small = small_model(Path(folder), args.samples)
        result["small_model"][folder] = small
        print(f"small model ({small['payload_bytes']:,}-byte pickle) in {folder}, median "
              f"of {args.samples}:", file=out)
        for name, value in small["median_ms"].items():
            print(f"  {name:32} {value:.3f} ms", file=out)
        for name in ("zoo", "bundle"):
            print(f"  {name} - (pickle.dump + fsync): "
                  f"{small[f'{name}_minus_pickle_dump_fsync_ms']:.3f} ms", file=out)
        print(f"  zoo.load - pickle.load: {small['zoo_load_minus_pickle_load_ms']:.3f} ms",
              file=out)
    if args.json:
        write_json(result, args.json, out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
