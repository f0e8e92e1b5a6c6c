"""``alphazoo registry ...``: aliases, versions, promote, rollback, history, gates, prune.

Every action takes ``--json`` and prints the same facts a table shows; ``promote``,
``rollback`` and ``prune`` print what they did (``prune`` is a dry run unless ``--delete``).
"""

from __future__ import annotations

import argparse
import re
from typing import Any

from .cli_output import Column, console, emit, fitted_table, print_json

__all__ = ["add_parser", "run_registry", "parse_version", "parse_keep"]

EXIT_OK = 0
_STORE_HELP = "folder or URL of the object store (default: $ALPHAZOO_STORE or ./storage)"
_VERSION = re.compile(r"[vV]?(\d+)")


def parse_version(text: str) -> int:
    """``3``, ``v3`` and ``v000003`` are version 3 (argparse type)."""
    match = _VERSION.fullmatch(text.strip())
    if not match or int(match.group(1)) < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is no version: give 3, v3 or v000003")
    return int(match.group(1))


def parse_keep(text: str) -> int:
    """``--keep N``: a number from 0 up (argparse type)."""
    try:
        number = int(text)
    except ValueError:
        number = -1
    if number < 0:
        raise argparse.ArgumentTypeError(f"{text!r}: give how many of the newest versions to "
                                         "keep, a number from 0 up")
    return number


def add_parser(commands: Any, json_option: Any) -> None:
    """Add ``registry`` to the ``alphazoo`` subcommands."""
    registry = commands.add_parser(
        "registry", help="Aliases (production, staging...), promotion, rollback, history.",
        description="The model registry of a store: which version each alias of a model "
        "series points at, who moved it when and why, and old versions' retention. NAME is a "
        "series, e.g. spy/gbdt (its versions are spy/gbdt/v000001...); load what an alias "
        "points at as NAME@ALIAS, a version as NAME@v3.")
    actions = registry.add_subparsers(dest="registry_command", metavar="ACTION", required=True)

    def action(name: str, help: str) -> argparse.ArgumentParser:
        sub = actions.add_parser(name, help=help, description=help)
        sub.add_argument("name", metavar="NAME", help="the model series, e.g. spy/gbdt")
        sub.add_argument("--store", metavar="URL", help=_STORE_HELP)
        json_option(sub)
        return sub

    action("ls", "List the series' aliases and the version each points at.")
    action("versions", "List the series' versions with their manifests' facts and aliases.")
    promote = action("promote", "Point an alias at a version (after the gates given pass).")
    promote.add_argument("version", metavar="VERSION", type=parse_version,
                         help="the version: 3, v3 or v000003")
    promote.add_argument("--alias", required=True, help="the alias to move, e.g. production")
    promote.add_argument("--note", help="why, recorded in the alias's history")
    promote.add_argument("--actor", help="who, recorded in the history (default: your user)")
    promote.add_argument("--gate", action="append", default=[], metavar="GATE",
                         choices=("integrity", "compat", "onnx_parity"),
                         help="check the version first (repeatable): integrity, compat, "
                         "onnx_parity")
    promote.add_argument("--expect", metavar="VERSION", type=parse_version,
                         help="move only if the alias points at this version now")
    promote.add_argument("--pin", action="store_true",
                         help="also pin the version: prune keeps it after the alias moves on")
    rollback = action("rollback", "Point an alias back at the version it pointed at before.")
    rollback.add_argument("--alias", required=True, help="the alias to move back")
    rollback.add_argument("--note", help="why, recorded in the alias's history")
    rollback.add_argument("--actor", help="who, recorded in the history (default: your user)")
    history = action("history", "Every move of an alias: when, from, to, who, note.")
    history.add_argument("--alias", required=True, help="the alias, e.g. production")
    gates = action("gates", "Show the gates every promotion of an alias passes, or set them "
                   "(kept in the store: every process and the CLI apply them).")
    gates.add_argument("--alias", required=True, help="the alias, e.g. production")
    gates.add_argument("--set", nargs="*", metavar="GATE", dest="set_gates",
                       choices=("integrity", "compat", "onnx_parity"),
                       help="replace them with these (none: clear them)")
    pin = action("pin", "Pin a version: prune keeps it (a rollback target) until unpinned.")
    pin.add_argument("version", metavar="VERSION", type=parse_version,
                     help="the version: 3, v3 or v000003")
    pin.add_argument("--note", help="why it is kept")
    pin.add_argument("--remove", action="store_true", help="unpin it instead")
    prune = action("prune", "Delete old versions except the newest N, every version an alias "
                   "points at now and every pinned one. A dry run unless --delete.")
    prune.add_argument("--keep", type=parse_keep, required=True, metavar="N",
                       help="how many of the newest versions to keep")
    prune.add_argument("--delete", action="store_true",
                       help="really delete (default: only say what would be deleted)")


def run_registry(args: argparse.Namespace) -> int:
    """``alphazoo registry ACTION NAME ...``."""
    from .cli_store import open_store
    from .host import Zoo

    registry = Zoo(open_store(args.store), discover=args.registry_command == "promote").registry
    action = args.registry_command
    name = args.name
    if action == "ls":
        heads = _alias_rows(registry, name)
        if args.json:
            return print_json(heads)
        return _table(f"Aliases of {name}", ["alias", "version", "since", "who", "note"],
                      [[r["alias"], f"v{r['version']}", r["when"] or "", r["who"] or "",
                        r["note"] or ""] for r in heads], f"(no aliases of {name})")
    if action == "versions":
        pointing: dict[int, list[str]] = {}
        for alias, version in registry.aliases(name).items():
            pointing.setdefault(version, []).append(alias)
        rows = registry.versions(name)
        for row in rows:
            row["aliases"] = sorted(pointing.get(row["version"], []))
        if args.json:
            return print_json(rows)
        return _table(f"Versions of {name}", ["version", "aliases", "created", "window",
                                              "format", "metrics"],
                      [[f"v{r['version']}", ", ".join(r["aliases"]), r.get("created") or "",
                        _window(r.get("window")), r.get("format") or r.get("error", ""),
                        _short(r.get("metrics"))] for r in rows],
                      f"(no versions of {name})")
    if action == "promote":
        from .model_registry import ANY_TARGET

        expect: Any = ANY_TARGET if args.expect is None else args.expect
        entry = registry.promote(name, args.version, args.alias, note=args.note,
                                 actor=args.actor, gates=args.gate or None, expect=expect,
                                 pin=args.pin)
        return _moved(entry, args.json)
    if action == "rollback":
        return _moved(registry.rollback(name, args.alias, note=args.note, actor=args.actor),
                      args.json)
    if action == "history":
        entries = registry.history(name, args.alias)
        if args.json:
            return print_json(entries)
        return _table(f"History of {name}@{args.alias}",
                      ["#", "when", "action", "from", "to", "who", "note"],
                      [[str(e["seq"]), e["when"], e["action"], _v(e["from"]), _v(e["to"]),
                        e["who"] or "", e["note"] or ""] for e in entries],
                      f"(alias {args.alias!r} of {name} was never moved)")
    if action == "gates":
        if args.set_gates is not None:
            registry.set_gates(name, args.alias, args.set_gates)
        chosen = [gate for gate in registry.gates(name, args.alias) if isinstance(gate, str)]
        if args.json:
            return print_json({"name": name, "alias": args.alias, "gates": chosen})
        print(f"{name}@{args.alias}: gates {', '.join(chosen) if chosen else 'none'}")
        return EXIT_OK
    if action == "pin":
        if args.remove:
            removed = registry.unpin(name, args.version)
            print(f"{name}: v{args.version} {'unpinned' if removed else 'was not pinned'}")
        else:
            registry.pin(name, args.version, note=args.note)
            print(f"{name}: v{args.version} pinned; prune keeps it")
        return EXIT_OK
    report = registry.prune(name, args.keep, dry_run=not args.delete)
    if args.json:
        return print_json(report)
    verb = "would delete" if report["dry_run"] else "deleted"
    deleted = ", ".join(f"v{n}" for n in report["deleted"]) or "nothing"
    protected = "; ".join(f"v{n}: {', '.join(why)}" for n, why in report["protected"].items())
    hint = ("; run again with --delete to delete"
            if report["dry_run"] and report["deleted"] else "")
    print(f"{name}: {verb} {deleted}; kept {len(report['kept'])} version(s)"
          f"{f' (protected: {protected})' if protected else ''}{hint}")
    return EXIT_OK


def _alias_rows(registry: Any, name: str) -> list[dict[str, Any]]:
    rows = []
    for alias, version in registry.aliases(name).items():
        head = (None if alias == "latest" else registry.head(name, alias)) or {}
        rows.append({"alias": alias, "version": version, "when": head.get("when"),
                     "who": head.get("who"), "note": head.get("note")})
    return rows


def _moved(entry: dict[str, Any], as_json: bool) -> int:
    if as_json:
        return print_json(entry)
    print(f"{entry['name']}@{entry['alias']}: {_v(entry['from'])} -> {_v(entry['to'])} "
          f"({entry['action']} #{entry['seq']} by {entry['who']}"
          f"{'; ' + entry['note'] if entry['note'] else ''})")
    return EXIT_OK


def _table(title: str, headers: list[str], rows: list[list[str]], empty: str) -> int:
    out = console()
    if not rows:
        emit(out, empty)
        return EXIT_OK
    columns = [Column(header, priority=index) for index, header in enumerate(headers)]
    emit(out, fitted_table(out, title, columns, rows))
    return EXIT_OK


def _v(version: int | None) -> str:
    return "-" if version is None else f"v{version}"


def _window(window: Any) -> str:
    if isinstance(window, dict):
        return f"{window.get('start', '?')} .. {window.get('end', '?')}"
    return ""


def _short(metrics: Any) -> str:
    if isinstance(metrics, dict):
        return ", ".join(f"{key}={value}" for key, value in list(metrics.items())[:3])
    return ""
