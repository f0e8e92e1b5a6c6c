"""The ``alphazoo`` command line: plugins, models, formats, the store, bundles, compat, demo.

Exit codes: 0 success, 1 failure (an alphazoo error), 2 usage.
Collectors return data and printers only format it, so ``--json`` and the tables agree.
"""

from __future__ import annotations

import argparse
import json
import sys
import textwrap
from dataclasses import asdict
from typing import Any, Sequence

from packaging.requirements import InvalidRequirement, Requirement

from alphazoo.compat.installed import installed_version

__all__ = ["main", "build_parser"]

EXIT_OK, EXIT_FAILURE, EXIT_USAGE = 0, 1, 2


def build_parser() -> argparse.ArgumentParser:
    """The argument parser (exposed for documentation and tests)."""
    parser = argparse.ArgumentParser(
        prog="alphazoo",
        description="A plugin-based model zoo for trading algorithms: build, train, store and "
        "serve ML models. scikit-learn ships as a plugin; other libraries come as adapter "
        "plugins (see `alphazoo plugins`).",
        epilog="Start with `alphazoo demo`. The store defaults to $ALPHAZOO_STORE or ./storage.",
    )
    parser.add_argument("--version", action="version", version=f"alphazoo {_version()}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    def command(name: str, help: str) -> argparse.ArgumentParser:
        return commands.add_parser(name, help=help, description=help)

    def store_option(sub: argparse.ArgumentParser) -> None:
        sub.add_argument("--store", metavar="URL", help="folder or URL of the object store "
                         "(default: $ALPHAZOO_STORE or ./storage)")

    def json_option(sub: argparse.ArgumentParser) -> None:
        sub.add_argument("--json", action="store_true", help="print JSON for machines")

    json_option(command("plugins", "List the plugins: distribution, version, hooks, status."))
    json_option(command("models", "List the zoo models every plugin registered."))
    json_option(command("formats", "List the formats each adapter writes, and which are safe."))

    store = command("store", "Look into and tidy an object store.")
    store_commands = store.add_subparsers(dest="store_command", metavar="ACTION", required=True)
    ls = store_commands.add_parser("ls", help="list keys with their sizes")
    ls.add_argument("prefix", nargs="?", default="", help="only keys starting with this")
    store_option(ls)
    json_option(ls)
    cat = store_commands.add_parser("cat", help="write an object's bytes to standard output")
    cat.add_argument("key")
    store_option(cat)
    rm = store_commands.add_parser("rm", help="delete objects")
    rm.add_argument("keys", nargs="+", metavar="KEY")
    store_option(rm)
    info = store_commands.add_parser("info", help="objects and bytes used against the limits")
    store_option(info)
    json_option(info)
    fsck_help = "find temporary files that crashed writers left (--remove deletes them)"
    fsck = store_commands.add_parser(
        "fsck", help=fsck_help, formatter_class=argparse.RawDescriptionHelpFormatter,
        description=textwrap.fill(
            "List the temporary files of unfinished saves in the store, and the "
            "get_file_path staging folders of remote stores in the temporary directory, with "
            "whether their writer is alive. A dry run unless --remove is given.", 78),
        epilog=textwrap.fill(
            "A leftover is removable when the process that wrote it is gone (its name "
            "records host, boot, pid and start time). Leftovers written on another host (a "
            "shared bucket or network folder) or by alphazoo versions before writer names "
            "are removed only with --older-than. Until removed they count against the "
            "store's limits. The first use of a store in a process also removes dead "
            "writers' leftovers on its own.", 78) + "\n\nexamples:\n"
        "  alphazoo store fsck                        list; nothing is changed\n"
        "  alphazoo store fsck --remove               delete dead writers' leftovers\n"
        "  alphazoo store fsck --remove --older-than 86400\n"
        "                                             also other hosts' older than a day\n",
    )
    fsck.add_argument("--remove", action="store_true",
                      help="delete the leftovers whose writer is gone (default: only list)")
    fsck.add_argument("--older-than", type=float, metavar="SECONDS", default=None,
                      help="count leftovers whose writer cannot be checked (another host, "
                      "old name) as gone when older than this many seconds")
    store_option(fsck)
    json_option(fsck)

    inspect = command("inspect", "Verify a saved model bundle and print its manifest.")
    inspect.add_argument("key")
    store_option(inspect)

    from alphazoo.compat import cli as compat_cli

    compat_cli.add_parser(commands)

    demo = command("demo", "Walk-forward backtest of several zoo models on bundled data, served "
                   "through ONNX; prints their metrics and draws their equity curves.")
    demo.description += (
        " Five symbols' daily bars (2015-2017, shipped with alphazoo): each model is retrained "
        "every Monday of 2017 on the previous year, every version is saved as ONNX under demo/ "
        "in the store (earlier demo/ objects are replaced) and reloaded to score the week; a "
        "top-2-of-5 portfolio with dropout trades on the scores, net of costs. Needs "
        "alphazoo[demo]."
    )
    demo.add_argument("--models", metavar="NAMES", default="random_forest,gbdt,alstm",
                      help="comma-separated models to run (default: %(default)s)")
    demo.add_argument("--chart", metavar="PNG", default="alphazoo-demo.png",
                      help="where to write the equity chart (default: %(default)s; '' for none)")
    store_option(demo)
    json_option(demo)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return EXIT_USAGE
    from .errors import AlphazooError

    try:
        return _COMMANDS[args.command](args)
    except AlphazooError as exc:
        print(f"alphazoo: error: {exc}", file=sys.stderr)
        return EXIT_FAILURE
    except (OSError, ValueError, ImportError) as exc:
        # A bad --store URL, a missing library, an unreadable folder: one line, not a traceback.
        print(f"alphazoo: error: {type(exc).__name__}: {exc}", file=sys.stderr)
        return EXIT_FAILURE
    except KeyboardInterrupt:
        print("alphazoo: interrupted", file=sys.stderr)
        return 130


# -- collectors (pure: return data) ----------------------------------------------------------------
def collect_plugins() -> list[dict[str, Any]]:
    """One dict per plugin, with each requirement's installed version (nothing imported)."""
    from .host import Zoo

    rows = []
    for info in Zoo().plugins():
        row = asdict(info)
        row["requires"] = [_requirement_status(text) for text in info.requires]
        rows.append(row)
    return rows


def _requirement_status(text: str) -> dict[str, Any]:
    try:
        requirement = Requirement(text)
    except InvalidRequirement:
        return {"requirement": text, "installed": None, "ok": False}
    installed = installed_version(requirement.name)
    ok = installed is not None and requirement.specifier.contains(installed, prereleases=True)
    return {"requirement": text, "name": requirement.name, "installed": installed, "ok": ok}


# -- commands (thin printers) ------------------------------------------------------------------
def _plugins(args: argparse.Namespace) -> int:
    rows = collect_plugins()
    if args.json:
        return _print_json(rows)
    table = _table("Plugins", "name", "distribution", "version", "status", "hooks", "libraries")
    for row in rows:
        libraries = ", ".join(
            f"{r.get('name', r['requirement'])} {r['installed'] or 'missing'}"
            for r in row["requires"]
        )
        status = row["status"] if not row["error"] else f"{row['status']}: {row['error']}"
        hooks = ", ".join(h.removeprefix("alphazoo_") for h in row["hooks"])
        table.add_row(row["name"], row["distribution"], row["version"], status, hooks, libraries)
    _console().print(table)
    return EXIT_OK


def _models(args: argparse.Namespace) -> int:
    from .host import Zoo

    specs = Zoo().models()
    rows = [{"name": s.name, "library": s.library, "plugin": s.plugin, "description": s.description}
            for s in specs]
    if args.json:
        return _print_json(rows)
    table = _table("Zoo models", "name", "library", "plugin", "description")
    for row in rows:
        table.add_row(row["name"], row["library"] or "", row["plugin"], row["description"])
    _console().print(table)
    return EXIT_OK


def _formats(args: argparse.Namespace) -> int:
    from .host import Zoo

    rows = [asdict(spec) for spec in Zoo().formats()]
    if args.json:
        return _print_json(rows)
    table = _table("Formats", "adapter", "format", "safe to load", "default", "loads with", "what")
    for row in rows:
        table.add_row(row["adapter"], row["name"],
                      "yes" if row["safe"] else "no: trusted or signed only",
                      "yes" if row["default"] else "", ", ".join(row["load_requires"]),
                      row["description"])
    _console().print(table)
    return EXIT_OK


def _store(args: argparse.Namespace) -> int:
    from .store import ObjectStore

    store = ObjectStore(args.store)
    action = args.store_command
    if action == "ls":
        rows = [{"key": key, "bytes": store.size(key)} for key in store.keys()
                if key.startswith(args.prefix)]
        if args.json:
            return _print_json(rows)
        table = _table(f"Store {store.url}", "key", "bytes")
        for row in rows:
            table.add_row(row["key"], f"{row['bytes']:,}")
        _console().print(table)
        return EXIT_OK
    if action == "cat":
        with store.open(args.key) as handle:
            while chunk := handle.read(1 << 20):
                sys.stdout.buffer.write(chunk)
        sys.stdout.buffer.flush()
        return EXIT_OK
    if action == "fsck":
        return _fsck(store, args)
    if action == "rm":
        missing = [key for key in args.keys if not store.delete(key)]
        for key in missing:
            print(f"alphazoo: no object {key!r} to delete", file=sys.stderr)
        return EXIT_FAILURE if missing else EXIT_OK
    usage = asdict(store.usage())
    if args.json:
        return _print_json(usage)
    table = _table(f"Store {usage['url']}", "", "used", "limit", "share")
    for label, used, limit in (("objects", usage["objects"], usage["max_files"]),
                               ("bytes", usage["bytes"], usage["max_size"])):
        table.add_row(label, f"{used:,}", f"{limit:,}", f"{used / limit:.1%}" if limit else "-")
    if usage["temp_files"]:
        table.add_row("temporary files", f"{usage['temp_files']:,}", "",
                      f"{usage['temp_bytes']:,} bytes (see alphazoo store fsck)")
    _console().print(table)
    return EXIT_OK


def _fsck(store: Any, args: argparse.Namespace) -> int:
    if args.older_than is not None and args.older_than < 0:
        raise ValueError("--older-than must not be negative")
    report = store.fsck(remove=args.remove, older_than=args.older_than)
    if args.json:
        return _print_json({"url": report.url, "removed": len(report.removed),
                            "leftovers": [asdict(item) for item in report.leftovers]})
    table = _table(f"Leftovers of {report.url}", "where", "bytes", "writer", "age s", "action")
    for item in report.leftovers:
        action = ("removed" if item.removed else "removable (--remove)" if item.gone
                  else "kept")
        age = f"{item.age_seconds:,.0f}" if item.age_seconds is not None else ""
        table.add_row(item.where, f"{item.bytes:,}", item.state, age, action)
    _console().print(table)
    gone = len(report.gone)
    print(f"{len(report.leftovers)} leftover(s), {gone} with their writer gone, "
          f"{len(report.removed)} removed")
    return EXIT_OK


def _inspect(args: argparse.Namespace) -> int:
    from .host import Zoo

    return _print_json(Zoo(args.store).inspect(args.key))


def _demo(args: argparse.Namespace) -> int:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn

    from alphazoo.contrib.demo import run_demo

    from .store import ObjectStore

    console = _console(stderr=True)
    store = ObjectStore(args.store)
    models = [name.strip() for name in args.models.split(",") if name.strip()]
    if console.is_terminal:
        columns = ("[progress.description]{task.description}", BarColumn(),
                   MofNCompleteColumn(), TimeElapsedColumn())
        with Progress(*columns, console=console) as bar:
            task = bar.add_task("building features", total=None)
            result = run_demo(store, models=models, chart=args.chart or None,
                              progress=lambda done, total, message: bar.update(
                                  task, completed=done, total=total, description=message))
    else:
        # Logs and pipes get a line per milestone instead of a redrawn bar.
        def log(done: int, total: int, message: str) -> None:
            if "versions saved" in message or done % 10 == 0:
                console.log(f"[{done}/{total}] {message}")

        result = run_demo(store, models=models, chart=args.chart or None, progress=log)
    comparison = result.comparison
    if args.json:
        payload = asdict(comparison)
        for row in [*payload["models"], payload["benchmark"]]:
            row["equity"] = {str(day.date()): value for day, value in row["equity"].items()}
        payload.update(chart=result.chart, store=result.store, chart_error=result.chart_error)
        from .host import strict_jsonable

        _print_json(strict_jsonable(payload))
        return _chart_failed(result.chart_error)
    out = _console()
    out.print(
        f"\nWeekly walk-forward {comparison.start} .. {comparison.end} on "
        f"{', '.join(comparison.symbols)}: each Monday a model is retrained on the year "
        f"before, saved as ONNX to [cyan]{result.store}[/] and served from there; a top-2 "
        "portfolio with dropout trades on its scores, 0.15% cost per unit traded.\n"
    )
    table = _table("Out-of-sample, 2017", "model", "IC", "rank IC", "ann. return", "max DD",
                   "IR vs EW", "retrains", "train s", "save+load s", "predict µs/row")
    for row in [*comparison.models, comparison.benchmark]:
        table.add_row(row.model, _fmt(row.ic, ".3f"), _fmt(row.rank_ic, ".3f"),
                      f"{row.annualised_return:+.1%}", f"{row.max_drawdown:.1%}",
                      _fmt(row.information_ratio, ".2f"), str(row.retrains or ""),
                      _fmt(row.train_seconds, ".1f", blank_zero=True),
                      _fmt(row.save_load_seconds, ".1f", blank_zero=True),
                      _fmt(row.predict_latency_us, ".0f"))
    out.print(table)
    out.print("IC: the mean daily correlation of scores with next-day returns across the "
              "symbols; rank IC the same on ranks. IR vs EW: the information ratio of the "
              "portfolio's daily net returns over the equal-weight benchmark's. Five stocks over "
              "one year show the workflow, not an edge: read the figures as a worked example.")
    if result.chart:
        out.print(f"Equity curves: [cyan]{result.chart}[/]")
    if comparison.models:
        where = f" --store {args.store}" if args.store else ""
        out.print(f"Every version is in the store: alphazoo store ls demo/{where}  |  "
                  f"alphazoo inspect {comparison.models[0].versions[-1]}{where}")
    out.print(f"Finished in {comparison.seconds:.0f} s.")
    return _chart_failed(result.chart_error)


def _chart_failed(error: str | None) -> int:
    # The figures are printed first: a chart that could not be written loses nothing else.
    if error is None:
        return EXIT_OK
    print(f"alphazoo: error: {error}", file=sys.stderr)
    return EXIT_FAILURE


def _fmt(value: float, spec: str, blank_zero: bool = False) -> str:
    if value != value or (blank_zero and value == 0):  # NaN: not applicable to this row
        return ""
    return format(value, spec)


def _compat(args: argparse.Namespace) -> int:
    from alphazoo.compat import cli as compat_cli

    return compat_cli.run(args)


_COMMANDS = {
    "plugins": _plugins,
    "models": _models,
    "formats": _formats,
    "store": _store,
    "inspect": _inspect,
    "demo": _demo,
    "compat": _compat,
}


# -- helpers -------------------------------------------------------------------------------------
def _print_json(value: Any) -> int:
    print(json.dumps(value, indent=2, default=str))
    return EXIT_OK


def _console(stderr: bool = False) -> Any:
    from rich.console import Console

    # Off a terminal (CI logs, pipes) rich would wrap tables at 80 columns; logs are wide.
    stream = sys.stderr if stderr else sys.stdout
    return Console(stderr=stderr, width=None if stream.isatty() else 140, log_path=False)


def _table(title: str, *columns: str) -> Any:
    from rich.table import Table

    table = Table(title=title, title_justify="left")
    for column in columns:
        table.add_column(column)
    return table


def _version() -> str:
    return installed_version("alphazoo") or "unknown"


if __name__ == "__main__":
    sys.exit(main())
