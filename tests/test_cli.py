"""The ``alphazoo`` command line as a user runs it: the console script in a subprocess."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from _child import HANG_TIMEOUT

import alphazoo

SCRIPT = shutil.which("alphazoo")


def cli(*args: str, cwd: Path | None = None, input: str = "",
        **env: str) -> subprocess.CompletedProcess[str]:
    # The installed console script when there is one (as a user runs it), else the module.
    # Standard input is `input` (empty: at its end at once), never the terminal running pytest.
    command = [SCRIPT] if SCRIPT else [sys.executable, "-m", "alphazoo.cli"]
    return subprocess.run([*command, *args], capture_output=True, text=True, cwd=cwd,
                          input=input, env={**os.environ, **env}, timeout=HANG_TIMEOUT)


def test_help_lists_every_command() -> None:
    result = cli("--help")
    assert result.returncode == 0
    listed = set(re.findall(r"^    (\w+)\s", result.stdout, flags=re.M))
    assert {"plugins", "models", "formats", "store", "inspect", "demo"} <= listed


#: How --help and the README name each adapter that ships with alphazoo (by entry point).
ADAPTER_NAMES = {"sklearn": "scikit-learn", "xgboost": "XGBoost", "lightgbm": "LightGBM",
                 "catboost": "CatBoost", "torch": "PyTorch", "keras": "Keras",
                 "hmmlearn": "hmmlearn", "sb3": "Stable-Baselines3"}


def test_help_and_readme_name_every_adapter_that_ships() -> None:
    import tomllib

    from alphazoo.cli import build_parser

    root = Path(__file__).resolve().parents[1]
    points = tomllib.loads((root / "pyproject.toml").read_text())["project"]["entry-points"]
    shipped = {name for name, module in points["alphazoo"].items()
               if module.startswith("alphazoo.adapters.")}
    assert shipped == set(ADAPTER_NAMES)  # a new adapter: name it here, in --help and README
    description = " ".join((build_parser().description or "").split())
    intro = " ".join((root / "README.md").read_text().split("## Run the demo")[0].split())
    for name in ADAPTER_NAMES.values():
        assert name in description, name
        assert name in intro, name


def test_no_command_and_bad_usage_exit_2() -> None:
    assert cli().returncode == 2
    bad = cli("store", "frobnicate")
    assert bad.returncode == 2 and "invalid choice" in bad.stderr
    assert cli("plugins", "--nope").returncode == 2


def test_version() -> None:
    result = cli("--version")
    assert result.returncode == 0 and result.stdout.strip() == f"alphazoo {alphazoo.__version__}"


def test_formats_json_marks_pickle_unsafe() -> None:
    rows = json.loads(cli("formats", "--json").stdout)
    by_name = {(r["adapter"], r["name"]): r for r in rows}
    assert by_name[("sklearn", "pickle")]["safe"] is False
    skops = by_name[("sklearn", "skops")]
    assert skops["safe"] is True and skops["default"]
    assert by_name[("sklearn", "onnx")]["load_requires"] == ["onnxruntime"]


@pytest.mark.slow
def test_store_commands(tmp_path: Path) -> None:
    store = alphazoo.ObjectStore(tmp_path, max_files=10)
    store.save("notes/a.txt", "alpha")
    store.save_bytes("blobs/b", b"\x00\x01\x02")
    listed = json.loads(cli("store", "ls", "--store", str(tmp_path), "--json").stdout)
    assert listed == [{"key": "blobs/b", "bytes": 3}, {"key": "notes/a.txt", "bytes": 5}]
    prefixed = json.loads(cli("store", "ls", "notes/", "--store", str(tmp_path), "--json").stdout)
    assert [row["key"] for row in prefixed] == ["notes/a.txt"]
    assert cli("store", "cat", "notes/a.txt", "--store", str(tmp_path)).stdout == "alpha"
    info = json.loads(cli("store", "info", "--store", str(tmp_path), "--json").stdout)
    assert (info["objects"], info["bytes"]) == (2, 8)
    removed = cli("store", "rm", "blobs/b", "--store", str(tmp_path))
    assert removed.returncode == 0 and store.keys() == ["notes/a.txt"]
    missing = cli("store", "rm", "blobs/b", "--store", str(tmp_path))
    assert missing.returncode == 1 and "no object 'blobs/b'" in missing.stderr


@pytest.mark.slow
def test_store_rm_all_asks_first(tmp_path: Path) -> None:
    store = alphazoo.ObjectStore(tmp_path)
    store.save("a", "1")
    store.save("b/c", "2")
    where = ("--store", str(tmp_path))
    # No answer on standard input (cron, CI): refused, nothing deleted.
    unattended = cli("store", "rm", "--all", *where)
    assert unattended.returncode == 1 and "nothing deleted" in unattended.stderr
    declined = cli("store", "rm", "--all", *where, input="no\n")
    assert declined.returncode == 1 and store.keys() == ["a", "b/c"]
    both = cli("store", "rm", "--all", "a", *where, input="yes\n")
    assert both.returncode == 2 and store.keys() == ["a", "b/c"]
    assert cli("store", "rm", *where).returncode == 2
    confirmed = cli("store", "rm", "--all", *where, input="yes\n")
    assert confirmed.returncode == 0 and "deleted 2 object(s)" in confirmed.stderr
    assert store.keys() == []
    store.save("again", "3")
    assert cli("store", "rm", "--all", "--yes", *where).returncode == 0
    assert store.keys() == []


@pytest.mark.slow
def test_store_get_and_put_move_bundles_in_and_out(tmp_path: Path) -> None:
    from sklearn.linear_model import LogisticRegression

    X = [[0.0, 1.0], [1.0, 0.0], [0.5, 0.9], [0.9, 0.1]]
    source = alphazoo.Zoo(alphazoo.ObjectStore(tmp_path / "a"))
    source.save(LogisticRegression().fit(X, [0, 1, 0, 1]), "models/lr")
    out = tmp_path / "lr.bundle"
    got = cli("store", "get", "models/lr", "-o", str(out), "--store", str(tmp_path / "a"))
    assert got.returncode == 0, got.stderr
    assert out.read_bytes() == source.store.read_bytes("models/lr")
    put = cli("store", "put", str(out), "live/lr", "--store", str(tmp_path / "b"))
    assert put.returncode == 0, put.stderr
    target = alphazoo.Zoo(alphazoo.ObjectStore(tmp_path / "b"))
    assert list(target.load("live/lr").predict(X)) == [0, 1, 0, 1]
    # Anything but a valid bundle is refused unless --raw, and nothing is stored.
    notes = tmp_path / "notes.txt"
    notes.write_text("not a model")
    refused = cli("store", "put", str(notes), "notes", "--store", str(tmp_path / "b"))
    assert refused.returncode == 1 and "not a valid alphazoo model bundle" in refused.stderr
    damaged = tmp_path / "damaged.bundle"
    damaged.write_bytes(out.read_bytes()[:-1] + b"x")
    assert cli("store", "put", str(damaged), "d", "--store", str(tmp_path / "b")).returncode == 1
    assert target.store.keys() == ["live/lr"]
    raw = cli("store", "put", str(notes), "notes", "--raw", "--store", str(tmp_path / "b"))
    assert raw.returncode == 0 and target.store.read("notes") == "not a model"
    missing = cli("store", "get", "nope", "-o", str(tmp_path / "x"), "--store", str(tmp_path))
    assert missing.returncode == 1 and not (tmp_path / "x").exists()
    assert not list(tmp_path.glob(".alphazoo-get-*"))


def test_export_reader_writes_a_module(tmp_path: Path) -> None:
    written = cli("export-reader", "-o", str(tmp_path / "alphazoo_reader.py"))
    assert written.returncode == 0, written.stderr
    text = (tmp_path / "alphazoo_reader.py").read_text()
    assert text.startswith("# Exported by alphazoo") and "def load(data: bytes" in text


def test_store_uses_environment_variable(tmp_path: Path) -> None:
    alphazoo.ObjectStore(tmp_path).save("k", "v")
    listed = json.loads(cli("store", "ls", "--json", ALPHAZOO_STORE=str(tmp_path)).stdout)
    assert listed == [{"key": "k", "bytes": 1}]


@pytest.mark.slow
def test_errors_exit_1_with_a_message(tmp_path: Path) -> None:
    missing = cli("store", "cat", "nope", "--store", str(tmp_path))
    # Advice for a shell user, naming the store: not Python's contains_key().
    assert missing.returncode == 1 and str(tmp_path) in missing.stderr
    assert "contains_key" not in missing.stderr and "the store is empty" in missing.stderr
    bad_key = cli("store", "cat", "../etc/passwd", "--store", str(tmp_path))
    assert bad_key.returncode == 1 and "'..'" in bad_key.stderr
    alphazoo.ObjectStore(tmp_path).save("plain", "not a bundle")
    corrupt = cli("inspect", "plain", "--store", str(tmp_path))
    assert corrupt.returncode == 1 and "not an alphazoo model bundle" in corrupt.stderr


def test_unusable_store_url_is_one_line_not_a_traceback() -> None:
    result = cli("store", "info", "--store", "nosuchprotocol://x")
    assert result.returncode == 1
    assert result.stderr.startswith("alphazoo: error: ValueError")
    assert "Traceback" not in result.stderr


@pytest.mark.slow
def test_help_texts_are_true() -> None:
    top = cli("--help").stdout
    assert "scikit-learn ships as a plugin" not in top
    assert all(library in top for library in ("scikit-learn", "XGBoost", "PyTorch", "hmmlearn"))
    for action in ("ls", "cat", "rm", "info"):
        page = cli("store", action, "--help").stdout
        # argparse prints a description paragraph between usage and the arguments.
        description = page.split("\n\n")[1]
        assert not description.startswith(("positional", "options")), (action, page)
    assert "--raw" in cli("store", "cat", "--help").stdout
    assert "SHA-256" in cli("inspect", "--help").stdout


@pytest.mark.slow
def test_a_store_that_is_not_there_is_an_error_naming_it(tmp_path: Path) -> None:
    nowhere = tmp_path / "no" / "such" / "store"
    a_file = tmp_path / "a-file"
    a_file.write_text("not a store")
    for command in (["store", "ls"], ["store", "info"], ["store", "cat", "k"],
                    ["store", "rm", "k"], ["inspect", "k"]):
        for where, says in ((nowhere, "does not exist"), (a_file, "is a file")):
            result = cli(*command, "--store", str(where))
            assert result.returncode == 1, (command, result.stdout)
            assert str(where) in result.stderr and says in result.stderr, result.stderr
            assert result.stdout == ""
    assert not nowhere.exists()  # looking does not create it
    default = cli("store", "ls", cwd=tmp_path, ALPHAZOO_STORE="")
    assert default.returncode == 1 and str(tmp_path / "storage") in default.stderr


@pytest.mark.slow
def test_missing_keys_name_the_store_near_matches_and_a_series_versions(tmp_path: Path) -> None:
    from alphazoo.training.model_versions import write_latest

    store = alphazoo.ObjectStore(tmp_path)
    for number in (1, 2, 3, 4):
        store.save(f"demo/alstm/v{number:06d}", "a version")
    write_latest(store, "demo/alstm", 4)
    store.save("demo/gbdt/v000001", "a version")
    store.save("notes/readme.txt", "text")

    series = cli("inspect", "demo/alstm", "--store", str(tmp_path))
    assert series.returncode == 1
    for fact in (str(tmp_path), "4 versions", "v000001", "v000004",
                 "demo/alstm/latest.json points at v000004",
                 "alphazoo inspect demo/alstm/v000004"):
        assert fact in series.stderr, (fact, series.stderr)
    typo = cli("store", "cat", "notes/readme.tx", "--store", str(tmp_path))
    assert typo.returncode == 1 and "Did you mean: notes/readme.txt?" in typo.stderr
    sibling = cli("inspect", "demo/nope", "--store", str(tmp_path))
    assert sibling.returncode == 1 and "demo/ holds: alstm/, gbdt/" in sibling.stderr


def test_inspect_says_what_it_verified(tmp_path: Path) -> None:
    from alphazoo.bundle import write_bundle

    folder = tmp_path.parent / f"{tmp_path.name}-payload"
    folder.mkdir()
    (folder / "model.txt").write_text("weights")
    # A real bundle as Zoo.save writes it, without training a model for it.
    manifest = {"key": "m/v1", "adapter": "text", "format": "txt"}
    write_bundle(alphazoo.ObjectStore(tmp_path), "m/v1", manifest, folder, ["model.txt"], None)
    result = cli("inspect", "m/v1", "--store", str(tmp_path))
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["adapter"] == "text"  # stdout stays the manifest
    assert result.stderr.startswith("verified m/v1:")
    assert "model.txt" in result.stderr and "SHA-256" in result.stderr
    assert "unsigned" in result.stderr


@pytest.mark.slow
def test_store_cat_refuses_binary_objects_on_a_terminal(tmp_path: Path) -> None:
    import pty

    store = alphazoo.ObjectStore(tmp_path)
    store.save_bytes("blob", b"ALPHAZOO-BUNDLE\n\x00\x02 binary payload")
    store.save("text", "plain words")

    def on_terminal(*args: str) -> tuple[int, str]:
        # A real pseudo-terminal as standard output: what a user at a prompt has.
        leader, follower = pty.openpty()
        command = [SCRIPT] if SCRIPT else [sys.executable, "-m", "alphazoo.cli"]
        process = subprocess.run([*command, *args, "--store", str(tmp_path)],
                                 stdout=follower, stderr=subprocess.PIPE, text=True,
                                 timeout=HANG_TIMEOUT)
        os.close(follower)
        chunks = []
        while True:
            try:
                chunk = os.read(leader, 4096)
            except OSError:  # the terminal is closed and drained
                break
            if not chunk:
                break
            chunks.append(chunk)
        os.close(leader)
        return process.returncode, b"".join(chunks).decode(errors="replace") + process.stderr

    code, shown = on_terminal("store", "cat", "blob")
    assert code == 1 and "alphazoo model bundle" in shown and "--raw" in shown
    assert "binary payload" not in shown
    code, shown = on_terminal("store", "cat", "blob", "--raw")
    assert code == 0 and "binary payload" in shown
    code, shown = on_terminal("store", "cat", "text")
    assert code == 0 and "plain words" in shown
    # Off a terminal (a pipe, a redirect) the bytes go through untouched.
    piped = subprocess.run([*([SCRIPT] if SCRIPT else [sys.executable, "-m", "alphazoo.cli"]),
                            "store", "cat", "blob", "--store", str(tmp_path)],
                           capture_output=True, timeout=HANG_TIMEOUT)
    assert piped.returncode == 0 and piped.stdout == store.read_bytes("blob")


@pytest.mark.slow
def test_tables_fit_80_columns_and_a_store_path_stays_whole(tmp_path: Path) -> None:
    for command in ("plugins", "models", "formats"):
        result = cli(command, COLUMNS="80")
        assert result.returncode == 0, result.stderr
        lines = result.stdout.splitlines()
        assert max(len(line) for line in lines) <= 80, (command, result.stdout)
        assert "…" not in result.stdout
    store = tmp_path / ("a-rather-long-folder-name-" * 3) / "store"
    alphazoo.ObjectStore(store).save("k", "v")
    listed = cli("store", "ls", "--store", str(store), COLUMNS="40")
    # The path is one line a user can copy, even where it is wider than the terminal.
    assert f"Store {store}" in listed.stdout.splitlines()


@pytest.mark.slow
def test_store_fsck_lists_by_default_and_removes_with_a_flag(tmp_path: Path) -> None:
    help_text = cli("store", "fsck", "--help").stdout
    assert "--remove" in help_text and "--older-than" in help_text and "dry run" in help_text
    root = tmp_path / "store"
    alphazoo.ObjectStore(root).save("models/m", "kept")
    # A temporary file named by a writer that has exited: what a SIGKILL mid-save leaves.
    token = subprocess.run([sys.executable, "-c", "from alphazoo.leftovers import new_token; "
                            "print(new_token())"], capture_output=True, text=True,
                           check=True, timeout=HANG_TIMEOUT).stdout.strip()
    leftover = root / "models" / f".m.{token}.tmp"
    leftover.write_bytes(b"half")
    env = {"TMPDIR": str(tmp_path)}  # no other process's staging folders in the report
    dry = json.loads(cli("store", "fsck", "--store", str(root), "--json", **env).stdout)
    assert dry["removed"] == 0 and leftover.exists()
    assert [(row["where"], row["state"], row["gone"]) for row in dry["leftovers"]] == [
        (f"models/{leftover.name}", "dead", True)]
    table = cli("store", "fsck", "--store", str(root), **env)
    assert table.returncode == 0 and "removable (--remove)" in table.stdout
    done = cli("store", "fsck", "--remove", "--store", str(root), "--json", **env)
    assert json.loads(done.stdout)["removed"] == 1 and not leftover.exists()
    assert alphazoo.ObjectStore(root).read("models/m") == "kept"


def test_registry_commands_move_aliases_and_print_json(tmp_path: Path) -> None:
    from alphazoo.bundle import write_bundle
    from alphazoo.training.model_versions import write_latest

    folder = tmp_path.parent / f"{tmp_path.name}-payload"
    folder.mkdir()
    (folder / "model.txt").write_text("weights")
    store = alphazoo.ObjectStore(tmp_path)
    for number in (1, 2, 3, 4):
        key = f"spy/gbdt/v{number:06d}"
        write_bundle(store, key, {"key": key, "adapter": "text", "format": "txt",
                                  "created": f"2026-01-0{number}"}, folder, ["model.txt"], None)
    write_latest(store, "spy/gbdt", 4)
    where = ("--store", str(tmp_path))

    promoted = cli("registry", "promote", "spy/gbdt", "v2", "--alias", "production",
                   "--note", "IC up", "--actor", "ci", "--json", *where)
    assert promoted.returncode == 0, promoted.stderr
    entry = json.loads(promoted.stdout)
    assert (entry["from"], entry["to"], entry["who"], entry["note"]) == (None, 2, "ci", "IC up")
    again = cli("registry", "promote", "spy/gbdt", "3", "--alias", "production",
                "--gate", "integrity", *where)
    assert again.returncode == 0 and "spy/gbdt@production: v2 -> v3" in again.stdout
    gates = cli("registry", "gates", "spy/gbdt", "--alias", "production", "--set", "integrity",
                "--json", *where)
    assert json.loads(gates.stdout)["gates"] == ["integrity"], gates.stderr
    assert "gates integrity" in cli("registry", "gates", "spy/gbdt", "--alias", "production",
                                    *where).stdout
    stale = cli("registry", "promote", "spy/gbdt", "4", "--alias", "production",
                "--expect", "2", *where)
    assert stale.returncode == 1 and "points at v3, not at v2 as expected" in stale.stderr
    assert "moved by another writer" not in stale.stderr  # nobody moved it meanwhile

    aliases = json.loads(cli("registry", "ls", "spy/gbdt", "--json", *where).stdout)
    assert {row["alias"]: row["version"] for row in aliases} == {"latest": 4, "production": 3}
    versions = json.loads(cli("registry", "versions", "spy/gbdt", "--json", *where).stdout)
    assert [(row["version"], row["aliases"]) for row in versions] == \
        [(1, []), (2, []), (3, ["production"]), (4, ["latest"])]
    assert versions[0]["created"] == "2026-01-01"
    table = cli("registry", "versions", "spy/gbdt", *where, COLUMNS="200")
    assert table.returncode == 0 and "production" in table.stdout

    back = json.loads(cli("registry", "rollback", "spy/gbdt", "--alias", "production",
                          "--note", "bad fills", "--json", *where).stdout)
    assert (back["action"], back["from"], back["to"]) == ("rollback", 3, 2)
    history = json.loads(cli("registry", "history", "spy/gbdt", "--alias", "production",
                             "--json", *where).stdout)
    assert [(e["from"], e["to"]) for e in history] == [(None, 2), (2, 3), (3, 2)]

    # name@alias and name@vN wherever a key is taken.
    inspected = cli("inspect", "spy/gbdt@production", *where)
    assert inspected.returncode == 0, inspected.stderr
    assert json.loads(inspected.stdout)["key"] == "spy/gbdt/v000002"
    assert cli("store", "get", "spy/gbdt@v1", "-o", str(folder / "v1.bundle"),
               *where).returncode == 0
    assert (folder / "v1.bundle").read_bytes() == store.read_bytes("spy/gbdt/v000001")
    nowhere = cli("inspect", "spy/gbdt@staging", *where)
    assert nowhere.returncode == 1 and "promote one first" in nowhere.stderr

    # v3, production's target before the rollback, is kept for a later roll forward: pinned
    assert cli("registry", "pin", "spy/gbdt", "v3", *where).returncode == 0
    dry = json.loads(cli("registry", "prune", "spy/gbdt", "--keep", "1", "--json",
                         *where).stdout)
    assert dry["dry_run"] and dry["deleted"] == [1]  # v2: production; v3: pinned; v4: latest
    assert store.contains_key("spy/gbdt/v000001")
    done = cli("registry", "prune", "spy/gbdt", "--keep", "1", "--delete", *where)
    assert done.returncode == 0 and "deleted v1" in done.stdout
    assert not store.contains_key("spy/gbdt/v000001")


def test_registry_usage_mistakes_are_one_line_errors_that_say_what_to_do(
        tmp_path: Path) -> None:
    store = alphazoo.ObjectStore(tmp_path / "store")
    for version in (1, 2, 3):
        store.save_bytes(f"spy/gbdt/v{version:06d}", b"not a bundle")
    where = ("--store", str(tmp_path / "store"))
    zero = cli("inspect", "spy/gbdt@v0", *where)
    assert zero.returncode == 1 and "from 1 up" in zero.stderr
    assert "ValueError" not in zero.stderr and "Traceback" not in zero.stderr
    negative = cli("registry", "prune", "spy/gbdt", "--keep", "-1", *where)
    assert negative.returncode == 2 and "a number from 0 up" in negative.stderr
    promoted = cli("registry", "promote", "spy/gbdt", "v1", "--alias", "production", "--pin",
                   *where)
    assert promoted.returncode == 0, promoted.stderr
    cli("registry", "promote", "spy/gbdt", "2", "--alias", "production", *where)
    pinned = cli("registry", "pin", "spy/gbdt", "3", *where)
    assert pinned.returncode == 0 and "v3 pinned" in pinned.stdout
    report = json.loads(cli("registry", "prune", "spy/gbdt", "--keep", "0", "--json",
                            *where).stdout)
    assert report["deleted"] == [] and report["protected"] == {
        "1": ["pinned"], "2": ["production points at it"], "3": ["pinned"]}
    assert "unpinned" in cli("registry", "pin", "spy/gbdt", "3", "--remove", *where).stdout
    report = json.loads(cli("registry", "prune", "spy/gbdt", "--keep", "0", "--json",
                            *where).stdout)
    assert report["deleted"] == [3]
