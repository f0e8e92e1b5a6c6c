"""Benchmark: what ``import alphazoo`` and plugin discovery cost a fresh interpreter.

    python benchmarks/bench_startup.py            # median of 5 fresh processes per command
    python benchmarks/bench_startup.py --quick    # median of 3
    python benchmarks/bench_startup.py --json     # table on stderr, JSON on stdout

Each command runs in a new subprocess (wall time, median of N after one warm-up run) and is
reported against bare ``python -c pass`` in the same run:

- ``python -c "import alphazoo"``
- ``python -c "import alphazoo; alphazoo.Zoo().plugins()"`` (discovers and loads every plugin)
- the ``alphazoo plugins`` console script, when it is installed and runs

It also checks, in a fresh process, that ``import alphazoo; alphazoo.Zoo().plugins()`` leaves
no ML framework in ``sys.modules`` (exit status 1 when one is there).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from _common import git_revision, write_json  # benchmarks/ is sys.path[0] when run as a script

FRAMEWORKS = ("torch", "tensorflow", "keras", "sklearn", "xgboost", "hmmlearn", "onnxruntime")
# Not frameworks, but heavy enough to be worth knowing about if discovery pulls them in.
HEAVY = ("scipy", "pandas", "skops", "onnx", "skl2onnx", "onnxmltools", "jax", "dask", "s3fs")

PROBE = """
import json, sys
import alphazoo
rows = alphazoo.Zoo().plugins()
roots = sorted({m.split(".")[0] for m in sys.modules})
print(json.dumps({"roots": roots, "plugins": [[r.name, r.status] for r in rows],
                  "modules": len(sys.modules)}))
"""


def run(cmd: list[str], cwd: str) -> tuple[float, subprocess.CompletedProcess[str]]:
    start = time.perf_counter()
    proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True)
    return time.perf_counter() - start, proc


def measure(cmd: list[str], repeats: int, cwd: str) -> dict[str, Any]:
    _, proc = run(cmd, cwd)  # warm-up: page cache, .pyc files
    if proc.returncode != 0:
        raise RuntimeError(f"{cmd} exited {proc.returncode}: {proc.stderr.strip()[-500:]}")
    times = [run(cmd, cwd)[0] for _ in range(repeats)]
    return {"median_ms": statistics.median(times) * 1e3, "min_ms": min(times) * 1e3,
            "runs_ms": [round(t * 1e3, 2) for t in times]}


def console_script() -> Path | None:
    """The ``alphazoo`` script next to this interpreter (no pyenv/asdf shim in between)."""
    name = "alphazoo.exe" if os.name == "nt" else "alphazoo"
    candidate = Path(sys.executable).parent / name
    if candidate.is_file():
        return candidate
    found = shutil.which("alphazoo")
    return Path(found) if found else None


def import_profile(python: str, cwd: str, top: int = 6) -> list[tuple[str, float]]:
    """What ``import alphazoo`` spends its time on: its direct imports (-X importtime, one run).

    importtime prints a module after its own imports, two spaces of indent per nesting level,
    so the lines between the previous top-level entry and ``alphazoo`` are its import tree.
    """
    proc = subprocess.run([python, "-X", "importtime", "-c", "import alphazoo"], cwd=cwd,
                          capture_output=True, text=True)
    group: list[tuple[int, str, float]] = []
    for line in proc.stderr.splitlines():
        parts = line.split("|")
        if (not line.startswith("import time:") or len(parts) != 3
                or not parts[1].strip().isdigit()):
            continue
        raw = parts[2][1:]
        depth = (len(raw) - len(raw.lstrip(" "))) // 2
        name, cumulative_ms = raw.strip(), int(parts[1]) / 1e3
        if depth == 0:
            if name == "alphazoo":
                rows = [(n, ms) for d, n, ms in group if d == 1]
                slowest = sorted(rows, key=lambda r: -r[1])[:top]
                return [("alphazoo (total)", cumulative_ms)] + slowest
            group = []
        else:
            group.append((depth, name, cumulative_ms))
    return []


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="median of 3 instead of 5")
    parser.add_argument("--repeats", type=int, help="fresh processes per command")
    parser.add_argument("--json", nargs="?", const="-", metavar="PATH",
                        help="write JSON to PATH, or to stdout (table to stderr) without PATH")
    args = parser.parse_args(argv)
    out = sys.stderr if args.json == "-" else sys.stdout
    repeats = args.repeats or (3 if args.quick else 5)
    python = sys.executable

    result: dict[str, Any] = {
        "timestamp": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "python": platform.python_version(), "executable": python, "cpus": os.cpu_count(),
        "repeats": repeats, "git": git_revision(),
        "disabled_plugins_env": os.environ.get("ALPHAZOO_DISABLE_PLUGINS"),
        "commands": {},
    }
    # A neutral working folder: nothing on sys.path[0] shadows the installed package, and a
    # default ./storage (never touched by plugins(), but still) cannot land in the repository.
    with tempfile.TemporaryDirectory(prefix="alphazoo-startup-") as cwd:
        commands: dict[str, list[str]] = {
            "python -c pass": [python, "-c", "pass"],
            "import alphazoo": [python, "-c", "import alphazoo"],
            "import alphazoo; Zoo().plugins()": [
                python, "-c", "import alphazoo; alphazoo.Zoo().plugins()"],
        }
        script = console_script()
        cli_note = ""
        if script is None:
            cli_note = "no `alphazoo` console script is installed"
        else:
            _, proc = run([str(script), "plugins"], cwd)
            if proc.returncode == 0:
                commands["alphazoo plugins (CLI)"] = [str(script), "plugins"]
            else:
                last = (proc.stderr.strip().splitlines() or ["(no output)"])[-1]
                cli_note = (f"the `alphazoo` console script ({script}) exists but "
                            f"`alphazoo plugins` exits {proc.returncode}: {last}")
        if cli_note:
            cli_note += ("; measured `python -c \"import alphazoo; alphazoo.Zoo().plugins()\"` "
                         "in its place")
        result["cli"] = {"script": str(script) if script else None,
                         "measured": "alphazoo plugins (CLI)" in commands, "note": cli_note}

        for label, cmd in commands.items():
            print(f"  measuring {label}...", file=sys.stderr, flush=True)
            result["commands"][label] = measure(cmd, repeats, cwd)

        probe = subprocess.run([python, "-c", PROBE], cwd=cwd, capture_output=True, text=True)
        if probe.returncode != 0:
            print(probe.stderr, file=sys.stderr)
            return 2
        state = json.loads(probe.stdout.strip().splitlines()[-1])
        result["import_profile"] = import_profile(python, cwd)

    roots = set(state["roots"])
    result["frameworks_loaded"] = [m for m in FRAMEWORKS if m in roots]
    result["heavy_loaded"] = [m for m in HEAVY if m in roots]
    result["plugins"] = state["plugins"]
    result["modules_after_plugins"] = state["modules"]

    base = result["commands"]["python -c pass"]["median_ms"]
    rows = []
    for label, figures in result["commands"].items():
        m = figures["median_ms"]
        figures["ratio_to_bare"] = m / base
        figures["added_ms"] = m - base
        rows.append([label, f"{m:.1f}", f"{figures['min_ms']:.1f}",
                     f"{m / base:.2f}x", f"{m - base:+.1f}"])

    print(f"alphazoo startup, {result['timestamp']}, {result['cpus']} CPUs, Python "
          f"{result['python']}, git {result['git']}; wall time of a fresh process, "
          f"median of {repeats} "
          "(one warm-up run first)", file=out)
    header = ["command", "median ms", "min ms", "vs python -c pass", "added ms"]
    widths = [max(len(str(c)) for c in col) for col in zip(header, *rows)]
    print("  ".join(h.ljust(w) if i == 0 else h.rjust(w)
                    for i, (h, w) in enumerate(zip(header, widths))), file=out)
    print("-" * (sum(widths) + 2 * (len(widths) - 1)), file=out)
    for row in rows:
        print("  ".join(c.ljust(w) if i == 0 else c.rjust(w)
                        for i, (c, w) in enumerate(zip(row, widths))), file=out)
    if cli_note:
        print(f"\nCLI: {cli_note}", file=out)
    print("\n`import alphazoo` and its slowest direct imports (-X importtime, cumulative ms, "
          "one run): "
          + ", ".join(f"{name} {ms:.1f}" for name, ms in result["import_profile"]), file=out)
    plugins = ", ".join(f"{name} ({status})" for name, status in result["plugins"])
    print(f"plugins discovered: {plugins}; {result['modules_after_plugins']} modules loaded",
          file=out)
    frameworks = result["frameworks_loaded"]
    verdict = "PASS" if not frameworks else "FAIL"
    print(f"ML frameworks in sys.modules after `import alphazoo; alphazoo.Zoo().plugins()`: "
          f"{', '.join(frameworks) or 'none'} (checked: {', '.join(FRAMEWORKS)}) -> {verdict}",
          file=out)
    print(f"other heavy packages loaded: {', '.join(result['heavy_loaded']) or 'none'} "
          f"(checked: {', '.join(HEAVY)})", file=out)

    if args.json:
        write_json(result, args.json, out)
    return 0 if not frameworks else 1


if __name__ == "__main__":
    sys.exit(main())
