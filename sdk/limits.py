"""Load limits: how much a bundle may make a loader read or allocate, checked before it does.

A bundle's hashes prove it has not changed since it was written, not that its writer meant
well: a few kilobytes of zip can declare gigabytes of decompressed JSON, a ``.npy`` header can
declare any shape, an ONNX graph can ask onnxruntime to fold a ``ConstantOfShape`` of
100000x100000 floats when the session is created. Every loader therefore compares what the
bundle *declares* (zip central directory sizes, ``.npy`` headers, JSON tensor shapes, ONNX
initializers and statically inferred shapes) with a :class:`LoadLimits` before it allocates,
and raises :class:`~alphazoo.BundleLimitError` naming the limit and the value.

The limits hold whether or not the bundle is signed or ``trusted=True``: a signature vouches
for who wrote a bundle, not for how much memory it asks for.

The default (``max_bytes`` 256 MiB of decompressed payload or of one array) is tens of times
the largest bundle the test suite writes (a few MB for a 300-tree forest): generous for real
models, far below what takes a 2-core trading host down. ``$ALPHAZOO_MAX_BYTES`` changes the
default for a process; ``Zoo(..., max_bytes=...)`` for one zoo; ``zoo.load(key,
max_bytes=...)`` for one load.
"""

from __future__ import annotations

import contextlib
import io
import math
import mmap
import os
import re
import struct
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Literal

from .errors import BundleFormatError, BundleLimitError

__all__ = [
    "DEFAULT_MAX_BYTES", "DEFAULT_MAX_MEMBERS", "LoadLimits", "array_bytes", "check_bytes",
    "check_json_text", "check_npy_header", "check_zip", "open_checked_zip",
]

DEFAULT_MAX_BYTES = 256 * 1024 * 1024
DEFAULT_MAX_MEMBERS = 10_000
_ENV_MAX_BYTES = "ALPHAZOO_MAX_BYTES"


@dataclass(frozen=True)
class LoadLimits:
    """Bounds on what loading one bundle may read or allocate.

    ``max_bytes``: the payload files together, the decompressed members of an archive
    together, and any one array, tensor or ONNX constant, in bytes. ``max_members``: entries
    in one archive (a skops or ``.keras`` zip, a torch ``.pt``).
    """

    max_bytes: int = DEFAULT_MAX_BYTES
    max_members: int = DEFAULT_MAX_MEMBERS

    def __post_init__(self) -> None:
        for name in ("max_bytes", "max_members"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                raise ValueError(f"{name} must be a positive integer, not {value!r}")

    @classmethod
    def resolve(cls, *max_bytes: int | None) -> LoadLimits:
        """The limits of a load: the first ``max_bytes`` given (a load's, then its zoo's),
        else ``$ALPHAZOO_MAX_BYTES``, else :data:`DEFAULT_MAX_BYTES`."""
        for value in max_bytes:
            if value is not None:
                return cls(max_bytes=value)
        text = os.environ.get(_ENV_MAX_BYTES, "").strip()
        if not text:
            return cls()
        try:
            return cls(max_bytes=int(text.replace("_", "")))
        except ValueError:
            raise ValueError(
                f"${_ENV_MAX_BYTES} must be a positive number of bytes, not {text!r}"
            ) from None


def check_bytes(value: int, limits: LoadLimits, what: str, limit: str = "max_bytes") -> None:
    """Raise :class:`~alphazoo.BundleLimitError` when ``value`` exceeds ``limit``."""
    maximum = getattr(limits, limit)
    if value > maximum:
        raise BundleLimitError(limit, value, maximum, what)


#: Bytes of Python objects one JSON container, or one comma-separated value, can become
#: (an empty dict is 64 bytes, a float 24 plus its list slot): the multipliers of
#: :func:`check_json_text`'s estimate.
_CONTAINER_BYTES = 100
_VALUE_BYTES = 32


def check_json_text(text: bytes | IO[bytes], limits: LoadLimits | None, what: str,
                    size: int | None = None) -> None:
    """Refuse JSON text whose parsed form could exceed ``max_bytes`` of Python objects.

    The text's size alone does not bound ``json.loads``: ``[[],[],...]`` becomes a list
    object per three bytes, about twenty times the text. The estimate counts containers
    (``[``, ``{``) and separators (``,``) in one pass over the bytes (brackets inside strings
    count too, so it errs high), and real documents, whose bulk is numbers or base64 text,
    come out near their size. ``text`` may be a binary stream, read in 1 MiB chunks; ``size``
    is its length when known in advance (a zip member's declared size, which zipfile never
    reads past).
    """
    limits = limits or LoadLimits()
    known = len(text) if isinstance(text, (bytes, bytearray)) else size
    if known is not None and known * (1 + _CONTAINER_BYTES) <= limits.max_bytes:
        return  # even text made only of brackets stays within the limit: nothing to count
    chunks = [text] if isinstance(text, (bytes, bytearray)) else iter(
        lambda: text.read(1 << 20), b"")
    size = estimate = 0
    for chunk in chunks:
        size += len(chunk)
        estimate += (len(chunk) + _CONTAINER_BYTES * (chunk.count(b"[") + chunk.count(b"{"))
                     + _VALUE_BYTES * chunk.count(b","))
        if estimate > limits.max_bytes:
            check_bytes(estimate, limits,
                        f"{what} (JSON of {size:,}+ bytes, as Python objects)")


def check_zip(path: Path, limits: LoadLimits | None, *, npy: bool = False,
              json_members: tuple[str, ...] = (), data: bytes | None = None) -> None:
    """Check the archive at ``path`` against ``limits`` from its central directory alone.

    Member count, the sum of the members' declared uncompressed sizes and (``npy=True``) the
    shape each ``.npy`` member's header declares. Reading a member never yields more than its
    declared size (zipfile stops there and checks the CRC), so checking declarations bounds
    what the real loader will decompress. A file that is not a zip archive is a
    :class:`~alphazoo.BundleFormatError`. ``limits=None`` means the defaults. The members named
    in ``json_members`` (skops' ``schema.json``, Keras' ``config.json``) are read and their
    parsed size estimated (:func:`check_json_text`). ``data``: the archive's bytes, already in
    memory (``path`` then only names it in messages).
    """
    limits = limits or LoadLimits()
    with open_checked_zip(path, limits, data) as archive:
        if npy:
            _check_npy_members(archive, path, limits, data)
        names = set(archive.namelist())
        for name in json_members:
            if name in names:
                with archive.open(name) as member:
                    check_json_text(member, limits, f"{path.name}:{name}",
                                    size=archive.getinfo(name).file_size)


def _check_npy_members(archive: zipfile.ZipFile, path: Path, limits: LoadLimits,
                       in_memory: bytes | None) -> None:
    # A forest's skops file holds hundreds of .npy members: opening each through zipfile and
    # parsing its header with numpy costs ~0.25 ms apiece, a quarter of the load. A stored
    # member whose header is in numpy's own canonical form is read in place instead; any
    # other goes through numpy's parser, so both paths agree on what numpy will allocate.
    # Mapped (or already in memory), not read: slicing a member's first bytes costs no system
    # call.
    with contextlib.ExitStack() as stack:
        data: bytes | mmap.mmap
        if in_memory is not None:
            data = in_memory
        else:
            raw = stack.enter_context(open(path, "rb"))
            data = stack.enter_context(mmap.mmap(raw.fileno(), 0, access=mmap.ACCESS_READ))
        file_name = path.name
        for info in archive.infolist():
            if not info.filename.endswith(".npy"):
                continue
            if info.compress_type == zipfile.ZIP_STORED and not info.flag_bits & 0x1:
                head = _stored_npy_head(data, info)
                if head is not None and _fast_npy_header(head, info.file_size, limits,
                                                         file_name, info.filename):
                    continue
            with archive.open(info) as member:
                check_npy_header(member, info.file_size, limits,
                                 f"{file_name}:{info.filename}")


def _stored_npy_head(data: bytes | mmap.mmap, info: zipfile.ZipInfo) -> bytes | None:
    """The ``.npy`` magic, version, header length and header of a stored member, sliced from
    the archive's bytes (up to 4 KiB; None when the local header is not where the central
    directory says). Sliced to the header's stated length, not a fixed 4 KiB: a forest has
    thousands of members, and copying 4 KiB of each was most of this check."""
    at = info.header_offset
    local = data[at:at + 30]
    if len(local) != 30 or local[:4] != b"PK\x03\x04":
        return None
    name_length, extra_length = struct.unpack("<HH", local[26:30])
    at += 30 + name_length + extra_length
    prefix = data[at:at + min(info.file_size, 12)]
    if len(prefix) < 12 or prefix[:6] != b"\x93NUMPY" or prefix[6] not in (1, 2):
        return prefix  # not a canonical header: _fast_npy_header says so
    start = 10 if prefix[6] == 1 else 12
    length = struct.unpack("<H" if prefix[6] == 1 else "<I", prefix[8:start])[0]
    return data[at:at + min(info.file_size, 4096, start + length)]


#: numpy's canonical .npy header dict (keys sorted, as ``numpy.lib.format`` writes it); a
#: descr of one quoted type string or one list of fields.
_CANONICAL_HEADER = re.compile(
    r"\{'descr': ('[^'\\]*'|\[[^{}]*\]), 'fortran_order': (?:True|False), "
    r"'shape': \(([0-9, ]*)\), \}[ \n]*")
_DTYPES: dict[str, Any] = {}


def _fast_npy_header(head: bytes, stored: int, limits: LoadLimits, file_name: str,
                     member: str) -> bool:
    """Check a canonical v1/v2 header from its bytes; False when it is not one. The member
    is named ``file_name:member`` in errors (the text made only then)."""
    parsed = _PARSED_HEADERS.get(head)
    if parsed is None:
        parsed = _parse_canonical_header(head)
        if len(_PARSED_HEADERS) >= _PARSED_HEADERS_MAX:
            _PARSED_HEADERS.clear()
        _PARSED_HEADERS[head] = parsed
    if parsed is False:
        return False
    dtype, shape, declared, header_end = parsed
    # Checked for every member, with this load's limits: only the parse is shared.
    if declared > limits.max_bytes:  # the message (a structured dtype's text) only if needed
        check_bytes(declared, limits, f"{file_name}:{member} (array {dtype}{shape})")
    if not dtype.hasobject and declared > stored - header_end:
        raise BundleFormatError(
            f"{file_name}:{member}", f"the header declares {declared:,} bytes of "
            f"{dtype}{shape}, but the member holds {max(stored - header_end, 0):,}")
    return True


#: Parsed headers by their exact bytes: a forest's .npy members repeat a few dozen headers
#: (36 distinct among the 501 of a 100-tree forest), and parsing one costs a regular
#: expression and a shape's integers. Bounded; a pure function of the bytes, so sharing it
#: between loads changes nothing but the time.
_PARSED_HEADERS: dict[bytes, tuple[Any, list[int], int, int] | Literal[False]] = {}
_PARSED_HEADERS_MAX = 1024  # at most 4 MiB of keys: a header read in place is <= 4 KiB


def _parse_canonical_header(head: bytes) -> tuple[Any, list[int], int, int] | Literal[False]:
    """``(dtype, shape, declared bytes, header end)`` of a canonical v1/v2 header, or False."""
    if head[:6] != b"\x93NUMPY" or len(head) < 12 or head[6] not in (1, 2):
        return False
    start = 10 if head[6] == 1 else 12
    length = struct.unpack("<H" if head[6] == 1 else "<I", head[8:start])[0]
    if start + length > len(head):
        return False
    match = _CANONICAL_HEADER.fullmatch(head[start:start + length].decode("latin1"))
    if match is None:
        return False
    descr, shape_text = match.groups()
    dtype = _DTYPES.get(descr)
    if dtype is None:
        import ast

        import numpy as np

        try:
            dtype = np.lib.format.descr_to_dtype(ast.literal_eval(descr))
        except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
            return False
        if len(_DTYPES) < 1024:  # a handful of descrs repeat across a model's arrays
            _DTYPES[descr] = dtype
    parts = [part.strip() for part in shape_text.split(",")]
    if parts and parts[-1] == "":
        parts.pop()
    if not all(part.isdigit() for part in parts):
        return False
    shape = [int(part) for part in parts]
    return dtype, shape, array_bytes(shape, dtype.itemsize), start + length


def open_checked_zip(path: Path, limits: LoadLimits,
                     data: bytes | None = None) -> zipfile.ZipFile:
    """The zip archive at ``path`` (or in ``data``, named ``path``), opened after
    :func:`check_zip`'s size and count checks."""
    try:
        archive = zipfile.ZipFile(path if data is None else io.BytesIO(data))
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, ValueError, EOFError) as exc:
        raise BundleFormatError(path.name, f"not a readable zip archive ({exc})") from None
    try:
        infos = archive.infolist()
        check_bytes(len(infos), limits, f"{path.name} ({len(infos):,} archive members)",
                    "max_members")
        total = 0
        maximum = limits.max_bytes
        for info in infos:
            total += info.file_size
            if total > maximum:  # the message only when it is needed (thousands of members)
                check_bytes(total, limits, f"{path.name} decompressed (member "
                            f"{info.filename!r} declares {info.file_size:,} bytes)")
    except BaseException:
        archive.close()
        raise
    return archive


def check_npy_header(stream: IO[bytes], stored: int, limits: LoadLimits, what: str) -> None:
    """Refuse a ``.npy`` stream whose header declares more bytes than ``limits`` allow or than
    the ``stored`` bytes hold: numpy allocates the declared array before it reads the data."""
    import numpy as np

    fmt = np.lib.format
    try:
        version = fmt.read_magic(stream)
        if version == (1, 0):
            shape, _, dtype = fmt.read_array_header_1_0(stream)
        elif version in ((2, 0), (3, 0)):
            shape, _, dtype = fmt.read_array_header_2_0(stream)
        else:
            raise ValueError(f"unknown .npy version {version}")
    except (ValueError, TypeError, SyntaxError, EOFError, OSError) as exc:
        raise BundleFormatError(what, f"not a readable .npy array ({exc})") from None
    header_end = stream.tell() if stream.seekable() else None
    declared = array_bytes(shape, dtype.itemsize)
    check_bytes(declared, limits, f"{what} (array {dtype}{list(shape)})")
    if dtype.hasobject:
        return  # numpy itself refuses object arrays without allow_pickle
    if header_end is not None and declared > stored - header_end:
        raise BundleFormatError(
            what, f"the header declares {declared:,} bytes of {dtype}{list(shape)}, but the "
            f"member holds {max(stored - header_end, 0):,}"
        )


def array_bytes(shape: Any, itemsize: int) -> int:
    """Bytes of an array of ``shape``; negative dims count as 0.

    Python integers, so a crafted shape cannot wrap around as numpy's ``prod`` would."""
    return math.prod(max(int(n), 0) for n in shape) * int(itemsize)
