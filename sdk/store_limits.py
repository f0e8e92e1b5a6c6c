"""What an object store may hold, and the checks that keep a write within it.

LEAN's limits as numbers (its local defaults and cloud tiers), :class:`StoreUsage` (what a
store holds against them), the refusal a save meets when it does not fit
(:func:`limit_error`), and the length check on a streamed write (:func:`counted`): the limit
check trusts the size a writer announces, so the stream is held to it.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import IO

from .errors import StorageLimitError
from .ledger import Counts

__all__ = ["StoreUsage", "TIERS", "DEFAULT_MAX_SIZE", "DEFAULT_MAX_FILES", "MIB", "limit_error",
           "counted", "counted_chunks", "CountedWriter"]

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


@dataclass(frozen=True)
class StoreUsage:
    """What a store holds against its limits.

    ``temp_files`` and ``temp_bytes`` are temporary files of unfinished writes: a live
    writer's, or leftovers of writers that crashed, which the store's first use (or
    :meth:`ObjectStore.fsck`) removes once their writer is gone. They count against
    ``max_files`` and ``max_size`` while they exist; ``objects`` and ``bytes`` do not include them.
    """

    url: str
    objects: int
    bytes: int
    max_files: int
    max_size: int
    temp_files: int = 0
    temp_bytes: int = 0


def limit_error(key: str, size: int, counts: Counts, replaced: int | None, *, max_files: int,
                max_size: int) -> StorageLimitError | None:
    """The error a save of ``size`` bytes under ``key`` meets, None when it fits.

    ``counts`` is the store's usage; ``replaced`` the size of the object the save replaces
    (None for a new key), whose slot and bytes the save takes over.
    """
    # Temporary files are bytes on the disk: they count until they are removed.
    count = counts.objects + counts.temp_files
    total = counts.bytes + counts.temp_bytes
    note = (f"{counts.temp_files} of them temporary files of unfinished or crashed writes "
            "(alphazoo store fsck --remove clears those whose writer is gone)"
            if counts.temp_files else "")
    if (count if replaced is not None else count + 1) > max_files:
        return StorageLimitError(key, "max_files", count, 1, max_files, note)
    kept = total - (replaced or 0)
    if kept + size > max_size:
        return StorageLimitError(key, "max_size", kept, size, max_size, note)
    return None


def counted(chunks: Iterable[bytes | memoryview], size: int,
            key: str) -> Iterable[bytes | memoryview]:
    """``chunks`` checked to add up to exactly ``size`` bytes: the limit check trusted
    ``size``, so a stream that turns out longer or shorter is refused (ValueError)."""
    write_into = getattr(chunks, "write_into", None)
    if write_into is not None:
        return CountedWriter(chunks, write_into, size, key)
    return counted_chunks(chunks, size, key)


def counted_chunks(chunks: Iterable[bytes | memoryview], size: int,
                   key: str) -> Iterator[bytes | memoryview]:
    """Yield ``chunks``, raising ValueError once they pass ``size`` bytes or end short of it."""
    written = 0
    for chunk in chunks:
        written += len(chunk)
        if written > size:
            raise ValueError(f"write to {key!r} produced more than the {size} bytes announced")
        yield chunk
    if written != size:
        raise ValueError(f"write to {key!r} produced {written} bytes, {size} were announced")


class CountedWriter:
    """:func:`counted` for chunks that can also write themselves into a seekable file
    (``write_into``, a bundle that writes its head last): both ways are checked."""

    def __init__(self, chunks: Iterable[bytes | memoryview],
                 write_into: Callable[[IO[bytes]], None], size: int, key: str) -> None:
        self._chunks, self._write_into, self._size, self._key = chunks, write_into, size, key

    def __iter__(self) -> Iterator[bytes | memoryview]:
        return counted_chunks(self._chunks, self._size, self._key)

    def write_into(self, handle: IO[bytes]) -> None:
        """Let the chunks write ``handle`` (a new file), then check its length."""
        self._write_into(handle)
        written = handle.seek(0, os.SEEK_END)
        if written != self._size:
            raise ValueError(f"write to {self._key!r} produced {written} bytes, {self._size} "
                             "were announced")
