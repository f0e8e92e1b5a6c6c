"""``alphazoo compat check --target NAME``: will bundles saved here load on that target?

Two tables: the libraries alphazoo's formats read, here and there; and, for every format of
every adapter installed here, the verdict of :func:`alphazoo.compat.targets.verdict` for a
bundle this environment would write (its libraries at the versions installed here). An ONNX
bundle's opset is only known once it is written: the table says up to which opset it loads,
and ``alphazoo inspect KEY --target NAME`` checks a written one.
"""

from __future__ import annotations

import json
import sys
from typing import Any

from .installed import installed_version
from .targets import Target, target_for, verdict

__all__ = ["collect_target_report", "run_target_check"]

EXIT_OK, EXIT_FAILURE, EXIT_USAGE = 0, 1, 2


def collect_target_report(target: str | Target) -> dict[str, Any]:
    """Libraries (here vs there) and per-format verdicts, as plain data."""
    from alphazoo.host import Zoo

    target = target_for(target)
    specs = Zoo(store="memory://alphazoo-target-report").formats()
    libraries = sorted({name for spec in specs for name in spec.load_requires} | {"numpy"})
    library_rows = []
    for name in libraries:
        here, there = installed_version(name), target.version_of(name)
        status = ("absent there" if there is None else "not installed here" if here is None
                  else "same" if here == there else "differs")
        library_rows.append({"library": name, "here": here, "there": there, "status": status})
    format_rows: list[dict[str, Any]] = []
    adapters: dict[str, Any] = {}
    for spec in specs:
        library = _adapter_library(spec.adapter, specs)
        if library is None or installed_version(library) is None:
            continue  # the adapter's library is not installed: nothing is saved with it here
        recorded = {name: installed_version(name)
                    for name in {*spec.load_requires, library, "numpy"}}
        manifest = {"key": f"{spec.adapter}:{spec.name}", "adapter": spec.adapter,
                    "format": spec.name, "model_class": "",
                    "libraries": {k: v for k, v in recorded.items() if v}, "adapter_data": {}}
        found = verdict(manifest, target, load_requires=spec.load_requires, safe=spec.safe)
        notes = list(found.reasons or found.warnings)
        if found.loads and spec.name == "onnx":
            notes.append(f"when its opset is at most {target.max_opset}")
        format_rows.append({"adapter": spec.adapter, "format": spec.name,
                            "default": spec.default, "loads": found.loads, "why": notes})
        adapters[spec.adapter] = adapters.get(spec.adapter, False) or found.loads
    return {"target": target.name, "as_of": target.as_of, "source": target.source,
            "libraries": library_rows, "formats": format_rows,
            "adapters_without_a_format": sorted(a for a, ok in adapters.items() if not ok)}


def run_target_check(name: str, *, as_json: bool = False) -> int:
    """Print the report; 1 when an installed adapter has no format that loads there."""
    try:
        report = collect_target_report(name)
    except ValueError as exc:
        print(f"alphazoo compat check: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    failed = report["adapters_without_a_format"]
    if as_json:
        print(json.dumps(report, indent=2))
        return EXIT_FAILURE if failed else EXIT_OK
    from rich.console import Console
    from rich.table import Table

    console = Console(width=None if sys.stdout.isatty() else 140)
    libraries = Table(title=f"Libraries: here and on {report['target']} (as of "
                      f"{report['as_of']}, {report['source']})", title_justify="left")
    for column in ("library", "here", report["target"], "status"):
        libraries.add_column(column)
    for row in report["libraries"]:
        libraries.add_row(row["library"], row["here"] or "-", row["there"] or "-", row["status"])
    console.print(libraries)
    formats = Table(title=f"Bundles saved here, loaded on {report['target']}",
                    title_justify="left")
    for column in ("adapter", "format", "default", "loads there", "why / when"):
        formats.add_column(column)
    for row in report["formats"]:
        formats.add_row(row["adapter"], row["format"], "yes" if row["default"] else "",
                        "[green]yes[/]" if row["loads"] else "[red]no[/]",
                        "; ".join(row["why"]))
    console.print(formats)
    if failed:
        console.print(f"FAILED: no format of {', '.join(failed)} loads on {report['target']}")
    else:
        console.print(f"every installed adapter has a format that loads on {report['target']} "
                      "(through `alphazoo export-reader`)")
    return EXIT_FAILURE if failed else EXIT_OK


def _adapter_library(adapter: str, specs: list[Any]) -> str | None:
    # The library an adapter saves from: the first requirement of its default format.
    for spec in specs:
        if spec.adapter == adapter and spec.default and spec.load_requires:
            return spec.load_requires[0]
    return None
