"""Pickle payloads saved through memory: hashed as they are written, the head written last.

``zoo.save(..., format="pickle")`` pickles into a :class:`PayloadBuffer` instead of a scratch
file, and a folder store writes the payload before the head that holds its SHA-256 (the hash
finishes on its thread meanwhile). The bundle must be the same bytes as one written from a
file, on every backend, and every changed byte must still be refused.
"""

from __future__ import annotations

import hashlib
import pickle
import threading

import numpy as np
import pytest

import alphazoo
from alphazoo.bundle import read_bundle, write_bundle
from alphazoo.errors import BundleIntegrityError
from alphazoo.payload_buffer import HASH_THREAD_AT, PayloadBuffer


def _hash_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "alphazoo-hash" and t.is_alive()]


@pytest.mark.parametrize("size", [1000, 3 * HASH_THREAD_AT])
def test_the_buffer_keeps_and_hashes_exactly_what_was_written(size):
    array = np.arange(size // 8, dtype=np.int64)
    reused = bytearray(b"first")
    buffer = PayloadBuffer("model.bin")
    buffer.write(b"head")
    buffer.write(pickle.PickleBuffer(array))
    buffer.write(reused)
    reused[:] = b"later"  # a writer reusing its buffer must not change what was kept
    buffer.write(memoryview(b"tail"))
    buffer.write(b"")
    expected = b"head" + array.tobytes() + b"first" + b"tail"
    assert buffer.size == buffer.tell() == len(expected)
    assert buffer.finish() == hashlib.sha256(expected).hexdigest()
    assert b"".join(bytes(chunk) for chunk in buffer.chunks) == expected
    assert not _hash_threads()
    with pytest.raises(ValueError, match="already finished"):
        buffer.write(b"more")


def _big_model() -> dict[str, object]:
    rng = np.random.default_rng(0)
    return {"weights": rng.normal(size=(400, 1000)), "name": "big", "ints": list(range(1000))}


@pytest.mark.parametrize("url", ["folder", "memory://payload-buffer-identical"])
@pytest.mark.parametrize("sign_key", [None, b"k"])
def test_a_bundle_from_a_buffer_is_the_same_bytes_as_one_from_a_file(tmp_path, url, sign_key):
    store = alphazoo.ObjectStore(tmp_path / "store" if url == "folder" else url)
    model = _big_model()
    folder = tmp_path / "files"
    folder.mkdir()
    with open(folder / "model.pkl", "wb") as handle:
        pickle.dump(model, handle, protocol=5)
    buffer = PayloadBuffer("model.pkl")
    pickle.dump(model, buffer, protocol=5)
    assert buffer.size > HASH_THREAD_AT  # hashed on the thread, head written last
    manifest = {"adapter": "test", "format": "raw"}
    from_file = write_bundle(store, "file", manifest, folder, ["model.pkl"], sign_key)
    empty = tmp_path / "empty"
    empty.mkdir()
    from_buffer = write_bundle(store, "buffer", manifest, empty, ["model.pkl"], sign_key,
                               buffers={"model.pkl": buffer})
    assert from_buffer == from_file
    assert store.read_bytes("buffer") == store.read_bytes("file")
    opened = read_bundle(store, "buffer", None, sign_key, keep=1 << 30)
    assert opened.data["model.pkl"] == (folder / "model.pkl").read_bytes()
    assert opened.signature_valid is bool(sign_key)


def test_a_large_pickle_saved_through_memory_refuses_every_flipped_byte(tmp_path):
    from sklearn.linear_model import LogisticRegression

    X = np.random.default_rng(1).normal(size=(50, 3))
    model = LogisticRegression().fit(X, (X[:, 0] > 0).astype(int))
    model.extra_ = np.random.default_rng(2).normal(size=(300, 1000))  # 2.4 MB: the thread
    zoo = alphazoo.Zoo(store=str(tmp_path / "store"))
    manifest = zoo.save(model, "m", format="pickle")
    assert manifest["files"][0]["size"] > HASH_THREAD_AT
    loaded = zoo.load("m", trusted=True)
    assert np.array_equal(loaded.extra_, model.extra_)
    assert np.array_equal(loaded.predict(X), model.predict(X))
    path = tmp_path / "store" / "m"
    original = path.read_bytes()
    offsets = [int(len(original) * (k + 0.5) / 16) for k in range(16)]
    refused = 0
    for offset in offsets:
        changed = bytearray(original)
        changed[offset] ^= 0x10
        path.write_bytes(bytes(changed))
        try:
            zoo.load("m", trusted=True)
        except BundleIntegrityError:
            refused += 1
    path.write_bytes(original)
    assert refused == len(offsets)
    assert np.array_equal(zoo.load("m", trusted=True).extra_, model.extra_)


def test_a_pickle_that_fails_half_way_stores_nothing_and_stops_the_hashing_thread(tmp_path):
    from sklearn.linear_model import LogisticRegression

    X = np.random.default_rng(1).normal(size=(50, 3))
    model = LogisticRegression().fit(X, (X[:, 0] > 0).astype(int))
    # Past the thread's threshold, then something pickle refuses.
    model.extra_ = [np.zeros(2 * HASH_THREAD_AT // 8), lambda: 0]
    zoo = alphazoo.Zoo(store=str(tmp_path / "store"))
    with pytest.raises((pickle.PicklingError, AttributeError, TypeError)):
        zoo.save(model, "broken", format="pickle")
    assert not _hash_threads()
    assert "broken" not in zoo.store.keys()


def test_a_request_offers_buffers_only_when_the_host_takes_them(tmp_path):
    from alphazoo.contracts import SaveRequest

    direct = SaveRequest(object(), "pickle", tmp_path)  # a hook called directly: files
    assert direct.payload_buffer("model.pkl") is None
    hosted = SaveRequest(object(), "pickle", tmp_path, buffers={})
    first = hosted.payload_buffer("model.pkl")
    assert first is not None
    first.write(bytes(2 * HASH_THREAD_AT))  # its hashing thread is running
    second = hosted.payload_buffer("model.pkl")
    assert second is not first and hosted.buffers == {"model.pkl": second}
    assert not _hash_threads()  # the replaced buffer's thread was stopped
