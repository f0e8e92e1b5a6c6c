"""``Algorithm.object_store``: LEAN's Python ObjectStore API over an :class:`alphazoo.ObjectStore`.

LEAN exposes its Object Store to Python algorithms as ``QuantConnect.Storage.ObjectStore``; the
``quantconnect-stubs`` package describes it. This facade follows those stubs member for member
(names, argument order and return types; ``tests/test_lean_stubs.py`` checks it against the
installed stubs), so code written for QuantConnect runs unchanged:

>>> from alphazoo import ObjectStore
>>> store = LeanObjectStore(ObjectStore("memory://lean-doc"))
>>> store.save("notes/today.txt", "buy low")
True
>>> store.keys, store.read("notes/today.txt")
(['notes/today.txt'], 'buy low')
>>> [(pair.key, pair.value) for pair in store]
[('notes/today.txt', b'buy low')]

Where LEAN and Python idiom part ways this follows LEAN: ``keys`` is a property, iterating
yields :class:`KeyValuePair` objects (``.key``, ``.value``) rather than keys, ``save*`` return
True and ``clear()`` only drops caches. :class:`alphazoo.ObjectStore` itself stays Pythonic;
the wrapped store is :attr:`LeanObjectStore.store`.

LEAN's members left out: ``initialize`` (the engine calls it with account credentials; a
backtest here hands the store over ready) and ``error_raised`` (a .NET event; alphazoo raises
typed :class:`~alphazoo.AlphazooError` exceptions instead).
"""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterator, Mapping
from typing import Any, NamedTuple

from alphazoo.store import ObjectStore

__all__ = ["LeanObjectStore", "KeyValuePair"]


class KeyValuePair(NamedTuple):
    """One object of the store, as LEAN's ``KeyValuePair<string, byte[]>``."""

    key: str
    value: bytes


class _Generic:
    """A LEAN generic method: callable as is, or subscripted with a type (``read_json[dict]``).

    The stubs model ``ReadJson<T>`` and friends as a property whose value is subscriptable and
    callable; Python has no use for the type argument, so subscripting returns the same call.
    """

    def __init__(self, call: Callable[..., Any]) -> None:
        self._call = call
        self.__wrapped__ = call  # inspect.signature() shows the real parameters
        self.__doc__ = call.__doc__

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self._call(*args, **kwargs)

    def __getitem__(self, _type: Any) -> _Generic:
        return self


class LeanObjectStore:
    """LEAN's Python ``ObjectStore`` over an :class:`alphazoo.ObjectStore` (see the module).

    ``encoding`` arguments take a Python codec name (LEAN takes a .NET ``Encoding``; default
    UTF-8 in both). ``settings`` of the JSON members take keyword arguments for
    :func:`json.dumps` / :func:`json.loads` (LEAN: ``JsonSerializerSettings``).
    """

    def __init__(self, store: ObjectStore) -> None:
        if not isinstance(store, ObjectStore):
            raise TypeError(f"LeanObjectStore wraps an alphazoo.ObjectStore, not "
                            f"{type(store).__name__}")
        self._store = store

    @property
    def store(self) -> ObjectStore:
        """The wrapped :class:`alphazoo.ObjectStore` (alphazoo's own API, not LEAN's)."""
        return self._store

    # -- limits and keys ---------------------------------------------------------------------
    @property
    def max_size(self) -> int:
        """The most bytes the store may hold."""
        return self._store.max_size

    @property
    def max_files(self) -> int:
        """The most objects the store may hold."""
        return self._store.max_files

    @property
    def keys(self) -> list[str]:
        """Every key in the store, sorted (a property, as in LEAN)."""
        return self._store.keys()

    def contains_key(self, path: str) -> bool:
        """True when an object is stored under ``path``."""
        return self._store.contains_key(path)

    def __iter__(self) -> Iterator[KeyValuePair]:
        """Every object as a :class:`KeyValuePair` (reads each one)."""
        for key in self._store.keys():
            yield KeyValuePair(key, self._store.read_bytes(key))

    def get_enumerator(self) -> Iterator[KeyValuePair]:
        """The same as ``iter(store)`` (LEAN's ``GetEnumerator``)."""
        return iter(self)

    # -- reading -----------------------------------------------------------------------------
    def read(self, path: str, encoding: str | None = None) -> str:
        """The text stored under ``path``."""
        return self._store.read_bytes(path).decode(encoding or "utf-8")

    def read_string(self, path: str, encoding: str | None = None) -> str:
        """The text stored under ``path`` (LEAN's second name for :meth:`read`)."""
        return self.read(path, encoding)

    def read_bytes(self, path: str) -> bytes:
        """The bytes stored under ``path``."""
        return self._store.read_bytes(path)

    @property
    def read_json(self) -> _Generic:
        """``read_json(path, encoding=None, settings=None)``: the JSON value under ``path``."""
        return _Generic(self._read_json)

    def _read_json(self, path: str, encoding: str | None = None,
                   settings: Mapping[str, Any] | None = None) -> Any:
        return json.loads(self.read(path, encoding), **dict(settings or {}))

    @property
    def read_xml(self) -> _Generic:
        """``read_xml(path, encoding=None)``: the XML under ``path`` as an Element."""
        return _Generic(self._read_xml)

    def _read_xml(self, path: str, encoding: str | None = None) -> Any:
        return ET.fromstring(self.read(path, encoding))

    # -- writing -----------------------------------------------------------------------------
    def save(self, path: str, text: str | None = None, encoding: str | None = None) -> bool:
        """Store ``text`` under ``path``; returns True.

        ``save(path)`` alone stores what was written to :meth:`get_file_path`'s file for
        ``path`` (LEAN: "saves the data from a local file path"); raises
        :class:`~alphazoo.ObjectNotFoundError` when there is none.
        """
        if text is None:
            self._store.sync()
            if not self._store.contains_key(path):
                from alphazoo.errors import ObjectNotFoundError

                raise ObjectNotFoundError(path)
            return True
        return self.save_string(path, text, encoding)

    def save_string(self, path: str, text: str, encoding: str | None = None) -> bool:
        """Store ``text`` under ``path``; returns True."""
        if not isinstance(text, str):
            raise TypeError(f"save_string() stores text, not {type(text).__name__}")
        return self._store.save_bytes(path, text.encode(encoding or "utf-8"))

    def save_bytes(self, path: str, contents: bytes | bytearray | memoryview) -> bool:
        """Store ``contents`` under ``path``; returns True."""
        return self._store.save_bytes(path, contents)

    @property
    def save_json(self) -> _Generic:
        """``save_json(path, obj, encoding=None, settings=None)``: store ``obj`` as JSON."""
        return _Generic(self._save_json)

    def _save_json(self, path: str, obj: Any, encoding: str | None = None,
                   settings: Mapping[str, Any] | None = None) -> bool:
        return self.save_string(path, json.dumps(obj, **dict(settings or {})), encoding)

    @property
    def save_xml(self) -> _Generic:
        """``save_xml(path, obj, encoding=None)``: store an Element (or XML text)."""
        return _Generic(self._save_xml)

    def _save_xml(self, path: str, obj: Any, encoding: str | None = None) -> bool:
        if isinstance(obj, ET.Element):
            obj = ET.tostring(obj, encoding="unicode")
        elif isinstance(obj, str):
            ET.fromstring(obj)  # refuse malformed XML before it is stored
        else:
            raise TypeError(f"save_xml() takes an Element or str, not {type(obj).__name__}")
        return self.save_string(path, obj, encoding)

    # -- the rest ----------------------------------------------------------------------------
    def delete(self, path: str) -> bool:
        """Remove the object under ``path``; False when there was none."""
        return self._store.delete(path)

    def get_file_path(self, path: str) -> str:
        """A local file for ``path`` other libraries can write (see ObjectStore.get_file_path)."""
        return self._store.get_file_path(path)

    def clear(self) -> None:
        """Drop the store's caches after writing pending files; deletes nothing (LEAN's Clear).

        Call it before re-reading a model another process or node saved meanwhile.
        """
        self._store.clear()

    def dispose(self) -> None:
        """Upload pending :meth:`get_file_path` files and release local copies."""
        self._store.close()

    def __repr__(self) -> str:
        return f"LeanObjectStore({self._store!r})"
