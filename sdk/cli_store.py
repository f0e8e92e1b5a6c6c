"""``alphazoo store ...`` (ls, cat, get, put, rm, info, fsck) and ``alphazoo inspect``.

The errors here are written for someone at a prompt, not a Python caller: a ``--store`` that
does not exist is refused by name instead of listing an empty store, and a missing key names
the store and what is there instead (near matches, a series' versions and ``latest.json``).
"""

from __future__ import annotations

import argparse
import difflib
import os
import sys
import textwrap
from dataclasses import asdict
from typing import Any

from .cli_output import console, emit, print_json, table
from .errors import AlphazooError, ObjectNotFoundError

__all__ = ["StoreKeyError", "StoreLocationError", "add_parsers", "missing_key_message",
           "open_store", "run_inspect", "run_store"]

EXIT_OK, EXIT_FAILURE, EXIT_USAGE = 0, 1, 2
_STORE_HELP = "folder or URL of the object store (default: $ALPHAZOO_STORE or ./storage)"


class StoreLocationError(AlphazooError):
    """``--store`` names a folder that does not exist, or a file."""


class StoreKeyError(AlphazooError):
    """A key the command needs is not in the store (the message says what is there)."""


def add_parsers(commands: Any, json_option: Any) -> None:
    """Add ``store`` and ``inspect`` to the ``alphazoo`` subcommands."""

    def store_option(sub: argparse.ArgumentParser) -> None:
        sub.add_argument("--store", metavar="URL", help=_STORE_HELP)

    def action(name: str, help: str) -> argparse.ArgumentParser:
        return store_commands.add_parser(name, help=help, description=help)

    store = commands.add_parser("store", help="Look into and tidy an object store.",
                                description="Look into and tidy an object store. The store "
                                "must exist: a wrong --store is an error, not an empty list.")
    store_commands = store.add_subparsers(dest="store_command", metavar="ACTION", required=True)
    ls = action("ls", "List keys with their sizes.")
    ls.add_argument("prefix", nargs="?", default="", help="only keys starting with this")
    store_option(ls)
    json_option(ls)
    cat = action("cat", "Write an object's bytes to standard output. On a terminal a binary "
                 "object (a model bundle) is summarised instead; --raw writes it anyway.")
    cat.add_argument("key", help="a key, or a registry reference such as spy/gbdt@production")
    cat.add_argument("--raw", action="store_true",
                     help="write binary objects to a terminal too")
    store_option(cat)
    get = action("get", "Copy an object into a file (written whole or not at all).")
    get.add_argument("key", help="a key, or a registry reference such as spy/gbdt@production")
    get.add_argument("-o", "--output", metavar="FILE", required=True,
                     help="the file to write (replaced)")
    store_option(get)
    put = action("put", "Store FILE's bytes under KEY, as `lean cloud object-store set` "
                 "uploads them. FILE must be a valid alphazoo model bundle (every checksum "
                 "verified) unless --raw.")
    put.add_argument("file", metavar="FILE")
    put.add_argument("key", metavar="KEY")
    put.add_argument("--raw", action="store_true", help="store any bytes, not only a bundle")
    store_option(put)
    rm = action("rm", "Delete objects; a key that is not there is an error (exit 1). --all "
                "deletes every object after a confirmation.")
    rm.add_argument("keys", nargs="*", metavar="KEY")
    rm.add_argument("--all", action="store_true",
                    help="delete every object in the store; asks for confirmation on "
                    "standard input unless --yes (no answer: nothing is deleted)")
    rm.add_argument("--yes", action="store_true", help="do not ask before --all")
    store_option(rm)
    info = action("info", "Objects and bytes used against the store's limits.")
    store_option(info)
    json_option(info)
    fsck = store_commands.add_parser(
        "fsck", help="find temporary files that crashed writers left (--remove deletes them)",
        formatter_class=argparse.RawDescriptionHelpFormatter,
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

    inspect = commands.add_parser(
        "inspect", help="Verify a saved model bundle and print its manifest.",
        description="Verify a saved model bundle (every payload file's SHA-256, the bundle's "
        "closing SHA-256, its size, and its HMAC when $ALPHAZOO_SIGNING_KEY is set), print the "
        "manifest as JSON on stdout and what was verified on stderr.")
    inspect.add_argument("key", help="a bundle's key, e.g. demo/alstm/v000052, or a registry "
                         "reference: demo/alstm@production (an alias), demo/alstm@v52, "
                         "demo/alstm@latest")
    inspect.add_argument("--target", metavar="NAME",
                         help="instead, say whether the bundle loads on NAME (quantconnect) "
                         "and why not; exit 1 when it does not")
    store_option(inspect)


def open_store(location: str | None, *, create: bool = False) -> Any:
    """The store at ``location`` (default ``$ALPHAZOO_STORE`` or ``./storage``).

    A folder that does not exist is an error unless ``create`` (the demo makes its store);
    a file is always one. URL stores (``s3://``, ``memory://``) have no folder to check: an
    empty prefix is an empty store.
    """
    from .store import ObjectStore

    store = ObjectStore(location)
    folder = store.folder
    if folder is not None:
        if location:
            given = f" (--store {location})"
        elif os.environ.get("ALPHAZOO_STORE"):
            given = " (from $ALPHAZOO_STORE)"
        else:
            given = " (the default, ./storage; pass --store or set $ALPHAZOO_STORE)"
        if folder.exists() and not folder.is_dir():
            raise StoreLocationError(f"{folder} is a file, not an object store folder"
                                     f"{given}")
        if not folder.exists() and not create:
            raise StoreLocationError(
                f"no object store at {folder}{given}: the folder does not exist; "
                "check the path, or run `alphazoo demo` to make one there")
    return store


def missing_key_message(store: Any, key: str) -> str:
    """Why ``key`` is not in ``store``, for a shell user: the store, and what is there."""
    from .keys import normalize_key
    from .training.model_versions import LATEST, latest_version, versions

    try:
        key = normalize_key(key)
    except ValueError:
        pass
    keys = store.keys()
    message = f"no object {key!r} in the store {store.url}"
    numbers = versions(store, key)
    if numbers:
        newest = latest_version(store, key)
        shown = ", ".join(f"v{n:06d}" for n in numbers[:3])
        if len(numbers) > 3:
            shown += f", ... v{numbers[-1]:06d}"
        pointer = f"{key}/{LATEST}"
        points = (f"; {pointer} points at v{newest:06d}" if pointer in keys else "")
        return (f"{message}: {key!r} is a model series of {len(numbers)} versions ({shown})"
                f"{points}. Try: alphazoo inspect {key}/v{newest:06d}")
    inside = [k for k in keys if k.startswith(key.rstrip("/") + "/")]
    if inside:
        return (f"{message}: it is a folder of {len(inside)} objects; list them with "
                f"alphazoo store ls {key.rstrip('/')}/")
    near = difflib.get_close_matches(key, keys, n=5, cutoff=0.6)
    if near:
        return f"{message}. Did you mean: {', '.join(near)}?"
    if not keys:
        return f"{message}: the store is empty"
    parent = key.rpartition("/")[0]
    if parent:  # what the folder the key names does hold: series, objects
        children = set()
        for other in keys:
            if other.startswith(parent + "/"):
                head, slash, _ = other[len(parent) + 1:].partition("/")
                children.add(head + slash)  # "alstm/" for a folder, the name for an object
        if children:
            names = sorted(children)
            shown = ", ".join(names[:8]) + (", ..." if len(names) > 8 else "")
            return f"{message}; {parent}/ holds: {shown}"
    return f"{message} ({len(keys)} objects; see alphazoo store ls)"


def run_store(args: argparse.Namespace) -> int:
    """``alphazoo store ACTION``."""
    # put writes: like the demo, it may make the store it writes into; the others only read
    # or delete, where a missing folder is a wrong path.
    store = open_store(args.store, create=args.store_command == "put")
    try:
        return _run_store(store, args)
    except ObjectNotFoundError as exc:
        raise StoreKeyError(missing_key_message(store, exc.key)) from None


def _run_store(store: Any, args: argparse.Namespace) -> int:
    action = args.store_command
    if action in ("cat", "get") and "@" in args.key:  # name@alias, name@v3, name@latest
        from .model_registry import ModelRegistry

        args.key = ModelRegistry(store).resolve(args.key)
    if action == "ls":
        return _ls(store, args)
    if action == "cat":
        return _cat(store, args)
    if action == "fsck":
        return _fsck(store, args)
    if action == "get":
        return _get(store, args.key, args.output)
    if action == "put":
        return _put(store, args.file, args.key, args.raw)
    if action == "rm":
        if args.all == bool(args.keys):
            print("alphazoo: error: give KEYs to delete, or --all (not both)", file=sys.stderr)
            return EXIT_USAGE
        if args.all:
            return _delete_all(store, args.yes)
        missing = [key for key in args.keys if not store.delete(key)]
        for key in missing:
            print(f"alphazoo: no object {key!r} to delete in the store {store.url}",
                  file=sys.stderr)
        return EXIT_FAILURE if missing else EXIT_OK
    usage = asdict(store.usage())
    if args.json:
        return print_json(usage)
    out = console()
    rows = table(None, "", "used", "limit", "share")
    for label, used, limit in (("objects", usage["objects"], usage["max_files"]),
                               ("bytes", usage["bytes"], usage["max_size"])):
        rows.add_row(label, f"{used:,}", f"{limit:,}", f"{used / limit:.1%}" if limit else "-")
    if usage["temp_files"]:
        rows.add_row("temporary files", f"{usage['temp_files']:,}", "",
                     f"{usage['temp_bytes']:,} bytes (see alphazoo store fsck)")
    _title(out, store.url)
    emit(out, rows)
    return EXIT_OK


def _title(out: Any, url: str) -> None:
    # Plain text on its own line, never wrapped: a path cut in the middle cannot be copied.
    out.file.write(f"Store {url}\n")
    out.file.flush()


def _ls(store: Any, args: argparse.Namespace) -> int:
    rows = [{"key": key, "bytes": store.size(key)} for key in store.keys()
            if key.startswith(args.prefix)]
    if args.json:
        return print_json(rows)
    from .cli_output import Column, fitted_table

    out = console()
    _title(out, store.url)
    if not rows:
        what = f"no keys start with {args.prefix!r}" if args.prefix else "the store is empty"
        emit(out, f"({what})")
        return EXIT_OK
    emit(out, fitted_table(out, None, [Column("key"), Column("bytes", number=True)],
                           [[row["key"], f"{row['bytes']:,}"] for row in rows]))
    return EXIT_OK


def _cat(store: Any, args: argparse.Namespace) -> int:
    with store.open(args.key) as handle:
        head = handle.read(8192)
        if sys.stdout.isatty() and not args.raw and _binary(head):
            print(_binary_summary(store, args.key, head), file=sys.stderr)
            return EXIT_FAILURE
        out = sys.stdout.buffer
        out.write(head)
        while chunk := handle.read(1 << 20):
            out.write(chunk)
        out.flush()
    return EXIT_OK


def _binary(head: bytes) -> bool:
    if b"\0" in head:
        return True
    try:
        head.decode("utf-8")
    except UnicodeDecodeError as exc:
        return exc.start < len(head) - 3  # a character cut at the 8 KiB boundary is text
    return False


def _binary_summary(store: Any, key: str, head: bytes) -> str:
    from .bundle import MAGIC

    size = store.size(key)
    what = "a binary object"
    hint = ""
    if head.startswith(MAGIC):
        what, hint = "an alphazoo model bundle", f" Its manifest: alphazoo inspect {key}."
    return (f"alphazoo: {key!r} is {what} ({size:,} bytes); not written to the terminal."
            f"{hint} To copy it: alphazoo store cat {key} > FILE, or add --raw.")


def _fsck(store: Any, args: argparse.Namespace) -> int:
    if args.older_than is not None and args.older_than < 0:
        raise ValueError("--older-than must not be negative")
    report = store.fsck(remove=args.remove, older_than=args.older_than)
    if args.json:
        return print_json({"url": report.url, "removed": len(report.removed),
                           "leftovers": [asdict(item) for item in report.leftovers]})
    out = console()
    rows = table(None, "where", "bytes", "writer", "age s", "action")
    for item in report.leftovers:
        action = ("removed" if item.removed else "removable (--remove)" if item.gone
                  else "kept")
        age = f"{item.age_seconds:,.0f}" if item.age_seconds is not None else ""
        rows.add_row(item.where, f"{item.bytes:,}", item.state, age, action)
    out.file.write(f"Leftovers of {report.url}\n")
    emit(out, rows)
    print(f"{len(report.leftovers)} leftover(s), {len(report.gone)} with their writer gone, "
          f"{len(report.removed)} removed")
    return EXIT_OK


def _get(store: Any, key: str, output: str) -> int:
    import tempfile

    folder = os.path.dirname(os.path.abspath(output))
    # Written beside the target and renamed: a failed read leaves no half-written file.
    handle, partial = tempfile.mkstemp(prefix=".alphazoo-get-", dir=folder)
    try:
        with os.fdopen(handle, "wb") as sink, store.open(key) as source:
            while chunk := source.read(1 << 20):
                sink.write(chunk)
        os.replace(partial, output)
    except BaseException:
        os.unlink(partial)
        raise
    print(f"wrote {key!r} ({os.path.getsize(output):,} bytes) to {output}", file=sys.stderr)
    return EXIT_OK


def _put(store: Any, path: str, key: str, raw: bool) -> int:
    from pathlib import Path

    data = Path(path).read_bytes()
    if not raw:
        from .errors import BundleIntegrityError
        from .reader import read_bundle_bytes

        try:
            manifest = read_bundle_bytes(data, max_bytes=len(data))[0]  # already read
        except BundleIntegrityError as exc:
            raise BundleIntegrityError(
                f"{path} is not a valid alphazoo model bundle ({exc}); pass --raw to store "
                "other bytes") from None
        if manifest.get("signature") and manifest.get("key") != key:
            # Not an error: copying a bundle to another key is legitimate, but a signature
            # vouches only for the key it was saved under.
            print(f"alphazoo: note: the bundle is signed for {manifest.get('key')!r}; a signed "
                  "bundle loads only under that key", file=sys.stderr)
    store.save_bytes(key, data)
    print(f"stored {path} ({len(data):,} bytes) under {key!r} in {store.url}", file=sys.stderr)
    return EXIT_OK


def _delete_all(store: Any, yes: bool) -> int:
    if not yes:
        count = len(store)
        print(f"Delete all {count} object(s) in {store.url}? This cannot be undone. "
              "Type 'yes' to confirm: ", end="", file=sys.stderr, flush=True)
        # No terminal and nothing piped in (cron, CI) reads as "no": deleting a whole store
        # must be asked for, never the default of an unattended run.
        answer = sys.stdin.readline() if sys.stdin is not None else ""
        if answer.strip().lower() not in ("y", "yes"):
            print("\nalphazoo: nothing deleted (confirm with 'yes', or pass --yes)",
                  file=sys.stderr)
            return EXIT_FAILURE
    deleted = store.delete_all()
    print(f"deleted {deleted} object(s) from {store.url}", file=sys.stderr)
    return EXIT_OK


def run_inspect(args: argparse.Namespace) -> int:
    """``alphazoo inspect KEY``: the manifest on stdout, what was verified on stderr; with
    ``--target NAME``, whether the bundle loads there (exit 1 when it does not)."""
    from .bundle import read_bundle, signing_key

    store = open_store(args.store)
    if "@" in args.key:  # a registry reference: name@alias, name@v3, name@latest
        from .model_registry import ModelRegistry

        args.key = ModelRegistry(store).resolve(args.key)
    if args.target is not None:
        from .host import Zoo

        try:
            found = Zoo(store).check_target(args.key, args.target)
        except ObjectNotFoundError as exc:
            raise StoreKeyError(missing_key_message(store, exc.key)) from None
        print_json(found.as_dict())
        return EXIT_OK if found.loads else EXIT_FAILURE
    try:
        opened = read_bundle(store, args.key, None, signing_key(None))
    except ObjectNotFoundError as exc:
        raise StoreKeyError(missing_key_message(store, exc.key)) from None
    manifest = opened.manifest
    print_json(manifest)
    files = manifest.get("files") or []
    names = ", ".join(entry.get("name", "?") for entry in files)
    if manifest.get("signature"):
        signature = ("HMAC signature valid" if opened.signature_valid else
                     "signed, HMAC not checked ($ALPHAZOO_SIGNING_KEY not set or another key)")
    else:
        signature = "unsigned"
    print(f"verified {args.key}: bundle protocol {manifest.get('protocol', '?')}; "
          f"{len(files)} payload file(s) match their SHA-256 ({names}); the bundle's closing "
          f"SHA-256 matches; its size is what the manifest accounts for; {signature}",
          file=sys.stderr)
    return EXIT_OK
