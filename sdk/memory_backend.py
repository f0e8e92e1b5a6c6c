"""The ``memory://`` backend: fsspec's process-wide memory file system, used through its dict.

fsspec's own calls on that file system (``info``, ``open``, ``mv``, ``rm``) each scan every
path it holds, so a save cost time in proportion to everything in memory. This backend works
on the file system's ``store`` dict directly: an object is looked up, written (one dict
assignment, so readers see the old or the new object) and deleted in constant time, and "is
there a folder of objects at this key" is answered from an index of folders kept per location.

The index and the usage record (:mod:`alphazoo.ledger`) are this process's, like the memory
file system. They are dropped and rebuilt when the number of paths in the file system is not
what the last change made through a store left, which is how files written or removed through
fsspec itself (not through a store) are noticed; a change that keeps that number (one file
removed and another added behind the store's back) is counted at the next ``usage()``.
"""

from __future__ import annotations

import contextlib
import io
import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from .leftovers import REMOTE_TMP_DIR, remote_entry, temp_writer

__all__ = ["MemoryBackend"]

#: One lock for every memory:// store of the process: the index bookkeeping spans them all.
_LOCK = threading.RLock()


@dataclass
class _Index:
    """A location's folders (relative path -> files below it) and its usage record."""

    folders: dict[str, int] = field(default_factory=dict)
    state: bytes = b""


_INDEXES: dict[str, _Index] = {}
#: The file system's path count after the last change made through a MemoryBackend.
_SEEN: list[int | None] = [None]


class MemoryBackend:
    """A folder of fsspec's ``memory://`` file system (see the module docstring)."""

    def __init__(self, url: str, **storage_options: Any) -> None:
        import fsspec  # only for memory stores; keeps `import alphazoo` light

        self.fs, root = fsspec.core.url_to_fs(url, **storage_options)
        self.root = root.rstrip("/")
        if not self.root.strip("/"):
            # The file system's root would hold every other memory store of the process.
            raise ValueError(f"store URL {url!r} names no folder; add one, as in memory://NAME")
        self.url = url
        self._files: dict[str, Any] = self.fs.store
        self._prefix = f"{self.root}/"

    def _index(self) -> _Index:
        """This location's index, rebuilt when the file system changed behind the stores."""
        if len(self._files) != _SEEN[0]:
            _INDEXES.clear()
            _SEEN[0] = len(self._files)
        index = _INDEXES.get(self.root)
        if index is None:
            index = _INDEXES[self.root] = _Index()
            for path in tuple(self._files):
                if path.startswith(self._prefix):
                    _count_folders(index.folders, path[len(self._prefix):], 1)
        return index

    def _path(self, key: str) -> str:
        return self._prefix + key

    def scan(self) -> Iterator[tuple[str, int, bool]]:
        with _LOCK:
            found = [(path[len(self._prefix):], handle.size)
                     for path, handle in tuple(self._files.items())
                     if path.startswith(self._prefix)]
        for relative, size in found:
            temp = remote_entry(relative)
            if temp is not None:
                yield relative, size, temp

    def list(self) -> Iterator[tuple[str, int]]:
        return ((name, size) for name, size, temp in self.scan() if not temp)

    def discard_temp(self, relative: str) -> None:
        folder, _, name = relative.partition("/")
        if folder != REMOTE_TMP_DIR or temp_writer(name) is None:
            raise ValueError(f"{relative!r} is not a temporary file of the store")
        self._remove(relative)

    def modified(self, relative: str) -> float | None:
        handle = self._files.get(self._path(relative))
        stamp = getattr(handle, "modified", None) or getattr(handle, "created", None)
        return stamp.timestamp() if stamp is not None else None

    def kind(self, key: str) -> str | None:
        with _LOCK:
            if self._path(key) in self._files:
                return "file"
            # A pseudo folder holding no object is no conflict: write() replaces it.
            return "dir" if self._index().folders.get(key) else None

    def size(self, key: str) -> int | None:
        handle = self._files.get(self._path(key))
        return None if handle is None else int(handle.size)

    def open_read(self, key: str) -> IO[bytes]:
        # A private copy: the file system hands every reader the one stored file object, so
        # concurrent readers would move each other's read position.
        handle = self._files.get(self._path(key))
        if handle is None:
            raise FileNotFoundError(key)
        return io.BytesIO(bytes(handle.getbuffer()))

    def write(self, key: str, chunks: Iterable[bytes | memoryview]) -> bool:
        from fsspec.implementations.memory import MemoryFile

        target = self._path(key)
        # Filled first and put in place by one assignment: a write that fails half way
        # leaves nothing under the key, and readers never see a partial object.
        buffer = MemoryFile(self.fs, target)
        for chunk in chunks:
            buffer.write(chunk)
        buffer.seek(0)
        with _LOCK:
            index = self._index()
            with contextlib.suppress(ValueError):
                self.fs.pseudo_dirs.remove(target)  # an empty folder the object replaces
            if target not in self._files:
                _count_folders(index.folders, key, 1)
                _SEEN[0] = len(self._files) + 1
            buffer.commit()
        return False

    def delete(self, key: str) -> bool:
        return self._remove(key)

    def create(self, key: str, chunks: Iterable[bytes | memoryview]) -> bool:
        """An exclusive create: the existence check and the commit happen under the lock
        every memory store of the process shares."""
        from fsspec.implementations.memory import MemoryFile

        target = self._path(key)
        buffer = MemoryFile(self.fs, target)
        for chunk in chunks:
            buffer.write(chunk)
        buffer.seek(0)
        with _LOCK:
            if target in self._files:
                return False
            index = self._index()
            with contextlib.suppress(ValueError):
                self.fs.pseudo_dirs.remove(target)
            _count_folders(index.folders, key, 1)
            _SEEN[0] = len(self._files) + 1
            buffer.commit()
        return True

    def list_folder(self, folder: str) -> Iterable[str]:
        prefix = self._path(folder) + "/"
        with _LOCK:
            paths = tuple(self._files)
        return [path[len(self._prefix):] for path in paths
                if path.startswith(prefix) and "/" not in path[len(prefix):]]

    def _remove(self, relative: str) -> bool:
        with _LOCK:
            index = self._index()
            if self._files.pop(self._path(relative), None) is None:
                return False
            _count_folders(index.folders, relative, -1)
            _SEEN[0] = len(self._files)
            return True

    def local_path(self, key: str) -> Path | None:
        return None

    def lock(self) -> contextlib.AbstractContextManager[Any]:
        return _LOCK

    def read_state(self) -> bytes:
        """The usage record of this location in this process."""
        with _LOCK:
            return self._index().state

    def write_state(self, data: bytes) -> None:
        """Replace the usage record of this location."""
        with _LOCK:
            self._index().state = data


def _count_folders(folders: dict[str, int], relative: str, step: int) -> None:
    """Add ``step`` to the file count of every folder above ``relative``."""
    end = relative.find("/")
    while end != -1:
        folder = relative[:end]
        count = folders.get(folder, 0) + step
        if count > 0:
            folders[folder] = count
        else:
            folders.pop(folder, None)
        end = relative.find("/", end + 1)
