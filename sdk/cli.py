"""The ``alphazoo`` command line: plugins, models, formats, the store, bundles, the registry,
compat, demo.

Exit codes: 0 success, 1 failure (an alphazoo error), 2 usage.
Collectors return data and printers only format it, so ``--json`` and the tables agree.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import warnings
from dataclasses import asdict
from typing import Any, Iterator, Sequence

from packaging.requirements import InvalidRequirement, Requirement

from alphazoo.compat.installed import installed_version

__all__ = ["main", "build_parser"]

EXIT_OK, EXIT_FAILURE, EXIT_USAGE = 0, 1, 2


def build_parser() -> argparse.ArgumentParser:
    """The argument parser (exposed for documentation and tests)."""
    parser = argparse.ArgumentParser(
        prog="alphazoo",
        description="A plugin-based model zoo for trading algorithms: build, train, store and "
        "serve ML models. Adapter plugins for scikit-learn, XGBoost, LightGBM, CatBoost, "
        "PyTorch, Keras, hmmlearn and Stable-Baselines3 ship with alphazoo, each usable once its "
        "library is installed; `alphazoo plugins` "
        "shows which are ready and what to install for the others.",
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

    from .cli_store import add_parsers as add_store_parsers

    add_store_parsers(commands, json_option)

    from .cli_registry import add_parser as add_registry_parser

    add_registry_parser(commands, json_option)

    export = commands.add_parser(
        "export-reader", help="Write the one-file bundle reader for projects without alphazoo.",
        description="Write the one-file bundle reader: a Python module needing only numpy and "
        "the model's library (or onnxruntime), for projects where alphazoo is not installed, "
        "such as QuantConnect algorithms.")
    export.add_argument("-o", "--output", metavar="FILE", required=True,
                        help="the module to write, e.g. alphazoo_reader.py")

    from alphazoo.compat import cli as compat_cli

    compat_cli.add_parser(commands)

    from .cli_demo import add_parser as add_demo_parser

    add_demo_parser(commands, store_option, json_option)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return EXIT_USAGE
    if args.command == "demo":
        from .cli_demo import parse_models

        try:
            args.models = parse_models(args.models)
        except ValueError as exc:  # a usage error, as argparse's own choices would be
            print(f"alphazoo demo: error: {exc}", file=sys.stderr)
            return EXIT_USAGE
    from .errors import AlphazooError

    try:
        with _plugin_failures_summarised():
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
    from .cli_output import Column

    columns = [Column("name"), Column("distribution", priority=3, short="dist"),
               Column("version", priority=4, wrap=False), Column("status"),
               Column("hooks", priority=5), Column("libraries", priority=2)]
    table_rows = []
    for row in rows:
        libraries = ", ".join(
            f"{r.get('name', r['requirement'])} {r['installed'] or 'missing'}"
            for r in row["requires"]
        )
        # "loaded" only when the library is there: otherwise what is missing and the install.
        status = row["status"] if not row["error"] else f"{row['status']}: {row['error']}"
        hooks = ", ".join(h.removeprefix("alphazoo_") for h in row["hooks"])
        table_rows.append([row["name"], row["distribution"], row["version"], status, hooks,
                           libraries])
    _emit_fitted("Plugins", columns, table_rows)
    return EXIT_OK


def _models(args: argparse.Namespace) -> int:
    from .host import Zoo

    specs = Zoo().models()
    rows = [{"name": s.name, "library": s.library, "plugin": s.plugin, "description": s.description}
            for s in specs]
    if args.json:
        return _print_json(rows)
    from .cli_output import Column

    columns = [Column("name", wrap=False), Column("library", priority=2),
               Column("plugin", priority=3), Column("description", priority=1)]
    _emit_fitted("Zoo models", columns, [[row["name"] or "", row["library"] or "",
                                          row["plugin"] or "", row["description"] or ""]
                                         for row in rows])
    return EXIT_OK


def _formats(args: argparse.Namespace) -> int:
    from .host import Zoo

    rows = [asdict(spec) for spec in Zoo().formats()]
    if args.json:
        return _print_json(rows)
    from .cli_output import Column

    columns = [Column("adapter", wrap=False), Column("format", wrap=False),
               Column("safe to load", short="safe"), Column("default", priority=3),
               Column("loads with", priority=2), Column("what", priority=1)]
    _emit_fitted("Formats", columns, [
        [row["adapter"], row["name"], "yes" if row["safe"] else "no: trusted or signed only",
         "yes" if row["default"] else "", ", ".join(row["load_requires"]), row["description"]]
        for row in rows])
    return EXIT_OK


def _store(args: argparse.Namespace) -> int:
    from .cli_store import run_store

    return run_store(args)


def _inspect(args: argparse.Namespace) -> int:
    from .cli_store import run_inspect

    return run_inspect(args)


def _registry(args: argparse.Namespace) -> int:
    from .cli_registry import run_registry

    return run_registry(args)


def _demo(args: argparse.Namespace) -> int:
    from .cli_demo import run

    return run(args, args.models)


def _compat(args: argparse.Namespace) -> int:
    from alphazoo.compat import cli as compat_cli

    return compat_cli.run(args)


def _export_reader(args: argparse.Namespace) -> int:
    from pathlib import Path

    from .reader_export import reader_source

    Path(args.output).write_text(reader_source(), encoding="utf-8")
    print(f"wrote the bundle reader to {args.output}; in an algorithm: "
          "load(self.object_store.read_bytes(key)).predict(X)", file=sys.stderr)
    return EXIT_OK


_COMMANDS = {
    "plugins": _plugins,
    "models": _models,
    "formats": _formats,
    "store": _store,
    "inspect": _inspect,
    "registry": _registry,
    "export-reader": _export_reader,
    "demo": _demo,
    "compat": _compat,
}


# -- helpers -------------------------------------------------------------------------------------
@contextlib.contextmanager
def _plugin_failures_summarised() -> Iterator[None]:
    """One readable line per plugin that failed, instead of Python's warning.

    Python would print the warning with alphazoo's own file, line and source text on every
    command; a shell user needs the plugin's name, why, and where to look.
    """
    from .discovery import PluginLoadWarning

    shown: set[str] = set()
    original = warnings.showwarning

    def show(message: Any, category: type[Warning], *rest: Any, **kwargs: Any) -> None:
        if not issubclass(category, PluginLoadWarning):
            original(message, category, *rest, **kwargs)
            return
        text = str(message)
        if text not in shown:
            shown.add(text)
            line = f"alphazoo: warning: {text}; see `alphazoo plugins`"
            if sys.stderr.isatty():  # wrapped at words, not cut mid-word by the terminal
                import shutil
                import textwrap

                line = textwrap.fill(line, shutil.get_terminal_size().columns,
                                     subsequent_indent="  ", break_on_hyphens=False)
            print(line, file=sys.stderr)

    warnings.showwarning = show
    try:
        yield
    finally:
        warnings.showwarning = original


def _print_json(value: Any) -> int:
    from .cli_output import print_json

    return print_json(value)


def _emit_fitted(title: str, columns: Any, rows: list[list[str]]) -> None:
    from .cli_output import console, emit, fitted_table

    out = console()
    emit(out, fitted_table(out, title, columns, rows))


def _version() -> str:
    return installed_version("alphazoo") or "unknown"


if __name__ == "__main__":
    sys.exit(main())
