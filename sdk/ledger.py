"""The usage ledger: a store's object count and bytes, kept as state its writes update.

Checking a limit by listing the whole store made every save cost time in proportion to the
store (quadratic to fill one). Instead the store keeps its usage in a small record that each
save and delete updates under the same lock that serialises writers, so a limit check reads
one record and stats one key.

Where the record lives is the backend's business (:meth:`read_state`/:meth:`write_state`):

- a folder store keeps it in its lock file, ``.alphazoo.lock``, read and rewritten while the
  lock is held, so it is exact for every process writing the folder;
- ``memory://`` and S3 keep it in this process (one record per location, shared by every
  store opened on it): exact within the process. See :class:`~alphazoo.ObjectStore` for what
  holds across processes on S3.

The record is never trusted blindly. A store recounts (one full listing) and rewrites it when

- it is missing or damaged (a checksum over the record; an old store's empty lock file);
- it is marked *pending*: every change writes the mark before touching an object and clears
  it with the new figures afterwards, so a writer killed in between leaves the mark, and the
  next user recounts;
- it was written before this host last booted (a power loss can lose the last update);
- a limit would refuse a save: a refusal is confirmed by a recount first, so a record that
  counts too much never refuses a save that fits;
- ``usage()`` is called (it recounts and repairs) or ``fsck`` removes leftovers.

Files written behind the store's back through :meth:`~alphazoo.ObjectStore.get_file_path`
are watched: the record lists the keys whose paths were handed out with the size it counted
for each, and each limit check stats those keys and folds in what changed. A file changed by
hand in any other way is counted at the next recount.
"""

from __future__ import annotations

import json
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

from .leftovers import boot_identity, host_identity

__all__ = ["Counts", "Ledger", "StateHolder", "WATCH_LIMIT"]

_FORMAT = "alphazoo-usage/1"
#: The most get_file_path keys a record watches; the oldest is dropped beyond it (a recount,
#: e.g. ``usage()``, counts a file written there later).
WATCH_LIMIT = 256


class StateHolder(Protocol):
    """Where a backend keeps the ledger's record (called with the store's lock held)."""

    def read_state(self) -> bytes:
        """The record as last written, or ``b""`` when there is none."""

    def write_state(self, data: bytes) -> None:
        """Replace the record (``b""`` drops it)."""

    def size(self, key: str) -> int | None:
        """The object's size, None when there is no object under ``key``."""


@dataclass(frozen=True)
class Counts:
    """Objects and bytes a store holds, and temporary files of unfinished writes."""

    objects: int
    bytes: int
    temp_files: int = 0
    temp_bytes: int = 0
    #: get_file_path keys and the size each was last counted with (None: no object).
    watch: dict[str, int | None] = field(default_factory=dict)

    def updated(self, key: str, before: int | None, after: int | None) -> Counts:
        """These counts after the object under ``key`` went from ``before`` bytes to
        ``after`` (None: no object), a watched key's entry included."""
        watch = self.watch if key not in self.watch else {**self.watch, key: after}
        return replace(self, objects=self.objects + (after is not None) - (before is not None),
                       bytes=self.bytes + (after or 0) - (before or 0), watch=watch)


class Ledger:
    """The usage record of one store: load (validated), store, mark pending, drop.

    ``recount`` lists the store and returns exact counts; the ledger calls it whenever the
    record cannot be trusted and writes the result.
    """

    def __init__(self, holder: StateHolder, recount: Callable[[], Counts]) -> None:
        self._holder = holder
        self._recount = recount

    def current(self) -> tuple[Counts, bool]:
        """``(counts, fresh)``: the record's counts with watched keys refreshed, or a
        recount's (``fresh`` True) when the record is missing, damaged, pending or stale."""
        counts = self._load()
        if counts is None:
            return self.recount(), True
        return counts, False

    def recount(self, watch: dict[str, int | None] | None = None) -> Counts:
        """Count the store from scratch and write the record (watching the same keys)."""
        previous = _decode(self._holder.read_state())
        counts = self._recount()
        keys = list((previous[0].watch if previous else {}) | (watch or {}))
        counts = replace(counts, watch={key: self._holder.size(key) for key in keys})
        self.store(counts)
        return counts

    def store(self, counts: Counts, *, pending: bool = False) -> None:
        """Write ``counts``; ``pending`` marks a change under way (a crash forces a recount)."""
        self._holder.write_state(_encode(counts, pending))

    def watch(self, counts: Counts, key: str) -> Counts:
        """``counts`` also watching ``key`` (a path handed out), counted at its size now."""
        watch = dict(counts.watch)
        watch.pop(key, None)
        watch[key] = self._holder.size(key)
        while len(watch) > WATCH_LIMIT:
            del watch[next(iter(watch))]
        return replace(counts, watch=watch)

    def invalidate(self) -> None:
        """Drop the record: the next use recounts."""
        self._holder.write_state(b"")

    def _load(self) -> Counts | None:
        decoded = _decode(self._holder.read_state())
        if decoded is None or decoded[1]:
            return None
        counts = original = decoded[0]
        for key, counted in original.watch.items():
            now = self._holder.size(key)
            if now != counted:
                counts = counts.updated(key, counted, now)
        if counts is not original:
            self.store(counts)
        return counts


def _encode(counts: Counts, pending: bool) -> bytes:
    body = json.dumps({
        "format": _FORMAT, "host": host_identity(), "boot": boot_identity(),
        "pending": pending,
        "objects": counts.objects, "bytes": counts.bytes,
        "temp_files": counts.temp_files, "temp_bytes": counts.temp_bytes,
        "watch": counts.watch,
    }, separators=(",", ":")).encode()
    return body + b"\n" + b"%08x" % zlib.crc32(body)


def _decode(data: bytes) -> tuple[Counts, bool] | None:
    """``(counts, pending)`` from a record, or None when it is missing, damaged or stale."""
    body, _, check = data.rpartition(b"\n")
    if not body or check != b"%08x" % zlib.crc32(body):
        return None
    try:
        record: Any = json.loads(body)
        if record.get("format") != _FORMAT:
            return None
        if record.get("host") == host_identity() and record.get("boot") != boot_identity():
            return None  # written before this host last booted: the last update may be lost
        numbers = [record[name] for name in ("objects", "bytes", "temp_files", "temp_bytes")]
        watch = record["watch"]
        if (not all(type(n) is int and n >= 0 for n in numbers)
                or not isinstance(watch, dict)
                or not all(v is None or type(v) is int for v in watch.values())):
            return None
        objects, size, temp_files, temp_bytes = numbers
        return Counts(objects, size, temp_files, temp_bytes, watch), bool(record["pending"])
    except (ValueError, KeyError, TypeError, AttributeError):
        return None
