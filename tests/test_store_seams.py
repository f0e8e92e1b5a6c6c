"""Where clear()/delete_all() meet get_file_path copies, crash leftovers and the location lock.

Each backend in turn (``store_target``); a folder store's get_file_path path is the object
itself, so the copy cases hold there trivially and matter for ``memory://`` and S3.
"""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
from test_store import _save_elsewhere
from test_store_hostile import plant_leftover

import alphazoo


@pytest.mark.parametrize("key", ["model.bin", "lib/weights.bin"])
def test_a_path_handed_out_before_clear_and_written_after_is_uploaded(store_target,
                                                                      key: str) -> None:
    # A library is given the path first and saves to it later; a clear() in between used to
    # forget the copy (the write was lost without a warning) or prune its folder (the save
    # failed with a raw FileNotFoundError).
    store = store_target.make()
    path = Path(store.get_file_path(key))
    store.clear()
    path.write_bytes(b"saved after clear")
    store.sync()
    assert store_target.make().read_bytes(key) == b"saved after clear"


def test_a_downloaded_copy_rewritten_after_clear_is_uploaded(store_target) -> None:
    store = store_target.make()
    store.save_bytes("lib/model", b"v1")
    path = Path(store.get_file_path("lib/model"))
    store.clear()
    path.write_bytes(b"v2, retrained")
    store.close()
    assert store_target.make().read_bytes("lib/model") == b"v2, retrained"


def test_get_file_path_after_clear_downloads_the_current_object(store_target) -> None:
    store = store_target.make()
    store.save_bytes("f/model", b"v1")
    assert Path(store.get_file_path("f/model")).read_bytes() == b"v1"
    assert store.keys() == ["f/model"]  # the listing is cached (s3fs) before the other write
    _save_elsewhere(store_target, "f/model", b"v2 from another node")
    _save_elsewhere(store_target, "f/new", b"n")
    store.clear()
    assert Path(store.get_file_path("f/model")).read_bytes() == b"v2 from another node"
    assert Path(store.get_file_path("f/new")).read_bytes() == b"n"
    usage = store.usage()
    assert (usage.objects, usage.bytes) == (2, len(b"v2 from another node") + 1)


# Remote backends only: a folder store's get_file_path path is the object, nothing is pending.
@pytest.mark.parametrize("store_target", ["memory", pytest.param("s3", marks=pytest.mark.s3)],
                         indirect=True)
def test_clear_raises_typed_errors_and_keeps_a_copy_it_cannot_upload(store_target) -> None:
    store = store_target.make(max_files=2)
    path = Path(store.get_file_path("m"))
    path.write_bytes(b"mine")
    _save_elsewhere(store_target, "m/x", b"another node made 'm' a folder")
    with pytest.raises(alphazoo.KeyConflictError):
        store.clear()
    assert path.read_bytes() == b"mine"  # still pending, not dropped
    store_target.make().delete("m/x")
    _save_elsewhere(store_target, "a", b"1")
    _save_elsewhere(store_target, "b", b"2")
    with pytest.raises(alphazoo.StorageLimitError, match="max_files"):
        store.clear()
    store_target.make().delete("b")
    store.clear()
    assert store_target.make().read_bytes("m") == b"mine"


def test_delete_all_removes_leftovers_of_writers_that_died_since_the_first_listing(
        store_target) -> None:
    store = store_target.make(max_files=1)
    store.save("f/a", "1")  # the store's first listing, and its sweep, happen here
    plant_leftover(store_target, "f", "a", b"temp")
    assert store.delete_all() == 1
    usage = store.usage()
    assert (usage.objects, usage.bytes, usage.temp_files, usage.temp_bytes) == (0, 0, 0, 0)
    # The emptied store takes its one object: the dead writer's file no longer counts.
    store.save("g", "fits")
    assert store_target.make().keys() == ["g"]


def test_delete_all_racing_saves_from_another_store_object(store_target) -> None:
    writer, deleter = store_target.make(max_files=5), store_target.make(max_files=5)
    stop, errors = threading.Event(), []

    def save_loop() -> None:
        index = 0
        while not stop.is_set():
            try:
                writer.save(f"k/{index % 7}", "x" * (index % 13))
            except alphazoo.StorageLimitError:
                pass  # five objects at most: the lock makes the check exact
            except Exception as exc:  # noqa: BLE001 - any other error fails the test below
                errors.append(exc)
                return
            index += 1

    thread = threading.Thread(target=save_loop)
    thread.start()
    try:
        for _ in range(20):
            deleter.delete_all()
    finally:
        stop.set()
        thread.join()
    assert errors == []
    usage = store_target.make().usage()
    stored = {name for name in store_target.raw_files() if not name.startswith(".")}
    assert usage.objects == len(stored) <= 5
    assert usage.temp_files == 0
