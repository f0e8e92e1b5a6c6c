"""Versioned model keys in the object store: ``<name>/v000001``, ``<name>/v000002``, ...

A store key cannot be both an object and a folder, so a trained model series named
``"spy/gbdt"`` is kept as a folder of versions::

    spy/gbdt/v000001        the first model's bundle
    spy/gbdt/v000002        the next one
    spy/gbdt/latest.json    {"version": 2, "key": "spy/gbdt/v000002", ...}

Each bundle's manifest carries ``metadata["training"]``: the series name, version number, the
training window and when it was trained. ``latest.json`` is written after the bundle it points
to, so a reader never follows it to a missing bundle; :func:`load_latest` loads what it points
to, and :func:`versions` lists the numbers actually stored.

The pointer can lag behind the stored versions (a walk-forward or fan-out that saved some
versions and failed before moving it), so a new number is taken past the pointer and every
version stored after it (:func:`next_version`): an existing bundle is never overwritten. Saving
a version reads the pointer instead of listing the store, so it costs the same in a store of
100,000 objects as in an empty one.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from alphazoo.keys import normalize_key
from alphazoo.series import LATEST, VERSION_NAME, version_key

if TYPE_CHECKING:
    from alphazoo.host import Zoo
    from alphazoo.model_registry import ModelRegistry
    from alphazoo.store import ObjectStore

__all__ = ["version_key", "versions", "latest_version", "next_version", "save_version",
           "load_latest", "write_latest", "promote_saved", "LATEST"]

_VERSION = VERSION_NAME


def versions(store: ObjectStore, name: str) -> list[int]:
    """The version numbers of series ``name`` present in ``store``, ascending."""
    prefix = normalize_key(name) + "/"
    found = []
    for key in store.keys():
        if key.startswith(prefix):
            match = _VERSION.fullmatch(key[len(prefix):])
            if match:
                found.append(int(match.group(1)))
    return sorted(found)


def latest_version(store: ObjectStore, name: str) -> int:
    """The newest version of ``name``: the ``latest.json`` pointer, else the highest stored
    number, else 0."""
    pointer = f"{normalize_key(name)}/{LATEST}"
    if store.contains_key(pointer):
        return int(store.read_json(pointer)["version"])
    stored = versions(store, name)
    return stored[-1] if stored else 0


def next_version(store: ObjectStore, name: str) -> int:
    """The first free version number of ``name`` past the ``latest.json`` pointer, and past
    the versions saved after it that the pointer was never moved to.

    With a pointer this costs one read and one existence check per version saved past it (one,
    normally), whatever the size of the store or the series; only a series without a pointer
    is listed. A version saved past a gap above the pointer (a fan-out that saved v5 and v7,
    failed on v6 and stopped before moving the pointer from v4) is not seen: the next number is
    then v6, which is free, so an existing bundle is still never overwritten.
    """
    pointer = f"{normalize_key(name)}/{LATEST}"
    if not store.contains_key(pointer):
        stored = versions(store, name)
        return (stored[-1] if stored else 0) + 1
    number = int(store.read_json(pointer)["version"]) + 1
    while store.contains_key(version_key(name, number)):
        number += 1
    return number


def write_latest(store: ObjectStore, name: str, version: int, **facts: Any) -> None:
    """Point ``name``'s ``latest.json`` at ``version`` unless it already points at a later one."""
    pointer = f"{normalize_key(name)}/{LATEST}"
    if store.contains_key(pointer) and int(store.read_json(pointer)["version"]) > version:
        return
    store.save_json(pointer, {"version": version, "key": version_key(name, version), **facts})


def save_version(
    zoo: Zoo,
    model: Any,
    name: str,
    *,
    version: int | None = None,
    format: str | None = None,
    window: dict[str, Any] | None = None,
    metadata: dict[str, Any] | None = None,
    update_latest: bool = True,
    **save_options: Any,
) -> tuple[str, dict[str, Any]]:
    """Save ``model`` as the next (or the given) version of series ``name``.

    Returns ``(key, manifest)``; the version defaults to :func:`next_version`. ``window``
    (``{"start": ..., "end": ...}``) and ``metadata`` go into the manifest's ``metadata``;
    ``save_options`` go to :meth:`Zoo.save` (``sample=``, ``sign_key=``...). With
    ``update_latest`` the series' ``latest.json`` is moved to this version after the bundle
    is written.
    """
    store = zoo.store
    if version is None:
        version = next_version(store, name)
    key = version_key(name, version)
    facts = {"series": normalize_key(name), "version": version, "window": window}
    meta = {**(metadata or {}), "training": facts}
    manifest = zoo.save(model, key, format, metadata=meta, **save_options)
    if update_latest:
        write_latest(store, name, version, window=_plain(window))
    return key, manifest


def load_latest(zoo: Zoo, name: str, **load_options: Any) -> Any:
    """Load the newest version of series ``name`` (see :func:`latest_version`)."""
    version = latest_version(zoo.store, name)
    if version == 0:
        from alphazoo.errors import ObjectNotFoundError

        raise ObjectNotFoundError(f"{normalize_key(name)}/v000001")
    return zoo.load(version_key(name, version), **load_options)


def promote_saved(
    registry: ModelRegistry,
    name: str,
    version: int,
    alias: str,
    *,
    note: str | None = None,
    gates: Any = None,
) -> tuple[dict[str, Any] | None, Exception | None]:
    """Promote a version a training just saved: ``registry.promote(name, version, alias)``
    (``registry``: ``zoo.registry``), through ``gates`` (None: the gates set for the
    alias). Returns ``(entry, None)`` when the alias moved, ``(None, error)`` when a gate refused it
    (:class:`~alphazoo.PromotionRefusedError`) or another writer moved the alias first
    (:class:`~alphazoo.AliasConflictError`): not a failed training, the alias stays where it
    was. Both are logged (logger ``"alphazoo.training"``); other errors propagate.
    """
    import logging

    from alphazoo.errors import AliasConflictError, PromotionRefusedError

    try:
        entry = registry.promote(name, version, alias, note=note, gates=gates)
    except (PromotionRefusedError, AliasConflictError) as exc:
        logging.getLogger("alphazoo.training").warning(
            "%s was saved but not promoted to %r: %s", version_key(name, version), alias, exc)
        return None, exc
    return entry, None


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: None if v is None else str(v) for k, v in value.items()}
    return value
