"""The model registry: versions of a model series, aliases that point at one, and their history.

A series ``spy/gbdt`` is saved as versions ``spy/gbdt/v000001``, ``v000002``... with a
``latest.json`` pointer (:mod:`alphazoo.training.model_versions`). The registry adds
**aliases**: free names (``production``, ``staging``, ``shadow``) that point at the version
someone chose, moved by :meth:`ModelRegistry.promote` and :meth:`ModelRegistry.rollback`, each
move recorded in an append-only **history** (when, from, to, note, who). ``latest`` is an alias
too: it is ``latest.json``, moved by saves, and cannot be promoted.

Keys: ``spy/gbdt@production``, ``spy/gbdt@v3`` and ``spy/gbdt@latest`` name a version wherever
a key is accepted (:meth:`ModelRegistry.resolve`; ``zoo.load``, ``zoo.inspect``, the CLI).
``@`` is not a key character (:mod:`alphazoo.keys`), so no valid key reads as a reference.
An alias is one key segment without extension, and ``v`` followed by digits is a version.

Layout in the store, next to the versions::

    spy/gbdt/_registry/history/production/000001.json   the first move of "production"
    spy/gbdt/_registry/history/production/000002.json   the next one ...
    spy/gbdt/_registry/aliases/production.json          the head: a copy of the newest entry
    spy/gbdt/_registry/gates/production.json            built-in gates set for the alias
    spy/gbdt/_registry/pins/v000003.json                 a version prune keeps (pin)

A move is two writes. First the history entry ``n + 1`` is **created exclusively**
(:meth:`~alphazoo.ObjectStore.create_bytes`): that is the compare-and-swap. Of two writers
that both read entry ``n`` as the newest, the first to create ``n + 1`` wins; the other gets
:class:`~alphazoo.AliasConflictError` and changed nothing, so history never loses or repeats a
move. Then the head is overwritten with a copy of the entry; :meth:`ModelRegistry.target`
reads only the head, one small object, whatever the number of versions or moves (what a live
model following the alias polls). After writing the head a mover checks that no entry
``n + 2`` exists and, if one does, rewrites the head forward: whichever writer writes the head
last has seen no later entry, so the head ends on the newest entry even when two movers'
head writes cross. A mover also checks for entry ``n + 2`` *before* writing the head, and
skips straight to it when it exists, so a slow mover does not set the head back to ``n + 1``
after a faster one published ``n + 2``. One window stays: a mover that stalls between that
check and its head write while another mover creates ``n + 2`` and writes its head sets the
head back to ``n + 1`` until its own re-check (the next read of one small object) moves it
forward again; a :meth:`ModelRegistry.target` poll inside that window sees the superseded
version once, and the next poll sees the newest.

A mover killed between its two writes leaves the head one entry behind. Every later move,
rollback, history read and :meth:`ModelRegistry.resolve` (what ``zoo.load("name@alias")``
uses) first walks the head forward over such entries; :meth:`ModelRegistry.target` stays one
read, and a live follower (:mod:`alphazoo.training.follow`) walks it forward with
:meth:`ModelRegistry.head` every :data:`~alphazoo.training.follow.PROBE_EVERY` polls.

What holds where:

- **folder store**: the create is a hard link of a finished, fsynced file (and the store's
  writes share a file lock): exactly one of any number of processes wins each move;
- **S3**: the create is a conditional PUT (``If-None-Match: *``), which S3 (and moto) refuse
  for the second writer: the same guarantee across machines. An S3-compatible service that
  ignores the condition would let two racing writers both "win" (the later entry replaces the
  earlier one): give such a store one writer;
- **memory://** and other fsspec file systems: exclusive among the stores of one process.

Gates (:mod:`alphazoo.registry_gates`) check a candidate before an alias moves to it.
"""

from __future__ import annotations

import getpass
import json
import os
import re
import struct
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, Sequence

from .errors import (
    AliasConflictError,
    AliasNotFoundError,
    InvalidAliasError,
    InvalidKeyError,
    ObjectNotFoundError,
    RegistryRecordError,
    RegistryUsageError,
)
from .keys import normalize_key
from .series import LATEST, VERSION_NAME, version_key

if TYPE_CHECKING:
    from .store import ObjectStore

__all__ = ["ModelRegistry", "parse_reference", "parse_version", "manifest_facts", "Gate",
           "ANY_TARGET", "REGISTRY_FOLDER", "ENTRY_FORMAT"]

#: The folder inside a series that holds its aliases and their history.
REGISTRY_FOLDER = "_registry"
#: The ``format`` field of every history entry and alias head.
ENTRY_FORMAT = "alphazoo-alias/1"
_ALIAS = re.compile(r"[A-Za-z0-9_\-]{1,100}")
_VERSION_REF = re.compile(r"[vV](\d+)")
_VERSION_TEXT = re.compile(r"[vV]?(\d+)")


def parse_version(version: int | str) -> int:
    """The version number ``version`` names: ``3``, ``"3"``, ``"v3"`` and ``"v000003"`` are
    3. Raises :class:`~alphazoo.RegistryUsageError` for anything else, and for numbers below
    1 (versions count from 1)."""
    if isinstance(version, bool):
        number = None
    elif isinstance(version, int):
        number = version
    else:
        match = _VERSION_TEXT.fullmatch(version.strip()) if isinstance(version, str) else None
        number = int(match.group(1)) if match else None
    if number is None or number < 1:
        raise RegistryUsageError(f"{version!r} is no model version: give a number from 1 up, "
                                 "such as 3, '3', 'v3' or 'v000003'")
    return number


def parse_reference(key: str) -> tuple[str, str] | None:
    """``("spy/gbdt", "production")`` for ``"spy/gbdt@production"``; None for a plain key.

    Raises :class:`~alphazoo.InvalidKeyError` when the name or the alias breaks the rules.
    """
    if not isinstance(key, str) or "@" not in key:
        return None
    name, _, ref = key.rpartition("@")
    if not name:
        raise InvalidKeyError(key, "a reference needs a model name before '@'")
    return normalize_key(name), _check_alias(ref, name)


def _check_alias(alias: str, name: str | None = None) -> str:
    if isinstance(alias, str) and _ALIAS.fullmatch(alias):
        return alias
    if alias == "":
        raise InvalidAliasError(alias, "the alias is empty; name one, such as production "
                                "(as in spy/gbdt@production)", name)
    raise InvalidAliasError(str(alias), "an alias is 1 to 100 ASCII letters, digits, '_' or "
                            "'-'", name)


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="microseconds")


def _user() -> str:
    try:
        return getpass.getuser()
    except Exception:  # no user name in this environment (some containers)
        return os.environ.get("USER") or "unknown"


class _AnyTarget:
    def __repr__(self) -> str:
        return "ANY_TARGET"


#: ``promote(..., expect=ANY_TARGET)``, the default: move the alias wherever it points now.
ANY_TARGET = _AnyTarget()

#: A promotion gate: a built-in's name (``"integrity"``, ``"compat"``, ``"onnx_parity"``) or a
#: callable ``(candidate, current) -> bool | str | (bool, str)``
#: (see :mod:`alphazoo.registry_gates`).
Gate = Any


class ModelRegistry:
    """Versions, aliases, promotion, rollback and history of model series in one store.

    Reached as ``zoo.registry``; ``ModelRegistry(store)`` works without a zoo (gates that
    load a model then need ``zoo=``). See the module docstring for the layout and the
    guarantees of each backend.

    >>> registry = zoo.registry                                        # doctest: +SKIP
    >>> registry.promote("spy/gbdt", 3, "production", note="IC up")    # doctest: +SKIP
    >>> registry.target("spy/gbdt", "production")                      # doctest: +SKIP
    3
    >>> zoo.load("spy/gbdt@production")                                # doctest: +SKIP
    """

    def __init__(self, store: ObjectStore, *, zoo: Any = None) -> None:
        self.store = store
        self.zoo = zoo
        self._gates: dict[tuple[str, str], list[Gate]] = {}

    # -- keys ------------------------------------------------------------------------------
    def _head_key(self, name: str, alias: str) -> str:
        return f"{name}/{REGISTRY_FOLDER}/aliases/{alias}.json"

    def _history_folder(self, name: str, alias: str) -> str:
        return f"{name}/{REGISTRY_FOLDER}/history/{alias}"

    def _entry_key(self, name: str, alias: str, seq: int) -> str:
        return f"{self._history_folder(name, alias)}/{seq:06d}.json"

    # -- reading ---------------------------------------------------------------------------
    def target(self, name: str, alias: str) -> int | None:
        """The version ``alias`` points at, or None when it points nowhere yet.

        One read of one small object (the alias's head; ``latest`` reads ``latest.json``),
        whatever the number of versions and moves: what a live model polls.
        """
        name = normalize_key(name)
        if alias == "latest":
            key = f"{name}/{LATEST}"
            pointer = _read_json_or_none(self.store, key)
            if pointer is None:
                return None
            if not isinstance(pointer, dict) or type(pointer.get("version")) is not int:
                raise RegistryRecordError(key, "it holds no version number")
            return int(pointer["version"])
        head = _record(self.store, self._head_key(name, _check_alias(alias, name)))
        return None if head is None else int(head["to"])

    def resolve(self, key: str) -> str:
        """The concrete key a reference names: ``"spy/gbdt@production"``,
        ``"spy/gbdt@v3"`` and ``"spy/gbdt@latest"`` become ``"spy/gbdt/v000003"``; a plain
        key is returned unchanged. Raises :class:`~alphazoo.AliasNotFoundError` for an alias
        that points at no version (no object is checked for ``@vN``) and
        :class:`~alphazoo.RegistryUsageError` for ``@v0``.

        Unlike :meth:`target` (one read: what a poll costs), an alias's head is checked for a
        move a crashed mover left half-done and walked forward (two reads): a load gets the
        newest target."""
        parsed = parse_reference(key)
        if parsed is None:
            return key
        name, ref = parsed
        if _VERSION_REF.fullmatch(ref):
            return version_key(name, parse_version(ref))
        if ref == "latest":
            version = self.target(name, ref)
            if version is None:
                raise AliasNotFoundError(name, ref, "no version of it was saved with a "
                                         "latest.json pointer yet; save one (save_version, a "
                                         "Trainer run) or load a version as NAME@v3")
            return version_key(name, version)
        head = self._settled(name, ref)
        if head is None:
            raise AliasNotFoundError(name, ref)
        return version_key(name, int(head["to"]))

    def aliases(self, name: str) -> dict[str, int]:
        """Every alias of ``name`` with the version it points at (``latest`` included when
        ``latest.json`` exists): one folder listing and one read per alias."""
        name = normalize_key(name)
        found: dict[str, int] = {}
        latest = self.target(name, "latest")
        if latest is not None:
            found["latest"] = latest
        folder = f"{name}/{REGISTRY_FOLDER}/aliases"
        for key in self.store.list_folder(folder):
            alias = key.rsplit("/", 1)[-1][: -len(".json")]
            head = self._settled(name, alias)
            if head is not None:
                found[alias] = int(head["to"])
        return found

    def head(self, name: str, alias: str) -> dict[str, Any] | None:
        """The newest move of ``alias`` (the last :meth:`history` entry: ``when``, ``who``,
        ``note``...), or None when it was never moved; a few reads, whatever the history's
        length. ``latest`` has none."""
        name = normalize_key(name)
        alias = _check_alias(alias, name)
        head = self._settled(name, alias)
        return None if head is None else dict(head)

    def history(self, name: str, alias: str) -> list[dict[str, Any]]:
        """Every move of ``alias``, oldest first: dicts with ``seq``, ``when``, ``from``,
        ``to``, ``action`` (``promote`` or ``rollback``), ``note`` and ``who``. ``latest``
        has no history (it moves with every save)."""
        name = normalize_key(name)
        alias = _check_alias(alias, name)
        head = self._settled(name, alias)
        if head is None:
            return []
        return [self._entry(name, alias, seq) for seq in range(1, int(head["seq"]) + 1)]

    def versions(self, name: str, *, facts: bool = True) -> list[dict[str, Any]]:
        """The stored versions of ``name``, ascending: ``{"version", "key"}`` plus, with
        ``facts``, what each manifest records (``created``, ``window``, ``training``: rows,
        seconds, finished; ``metrics`` and the rest of the user's ``metadata``; ``adapter``,
        ``format``, ``libraries``), read from the bundle's head without
        verifying the payload (gates and loads verify). One folder listing, and one small
        read per version with ``facts``."""
        name = normalize_key(name)
        rows = []
        for key in self.store.list_folder(name):
            match = VERSION_NAME.fullmatch(key.rsplit("/", 1)[-1])
            if not match:
                continue
            row: dict[str, Any] = {"version": int(match.group(1)), "key": key}
            if facts:
                row.update(manifest_facts(self.store, key))
            rows.append(row)
        return sorted(rows, key=lambda row: row["version"])

    # -- moving ----------------------------------------------------------------------------
    def promote(self, name: str, version: int, alias: str, *, note: str | None = None,
                actor: str | None = None, gates: Sequence[Gate] | None = None,
                expect: int | None | _AnyTarget = ANY_TARGET,
                pin: bool = False) -> dict[str, Any]:
        """Point ``alias`` of ``name`` at ``version`` (``3``, ``"3"`` or ``"v3"``); returns
        the history entry.

        ``gates`` (default: those set with :meth:`set_gates` for the alias) check the
        candidate first; a refusal raises :class:`~alphazoo.PromotionRefusedError` naming the
        gate, and the alias stays. ``expect`` (a version, or None for "no target yet") makes
        the move conditional on the alias's current target. Raises
        :class:`~alphazoo.AliasConflictError` when another writer moved the alias
        meanwhile, :class:`~alphazoo.ObjectNotFoundError` when the version is not stored.
        ``who`` is ``actor`` or the OS user name. ``pin=True`` also pins the version
        (:meth:`pin`), so :meth:`prune` keeps it after the alias moves on (for a rollback target).
        """
        name = normalize_key(name)
        alias = _check_alias(alias, name)
        if alias == "latest" or _VERSION_REF.fullmatch(alias):
            raise InvalidKeyError(
                f"{name}@{alias}", "'latest' follows saves and 'vN' names a version; "
                "promote to another alias (production, staging...)")
        version = parse_version(version)
        key = version_key(name, version)
        if not self.store.contains_key(key):
            raise ObjectNotFoundError(key)
        head = self._settled(name, alias)
        current = None if head is None else int(head["to"])
        if isinstance(expect, bool):
            raise TypeError("expect is a version number, None (no target yet) or ANY_TARGET")
        if expect is not ANY_TARGET and expect != current:
            raise AliasConflictError(name, alias, f"points at {_show(current)}, not at "
                                     f"{_show(expect)} as expected", raced=False)
        chosen = self.gates(name, alias) if gates is None else list(gates)
        if chosen:
            from .registry_gates import run_gates

            run_gates(self.store, self.zoo, chosen, name, alias, version, current)
        seq = 1 if head is None else int(head["seq"]) + 1
        entry = {
            "format": ENTRY_FORMAT, "name": name, "alias": alias, "seq": seq,
            "action": "promote", "from": current, "to": version,
            "back": 0 if head is None else int(head["seq"]),
            "when": _now(), "who": actor or _user(), "note": note,
        }
        self._append(name, alias, entry)
        if pin:
            self.pin(name, version, note=note or f"promoted to {alias}")
        return entry

    def rollback(self, name: str, alias: str, *, note: str | None = None,
                 actor: str | None = None) -> dict[str, Any]:
        """Point ``alias`` back at the version it pointed at before its current target was
        set; returns the history entry. Rollbacks stack: a second one goes one step further
        back. Raises :class:`~alphazoo.AliasNotFoundError` when there is nothing earlier and
        :class:`~alphazoo.AliasConflictError` when another writer moved the alias meanwhile.
        """
        name = normalize_key(name)
        alias = _check_alias(alias, name)
        if alias == "latest":
            raise InvalidKeyError(f"{name}@{alias}", "'latest' follows saves and has no "
                                  "history to roll back; promote to another alias and roll "
                                  "that back")
        head = self._settled(name, alias)
        if head is None:
            raise AliasNotFoundError(name, alias)
        back = int(head.get("back") or 0)
        if back == 0:
            raise AliasNotFoundError(name, alias, f"it points at v{head['to']}, its first "
                                     "target: there is no earlier one to roll back to; "
                                     "promote the version you want instead")
        restored = self._entry(name, alias, back)
        if not self.store.contains_key(version_key(name, int(restored["to"]))):
            raise AliasNotFoundError(name, alias, f"it would roll back to v{restored['to']}, "
                                     "which is no longer stored (pruned?); promote a stored "
                                     "version instead, and pin versions to keep for rollbacks")
        entry = {
            "format": ENTRY_FORMAT, "name": name, "alias": alias,
            "seq": int(head["seq"]) + 1, "action": "rollback",
            "from": int(head["to"]), "to": int(restored["to"]),
            "back": int(restored.get("back") or 0),
            "when": _now(), "who": actor or _user(), "note": note,
        }
        return self._append(name, alias, entry)

    def set_gates(self, name: str, alias: str, gates: Sequence[Gate]) -> None:
        """The gates every promotion of ``alias`` passes through from now on; ``[]`` clears
        them. A gate is a built-in's name (``"integrity"``, ``"compat"``, ``"onnx_parity"``)
        or a callable ``(candidate, current) -> bool | str`` (see
        :mod:`alphazoo.registry_gates`). Built-ins are kept in the store, so every process
        and the CLI apply them; callables cannot be stored and hold for this registry object
        only (``zoo.registry`` is one per zoo)."""
        from .registry_gates import check_gate

        chosen = [check_gate(gate) for gate in gates]
        name = normalize_key(name)
        alias = _check_alias(alias, name)
        stored = [gate for gate in chosen if isinstance(gate, str)]
        callables = [gate for gate in chosen if not isinstance(gate, str)]
        key = self._gates_key(name, alias)
        if stored:
            self.store.save_json(key, {"format": "alphazoo-gates/1", "gates": stored})
        else:
            self.store.delete(key)
        if callables:
            self._gates[(name, alias)] = callables
        else:
            self._gates.pop((name, alias), None)

    def gates(self, name: str, alias: str) -> list[Gate]:
        """The gates set for ``alias`` of ``name`` (see :meth:`set_gates`): the built-ins
        kept in the store, then this object's callables."""
        name = normalize_key(name)
        alias = _check_alias(alias, name)
        return self._stored_gates(name, alias) + list(self._gates.get((name, alias), []))

    def _gates_key(self, name: str, alias: str) -> str:
        return f"{name}/{REGISTRY_FOLDER}/gates/{alias}.json"

    def _stored_gates(self, name: str, alias: str) -> list[Gate]:
        from .registry_gates import BUILTIN_GATES

        key = self._gates_key(name, alias)
        record = _read_json_or_none(self.store, key)
        if record is None:
            return []
        gates = record.get("gates") if isinstance(record, dict) else None
        if not isinstance(gates, list) or not all(g in BUILTIN_GATES for g in gates):
            raise RegistryRecordError(key, f"not a list of built-in gates: {gates!r}")
        return list(gates)

    # -- retention -------------------------------------------------------------------------
    def pin(self, name: str, version: int | str, *, note: str | None = None) -> None:
        """Keep ``version`` of ``name`` through every :meth:`prune` until :meth:`unpin`:
        for a version an alias may be rolled back to after it moved on (``promote(...,
        pin=True)`` pins the promoted version). One small object under
        ``_registry/pins/``."""
        name, number = normalize_key(name), parse_version(version)
        key = version_key(name, number)
        if not self.store.contains_key(key):
            raise ObjectNotFoundError(key)
        self.store.save_json(self._pin_key(name, number),
                             {"format": "alphazoo-pin/1", "version": number, "note": note,
                              "when": _now(), "who": _user()}, sort_keys=True)

    def unpin(self, name: str, version: int | str) -> bool:
        """Let :meth:`prune` delete ``version`` again; False when it was not pinned."""
        name, number = normalize_key(name), parse_version(version)
        return bool(self.store.delete(self._pin_key(name, number)))

    def pins(self, name: str) -> list[int]:
        """The pinned versions of ``name``, ascending: one folder listing."""
        name = normalize_key(name)
        found = []
        for key in self.store.list_folder(f"{name}/{REGISTRY_FOLDER}/pins"):
            match = VERSION_NAME.fullmatch(key.rsplit("/", 1)[-1][: -len(".json")])
            if match:
                found.append(int(match.group(1)))
        return sorted(found)

    def _pin_key(self, name: str, version: int) -> str:
        return f"{name}/{REGISTRY_FOLDER}/pins/v{version:06d}.json"

    def prune(self, name: str, keep: int, *, dry_run: bool = True) -> dict[str, Any]:
        """Delete old versions of ``name``, keeping the newest ``keep``, every version an
        alias points at now (``latest`` included) and every pinned one (:meth:`pin`). A version
        an alias pointed at before is not kept unless pinned: rolling back to a pruned
        version raises :class:`~alphazoo.AliasNotFoundError` (pin the versions you may roll
        back to, or ``promote(..., pin=True)``). A dry run by default: nothing is deleted
        unless ``dry_run=False``.

        Returns ``{"name", "dry_run", "keep", "deleted": [versions], "kept": [versions],
        "protected": {version: [reasons]}}`` (``deleted`` lists what a real run deletes).
        The aliases and pins are read once, before deleting; a version promoted while prune
        runs can be deleted: prune when nobody promotes old versions.
        """
        if isinstance(keep, bool) or not isinstance(keep, int) or keep < 0:
            raise RegistryUsageError(f"keep is how many of the newest versions to keep: a "
                                     f"number from 0 up, not {keep!r}")
        name = normalize_key(name)
        numbers = [row["version"] for row in self.versions(name, facts=False)]
        protected: dict[int, list[str]] = {}
        for alias, version in self.aliases(name).items():
            protected.setdefault(version, []).append(f"{alias} points at it")
        for version in self.pins(name):
            protected.setdefault(version, []).append("pinned")
        newest = set(numbers[-keep:]) if keep else set()
        doomed = [n for n in numbers if n not in newest and n not in protected]
        deleted = []
        if not dry_run:
            for number in doomed:
                if self.store.delete(version_key(name, number)):
                    deleted.append(number)
        gone = set(doomed if dry_run else deleted)
        return {
            "name": name, "dry_run": dry_run, "keep": keep,
            "deleted": doomed if dry_run else deleted,
            "kept": [n for n in numbers if n not in gone],
            "protected": {n: reasons for n, reasons in sorted(protected.items())
                          if n in numbers},
        }

    # -- internals -------------------------------------------------------------------------
    def _entry(self, name: str, alias: str, seq: int) -> dict[str, Any]:
        key = self._entry_key(name, alias, seq)
        entry = _record(self.store, key)
        if entry is None:
            raise RegistryRecordError(key, "this history entry is missing; history is "
                                      "append-only and nothing in alphazoo deletes it")
        return entry

    def _append(self, name: str, alias: str, entry: dict[str, Any]) -> dict[str, Any]:
        """Create history entry ``entry["seq"]`` exclusively, then publish it as the head."""
        data = json.dumps(entry, sort_keys=True).encode()
        if not self.store.create_bytes(self._entry_key(name, alias, entry["seq"]), data):
            raise AliasConflictError(name, alias, f"history entry {entry['seq']} was written "
                                     "by another writer first")
        self._publish(name, alias, entry)
        return entry

    def _publish(self, name: str, alias: str, entry: dict[str, Any]) -> dict[str, Any]:
        """Write ``entry`` as the head, then move the head forward over every entry past it
        (see the module docstring: the last head writer has seen no later entry)."""
        while True:
            later = _record(self.store, self._entry_key(name, alias, int(entry["seq"]) + 1))
            if later is not None:  # a faster mover is past this entry: never set it back
                entry = later
                continue
            self.store.save_json(self._head_key(name, alias), entry, sort_keys=True)
            later = _record(self.store, self._entry_key(name, alias, int(entry["seq"]) + 1))
            if later is None:
                return entry
            entry = later

    def _settled(self, name: str, alias: str) -> dict[str, Any] | None:
        """The alias's head, moved forward first over entries a crashed mover (or a mover
        still between its two writes) created past it."""
        head = _record(self.store, self._head_key(name, alias))
        seq = 0 if head is None else int(head["seq"])
        later = _record(self.store, self._entry_key(name, alias, seq + 1))
        if later is None:
            return head
        return self._publish(name, alias, later)


def manifest_facts(store: ObjectStore, key: str) -> dict[str, Any]:
    """What the manifest of the bundle under ``key`` says about it, read from the bundle's
    head (see :mod:`alphazoo.bundle` for the layout) without verifying the payload; an
    unreadable head gives ``{"error": ...}``."""
    from .bundle import MAGIC

    header = struct.Struct(">HQ")  # protocol, manifest length: the layout in alphazoo.bundle
    try:
        with store.open(key) as handle:
            head = handle.read(len(MAGIC) + header.size)
            if not head.startswith(MAGIC) or len(head) < len(MAGIC) + header.size:
                return {"error": "not a model bundle"}
            _, length = header.unpack(head[len(MAGIC):])
            if length > 16 * 1024 * 1024:
                return {"error": "manifest larger than 16 MiB"}
            manifest = json.loads(handle.read(length))
    except (ValueError, OSError) as exc:
        return {"error": f"unreadable manifest: {exc}"}
    if not isinstance(manifest, dict):
        return {"error": "the manifest is not a JSON object"}
    training = manifest.get("training")
    training = training if isinstance(training, dict) else {}
    metadata = manifest.get("metadata")
    metadata = metadata if isinstance(metadata, dict) else {}
    series = metadata.get("training")
    series = series if isinstance(series, dict) else {}
    return {
        "created": manifest.get("created"),
        "window": series.get("window") or training.get("window"),
        "training": {name: training.get(name) for name in ("rows", "seconds", "finished")
                     if name in training},
        "metrics": metadata.get("metrics"),
        "metadata": {name: value for name, value in metadata.items() if name != "training"},
        "adapter": manifest.get("adapter"),
        "format": manifest.get("format"),
        "libraries": manifest.get("libraries"),
    }


def _read_json_or_none(store: ObjectStore, key: str) -> Any:
    try:
        return store.read_json(key)
    except ObjectNotFoundError:
        return None
    except ValueError as exc:  # not JSON (UnicodeDecodeError is a ValueError too)
        raise RegistryRecordError(key, f"not JSON: {exc}") from None


def _record(store: ObjectStore, key: str) -> dict[str, Any] | None:
    """The registry record under ``key`` (None when absent), checked for the fields every
    reader relies on: ``seq``, ``to`` and ``back`` are integers."""
    record = _read_json_or_none(store, key)
    if record is None:
        return None
    if not isinstance(record, dict):
        raise RegistryRecordError(key, f"a JSON {type(record).__name__}, not an object")
    for field in ("seq", "to", "back"):
        value = record.get(field)
        if type(value) is not int or value < 0:
            raise RegistryRecordError(key, f"its {field!r} is {value!r}, not a number")
    return record


def _show(version: Any) -> str:
    return "no version" if version is None else f"v{version}"
