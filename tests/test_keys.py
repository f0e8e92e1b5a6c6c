"""Object-store key rules (LEAN's): what is accepted, how it is normalized, what is refused and
how the refusal reads; and that the store applies the same rules on every entry point."""

from __future__ import annotations

from pathlib import Path

import pytest

import alphazoo
from alphazoo.keys import MAX_KEY_LENGTH, MAX_SEGMENT_LENGTH, is_valid_key, normalize_key

ACCEPTED = {
    "my_key": "my_key",
    "test/123": "test/123",
    "models/spy-rf.onnx": "models/spy-rf.onnx",
    "./a/su-p_er\\pr x=": "a/su-p_er/pr x=",
    "a\\b\\c": "a/b/c",
    "././x": "x",
    "hash#dollar$eq=": "hash#dollar$eq=",
    "with space/and more.txt": "with space/and more.txt",
    "UPPER/lower/0123456789": "UPPER/lower/0123456789",
    "-_- #$= /x": "-_- #$= /x",
}

REFUSED = [
    "**abc**",
    "<random>",
    "|",
    "../x",
    "..\\x",
    "a/../b",
    "a/./b",
    ".",
    "..",
    "/etc/x",
    "\\etc\\x",
    "C:/x",
    "C:\\x",
    "c:x",
    "\\\\server\\share\\x",
    "a\x00b",
    "\x00",
    "",
    "./",
    "a/",
    "a//b",
    "a?b",
    "a:b",
    'a"b',
    "a>b",
    "a\nb",
    "a\tb",
    ".hidden",
    "a/.hidden",
    "dir.ext/file",
    "two.dots.txt",
    "trailing.",
    "x" * (MAX_KEY_LENGTH + 1),
]


@pytest.mark.parametrize(("key", "normal"), ACCEPTED.items(), ids=repr)
def test_accepted_keys_normalize(key: str, normal: str) -> None:
    assert normalize_key(key) == normal
    assert is_valid_key(key)
    # Normalizing is idempotent: the canonical spelling is its own canonical spelling.
    assert normalize_key(normal) == normal


def test_the_issues_example_normalizes_backslashes_and_leading_dot_slash() -> None:
    assert normalize_key("./a/su-p_er\\pr x=") == "a/su-p_er/pr x="


def test_longest_key_is_accepted() -> None:
    segment = "x" * MAX_SEGMENT_LENGTH
    key = "/".join([segment] * (MAX_KEY_LENGTH // (MAX_SEGMENT_LENGTH + 1)))
    key += "/" + "y" * (MAX_KEY_LENGTH - len(key) - 1)
    assert len(key) == MAX_KEY_LENGTH
    assert normalize_key(key) == key


def test_a_segment_longer_than_file_systems_allow_is_refused(tmp_path) -> None:
    # 255 bytes per name, less the up to 52 a folder store's temporary file adds around it.
    store = alphazoo.ObjectStore(tmp_path)
    longest = "x" * MAX_SEGMENT_LENGTH
    assert store.save(f"a/{longest}", "fits") and store.read(f"a/{longest}") == "fits"
    with pytest.raises(alphazoo.InvalidKeyError, match="at most 200 characters"):
        store.save("a/" + "x" * (MAX_SEGMENT_LENGTH + 1), "too long")


@pytest.mark.parametrize("key", REFUSED, ids=repr)
def test_refused_keys_raise_invalid_key_error_naming_the_key(key: str) -> None:
    with pytest.raises(alphazoo.InvalidKeyError) as info:
        normalize_key(key)
    error = info.value
    assert isinstance(error, ValueError)
    assert isinstance(error, alphazoo.AlphazooError)
    assert error.key == key
    assert repr(key) in str(error)
    assert error.rule and error.rule in str(error)
    assert not is_valid_key(key)


@pytest.mark.parametrize("key", [None, 123, b"bytes", Path("a/b")], ids=repr)
def test_non_string_keys_are_refused(key: object) -> None:
    with pytest.raises(alphazoo.InvalidKeyError, match="must be a str"):
        normalize_key(key)  # type: ignore[arg-type]
    assert not is_valid_key(key)  # type: ignore[arg-type]


def test_rule_messages_say_what_is_wrong() -> None:
    with pytest.raises(alphazoo.InvalidKeyError, match="relative"):
        normalize_key("/etc/x")
    with pytest.raises(alphazoo.InvalidKeyError, match="'..'"):
        normalize_key("../x")
    with pytest.raises(alphazoo.InvalidKeyError, match="NUL"):
        normalize_key("a\x00b")
    with pytest.raises(alphazoo.InvalidKeyError, match="empty"):
        normalize_key("")
    with pytest.raises(alphazoo.InvalidKeyError, match="segment '<random>'"):
        normalize_key("<random>")


# -- the store applies the rules --------------------------------------------------------------

@pytest.fixture
def local_store(tmp_path: Path) -> alphazoo.ObjectStore:
    return alphazoo.ObjectStore(tmp_path / "store")


@pytest.mark.parametrize("key", ["**abc**", "<random>", "|", "../x", "..\\x", "/etc/x", "C:/x",
                                 "a\x00b"], ids=repr)
def test_store_refuses_invalid_keys_everywhere_and_writes_nothing(
    local_store: alphazoo.ObjectStore, tmp_path: Path, key: str
) -> None:
    calls = {
        "save": lambda: local_store.save(key, "x"),
        "save_bytes": lambda: local_store.save_bytes(key, b"x"),
        "save_json": lambda: local_store.save_json(key, {"a": 1}),
        "save_xml": lambda: local_store.save_xml(key, "<a/>"),
        "write_stream": lambda: local_store.write_stream(key, [b"x"], 1),
        "read": lambda: local_store.read(key),
        "read_bytes": lambda: local_store.read_bytes(key),
        "read_json": lambda: local_store.read_json(key),
        "read_xml": lambda: local_store.read_xml(key),
        "delete": lambda: local_store.delete(key),
        "get_file_path": lambda: local_store.get_file_path(key),
        "size": lambda: local_store.size(key),
    }
    for name, call in calls.items():
        with pytest.raises(alphazoo.InvalidKeyError) as info:
            call()
        assert info.value.key == key, name
    # An invalid key is simply not in the store.
    assert not local_store.contains_key(key)
    assert key not in local_store
    assert local_store.keys() == []
    # Nothing was written, inside the store's root or outside it.
    assert {p.name for p in tmp_path.iterdir()} <= {"store"}
    assert [p for p in tmp_path.rglob("*") if p.is_file() and p.name != ".alphazoo.lock"] == []


@pytest.mark.parametrize(("key", "normal"), ACCEPTED.items(), ids=repr)
def test_every_spelling_of_a_key_names_the_same_object(
    local_store: alphazoo.ObjectStore, key: str, normal: str
) -> None:
    assert local_store.save(key, "value") is True
    assert local_store.keys() == [normal]
    assert local_store.read(normal) == "value"
    assert local_store.read(key) == "value"
    assert local_store.contains_key(key) and local_store.contains_key(normal)
    assert Path(local_store.get_file_path(key)) == Path(local_store.url, *normal.split("/"))
    assert local_store.delete(key) is True
    assert not local_store.contains_key(normal)
    assert local_store.keys() == []


@pytest.mark.parametrize("key", [*ACCEPTED.values(), *REFUSED, "a/b.c.d", "a.b/c", "x" * 1025])
def test_canonical_key_check_agrees_with_normalize(key: str) -> None:
    # Stores list their keys with the fast one-pattern check; it must draw the same line.
    from alphazoo.keys import is_canonical_key, is_valid_key, normalize_key

    expected = is_valid_key(key) and normalize_key(key) == key
    assert is_canonical_key(key) is expected
