"""A payload written into memory and hashed while it is written, instead of into a file.

A pickle's save used to go through a file: the library wrote it into the save's scratch
folder, the bundle read it back to hash it and wrote it again into the store. For a 14 MB
forest that was two writes and a read of the payload around one SHA-256 pass, where the
library's own save is one write. A :class:`PayloadBuffer` is the file object the library
writes into instead (``pickle.dump(model, buffer)``): it keeps what is written, and hashes it
as it comes, on a thread once the payload is large (hashlib releases the GIL on large
buffers), so the hash runs beside the library's own serialization and the bundle's write.

What is kept is what was written: ``bytes`` as they are, :class:`pickle.PickleBuffer` views
of the model's own arrays (protocol 5 hands those over without a copy), and a copy of any
other buffer, which a writer may reuse for its next call. The views mean the model's arrays
must not change until the save returns, as with any library's save; if another thread
changes them anyway, the bytes stored differ from the bytes hashed, and the bundle is refused
when loaded, never loaded with a mix.

The payload stays in memory until the bundle is written: the views cost nothing, the rest of
what the pickler writes is held as ``pickle.dumps`` would hold it. A model whose pickle is
mostly plain Python objects therefore needs its pickled size in memory while it is saved.
"""

from __future__ import annotations

import hashlib
import pickle
import queue
import threading
from typing import Any

__all__ = ["PayloadBuffer", "HASH_THREAD_AT"]

#: Bytes written before hashing moves to a thread: below this, starting one costs more than
#: it saves (a small model's whole save takes a fraction of a millisecond).
HASH_THREAD_AT = 1024 * 1024


class PayloadBuffer:
    """A write-only binary file kept in memory, with a running SHA-256 of its bytes.

    :meth:`write` takes any contiguous buffer; :meth:`finish` waits for the hash and returns
    the chunks, their size and the SHA-256 (hex). Writes after :meth:`finish` raise
    ValueError.
    """

    def __init__(self, name: str) -> None:
        #: The payload file's name in the bundle.
        self.name = name
        self._chunks: list[Any] = []
        self._size = 0
        self._digest = hashlib.sha256()
        self._queue: queue.SimpleQueue[Any] | None = None
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None
        self._hex: str | None = None

    # -- the file interface a library's writer needs ---------------------------------------
    def write(self, data: Any) -> int:
        """Keep ``data`` (bytes-like) and hash it; returns its length in bytes."""
        if self._hex is not None:
            raise ValueError(f"payload {self.name!r} is already finished")
        view = memoryview(data)
        size = view.nbytes
        if not size:
            return 0
        if type(data) is bytes:
            chunk: Any = data
        elif isinstance(data, pickle.PickleBuffer) and view.c_contiguous:
            chunk = view.cast("B")  # the model's own array: no copy (see the module docstring)
        else:
            chunk = view.tobytes()  # a writer may reuse its buffer for the next call
        self._chunks.append(chunk)
        self._size += size
        if self._queue is not None:
            self._queue.put(chunk)
        elif self._size >= HASH_THREAD_AT:
            self._start_thread()
            assert self._queue is not None
            for pending in self._chunks:  # what came before, then every later chunk
                self._queue.put(pending)
        return size

    def writable(self) -> bool:
        return True

    def readable(self) -> bool:
        return False

    def seekable(self) -> bool:
        return False

    def tell(self) -> int:
        """Bytes written so far."""
        return self._size

    def flush(self) -> None:
        """Nothing to flush: the bytes are in memory."""

    # -- for the bundle writer -----------------------------------------------------------------
    @property
    def size(self) -> int:
        """Bytes written so far."""
        return self._size

    @property
    def chunks(self) -> list[Any]:
        """What was written, in order (bytes and byte views)."""
        return self._chunks

    @property
    def hashing(self) -> bool:
        """True while a hashing thread may still be at work (before :meth:`finish`)."""
        return self._thread is not None and self._hex is None

    def finish(self) -> str:
        """The SHA-256 (hex) of everything written; waits for the hashing thread."""
        if self._hex is None:
            if self._thread is not None:
                assert self._queue is not None
                self._queue.put(None)
                self._thread.join()
                if self._error is not None:
                    raise self._error
            else:
                for chunk in self._chunks:
                    self._digest.update(chunk)
            self._hex = self._digest.hexdigest()
        return self._hex

    def close(self) -> None:
        """Stop the hashing thread, if any (the bytes stay readable through :attr:`chunks`)."""
        self.finish()

    def _start_thread(self) -> None:
        self._queue = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._hash_queued, name="alphazoo-hash",
                                        daemon=True)
        self._thread.start()

    def _hash_queued(self) -> None:
        assert self._queue is not None
        update = self._digest.update
        try:
            while (chunk := self._queue.get()) is not None:
                update(chunk)
        except BaseException as exc:  # pragma: no cover - hashlib raises only on a bad buffer
            self._error = exc
            while self._queue.get() is not None:  # drain, so finish() does not hang
                pass

    def __repr__(self) -> str:
        return f"PayloadBuffer({self.name!r}, {self._size} bytes)"
