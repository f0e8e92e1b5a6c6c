"""The local copies a remote store's :meth:`~alphazoo.ObjectStore.get_file_path` hands out.

A library that wants a file path (``keras.saving.save_model``, ``xgboost.save_model``) gets a
copy in a staging folder in the temporary directory; the store uploads it when it changed.
The copies follow the store's key rules: a pending copy of ``a`` and one of ``a/b`` cannot
both exist (:class:`~alphazoo.KeyConflictError`), and deleting or saving a key drops its copy,
so no stale file or folder is left to collide with later keys.

The staging folder's name carries a writer token (see :mod:`alphazoo.leftovers`): the first
folder a process makes removes those of processes that died, and ``alphazoo store fsck``
finds the rest.
"""

from __future__ import annotations

import contextlib
import shutil
import stat
import tempfile
import warnings
import weakref
from pathlib import Path

from .backends import prune_empty_folders
from .errors import KeyConflictError
from .leftovers import STAGING_PREFIX, new_token, staging_leftovers

__all__ = ["LocalCopies"]

#: (mtime_ns, size) of a copy when it was last downloaded or uploaded.
Signature = tuple[int, int]

_swept = False  # staging folders of dead processes are swept once per process


class LocalCopies:
    """One store's get_file_path copies: ``key -> (path, signature last synced or None)``."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.entries: dict[str, tuple[Path, Signature | None]] = {}
        self.folder: Path | None = None
        self._cleanup: weakref.finalize | None = None

    def existing(self, key: str) -> Path | None:
        """The copy handed out for ``key`` when its file exists."""
        entry = self.entries.get(key)
        return entry[0] if entry is not None and entry[0].is_file() else None

    def prepare(self, key: str) -> Path:
        """The copy's path for ``key`` with its folder made; other copies count as keys.

        A copy never written may have lost its folder since it was handed out (another
        copy's :meth:`drop` prunes the folders it leaves empty): the folder is made again.
        """
        folder = self._folder()
        parts = key.split("/")
        for depth in range(1, len(parts)):
            parent = "/".join(parts[:depth])
            here = folder.joinpath(*parts[:depth])
            if here.is_file():
                if parent in self.entries:
                    raise KeyConflictError(
                        key, f"{parent!r} is a get_file_path copy, so it cannot be a folder; "
                        f"sync() or delete({parent!r}) first", parent)
                here.unlink()  # not a copy of this store any more: a stray
        path = folder.joinpath(*parts)
        if path.is_dir():
            below = sorted(k for k in self.entries if k.startswith(key + "/")
                           and self.entries[k][0].is_file())
            if below:
                raise KeyConflictError(
                    key, f"{below[0]!r} is a get_file_path copy under this key as a folder; "
                    f"sync() or delete({below[0]!r}) first", below[0])
            for stale in [k for k in self.entries if k.startswith(key + "/")]:
                del self.entries[stale]  # handed out, never written
            shutil.rmtree(path)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:  # a race with another thread's copy; still a key conflict
            raise KeyConflictError(key, f"its local copy's folder cannot be made: {exc}") from None
        return path

    def record(self, key: str, path: Path, synced: Signature | None) -> None:
        """Remember the copy at ``path`` and its signature when last in step with the store."""
        self.entries[key] = (path, synced)

    def changed(self, only: str | None = None) -> list[tuple[str, Path, Signature]]:
        """``(key, path, signature)`` of every copy written since it was last synced."""
        found = []
        for key, (path, synced) in list(self.entries.items()):
            if only is not None and key != only:
                continue
            current = changed_signature(path, synced)
            if current is not None:
                found.append((key, path, current))
        return found

    def drop(self, key: str) -> None:
        """Forget ``key``'s copy and delete it, with the folders it leaves empty."""
        entry = self.entries.pop(key, None)
        if entry is None or self.folder is None:
            return
        path = entry[0]
        with contextlib.suppress(FileNotFoundError, IsADirectoryError, NotADirectoryError):
            path.unlink()
        prune_empty_folders(path.parent, self.folder)

    def forget_contents(self) -> None:
        """Delete every copy's file but keep its key and folder (the store was cleared).

        The next get_file_path downloads the object as it is now. A caller still holding a
        path from before (a library saving to it later) has that file uploaded like any new
        copy: dropping the key instead lost such a write without a warning, or made it fail
        on a pruned folder.
        """
        for key, (path, _) in list(self.entries.items()):
            with contextlib.suppress(FileNotFoundError, IsADirectoryError, NotADirectoryError):
                path.unlink()
            self.entries[key] = (path, None)

    def drop_all(self) -> None:
        """Forget and delete every copy (the store was cleared)."""
        for key in list(self.entries):
            self.drop(key)

    def close(self) -> None:
        """Remove the staging folder (the caller uploaded what it wanted first)."""
        if self._cleanup is not None:
            self._cleanup()
            self.folder = self._cleanup = None
        self.entries.clear()

    def _folder(self) -> Path:
        global _swept
        if self.folder is None:
            if not _swept:
                _swept = True
                staging_leftovers(remove=True)
            # Named after this process, so a later process can tell it from a live one's.
            self.folder = Path(tempfile.mkdtemp(prefix=f"{STAGING_PREFIX}{new_token()}-"))
            # Runs when the store is closed or collected: says which copies were never
            # uploaded (instead of losing them silently), then removes the folder.
            self._cleanup = weakref.finalize(self, _drop_folder, self.folder, self.entries,
                                             self.url)
        return self.folder


def _drop_folder(folder: Path, entries: dict[str, tuple[Path, Signature | None]],
                 url: str) -> None:
    pending = [key for key, (path, synced) in entries.items()
               if changed_signature(path, synced)]
    if pending:
        warnings.warn(
            f"{len(pending)} file(s) from get_file_path were changed but never uploaded to "
            f"{url}: {', '.join(sorted(pending))}; call store.sync() or store.close()",
            ResourceWarning, stacklevel=2,
        )
    shutil.rmtree(folder, ignore_errors=True)


def changed_signature(path: Path, synced: Signature | None) -> Signature | None:
    """The copy's signature when it exists and differs from the last sync, else None."""
    current = signature(path)
    return current if current is not None and current != synced else None


def signature(path: Path) -> Signature | None:
    """``(mtime_ns, size)`` of a regular file, else None (a folder is never a copy)."""
    try:
        info = path.stat()
    except (FileNotFoundError, NotADirectoryError):
        return None
    if not stat.S_ISREG(info.st_mode):
        return None
    return info.st_mtime_ns, info.st_size
