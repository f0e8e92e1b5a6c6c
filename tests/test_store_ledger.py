"""The usage ledger: limits checked from state that saves update, never from a full listing,
and that state recounted whenever it cannot be trusted (see alphazoo.ledger).

Crash cases (a writer SIGKILLed between the ledger's steps) are in test_store_crash.py.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from _child import HANG_TIMEOUT

import alphazoo
from alphazoo import ObjectStore
from alphazoo.backends import FsspecBackend, LocalBackend
from alphazoo.memory_backend import MemoryBackend

LOCK_FILE = ".alphazoo.lock"


def exact(store: ObjectStore) -> tuple[int, int]:
    """(objects, bytes) from reading every key."""
    keys = store.keys()
    return len(keys), sum(len(store.read_bytes(key)) for key in keys)


def ledger(store: ObjectStore) -> tuple[int, int]:
    usage = store.usage(recount=False)
    return usage.objects, usage.bytes


@contextlib.contextmanager
def no_listing() -> Iterator[None]:
    """Make any listing of a store fail: what runs inside never lists the store."""
    def refuse(self):
        raise AssertionError("the store was listed")

    saved = {backend: backend.scan for backend in (LocalBackend, FsspecBackend, MemoryBackend)}
    try:
        for backend in saved:
            backend.scan = refuse  # type: ignore[method-assign]
        yield
    finally:
        for backend, scan in saved.items():
            backend.scan = scan  # type: ignore[method-assign]


def test_saves_reads_and_deletes_do_not_list_the_store(store_target) -> None:
    store = store_target.make(max_files=50, max_size=1000)
    for index in range(20):
        store.save_bytes(f"k/{index}", b"x" * index)
    assert ledger(store) == exact(store) == (20, sum(range(20)))
    with no_listing():
        store.save_bytes("k/new", b"abc")
        store.save_bytes("k/3", b"replaced")  # an overwrite: no new slot, bytes change
        assert store.read_bytes("k/3") == b"replaced"
        assert store.contains_key("k/new") and store.size("k/new") == 3
        assert store.delete("k/5") is True and store.delete("k/5") is False
        assert ledger(store) == (20, sum(range(20)) - 3 + len(b"replaced") + 3 - 5)
    with pytest.raises(alphazoo.StorageLimitError):  # a refusal lists once, to confirm it
        store.save_bytes("big", b"y" * 900)
    assert ledger(store) == exact(store)


def test_a_refusal_is_confirmed_by_a_recount(store_target) -> None:
    store = store_target.make(max_files=3)
    for key in ("a", "b", "c"):
        store.save(key, key)
    with pytest.raises(alphazoo.StorageLimitError, match="max_files"):
        store.save("d", "d")
    assert store.keys() == ["a", "b", "c"]


def test_every_store_on_a_location_shares_one_ledger(store_target) -> None:
    first, second = store_target.make(max_files=2), store_target.make(max_files=2)
    first.save("a", "1")
    second.save("b", "2")
    with pytest.raises(alphazoo.StorageLimitError, match="max_files"):
        first.save("c", "3")
    assert ledger(first) == ledger(second) == (2, 2)


def test_usage_recounts_and_repairs_what_changed_by_hand(tmp_path: Path) -> None:
    root = tmp_path / "store"
    store = ObjectStore(root, max_size=100)
    store.save_bytes("a", b"x" * 40)
    (root / "by-hand").write_bytes(b"y" * 50)  # not through the store: the ledger cannot know
    assert ledger(store) == (1, 40)
    assert (store.usage().objects, store.usage().bytes) == (2, 90)  # counted, and repaired:
    assert ledger(store) == (2, 90)
    with pytest.raises(alphazoo.StorageLimitError, match="max_size"):
        store.save_bytes("b", b"z" * 20)


def test_a_file_removed_by_hand_does_not_refuse_a_save_that_fits(tmp_path: Path) -> None:
    root = tmp_path / "store"
    store = ObjectStore(root, max_files=2)
    store.save("a", "1")
    store.save("b", "2")
    (root / "b").unlink()  # the ledger still counts 2 objects
    assert ledger(store) == (2, 2)
    assert store.save("c", "3") is True  # the refusal was recounted first, and it fits
    assert ledger(store) == exact(store) == (2, 2)


@pytest.mark.parametrize("damage", [b"", b"garbage", b"{\"format\": \"alphazoo-usage/1\"}\n0"])
def test_a_missing_or_damaged_ledger_is_rebuilt_by_a_recount(tmp_path: Path,
                                                             damage: bytes) -> None:
    root = tmp_path / "store"
    store = ObjectStore(root)
    for key in ("a", "b/c"):
        store.save(key, key)
    (root / LOCK_FILE).write_bytes(damage)
    fresh = ObjectStore(root)
    assert ledger(fresh) == (2, 4)
    fresh.save("d", "dd")
    assert ledger(fresh) == exact(fresh) == (3, 6)


def test_a_ledger_with_one_changed_byte_is_not_trusted(tmp_path: Path) -> None:
    root = tmp_path / "store"
    store = ObjectStore(root)
    store.save_bytes("a", b"12345")
    lock = root / LOCK_FILE
    record = lock.read_bytes()
    assert b'"bytes":5' in record
    lock.write_bytes(record.replace(b'"bytes":5', b'"bytes":9'))  # the checksum no longer fits
    assert ledger(ObjectStore(root)) == (1, 5)


def test_a_ledger_from_before_the_last_boot_is_not_trusted(tmp_path: Path,
                                                           monkeypatch) -> None:
    from alphazoo import leftovers

    root = tmp_path / "store"
    ObjectStore(root).save_bytes("a", b"12345")
    (root / "b").write_bytes(b"by hand")  # e.g. an update the power loss took away
    monkeypatch.setattr(leftovers, "_BOOT", "ffffff")  # as if the host had rebooted since
    assert ledger(ObjectStore(root)) == (2, 12)


def test_get_file_path_writes_count_at_the_next_check(tmp_path: Path) -> None:
    root = tmp_path / "store"
    store = ObjectStore(root, max_size=100)
    Path(store.get_file_path("lib/weights.bin")).write_bytes(b"w" * 80)
    other = ObjectStore(root, max_size=100)  # another store object: the record watches it
    assert ledger(other) == (1, 80)
    with pytest.raises(alphazoo.StorageLimitError, match="max_size"):
        other.save_bytes("more", b"m" * 30)
    Path(store.get_file_path("lib/weights.bin")).write_bytes(b"w" * 10)  # rewritten smaller
    assert other.save_bytes("more", b"m" * 30) is True
    assert ledger(other) == exact(other) == (2, 40)
    store.save_bytes("lib/weights.bin", b"saved")  # saved through the store: counted once
    assert ledger(other) == exact(other) == (2, 35)
    os.unlink(store.get_file_path("lib/weights.bin"))
    assert ledger(other) == exact(other) == (1, 30)


def test_the_ledger_is_exact_across_processes_on_a_folder(tmp_path: Path) -> None:
    root = tmp_path / "store"
    store = ObjectStore(root)
    store.save_bytes("parent", b"p" * 10)
    code = ("import sys, alphazoo\n"
            "store = alphazoo.ObjectStore(sys.argv[1])\n"
            "for i in range(5): store.save_bytes(f'child/{i}', b'c' * i)\n"
            "store.delete('parent')\n")
    subprocess.run([sys.executable, "-c", code, str(root)], check=True, timeout=HANG_TIMEOUT)
    assert ledger(store) == exact(store) == (5, 10)


def test_memory_changes_made_through_fsspec_are_noticed() -> None:
    import fsspec

    url = f"memory://ledger-{uuid.uuid4().hex}"
    store = ObjectStore(url, max_files=2)
    store.save("a", "1")
    fs = fsspec.filesystem("memory")
    fs.pipe(f"{url}/b", b"22")  # behind the store's back: the path count changed
    assert ledger(store) == (2, 3)
    with pytest.raises(alphazoo.StorageLimitError, match="max_files"):
        store.save("c", "3")
    with pytest.raises(alphazoo.KeyConflictError):
        fs.pipe(f"{url}/d/e", b"x")
        store.save("d", "a folder of objects is there now")
    fs.rm(f"{url}/b")
    fs.rm(f"{url}/d/e")
    assert store.save("c", "3") is True
    assert ledger(store) == exact(store) == (2, 2)


@pytest.mark.s3
def test_s3_saves_do_not_list_and_clear_sees_other_writers(moto_s3) -> None:
    import fsspec

    url = f"s3://{moto_s3.bucket}/ledger-{uuid.uuid4().hex}"
    store = ObjectStore(url, max_files=3, storage_options=moto_s3.storage_options)
    store.save("a", "1")  # the first save counts the prefix once
    fs, root = fsspec.core.url_to_fs(url, **moto_s3.storage_options)
    with fs.open(f"{root}/b", "wb") as handle:  # another process's save, as S3 sees it
        handle.write(b"22")
    with no_listing():
        store.save("c", "3")  # per-process ledger: the other writer is not seen yet
    assert ledger(store) == (2, 2)
    store.clear()  # clear() drops the per-process ledger: the next check counts again
    with pytest.raises(alphazoo.StorageLimitError, match="max_files"):
        store.save("d", "4")
    assert ledger(store) == exact(store) == (3, 4)



def test_usage_of_a_folder_store_not_made_yet_creates_nothing(tmp_path: Path) -> None:
    root = tmp_path / "not-yet"
    for recount in (True, False):
        usage = ObjectStore(root).usage(recount=recount)
        assert (usage.objects, usage.bytes, usage.temp_files) == (0, 0, 0)
    assert not root.exists()
