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
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import warnings
import weakref
import xml.etree.ElementTree as ET
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from .backends import Backend, backend_for
from .errors import InvalidKeyError, ObjectNotFoundError, StorageLimitError
from .keys import is_canonical_key, normalize_key

__all__ = ["ObjectStore", "StoreUsage", "TIERS", "DEFAULT_MAX_SIZE", "DEFAULT_MAX_FILES"]

MIB = 1024 * 1024
#: LEAN's local defaults: 10 GiB and 10,000 objects.
DEFAULT_MAX_SIZE = 10 * 1024 * MIB
DEFAULT_MAX_FILES = 10_000
#: LEAN's cloud tiers: (max_size bytes, max_files).
TIERS: dict[str, tuple[int, int]] = {
    "free": (5 * MIB, 100),
    "prime": (50 * MIB, 1_000),
    "professional": (500 * MIB, 10_000),
}
_CHUNK = 1 * MIB


@dataclass(frozen=True)
class StoreUsage:
    """What a store holds against its limits."""

    url: str
    objects: int
    bytes: int
    max_files: int
    max_size: int


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
        (10 GiB, 10,000 objects).
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
        self._backend: Backend = backend_for(location, **(storage_options or {}))
        # Remote stores hand out local copies from get_file_path; they are uploaded when they
        # change (LEAN persists the same way). key -> (path, (mtime_ns, size) last synced)
        self._staged: dict[str, tuple[Path, tuple[int, int] | None]] = {}
        self._staging_dir: Path | None = None
        self._staging_cleanup: weakref.finalize | None = None

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

    def usage(self) -> StoreUsage:
        """Objects and bytes in use, with the limits."""
        self._sync_staged()
        count = total = 0
        for _, size in self._objects():
            count += 1
            total += size
        return StoreUsage(self.url, count, total, self._max_files, self._max_size)

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

    def write_stream(self, key: str, chunks: Iterable[bytes], size: int) -> None:
        """Store ``size`` bytes produced by ``chunks`` under ``key`` without joining them.

        The limits are checked against ``size`` first; the chunks must add up to it.
        """
        key = normalize_key(key)
        backend = self._backend
        with backend.lock():
            self._check_conflicts(key)
            self._check_limits(key, size)
            backend.write(key, _counted(chunks, size, key))
        self._staged.pop(key, None)

    # -- reading -----------------------------------------------------------------------------
    def read(self, key: str) -> str:
        """The text stored under ``key``."""
        return self.read_bytes(key).decode("utf-8")

    def read_bytes(self, key: str) -> bytes:
        """The bytes stored under ``key``; raises :class:`~alphazoo.ObjectNotFoundError`."""
        with self.open(key) as handle:
            return handle.read()

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
        self._staged.pop(key, None)
        with self._backend.lock():
            return self._backend.delete(key)

    def keys(self) -> list[str]:
        """Every key in the store, sorted."""
        self._sync_staged()
        return sorted(key for key, _ in self._objects())

    def clear(self) -> None:
        """Forget this store's cached state; deletes nothing (LEAN's ``IObjectStore.Clear``).

        Changed :meth:`get_file_path` copies are uploaded first (raising as :meth:`sync` does,
        so no pending write is lost), then every cache is dropped: the local copies of remote
        objects and the file system's listing cache. The next read, listing or
        :meth:`get_file_path` sees the store as it is now, including objects another process
        or node saved meanwhile -- what LEAN's docs call ``clear()`` for before re-reading a
        model updated elsewhere. To delete every object use :meth:`delete_all`.
        """
        self._sync_staged(strict=True)
        # Forgotten, not deleted: get_file_path downloads the current object again, and a
        # leftover copy of a key that is gone by then is removed there.
        self._staged.clear()
        # fsspec caches directory listings per file system (s3fs for its whole lifetime):
        # without this another node's saves could stay invisible.
        fs = getattr(self._backend, "fs", None)
        if fs is not None:
            fs.invalidate_cache()

    def delete_all(self) -> int:
        """Delete every object in the store; returns how many were deleted.

        Irreversible; unlike LEAN's ``Clear`` (:meth:`clear`), which only drops caches.
        Pending :meth:`get_file_path` copies are discarded, not uploaded.
        """
        self._staged.clear()
        deleted = 0
        with self._backend.lock():
            for key, _ in list(self._objects()):
                deleted += bool(self._backend.delete(key))
        return deleted

    def get_file_path(self, key: str) -> str:
        """A local file path for ``key`` that other libraries can read and write.

        The parent folder is created. In a folder store the path is the object itself, so a
        file written there is readable under ``key`` at once. In a remote store the path is a
        local copy (downloaded when the object exists) that is uploaded under ``key`` whenever
        the store is next used after the file changed, or on :meth:`sync`/:meth:`close`.

        Limits cannot stop another library writing a file (LEAN has the same gap): in a
        folder store such a file counts from the next save on, which is refused if the store
        is then over a limit; a remote copy is checked when it is uploaded.
        """
        key = normalize_key(key)
        # Checked for every backend: a remote copy under a conflicting key could never be
        # uploaded and would make every later use of the store raise.
        with self._backend.lock():
            self._check_conflicts(key)
        local = self._backend.local_path(key)
        if local is not None:
            local.parent.mkdir(parents=True, exist_ok=True)
            return str(local)
        if key in self._staged:
            return str(self._staged[key][0])
        if self._staging_dir is None:
            self._staging_dir = Path(tempfile.mkdtemp(prefix="alphazoo-staged-"))
            # Runs when the store is closed or collected: says which copies were never
            # uploaded (instead of losing them silently), then removes the folder.
            self._staging_cleanup = weakref.finalize(
                self, _drop_staging, self._staging_dir, self._staged, self.url
            )
        path = self._staging_dir.joinpath(*key.split("/"))
        path.parent.mkdir(parents=True, exist_ok=True)
        synced = None
        if self._backend.kind(key) == "file":
            with self._backend.open_read(key) as src, open(path, "wb") as dst:
                while chunk := src.read(_CHUNK):
                    dst.write(chunk)
            synced = _signature(path)
        elif path.is_file():
            # A copy left from before the object was deleted (or the store cleared) must not
            # be uploaded again as if the caller had written it.
            path.unlink()
        self._staged[key] = (path, synced)
        return str(path)

    def close(self) -> None:
        """Upload changed :meth:`get_file_path` copies, then remove them (remote stores).

        ``with ObjectStore(url) as store:`` closes on exit. A store collected without
        ``close()`` warns about copies it never uploaded.
        """
        self._sync_staged(strict=True)
        if self._staging_cleanup is not None:
            self._staging_cleanup()
            self._staging_dir = self._staging_cleanup = None
        self._staged.clear()

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
        return sum(1 for _ in self._objects())

    def __iter__(self) -> Iterator[str]:
        return iter(self.keys())

    def __repr__(self) -> str:
        return f"ObjectStore({self.url!r}, max_size={self._max_size}, max_files={self._max_files})"

    # -- internals ---------------------------------------------------------------------------
    def _objects(self) -> Iterator[tuple[str, int]]:
        return ((key, size) for key, size in self._backend.list() if is_canonical_key(key))

    def _check_conflicts(self, key: str) -> None:
        # An object cannot also be a folder of objects: "a" and "a/b" cannot both exist.
        backend = self._backend
        if backend.kind(key) == "dir":
            raise InvalidKeyError(key, "other objects are stored under this key as a folder")
        parts = key.split("/")
        for depth in range(1, len(parts)):
            parent = "/".join(parts[:depth])
            if backend.kind(parent) == "file":
                raise InvalidKeyError(key, f"{parent!r} is an object, so it cannot be a folder")

    def _check_limits(self, key: str, size: int) -> None:
        count = total = 0
        replaced = 0
        exists = False
        for existing, existing_size in self._objects():
            count += 1
            total += existing_size
            if existing == key:
                exists, replaced = True, existing_size
        new_count = count if exists else count + 1
        if new_count > self._max_files:
            raise StorageLimitError(key, "max_files", count, 1, self._max_files)
        if total - replaced + size > self._max_size:
            raise StorageLimitError(key, "max_size", total - replaced, size, self._max_size)

    def _sync_staged(self, only: str | None = None, strict: bool = False) -> None:
        for key, (path, synced) in list(self._staged.items()):
            if only is not None and key != only:
                continue
            current = _changed(path, synced)
            if current is None:
                continue
            try:
                with open(path, "rb") as handle:
                    self.write_stream(key, iter(lambda: handle.read(_CHUNK), b""), current[1])
            except (StorageLimitError, InvalidKeyError) as exc:
                if strict:
                    raise
                warnings.warn(f"{path} was not uploaded: {exc}", stacklevel=3)
                continue
            self._staged[key] = (path, current)


def _drop_staging(folder: Path, staged: dict[str, tuple[Path, Any]], url: str) -> None:
    pending = [key for key, (path, synced) in staged.items() if _changed(path, synced)]
    if pending:
        warnings.warn(
            f"{len(pending)} file(s) from get_file_path were changed but never uploaded to "
            f"{url}: {', '.join(sorted(pending))}; call store.sync() or store.close()",
            ResourceWarning, stacklevel=2,
        )
    shutil.rmtree(folder, ignore_errors=True)


def _changed(path: Path, synced: tuple[int, int] | None) -> tuple[int, int] | None:
    """The copy's signature when it exists and differs from the last upload, else None."""
    current = _signature(path)
    return current if current is not None and current != synced else None


def _signature(path: Path) -> tuple[int, int] | None:
    try:
        stat = path.stat()
    except FileNotFoundError:
        return None
    return stat.st_mtime_ns, stat.st_size


def _counted(chunks: Iterable[bytes], size: int, key: str) -> Iterator[bytes]:
    # The limit check trusted `size`; refuse a stream that turns out longer or shorter.
    written = 0
    for chunk in chunks:
        written += len(chunk)
        if written > size:
            raise ValueError(f"write to {key!r} produced more than the {size} bytes announced")
        yield chunk
    if written != size:
        raise ValueError(f"write to {key!r} produced {written} bytes, {size} were announced")
