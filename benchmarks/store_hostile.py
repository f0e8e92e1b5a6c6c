"""The object store under hostile input, at scale: a check, not a ratio benchmark.

1. **SIGKILL during saves** (folder store): ``--kills`` writer processes (default 200) are
   each started, left to save self-checking objects for a random moment and SIGKILLed. After
   every kill an observer store counts the temporary files on disk through ``usage()``; at the
   end a store opened afresh must leave 0 temporary files, exact usage, and only whole objects.
2. **Fuzzed keys** (``--keys`` per backend, default 100,000) on a folder store with symlinks
   planted in its root (one to a folder outside, one to a file outside, one inside), on
   ``memory://`` and on S3 (moto's server on 127.0.0.1, started here). Each key gets one random
   operation (save, read, get_file_path and a write to that path, delete, contains, size);
   every exception must be an ``AlphazooError``, nothing outside the root may change and no
   read may return the outside file's bytes.

Exits 1 on any finding. ``--json [PATH]`` writes the figures. Runtime on 2 busy cores: about
1 min for the kills, 1-2 min per 100,000 keys on local and memory, about 30 min on S3.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
import uuid
import warnings
from collections import Counter
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import git_revision, write_json  # noqa: E402

import alphazoo  # noqa: E402
from alphazoo import ObjectStore  # noqa: E402

WRITER = r"""
import hashlib, random, sys
import alphazoo

store = alphazoo.ObjectStore(sys.argv[1])
rng = random.Random()
print("ready", flush=True)
while True:
    body = rng.randbytes(rng.randint(1, 1 << 20))
    data = hashlib.sha256(body).hexdigest().encode() + body
    chunks = (data[i:i + 65536] for i in range(0, len(data), 65536))
    store.write_stream(f"w/{rng.randrange(6)}", chunks, len(data))
"""

SECRET = b"SECRET-OUTSIDE-THE-ROOT"
COLLIDING = ["a", "b", "a.x", "link", "flink", "alias"]
PIECES = ["a", "b", "a.x", "b.y", "..", ".", "", " ", "#$=", "-_", ".hidden", "link", "flink",
          "alias", "x" * 201, "a:b", "*", "\x00", "C:", "~", "é", "\u202e", "a\nb"]
CHARS = [chr(c) for c in range(32, 127)] + ["\x00", "\t", "\n", "é", "ß", "\u202e", "𝔸", "\\"]


# -- SIGKILL during saves ---------------------------------------------------------------------

def run_kills(kills: int, seed: int) -> dict[str, Any]:
    rng = random.Random(seed)
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder, "store")
        observer = ObjectStore(root)
        observer.save_bytes("seed", b"first listing done")
        seen = mismatches = 0
        seen_bytes = 0
        start = time.perf_counter()
        for _ in range(kills):
            child = subprocess.Popen([sys.executable, "-c", WRITER, str(root)],
                                     stdout=subprocess.PIPE, text=True)
            assert child.stdout is not None
            if child.stdout.readline() != "ready\n":
                raise SystemExit("a writer did not start")
            time.sleep(rng.uniform(0.0, 0.1))
            child.send_signal(signal.SIGKILL)
            child.wait()
            child.stdout.close()
            on_disk = {p: p.stat().st_size for p in root.rglob(".*.tmp")}
            usage = observer.usage()
            if (usage.temp_files, usage.temp_bytes) != (len(on_disk), sum(on_disk.values())):
                mismatches += 1
            seen += len(on_disk)
            seen_bytes += sum(on_disk.values())
        seconds = time.perf_counter() - start
        fresh = ObjectStore(root)
        usage = fresh.usage()
        temp_left = len(list(root.rglob(".*.tmp")))
        sizes, torn = {}, 0
        for key in fresh.keys():
            data = fresh.read_bytes(key)
            sizes[key] = len(data)
            if key != "seed" and hashlib.sha256(data[64:]).hexdigest().encode() != data[:64]:
                torn += 1
        files = {p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()}
        return {
            "kills": kills,
            "leftovers_seen_after_kills": seen,
            "leftover_bytes_seen": seen_bytes,
            "usage_miscounts_while_present": mismatches,
            "temp_files_after_next_open": temp_left,
            "usage_temp_files_after_next_open": usage.temp_files,
            "usage_exact": (usage.objects, usage.bytes) == (len(sizes), sum(sizes.values())),
            "stray_files": sorted(files - set(sizes) - {".alphazoo.lock"}),
            "torn_objects": torn,
            "seconds": round(seconds, 1),
        }


# -- fuzzed keys ---------------------------------------------------------------------------------

def fuzz_key(rng: random.Random) -> str:
    roll = rng.random()
    if roll < 0.6:
        return "/".join(rng.choice(COLLIDING) for _ in range(rng.randint(1, 3)))
    if roll < 0.9:
        parts = [rng.choice(PIECES) if rng.random() < 0.5 else text(rng, 4)
                 for _ in range(rng.randint(1, 5))]
        return rng.choice(["/", "\\"]).join(parts)
    return text(rng, rng.randint(0, 40))


def text(rng: random.Random, most: int) -> str:
    return "".join(rng.choice(CHARS) for _ in range(rng.randint(0, most)))


def operate(store: ObjectStore, rng: random.Random, key: str) -> object:
    operation = rng.choice(["save", "save", "read", "get_file_path", "write_path", "delete",
                            "contains", "size"])
    if operation == "save":
        return store.save_bytes(key, rng.randbytes(rng.randint(0, 64)))
    if operation == "read":
        return store.read_bytes(key)
    if operation == "get_file_path":
        return store.get_file_path(key)
    if operation == "write_path":
        path = store.get_file_path(key)
        with open(path, "wb") as handle:
            handle.write(b"from a library")
        return path
    if operation == "delete":
        return store.delete(key)
    if operation == "contains":
        return store.contains_key(key)
    return store.size(key)


def outside_state(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


def run_fuzz(kind: str, keys: int, seed: int, s3: dict[str, Any] | None) -> dict[str, Any]:
    rng = random.Random(seed)
    untyped: Counter[str] = Counter()
    examples: dict[str, str] = {}
    typed: Counter[str] = Counter()
    escapes = 0
    with tempfile.TemporaryDirectory() as folder:
        outside = Path(folder, "outside")
        outside.mkdir()
        (outside / "secret").write_bytes(SECRET)
        before = outside_state(outside)
        options: dict[str, Any] = {}
        if kind == "local":
            root = Path(folder, "store")
            root.mkdir()
            os.symlink(outside, root / "link")
            os.symlink(outside / "secret", root / "flink")
            (root / "real").mkdir()
            os.symlink(root / "real", root / "alias")
            location = str(root)
        elif kind == "memory":
            location = f"memory://fuzz-{uuid.uuid4().hex}"
        else:
            assert s3 is not None
            location = f"s3://{s3['bucket']}/fuzz-{uuid.uuid4().hex}"
            options = s3["options"]
        store = ObjectStore(location, storage_options=options or None)
        start = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # copies that cannot be uploaded warn: expected
            for n in range(keys):
                key = fuzz_key(rng)
                try:
                    if operate(store, rng, key) == SECRET:
                        escapes += 1
                except alphazoo.AlphazooError as exc:
                    typed[type(exc).__name__] += 1
                except Exception as exc:  # noqa: BLE001 - what this script counts
                    name = type(exc).__name__
                    untyped[name] += 1
                    examples.setdefault(name, f"{key!r}: {exc}")
                if n % 500 == 499:  # keep listings short: every save lists the store
                    try:
                        store.close()
                        store.clear()
                    except alphazoo.AlphazooError as exc:
                        typed[type(exc).__name__] += 1
                    store = ObjectStore(location, storage_options=options or None)
        seconds = time.perf_counter() - start
        if outside_state(outside) != before:
            escapes += 1
        if kind == "local":
            outside_files = {p.name for p in Path(folder).iterdir()} - {"store", "outside"}
            escapes += len(outside_files)
    return {
        "backend": kind,
        "keys": keys,
        "untyped": sum(untyped.values()),
        "untyped_by_type": dict(untyped),
        "untyped_examples": examples,
        "typed_by_type": dict(typed),
        "paths_outside_root": escapes,
        "seconds": round(seconds, 1),
    }


def moto_server() -> tuple[Any, dict[str, Any]]:
    import boto3
    from moto.server import ThreadedMotoServer

    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        os.environ[name] = "testing"  # dummy credentials: nothing may reach a real account
    os.environ["AWS_DEFAULT_REGION"] = "us-east-1"
    os.environ["NO_PROXY"] = os.environ["no_proxy"] = "127.0.0.1,localhost"
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    bucket = f"alphazoo-fuzz-{uuid.uuid4().hex[:12]}"
    boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1").create_bucket(
        Bucket=bucket)
    options = {"endpoint_url": endpoint, "key": "testing", "secret": "testing",
               "client_kwargs": {"region_name": "us-east-1"}}
    return server, {"bucket": bucket, "options": options}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--kills", type=int, default=200, help="writers to SIGKILL (0: skip)")
    parser.add_argument("--keys", type=int, default=100_000, help="fuzzed keys per backend")
    parser.add_argument("--backends", default="local,memory,s3",
                        help="comma-separated: local, memory, s3 (default: %(default)s)")
    parser.add_argument("--seed", type=int, default=2026)
    parser.add_argument("--json", nargs="?", const="-", metavar="PATH")
    args = parser.parse_args()
    import logging

    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    out = sys.stderr if args.json == "-" else sys.stdout
    result: dict[str, Any] = {"revision": git_revision(), "fuzz": []}
    findings = 0
    if args.kills:
        kills = run_kills(args.kills, args.seed)
        result["kills"] = kills
        print(f"SIGKILL: {kills}", file=out, flush=True)
        findings += (kills["temp_files_after_next_open"] + kills["usage_temp_files_after_next_open"]
                     + kills["usage_miscounts_while_present"] + kills["torn_objects"]
                     + len(kills["stray_files"]) + (not kills["usage_exact"]))
    server = None
    for kind in [name.strip() for name in args.backends.split(",") if name.strip()]:
        s3 = None
        if kind == "s3":
            server, s3 = moto_server()
        fuzz = run_fuzz(kind, args.keys, args.seed, s3)
        result["fuzz"].append(fuzz)
        print(f"fuzz: {fuzz}", file=out, flush=True)
        findings += fuzz["untyped"] + fuzz["paths_outside_root"]
    if server is not None:
        server.stop()
    if args.json:
        write_json(result, args.json, out)
    print(f"{findings} finding(s)", file=out)
    return 1 if findings else 0


if __name__ == "__main__":
    sys.exit(main())
