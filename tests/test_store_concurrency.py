"""Several processes on one local store: readers never see a torn object while writers replace
it, and the limits hold across processes (the store's lock file serialises check-then-write).

Workers are real processes started with the 'spawn' context (safe even when the session runs
threads, such as moto's server), so they import this module by name (pytest's default
``prepend`` import mode); they report through a queue and every run is time-bounded.
"""

from __future__ import annotations

import hashlib
import multiprocessing
import queue
import random
import sys
import time
import traceback
from pathlib import Path
from typing import Any

import pytest

import alphazoo

# Trains real models or starts real processes and servers: deselect with -m 'not slow'.
pytestmark = pytest.mark.slow

CTX = multiprocessing.get_context("spawn")
STARTUP_TIMEOUT = 60.0  # spawning imports alphazoo afresh in every worker
WRITE_SECONDS = 1.0
CHUNK = 16 * 1024


# -- self-checking payloads ------------------------------------------------------------------

def make_payload(rng: random.Random, writer: int, version: int) -> bytes:
    """``<body length>:<sha256 of body>:<writer>:<version>\\n`` followed by the body."""
    body = rng.randbytes(rng.randint(1, 256 * 1024))
    digest = hashlib.sha256(body).hexdigest()
    return f"{len(body)}:{digest}:{writer}:{version}\n".encode() + body


def check_payload(data: bytes) -> str:
    """The payload's version id; raises ValueError when the object is torn or mixed."""
    header, newline, body = data.partition(b"\n")
    if not newline:
        raise ValueError(f"no header line in {len(data)} bytes")
    length, digest, writer, version = header.decode().split(":")
    if len(body) != int(length):
        raise ValueError(f"body is {len(body)} bytes, header says {length}")
    if hashlib.sha256(body).hexdigest() != digest:
        raise ValueError("body does not match the header's sha256")
    return f"{writer}:{version}"


def test_payload_check_catches_torn_and_mixed_objects() -> None:
    rng = random.Random(1)
    first, second = make_payload(rng, 0, 0), make_payload(rng, 1, 0)
    assert check_payload(first) == "0:0"
    with pytest.raises(ValueError):
        check_payload(first[: len(first) // 2])  # truncated
    with pytest.raises(ValueError):
        check_payload(first[:80] + second[80:])  # two writes interleaved
    with pytest.raises(ValueError):
        check_payload(b"")


# -- workers (module level, so spawned processes can import them) ------------------------------

def _report_failure(results: Any, role: str, worker: int) -> None:
    results.put({"role": role, "worker": worker, "error": traceback.format_exc()})


def _writer(root: str, keys: list[str], worker: int, barrier: Any, results: Any) -> None:
    try:
        store = alphazoo.ObjectStore(root)
        rng = random.Random(worker)
        barrier.wait(STARTUP_TIMEOUT)
        deadline = time.monotonic() + WRITE_SECONDS
        writes = 0
        while time.monotonic() < deadline:
            for key in keys:
                data = make_payload(rng, worker, writes)
                # Many chunks: a non-atomic write would be visible half-done for a while.
                chunks = (data[i:i + CHUNK] for i in range(0, len(data), CHUNK))
                store.write_stream(key, chunks, len(data))
                writes += 1
        results.put({"role": "writer", "worker": worker, "writes": writes})
    except BaseException:
        _report_failure(results, "writer", worker)


def _reader(root: str, keys: list[str], worker: int, barrier: Any, stop: Any,
            results: Any) -> None:
    try:
        store = alphazoo.ObjectStore(root)
        barrier.wait(STARTUP_TIMEOUT)
        reads, torn, versions = 0, [], set()
        while not stop.is_set():
            for key in keys:
                data = store.read_bytes(key)
                reads += 1
                try:
                    versions.add((key, check_payload(data)))
                except ValueError as exc:
                    torn.append(f"{key}: {exc}")
        results.put({"role": "reader", "worker": worker, "reads": reads, "torn": torn[:5],
                     "torn_count": len(torn), "versions": len(versions)})
    except BaseException:
        _report_failure(results, "reader", worker)


def _saver(root: str, limits: dict[str, int], worker: int, attempts: int, size: int,
           barrier: Any, results: Any) -> None:
    try:
        store = alphazoo.ObjectStore(root, **limits)
        barrier.wait(STARTUP_TIMEOUT)
        saved, refused = [], []
        for i in range(attempts):
            key = f"worker{worker}/obj{i}"
            try:
                store.save_bytes(key, bytes([worker]) * size)
                saved.append(key)
            except alphazoo.StorageLimitError as exc:
                refused.append(exc.limit)
        results.put({"role": "saver", "worker": worker, "saved": saved, "refused": refused})
    except BaseException:
        _report_failure(results, "saver", worker)


def _collect(results: Any, expected: int) -> list[dict[str, Any]]:
    reports = []
    deadline = time.monotonic() + STARTUP_TIMEOUT + 30
    while len(reports) < expected:
        try:
            reports.append(results.get(timeout=max(0.1, deadline - time.monotonic())))
        except queue.Empty:
            break
        if time.monotonic() > deadline:
            break
    errors = [report["error"] for report in reports if "error" in report]
    assert not errors, "a worker failed:\n" + "\n".join(errors)
    assert len(reports) == expected, f"only {len(reports)} of {expected} workers reported"
    return reports


def _finish(processes: list[Any]) -> None:
    for process in processes:
        process.join(timeout=30)
    alive = [process for process in processes if process.is_alive()]
    for process in alive:
        process.kill()  # only our own workers, by their handle
        process.join(timeout=5)
    assert not alive, f"{len(alive)} workers did not finish"
    assert [process.exitcode for process in processes] == [0] * len(processes)


# -- the tests ---------------------------------------------------------------------------------

def test_readers_never_see_a_torn_object(tmp_path: Path) -> None:
    root = str(tmp_path / "store")
    keys = ["shared/a.bin", "shared/b.bin", "c.bin"]
    seed = alphazoo.ObjectStore(root)
    rng = random.Random(-1)
    for key in keys:
        seed.save_bytes(key, make_payload(rng, -1, 0))

    n_writers, n_readers = 3, 2
    barrier = CTX.Barrier(n_writers + n_readers)
    stop = CTX.Event()
    results = CTX.Queue()
    writers = [CTX.Process(target=_writer, args=(root, keys, w, barrier, results))
               for w in range(n_writers)]
    readers = [CTX.Process(target=_reader, args=(root, keys, r, barrier, stop, results))
               for r in range(n_readers)]
    processes = writers + readers
    try:
        for process in processes:
            process.start()
        for process in writers:
            process.join(timeout=STARTUP_TIMEOUT + 30)
        stop.set()
        reports = _collect(results, len(processes))
    finally:
        stop.set()
        _finish(processes)

    writer_reports = [r for r in reports if r["role"] == "writer"]
    reader_reports = [r for r in reports if r["role"] == "reader"]
    assert sum(r["torn_count"] for r in reader_reports) == 0, [r["torn"] for r in reader_reports]
    assert all(r["writes"] > 0 for r in writer_reports)
    assert all(r["reads"] > 0 for r in reader_reports)
    # The readers really raced the writers: they saw the objects change under them.
    assert sum(r["versions"] for r in reader_reports) > len(keys)

    # What is left is complete, and no temporary file survived.
    store = alphazoo.ObjectStore(root)
    assert store.keys() == sorted(keys)
    for key in keys:
        check_payload(store.read_bytes(key))
    on_disk = {p.relative_to(root).as_posix() for p in Path(root).rglob("*") if p.is_file()}
    assert on_disk == set(keys) | {".alphazoo.lock"}


@pytest.mark.skipif(sys.platform == "win32", reason="the cross-process lock uses fcntl (POSIX)")
@pytest.mark.parametrize("limit", ["max_files", "max_size"])
def test_limits_hold_across_processes(tmp_path: Path, limit: str) -> None:
    root = str(tmp_path / "store")
    n_workers, attempts, size, room = 4, 6, 100, 7
    limits = {"max_files": room} if limit == "max_files" else {"max_size": room * size}
    barrier = CTX.Barrier(n_workers)
    results = CTX.Queue()
    processes = [
        CTX.Process(target=_saver, args=(root, limits, w, attempts, size, barrier, results))
        for w in range(n_workers)
    ]
    try:
        for process in processes:
            process.start()
        reports = _collect(results, n_workers)
    finally:
        _finish(processes)

    saved = [key for report in reports for key in report["saved"]]
    refused = [name for report in reports for name in report["refused"]]
    # Every attempt either succeeded or was refused with the limit that applied...
    assert len(saved) + len(refused) == n_workers * attempts
    assert set(refused) == {limit}
    # ...and together the processes filled the store exactly to its limit, never past it.
    store = alphazoo.ObjectStore(root, **limits)
    ledger = store.usage(recount=False)  # the record the processes updated, as they left it
    assert (ledger.objects, ledger.bytes, ledger.temp_files) == (room, room * size, 0)
    usage = store.usage()
    assert usage.objects <= room and usage.bytes <= room * size  # never past the limit
    assert (usage.objects, usage.bytes) == (room, room * size)  # and filled up to it
    assert len(saved) == room
    assert store.keys() == sorted(saved)
    for key in saved:
        worker = int(key.split("/")[0].removeprefix("worker"))
        assert store.read_bytes(key) == bytes([worker]) * size
