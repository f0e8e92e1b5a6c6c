"""``alphazoo compat check`` and ``alphazoo compat lock``: thin printers over the collectors.

Exit codes of ``check``: 0 when every installed library is in range (and matches the lock,
when one is given), 1 when any is out of range, differs from the lock, or is required and
missing, 2 for usage errors (an unknown library name, an unreadable lock file).
"""

from __future__ import annotations

import argparse
import io
import json
import sys
from pathlib import Path
from typing import Any

from .environment import (
    FAILING,
    LOCK_DIFFERS,
    OK,
    CheckReport,
    CheckRow,
    LockFileError,
    check_environment,
    closure_lock_text,
    lock_text,
    read_lock,
)

__all__ = ["add_parser", "run", "format_report"]

EXIT_OK, EXIT_FAILURE, EXIT_USAGE = 0, 1, 2


def add_parser(commands: Any) -> None:
    """Add the ``compat`` command to the ``alphazoo`` parser's subcommands."""
    compat = commands.add_parser(
        "compat", help="Check installed ML library versions against the supported table.",
        description="Check installed ML library versions against alphazoo's supported-version "
        "table, or lock the versions in use. Use `alphazoo compat check` as a CI step.")
    actions = compat.add_subparsers(dest="compat_command", metavar="ACTION", required=True)
    check = actions.add_parser(
        "check", help="installed vs supported versions; exit 1 when any is out of range",
        description="Print library, installed, supported and status for every library of the "
        "table. Exit 0 when every installed library is in range, 1 when one is out of range, "
        "differs from --lock, or is named by --require and missing; 2 on usage errors. "
        "Libraries that are not installed are shown, not failed.")
    check.add_argument("--json", action="store_true", help="print JSON for machines")
    check.add_argument("--lock", metavar="FILE",
                       help="also require the exact versions of this lock file")
    check.add_argument("--only", metavar="LIB,...", help="check only these libraries")
    check.add_argument("--require", metavar="LIB,...",
                       help="fail when one of these libraries is not installed")
    check.add_argument("--target", metavar="NAME",
                       help="instead, compare with a target environment (quantconnect: LEAN's "
                       "image) and say which formats saved here load there; exit 1 when an "
                       "installed adapter has no format that does")
    lock = actions.add_parser(
        "lock", help="write the exact versions in use (pip constraints)",
        description="Write the installed versions of the table's libraries as pip constraints "
        "(name==version); `pip install -c FILE ...` reproduces them and `alphazoo compat check "
        "--lock FILE` compares against them. With --all, the full closure of the environment "
        "(every installed distribution alphazoo and its extras require), which a CI can "
        "check with `compat check --lock FILE`.")
    lock.add_argument("--all", action="store_true",
                      help="lock the full closure: every distribution alphazoo and its "
                      "installed extras require, transitively, not only the table's libraries")
    lock.add_argument("-o", "--output", metavar="FILE",
                      help="write to FILE instead of standard output")


def run(args: argparse.Namespace) -> int:
    """Run ``alphazoo compat ...``; returns the exit code."""
    if args.compat_command == "lock":
        text = closure_lock_text() if args.all else lock_text()
        if args.output:
            Path(args.output).write_text(text, encoding="utf-8")
            pins = [line for line in text.splitlines() if line and not line.startswith("#")]
            what = "distributions" if args.all else "libraries"
            print(f"locked {len(pins)} {what} in {args.output}", file=sys.stderr)
        else:
            sys.stdout.write(text)
        return EXIT_OK
    if args.target:
        from .target_report import run_target_check

        return run_target_check(args.target, as_json=args.json)
    try:
        lock = read_lock(args.lock) if args.lock else None
        report = check_environment(only=_names(args.only),
                                   require=_names(args.require) or (),
                                   lock=lock, lock_name=args.lock)
    except (LockFileError, ValueError) as exc:
        print(f"alphazoo compat check: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    if args.json:
        print(json.dumps(report.as_dict(), indent=2))
    else:
        print(format_report(report))
    return EXIT_OK if report.ok else EXIT_FAILURE


def format_report(report: CheckReport, *, width: int | None = None) -> str:
    """The report as a table (rich's rendering as plain text) with a verdict line."""
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"alphazoo compat check (python {report.system['python']}, "
                  f"{report.system['machine']})", title_justify="left")
    for column in ("library", "installed", "supported", "tested", "status"):
        table.add_column(column)
    if report.lock:
        table.add_column("locked")
    for row in report.rows:
        style = "red" if row.status in FAILING else ("green" if row.status == OK else "dim")
        cells = [row.library, row.installed or "-", row.supported, row.tested,
                 f"[{style}]{row.status}[/]"]
        if report.lock:
            cells.append(row.locked or "-")
        table.add_row(*cells)
    console = Console(width=width or 120, record=True, file=_Discard(),
                      force_terminal=sys.stdout.isatty())
    console.print(table)
    failing = [row for row in [*report.rows, *report.other_pins] if row.status in FAILING]
    verdict = ("every installed library is in range" if not failing
               else f"FAILED: {', '.join(row.library for row in failing)}")
    if report.other_pins:
        same = sum(row.status == OK for row in report.other_pins)
        verdict += (f"; {same} of {len(report.other_pins)} other locked distributions "
                    "installed as locked")
    fixes = [f"  {row.library} ({row.status}): {_fix(row)}" for row in failing]
    return "\n".join([console.export_text(styles=sys.stdout.isatty()).rstrip(), verdict,
                      *fixes])


def _fix(row: CheckRow) -> str:
    """What to run for a failing row."""
    if row.status == LOCK_DIFFERS:
        if row.library == "python":
            return f"use python {row.locked}, or lock this environment again"
        return (f"pip install '{row.distribution or row.library}=={row.locked}', or lock this "
                "environment again (alphazoo compat lock -o FILE)")
    if row.library == "python":
        return f"use a python {row.supported}"
    return f"pip install '{row.distribution or row.library}{row.supported}'"


def _names(text: str | None) -> list[str] | None:
    if text is None:
        return None
    return [name.strip() for name in text.split(",") if name.strip()]


class _Discard(io.StringIO):
    """A file that drops what rich writes while recording (the text is exported instead)."""

    def write(self, text: str) -> int:
        return len(text)

