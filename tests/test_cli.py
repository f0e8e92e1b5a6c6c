"""The ``alphazoo`` command line as a user runs it: the console script in a subprocess."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path


import alphazoo

from _child import HANG_TIMEOUT

SCRIPT = shutil.which("alphazoo")


def cli(*args: str, cwd: Path | None = None, **env: str) -> subprocess.CompletedProcess[str]:
    # The installed console script when there is one (as a user runs it), else the module.
    command = [SCRIPT] if SCRIPT else [sys.executable, "-m", "alphazoo.cli"]
    return subprocess.run([*command, *args], capture_output=True, text=True, cwd=cwd,
                          env={**os.environ, **env}, timeout=HANG_TIMEOUT)


def test_help_lists_every_command() -> None:
    result = cli("--help")
    assert result.returncode == 0
    listed = set(re.findall(r"^    (\w+)\s", result.stdout, flags=re.M))
    assert {"plugins", "models", "formats", "store", "inspect", "demo"} <= listed


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


def test_store_uses_environment_variable(tmp_path: Path) -> None:
    alphazoo.ObjectStore(tmp_path).save("k", "v")
    listed = json.loads(cli("store", "ls", "--json", ALPHAZOO_STORE=str(tmp_path)).stdout)
    assert listed == [{"key": "k", "bytes": 1}]


def test_errors_exit_1_with_a_message(tmp_path: Path) -> None:
    missing = cli("store", "cat", "nope", "--store", str(tmp_path))
    assert missing.returncode == 1 and "contains_key" in missing.stderr
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
