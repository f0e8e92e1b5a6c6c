"""Writers SIGKILLed mid-save: real child processes, killed at random points of their saves.

What must hold afterwards: every object left is whole (old or new, self-checking), the
temporary files of the killed writers count in ``usage()`` while they exist, and the next
store opened on the folder (its first listing) removes them, leaving exact usage and no file
that is not an object. The same for get_file_path staging folders in the temporary
directory, through ``fsck``. ``benchmarks/store_hostile.py`` runs the same loop 200 times.
"""

from __future__ import annotations

import hashlib
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
from _child import HANG_TIMEOUT

import alphazoo
from alphazoo import ObjectStore

pytestmark = [pytest.mark.skipif(sys.platform == "win32", reason="SIGKILL is POSIX"),
              pytest.mark.slow]  # a fresh interpreter per killed writer

KILLS = 25

#: A writer that saves self-checking objects (sha256 hex, then the body) until it is killed.
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

#: A remote store's get_file_path copy, written and then left pending until the kill.
STAGER = r"""
import sys, time, alphazoo

store = alphazoo.ObjectStore("memory://stager")
with open(store.get_file_path("model.bin"), "wb") as handle:
    handle.write(b"x" * 1000)
print("ready", flush=True)
time.sleep(3600)
"""


def start(code: str, *args: str, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    child = subprocess.Popen([sys.executable, "-c", code, *args], stdout=subprocess.PIPE,
                             text=True, env={**os.environ, **(env or {})})
    assert child.stdout is not None
    assert child.stdout.readline() == "ready\n", "the child did not start"
    return child


def kill(child: subprocess.Popen[str]) -> None:
    child.send_signal(signal.SIGKILL)  # our own child, by its handle
    child.wait(timeout=HANG_TIMEOUT)
    assert child.stdout is not None
    child.stdout.close()


def raw_temp_files(root: Path) -> dict[str, int]:
    return {str(path.relative_to(root)): path.stat().st_size for path in root.rglob(".*.tmp")}


def check_object(data: bytes) -> None:
    digest, body = data[:64], data[64:]
    assert hashlib.sha256(body).hexdigest().encode() == digest, "a torn object"


def kill_writers(root: Path, kills: int, seed: int) -> int:
    """SIGKILL ``kills`` writers mid-save; returns how many leftovers were seen on disk.

    An observer store (already listed once, so it sweeps nothing) checks after every kill
    that usage() counts exactly the temporary files on disk.
    """
    observer = ObjectStore(root)
    observer.save_bytes("seed", b"first listing done")
    rng = random.Random(seed)
    seen = 0
    for _ in range(kills):
        child = start(WRITER, str(root))
        time.sleep(rng.uniform(0.0, 0.1))  # a random point of some save (not a timing claim)
        kill(child)
        on_disk = raw_temp_files(root)
        usage = observer.usage()
        assert (usage.temp_files, usage.temp_bytes) == (len(on_disk), sum(on_disk.values()))
        seen += len(on_disk)
    return seen


def test_sigkilled_writers_leave_nothing_after_the_next_open(tmp_path: Path) -> None:
    root = tmp_path / "store"
    seen = kill_writers(root, KILLS, seed=11)
    assert seen > 0, "no writer was killed mid-save: the test proved nothing"

    fresh = ObjectStore(root)
    ledger = fresh.usage(recount=False)  # what the next save is checked against
    usage = fresh.usage()
    assert (ledger.objects, ledger.bytes, ledger.temp_files) == (
        usage.objects, usage.bytes, 0)
    assert raw_temp_files(root) == {}
    assert (usage.temp_files, usage.temp_bytes) == (0, 0)
    keys = fresh.keys()
    sizes = {}
    for key in keys:
        data = fresh.read_bytes(key)
        if key != "seed":
            check_object(data)
        sizes[key] = len(data)
    assert (usage.objects, usage.bytes) == (len(keys), sum(sizes.values()))
    on_disk = {p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()}
    assert on_disk == set(keys) | {".alphazoo.lock"}


def test_a_killed_processes_staging_folder_is_removed_by_fsck(tmp_path: Path,
                                                             monkeypatch) -> None:
    temp = tmp_path / "tmp"
    temp.mkdir()
    env = {"TMPDIR": str(temp)}
    alive = start(STAGER, env=env)  # first: a new stager sweeps dead ones on its own
    kill(start(STAGER, env=env))
    try:
        monkeypatch.setattr(tempfile, "tempdir", str(temp))
        store = ObjectStore(tmp_path / "store")
        dry = {Path(item.where).parent: item for item in store.fsck().leftovers}
        assert set(dry) == {temp}
        report = store.fsck(remove=True)
        states = sorted((item.state, item.removed, item.bytes) for item in report.leftovers)
        assert states == [("alive", False, 1000), ("dead", True, 1000)]
        left = [p.name for p in temp.iterdir()]
        assert len(left) == 1 and left[0].startswith("alphazoo-staged-")
    finally:
        kill(alive)
    report = ObjectStore(tmp_path / "store").fsck(remove=True)
    assert [item.state for item in report.removed] == ["dead"]
    assert list(temp.iterdir()) == []



#: A writer that SIGKILLs itself at a chosen point of one save or delete (argv[2]).
CHOSEN = r"""
import os, pathlib, signal, sys
import alphazoo
from alphazoo import backends

root, point = sys.argv[1], sys.argv[2]
store = alphazoo.ObjectStore(root)

def die(*args, **kwargs):
    os.kill(os.getpid(), signal.SIGKILL)

if point == "before-object":  # the ledger is marked pending, no byte of the object written
    backends.LocalBackend.write = die
elif point == "after-rename":  # the object is in place, the ledger not yet updated
    real_replace = os.replace
    def replace(source, target):
        real_replace(source, target)
        die()
    os.replace = replace
elif point == "torn-record":  # half way through rewriting the ledger's record
    os.ftruncate = die
elif point == "after-unlink":  # a delete removed the object, the ledger not yet updated
    real_unlink = pathlib.Path.unlink
    def unlink(self, *args, **kwargs):
        real_unlink(self, *args, **kwargs)
        die()
    pathlib.Path.unlink = unlink
if point == "after-unlink":
    store.delete("k/old")
else:
    store.save_bytes("k/new", b"n" * 100)
print("not killed", flush=True)
"""


def objects_on_disk(root: Path) -> tuple[int, int]:
    """(objects, bytes) of the non-hidden files under ``root``, read from the disk."""
    files = [path for path in root.rglob("*") if path.is_file()
             and not any(part.startswith(".") for part in path.relative_to(root).parts)]
    return len(files), sum(path.stat().st_size for path in files)


@pytest.mark.parametrize("point", ["before-object", "after-rename", "torn-record",
                                   "after-unlink"])
def test_a_writer_killed_at_any_step_leaves_usage_exact_at_the_next_open(
        tmp_path: Path, point: str) -> None:
    root = tmp_path / "store"
    store = ObjectStore(root, max_files=4)
    store.save_bytes("k/old", b"o" * 50)
    store.save_bytes("k/a", b"a" * 7)
    child = subprocess.run([sys.executable, "-c", CHOSEN, str(root), point],
                           capture_output=True, text=True, timeout=HANG_TIMEOUT)
    assert child.returncode == -signal.SIGKILL, child.stdout + child.stderr
    expected = {"before-object": (2, 57), "after-rename": (3, 157), "torn-record": (2, 57),
                "after-unlink": (1, 7)}[point]
    assert objects_on_disk(root) == expected
    # The next open's limit checks start from exact figures, without being told to recount.
    fresh = ObjectStore(root, max_files=4)
    usage = fresh.usage(recount=False)
    assert (usage.objects, usage.bytes, usage.temp_files) == (*expected, 0)
    assert raw_temp_files(root) == {}
    # ...and they stay exact through more saves: the limit holds at exactly max_files.
    for index in range(4 - expected[0]):
        fresh.save_bytes(f"more/{index}", b"m")
    with pytest.raises(alphazoo.StorageLimitError, match="max_files"):
        fresh.save_bytes("one/too/many", b"m")
    assert objects_on_disk(root)[0] == fresh.usage(recount=False).objects == 4
