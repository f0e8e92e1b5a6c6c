"""Where an :class:`~alphazoo.ObjectStore` keeps its bytes.

Three backends cover every URL:

- :class:`LocalBackend` -- a folder. An object is a plain file at ``root/<key>``, so models
  are browsable and :meth:`ObjectStore.get_file_path` is the object itself. Writes go to a
  temporary file in the same folder, are fsynced and renamed over the target (readers see the
  old object or the new one, never a torn one); a lock file serialises the limit check and the
  rename across processes. No path is used whose resolved form leaves the root.
- :class:`~alphazoo.fsspec_backend.FsspecBackend` -- any other fsspec URL
  (``s3://bucket/prefix``...). Writes stream to a temporary path and are moved into place
  when complete, so a failed write never leaves a partial object under the key.
- :class:`~alphazoo.memory_backend.MemoryBackend` -- ``memory://``, on fsspec's memory file
  system's dict directly (fsspec's own calls there scan every path in memory).

Each keeps the store's usage record (:mod:`alphazoo.ledger`) through ``read_state`` and
``write_state``: a folder store in its lock file, the others in the process.

Temporary names come from :mod:`alphazoo.leftovers`, so a writer killed half way leaves a file
that names its writer. Backends deal in normalized keys only; validation and limits live in the
store.
"""

from __future__ import annotations

import contextlib
import os
import stat
import threading
import urllib.parse
import urllib.request
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import IO, Any, Protocol

from .errors import KeyConflictError, KeyEscapeError
from .fsspec_backend import FsspecBackend
from .leftovers import temp_file_name, temp_writer
from .memory_backend import MemoryBackend

try:  # POSIX; elsewhere the lock is per process only (documented on LocalBackend)
    import fcntl
except ImportError:  # pragma: no cover - not on this platform
    fcntl = None  # type: ignore[assignment]

__all__ = ["Backend", "LocalBackend", "FsspecBackend", "MemoryBackend", "backend_for",
           "prune_empty_folders", "write_in_slices", "WRITE_SLICE"]

_LOCK_FILE = ".alphazoo.lock"


class Backend(Protocol):
    """The operations a store backend provides (all keys already normalized)."""

    url: str

    def scan(self) -> Iterator[tuple[str, int, bool]]:
        """Yield ``(relative path, size, is_temporary)`` for every object file and every
        temporary file of a write; the store filters out names that are not keys."""

    def list(self) -> Iterator[tuple[str, int]]:
        """Yield ``(relative path, size)`` for every file but temporary ones."""

    def discard_temp(self, relative: str) -> None:
        """Remove a temporary file found by :meth:`scan` (and folders it leaves empty)."""

    def modified(self, relative: str) -> float | None:
        """The modification time (epoch seconds) of a file found by :meth:`scan`, if known."""

    def kind(self, key: str) -> str | None:
        """``"file"``, ``"dir"`` or None when nothing is at ``key``."""

    def size(self, key: str) -> int | None:
        """The object's size in bytes, or None when it does not exist."""

    def open_read(self, key: str) -> IO[bytes]:
        """Open the object for reading; raises FileNotFoundError when it does not exist."""

    def write(self, key: str, chunks: Iterable[bytes | memoryview]) -> bool:
        """Write the object atomically from ``chunks``; True when temporary files of dead
        writers were removed on the way (a folder of leftovers at the key)."""

    def delete(self, key: str) -> bool:
        """Remove the object; False when it did not exist."""

    def read_all(self, key: str) -> bytes:
        """The whole object, in one request where the backend has requests (one GET on S3,
        never a mix of two versions); raises FileNotFoundError when there is no object."""

    def create(self, key: str, chunks: Iterable[bytes | memoryview]) -> bool:
        """Write the object only when nothing is under ``key`` (an exclusive create: of
        several writers racing on one key exactly one gets True); False, writing nothing,
        when an object is already there. See each backend for what makes it atomic."""

    def list_folder(self, folder: str) -> Iterable[str]:
        """The keys of the objects directly in ``folder`` (not in its subfolders), unsorted;
        empty when there is no such folder."""

    def local_path(self, key: str) -> Path | None:
        """The object's own file on the local disk, ready to be written (its folder made), or
        None for remote backends."""

    def lock(self) -> contextlib.AbstractContextManager[Any]:
        """A lock held around check-then-write sequences."""

    def read_state(self) -> bytes:
        """The store's usage record (:mod:`alphazoo.ledger`), ``b""`` when there is none;
        called with :meth:`lock` held."""

    def write_state(self, data: bytes) -> None:
        """Replace the usage record (``b""`` drops it); called with :meth:`lock` held."""


class LocalBackend:
    """A folder on the local disk.

    The lock uses ``fcntl.flock`` on a file in the root, so several processes writing into one
    store respect its limits together; on platforms without ``fcntl`` it only serialises
    threads of one process. The lock is re-entrant within one backend object.

    Symbolic links: every path is resolved before use, and one that resolves outside the
    root raises :class:`~alphazoo.KeyEscapeError` (a link planted in the root cannot make the
    store read, write or delete files elsewhere). Links that stay inside the root work as
    the folders they point to; a link leading out is skipped when listing. The check runs
    before each operation: someone who can swap a folder for a link in between can still
    race it, so keep the root writable only by the store's users.
    """

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root).expanduser().absolute()
        self.url = str(self.root)
        self._real_root = os.path.realpath(self.root)
        self._thread_lock = threading.RLock()
        self._depth = 0  # lock() nesting in this object; only the outermost takes the flock
        self._lock_fd: int | None = None  # the lock file while the flock is held
        self._state: bytes = b""  # the usage record where there is no fcntl (per process)

    def _path(self, key: str) -> Path:
        path = self.root.joinpath(*key.split("/"))
        real = self._resolve(key, path)
        if not self._inside(real):
            raise KeyEscapeError(
                key, f"its path {str(path)!r} resolves to {real!r} through a symbolic link "
                f"that leads outside the store's root {self._real_root!r}; alphazoo never "
                "follows links out of the root"
            )
        return path

    def _resolve(self, key: str, path: Path) -> str:
        """``os.path.realpath(path)``, looking only at the root and the key's own components
        when none of them is a link (the common case: a few lstat calls instead of one per
        folder from ``/`` down, which were most of a small save's work)."""
        root = str(self.root)
        if root != self._real_root:  # the root was reached through a link when opened
            return os.path.realpath(path)
        current = root
        for part in ("", *key.split("/")):
            current = f"{current}{os.sep}{part}" if part else current
            try:
                mode = os.lstat(current).st_mode
            except (FileNotFoundError, NotADirectoryError):
                break  # nothing below a missing component can be a link
            if stat.S_ISLNK(mode):
                return os.path.realpath(path)
        return os.path.normpath(str(path))

    def _inside(self, real: str) -> bool:
        root = self._real_root
        return real == root or real.startswith(root.rstrip(os.sep) + os.sep)

    def scan(self) -> Iterator[tuple[str, int, bool]]:
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
                name = f"{relative}/{entry.name}" if relative else entry.name
                try:
                    if entry.name.startswith("."):
                        # Hidden: the lock file, other programs' files, or a write's temporary
                        # file (the only kind reported, so crash leftovers are counted).
                        if temp_writer(entry.name) is not None and entry.is_file(
                            follow_symlinks=False
                        ):
                            yield name, entry.stat(follow_symlinks=False).st_size, True
                        continue
                    if entry.is_symlink() and not self._inside(os.path.realpath(entry.path)):
                        continue  # never report (or count) a file outside the root
                    if entry.is_dir(follow_symlinks=False):
                        stack.append(name)
                    elif entry.is_file():
                        yield name, entry.stat().st_size, False
                except FileNotFoundError:
                    continue

    def list(self) -> Iterator[tuple[str, int]]:
        return ((name, size) for name, size, temp in self.scan() if not temp)

    def discard_temp(self, relative: str) -> None:
        path = self.root.joinpath(*relative.split("/"))
        if temp_writer(path.name) is None:  # only ever alphazoo's own temporary files
            raise ValueError(f"{relative!r} is not a temporary file of the store")
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
        prune_empty_folders(path.parent, self.root)

    def modified(self, relative: str) -> float | None:
        try:
            return os.lstat(self.root.joinpath(*relative.split("/"))).st_mtime
        except OSError:
            return None

    def kind(self, key: str) -> str | None:
        path = self._path(key)
        if path.is_file():
            return "file"
        # A folder holding no object (left empty by get_file_path, or holding only a killed
        # writer's temporary files) is no conflict: write() replaces it.
        if path.is_dir() and self._occupied(path):
            return "dir"
        return None

    def _occupied(self, folder: Path) -> bool:
        """Whether ``folder`` holds anything but temporary files and folders of those."""
        stack = [str(folder)]
        while stack:
            try:
                with os.scandir(stack.pop()) as entries:
                    for entry in entries:
                        if entry.is_dir(follow_symlinks=False):
                            stack.append(entry.path)
                        elif temp_writer(entry.name) is None:
                            return True
            except (FileNotFoundError, NotADirectoryError):
                continue
        return False

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

    def write(self, key: str, chunks: Iterable[bytes | memoryview]) -> bool:
        target = self._path(key)
        # Folders this write creates, deepest first: a failed write removes them again, or an
        # empty folder left at "a" would make a later save("a") look like a key conflict.
        created = []
        folder = target.parent
        while folder != self.root and not folder.exists():
            created.append(folder)
            folder = folder.parent
        try:
            # Only when missing: a mkdir of an existing folder still costs a system call that
            # takes the parent's lock (a tenth of a small model's save on a busy machine).
            # Writes run under the store's lock, so a folder seen here is not deleted meanwhile.
            if created or not target.parent.is_dir():
                target.parent.mkdir(parents=True, exist_ok=True)
        except (FileExistsError, NotADirectoryError) as exc:  # a file where a folder must be
            raise KeyConflictError(key, f"a file is in the way of its folder: {exc}") from None
        if target.is_symlink():
            raise KeyConflictError(key, f"{str(target)!r} is a symbolic link to a folder; the "
                                   "store does not replace links with objects")
        cleared = False
        if target.is_dir():
            # Holds no object (the store checked for conflicts), at most the temporary files
            # of writers that died: under the store's lock no live writer is mid-way there.
            cleared = self._clear_ghost(key, target)
        tmp = target.parent / temp_file_name(target.name)
        try:
            with open(tmp, "wb") as handle:
                write_into = getattr(chunks, "write_into", None)
                if write_into is not None:  # a bundle that writes its head last (bundle.py)
                    write_into(handle)
                else:
                    for chunk in chunks:
                        write_in_slices(handle, chunk)
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
        return cleared

    def create(self, key: str, chunks: Iterable[bytes | memoryview]) -> bool:
        """An exclusive create: the bytes go to a fsynced temporary file that is then
        hard-linked to the key, which fails when the key exists; another process sees no
        object or the complete one, never a torn one, and of two racing creators exactly one
        links. Without hard links (some network or FAT file systems) the object is written
        with ``O_EXCL``, exclusive still, but a crash mid-write can leave it short."""
        target = self._path(key)
        created = []  # folders this create makes, deepest first (a history's first entry)
        folder = target.parent
        while folder != self.root and not folder.exists():
            created.append(folder)
            folder = folder.parent
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
        except (FileExistsError, NotADirectoryError) as exc:  # a file where a folder must be
            raise KeyConflictError(key, f"a file is in the way of its folder: {exc}") from None
        if os.path.lexists(target):
            return False
        tmp = target.parent / temp_file_name(target.name)
        try:
            with open(tmp, "wb") as handle:
                for chunk in chunks:
                    write_in_slices(handle, chunk)
                handle.flush()
                os.fsync(handle.fileno())
            try:
                os.link(tmp, target)
            except FileExistsError:
                return False
            except OSError:  # pragma: no cover - a file system without hard links
                try:
                    fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
                except FileExistsError:
                    return False
                with open(fd, "wb") as handle, open(tmp, "rb") as source:
                    handle.write(source.read())
                    handle.flush()
                    os.fsync(handle.fileno())
        finally:
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()
        _fsync_dir(target.parent)
        for made in created:  # each new folder's entry in its parent, child before parent
            _fsync_dir(made.parent)
        return True

    def read_all(self, key: str) -> bytes:
        with self.open_read(key) as handle:
            return handle.read()

    def list_folder(self, folder: str) -> Iterable[str]:
        try:
            with os.scandir(self._path(folder)) as entries:
                return [f"{folder}/{entry.name}" for entry in entries
                        if not entry.name.startswith(".") and entry.is_file()]
        except (FileNotFoundError, NotADirectoryError):
            return []

    def _clear_ghost(self, key: str, folder: Path) -> bool:
        """Remove a folder holding only temporary files; True when it held any."""
        found = False
        for below, _, names in os.walk(folder, topdown=False):
            for name in names:
                if temp_writer(name) is None:
                    raise KeyConflictError(key, f"the folder {str(folder)!r} holds {name!r}, "
                                           "which is not an object of this store")
                found = True
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(os.path.join(below, name))
            with contextlib.suppress(FileNotFoundError):
                os.rmdir(below)
        return found

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
        prune_empty_folders(path.parent, self.root)
        return True

    def local_path(self, key: str) -> Path | None:
        """The object's own file, ready for another library to write: its folder made, and an
        empty folder (or one holding only dead writers' temporary files) at the key removed.
        Call it under :meth:`lock`, after the store checked the key for conflicts."""
        path = self._path(key)
        if path.is_symlink() and path.is_dir():
            raise KeyConflictError(key, f"{str(path)!r} is a symbolic link to a folder; the "
                                   "store does not replace links with objects")
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except (FileExistsError, NotADirectoryError) as exc:  # a file where a folder must be
            raise KeyConflictError(key, f"a file is in the way of its folder: {exc}") from None
        if path.is_dir():
            self._clear_ghost(key, path)
        return path

    @contextlib.contextmanager
    def lock(self) -> Iterator[None]:
        with self._thread_lock:
            if fcntl is None or self._depth:  # pragma: no cover - no fcntl; or nested
                self._depth += 1
                try:
                    yield
                finally:
                    self._depth -= 1
                return
            if not self.root.is_dir():
                self.root.mkdir(parents=True, exist_ok=True)
            path = self.root / _LOCK_FILE
            try:
                # O_NOFOLLOW: a link planted as the lock file must not create a file elsewhere.
                fd = os.open(path, os.O_RDWR | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0)
                             | getattr(os, "O_CLOEXEC", 0), 0o644)
            except OSError:
                if os.path.islink(path):
                    raise KeyEscapeError(_LOCK_FILE, f"the store's lock file {str(path)!r} is "
                                         "a symbolic link; remove it") from None
                raise
            try:
                fcntl.flock(fd, fcntl.LOCK_EX)
                self._depth += 1
                self._lock_fd = fd
                try:
                    yield
                finally:
                    self._lock_fd = None
                    self._depth -= 1
                    fcntl.flock(fd, fcntl.LOCK_UN)
            finally:
                os.close(fd)

    def read_state(self) -> bytes:
        """The usage record, kept in the lock file: read under the flock, so every process
        writing the folder sees the last one's update."""
        fd = self._lock_fd
        if fd is None:  # pragma: no cover - no fcntl: the record is this process's
            return self._state
        return os.pread(fd, os.fstat(fd).st_size, 0)

    def write_state(self, data: bytes) -> None:
        """Rewrite the record in place. A writer killed between the two calls leaves a tail
        of the old record, which fails the record's checksum: the next user recounts."""
        fd = self._lock_fd
        if fd is None:  # pragma: no cover - no fcntl
            self._state = data
            return
        os.pwrite(fd, data, 0)
        os.ftruncate(fd, len(data))


def backend_for(location: str | os.PathLike[str], **storage_options: Any) -> Backend:
    """The backend for a folder path or URL: plain paths, ``file:`` and ``local:`` are local."""
    text = os.fspath(location)
    parsed = urllib.parse.urlsplit(text)
    if parsed.scheme in ("file", "local"):
        if parsed.netloc not in ("", "localhost"):
            raise ValueError(f"{text!r} names another host; a folder store must be local")
        return LocalBackend(urllib.request.url2pathname(parsed.path))
    if parsed.scheme == "memory":
        return MemoryBackend(text, **storage_options)
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


def prune_empty_folders(parent: Path, root: Path) -> None:
    """Remove ``parent`` and its ancestors while they are empty, stopping at ``root``.

    What a removed file leaves behind: an empty folder would read as a key prefix (a folder
    store's listing, a get_file_path copy's tree) that no object holds any more.
    """
    while parent != root and root in parent.parents:
        try:
            parent.rmdir()
        except OSError:  # not empty (or already gone): the ancestors stay too
            break
        parent = parent.parent


#: The largest single ``write`` call: see :func:`write_in_slices`.
WRITE_SLICE = 1024 * 1024


def write_in_slices(handle: IO[bytes], data: bytes | bytearray | memoryview) -> None:
    """Write ``data`` in calls of at most :data:`WRITE_SLICE` bytes.

    Measured on ext4 here: one ``write`` of a 7.5 MB payload after an fsync'd one took 11 ms
    in some runs (every save after the first few) where 1 MiB calls took 1.5 ms, steadily.
    """
    if len(data) <= WRITE_SLICE:
        handle.write(data)
        return
    view = memoryview(data)
    for start in range(0, len(view), WRITE_SLICE):
        handle.write(view[start:start + WRITE_SLICE])
