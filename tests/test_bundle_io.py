"""The save and load path's files: payloads verified in memory, and the scratch folders.

A load holds payloads of up to ``KEEP_IN_MEMORY`` bytes in memory once verified and hands a
reader that takes bytes (pickle) exactly those bytes, so nothing can change between the check
and the use; a save's adapter writes into a reused private scratch folder, emptied after every
save, failed or not.
"""

from __future__ import annotations

import os
import pickle
import shutil
from pathlib import Path

import numpy as np
import pytest
from _child import run_python

import alphazoo
from alphazoo.bundle import read_bundle, write_bundle
from alphazoo.contracts import LoadRequest, PayloadFiles
from alphazoo.errors import BundleIntegrityError, BundleLimitError, UnsupportedFormatError
from alphazoo.hookspecs import hookimpl
from alphazoo.limits import LoadLimits
from alphazoo.scratch import ScratchFolders, scratch_folders


@pytest.fixture(scope="module")
def model():
    from sklearn.linear_model import LogisticRegression

    rng = np.random.default_rng(3)
    X = rng.normal(size=(60, 3))
    return LogisticRegression().fit(X, (X[:, 0] > 0).astype(int)), X


def two_files(store: alphazoo.ObjectStore, tmp_path: Path) -> dict[str, bytes]:
    source = tmp_path / "source"
    source.mkdir()
    contents = {"small.bin": b"s" * 100, "large.bin": os.urandom(5000)}
    for name, data in contents.items():
        (source / name).write_bytes(data)
    write_bundle(store, "two", {"adapter": "test", "format": "raw"}, source, list(contents))
    return contents


# -- payloads verified in memory ---------------------------------------------------------------
def test_kept_payloads_are_returned_verified_and_never_written(store, tmp_path):
    contents = two_files(store, tmp_path)
    out = tmp_path / "out"
    out.mkdir()
    opened = read_bundle(store, "two", out, keep=1000)
    assert opened.data == {"small.bin": contents["small.bin"]}
    assert {name: path.read_bytes() for name, path in opened.files.items()} == {
        "large.bin": contents["large.bin"]}
    assert sorted(os.listdir(out)) == ["large.bin"]  # only what did not fit was extracted
    everything = read_bundle(store, "two", None, keep=10_000)
    assert everything.data == contents and everything.files == {}


def test_a_changed_byte_in_a_kept_payload_is_refused(store, tmp_path):
    two_files(store, tmp_path)
    raw = bytearray(store.read_bytes("two"))
    raw[-64 - 3000] ^= 0x10  # inside large.bin, the last payload file
    store.save_bytes("two", bytes(raw))
    with pytest.raises(BundleIntegrityError, match="large.bin"):
        read_bundle(store, "two", None, keep=10_000)


def test_keeping_in_memory_is_bounded_by_the_limits_before_reading(store, tmp_path):
    two_files(store, tmp_path)
    with pytest.raises(BundleLimitError):
        read_bundle(store, "two", None, limits=LoadLimits(max_bytes=4000), keep=10_000)


class Tamperer:
    """Replaces the pickle payload's file with another valid pickle once the host has
    verified the bundle, before the adapter reads: what another process writing the
    extracted file could do."""

    @hookimpl(tryfirst=True)
    def alphazoo_load(self, request: LoadRequest) -> None:
        path = request.files["model.pkl"]
        path.write_bytes(pickle.dumps("tampered"))


def test_a_payload_file_changed_after_the_check_cannot_reach_the_pickle_reader(zoo, model):
    fitted, X = model
    zoo.save(fitted, "m", format="pickle")
    zoo.pm.register(Tamperer(), name="tamperer")
    loaded = zoo.load("m", trusted=True)
    assert not isinstance(loaded, str)
    np.testing.assert_array_equal(loaded.predict_proba(X), fitted.predict_proba(X))


def test_payload_files_write_the_verified_bytes_on_demand(tmp_path):
    files = PayloadFiles(tmp_path, {}, {"a.bin": b"abc"})
    request = LoadRequest({}, files)
    assert request.payload_bytes("a.bin") == b"abc" and os.listdir(tmp_path) == []
    assert files["a.bin"].read_bytes() == b"abc"
    assert files.get("missing") is None and list(files) == ["a.bin"] and len(files) == 1
    assert LoadRequest({}, {"a.bin": tmp_path / "a.bin"}).payload_bytes("a.bin") is None


def test_payload_files_never_write_through_a_planted_link(tmp_path):
    target = tmp_path / "elsewhere"
    target.write_bytes(b"keep me")
    folder = tmp_path / "load"
    folder.mkdir()
    (folder / "a.bin").symlink_to(target)
    with pytest.raises(FileExistsError):
        PayloadFiles(folder, {}, {"a.bin": b"abc"})["a.bin"]
    assert target.read_bytes() == b"keep me"


# -- scratch folders ---------------------------------------------------------------------------
def scratch_entries() -> list[str]:
    parent = scratch_folders().parent
    assert parent is not None
    return sorted(str(path.relative_to(parent)) for path in parent.rglob("*"))


def test_saves_and_loads_reuse_one_emptied_scratch_folder(zoo, model):
    fitted, _ = model
    for number in range(3):
        zoo.save(fitted, f"m{number}", format="pickle")
        zoo.load(f"m{number}", trusted=True)
        zoo.save(fitted, f"s{number}", format="skops")
        zoo.load(f"s{number}")  # skops reads a path: the file is written, then removed
    assert scratch_entries() == ["0"]  # one empty subfolder, used by every call in turn
    assert oct(scratch_folders().parent.stat().st_mode & 0o777) == "0o700"


class Unpicklable:
    """A model attribute pickle refuses half way through the payload file."""

    def __reduce__(self):
        raise TypeError("cannot pickle this")


def test_a_failed_save_leaves_nothing_in_the_scratch_folder(zoo, model, store):
    from sklearn.linear_model import LogisticRegression

    fitted, X = model
    broken = LogisticRegression().fit(X, (X[:, 0] > 0).astype(int))
    broken.extra = [np.zeros(1000), Unpicklable()]
    with pytest.raises(TypeError, match="cannot pickle"):
        zoo.save(broken, "broken", format="pickle")
    with pytest.raises(UnsupportedFormatError):
        zoo.save(fitted, "wrong", format="pickle", target="quantconnect")
    assert all(not (scratch_folders().parent / name).is_file() for name in scratch_entries())
    assert scratch_entries() in (["0"], ["0", "1"])
    assert store.keys() == []


def test_a_folder_that_cannot_be_emptied_is_dropped_not_reused(tmp_path):
    folders = ScratchFolders()
    with folders.take() as first:
        (first / "sub").mkdir()
        (first / "sub" / "file").write_bytes(b"x")
    with folders.take() as again:
        assert again == first and list(again.iterdir()) == []
        again.rmdir()
        again.symlink_to(tmp_path)  # replaced by a link: never emptied through it
        (tmp_path / "precious").write_bytes(b"x")
    with folders.take() as fresh:
        assert fresh != first
    assert (tmp_path / "precious").exists() and not first.exists()


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_a_forked_child_makes_its_own_scratch_folder_and_leaves_the_parents(zoo, model):
    fitted, _ = model
    zoo.save(fitted, "before", format="pickle")
    mine = scratch_folders().parent
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: a new pool; dropping the inherited one must not remove ours
        try:
            theirs = scratch_folders().parent
            with scratch_folders().take() as folder:
                os.write(write, str(folder).encode())
            ok = theirs is None and mine.is_dir() and not str(folder).startswith(str(mine))
        finally:
            os._exit(0 if ok else 1)
    os.close(write)
    child_folder = os.read(read, 4096).decode()
    os.close(read)
    assert os.waitpid(pid, 0)[1] == 0
    assert mine.is_dir() and child_folder and not child_folder.startswith(str(mine))
    shutil.rmtree(Path(child_folder).parent)  # the child left by os._exit, skipping cleanup
    zoo.save(fitted, "after", format="pickle")
    assert zoo.load("after", trusted=True) is not None


def test_the_scratch_folder_goes_when_the_process_exits(tmp_path):
    code = (
        "import sys\n"
        "import numpy as np\n"
        "from sklearn.linear_model import LogisticRegression\n"
        "import alphazoo\n"
        "from alphazoo.scratch import scratch_folders\n"
        "X = np.arange(20.0).reshape(10, 2)\n"
        "model = LogisticRegression().fit(X, [0, 1] * 5)\n"
        "alphazoo.Zoo(store=sys.argv[1]).save(model, 'm', format='pickle')\n"
        "print(scratch_folders().parent)\n"
    )
    result = run_python(code, str(tmp_path / "store"), cwd=tmp_path)
    parent = Path(result.stdout.strip())
    assert parent.name.startswith("alphazoo-staged-") and not parent.exists()


def test_the_first_save_of_a_process_removes_dead_processes_scratch_folders(tmp_path):
    temp = tmp_path / "temp"
    temp.mkdir()
    dead = run_python("from alphazoo.leftovers import new_token; print(new_token())",
                      cwd=tmp_path).stdout.strip()  # that process has exited
    planted = temp / f"alphazoo-staged-{dead}-scratch-abcd1234"
    (planted / "0").mkdir(parents=True)
    (planted / "0" / "model.pkl").write_bytes(b"left by a killed save")
    code = (
        "import sys\n"
        "import numpy as np\n"
        "from sklearn.linear_model import LogisticRegression\n"
        "import alphazoo\n"
        "X = np.arange(20.0).reshape(10, 2)\n"
        "model = LogisticRegression().fit(X, [0, 1] * 5)\n"
        "alphazoo.Zoo(store=sys.argv[1]).save(model, 'm', format='pickle')\n"
    )
    run_python(code, str(tmp_path / "store"), cwd=tmp_path, env={"TMPDIR": str(temp)})
    assert not planted.exists()
    assert os.listdir(temp) == []  # and the child's own went when it exited


def test_a_skops_payload_in_memory_is_read_from_its_bytes(zoo, model, monkeypatch):
    # skops reads the verified bytes (skops.io.loads): no file is written for it, and the
    # bounds (zip members, .npy headers) are checked on those same bytes.
    fitted, X = model
    zoo.save(fitted, "s", format="skops")
    asked: list[str] = []
    real = PayloadFiles.__getitem__

    def path_of(self: PayloadFiles, name: str) -> Path:
        asked.append(name)
        return real(self, name)

    monkeypatch.setattr(PayloadFiles, "__getitem__", path_of)
    loaded = zoo.load("s")
    np.testing.assert_array_equal(loaded.predict_proba(X), fitted.predict_proba(X))
    assert asked == []
