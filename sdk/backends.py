"""Where an :class:`~alphazoo.ObjectStore` keeps its bytes.

Two backends cover every URL:

- :class:`LocalBackend` -- a folder. An object is a plain file at ``root/<key>``, so models
  are browsable and :meth:`ObjectStore.get_file_path` is the object itself. Writes go to a
  temporary file in the same folder, are fsynced and renamed over the target (readers see the
  old object or the new one, never a torn one); a lock file serialises the limit check and the
  rename across processes.
- :class:`FsspecBackend` -- any fsspec URL (``memory://``, ``s3://bucket/prefix``...). Writes
  stream to a temporary path and are moved into place when complete, so a failed write never
  leaves a partial object under the key.

Backends deal in normalized keys only; validation and limits live in the store.
"""

from __future__ import annotations

import contextlib
import os
import stat
import threading
import urllib.parse
import urllib.request
import uuid
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import IO, Any, Protocol

try:  # POSIX; elsewhere the lock is per process only (documented on LocalBackend)
    import fcntl
except ImportError:  # pragma: no cover - not on this platform
    fcntl = None  # type: ignore[assignment]

__all__ = ["Backend", "LocalBackend", "FsspecBackend", "backend_for"]

_TMP_DIR = ".alphazoo-tmp"
_LOCK_FILE = ".alphazoo.lock"


class Backend(Protocol):
    """The operations a store backend provides (all keys already normalized)."""

    url: str

    def list(self) -> Iterator[tuple[str, int]]:
        """Yield ``(relative path, size)`` for every file; the store filters out non-keys."""

    def kind(self, key: str) -> str | None:
        """``"file"``, ``"dir"`` or None when nothing is at ``key``."""

    def size(self, key: str) -> int | None:
        """The object's size in bytes, or None when it does not exist."""

    def open_read(self, key: str) -> IO[bytes]:
        """Open the object for reading; raises FileNotFoundError when it does not exist."""

    def write(self, key: str, chunks: Iterable[bytes]) -> None:
        """Write the object atomically from ``chunks``."""

    def delete(self, key: str) -> bool:
        """Remove the object; False when it did not exist."""

    def local_path(self, key: str) -> Path | None:
        """The object's own file on the local disk, or None for remote backends."""

    def lock(self) -> contextlib.AbstractContextManager[Any]:
        """A lock held around check-then-write sequences."""


class LocalBackend:
    """A folder on the local disk.

    The lock uses ``fcntl.flock`` on a file in the root, so several processes writing into one
    store respect its limits together; on platforms without ``fcntl`` it only serialises
    threads of one process.
    """

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root).expanduser().absolute()
        self.url = str(self.root)
        self._thread_lock = threading.RLock()

    def _path(self, key: str) -> Path:
        return self.root.joinpath(*key.split("/"))

    def list(self) -> Iterator[tuple[str, int]]:
        # Plain strings and os.scandir, not pathlib: every save lists the store for its limit
        # check, and pathlib's parsing was most of that cost in a store of thousands of objects.
        root = str(self.root)
        stack = [""]
        while stack:
            relative = stack.pop()
            try:
                with os.scandir(os.path.join(root, relative) if relative else root) as found:
                    entries = list(found)
            except (FileNotFoundError, NotADirectoryError):  # gone meanwhile, or no root yet
                continue
            for entry in entries:
                if entry.name.startswith("."):
                    continue  # temporary files, the lock file
                name = f"{relative}/{entry.name}" if relative else entry.name
                try:
                    if entry.is_dir(follow_symlinks=False):
                        stack.append(name)
                    elif entry.is_file():
                        yield name, entry.stat().st_size
                except FileNotFoundError:
                    continue

    def kind(self, key: str) -> str | None:
        path = self._path(key)
        if path.is_file():
            return "file"
        # An empty folder (left by get_file_path, say) holds no objects: it is no conflict, and
        # write() replaces it.
        if path.is_dir():
            with os.scandir(path) as entries:
                if any(entries):
                    return "dir"
        return None

    def size(self, key: str) -> int | None:
        try:
            info = self._path(key).stat()
        except (FileNotFoundError, NotADirectoryError):
            return None
        return info.st_size if stat.S_ISREG(info.st_mode) else None

    def open_read(self, key: str) -> IO[bytes]:
        try:
            return open(self._path(key), "rb")
        except (IsADirectoryError, NotADirectoryError) as exc:
            raise FileNotFoundError(key) from exc

    def write(self, key: str, chunks: Iterable[bytes]) -> None:
        target = self._path(key)
        # Folders this write creates, deepest first: a failed write removes them again, or an
        # empty folder left at "a" would make a later save("a") look like a key conflict.
        created = []
        folder = target.parent
        while folder != self.root and not folder.exists():
            created.append(folder)
            folder = folder.parent
        target.parent.mkdir(parents=True, exist_ok=True)
        if target.is_dir():
            target.rmdir()  # empty (the store checked for conflicts): the object takes its place
        tmp = target.parent / f".{target.name}.{uuid.uuid4().hex}.tmp"
        try:
            with open(tmp, "wb") as handle:
                for chunk in chunks:
                    handle.write(chunk)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp, target)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()
            for folder in created:
                try:
                    folder.rmdir()
                except OSError:  # not empty (someone else uses it) or already gone
                    break
            raise
        _fsync_dir(target.parent)

    def delete(self, key: str) -> bool:
        path = self._path(key)
        try:
            path.unlink()
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
            return False
        except PermissionError:  # macOS reports unlink() of a folder this way
            if path.is_dir():
                return False
            raise
        # Tidy empty parent folders so `keys()` and the folder view stay in step.
        parent = path.parent
        while parent != self.root:
            try:
                parent.rmdir()
            except OSError:
                break
            parent = parent.parent
        return True

    def local_path(self, key: str) -> Path | None:
        return self._path(key)

    @contextlib.contextmanager
    def lock(self) -> Iterator[None]:
        with self._thread_lock:
            if fcntl is None:  # pragma: no cover
                yield
                return
            self.root.mkdir(parents=True, exist_ok=True)
            with open(self.root / _LOCK_FILE, "a+b") as handle:
                fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
                try:
                    yield
                finally:
                    fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


class FsspecBackend:
    """Any fsspec file system under a root path (``memory://``, ``s3://bucket/prefix``...).

    The lock is per process: S3 offers no cross-client lock, so limits are exact for one
    writing process and best-effort across several.
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
        self._lock = threading.RLock()

    def _path(self, key: str) -> str:
        return f"{self.root}/{key}" if self.root else key

    def list(self) -> Iterator[tuple[str, int]]:
        try:
            found = self.fs.find(self.root, detail=True)
        except FileNotFoundError:
            return
        prefix = f"{self.root}/" if self.root else ""
        for path, info in found.items():
            path = path.lstrip("/") if not self.root.startswith("/") else path
            if info.get("type") == "file" and path.startswith(prefix):
                rel = path[len(prefix):]
                if not any(part.startswith(".") for part in rel.split("/")):
                    yield rel, int(info.get("size") or 0)

    def kind(self, key: str) -> str | None:
        path = self._path(key)
        try:
            info = self.fs.info(path)
        except FileNotFoundError:
            return None
        return "dir" if info.get("type") == "directory" else "file"

    def size(self, key: str) -> int | None:
        try:
            info = self.fs.info(self._path(key))
        except FileNotFoundError:
            return None
        if info.get("type") == "directory":
            return None
        return int(info.get("size") or 0)

    def open_read(self, key: str) -> IO[bytes]:
        if self.kind(key) != "file":
            raise FileNotFoundError(key)
        return self.fs.open(self._path(key), "rb")

    def write(self, key: str, chunks: Iterable[bytes]) -> None:
        # Stream into a temporary object, then move it into place: a write that fails half way
        # leaves nothing under the key (closing an fsspec file commits whatever it holds).
        tmp = self._path(f"{_TMP_DIR}/{uuid.uuid4().hex}")
        try:
            with self.fs.open(tmp, "wb") as handle:
                for chunk in chunks:
                    handle.write(chunk)
            self.fs.mv(tmp, self._path(key))
        except BaseException:
            with contextlib.suppress(Exception):
                self.fs.rm(tmp)
            raise
        finally:
            self.fs.invalidate_cache()

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


def backend_for(location: str | os.PathLike[str], **storage_options: Any) -> Backend:
    """The backend for a folder path or URL: plain paths, ``file:`` and ``local:`` are local."""
    text = os.fspath(location)
    parsed = urllib.parse.urlsplit(text)
    if parsed.scheme in ("file", "local"):
        if parsed.netloc not in ("", "localhost"):
            raise ValueError(f"{text!r} names another host; a folder store must be local")
        return LocalBackend(urllib.request.url2pathname(parsed.path))
    if "://" in text:
        return FsspecBackend(text, **storage_options)
    return LocalBackend(text)


def _fsync_dir(folder: Path) -> None:
    # Make the rename itself durable; not every platform can open a folder for this.
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:  # pragma: no cover
        return
    try:
        os.fsync(fd)
    except OSError:  # pragma: no cover
        pass
    finally:
        os.close(fd)
