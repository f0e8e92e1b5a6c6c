"""The Object Store: LEAN's key-value store for models and data, in Python spelling.

>>> store = ObjectStore("memory://doc")
>>> store.save("notes/today.txt", "buy low")
True
>>> store.read("notes/today.txt"), "notes/today.txt" in store, len(store)
('buy low', True, 1)

Values are bytes underneath; ``save``/``read`` use UTF-8 text, ``save_json``/``read_json`` JSON,
``save_xml``/``read_xml`` an :class:`xml.etree.ElementTree.Element`. Keys follow
:mod:`alphazoo.keys`. Limits (total bytes, number of objects) are checked before anything is
written and a refused save raises :class:`~alphazoo.StorageLimitError` with the store unchanged.
A key that collides with a folder of other keys raises :class:`~alphazoo.KeyConflictError`;
temporary files a crashed writer left count against the limits until the store's first use
after the crash, or :meth:`ObjectStore.fsck`, removes them (see :mod:`alphazoo.leftovers`).
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import time
import warnings
import xml.etree.ElementTree as ET
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

from .backends import Backend, LocalBackend, backend_for
from .errors import (
    InvalidKeyError,
    KeyConflictError,
    ObjectChangedError,
    ObjectNotFoundError,
    StorageLimitError,
)
from .keys import is_canonical_key, normalize_key
from .ledger import Counts, Ledger
from .leftovers import (
    FsckReport,
    Leftover,
    is_gone,
    staging_leftovers,
    temp_writer,
    writer_dead,
    writer_state,
)
from .staging import LocalCopies, signature
from .store_limits import (
    DEFAULT_MAX_FILES,
    DEFAULT_MAX_SIZE,
    MIB,
    TIERS,
    StoreUsage,
    counted,
    limit_error,
)

# StoreUsage, TIERS and the default limits live in alphazoo.store_limits; they stay importable
# from here, where they were first published.
__all__ = ["ObjectStore"]

_CHUNK = 1 * MIB
#: Whole-object reads retry this often when a writer replaces the object under them (S3).
_READ_ATTEMPTS = 5


class ObjectStore:
    """A key-value store for models and data with LEAN's API, keys and limits.

    Parameters
    ----------
    location:
        A folder path, ``memory://name`` (process-wide, for tests) or any fsspec URL such as
        ``s3://bucket/prefix`` (install ``alphazoo[s3]``). Default: ``$ALPHAZOO_STORE`` or
        ``./storage``.
    max_size, max_files:
        Limits in bytes and objects. Default: the ``tier`` preset, else LEAN's local limits
        (10 GiB, 10,000 objects). Checked in constant time against a usage record that
        saves update (:mod:`alphazoo.ledger`). Exact for every process writing a folder
        store (the record lives in its lock file), for every store on one ``memory://`` name
        or URL within a process; across processes on S3 best-effort (each process keeps its
        own record; no lock spans S3 clients; :meth:`clear` recounts). Crash leftovers count
        until removed.
    tier:
        ``"free"`` (5 MiB/100), ``"prime"`` (50 MiB/1,000) or ``"professional"``
        (500 MiB/10,000), LEAN's cloud tiers.
    storage_options:
        Passed to fsspec for URL stores (``endpoint_url``, ``key``, ``secret``...).
    """

    def __init__(
        self,
        location: str | os.PathLike[str] | None = None,
        *,
        max_size: int | None = None,
        max_files: int | None = None,
        tier: str | None = None,
        storage_options: dict[str, Any] | None = None,
    ) -> None:
        if tier is not None and tier not in TIERS:
            raise ValueError(f"unknown tier {tier!r}; choose one of {', '.join(TIERS)}")
        tier_size, tier_files = TIERS[tier] if tier else (DEFAULT_MAX_SIZE, DEFAULT_MAX_FILES)
        self._max_size = int(max_size if max_size is not None else tier_size)
        self._max_files = int(max_files if max_files is not None else tier_files)
        if self._max_size < 0 or self._max_files < 0:
            raise ValueError("max_size and max_files must not be negative")
        if location is None:
            location = os.environ.get("ALPHAZOO_STORE") or "./storage"
        self._storage_options = dict(storage_options or {})
        self._backend: Backend = backend_for(location, **self._storage_options)
        # Remote stores hand out local copies from get_file_path; they are uploaded when they
        # change (LEAN persists the same way).
        self._copies = LocalCopies(self._backend.url)
        self._swept = False  # crash leftovers are looked for at the first listing only
        # Usage kept as state that writes update (see alphazoo.ledger): limit checks cost
        # the same in a store of 100,000 objects as in an empty one.
        self._ledger = Ledger(self._backend, self._count)

    # -- limits ------------------------------------------------------------------------------
    @property
    def max_size(self) -> int:
        """The most bytes the store may hold."""
        return self._max_size

    @property
    def max_files(self) -> int:
        """The most objects the store may hold."""
        return self._max_files

    @property
    def url(self) -> str:
        """Where the store lives (a folder or URL)."""
        return self._backend.url

    @property
    def storage_options(self) -> dict[str, Any]:
        """The fsspec options the store was opened with (a copy): with :attr:`url`, what
        another process needs to open the same store."""
        return dict(self._storage_options)

    @property
    def folder(self) -> Path | None:
        """The local folder a folder store lives in (whether or not it exists yet); None for
        memory:// and remote stores."""
        backend = self._backend
        return backend.root if isinstance(backend, LocalBackend) else None

    def usage(self, *, recount: bool = True) -> StoreUsage:
        """Objects and bytes in use, with the limits.

        By default the store is listed and counted, and the usage record that limit checks
        read is repaired from the count (files changed by hand are counted from here on).
        ``recount=False`` returns that record instead, in constant time: the figures the
        next save is checked against (the record is itself recounted when it is missing,
        damaged, or left marked by a writer that crashed mid-save; see
        :mod:`alphazoo.ledger`).
        """
        self._sync_staged()
        folder = self.folder
        if folder is not None and not folder.is_dir():
            counts = Counts(0, 0)  # no folder yet: nothing to count, and nothing to create
        else:
            with self._backend.lock():
                counts = self._ledger.recount() if recount else self._counts()[0]
        return StoreUsage(self.url, counts.objects, counts.bytes, self._max_files,
                          self._max_size, counts.temp_files, counts.temp_bytes)

    def fsck(self, *, remove: bool = False, older_than: float | None = None) -> FsckReport:
        """Find the temporary files crashed writers left, and remove them with ``remove=True``.

        Looks at the store's temporary files and at :meth:`get_file_path` staging folders in
        the temporary directory (those of every remote store on this machine). A leftover is
        *gone* when its writer process is dead (see :mod:`alphazoo.leftovers`); one written on
        another host (a shared bucket) is gone only when ``older_than`` seconds are given and
        it is older. Without ``remove`` nothing is changed (a dry run). The store's first
        listing in a process removes the dead writers' files on its own; ``fsck`` is for
        looking, for other hosts' leftovers and for long-running processes.
        """
        now = time.time()
        found = []
        _, temps = self._scan(sweep=False)  # a dry run must not even create the lock file
        for relative, size in temps:
            writer = temp_writer(relative.rsplit("/", 1)[-1])
            state = writer_state(writer) if writer is not None else "unknown"
            modified = self._backend.modified(relative)
            age = now - modified if modified is not None else None
            found.append(Leftover(relative, size, state, age, is_gone(state, age, older_than)))
        if remove and any(item.gone for item in found):
            # Under the lock: removing a dead writer's file also prunes empty folders, which
            # must not race a live writer creating its folder.
            with self._backend.lock():
                for index, item in enumerate(found):
                    if item.gone:
                        self._backend.discard_temp(item.where)
                        found[index] = dataclasses.replace(item, removed=True)
                self._ledger.invalidate()  # the removed files counted in the usage record
        found.extend(staging_leftovers(remove=remove, older_than=older_than))
        return FsckReport(self.url, tuple(found))

    # -- writing -----------------------------------------------------------------------------
    def save(self, key: str, text: str) -> bool:
        """Store ``text`` (UTF-8) under ``key``."""
        if not isinstance(text, str):
            raise TypeError(f"save() stores text; use save_bytes() for {type(text).__name__}")
        return self.save_bytes(key, text.encode("utf-8"))

    def save_bytes(self, key: str, data: bytes | bytearray | memoryview) -> bool:
        """Store raw bytes under ``key``; returns True (LEAN's convention)."""
        data = memoryview(data).cast("B")
        self.write_stream(key, [data], len(data))
        return True

    def save_json(self, key: str, obj: Any, **dumps_kwargs: Any) -> bool:
        """Store ``obj`` as JSON under ``key``."""
        return self.save(key, json.dumps(obj, **dumps_kwargs))

    def save_xml(self, key: str, xml: ET.Element | str) -> bool:
        """Store an ElementTree element (or an XML string, checked to parse) under ``key``."""
        if isinstance(xml, ET.Element):
            text = ET.tostring(xml, encoding="unicode")
        elif isinstance(xml, str):
            ET.fromstring(xml)  # refuse malformed XML before it is stored
            text = xml
        else:
            raise TypeError(f"save_xml() takes an Element or str, not {type(xml).__name__}")
        return self.save(key, text)

    def write_stream(self, key: str, chunks: Iterable[bytes | memoryview], size: int) -> None:
        """Store ``size`` bytes produced by ``chunks`` under ``key`` without joining them.

        The limits are checked against ``size`` first; the chunks must add up to it.
        """
        key = normalize_key(key)
        self._put(key, chunks, size)
        self._copies.drop(key)  # the saved bytes win over an older get_file_path copy

    def _put(self, key: str, chunks: Iterable[bytes | memoryview], size: int) -> None:
        backend = self._backend
        ledger = self._ledger
        with backend.lock():
            self._check_conflicts(key)
            counts, replaced = self._check_limits(key, size)
            # Marked before the object changes, cleared with the new figures after: a writer
            # killed in between (or a write that raised) leaves the mark, and the next user
            # of the store recounts.
            ledger.store(counts, pending=True)
            cleared = backend.write(key, counted(chunks, size, key))
            if cleared:  # leftovers at the key went with the folder they were in
                ledger.invalidate()
            else:
                ledger.store(counts.updated(key, replaced, size))

    def create_bytes(self, key: str, data: bytes | bytearray | memoryview) -> bool:
        """Store ``data`` under ``key`` only when no object is there: an exclusive create.

        Of several writers creating one key at once, exactly one gets True and its bytes are
        the object; the others get False and wrote nothing. Exclusive across processes on a
        folder store (a hard link of a finished file) and on S3 (a conditional PUT), within
        the process on ``memory://`` and other fsspec file systems. Counted against the
        limits like any save.
        """
        key = normalize_key(key)
        data = memoryview(data).cast("B")
        backend = self._backend
        ledger = self._ledger
        with backend.lock():
            if backend.size(key) is not None:
                return False
            self._check_conflicts(key)
            counts, replaced = self._check_limits(key, len(data))
            ledger.store(counts, pending=True)
            created = backend.create(key, [data])
            ledger.store(counts.updated(key, replaced, len(data)) if created else counts)
        self._copies.drop(key)
        return created

    def list_folder(self, folder: str) -> list[str]:
        """The keys directly in ``folder`` (``"spy/gbdt"`` lists ``spy/gbdt/v000001``, not
        ``spy/gbdt/old/v000001``), sorted: one folder read, whatever the store's size."""
        folder = normalize_key(folder)
        return sorted(key for key in self._backend.list_folder(folder) if is_canonical_key(key))

    # -- reading -----------------------------------------------------------------------------
    def read(self, key: str) -> str:
        """The text stored under ``key``."""
        return self.read_bytes(key).decode("utf-8")

    def read_bytes(self, key: str) -> bytes:
        """The bytes stored under ``key``; raises :class:`~alphazoo.ObjectNotFoundError`.

        Returns the object as it was before or after a concurrent overwrite, never a mix:
        on S3 the object comes in one GET; on other remote file systems a read that races a
        writer is retried, and raises :class:`~alphazoo.ObjectChangedError` only when every
        attempt raced one.
        """
        key = normalize_key(key)
        self._sync_staged(key)
        for attempt in range(_READ_ATTEMPTS):
            try:
                # One request on S3 (a GET of the whole object): a small object such as a
                # registry alias's head, polled by live models, costs one round trip.
                return self._backend.read_all(key)
            except FileNotFoundError:
                raise ObjectNotFoundError(key) from None
            except ObjectChangedError:
                if attempt == _READ_ATTEMPTS - 1:
                    raise
        raise AssertionError("unreachable")  # pragma: no cover

    def read_json(self, key: str) -> Any:
        """The JSON value stored under ``key``."""
        return json.loads(self.read_bytes(key))

    def read_xml(self, key: str) -> ET.Element:
        """The XML stored under ``key``, parsed into an Element."""
        return ET.fromstring(self.read_bytes(key))

    @contextmanager
    def open(self, key: str) -> Iterator[IO[bytes]]:
        """Open the object under ``key`` as a binary stream (for large objects)."""
        key = normalize_key(key)
        self._sync_staged(key)
        try:
            handle = self._backend.open_read(key)
        except FileNotFoundError:
            raise ObjectNotFoundError(key) from None
        with handle:
            yield handle

    def size(self, key: str) -> int:
        """The size in bytes of the object under ``key``."""
        key = normalize_key(key)
        self._sync_staged(key)
        size = self._backend.size(key)
        if size is None:
            raise ObjectNotFoundError(key)
        return size

    # -- keys --------------------------------------------------------------------------------
    def contains_key(self, key: str) -> bool:
        """True when an object is stored under ``key``."""
        try:
            key = normalize_key(key)
        except InvalidKeyError:
            return False
        self._sync_staged(key)
        return self._backend.kind(key) == "file"

    def delete(self, key: str) -> bool:
        """Remove the object under ``key``; False when there was none."""
        key = normalize_key(key)
        self._copies.drop(key)
        backend = self._backend
        with backend.lock():
            size = backend.size(key)
            if size is None:
                return False
            counts = self._counts()[0]
            self._ledger.store(counts, pending=True)
            deleted = backend.delete(key)
            self._ledger.store(counts.updated(key, size, None) if deleted else counts)
            return deleted

    def keys(self) -> list[str]:
        """Every key in the store, sorted."""
        self._sync_staged()
        return sorted(key for key, _ in self._scan()[0])

    def clear(self) -> None:
        """Forget this store's cached state; deletes nothing (LEAN's ``IObjectStore.Clear``).

        Changed :meth:`get_file_path` copies are uploaded first (raising as :meth:`sync` does,
        so no pending write is lost), then every cache is dropped: the local copies of remote
        objects and the file system's listing cache. The next read, listing or
        :meth:`get_file_path` sees the store as it is now, including objects another process
        or node saved meanwhile -- what LEAN's docs call ``clear()`` for before re-reading a
        model updated elsewhere. A path handed out before stays a copy of its key: a file
        written there afterwards is uploaded. To delete every object use :meth:`delete_all`.
        """
        # fsspec caches directory listings per file system (s3fs for its whole lifetime), and
        # remote stores keep their usage per process: both are dropped first, so that the
        # uploads below and every later check see other nodes' saves too.
        fs = getattr(self._backend, "fs", None)
        if fs is not None:
            fs.invalidate_cache()
        with self._backend.lock():
            self._ledger.invalidate()
        self._sync_staged(strict=True)
        # Uploaded above, so deleting the copies' files loses nothing: get_file_path downloads
        # the current object again. Their keys stay known, so a path handed out before is
        # still uploaded if it is written after clear().
        self._copies.forget_contents()
        if fs is not None:
            fs.invalidate_cache()

    def delete_all(self) -> int:
        """Delete every object in the store; returns how many were deleted.

        Irreversible; unlike LEAN's ``Clear`` (:meth:`clear`), which only drops caches.
        Pending :meth:`get_file_path` copies are discarded, not uploaded. Temporary files of
        writers that died are removed too (a live writer's are kept).
        """
        self._copies.drop_all()
        deleted = 0
        with self._backend.lock():
            # Sweep again: a writer that died after this store's first listing left files
            # that would keep counting against the limits of a store just emptied.
            self._swept = False
            for key, _ in self._scan()[0]:
                deleted += bool(self._backend.delete(key))
            self._ledger.invalidate()
        return deleted

    def get_file_path(self, key: str) -> str:
        """A local file path for ``key`` that other libraries can read and write.

        The parent folder is created. In a folder store the path is the object itself, so a
        file written there is readable under ``key`` at once. In a remote store the path is a
        local copy (downloaded when the object exists) that is uploaded under ``key`` whenever
        the store is next used after the file changed, or on :meth:`sync`/:meth:`close`;
        :meth:`delete` or a save of the key drops the copy.

        A key that collides with an object or a folder of objects (``a/b`` when ``a`` is an
        object, ``a`` when ``a/b`` is one), in the store or among the pending copies, raises
        :class:`~alphazoo.KeyConflictError`.

        Limits cannot stop another library writing a file (LEAN has the same gap): in a
        folder store such a file counts from the next save on, which is refused if the store
        is then over a limit; a remote copy is checked when it is uploaded.
        """
        key = normalize_key(key)
        # Checked for every backend: a remote copy under a conflicting key could never be
        # uploaded and would make every later use of the store raise.
        with self._backend.lock():
            self._check_conflicts(key)
            counts = self._counts()[0] if self.folder is not None else None
            local = self._backend.local_path(key)
            if local is not None and counts is not None:
                # Another library writes this file behind the store's back: the usage
                # record watches the key and counts what it finds there at each check.
                if counts.temp_files:  # local_path may have removed a folder of leftovers
                    self._ledger.recount(watch={key: None})
                else:
                    self._ledger.store(self._ledger.watch(counts, key))
        if local is not None:
            return str(local)
        existing = self._copies.existing(key)
        if existing is not None:
            return str(existing)
        path = self._copies.prepare(key)
        synced = None
        for attempt in range(_READ_ATTEMPTS):
            try:
                synced = self._download(key, path)
                break
            except ObjectChangedError:
                if attempt == _READ_ATTEMPTS - 1:
                    raise
        self._copies.record(key, path, synced)
        return str(path)

    def _download(self, key: str, path: Path) -> tuple[int, int] | None:
        """Copy the object to ``path``; None (and no file) when there is no object."""
        try:
            if self._backend.kind(key) != "file":
                raise FileNotFoundError(key)
            with self._backend.open_read(key) as src, open(path, "wb") as dst:
                while chunk := src.read(_CHUNK):
                    dst.write(chunk)
        except FileNotFoundError:
            # No object (or deleted meanwhile): a copy left from before must not be uploaded
            # again as if the caller had written it.
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
            return None
        return signature(path)

    def close(self) -> None:
        """Upload changed :meth:`get_file_path` copies, then remove them (remote stores).

        ``with ObjectStore(url) as store:`` closes on exit. A store collected without
        ``close()`` warns about copies it never uploaded.
        """
        self._sync_staged(strict=True)
        self._copies.close()

    def __enter__(self) -> ObjectStore:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def sync(self) -> None:
        """Upload local copies from :meth:`get_file_path` that changed (remote stores).

        Raises :class:`~alphazoo.StorageLimitError` (a copy does not fit) or
        :class:`~alphazoo.InvalidKeyError` (its key became a folder's name); the implicit
        uploads before other calls only warn and keep the copy, so one bad copy does not break
        every read.
        """
        self._sync_staged(strict=True)

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and self.contains_key(key)

    def __len__(self) -> int:
        self._sync_staged()
        return len(self._scan()[0])

    def __iter__(self) -> Iterator[str]:
        return iter(self.keys())

    def __repr__(self) -> str:
        return f"ObjectStore({self.url!r}, max_size={self._max_size}, max_files={self._max_files})"

    # -- internals ---------------------------------------------------------------------------
    def _scan(self, sweep: bool = True) -> tuple[list[tuple[str, int]], list[tuple[str, int]]]:
        """``(objects, temporary files)`` as ``(path, size)``, in one listing.

        The first listing of this store object removes temporary files whose writer is dead
        (a crash leftover): that is "the next open" after a crash, and costs nothing when
        there are none. Later listings only count them.
        """
        objects, temps = [], []
        for path, size, temp in self._backend.scan():
            if temp:
                temps.append((path, size))
            elif is_canonical_key(path):
                objects.append((path, size))
        if sweep and not self._swept:
            self._swept = True
            dead = {path for path, _ in temps if writer_dead(path)}
            if dead:
                with self._backend.lock():
                    for path in dead:
                        self._backend.discard_temp(path)
                    self._ledger.invalidate()
                temps = [(path, size) for path, size in temps if path not in dead]
        return objects, temps

    def _count(self) -> Counts:
        """Exact usage from a full listing (what the usage record is rebuilt from)."""
        objects, temps = self._scan()
        return Counts(len(objects), sum(size for _, size in objects),
                      len(temps), sum(size for _, size in temps))

    def _counts(self) -> tuple[Counts, bool]:
        """The usage record's counts and whether they were just recounted (call under the
        lock). This store's first use recounts when the record says crash leftovers exist,
        so that the dead writers' files are removed (what "the next open" after a crash
        does)."""
        counts, fresh = self._ledger.current()
        if not fresh and not self._swept and counts.temp_files:
            return self._ledger.recount(), True
        return counts, fresh

    def _check_conflicts(self, key: str) -> None:
        # An object cannot also be a folder of objects: "a" and "a/b" cannot both exist.
        backend = self._backend
        if backend.kind(key) == "dir":
            raise KeyConflictError(key, "other objects are stored under this key as a folder")
        parts = key.split("/")
        for depth in range(1, len(parts)):
            parent = "/".join(parts[:depth])
            # size(), not kind(): whether a folder holds objects does not matter here, and
            # finding out would read the folder (a full one holds thousands of objects).
            if backend.size(parent) is not None:
                raise KeyConflictError(
                    key, f"{parent!r} is an object, so it cannot be a folder", parent)

    def _check_limits(self, key: str, size: int) -> tuple[Counts, int | None]:
        """The counts a save of ``size`` bytes under ``key`` starts from, and the size of the
        object it replaces; raises StorageLimitError when it does not fit."""
        counts, fresh = self._counts()
        replaced = self._backend.size(key)
        while True:
            error = limit_error(key, size, counts, replaced, max_files=self._max_files,
                                max_size=self._max_size)
            if error is None:
                return counts, replaced
            if fresh:
                raise error
            # A refusal is confirmed by a count: a record that counts too much (a file
            # removed by hand) must not refuse a save that fits.
            counts, fresh = self._ledger.recount(), True

    def _sync_staged(self, only: str | None = None, strict: bool = False) -> None:
        for key, path, current in self._copies.changed(only):
            try:
                with open(path, "rb") as handle:
                    self._put(key, iter(lambda: handle.read(_CHUNK), b""), current[1])
            except (StorageLimitError, InvalidKeyError) as exc:
                if strict:
                    raise
                warnings.warn(f"{path} was not uploaded: {exc}", stacklevel=3)
                continue
            self._copies.record(key, path, current)
