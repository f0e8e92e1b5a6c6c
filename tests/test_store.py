"""The object store's API, limits, atomic writes, XML, key conflicts and get_file_path.

Every test taking ``object_store`` or ``store_target`` runs against the local folder backend,
fsspec's ``memory://`` file system and S3 (moto's server); see conftest.py.
"""

from __future__ import annotations

import json
import os
import uuid
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path

import fsspec
import pytest

import alphazoo
from alphazoo import ObjectStore
from alphazoo.store import DEFAULT_MAX_FILES, DEFAULT_MAX_SIZE, TIERS

MIB = 1024 * 1024
LOCK_FILE = ".alphazoo.lock"


def snapshot(store: ObjectStore) -> dict[str, bytes]:
    """Every key with its bytes."""
    return {key: store.read_bytes(key) for key in store.keys()}


def assert_no_stray_files(target, store: ObjectStore) -> None:
    """The location holds exactly the store's objects (plus the local lock file)."""
    expected = set(store.keys())
    raw = target.raw_files()
    if target.kind == "local":
        raw.discard(LOCK_FILE)
    assert raw == expected


# -- basic API --------------------------------------------------------------------------------

def test_text_round_trip(object_store: ObjectStore) -> None:
    assert object_store.save("notes/today.txt", "buy low, sell high € ü") is True
    assert object_store.read("notes/today.txt") == "buy low, sell high € ü"
    assert object_store.read_bytes("notes/today.txt") == "buy low, sell high € ü".encode()


def test_bytes_round_trip_of_every_byte_value(object_store: ObjectStore) -> None:
    data = bytes(range(256)) * 7
    assert object_store.save_bytes("blob.bin", data) is True
    assert object_store.read_bytes("blob.bin") == data
    assert object_store.size("blob.bin") == len(data)
    object_store.save_bytes("ba", bytearray(b"\x00\x01"))
    object_store.save_bytes("mv", memoryview(b"abcdef")[1:4])
    assert object_store.read_bytes("ba") == b"\x00\x01"
    assert object_store.read_bytes("mv") == b"bcd"


def test_empty_object(object_store: ObjectStore) -> None:
    object_store.save_bytes("empty", b"")
    assert object_store.contains_key("empty")
    assert object_store.read_bytes("empty") == b""
    assert object_store.size("empty") == 0
    assert object_store.usage().objects == 1


def test_json_round_trip(object_store: ObjectStore) -> None:
    value = {"weights": [0.5, -1.25, 3], "name": "spy-rf", "nested": {"ok": True, "none": None}}
    assert object_store.save_json("models/params.json", value) is True
    assert object_store.read_json("models/params.json") == value
    assert json.loads(object_store.read("models/params.json")) == value


def test_save_refuses_non_text(object_store: ObjectStore) -> None:
    with pytest.raises(TypeError, match="save_bytes"):
        object_store.save("k", b"bytes")  # type: ignore[arg-type]
    assert object_store.keys() == []


def test_overwrite_replaces_the_object(object_store: ObjectStore) -> None:
    object_store.save("k", "first version, quite long")
    object_store.save("k", "second")
    assert object_store.read("k") == "second"
    assert object_store.keys() == ["k"]
    assert object_store.usage().bytes == len("second")


def test_write_stream_joins_many_chunks(object_store: ObjectStore) -> None:
    chunks = [bytes([i]) * 1000 for i in range(50)]
    object_store.write_stream("big", iter(chunks), 50_000)
    assert object_store.read_bytes("big") == b"".join(chunks)
    with object_store.open("big") as handle:
        assert handle.read(1000) == b"\x00" * 1000
        assert handle.read(1000) == b"\x01" * 1000


@pytest.mark.slow
def test_contains_key_in_len_and_iteration(object_store: ObjectStore) -> None:
    assert len(object_store) == 0
    assert list(object_store) == []
    assert "a" not in object_store
    for key in ["b/2", "a", "c.txt", "b/1"]:
        object_store.save(key, key)
    assert object_store.keys() == ["a", "b/1", "b/2", "c.txt"]
    assert list(object_store) == ["a", "b/1", "b/2", "c.txt"]
    assert len(object_store) == 4
    assert "b/1" in object_store and object_store.contains_key("b/1")
    assert "./b\\1" in object_store  # another spelling of the same key
    assert "b" not in object_store  # a folder, not an object
    assert not object_store.contains_key("b")
    assert "zzz" not in object_store
    assert 42 not in object_store  # not even a key
    assert not object_store.contains_key("<random>")  # invalid keys are never stored


@pytest.mark.slow
def test_delete(object_store: ObjectStore) -> None:
    object_store.save("a/b/c", "x")
    object_store.save("keep", "y")
    assert object_store.delete("a/b/c") is True
    assert object_store.delete("a/b/c") is False
    assert object_store.delete("never-there") is False
    assert object_store.keys() == ["keep"]
    assert not object_store.contains_key("a/b/c")
    # The emptied folders are gone: "a" can now be an object itself.
    object_store.save("a", "now an object")
    assert object_store.read("a") == "now an object"
    assert object_store.keys() == ["a", "keep"]


def test_delete_of_a_folder_is_false_and_keeps_its_objects(object_store: ObjectStore) -> None:
    object_store.save("dir/obj", "x")
    assert object_store.delete("dir") is False
    assert object_store.read("dir/obj") == "x"


def _save_elsewhere(store_target, key: str, data: bytes) -> None:
    """Write ``key`` as another node would: its own client, sharing no cache with the test's."""
    if store_target.kind == "s3":
        fs, root = fsspec.core.url_to_fs(store_target.location, skip_instance_cache=True,
                                         **store_target.storage_options)
        fs.pipe(f"{root.rstrip('/')}/{key}", data)
    else:
        store_target.make().save_bytes(key, data)


def test_clear_deletes_nothing_and_drops_the_caches(store_target) -> None:
    store = store_target.make()
    for i in range(3):
        store.save(f"f{i % 2}/obj{i}", "x" * i)
    store.save_bytes("model", b"v1")
    assert len(store) == 4
    first_copy = Path(store.get_file_path("model"))
    assert first_copy.read_bytes() == b"v1"
    _save_elsewhere(store_target, "model", b"v2 from another node")
    _save_elsewhere(store_target, "new", b"added elsewhere")
    assert store.clear() is None
    # Nothing deleted, and what another node saved meanwhile is seen: in the listing, in reads
    # and in a fresh get_file_path copy (a remote store's earlier copy held v1).
    assert store.keys() == ["f0/obj0", "f0/obj2", "f1/obj1", "model", "new"]
    assert store.read_bytes("model") == b"v2 from another node"
    assert Path(store.get_file_path("model")).read_bytes() == b"v2 from another node"
    assert store.usage().objects == 5
    assert_no_stray_files(store_target, store)


def test_clear_uploads_pending_get_file_path_copies_first(store_target) -> None:
    store = store_target.make()
    Path(store.get_file_path("lib/weights.bin")).write_bytes(b"written by a library")
    store.clear()
    # Another store (another node) sees the copy: clear() wrote it before forgetting it.
    assert store_target.make().read_bytes("lib/weights.bin") == b"written by a library"
    assert store.keys() == ["lib/weights.bin"]


def test_clear_keeps_a_copy_that_does_not_fit_and_raises() -> None:
    store = ObjectStore(f"memory://clear-{uuid.uuid4().hex}", max_size=4)
    path = Path(store.get_file_path("big"))
    path.write_bytes(b"x" * 5)
    with pytest.raises(alphazoo.StorageLimitError, match="max_size"):
        store.clear()
    # Still pending, not silently dropped: making room lets the same copy upload.
    store._max_size = 8
    store.sync()
    assert store.read_bytes("big") == b"x" * 5


def test_ported_lean_clear_then_read_bytes_returns_the_object(store_target) -> None:
    # LEAN's docs: a live algorithm calls clear() and re-reads a key to pick up a model
    # retrained elsewhere. In alphazoo before issue 14 this wiped the store.
    store = store_target.make()
    store.save_bytes("models/live", b"model bytes")
    store.clear()
    assert store.read_bytes("models/live") == b"model bytes"


def test_delete_all(store_target) -> None:
    store = store_target.make()
    for i in range(5):
        store.save(f"f{i % 2}/obj{i}", "x" * i)
    assert len(store) == 5
    assert store.delete_all() == 5
    assert store.keys() == []
    assert len(store) == 0
    assert store.usage().bytes == 0
    assert_no_stray_files(store_target, store)
    assert store_target.raw_dirs() == set()
    store.save("f0", "a folder name is free again")
    assert store.keys() == ["f0"]


def test_usage_counts_objects_and_bytes(object_store: ObjectStore) -> None:
    empty = object_store.usage()
    assert (empty.objects, empty.bytes) == (0, 0)
    object_store.save_bytes("a", b"12345")
    object_store.save_bytes("b/c", b"123")
    usage = object_store.usage()
    assert isinstance(usage, alphazoo.StoreUsage)
    assert (usage.objects, usage.bytes) == (2, 8)
    assert usage.max_files == object_store.max_files
    assert usage.max_size == object_store.max_size
    assert usage.url == object_store.url


def test_objects_are_shared_by_stores_on_the_same_location(store_target) -> None:
    first = store_target.make()
    first.save("shared/key", "from the first store")
    second = store_target.make()
    assert second.keys() == ["shared/key"]
    assert second.read("shared/key") == "from the first store"
    second.delete("shared/key")
    assert first.keys() == []


def test_missing_key_raises_object_not_found(object_store: ObjectStore) -> None:
    object_store.save("present", "x")
    readers = [object_store.read, object_store.read_bytes, object_store.read_json,
               object_store.read_xml, object_store.size]
    for reader in readers:
        with pytest.raises(alphazoo.ObjectNotFoundError) as info:
            reader("absent/key")
        error = info.value
        assert isinstance(error, KeyError)
        assert isinstance(error, alphazoo.AlphazooError)
        assert error.key == "absent/key"
        message = str(error)
        assert "'absent/key'" in message
        assert "contains_key" in message
        assert not message.startswith('"')  # a sentence, not KeyError's quoted repr


def test_reading_a_folder_or_below_an_object_is_not_found(object_store: ObjectStore) -> None:
    object_store.save("folder/obj", "x")
    with pytest.raises(alphazoo.ObjectNotFoundError):
        object_store.read("folder")
    with pytest.raises(alphazoo.ObjectNotFoundError):
        object_store.read("folder/obj/below")
    assert not object_store.contains_key("folder/obj/below")
    assert object_store.delete("folder/obj/below") is False


def test_missing_key_error_is_a_key_error_for_lean_style_code(object_store: ObjectStore) -> None:
    try:
        object_store.read("nope")
    except KeyError as error:  # how code written against a dict-like store handles it
        assert "nope" in str(error)
    else:  # pragma: no cover
        pytest.fail("reading a missing key did not raise")


# -- XML ---------------------------------------------------------------------------------------

def test_save_xml_element_round_trip(object_store: ObjectStore) -> None:
    root = ET.Element("model", {"name": "spy-rf", "version": "2"})
    child = ET.SubElement(root, "param", {"key": "depth"})
    child.text = "7"
    assert object_store.save_xml("config.xml", root) is True
    loaded = object_store.read_xml("config.xml")
    assert loaded.tag == "model"
    assert loaded.attrib == {"name": "spy-rf", "version": "2"}
    assert loaded.find("param").attrib == {"key": "depth"}
    assert loaded.find("param").text == "7"
    assert ET.tostring(loaded) == ET.tostring(root)


def test_save_xml_string_round_trip(object_store: ObjectStore) -> None:
    text = '<config><item id="1">alpha &amp; beta</item><item id="2"/></config>'
    object_store.save_xml("config.xml", text)
    assert object_store.read("config.xml") == text  # the string is stored as given
    loaded = object_store.read_xml("config.xml")
    assert [item.get("id") for item in loaded.iter("item")] == ["1", "2"]
    assert loaded.find("item").text == "alpha & beta"


@pytest.mark.slow
@pytest.mark.parametrize("bad", ["<a><b></a>", "not xml at all", "", "<a>"])
def test_malformed_xml_is_refused_before_anything_is_stored(
    store_target, bad: str
) -> None:
    store = store_target.make()
    store.save_xml("config.xml", "<old/>")
    before = snapshot(store)
    with pytest.raises(ET.ParseError):
        store.save_xml("config.xml", bad)
    with pytest.raises(ET.ParseError):
        store.save_xml("new.xml", bad)
    assert snapshot(store) == before
    assert not store.contains_key("new.xml")
    assert_no_stray_files(store_target, store)


def test_save_xml_refuses_other_types(object_store: ObjectStore) -> None:
    with pytest.raises(TypeError, match="Element or str"):
        object_store.save_xml("x.xml", b"<a/>")  # type: ignore[arg-type]
    assert object_store.keys() == []


# -- key conflicts -----------------------------------------------------------------------------

def test_object_cannot_become_a_folder(object_store: ObjectStore) -> None:
    object_store.save("a", "an object")
    for key in ["a/b", "a/b/c"]:
        with pytest.raises(alphazoo.InvalidKeyError, match="'a' is an object") as info:
            object_store.save(key, "x")
        assert info.value.key == key
        assert isinstance(info.value, ValueError)
    assert object_store.keys() == ["a"]
    assert object_store.read("a") == "an object"


def test_folder_cannot_become_an_object(object_store: ObjectStore) -> None:
    object_store.save("a/b", "inside")
    for key in ["a", "./a"]:
        with pytest.raises(alphazoo.InvalidKeyError, match="folder") as info:
            object_store.save(key, "x")
        assert info.value.key == "a"
    assert object_store.keys() == ["a/b"]
    assert object_store.read("a/b") == "inside"


@pytest.mark.slow
def test_get_file_path_refuses_conflicting_keys(object_store: ObjectStore) -> None:
    object_store.save("a", "object")
    object_store.save("d/e", "inside")
    with pytest.raises(alphazoo.InvalidKeyError):
        object_store.get_file_path("a/b")
    with pytest.raises(alphazoo.InvalidKeyError):
        object_store.get_file_path("d")
    # The store still works and holds what it held.
    assert object_store.keys() == ["a", "d/e"]
    assert len(object_store) == 2


# -- limits ------------------------------------------------------------------------------------

def test_default_limits_are_leans_local_ones(tmp_path: Path) -> None:
    store = ObjectStore(tmp_path)
    assert store.max_size == DEFAULT_MAX_SIZE == 10 * 1024 * MIB
    assert store.max_files == DEFAULT_MAX_FILES == 10_000


@pytest.mark.parametrize(("tier", "size", "files"), [
    ("free", 5 * MIB, 100),
    ("prime", 50 * MIB, 1_000),
    ("professional", 500 * MIB, 10_000),
])
def test_tier_presets(tmp_path: Path, tier: str, size: int, files: int) -> None:
    store = ObjectStore(tmp_path, tier=tier)
    assert (store.max_size, store.max_files) == (size, files)
    assert TIERS[tier] == (size, files)
    usage = store.usage()
    assert (usage.max_size, usage.max_files) == (size, files)


def test_explicit_limits_override_the_tier(tmp_path: Path) -> None:
    store = ObjectStore(tmp_path, tier="free", max_files=3)
    assert (store.max_size, store.max_files) == (5 * MIB, 3)
    store = ObjectStore(tmp_path, tier="free", max_size=10)
    assert (store.max_size, store.max_files) == (10, 100)


def test_unknown_tier_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="unknown tier 'gold'") as info:
        ObjectStore(tmp_path, tier="gold")
    assert "free" in str(info.value) and "professional" in str(info.value)
    assert not any(tmp_path.iterdir())


@pytest.mark.parametrize("limits", [{"max_size": -1}, {"max_files": -1}])
def test_negative_limits_are_refused(tmp_path: Path, limits: dict[str, int]) -> None:
    with pytest.raises(ValueError, match="negative"):
        ObjectStore(tmp_path, **limits)


@pytest.mark.slow
def test_max_files_limit(store_target) -> None:
    store = store_target.make(max_files=2)
    store.save("a", "1")
    store.save("dir/b", "2")
    before = snapshot(store)
    with pytest.raises(alphazoo.StorageLimitError) as info:
        store.save("new/deep/c", "3")
    error = info.value
    assert isinstance(error, alphazoo.AlphazooError)
    assert (error.key, error.limit, error.used, error.maximum) == ("new/deep/c", "max_files", 2, 2)
    message = str(error)
    assert "max_files" in message and "2 objects" in message and "'new/deep/c'" in message
    # Nothing was written, not even a folder.
    assert snapshot(store) == before
    assert_no_stray_files(store_target, store)
    assert store_target.raw_dirs() <= {"dir"}
    # Replacing an existing object does not need a new slot.
    store.save("a", "replaced")
    assert store.read("a") == "replaced"
    # Deleting frees a slot.
    store.delete("dir/b")
    store.save("new/deep/c", "3")
    assert store.keys() == ["a", "new/deep/c"]


@pytest.mark.slow
def test_max_files_one_allows_overwriting_the_one_key(store_target) -> None:
    store = store_target.make(max_files=1)
    for version in range(3):
        store.save("only", f"version {version}")
    assert store.read("only") == "version 2"
    with pytest.raises(alphazoo.StorageLimitError, match="max_files"):
        store.save("second", "x")
    assert store.keys() == ["only"]


def test_max_files_zero_refuses_everything(store_target) -> None:
    store = store_target.make(max_files=0)
    with pytest.raises(alphazoo.StorageLimitError, match="max_files"):
        store.save("a", "x")
    assert store.keys() == []
    assert_no_stray_files(store_target, store)


def test_max_size_limit(store_target) -> None:
    store = store_target.make(max_size=10)
    store.save_bytes("ten", b"0123456789")
    # Replacing a 10-byte object with another 10-byte one counts the new size only once.
    store.save_bytes("ten", b"abcdefghij")
    assert store.read_bytes("ten") == b"abcdefghij"
    before = snapshot(store)

    with pytest.raises(alphazoo.StorageLimitError) as info:
        store.save_bytes("ten", b"abcdefghijk")  # 11 bytes replacing 10
    error = info.value
    assert (error.limit, error.used, error.adding, error.maximum) == ("max_size", 0, 11, 10)
    assert "max_size" in str(error) and "10 bytes" in str(error)
    assert snapshot(store) == before

    with pytest.raises(alphazoo.StorageLimitError) as info:
        store.save_bytes("other", b"x")
    error = info.value
    assert (error.limit, error.used, error.adding, error.maximum) == ("max_size", 10, 1, 10)
    message = str(error)
    assert "'other'" in message and "max_size" in message
    assert "10 bytes are in use" in message and "limit is 10 bytes" in message
    assert snapshot(store) == before
    assert_no_stray_files(store_target, store)

    # Shrinking the object makes room for another one.
    store.save_bytes("ten", b"abcde")
    store.save_bytes("other", b"12345")
    assert store.usage().bytes == 10


def test_limit_error_message_formats_large_numbers(tmp_path: Path) -> None:
    store = ObjectStore(tmp_path, max_size=1_500_000)
    store.save_bytes("a", b"x" * 1_000_000)
    with pytest.raises(alphazoo.StorageLimitError) as info:
        store.save_bytes("b", b"x" * 600_000)
    message = str(info.value)
    assert "1,500,000 bytes" in message and "1,000,000 bytes" in message
    assert "100,000 bytes over" in message


def test_write_stream_checks_the_announced_size_first(store_target) -> None:
    store = store_target.make(max_size=100)
    consumed = []

    def chunks() -> Iterator[bytes]:
        consumed.append(True)
        yield b"x" * 200

    with pytest.raises(alphazoo.StorageLimitError, match="max_size"):
        store.write_stream("big", chunks(), 200)
    assert consumed == []  # refused before a single byte was produced
    assert store.keys() == []
    assert_no_stray_files(store_target, store)


# -- atomic writes -----------------------------------------------------------------------------

def _failing_chunks(total: int) -> Iterator[bytes]:
    yield b"N" * (total // 2)
    raise RuntimeError("producer failed half way")


@pytest.mark.slow
def test_failed_write_keeps_the_old_object(store_target) -> None:
    store = store_target.make()
    store.save("models/m.bin", "old contents")
    store.save("other", "untouched")
    before = snapshot(store)
    with pytest.raises(RuntimeError, match="half way"):
        store.write_stream("models/m.bin", _failing_chunks(1000), 1000)
    assert snapshot(store) == before
    assert store.read("models/m.bin") == "old contents"
    assert_no_stray_files(store_target, store)


@pytest.mark.slow
def test_failed_write_of_a_new_key_leaves_nothing(store_target) -> None:
    store = store_target.make()
    store.save("existing", "x")
    with pytest.raises(RuntimeError, match="half way"):
        store.write_stream("brand/new/key", _failing_chunks(1000), 1000)
    assert store.keys() == ["existing"]
    assert not store.contains_key("brand/new/key")
    assert_no_stray_files(store_target, store)
    assert store_target.raw_dirs() == set()
    # No empty folder was left behind to block "brand" as a key.
    store.save("brand", "fine")
    assert store.read("brand") == "fine"


@pytest.mark.parametrize(("chunks", "announced", "match"), [
    ([b"abc"], 5, "produced 3 bytes, 5 were announced"),
    ([b"abc", b"def"], 4, "more than the 4 bytes announced"),
    ([], 1, "produced 0 bytes, 1 were announced"),
])
def test_wrong_announced_size_keeps_the_old_object(
    store_target, chunks: list[bytes], announced: int, match: str
) -> None:
    store = store_target.make()
    store.save("k", "old")
    with pytest.raises(ValueError, match=match):
        store.write_stream("k", iter(chunks), announced)
    with pytest.raises(ValueError, match=match):
        store.write_stream("fresh/k", iter(chunks), announced)
    assert snapshot(store) == {"k": b"old"}
    assert_no_stray_files(store_target, store)


def test_local_temp_and_lock_files_never_show_as_keys(tmp_path: Path) -> None:
    store = ObjectStore(tmp_path / "store")
    store.save("a/b", "x")
    # A temp file from a writer that was killed mid-write, and the lock file.
    (tmp_path / "store" / "a" / ".b.deadbeef.tmp").write_bytes(b"partial")
    assert (tmp_path / "store" / LOCK_FILE).is_file()
    assert store.keys() == ["a/b"]
    assert len(store) == 1
    assert store.usage().bytes == 1


# -- get_file_path -----------------------------------------------------------------------------

def test_get_file_path_for_a_new_key(object_store: ObjectStore) -> None:
    path = Path(object_store.get_file_path("models/nested/model.onnx"))
    assert path.parent.is_dir()  # created for the library that will write there
    assert path.name == "model.onnx"
    assert not object_store.contains_key("models/nested/model.onnx")  # nothing written yet
    path.write_bytes(b"written by another library")
    assert object_store.contains_key("models/nested/model.onnx")
    assert object_store.read_bytes("models/nested/model.onnx") == b"written by another library"
    assert object_store.keys() == ["models/nested/model.onnx"]


def test_get_file_path_of_an_existing_object(object_store: ObjectStore) -> None:
    object_store.save_bytes("weights.bin", b"v1 weights")
    path = Path(object_store.get_file_path("weights.bin"))
    assert path.read_bytes() == b"v1 weights"
    path.write_bytes(b"v2 weights, longer")
    assert object_store.read_bytes("weights.bin") == b"v2 weights, longer"
    assert object_store.usage().bytes == len(b"v2 weights, longer")


def test_get_file_path_changes_reach_other_stores_after_sync(store_target) -> None:
    store = store_target.make()
    path = Path(store.get_file_path("lib/out.txt"))
    path.write_text("from a library")
    store.sync()
    other = store_target.make()
    assert other.keys() == ["lib/out.txt"]
    assert other.read("lib/out.txt") == "from a library"
    if store_target.kind == "local":
        assert path == Path(store_target.location, "lib", "out.txt")  # the object itself


@pytest.mark.slow
def test_deleted_object_does_not_come_back_through_get_file_path(
    object_store: ObjectStore,
) -> None:
    path = Path(object_store.get_file_path("k"))
    path.write_text("data")
    assert object_store.read("k") == "data"
    assert object_store.delete("k") is True
    again = Path(object_store.get_file_path("k"))
    assert object_store.keys() == []
    assert not object_store.contains_key("k")
    assert not again.exists()
    # The same after delete_all(): a synced copy is not uploaded again.
    Path(object_store.get_file_path("k2")).write_text("synced")
    object_store.sync()
    assert object_store.keys() == ["k2"]
    assert object_store.delete_all() == 1
    object_store.get_file_path("k2")
    assert object_store.keys() == []
    assert len(object_store) == 0


def test_save_after_get_file_path_wins(object_store: ObjectStore) -> None:
    path = Path(object_store.get_file_path("k"))
    path.write_text("from the file")
    object_store.save("k", "from save")
    assert object_store.read("k") == "from save"
    assert object_store.keys() == ["k"]


# -- default location --------------------------------------------------------------------------

def test_default_location_is_storage_in_the_working_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("ALPHAZOO_STORE", raising=False)
    monkeypatch.chdir(tmp_path)
    store = ObjectStore()
    store.save("a/b.txt", "hello")
    assert (tmp_path / "storage" / "a" / "b.txt").read_text() == "hello"
    assert Path(store.url) == tmp_path / "storage"
    # The folder is fixed when the store is made, not looked up on every use.
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    assert store.read("a/b.txt") == "hello"
    assert ObjectStore().keys() == []


def test_default_location_from_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("ALPHAZOO_STORE", str(tmp_path / "from-env"))
    store = ObjectStore()
    store.save("k", "v")
    assert (tmp_path / "from-env" / "k").read_text() == "v"
    assert not (tmp_path / "storage").exists()
    # An explicit location still wins over the environment.
    explicit = ObjectStore(tmp_path / "explicit")
    explicit.save("k", "w")
    assert (tmp_path / "explicit" / "k").read_text() == "w"


def test_default_location_may_be_a_url(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    name = f"alphazoo-env-{uuid.uuid4().hex}"
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("ALPHAZOO_STORE", f"memory://{name}")
    try:
        ObjectStore().save("k", "in memory")
        assert ObjectStore(f"memory://{name}").read("k") == "in memory"
        assert not (tmp_path / "storage").exists()
    finally:
        fsspec.filesystem("memory").rm(f"/{name}", recursive=True)


def test_file_url_is_a_local_folder(tmp_path: Path) -> None:
    store = ObjectStore(f"file://{tmp_path / 'viaurl'}")
    store.save("k", "v")
    assert (tmp_path / "viaurl" / "k").read_text() == "v"
    assert Path(store.get_file_path("k")) == tmp_path / "viaurl" / "k"


def test_repr_names_location_and_limits(tmp_path: Path) -> None:
    store = ObjectStore(tmp_path, max_size=123, max_files=4)
    text = repr(store)
    assert str(tmp_path) in text and "123" in text and "max_files=4" in text


def test_no_file_outside_the_location(tmp_path: Path) -> None:
    store = ObjectStore(tmp_path / "store")
    store.save("a", "x")
    store.get_file_path("deep/er/k")
    assert {p.name for p in tmp_path.iterdir()} == {"store"}
    assert os.path.isdir(tmp_path / "store" / "deep" / "er")


def test_oversized_staged_copy_warns_on_reads_and_raises_on_sync() -> None:
    # Staged copies exist for remote stores only (a folder store's path is the object).
    store = ObjectStore(f"memory://staged-{uuid.uuid4().hex}", max_size=8)
    Path(store.get_file_path("big")).write_bytes(b"x" * 9)
    with pytest.warns(UserWarning, match="was not uploaded"):
        assert store.keys() == []  # reads go on; the copy stays pending
    with pytest.raises(alphazoo.StorageLimitError, match="max_size"):
        store.sync()
    assert store.delete("big") is False and len(store) == 0


@pytest.mark.parametrize("url", ["memory://", "memory:///"])
def test_a_store_url_must_name_a_folder(url: str) -> None:
    # memory:// alone is the root every other memory store lives under: delete_all() there
    # would wipe them all.
    with pytest.raises(ValueError, match="names no folder"):
        ObjectStore(url)


def test_staged_copy_whose_key_became_a_folder_warns_instead_of_breaking_reads() -> None:
    store = ObjectStore(f"memory://staged-{uuid.uuid4().hex}")
    path = Path(store.get_file_path("c/d"))
    store.save("c", "now an object")
    path.write_text("written by a library")
    with pytest.warns(UserWarning, match="was not uploaded"):
        assert store.keys() == ["c"]
    with pytest.raises(alphazoo.InvalidKeyError, match="'c' is an object"):
        store.sync()


@pytest.mark.slow
def test_close_uploads_staged_copies_and_a_dropped_store_warns() -> None:
    import gc

    url = f"memory://staged-{uuid.uuid4().hex}"
    with ObjectStore(url) as store:
        Path(store.get_file_path("kept.bin")).write_bytes(b"kept")
    assert ObjectStore(url).read_bytes("kept.bin") == b"kept"

    forgetful = ObjectStore(url)
    staged = Path(forgetful.get_file_path("lost.bin"))
    staged.write_bytes(b"never uploaded")
    with pytest.warns(ResourceWarning, match="lost.bin"):
        del forgetful
        gc.collect()
    assert not staged.exists()  # the staging folder is removed either way


def test_an_empty_folder_is_not_a_conflict(tmp_path: Path) -> None:
    store = ObjectStore(tmp_path)
    store.get_file_path("c/d")  # creates folder c, never written
    assert store.save("c", "object") and store.read("c") == "object"


def test_size_of_a_folder_is_not_an_object(tmp_path: Path) -> None:
    store = ObjectStore(tmp_path)
    store.save("demo/a", "x")
    with pytest.raises(alphazoo.ObjectNotFoundError):
        store.size("demo")


def test_file_urls_name_local_folders(tmp_path: Path) -> None:
    folder = tmp_path / "my store"
    ObjectStore(folder).save("k", "v")
    for url in (folder.as_uri(), f"file://localhost{folder.as_posix()}", f"local://{folder}"):
        assert ObjectStore(url).read("k") == "v", url
    with pytest.raises(ValueError, match="another host"):
        ObjectStore(f"file://elsewhere{folder.as_posix()}")


def test_folder_is_the_local_root_and_none_elsewhere(tmp_path: Path) -> None:
    assert ObjectStore(tmp_path / "not-yet").folder == (tmp_path / "not-yet").resolve()
    assert ObjectStore(f"memory://folder-{uuid.uuid4().hex}").folder is None
