"""The fsspec backend: a store on any fsspec URL (``s3://bucket/prefix``...).

Writes stream to a temporary object under ``<root>/.alphazoo-tmp/`` and are moved into place
when complete, so a failed write never leaves a partial object under the key. Reads that race
an overwrite on S3 raise :class:`~alphazoo.ObjectChangedError` (the store retries whole-object
reads). The lock and the usage record (:mod:`alphazoo.ledger`) are per location and per
process: no lock spans S3 clients. ``memory://`` URLs get
:class:`~alphazoo.memory_backend.MemoryBackend` instead.
"""

from __future__ import annotations

import contextlib
import io
import sys
import threading
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import IO, Any, cast

from .errors import ObjectChangedError
from .leftovers import REMOTE_TMP_DIR, new_token, remote_entry, temp_writer

__all__ = ["FsspecBackend"]

_TMP_DIR = REMOTE_TMP_DIR


class FsspecBackend:
    """Any fsspec file system under a root path (``memory://``, ``s3://bucket/prefix``...).

    The lock is shared by every backend object on the same location in this process, so the
    limits hold for all the stores a process opens on one URL. It is per process: S3 offers
    no cross-client lock, so across several writing processes the limits are best-effort.

    Reads return the old or the new object while a writer replaces it: ``memory://`` reads
    copy the stored bytes (fsspec hands every reader the same file object, sharing one read
    position); an S3 read that finds the object replaced mid-way raises
    :class:`~alphazoo.ObjectChangedError`, which the store's whole-object reads retry.
    """

    def __init__(self, url: str, **storage_options: Any) -> None:
        import fsspec  # only for non-local stores; keeps `import alphazoo` light

        self.fs, root = fsspec.core.url_to_fs(url, **storage_options)
        self.root = root.rstrip("/")
        if not self.root.strip("/"):
            # The file system's root would hold every other store on it (all memory:// stores
            # of the process, a whole bucket listing): a store needs a folder of its own.
            raise ValueError(
                f"store URL {url!r} names no folder; add one, as in memory://NAME or "
                "s3://bucket/prefix"
            )
        self.url = url
        self._memory = "memory" in _protocols(self.fs)
        options = getattr(self.fs, "storage_options", {}) or {}
        location = (type(self.fs).__name__, str(options.get("endpoint_url", "")), self.root)
        self._location = location
        with _LOCATION_LOCKS_GUARD:
            self._lock = _LOCATION_LOCKS.setdefault(location, threading.RLock())

    def _path(self, key: str) -> str:
        return f"{self.root}/{key}" if self.root else key

    def scan(self) -> Iterator[tuple[str, int, bool]]:
        try:
            found = self.fs.find(self.root, detail=True)
        except FileNotFoundError:
            return
        prefix = f"{self.root}/" if self.root else ""
        for path, info in found.items():
            path = path.lstrip("/") if not self.root.startswith("/") else path
            if info.get("type") == "file" and path.startswith(prefix):
                rel = path[len(prefix):]
                temp = remote_entry(rel)
                if temp is not None:
                    yield rel, int(info.get("size") or 0), temp

    def list(self) -> Iterator[tuple[str, int]]:
        return ((name, size) for name, size, temp in self.scan() if not temp)

    def discard_temp(self, relative: str) -> None:
        folder, _, name = relative.partition("/")
        if folder != _TMP_DIR or temp_writer(name) is None:
            raise ValueError(f"{relative!r} is not a temporary file of the store")
        with contextlib.suppress(FileNotFoundError):
            self.fs.rm(self._path(relative))
        self.fs.invalidate_cache()

    def modified(self, relative: str) -> float | None:
        try:
            info = self.fs.info(self._path(relative))
        except (FileNotFoundError, OSError):
            return None
        stamp = info.get("LastModified") or info.get("created") or info.get("mtime")
        if hasattr(stamp, "timestamp"):
            return float(stamp.timestamp())
        return float(stamp) if isinstance(stamp, (int, float)) else None

    def kind(self, key: str) -> str | None:
        path = self._path(key)
        try:
            info = self.fs.info(path)
        except FileNotFoundError:
            return None
        except NotADirectoryError:  # a parent is an object
            return None
        if info.get("type") != "directory":
            return "file"
        # The memory file system keeps "pseudo folders" after their files are deleted; a folder
        # holding no object is no conflict (S3 has no folders but the keys under them).
        if self._memory and not self.fs.find(path):
            return None
        return "dir"

    def size(self, key: str) -> int | None:
        try:
            info = self.fs.info(self._path(key))
        except (FileNotFoundError, NotADirectoryError):
            return None
        if info.get("type") == "directory":
            return None
        return int(info.get("size") or 0)

    def open_read(self, key: str) -> IO[bytes]:
        if self.kind(key) != "file":
            raise FileNotFoundError(key)
        if self._memory:
            # A private copy: fsspec's memory file system gives every reader the one stored
            # file object, so concurrent readers would move each other's read position.
            try:
                data = self.fs.cat_file(self._path(key))
            except (IsADirectoryError, NotADirectoryError) as exc:
                raise FileNotFoundError(key) from exc
            return io.BytesIO(data)
        path = self._path(key)
        # A retry must not reopen with the same stale listing (size, ETag) that expired.
        guarded = _GuardedReader(key, self.fs.open(path, "rb"),
                                 lambda: self.fs.invalidate_cache(path))
        return cast(IO[bytes], guarded)

    def write(self, key: str, chunks: Iterable[bytes | memoryview]) -> bool:
        # Stream into a temporary object, then move it into place: a write that fails half way
        # leaves nothing under the key (closing an fsspec file commits whatever it holds).
        tmp = self._path(f"{_TMP_DIR}/{new_token()}")
        target = self._path(key)
        try:
            with self.fs.open(tmp, "wb") as handle:
                for chunk in chunks:
                    handle.write(chunk)
            if self._memory:
                with contextlib.suppress(ValueError):
                    self.fs.pseudo_dirs.remove(target)  # an empty folder the object replaces
            self.fs.mv(tmp, target)
        except BaseException:
            with contextlib.suppress(Exception):
                self.fs.rm(tmp)
            raise
        finally:
            self.fs.invalidate_cache()
        return False

    def create(self, key: str, chunks: Iterable[bytes | memoryview]) -> bool:
        """An exclusive create. On S3 one conditional PUT (``If-None-Match: *``): S3 itself
        refuses the second of two racing creators, across processes and machines, and a PUT
        is all or nothing. Other file systems check and write under this process's lock:
        exclusive among the stores of one process only."""
        data = b"".join(bytes(chunk) for chunk in chunks)
        path = self._path(key)
        try:
            if self._is_s3():
                try:
                    self.fs.pipe_file(path, data, mode="create")
                except Exception as exc:
                    if _precondition_failed(exc):
                        return False
                    raise
                return True
            with self._lock:
                if self.kind(key) is not None:
                    return False
                self.write(key, [data])
                return True
        finally:
            self.fs.invalidate_cache()

    def read_all(self, key: str) -> bytes:
        """One GET on S3 (an object read whole is never a mix of two versions); other file
        systems read through :meth:`open_read`."""
        if not self._is_s3():
            with self.open_read(key) as handle:
                return handle.read()
        try:
            return bytes(self.fs.cat_file(self._path(key), max_concurrency=1))
        except (IsADirectoryError, NotADirectoryError) as exc:
            raise FileNotFoundError(key) from exc

    def _is_s3(self) -> bool:
        protocols = _protocols(self.fs)
        return "s3" in protocols or "s3a" in protocols

    def list_folder(self, folder: str) -> Iterable[str]:
        path = self._path(folder)
        self.fs.invalidate_cache(path)
        try:
            found = self.fs.ls(path, detail=True)
        except (FileNotFoundError, NotADirectoryError):
            return []
        finally:
            # A cached listing would answer later reads of these objects with their size
            # and ETag now: other processes replace them (an alias's head) meanwhile.
            self.fs.invalidate_cache(path)
        names = []
        for info in found:
            name = str(info.get("name", "")).rstrip("/").rsplit("/", 1)[-1]
            if info.get("type") == "file" and name and not name.startswith("."):
                names.append(f"{folder}/{name}")
        return names

    def delete(self, key: str) -> bool:
        if self.kind(key) != "file":
            return False
        self.fs.rm(self._path(key))
        self.fs.invalidate_cache()
        return True

    def local_path(self, key: str) -> Path | None:
        return None

    def lock(self) -> contextlib.AbstractContextManager[Any]:
        return self._lock

    def read_state(self) -> bytes:
        """The usage record of this location in this process (no LIST per save)."""
        return _LOCATION_STATES.get(self._location, b"")

    def write_state(self, data: bytes) -> None:
        """Replace this process's usage record of the location."""
        _LOCATION_STATES[self._location] = data


#: Usage records (:mod:`alphazoo.ledger`) per fsspec location in this process.
_LOCATION_STATES: dict[tuple[str, str, str], bytes] = {}
#: One lock per fsspec location in this process, shared by every store opened on it.
_LOCATION_LOCKS: dict[tuple[str, str, str], threading.RLock] = {}
_LOCATION_LOCKS_GUARD = threading.Lock()


def _protocols(fs: Any) -> tuple[str, ...]:
    protocol = getattr(fs, "protocol", ())
    return (protocol,) if isinstance(protocol, str) else tuple(protocol)


class _GuardedReader(io.RawIOBase):
    """A remote file whose "replaced while reading" errors become ObjectChangedError.

    s3fs raises ``FileExpired`` when the object's ETag changes between opening and a later
    ranged read, and ``FileNotFoundError`` when it was deleted meanwhile.
    """

    def __init__(self, key: str, handle: Any, on_change: Callable[[], None]) -> None:
        super().__init__()
        self._key = key
        self._handle = handle
        self._on_change = on_change

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        try:
            return self._handle.read(size)
        except OSError as exc:
            if _is_expired(exc) or isinstance(exc, FileNotFoundError):
                self._on_change()
                raise ObjectChangedError(self._key, f"{type(exc).__name__}: {exc}") from exc
            raise

    def readall(self) -> bytes:
        return self.read(-1)

    def readinto(self, buffer: Any) -> int:
        data = self.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)

    def seek(self, offset: int, whence: int = 0) -> int:
        return self._handle.seek(offset, whence)

    def tell(self) -> int:
        return self._handle.tell()

    def seekable(self) -> bool:
        return True

    def close(self) -> None:
        try:
            self._handle.close()
        finally:
            super().close()


def _precondition_failed(exc: BaseException) -> bool:
    """Whether an S3 call failed on its condition (HTTP 412, ``PreconditionFailed``).

    Told by the error's type and code, never by its text (a network error on history entry
    ``000412`` mentions 412 too): s3fs raises ``FileExistsError`` for a failed
    ``If-None-Match``, and otherwise an ``OSError`` caused by botocore's ``ClientError``,
    whose ``response`` carries the code and the HTTP status.
    """
    if isinstance(exc, FileExistsError):
        return True
    seen: BaseException | None = exc
    while seen is not None:
        response = getattr(seen, "response", None)
        if isinstance(response, dict):
            error = response.get("Error")
            code = error.get("Code") if isinstance(error, dict) else None
            metadata = response.get("ResponseMetadata")
            status = metadata.get("HTTPStatusCode") if isinstance(metadata, dict) else None
            if code in ("PreconditionFailed", "412") or status == 412:
                return True
        seen = seen.__cause__ or seen.__context__
    return False


def _is_expired(exc: BaseException) -> bool:
    utils = sys.modules.get("s3fs.utils")
    expired = getattr(utils, "FileExpired", None)
    return expired is not None and isinstance(exc, expired)
