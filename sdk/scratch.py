"""Private scratch folders for the files a save's adapter writes and a load extracts.

Making and deleting a temporary folder per save was most of a small model's save time (a
``mkdtemp`` and an ``rmtree`` cost more than pickling and bundling the model). Instead, one
folder per process in the temporary directory holds numbered subfolders: a save or load takes
an empty one, and gives it back emptied when it is done. A subfolder whose files cannot be
removed is removed whole and never handed out again, so no save sees another's files.

The parent folder is made with ``mkdtemp`` (mode 0700) and named like the staging folders of
:mod:`alphazoo.staging`, with this process's writer token (see :mod:`alphazoo.leftovers`): a
process that dies leaves it for the next sweep or ``alphazoo store fsck``; one that exits
removes it. The first scratch folder a process makes also removes those of dead processes.
A forked child makes its own, never sharing its parent's subfolders.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import shutil
import tempfile
import threading
import weakref
from collections.abc import Iterator
from pathlib import Path

from .leftovers import STAGING_PREFIX, new_token, staging_leftovers

__all__ = ["ScratchFolders", "scratch_folder", "scratch_folders"]


class ScratchFolders:
    """Empty private folders, reused: ``with folders.take() as path: ...``."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._free: list[Path] = []
        self._numbers = itertools.count()
        self._parent: Path | None = None
        self._pid = os.getpid()

    @property
    def owner(self) -> int:
        """The process id that made this pool (a forked child makes its own)."""
        return self._pid

    @property
    def parent(self) -> Path | None:
        """The folder holding the subfolders, once one was taken."""
        return self._parent

    @contextlib.contextmanager
    def take(self) -> Iterator[Path]:
        """An empty folder for the duration of the block; emptied (or removed) after it."""
        with self._lock:
            path = self._free.pop() if self._free else self._new()
        try:
            yield path
        finally:
            if _emptied(path):
                with self._lock:
                    self._free.append(path)
            elif path.is_symlink():
                path.unlink()
            else:
                shutil.rmtree(path, ignore_errors=True)

    def _new(self) -> Path:
        global _swept
        if self._parent is None:
            if not _swept:  # once per process, like the first staging folder's sweep
                _swept = True
                staging_leftovers(remove=True)
            self._parent = Path(tempfile.mkdtemp(prefix=f"{STAGING_PREFIX}{new_token()}-scratch-"))
            # Removed at exit or when dropped, by this process only: a forked child that
            # drops its copy of the pool must not remove the folder its parent is using.
            weakref.finalize(self, _remove, self._parent, self._pid)
        path = self._parent / str(next(self._numbers))
        path.mkdir(mode=0o700)
        return path


def _emptied(path: Path) -> bool:
    """Remove what ``path`` holds; False when it is not a plain folder any more or some entry
    would not go (the caller then removes it whole)."""
    try:
        if path.is_symlink() or not path.is_dir():  # replaced: never empty what it points to
            return False
        with os.scandir(path) as entries:
            for entry in entries:
                if entry.is_dir(follow_symlinks=False):
                    shutil.rmtree(entry.path)
                else:
                    os.unlink(entry.path)
        return True
    except OSError:
        return False


def _remove(parent: Path, owner: int) -> None:
    if os.getpid() == owner:
        shutil.rmtree(parent, ignore_errors=True)


_folders: ScratchFolders | None = None
_swept = False  # dead processes' staging and scratch folders are swept once per process
_folders_lock = threading.Lock()


def scratch_folders() -> ScratchFolders:
    """This process's :class:`ScratchFolders` (a forked child gets a new one)."""
    global _folders
    with _folders_lock:
        if _folders is None or _folders.owner != os.getpid():
            _folders = ScratchFolders()
        return _folders


def scratch_folder() -> contextlib.AbstractContextManager[Path]:
    """An empty private folder from this process's :class:`ScratchFolders`."""
    return scratch_folders().take()
