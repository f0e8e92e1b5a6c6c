"""Bundles: one checksummed store object per saved model, verified before anything is loaded.

Every test works on a real :class:`alphazoo.ObjectStore` in ``tmp_path``; corruption is made by
rewriting the stored object's bytes with ``store.save_bytes``.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import pickle
import platform
import struct
from datetime import datetime
from pathlib import Path

import numpy as np
import pytest

import alphazoo
from alphazoo.bundle import MAGIC, PROTOCOL, read_bundle, read_manifest, write_bundle

HEADER = struct.Struct(">HQ")
HEAD = len(MAGIC) + HEADER.size  # magic + protocol + manifest length
DIGEST = 32


# -- fixtures and helpers ------------------------------------------------------------------------
@pytest.fixture(scope="module")
def data() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(7)
    X = rng.normal(size=(40, 2))
    y = (X[:, 0] - X[:, 1] > 0).astype(int)
    return X, y


@pytest.fixture
def tiny_model(data):
    from sklearn.linear_model import LogisticRegression

    X, y = data
    return LogisticRegression().fit(X, y)


def regions(raw: bytes) -> dict[str, tuple[int, int]]:
    """Byte ranges of the parts of a bundle (parsed independently of alphazoo)."""
    assert raw[: len(MAGIC)] == MAGIC
    protocol, manifest_length = HEADER.unpack(raw[len(MAGIC):HEAD])
    assert protocol in (1, 2)
    manifest = json.loads(raw[HEAD:HEAD + manifest_length])
    payload_end = HEAD + manifest_length + sum(entry["size"] for entry in manifest["files"])
    return {
        "magic": (0, len(MAGIC)),
        "header": (len(MAGIC), HEAD),
        "manifest": (HEAD, HEAD + manifest_length),
        "payload": (HEAD + manifest_length, payload_end),
        "trailer": (payload_end, len(raw)),
    }


def split(raw: bytes) -> tuple[dict, bytes, bytes]:
    """(manifest, payload, trailer) of a stored bundle."""
    r = regions(raw)
    manifest = json.loads(raw[slice(*r["manifest"])])
    return manifest, raw[slice(*r["payload"])], raw[slice(*r["trailer"])]


def pack(
    manifest: dict | bytes, payload: bytes, mac: bytes | None = None, protocol: int = PROTOCOL
) -> bytes:
    """Build a bundle the way an attacker with the layout, but without any key, would.

    Protocol 1's closing SHA-256 covers every byte before it; protocol 2's covers the part
    before the payload (and the MAC), the payload being covered by the manifest's hashes.
    """
    manifest_bytes = (
        manifest if isinstance(manifest, bytes)
        else json.dumps(manifest, sort_keys=True, separators=(",", ":")).encode()
    )
    head = MAGIC + HEADER.pack(protocol, len(manifest_bytes)) + manifest_bytes
    trailer = mac or b""
    covered = head + payload + trailer if protocol == 1 else head + trailer
    return head + payload + trailer + hashlib.sha256(covered).digest()


def assert_rejected(zoo: alphazoo.Zoo, key: str, **load_kwargs) -> None:
    """Both load and inspect must refuse the object with BundleIntegrityError."""
    with pytest.raises(alphazoo.BundleIntegrityError):
        zoo.load(key, **load_kwargs)
    with pytest.raises(alphazoo.BundleIntegrityError):
        zoo.inspect(key)


# -- the error family ----------------------------------------------------------------------------
def test_every_alphazoo_error_derives_from_alphazoo_error():
    for name in alphazoo.errors.__all__:
        cls = getattr(alphazoo, name)
        if issubclass(cls, Warning):  # VersionMismatchWarning: a warning, not an error
            continue
        assert issubclass(cls, alphazoo.AlphazooError), name
    assert issubclass(alphazoo.UnsupportedModelError, TypeError)
    assert issubclass(alphazoo.UnsupportedFormatError, ValueError)
    assert issubclass(alphazoo.ObjectNotFoundError, KeyError)


# -- layout and round trip -----------------------------------------------------------------------
def test_save_writes_exactly_one_store_object_with_the_documented_layout(zoo, store, tiny_model):
    manifest = zoo.save(tiny_model, "models/lr", format="pickle")
    assert store.keys() == ["models/lr"]

    raw = store.read_bytes("models/lr")
    r = regions(raw)
    assert raw.startswith(MAGIC)
    assert HEADER.unpack(raw[slice(*r["header"])])[0] == PROTOCOL == 2
    assert json.loads(raw[slice(*r["manifest"])]) == manifest == zoo.inspect("models/lr")
    # canonical JSON: sorted keys, no whitespace
    assert raw[slice(*r["manifest"])] == json.dumps(
        manifest, sort_keys=True, separators=(",", ":")
    ).encode()
    assert r["trailer"][1] - r["trailer"][0] == DIGEST  # unsigned: the SHA-256 only
    # Protocol 2: the closing SHA-256 covers magic, header and manifest; the manifest's
    # per-file SHA-256 covers the payload.
    assert raw[-DIGEST:] == hashlib.sha256(raw[: r["payload"][0]]).digest()
    (entry,) = manifest["files"]
    payload = raw[slice(*r["payload"])]
    assert entry["size"] == len(payload)
    assert entry["sha256"] == hashlib.sha256(payload).hexdigest()


def test_signed_bundle_trailer_holds_mac_then_digest(zoo, store, tiny_model):
    key_bytes = b"bundle-key"
    zoo.save(tiny_model, "signed", format="pickle", sign_key=key_bytes)
    raw = store.read_bytes("signed")
    manifest, _, trailer = split(raw)
    assert manifest["signature"] == "hmac-sha256"
    assert len(trailer) == 2 * DIGEST
    head = raw[: regions(raw)["payload"][0]]  # the manifest in it holds the payload's hashes
    assert trailer[:DIGEST] == hmac.new(key_bytes, head, hashlib.sha256).digest()
    assert trailer[DIGEST:] == hashlib.sha256(head + trailer[:DIGEST]).digest()  # MAC too


def test_write_and_read_bundle_round_trip_several_files(store, tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    contents = {"a.bin": bytes(range(256)) * 3, "b.json": b'{"x": 1}', "empty": b""}
    for name, blob in contents.items():
        (src / name).write_bytes(blob)

    meta = {"adapter": "test", "format": "raw"}
    written = write_bundle(store, "multi", meta, src, list(contents))
    assert written["protocol"] == PROTOCOL and written["signature"] is None
    assert [f["name"] for f in written["files"]] == list(contents)
    expected_size = HEAD + len(json.dumps(written, sort_keys=True, separators=(",", ":"))) + \
        sum(map(len, contents.values())) + DIGEST
    assert store.size("multi") == expected_size

    out = tmp_path / "out"
    out.mkdir()
    opened = read_bundle(store, "multi", out)
    assert opened.manifest == written and opened.signature_valid is False
    assert {name: path.read_bytes() for name, path in opened.files.items()} == contents
    assert read_manifest(store, "multi") == written

    # inspect-style read verifies without writing anything
    assert read_bundle(store, "multi", None).files == {}


@pytest.mark.parametrize("room", [0, 300, 10 ** 9])
def test_payload_files_beyond_the_read_once_room_are_streamed_from_disk(store, tmp_path,
                                                                        monkeypatch, room):
    # Files are read once and kept while they fit in the room, the rest are hashed and then
    # streamed again: every split of one payload must write the same bundle.
    import alphazoo.bundle as bundle

    monkeypatch.setattr(bundle, "_READ_ONCE", room)
    src = tmp_path / "src"
    src.mkdir()
    contents = {"a.bin": bytes(range(256)), "b.bin": b"b" * 100, "c.bin": b"c" * 500}
    for name, blob in contents.items():
        (src / name).write_bytes(blob)
    written = write_bundle(store, "split", {"adapter": "test", "format": "raw"}, src,
                           list(contents))
    assert [f["sha256"] for f in written["files"]] == [
        hashlib.sha256(blob).hexdigest() for blob in contents.values()]
    out = tmp_path / "out"
    out.mkdir()
    opened = read_bundle(store, "split", out)
    assert {name: path.read_bytes() for name, path in opened.files.items()} == contents


def test_signature_validity_depends_on_the_key(store, tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    (src / "p").write_bytes(b"payload")
    write_bundle(store, "s", {"adapter": "test", "format": "raw"}, src, ["p"], sign_key=b"right")
    assert read_bundle(store, "s", None, b"right").signature_valid is True
    assert read_bundle(store, "s", None, b"wrong").signature_valid is False
    assert read_bundle(store, "s", None, None).signature_valid is False


@pytest.mark.parametrize("name", ["../escape", ".hidden", "a/b", "", "x" * 201, "bad name"])
def test_write_bundle_refuses_file_names_that_are_not_plain(store, tmp_path, name):
    with pytest.raises(ValueError, match="plain file name"):
        write_bundle(store, "k", {}, tmp_path, [name])
    assert not store.contains_key("k")


def test_missing_key_is_object_not_found(zoo):
    with pytest.raises(alphazoo.ObjectNotFoundError, match="nope"):
        zoo.load("nope")
    with pytest.raises(alphazoo.ObjectNotFoundError):
        zoo.inspect("nope")


@pytest.mark.parametrize("blob", [b"", b"hello world", MAGIC[:-1], b"PK\x03\x04" + b"\0" * 64])
def test_objects_that_are_not_bundles_are_refused(zoo, store, blob):
    store.save_bytes("junk", blob)
    assert_rejected(zoo, "junk", trusted=True)


# -- manifest contents ---------------------------------------------------------------------------
@pytest.mark.slow
def test_manifest_records_everything_the_issue_lists(zoo, store, data, tmp_path):
    import sklearn

    X, y = data
    model = zoo.train(zoo.build("logistic_regression", C=0.5), X, y)
    user = {"owner": "qa", "tags": ["a", "b"], "n": np.int64(3)}
    saved = zoo.save(model, "spy/lr", metadata=user)
    manifest = zoo.inspect("spy/lr")
    assert manifest == saved

    assert manifest["protocol"] == PROTOCOL
    assert manifest["adapter"] == "sklearn"
    assert manifest["format"] == "skops"  # the safe default
    assert manifest["name"] == "logistic_regression"
    assert manifest["params"] == {"C": 0.5}
    assert manifest["model_class"] == "sklearn.pipeline.Pipeline"
    assert manifest["libraries"]["scikit-learn"] == sklearn.__version__
    assert "skops" in manifest["libraries"]
    assert manifest["python"] == platform.python_version()
    assert manifest["signature"] is None
    assert manifest["input"] == {"dtype": "float64", "shape": [None, 2], "feature_names": None}
    assert manifest["training"]["rows"] == len(X)
    seconds = manifest["training"]["seconds"]
    assert isinstance(seconds, float) and seconds >= 0
    assert manifest["metadata"] == {"owner": "qa", "tags": ["a", "b"], "n": 3}
    created = datetime.fromisoformat(manifest["created"])
    assert created.tzinfo is not None

    # the per-file SHA-256 and sizes describe the payload actually stored
    out = tmp_path / "extract"
    out.mkdir()
    opened = read_bundle(store, "spy/lr", out)
    assert [f["name"] for f in manifest["files"]] == ["model.skops"]
    for entry in manifest["files"]:
        blob = opened.files[entry["name"]].read_bytes()
        assert entry["size"] == len(blob)
        assert entry["sha256"] == hashlib.sha256(blob).hexdigest()


@pytest.mark.slow
def test_model_saved_without_zoo_train_has_no_training_metadata(zoo, tiny_model):
    manifest = zoo.save(tiny_model, "plain")
    assert manifest["training"] is None
    assert manifest["metadata"] == {}
    assert manifest["name"] == "LogisticRegression"


# -- corruption: every byte ----------------------------------------------------------------------
def _flip_every_byte(zoo, store, key, positions, mask, load_kwargs):
    pristine = store.read_bytes(key)
    undetected = []
    for pos in positions:
        corrupted = bytearray(pristine)
        corrupted[pos] ^= mask
        store.save_bytes(key, bytes(corrupted))
        for action in (lambda: zoo.load(key, **load_kwargs), lambda: zoo.inspect(key)):
            try:
                action()
            except alphazoo.BundleIntegrityError:
                continue
            except Exception as exc:  # any other outcome is a failure; collect it
                undetected.append((pos, type(exc).__name__, str(exc)[:80]))
            else:
                undetected.append((pos, "loaded", ""))
    store.save_bytes(key, pristine)
    return undetected


@pytest.mark.slow
@pytest.mark.parametrize("signed", [False, True], ids=["unsigned", "signed"])
def test_flipping_any_single_byte_is_detected(zoo, store, tiny_model, signed):
    sign_key = "flip-key" if signed else None
    zoo.save(tiny_model, "flip", format="pickle", sign_key=sign_key)
    raw = store.read_bytes("flip")
    r = regions(raw)
    assert all(end > start for start, end in r.values()), r  # every region is non-empty

    # trusted (and, when signed, the right key): only integrity stands between us and pickle
    kwargs = {"trusted": True, "sign_key": sign_key}
    undetected = _flip_every_byte(zoo, store, "flip", range(len(raw)), 0x01, kwargs)
    assert undetected == []
    # the pristine object still loads, so the failures above were caused by the flips
    assert np.array_equal(zoo.load("flip", **kwargs).coef_, tiny_model.coef_)


@pytest.mark.slow
def test_flipping_bytes_of_a_skops_bundle_on_a_dense_stride(zoo, store, tiny_model):
    zoo.save(tiny_model, "flip-skops")  # skops: a zip payload, larger than the pickle one
    raw = store.read_bytes("flip-skops")
    r = regions(raw)
    positions = set(range(0, len(raw), 7))
    for start, end in r.values():  # every byte of the small regions, both ends of the big ones
        if end - start <= 64:
            positions.update(range(start, end))
        positions.update({start, end - 1, (start + end) // 2})
    undetected = _flip_every_byte(zoo, store, "flip-skops", sorted(positions), 0xFF, {})
    assert undetected == []
    assert zoo.load("flip-skops").predict(np.eye(2)).shape == (2,)


# -- corruption: missing and extra bytes ---------------------------------------------------------
@pytest.mark.slow
def test_truncation_at_every_length_is_detected(zoo, store, tiny_model):
    zoo.save(tiny_model, "trunc", format="pickle")
    pristine = store.read_bytes("trunc")
    for length in range(len(pristine)):
        store.save_bytes("trunc", pristine[:length])
        assert_rejected(zoo, "trunc", trusted=True)


@pytest.mark.parametrize("extra", [b"\0", b"x" * 31, b"y" * 32, b"z" * 64, "copy"])
def test_appended_bytes_are_detected(zoo, store, tiny_model, extra):
    zoo.save(tiny_model, "extended", format="pickle")
    pristine = store.read_bytes("extended")
    store.save_bytes("extended", pristine + (pristine if extra == "copy" else extra))
    assert_rejected(zoo, "extended", trusted=True)


def test_appended_bytes_are_detected_on_a_signed_bundle(zoo, store, tiny_model):
    zoo.save(tiny_model, "signed-extended", format="pickle", sign_key="k")
    pristine = store.read_bytes("signed-extended")
    for extra in (b"\0", b"\0" * 32):
        store.save_bytes("signed-extended", pristine + extra)
        assert_rejected(zoo, "signed-extended", sign_key="k")


def test_deleting_or_inserting_a_byte_anywhere_is_detected(zoo, store, tiny_model):
    zoo.save(tiny_model, "shifted", format="pickle")
    pristine = store.read_bytes("shifted")
    r = regions(pristine)
    positions = [0, len(pristine) // 2, len(pristine) - 1]
    positions += [(start + end) // 2 for start, end in r.values()]
    for pos in positions:
        store.save_bytes("shifted", pristine[:pos] + pristine[pos + 1:])
        assert_rejected(zoo, "shifted", trusted=True)
        store.save_bytes("shifted", pristine[:pos] + b"\x00" + pristine[pos:])
        assert_rejected(zoo, "shifted", trusted=True)


# -- corruption by someone who knows the layout --------------------------------------------------
def test_manifest_rewritten_with_recomputed_file_hashes_but_old_trailer(zoo, store, tiny_model):
    from sklearn.linear_model import LogisticRegression

    zoo.save(tiny_model, "victim", format="pickle")
    raw = store.read_bytes("victim")
    manifest, _, trailer = split(raw)

    # the attacker swaps the payload and fixes every per-file hash and size in the manifest
    other = LogisticRegression().fit(np.array([[0.0], [1.0]]), [1, 0])
    payload = pickle.dumps(other)
    manifest["files"][0].update(size=len(payload), sha256=hashlib.sha256(payload).hexdigest())
    forged = pack(manifest, payload)
    store.save_bytes("victim", forged[:-DIGEST] + trailer)  # ...but cannot recompute: old digest
    assert_rejected(zoo, "victim", trusted=True)

    # an edit of the user metadata alone is caught the same way
    manifest, payload, trailer = split(raw)
    manifest["metadata"] = {"approved": True}
    store.save_bytes("victim", pack(manifest, payload)[:-DIGEST] + trailer)
    assert_rejected(zoo, "victim", trusted=True)


@pytest.mark.parametrize(
    "edit",
    [
        lambda m: m["files"][0].update(size=float("inf")),
        lambda m: m["files"][0].update(size=-1),
        lambda m: m["files"][0].update(size="12"),
        lambda m: m["files"][0].update(size=None),
        lambda m: m["files"][0].update(name=5),
        lambda m: m["files"][0].update(name="../../etc/passwd"),
        lambda m: m["files"][0].update(sha256="é" * 64),
        lambda m: m["files"][0].update(sha256=None),
        lambda m: m["files"][0].pop("sha256"),
        lambda m: m.update(files=m["files"] * 2),
        lambda m: m.update(files={"model.pkl": 1}),
        lambda m: m.update(files="model.pkl"),
        lambda m: m.pop("files"),
        lambda m: m.update(signature="hmac-sha256"),
    ],
    ids=[
        "size-inf", "size-negative", "size-string", "size-null", "name-int", "name-path",
        "sha-non-ascii", "sha-null", "sha-missing", "files-duplicated", "files-object",
        "files-string", "files-missing", "claims-signed",
    ],
)
@pytest.mark.parametrize("digest", ["stale", "recomputed"])
def test_malformed_manifests_are_integrity_errors(zoo, store, tiny_model, edit, digest):
    zoo.save(tiny_model, "crafted", format="pickle")
    manifest, payload, trailer = split(store.read_bytes("crafted"))
    edit(manifest)
    forged = pack(manifest, payload)
    if digest == "stale":
        forged = forged[:-DIGEST] + trailer
    store.save_bytes("crafted", forged)
    assert_rejected(zoo, "crafted", trusted=True)


@pytest.mark.parametrize(
    "manifest_bytes",
    [b"[]", b"null", b'"text"', b"{", b"\xff\xfe", b"[" * 100_000 + b"]" * 100_000, b"{}"],
    ids=["list", "null", "string", "broken", "not-utf8", "deep", "no-files"],
)
def test_manifests_that_are_not_objects_are_integrity_errors(zoo, store, manifest_bytes):
    store.save_bytes("odd", pack(manifest_bytes, b""))
    assert_rejected(zoo, "odd", trusted=True)


def test_manifest_length_pointing_past_the_object(zoo, store, tiny_model):
    zoo.save(tiny_model, "long", format="pickle")
    raw = bytearray(store.read_bytes("long"))
    for length in (len(raw), len(raw) + 1, 2**63 - 1, 2**64 - 1, 0):
        raw[len(MAGIC):HEAD] = HEADER.pack(1, length)
        store.save_bytes("long", bytes(raw))
        assert_rejected(zoo, "long", trusted=True)


# -- protocol numbers ----------------------------------------------------------------------------
@pytest.mark.parametrize("protocol", [PROTOCOL + 1, 99, 0xFFFF])
def test_future_protocol_asks_for_an_upgrade(zoo, store, tiny_model, protocol):
    zoo.save(tiny_model, "future", format="pickle")
    manifest, payload, _ = split(store.read_bytes("future"))
    manifest["protocol"] = protocol
    # a self-consistent bundle from a later alphazoo, not a corrupt one
    store.save_bytes("future", pack(manifest, payload, protocol=protocol))
    for action in (lambda: zoo.load("future", trusted=True), lambda: zoo.inspect("future")):
        with pytest.raises(alphazoo.BundleIntegrityError, match="upgrade") as info:
            action()
        assert f"protocol {protocol}" in str(info.value)


def test_reader_never_sees_a_valid_bundle_as_corrupt_while_it_is_replaced(zoo, data):
    # The reader must take the size of the object it opened, not of whatever is stored a
    # moment earlier: an atomic replace in between would otherwise look like truncation.
    import threading

    from sklearn.linear_model import LogisticRegression

    X, y = data
    small = LogisticRegression().fit(X, y)
    zoo.save(small, "m", format="pickle", metadata={"pad": ""})
    stop = threading.Event()

    def writer() -> None:
        flip = False
        while not stop.is_set():
            flip = not flip  # two sizes, so a size/content mismatch cannot go unnoticed
            zoo.save(small, "m", format="pickle", metadata={"pad": "x" * (24 if flip else 0)})

    thread = threading.Thread(target=writer)
    thread.start()
    errors = []
    try:
        for _ in range(300):
            try:
                zoo.inspect("m")
            except alphazoo.BundleIntegrityError as exc:
                errors.append(str(exc))
    finally:
        stop.set()
        thread.join()
    assert errors == []


# -- protocol 1 stays readable ---------------------------------------------------------------
def test_a_protocol_1_bundle_still_loads(tmp_path):
    """A bundle written by alphazoo 0.1.0 before protocol 2, kept in tests/data for good."""
    data = Path(__file__).parent / "data"
    raw = (data / "protocol1-logreg.onnx.bundle").read_bytes()
    assert HEADER.unpack(raw[len(MAGIC):HEAD])[0] == 1
    store = alphazoo.ObjectStore(tmp_path / "store")
    store.save_bytes("old/logreg", raw)
    zoo = alphazoo.Zoo(store)
    assert zoo.inspect("old/logreg")["protocol"] == 1
    expected = json.loads((data / "protocol1-logreg.expected.json").read_text())
    model = zoo.load("old/logreg")
    np.testing.assert_allclose(model.predict_proba(np.array(expected["rows"])),
                               expected["predict_proba"], rtol=0, atol=1e-7)


@pytest.mark.parametrize("offset", range(0, 1464, 7))
def test_every_changed_byte_of_a_protocol_1_bundle_is_found(tmp_path, offset):
    raw = bytearray((Path(__file__).parent / "data" / "protocol1-logreg.onnx.bundle").read_bytes())
    raw[offset] ^= 0x01
    store = alphazoo.ObjectStore(tmp_path / "store")
    store.save_bytes("old/flipped", bytes(raw))
    with pytest.raises(alphazoo.BundleIntegrityError):
        read_bundle(store, "old/flipped", None)
