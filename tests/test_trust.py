"""Trust: formats that run code on load (pickle, skops with foreign callables) need trusted=True
or a valid HMAC made with the loader's key, and nothing is unpickled before those checks."""

from __future__ import annotations

import builtins
import hashlib
import json
import pathlib
import pickle
import struct
import zipfile
from pathlib import Path

import numpy as np
import pytest

import alphazoo
from alphazoo.bundle import MAGIC, read_bundle, signing_key, write_bundle

HEADER = struct.Struct(">HQ")
HEAD = len(MAGIC) + HEADER.size
DIGEST = 32


# -- fixtures and helpers ------------------------------------------------------------------------
@pytest.fixture(scope="module")
def data() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(11)
    X = rng.normal(size=(60, 3))
    y = (X[:, 0] + X[:, 2] > 0).astype(int)
    return X, y


@pytest.fixture
def model(data):
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    X, y = data
    return make_pipeline(StandardScaler(), LogisticRegression()).fit(X, y)


class Detonator:
    """Unpickling this object creates ``marker``: proof that pickle ran attacker code."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (pathlib.Path.touch, (self.marker,))


@pytest.fixture
def marker(tmp_path: Path) -> Path:
    return tmp_path / "pwned"


@pytest.fixture
def evil_payload(marker: Path, tmp_path: Path) -> bytes:
    """A malicious pickle, proven to execute by unpickling a twin aimed at another marker."""
    control = tmp_path / "control-marker"
    pickle.loads(pickle.dumps(Detonator(control)))
    assert control.exists(), "the malicious pickle must really run code when unpickled"
    payload = pickle.dumps(Detonator(marker))
    assert not marker.exists()
    return payload


def sklearn_pickle_manifest() -> dict:
    return {
        "key": "evil",
        "name": "LogisticRegression",
        "adapter": "sklearn",
        "format": "pickle",
        "model_class": "sklearn.linear_model._logistic.LogisticRegression",
        "libraries": {},
        "input": None,
        "training": None,
        "metadata": {},
        "adapter_data": {"task": "classification"},
    }


def write_evil_bundle(store, key: str, payload: bytes, tmp_path: Path, **manifest_extra) -> dict:
    folder = tmp_path / f"evil-{key.replace('/', '_')}"
    folder.mkdir()
    (folder / "model.pkl").write_bytes(payload)
    manifest = {**sklearn_pickle_manifest(), **manifest_extra}
    return write_bundle(store, key, manifest, folder, ["model.pkl"])


def split(raw: bytes) -> tuple[dict, bytes, bytes]:
    _, manifest_length = HEADER.unpack(raw[len(MAGIC):HEAD])
    manifest = json.loads(raw[HEAD:HEAD + manifest_length])
    end = HEAD + manifest_length + sum(entry["size"] for entry in manifest["files"])
    return manifest, raw[HEAD + manifest_length:end], raw[end:]


def pack(manifest: dict, payload: bytes, mac: bytes | None = None, protocol: int = 2) -> bytes:
    """Lay out a bundle (MAC, if any, then the closing SHA-256) as a keyless attacker can.

    Both layouts are still read, so attacks are tried on both: protocol 1's SHA-256 covers
    every byte before it, protocol 2's the part before the payload and the MAC.
    """
    manifest_bytes = json.dumps(manifest, sort_keys=True, separators=(",", ":")).encode()
    head = MAGIC + HEADER.pack(protocol, len(manifest_bytes)) + manifest_bytes
    trailer = mac or b""
    covered = head + payload + trailer if protocol == 1 else head + trailer
    return head + payload + trailer + hashlib.sha256(covered).digest()


def assert_explains_both_ways_out(error: pytest.ExceptionInfo) -> None:
    message = str(error.value)
    assert "trusted=True" in message
    assert "sign_key" in message


# -- pickle needs trust --------------------------------------------------------------------------
def test_pickle_bundle_refuses_to_load_without_trust(zoo, model, data):
    X, _ = data
    zoo.save(model, "lr", format="pickle")
    with pytest.raises(alphazoo.UntrustedModelError) as error:
        zoo.load("lr")
    assert_explains_both_ways_out(error)
    assert "ALPHAZOO_SIGNING_KEY" in str(error.value)

    loaded = zoo.load("lr", trusted=True)
    assert np.array_equal(loaded.predict(X), model.predict(X))


@pytest.mark.parametrize("key", ["text-key", b"\x00bytes\xffkey"], ids=["str", "bytes"])
def test_signed_pickle_loads_with_the_signing_key(zoo, model, data, key):
    X, _ = data
    manifest = zoo.save(model, "signed", format="pickle", sign_key=key)
    assert manifest["signature"] == "hmac-sha256"

    loaded = zoo.load("signed", sign_key=key)
    assert np.array_equal(loaded.predict_proba(X), model.predict_proba(X))

    with pytest.raises(alphazoo.UntrustedModelError) as error:
        zoo.load("signed")  # signed, but the loader brings no key
    assert_explains_both_ways_out(error)


def test_signed_pickle_with_the_wrong_key_is_untrusted(zoo, model):
    zoo.save(model, "signed", format="pickle", sign_key="right")
    with pytest.raises(alphazoo.UntrustedModelError, match="does not verify"):
        zoo.load("signed", sign_key="wrong")
    with pytest.raises(alphazoo.UntrustedModelError):
        zoo.load("signed", sign_key=b"righ")


def test_signing_key_from_the_environment(zoo, model, data, monkeypatch):
    X, _ = data
    monkeypatch.setenv("ALPHAZOO_SIGNING_KEY", "env-key")
    assert zoo.save(model, "env", format="pickle")["signature"] == "hmac-sha256"
    assert np.array_equal(zoo.load("env").predict(X), model.predict(X))

    monkeypatch.setenv("ALPHAZOO_SIGNING_KEY", "another-key")
    with pytest.raises(alphazoo.UntrustedModelError):
        zoo.load("env")
    # an explicit sign_key wins over the environment
    assert np.array_equal(zoo.load("env", sign_key="env-key").predict(X), model.predict(X))

    monkeypatch.delenv("ALPHAZOO_SIGNING_KEY")
    with pytest.raises(alphazoo.UntrustedModelError):
        zoo.load("env")


def test_signing_key_helper(monkeypatch):
    assert signing_key(None) is None
    assert signing_key("abc") == b"abc"
    assert signing_key(b"\x01\x02") == b"\x01\x02"
    monkeypatch.setenv("ALPHAZOO_SIGNING_KEY", "from-env")
    assert signing_key(None) == b"from-env"
    assert signing_key("explicit") == b"explicit"
    monkeypatch.setenv("ALPHAZOO_SIGNING_KEY", "")
    assert signing_key(None) is None
    with pytest.raises(ValueError):
        signing_key(b"")


# -- nothing is unpickled before the checks ------------------------------------------------------
def test_malicious_pickle_does_not_run_without_trust(zoo, store, evil_payload, marker, tmp_path):
    write_evil_bundle(store, "evil", evil_payload, tmp_path)

    with pytest.raises(alphazoo.UntrustedModelError) as error:
        zoo.load("evil")
    assert_explains_both_ways_out(error)
    assert not marker.exists()

    with pytest.raises(alphazoo.UntrustedModelError):
        zoo.load("evil", sign_key="some-key")  # unsigned: a key proves nothing
    assert not marker.exists()

    assert zoo.inspect("evil")["format"] == "pickle"  # inspecting never unpickles
    assert not marker.exists()

    # Control: the bundle is intact and the payload live; trusting it runs the attacker's code
    # (Path.touch returns None, so the host then reports that nothing was loaded).
    with pytest.raises(alphazoo.UnsupportedModelError):
        zoo.load("evil", trusted=True)
    assert marker.exists()


def test_bundle_cannot_vouch_for_itself(zoo, store, evil_payload, marker, tmp_path):
    # Safety comes from the loader's format table, not from claims inside the manifest.
    write_evil_bundle(store, "claims", evil_payload, tmp_path, safe=True, trusted=True,
                      signature_valid=True)
    with pytest.raises(alphazoo.UntrustedModelError):
        zoo.load("claims")
    assert not marker.exists()


@pytest.mark.parametrize("protocol", [1, 2])
def test_claimed_signature_with_a_forged_mac_does_not_run(zoo, store, evil_payload, marker,
                                                          protocol):
    # The attacker writes a manifest that says "signed" and a trailer with a made-up MAC.
    manifest = {**sklearn_pickle_manifest(), "protocol": protocol, "signature": "hmac-sha256",
                "files": [{"name": "model.pkl", "size": len(evil_payload),
                           "sha256": hashlib.sha256(evil_payload).hexdigest()}]}
    store.save_bytes("forged", pack(manifest, evil_payload, mac=b"\x00" * DIGEST,
                                    protocol=protocol))
    assert read_bundle(store, "forged", None).signature_valid is False  # integrity passes

    for kwargs in ({}, {"sign_key": "right"}):
        with pytest.raises(alphazoo.UntrustedModelError):
            zoo.load("forged", **kwargs)
    assert not marker.exists()


@pytest.mark.parametrize("protocol", [1, 2])
@pytest.mark.parametrize("attack", ["keep-mac", "attacker-key", "strip-signature"])
def test_tampered_signed_bundle_never_runs_even_with_the_right_key(
    zoo, store, model, evil_payload, marker, tmp_path, attack, protocol
):
    zoo.save(model, "signed", format="pickle", sign_key="right")
    manifest, _, trailer = split(store.read_bytes("signed"))
    assert len(trailer) == 2 * DIGEST

    if attack == "keep-mac":
        # Swap the payload, recompute the per-file hash and size and the bundle's SHA-256,
        # keep the original MAC: everything but the key is right.
        manifest["files"] = [{"name": "model.pkl", "size": len(evil_payload),
                              "sha256": hashlib.sha256(evil_payload).hexdigest()}]
        store.save_bytes("signed", pack(manifest, evil_payload, mac=trailer[:DIGEST],
                                        protocol=protocol))
    elif attack == "attacker-key":  # a perfectly made bundle, signed with the attacker's key
        folder = tmp_path / "resign"
        folder.mkdir()
        (folder / "model.pkl").write_bytes(evil_payload)
        write_bundle(store, "signed", sklearn_pickle_manifest(), folder, ["model.pkl"],
                     sign_key=b"attacker")
    else:  # drop the MAC and declare the bundle unsigned
        write_evil_bundle(store, "signed", evil_payload, tmp_path)

    # the attacker's bundle passes every integrity check: only the key can tell
    opened = read_bundle(store, "signed", None, b"right")
    assert opened.signature_valid is False
    assert opened.manifest["files"][0]["sha256"] == hashlib.sha256(evil_payload).hexdigest()

    for kwargs in ({"sign_key": "right"}, {}):
        with pytest.raises(alphazoo.UntrustedModelError):
            zoo.load("signed", **kwargs)
    assert not marker.exists()


def test_malicious_payload_behind_a_safe_format_name_is_not_unpickled(
    zoo, store, evil_payload, marker, tmp_path
):
    # A manifest that calls a pickle "skops" routes it to skops, which reads a zip, not pickle.
    folder = tmp_path / "as-skops"
    folder.mkdir()
    (folder / "model.skops").write_bytes(evil_payload)
    write_bundle(store, "as-skops", {**sklearn_pickle_manifest(), "format": "skops"}, folder,
                 ["model.skops"])
    with pytest.raises((zipfile.BadZipFile, alphazoo.AlphazooError)):
        zoo.load("as-skops")
    assert not marker.exists()


# -- safe formats --------------------------------------------------------------------------------
@pytest.mark.parametrize("fmt", ["skops", "onnx"])
def test_safe_formats_load_without_trust_or_key(zoo, model, data, fmt):
    X, y = data
    zoo.train(model, X, y)  # records training rows for the ONNX parity check
    zoo.save(model, "safe", format=fmt)
    loaded = zoo.load("safe")
    assert np.array_equal(loaded.predict(X), model.predict(X))


def test_signed_safe_bundle_loads_without_key_and_refuses_a_wrong_one(zoo, model, data):
    X, _ = data
    zoo.save(model, "signed-skops", sign_key="right")
    assert np.array_equal(zoo.load("signed-skops").predict(X), model.predict(X))
    assert np.array_equal(zoo.load("signed-skops", sign_key="right").predict(X), model.predict(X))
    with pytest.raises(alphazoo.UntrustedModelError):
        zoo.load("signed-skops", sign_key="wrong")


def double(X):
    """A user function: skops cannot vouch for it, so it must not load silently."""
    return np.asarray(X) * 2.0


def test_skops_pipeline_with_a_user_function_needs_trust(zoo, data):
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import FunctionTransformer

    X, y = data
    pipe = make_pipeline(FunctionTransformer(double), LogisticRegression()).fit(X, y)
    with pytest.warns(UserWarning, match=r"'user-fn': .*test_trust.double.*trusted=True"):
        assert zoo.save(pipe, "user-fn")["format"] == "skops"  # told at save, not at load

    with pytest.raises(alphazoo.UntrustedModelError, match="double") as error:
        zoo.load("user-fn")
    assert "trusted=True" in str(error.value)

    loaded = zoo.load("user-fn", trusted=True)
    assert loaded.steps[0][1].func is double
    assert np.array_equal(loaded.predict_proba(X), pipe.predict_proba(X))


def test_skops_pipeline_with_a_user_function_loads_with_a_valid_signature(zoo, data):
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import FunctionTransformer

    X, y = data
    pipe = make_pipeline(FunctionTransformer(double), LogisticRegression()).fit(X, y)
    with pytest.warns(UserWarning, match="not trusted by default"):
        zoo.save(pipe, "user-fn-signed", sign_key="team-key")
    with pytest.raises(alphazoo.UntrustedModelError):
        zoo.load("user-fn-signed")
    loaded = zoo.load("user-fn-signed", sign_key="team-key")
    assert np.array_equal(loaded.predict(X), pipe.predict(X))


def test_skops_pipeline_holding_builtins_eval_needs_trust(zoo):
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import FunctionTransformer

    pipe = make_pipeline(FunctionTransformer(builtins.eval))
    with pytest.warns(UserWarning, match="builtins.eval"):
        zoo.save(pipe, "eval", format="skops")
    with pytest.raises(alphazoo.UntrustedModelError, match="builtins.eval"):
        zoo.load("eval")
    assert zoo.load("eval", trusted=True).steps[0][1].func is builtins.eval


def _skops_calling(function: str, argument: str, tmp_path: Path) -> Path:
    """A skops file whose loader calls ``function(argument)``: skops' constructor-from-reduce
    node, reached by editing the schema of an honest ZoneInfo dump."""
    import zipfile
    import zoneinfo

    import skops.io

    honest = tmp_path / "honest.skops"
    skops.io.dump(zoneinfo.ZoneInfo("UTC"), honest)
    with zipfile.ZipFile(honest) as archive:
        schema = json.loads(archive.read("schema.json"))
        others = {name: archive.read(name) for name in archive.namelist() if name != "schema.json"}
    assert schema["__loader__"] == "ConstructorFromReduceNode"
    module, _, name = function.rpartition(".")
    schema["__module__"], schema["__class__"] = module, name
    text = json.dumps(schema).replace('"UTC"', json.dumps(argument))
    crafted = tmp_path / "crafted.skops"
    with zipfile.ZipFile(crafted, "w") as archive:
        archive.writestr("schema.json", text)
        for other, data in others.items():
            archive.writestr(other, data)
    return crafted


def test_skops_payload_calling_a_sklearn_function_is_refused(zoo, store, marker, tmp_path):
    # scikit-learn's namespace holds functions that run code (a test helper runs a script);
    # only an exact list of its state-holding classes is trusted, never the "sklearn." prefix.
    function = "sklearn.utils._testing.assert_run_python_script_without_output"
    script = f"open({str(marker)!r}, 'w').close()"
    crafted = _skops_calling(function, script, tmp_path)
    import skops.io

    assert function in skops.io.get_untrusted_types(file=crafted)
    folder = tmp_path / "evil-skops"
    folder.mkdir()
    (folder / "model.skops").write_bytes(crafted.read_bytes())
    write_bundle(store, "evil/skops", {**sklearn_pickle_manifest(), "format": "skops"}, folder,
                 ["model.skops"])
    with pytest.raises(alphazoo.UntrustedModelError, match="assert_run_python_script"):
        zoo.load("evil/skops")
    assert not marker.exists()


def test_a_signature_does_not_vouch_for_a_copy_under_another_key(zoo, store, model, data):
    key, (X, _) = "team-key", data
    # Replaying an old signed pickle under the production key must not pass as trusted.
    zoo.save(model, "models/old", format="pickle", sign_key=key)
    store.save_bytes("models/prod", store.read_bytes("models/old"))
    with pytest.raises(alphazoo.UntrustedModelError, match="signed for key 'models/old'"):
        zoo.load("models/prod", sign_key=key)
    expected = model.predict_proba(X)
    assert np.array_equal(zoo.load("models/prod", trusted=True).predict_proba(X), expected)
    assert np.array_equal(zoo.load("models/old", sign_key=key).predict_proba(X), expected)


def test_unsigned_pickle_loaded_with_a_key_says_it_is_not_signed(zoo, model):
    zoo.save(model, "plain", format="pickle")
    with pytest.raises(alphazoo.UntrustedModelError, match="'plain' is not signed"):
        zoo.load("plain", sign_key="team-key")


def test_environment_key_does_not_block_a_safe_bundle_signed_by_another_team(
    zoo, model, data, monkeypatch
):
    X, _ = data
    zoo.save(model, "team-a/onnx", format="onnx", sign_key="team-a")
    monkeypatch.setenv("ALPHAZOO_SIGNING_KEY", "team-b")
    loaded = zoo.load("team-a/onnx")  # safe format, key only from the environment: loads
    assert np.allclose(loaded.predict_proba(X), model.predict_proba(X), atol=1e-5)
    with pytest.raises(alphazoo.UntrustedModelError, match="the sign_key argument"):
        zoo.load("team-a/onnx", sign_key="team-b")  # an explicit key must verify
