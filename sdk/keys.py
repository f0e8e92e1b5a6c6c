"""Object-store key rules (LEAN's, in one place).

A key is a ``/``-separated path of segments. A segment holds ASCII letters, digits, space and
``_ # - $ =``; the last segment may end in one extension (``.onnx``). ``\\`` is read as ``/`` and
one or more leading ``./`` are trimmed, so ``./a/b\\c x=`` names the same object as
``a/b/c x=``. Everything else is refused with :class:`~alphazoo.InvalidKeyError`, which names
the key and the rule it broke: ``..`` segments and absolute paths could escape the store's root,
and characters such as ``* < > | ? :`` or NUL are not portable across file systems and S3.
"""

from __future__ import annotations

import re

from .errors import InvalidKeyError

__all__ = ["normalize_key", "is_valid_key", "is_canonical_key", "MAX_KEY_LENGTH"]

MAX_KEY_LENGTH = 1024
#: File systems allow 255 bytes per name; a folder store's temporary file adds up to 52
#: (its writer token, see alphazoo.leftovers).
MAX_SEGMENT_LENGTH = 200
_SEGMENT = re.compile(r"[A-Za-z0-9_#\-$= ]+")
_LAST_SEGMENT = re.compile(r"[A-Za-z0-9_#\-$= ]+(\.[A-Za-z0-9_\-]+)?")
# The same rules for a key already in canonical spelling, in one pattern: listing a store of
# 10,000 objects checks every name, and this is several times faster than normalize_key.
_CANONICAL = re.compile(r"(?:[A-Za-z0-9_#\-$= ]+/)*[A-Za-z0-9_#\-$= ]+(?:\.[A-Za-z0-9_\-]+)?")
_ALLOWED = "ASCII letters, digits, space and _ # - $ =, with one optional extension at the end"


def normalize_key(key: str) -> str:
    """Return the canonical spelling of ``key`` or raise :class:`~alphazoo.InvalidKeyError`."""
    if not isinstance(key, str):
        raise InvalidKeyError(repr(key), f"a key must be a str, not {type(key).__name__}")
    if not key:
        raise InvalidKeyError(key, "a key must not be empty")
    if "\x00" in key:
        raise InvalidKeyError(key, "a key must not contain a NUL character")
    if len(key) > MAX_KEY_LENGTH:
        raise InvalidKeyError(key, f"a key must be at most {MAX_KEY_LENGTH} characters")
    path = key.replace("\\", "/")
    while path.startswith("./"):
        path = path[2:]
    if path.startswith("/") or re.match(r"^[A-Za-z]:", path):
        raise InvalidKeyError(key, "a key must be relative, not an absolute path")
    segments = path.split("/")
    for index, segment in enumerate(segments):
        if segment in ("..", "."):
            raise InvalidKeyError(key, f"a key must not contain a {segment!r} segment")
        if not segment:
            raise InvalidKeyError(
                key, "a key must not contain an empty segment ('//' or a trailing '/')"
            )
        if len(segment) > MAX_SEGMENT_LENGTH:
            raise InvalidKeyError(
                key, f"a segment must be at most {MAX_SEGMENT_LENGTH} characters between '/'"
            )
        pattern = _LAST_SEGMENT if index == len(segments) - 1 else _SEGMENT
        if not pattern.fullmatch(segment):
            raise InvalidKeyError(key, f"segment {segment!r} may only use {_ALLOWED}")
    return path


def is_valid_key(key: str) -> bool:
    """True when ``key`` follows the key rules (see :func:`normalize_key`)."""
    try:
        normalize_key(key)
    except InvalidKeyError:
        return False
    return True


def is_canonical_key(key: str) -> bool:
    """True when ``key`` is a valid key already in canonical spelling (as stores list them)."""
    return (
        len(key) <= MAX_KEY_LENGTH
        and _CANONICAL.fullmatch(key) is not None
        and all(len(segment) <= MAX_SEGMENT_LENGTH for segment in key.split("/"))
    )
