"""The model registry at scale: do alias operations cost the same on a series of 10,000
versions as on one of 10?

Two series in one store: ``big`` with ``--versions`` versions (default 10,000) whose
``production`` alias was moved ``--moves`` times (default 1,000 history entries), and
``small`` with 10 versions and 5 moves. Each operation is timed ``--samples`` times on each
series, alternately, and the headline is the ratio of the medians, big over small (the goal:
within 1.3x for every operation but the listings):

- ``target``: what a live model polls, one read of the alias's head;
- ``resolve @alias``, ``resolve @vN``, ``resolve @latest``: the keys ``zoo.load`` takes;
- ``promote + rollback``: one move forward and one back (two history entries, two heads);
- ``aliases``: one folder listing and one read per alias.

``versions`` (one listing of the series folder, then a read per version), ``history``
(a read per entry) and a dry-run ``prune`` (the series listing, the aliases read once and the
pins listed once) grow with the series by nature; they are printed for context.

Versions are 1 KiB stand-in objects (the registry never reads a bundle for these operations).
The folder store lives under ``--folder`` (default ``/dev/shm``, a RAM file system, so that
what is timed is the registry's work and not fsyncs); ``--backend memory`` times
``memory://`` instead, ``--backend s3`` an S3 bucket on moto's server started in this
process (its versions are uploaded in bulk through s3fs; use fewer ``--moves``, each is a few
dozen requests). ``--quick``: 1,000 versions, 100 moves, fewer samples.
``--json [PATH]`` writes the figures.
"""

from __future__ import annotations

import argparse
import gc
import os
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
from alphazoo import ModelRegistry, ObjectStore  # noqa: E402
from alphazoo.training.model_versions import write_latest  # noqa: E402

PAYLOAD = os.urandom(1024)


def timed(fn: Callable[[], Any]) -> float:
    gc.disable()
    try:
        start = time.perf_counter()
        fn()
        return time.perf_counter() - start
    finally:
        gc.enable()


def make_series(registry: ModelRegistry, name: str, versions: int, moves: int,
                out: Any, bulk: Any = None) -> None:
    store = registry.store
    if bulk is not None:  # S3: one concurrent upload of every version, behind the store
        bulk({f"{name}/v{number:06d}": PAYLOAD for number in range(1, versions + 1)})
    else:
        for number in range(1, versions + 1):
            store.save_bytes(f"{name}/v{number:06d}", PAYLOAD)
            if number % 2000 == 0:
                print(f"  {name}: {number:,} versions", file=out, flush=True)
    write_latest(store, name, versions)
    for move in range(moves):
        registry.promote(name, 1 + (move * 7919) % versions, "production", actor="bench")
    registry.promote(name, 1, "staging", actor="bench")


def operations(registry: ModelRegistry, name: str, versions: int) -> dict[str, Callable[[], Any]]:
    def move_and_back() -> None:
        registry.promote(name, versions, "production", actor="bench")
        registry.rollback(name, "production", actor="bench")

    return {
        "target": lambda: registry.target(name, "production"),
        "resolve @alias": lambda: registry.resolve(f"{name}@production"),
        "resolve @vN": lambda: registry.resolve(f"{name}@v3"),
        "resolve @latest": lambda: registry.resolve(f"{name}@latest"),
        "promote + rollback": move_and_back,
        "aliases": lambda: registry.aliases(name),
    }


def start_moto() -> tuple[Any, dict[str, Any], str]:
    """moto's S3 server in this process, a bucket in it, the store's options and URL."""
    import boto3
    from moto.server import ThreadedMotoServer

    # Dummy credentials only: nothing may reach a real AWS account.
    os.environ.update(AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY="testing",
                      AWS_DEFAULT_REGION="us-east-1", AWS_CONFIG_FILE=os.devnull,
                      AWS_SHARED_CREDENTIALS_FILE=os.devnull)
    os.environ.pop("AWS_PROFILE", None)
    import logging

    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # moto logs every request
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    bucket = f"alphazoo-registry-{uuid.uuid4().hex[:8]}"
    boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1",
                 aws_access_key_id="testing",
                 aws_secret_access_key="testing").create_bucket(Bucket=bucket)
    options = {"endpoint_url": endpoint, "key": "testing", "secret": "testing",
               "client_kwargs": {"region_name": "us-east-1"}}
    return server, options, f"s3://{bucket}/store"


def bulk_upload(location: str, options: dict[str, Any]) -> Callable[[dict[str, bytes]], None]:
    """Upload ``{key: bytes}`` under the store's root in one concurrent s3fs call."""
    import fsspec

    fs, root = fsspec.core.url_to_fs(location, **options)

    def upload(objects: dict[str, bytes]) -> None:
        fs.pipe({f"{root}/{key}": data for key, data in objects.items()})
        fs.invalidate_cache()

    return upload


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--versions", type=int, default=10_000)
    parser.add_argument("--moves", type=int, default=1_000)
    parser.add_argument("--samples", type=int, default=200)
    parser.add_argument("--backend", choices=("local", "memory", "s3"), default="local")
    parser.add_argument("--folder", default="/dev/shm" if os.path.isdir("/dev/shm") else None)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--json", nargs="?", const="-", default=None, metavar="PATH")
    args = parser.parse_args()
    if args.quick:
        args.versions, args.moves, args.samples = 1_000, 100, 50
    out = sys.stderr if args.json == "-" else sys.stdout

    server = None
    with tempfile.TemporaryDirectory(dir=args.folder) as folder:
        options: dict[str, Any] = {}
        bulk = None
        if args.backend == "s3":
            server, options, location = start_moto()
            bulk = bulk_upload(location, options)
        elif args.backend == "local":
            location = os.path.join(folder, "store")
        else:
            location = f"memory://registry-bench-{uuid.uuid4().hex}"
        store = ObjectStore(location, max_files=args.versions + args.moves + 10_000,
                            storage_options=options)
        registry = ModelRegistry(store)
        print(f"filling {location}: big ({args.versions:,} versions, {args.moves:,} moves), "
              "small (10 versions, 5 moves)", file=out, flush=True)
        started = time.perf_counter()
        make_series(registry, "big", args.versions, args.moves, out, bulk)
        make_series(registry, "small", 10, 5, out, bulk)
        fill_seconds = time.perf_counter() - started

        big = operations(registry, "big", args.versions)
        small = operations(registry, "small", 10)
        rows = []
        for op in big:
            times: dict[str, list[float]] = {"big": [], "small": []}
            for _ in range(args.samples):
                times["small"].append(timed(small[op]))
                times["big"].append(timed(big[op]))
            b, s = statistics.median(times["big"]), statistics.median(times["small"])
            rows.append({"operation": op, "big_ms": b * 1e3, "small_ms": s * 1e3,
                         "ratio": b / s})
        context = []
        for op, fn_big, fn_small in (
            ("versions (listing)", lambda: registry.versions("big", facts=False),
             lambda: registry.versions("small", facts=False)),
            ("history", lambda: registry.history("big", "production"),
             lambda: registry.history("small", "production")),
            ("prune (dry run)", lambda: registry.prune("big", keep=5),
             lambda: registry.prune("small", keep=5)),
        ):
            b = statistics.median(timed(fn_big) for _ in range(5))
            s = statistics.median(timed(fn_small) for _ in range(5))
            context.append({"operation": op, "big_ms": b * 1e3, "small_ms": s * 1e3,
                            "ratio": b / s})

    if server is not None:
        server.stop()
    width = max(len(row["operation"]) for row in rows + context)
    print(f"\nregistry operations, {args.backend} store, median of {args.samples} "
          f"(big: {args.versions:,} versions, {args.moves:,} moves; small: 10, 5)", file=out)
    print(f"{'operation':<{width}}  {'big ms':>9}  {'small ms':>9}  {'big/small':>9}", file=out)
    for row in rows + [{"operation": "-- grow with the series, for context --"}] + context:
        if "ratio" not in row:
            print(row["operation"], file=out)
            continue
        print(f"{row['operation']:<{width}}  {row['big_ms']:>9.3f}  {row['small_ms']:>9.3f}  "
              f"{row['ratio']:>8.2f}x", file=out)
    print(f"(fill: {fill_seconds:.1f} s; load average {os.getloadavg()[0]:.1f})", file=out)
    if args.json is not None:
        write_json({"git": git_revision(), "alphazoo": alphazoo.__version__,
                    "backend": args.backend, "versions": args.versions, "moves": args.moves,
                    "samples": args.samples, "constant": rows, "growing": context,
                    "loadavg": os.getloadavg()}, args.json, out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
