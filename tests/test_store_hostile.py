"""The object store under hostile or unlucky input: file-vs-folder key conflicts, symlinks
planted in a folder store, leftovers of killed writers, get_file_path copies after delete,
threads reading memory:// while it is overwritten, reads racing an S3 overwrite, and limits
shared by several stores on one location.

Tests taking ``store_target`` run on the local folder backend, ``memory://`` and S3 (moto's
server); see conftest.py. Dead writers are real: a child interpreter makes a temporary name
and exits, so its pid is gone when the test plants the name.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import uuid
from pathlib import Path

import fsspec
import pytest
from _child import HANG_TIMEOUT

import alphazoo
from alphazoo import ObjectStore


def dead_writer_token() -> str:
    """A writer token from a process that has exited (a writer killed mid-save)."""
    code = "from alphazoo.leftovers import new_token; print(new_token())"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            timeout=HANG_TIMEOUT, check=True)
    return result.stdout.strip()


def plant_leftover(target, folder: str, name: str, data: bytes) -> str:
    """Write a dead writer's temporary file where the backend would have; its raw path."""
    token = dead_writer_token()
    if target.kind == "local":
        relative = f"{folder}/.{name}.{token}.tmp" if folder else f".{name}.{token}.tmp"
        path = Path(target.location, *relative.split("/"))
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        return relative
    fs, root = fsspec.core.url_to_fs(target.location, **target.storage_options)
    relative = f".alphazoo-tmp/{token}"
    with fs.open(f"{root.rstrip('/')}/{relative}", "wb") as handle:
        handle.write(data)
    fs.invalidate_cache()
    return relative


def temp_files(target) -> set[str]:
    return {path for path in target.raw_files()
            if path.rsplit("/", 1)[-1].startswith(".") and path != ".alphazoo.lock"
            or path.startswith(".alphazoo-tmp/")}


# -- file-vs-folder conflicts are KeyConflictError everywhere -----------------------------------

def test_conflicts_are_typed_on_save_get_file_path_and_read(store_target) -> None:
    store = store_target.make()
    store.save_bytes("a/a/b", b"inside")
    store.save_bytes("f", b"object")
    for call in (lambda: store.save_bytes("a/a", b"x"), lambda: store.get_file_path("a/a"),
                 lambda: store.save_bytes("a", b"x"), lambda: store.save_bytes("f/g", b"x"),
                 lambda: store.get_file_path("f/g/h")):
        with pytest.raises(alphazoo.KeyConflictError) as info:
            call()
        assert isinstance(info.value, alphazoo.InvalidKeyError)  # existing handlers still work
        assert info.value.key in str(info.value) and info.value.rule in str(info.value)
    with pytest.raises(alphazoo.KeyConflictError, match="'f' is an object") as info:
        store.save_bytes("f/g", b"x")
    assert info.value.other == "f"
    # Reading a folder, or below an object, finds no object: a typed KeyError.
    for key in ("a/a", "a", "f/g"):
        with pytest.raises(alphazoo.ObjectNotFoundError):
            store.read_bytes(key)
    assert store.keys() == ["a/a/b", "f"]


def test_get_file_path_after_delete_drops_the_copy(store_target) -> None:
    # The sequence: the copy of "a" must not block "a" becoming a folder.
    store = store_target.make()
    store.save_bytes("a", b"1")
    first = Path(store.get_file_path("a"))
    assert store.delete("a") is True
    if store_target.kind != "local":
        assert not first.exists()  # the staged copy went with the object
    store.save_bytes("a/b", b"2")
    path = Path(store.get_file_path("a/b"))
    assert path.read_bytes() == b"2"
    # And back: a folder of copies gives way to an object once its objects are deleted.
    assert store.delete("a/b") is True
    store.save_bytes("a", b"3")
    assert Path(store.get_file_path("a")).read_bytes() == b"3"
    assert store.keys() == ["a"]


def test_pending_copies_conflict_like_objects(store_target) -> None:
    store = store_target.make()
    Path(store.get_file_path("x/y")).write_bytes(b"pending")
    if store_target.kind == "local":
        return  # a folder store's copy is the object itself: covered above
    with pytest.raises(alphazoo.KeyConflictError, match="'x/y' is a get_file_path copy"):
        store.get_file_path("x")
    with pytest.raises(alphazoo.KeyConflictError, match="'x/y' is a get_file_path copy"):
        store.get_file_path("x/y/z")
    # A copy never written leaves no obstacle: its key may become a folder, or the reverse.
    store.get_file_path("p/q/r")
    assert Path(store.get_file_path("p/q")).parent.is_dir()
    store.sync()
    assert store.keys() == ["x/y"]


def test_a_copy_path_that_became_a_folder_is_never_uploaded(store_target) -> None:
    # Once raised IsADirectoryError on the next use of the store (memory://, fuzzed keys).
    store = store_target.make()
    store.save_bytes("a/a/x", b"1")
    store.get_file_path("a/a/x")
    store.delete("a/a/x")
    store.get_file_path("a/a")
    store.get_file_path("a/a/y")  # a/a is now a folder of the copies
    assert store.keys() == [] and len(store) == 0
    store.sync()
    assert store.keys() == []


def test_get_file_path_of_an_emptied_folder_is_a_writable_file(store_target) -> None:
    # get_file_path("c/d") made folder "c" (locally, or among the copies); "c" is no object
    # and must come back as a path a library can write, not as a folder.
    store = store_target.make()
    store.get_file_path("c/d")
    path = Path(store.get_file_path("c"))
    path.write_bytes(b"written")
    assert store.read_bytes("c") == b"written"


def test_a_copy_never_written_keeps_a_writable_path_after_a_sibling_is_deleted(
    store_target,
) -> None:
    # Found by the 100,000-key fuzz on memory://: deleting "f/b" pruned the folder "f/a.x"
    # (handed out, never written) lived in, and its path was handed out again without it.
    store = store_target.make()
    store.get_file_path("f/a.x")
    store.get_file_path("f/b")
    store.delete("f/b")
    Path(store.get_file_path("f/a.x")).write_bytes(b"late write")
    assert store.read_bytes("f/a.x") == b"late write"


# -- symbolic links in a folder store -----------------------------------------------------------

@pytest.fixture
def linked_store(tmp_path: Path) -> tuple[ObjectStore, Path]:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret").write_bytes(b"not the store's")
    root = tmp_path / "store"
    store = ObjectStore(root)
    store.save_bytes("inside/obj", b"ok")
    os.symlink(outside, root / "link")
    os.symlink(outside / "secret", root / "flink")
    os.symlink(root / "inside", root / "alias")  # stays in the root: allowed
    return store, outside


def test_a_symlink_out_of_the_root_is_never_followed(linked_store) -> None:
    store, outside = linked_store
    calls = {
        "read": lambda key: store.read_bytes(key),
        "save": lambda key: store.save_bytes(key, b"written"),
        "get_file_path": lambda key: store.get_file_path(key),
        "delete": lambda key: store.delete(key),
        "size": lambda key: store.size(key),
        "contains_key": lambda key: store.contains_key(key),
    }
    for key in ("link/secret", "link/new", "link/deep/new", "flink"):
        for name, call in calls.items():
            with pytest.raises(alphazoo.KeyEscapeError, match="outside the store's root") as info:
                call(key)
            assert info.value.key == key, name
            assert "symbolic link" in str(info.value)
    assert sorted(p.name for p in outside.iterdir()) == ["secret"]
    assert (outside / "secret").read_bytes() == b"not the store's"
    # Listing skips the links out; the store's own objects are unaffected.
    assert store.keys() == ["alias/obj", "inside/obj"] or store.keys() == ["inside/obj"]
    assert "flink" not in store.keys()
    assert store.read_bytes("inside/obj") == b"ok"


def test_a_symlink_inside_the_root_works_as_its_folder(linked_store) -> None:
    store, _ = linked_store
    assert store.read_bytes("alias/obj") == b"ok"


def test_a_link_to_a_folder_is_not_replaced_by_an_object(linked_store) -> None:
    store, _ = linked_store
    root = Path(store.url)
    (root / "empty").mkdir()
    os.symlink(root / "empty", root / "elink")
    for call in (lambda: store.save_bytes("elink", b"x"), lambda: store.get_file_path("elink")):
        with pytest.raises(alphazoo.KeyConflictError, match="symbolic link to a folder"):
            call()


def test_a_planted_lock_file_link_is_refused(tmp_path: Path) -> None:
    root = tmp_path / "store"
    root.mkdir()
    os.symlink(tmp_path / "elsewhere.lock", root / ".alphazoo.lock")
    with pytest.raises(alphazoo.KeyEscapeError, match="lock file"):
        ObjectStore(root).save_bytes("k", b"x")
    assert not (tmp_path / "elsewhere.lock").exists()


# -- leftovers of killed writers ------------------------------------------------------------------

def test_a_dead_writers_leftover_is_no_ghost_folder(store_target) -> None:
    store = store_target.make()
    store.save_bytes("blob/a", b"1")
    store.save_bytes("blob/b", b"2")
    plant_leftover(store_target, "blob", "c", b"half a write")
    for key in store.keys():
        store.delete(key)
    assert store.keys() == []
    assert store.save_bytes("blob", b"an object now") is True
    assert store.read_bytes("blob") == b"an object now"
    assert store.keys() == ["blob"]
    # The leftover itself goes at the next open (a local one already went with its folder).
    assert store_target.make().usage().temp_files == 0
    assert temp_files(store_target) == set()


def test_leftovers_count_against_the_limits_until_the_next_open(store_target) -> None:
    store = store_target.make(max_size=100)
    store.save_bytes("k", b"x" * 40)  # the first listing is done: no sweep from here on
    relative = plant_leftover(store_target, "", "k", b"y" * 50)
    usage = store.usage()
    assert (usage.objects, usage.bytes, usage.temp_files, usage.temp_bytes) == (1, 40, 1, 50)
    with pytest.raises(alphazoo.StorageLimitError, match="temporary files") as info:
        store.save_bytes("other", b"z" * 20)
    assert info.value.used == 90
    # A store opened afterwards removes it at its first listing: exact usage again.
    reopened = store_target.make(max_size=100)
    usage = reopened.usage()
    assert (usage.objects, usage.bytes, usage.temp_files, usage.temp_bytes) == (1, 40, 0, 0)
    assert relative not in store_target.raw_files()
    assert reopened.save_bytes("other", b"z" * 20)


def test_fsck_lists_then_removes_dead_writers_leftovers(store_target) -> None:
    store = store_target.make()
    store.save_bytes("m/obj", b"kept")
    relative = plant_leftover(store_target, "m", "obj", b"partial")
    dry = store.fsck()
    assert [(item.where, item.bytes, item.state, item.gone, item.removed)
            for item in dry.leftovers if item.where == relative] == [
        (relative, 7, "dead", True, False)]
    assert relative in store_target.raw_files()  # a dry run changes nothing
    done = store.fsck(remove=True)
    assert relative in {item.where for item in done.removed}
    assert relative not in store_target.raw_files()
    assert store.read_bytes("m/obj") == b"kept"
    assert store.fsck().leftovers == () or all(
        not item.where.startswith(("m/", ".alphazoo-tmp")) for item in store.fsck().leftovers)


def test_live_and_foreign_writers_are_left_alone(tmp_path: Path) -> None:
    from alphazoo.leftovers import temp_file_name

    root = tmp_path / "store"
    store = ObjectStore(root)
    store.save_bytes("k", b"v")
    live = root / temp_file_name("k")  # this process: alive
    live.write_bytes(b"in flight")
    foreign = root / ".k.az-00000000-000000-1f-2a-0.tmp"  # another host: cannot be checked
    foreign.write_bytes(b"theirs")
    legacy = root / f".k.{uuid.uuid4().hex}.tmp"  # written before writer tokens
    legacy.write_bytes(b"old")
    report = ObjectStore(root).fsck(remove=True)
    states = {Path(item.where).name: item.state for item in report.leftovers
              if not os.path.isabs(item.where)}
    assert states == {live.name: "alive", foreign.name: "unknown", legacy.name: "unknown"}
    assert report.removed == () or all(os.path.isabs(i.where) for i in report.removed)
    assert live.exists() and foreign.exists() and legacy.exists()
    # older_than decides for the writers that cannot be checked; a live one always stays.
    report = ObjectStore(root).fsck(remove=True, older_than=0)
    assert live.exists() and not foreign.exists() and not legacy.exists()
    assert ObjectStore(root).usage().temp_files == 1


# -- memory:// reads under threads ------------------------------------------------------------

@pytest.mark.slow
def test_memory_reads_under_threads_see_whole_objects() -> None:
    store = ObjectStore(f"memory://threads-{uuid.uuid4().hex}")
    versions = [bytes([n]) * (4096 + n) for n in range(4)]
    store.save_bytes("k", versions[0])
    stop = threading.Event()
    bad: list[int] = []
    reads = [0]

    def reader() -> None:
        while not stop.is_set():
            data = store.read_bytes("k")
            reads[0] += 1
            if data not in versions:
                bad.append(len(data))

    old = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # switch threads as often as possible: the race needs it
    try:
        threads = [threading.Thread(target=reader) for _ in range(6)]
        for thread in threads:
            thread.start()
        for n in range(2000):
            store.save_bytes("k", versions[n % len(versions)])
        stop.set()
        for thread in threads:
            thread.join(timeout=60)
    finally:
        stop.set()
        sys.setswitchinterval(old)
    assert reads[0] > 0
    assert bad == [], f"{len(bad)} of {reads[0]} reads were empty or partial: {bad[:5]}"


# -- limits across store objects on one location ------------------------------------------------

@pytest.mark.parametrize("limit", ["max_files", "max_size"])
def test_limits_hold_for_several_stores_on_one_location_in_threads(store_target,
                                                                  limit: str) -> None:
    room, size = 6, 50
    limits = {"max_files": room} if limit == "max_files" else {"max_size": room * size}
    stores = [store_target.make(**limits) for _ in range(3)]
    barrier = threading.Barrier(len(stores))
    errors: list[BaseException] = []

    def fill(index: int, store: ObjectStore) -> None:
        barrier.wait(timeout=60)
        for attempt in range(5):
            try:
                store.save_bytes(f"w{index}/{attempt}", b"x" * size)
            except alphazoo.StorageLimitError as exc:
                assert exc.limit == limit
            except BaseException as exc:  # reported below, with the test's context
                errors.append(exc)

    threads = [threading.Thread(target=fill, args=pair) for pair in enumerate(stores)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=HANG_TIMEOUT)
    assert errors == []
    usage = store_target.make().usage()
    assert (usage.objects, usage.bytes) == (room, room * size)


# -- S3: a read racing an overwrite ---------------------------------------------------------------

@pytest.mark.s3
def test_s3_stream_replaced_under_a_reader_raises_a_typed_error(moto_s3) -> None:
    url = f"s3://{moto_s3.bucket}/race-{uuid.uuid4().hex}"
    reader = ObjectStore(url, storage_options=moto_s3.storage_options)
    writer = ObjectStore(url, storage_options=moto_s3.storage_options)
    writer.save_bytes("k", b"old" * 1000)
    with reader.open("k") as handle:
        writer.save_bytes("k", b"new" * 1000)
        with pytest.raises(alphazoo.ObjectChangedError, match="'k' changed"):
            handle.read()
    # Whole-object reads start again instead: the new object.
    assert reader.read_bytes("k") == b"new" * 1000


@pytest.mark.s3
def test_s3_reads_racing_overwrites_return_old_or_new(moto_s3) -> None:
    url = f"s3://{moto_s3.bucket}/race-{uuid.uuid4().hex}"
    versions = [bytes([65 + n]) * (3000 + n) for n in range(3)]
    writer = ObjectStore(url, storage_options=moto_s3.storage_options)
    reader = ObjectStore(url, storage_options=moto_s3.storage_options)
    writer.save_bytes("k", versions[0])
    stop = threading.Event()
    seen: list[bytes] = []
    failures: list[BaseException] = []

    def read_loop() -> None:
        while not stop.is_set():
            try:
                seen.append(reader.read_bytes("k"))
            except alphazoo.ObjectChangedError:
                continue  # typed, and only after every retry raced a writer
            except BaseException as exc:
                failures.append(exc)
                return

    thread = threading.Thread(target=read_loop)
    thread.start()
    try:
        for n in range(30):
            writer.save_bytes("k", versions[n % len(versions)])
    finally:
        stop.set()
        thread.join(timeout=HANG_TIMEOUT)
    assert failures == []
    assert seen and all(data in versions for data in seen)


@pytest.mark.s3
def test_s3_read_after_another_clients_overwrite_is_not_stale(moto_s3) -> None:
    # Another process's overwrite (here: boto3 directly, bypassing s3fs's cache) leaves this
    # process's cached listing with the old size and ETag; the read must get the new object.
    import boto3

    prefix = f"stale-{uuid.uuid4().hex}"
    store = ObjectStore(f"s3://{moto_s3.bucket}/{prefix}",
                        storage_options=moto_s3.storage_options)
    store.save_bytes("k", b"old")
    assert store.keys() == ["k"]  # the listing is cached now
    client = boto3.client("s3", endpoint_url=moto_s3.endpoint_url, region_name="us-east-1",
                          aws_access_key_id="testing", aws_secret_access_key="testing")
    client.put_object(Bucket=moto_s3.bucket, Key=f"{prefix}/k", Body=b"new and longer")
    assert store.read_bytes("k") in (b"new and longer",)


def test_a_root_reached_through_a_link_works_and_one_swapped_for_a_link_is_refused(
        tmp_path: Path) -> None:
    real = tmp_path / "real"
    real.mkdir()
    os.symlink(real, tmp_path / "linked")
    through_link = ObjectStore(tmp_path / "linked")
    through_link.save("a/b", "x")
    assert (real / "a" / "b").read_text() == "x"
    assert through_link.read("a/b") == "x"
    # A root replaced by a link after the store was opened: keys would lead outside it.
    store = ObjectStore(tmp_path / "root")
    store.save("k", "v")
    outside = tmp_path / "outside"
    outside.mkdir()
    os.rename(tmp_path / "root", tmp_path / "moved")
    os.symlink(outside, tmp_path / "root")
    with pytest.raises(alphazoo.KeyEscapeError):
        store.save("k2", "v")
    with pytest.raises(alphazoo.KeyEscapeError):
        store.read("k")
    assert not (outside / "k2").exists()
