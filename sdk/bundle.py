"""Bundles: one store object per saved model, a manifest plus payload files, checksummed.

Layout (all integers big-endian)::

    16 bytes  magic  b"ALPHAZOO-BUNDLE\\n"
     2 bytes  protocol version
     8 bytes  manifest length M
     M bytes  manifest, canonical JSON (UTF-8, sorted keys), listing every payload file's
              name, size and SHA-256
              payload files, concatenated in the manifest's "files" order
   [32 bytes  HMAC-SHA256, when manifest["signature"] == "hmac-sha256"]
    32 bytes  SHA-256 (the MAC included)

Protocol 2 (written today): the MAC and the closing SHA-256 cover the magic, header and
manifest, and through the manifest's per-file SHA-256 every payload byte, so writing and
reading each hash the payload once. Protocol 1 hashed the payload twice each way: its MAC and
closing SHA-256 ran over every byte above them as well. In both, any changed, missing or extra
byte is found before a payload reaches an adapter, with or without a key: a payload byte fails
its file's SHA-256, a manifest or header byte the closing one, and a wrong length the size
check. The MAC sits in the trailer rather than in the manifest because it signs the manifest.
Readers for every protocol number ever written are kept in ``_READERS`` (the skops approach)
and tested on a stored protocol 1 bundle: a bundle written today stays readable by later
alphazoo versions.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import re
import struct
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Callable

from .backends import write_in_slices
from .errors import BundleFormatError, BundleIntegrityError
from .limits import LoadLimits, check_bytes, check_json_text
from .manifest_schema import validate_manifest
from .payload_buffer import PayloadBuffer
from .store import ObjectStore

__all__ = [
    "PROTOCOL", "MAGIC", "write_bundle", "read_bundle", "read_bundle_from", "read_manifest",
    "signing_key", "signing_key_and_source",
]

PROTOCOL = 2
MAGIC = b"ALPHAZOO-BUNDLE\n"
_HEADER = struct.Struct(">HQ")
_DIGEST = 32
_CHUNK = 1024 * 1024
#: Payload files are read once, hashed and kept in memory for the write while they add up to
#: no more than this; the others are hashed in a first pass and streamed in a second.
_READ_ONCE = 16 * 1024 * 1024
_FILE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,199}")
_SHA256_HEX = re.compile(r"[0-9a-f]{64}")
SIGNATURE_ALGORITHM = "hmac-sha256"
#: A payload SHA-256 still being computed: as long as a real one (64 hex characters).
_PENDING = "0" * 64


def signing_key(sign_key: str | bytes | None) -> bytes | None:
    """The HMAC key to use: ``sign_key``, else ``$ALPHAZOO_SIGNING_KEY``, else None."""
    return signing_key_and_source(sign_key)[0]


def signing_key_and_source(sign_key: str | bytes | None) -> tuple[bytes | None, str | None]:
    """The HMAC key and where it came from: ``"argument"``, ``"environment"`` or None."""
    source = "argument"
    if sign_key is None:
        sign_key, source = os.environ.get("ALPHAZOO_SIGNING_KEY") or None, "environment"
    if sign_key is None:
        return None, None
    key = sign_key.encode("utf-8") if isinstance(sign_key, str) else bytes(sign_key)
    if not key:
        raise ValueError("a signing key must not be empty")
    return key, source


def write_bundle(
    store: ObjectStore,
    key: str,
    manifest: dict[str, Any],
    directory: Path,
    file_names: list[str],
    sign_key: bytes | None = None,
    *,
    buffers: Mapping[str, PayloadBuffer] | None = None,
) -> dict[str, Any]:
    """Pack ``file_names`` from ``directory`` with ``manifest`` into one object under ``key``.

    Adds ``protocol``, ``files`` and ``signature`` to the manifest and returns it. The manifest
    (with each file's SHA-256) precedes the payload, so every file is hashed before the write
    starts: files are read once and their bytes kept for the write while they add up to 16 MiB
    at most; the others are read twice (hash, then stream) and never held in memory whole.
    A name found in ``buffers`` is taken from that :class:`PayloadBuffer` instead of a file:
    hashed as it was written, so neither read nor hashed here.
    """
    entries: list[dict[str, Any]] = []
    contents: dict[str, bytes | list[Any]] = {}
    pending: list[tuple[dict[str, Any], PayloadBuffer]] = []
    room = _READ_ONCE
    for name in file_names:
        if not _FILE_NAME.fullmatch(name):
            raise ValueError(f"payload file name {name!r} is not a plain file name")
        buffer = buffers.get(name) if buffers else None
        if buffer is not None:
            # Hashed on its own thread: the digest goes in when the head is written (a
            # placeholder of the same length until then, so the layout is known now).
            entries.append({"name": name, "size": buffer.size, "sha256": _PENDING})
            pending.append((entries[-1], buffer))
            contents[name] = buffer.chunks
            continue
        digest = hashlib.sha256()
        size = 0
        with open(directory / name, "rb") as handle:
            stated = os.fstat(handle.fileno()).st_size
            if stated <= room:
                # One read of a byte past the size: a file that grew meanwhile is still hashed
                # whole (and streamed from the disk if it outgrew the room). Not room + 1: that
                # allocates the whole room (16 MiB) per read, which costs more than the read.
                data = handle.read(stated + 1)
                digest.update(data)
                size = len(data)
                if size <= stated:  # the whole file: read once, kept for the write
                    contents[name] = data
                    room -= size
            while chunk := handle.read(_CHUNK):
                digest.update(chunk)
                size += len(chunk)
        entries.append({"name": name, "size": size, "sha256": digest.hexdigest()})
    manifest = {
        **manifest,
        "protocol": PROTOCOL,
        "files": entries,
        "signature": SIGNATURE_ALGORITHM if sign_key else None,
    }
    stream = _BundleStream(manifest, pending, directory, contents, sign_key)
    store.write_stream(key, stream if pending else iter(stream), stream.size)
    return manifest


class _BundleStream:
    """A bundle's bytes, in order when iterated; :meth:`write_into` writes them into a
    seekable file (a folder store's temporary file) payload first.

    The head holds each payload file's SHA-256, so an in-order write waits for every hash
    before its first byte. A :class:`PayloadBuffer` is still being hashed on its thread when
    the bundle is written: writing its bytes at their offset meanwhile, and the head last,
    runs the hash beside the write (two cores) instead of before it. The bytes written are
    the same either way.
    """

    def __init__(self, manifest: dict[str, Any],
                 pending: list[tuple[dict[str, Any], PayloadBuffer]], directory: Path,
                 contents: Mapping[str, bytes | list[Any]], sign_key: bytes | None) -> None:
        self.manifest = manifest
        self.pending = pending
        self.directory = directory
        self.contents = contents
        self.sign_key = sign_key
        # With the placeholders: a hex SHA-256 is always 64 characters, so the real manifest
        # has the same length.
        self.head_length = len(MAGIC) + _HEADER.size + len(_canonical(manifest))
        self.size = (self.head_length + sum(entry["size"] for entry in manifest["files"])
                     + _DIGEST + (_DIGEST if sign_key else 0))

    def _head(self) -> bytes:
        for entry, buffer in self.pending:
            entry["sha256"] = buffer.finish()
        manifest_bytes = _canonical(self.manifest)
        head = MAGIC + _HEADER.pack(PROTOCOL, len(manifest_bytes)) + manifest_bytes
        if len(head) != self.head_length:  # pragma: no cover - a hex digest's length is fixed
            raise RuntimeError("the manifest changed length when its digests were filled in")
        return head

    def _trailer(self, head: bytes) -> bytes:
        # The per-file SHA-256 values in the manifest stand for the payload: the trailer
        # hashes only what precedes the payload (protocol 2).
        digest = hashlib.sha256(head)
        signature = b""
        if self.sign_key:
            signature = hmac.new(self.sign_key, head, digestmod=hashlib.sha256).digest()
            digest.update(signature)
        return signature + digest.digest()

    def __iter__(self) -> Iterator[Any]:
        head = self._head()
        yield from _file_chunks(head, self.directory, self.manifest["files"], self.contents)
        yield self._trailer(head)

    def write_into(self, handle: IO[bytes]) -> None:
        """Write the bundle into ``handle`` (a new, seekable file), payload first."""
        handle.seek(self.head_length)
        for chunk in _file_chunks(b"", self.directory, self.manifest["files"], self.contents):
            write_in_slices(handle, chunk)
        end = handle.tell()
        if any(buffer.hashing for _, buffer in self.pending):
            # The payload's own fsync while the hash finishes (the store's fsync after the
            # head then has a page or two to write, not the payload): the file's bytes are
            # durable only after that second one, before the rename, as always.
            handle.flush()
            os.fsync(handle.fileno())
        head = self._head()  # waits for the hashes, which ran while the payload was written
        handle.seek(0)
        handle.write(head)
        handle.seek(end)
        handle.write(self._trailer(head))


@dataclass
class OpenedBundle:
    """A verified bundle: its manifest, its files (when extracted) and the signature check.

    ``data`` holds the payload files read into memory instead of extracted (``keep``): bytes
    that were hashed are the bytes handed on, so nothing can change them between the check
    and their use, as another process could change an extracted file.
    """

    manifest: dict[str, Any]
    files: dict[str, Path]
    signature_valid: bool
    data: dict[str, bytes] = field(default_factory=dict)


def read_bundle(
    store: ObjectStore, key: str, extract_to: Path | None, sign_key: bytes | None = None,
    limits: LoadLimits | None = None, *, keep: int = 0,
) -> OpenedBundle:
    """Verify the bundle under ``key`` and extract its files into ``extract_to``.

    With ``extract_to=None`` the payload is verified but not written anywhere (``inspect``).
    Raises :class:`~alphazoo.BundleIntegrityError` on any corruption,
    :class:`~alphazoo.BundleFormatError` for a manifest its schema
    (:mod:`alphazoo.manifest_schema`) refuses, :class:`~alphazoo.BundleLimitError` when the
    manifest or the payload files are larger than ``limits.max_bytes`` (checked before they
    are read); a missing key raises :class:`~alphazoo.ObjectNotFoundError`.

    Payload files adding up to ``keep`` bytes at most are read into memory, one read each,
    and returned verified in :attr:`OpenedBundle.data` instead of extracted: no file written,
    and nothing that could change between the check and the use.
    """
    with store.open(key) as handle:
        return read_bundle_from(handle, key, extract_to, sign_key, limits, keep=keep)


def read_bundle_from(
    handle: IO[bytes], key: str, extract_to: Path | None, sign_key: bytes | None = None,
    limits: LoadLimits | None = None, *, keep: int = 0,
) -> OpenedBundle:
    """:func:`read_bundle` over an open binary stream (a store's object, a file, bytes in an
    ``io.BytesIO``); ``key`` names it in errors. The same checks, in the same order."""
    # The size of the object this handle reads, not a separate lookup: a writer may
    # replace the object between the two, and a reader must see the old or the new one.
    size = _size_of(handle)
    magic = handle.read(len(MAGIC))
    if magic != MAGIC:
        raise BundleIntegrityError(f"{key!r} is not an alphazoo model bundle (bad magic bytes)")
    header = _read_exact(handle, _HEADER.size, key)
    protocol, _ = _HEADER.unpack(header)
    reader = _READERS.get(protocol)
    if reader is None:
        raise BundleIntegrityError(
            f"{key!r} uses bundle protocol {protocol}, which this alphazoo cannot read "
            f"(it reads {sorted(_READERS)}); upgrade alphazoo"
        )
    return reader(handle, key, size, magic + header, extract_to, sign_key,
                  limits or LoadLimits(), keep)


def read_manifest(store: ObjectStore, key: str,
                  limits: LoadLimits | None = None) -> dict[str, Any]:
    """The manifest of the bundle under ``key``, after verifying the whole object."""
    return read_bundle(store, key, None, limits=limits).manifest


def _read_v1(
    handle: IO[bytes], key: str, size: int, head: bytes, extract_to: Path | None,
    sign_key: bytes | None, limits: LoadLimits, keep: int = 0,
) -> OpenedBundle:
    """Protocol 1: the MAC and the closing SHA-256 run over the payload too."""
    return _read(handle, key, size, head, extract_to, sign_key, limits, keep,
                 trailer_covers_payload=True)


def _read_v2(
    handle: IO[bytes], key: str, size: int, head: bytes, extract_to: Path | None,
    sign_key: bytes | None, limits: LoadLimits, keep: int = 0,
) -> OpenedBundle:
    """Protocol 2: the payload is covered by the manifest's per-file SHA-256 values."""
    return _read(handle, key, size, head, extract_to, sign_key, limits, keep,
                 trailer_covers_payload=False)


def _read(
    handle: IO[bytes], key: str, size: int, head: bytes, extract_to: Path | None,
    sign_key: bytes | None, limits: LoadLimits, keep: int = 0, *,
    trailer_covers_payload: bool,
) -> OpenedBundle:
    _, manifest_length = _HEADER.unpack(head[len(MAGIC):])
    if manifest_length > size:
        raise BundleIntegrityError(f"{key!r} is corrupt: manifest length exceeds the object")
    check_bytes(manifest_length, limits, f"the manifest of {key!r}")
    manifest_bytes = _read_exact(handle, manifest_length, key)
    check_json_text(manifest_bytes, limits, f"the manifest of {key!r}")
    try:
        manifest = json.loads(manifest_bytes)
    except (ValueError, RecursionError) as exc:
        raise BundleIntegrityError(f"{key!r} is corrupt: unreadable manifest ({exc})") from None
    try:
        validate_manifest(manifest)
    except RecursionError:  # a deeply nested field: as unreadable as broken JSON
        raise BundleFormatError("manifest", "nested too deeply") from None
    entries = manifest["files"]
    signed = manifest.get("signature") == SIGNATURE_ALGORITHM
    names = [entry["name"] for entry in entries]
    sizes = [entry["size"] for entry in entries]
    hashes = [entry["sha256"] for entry in entries]
    if (
        any(not isinstance(n, str) or not _FILE_NAME.fullmatch(n) for n in names)
        or len(set(names)) != len(names)
    ):
        raise BundleIntegrityError(f"{key!r} is corrupt: bad payload file names {names}")
    if any(not _SHA256_HEX.fullmatch(h) for h in hashes):
        raise BundleIntegrityError(f"{key!r} is corrupt: bad payload SHA-256 values")
    expected = len(head) + manifest_length + sum(sizes) + _DIGEST * (2 if signed else 1)
    if expected != size:
        raise BundleIntegrityError(
            f"{key!r} is corrupt: {size} bytes stored, the manifest accounts for {expected} "
            "(truncated or extended)"
        )
    # After the size check (a wrong size is corruption), before a byte of payload is read or
    # written to disk: the extracted files are the first thing a bundle could make large.
    check_bytes(sum(sizes), limits, f"the payload files of {key!r}")
    digest = hashlib.sha256(head)
    digest.update(manifest_bytes)
    mac = hmac.new(sign_key, digestmod=hashlib.sha256) if (sign_key and signed) else None
    if mac is not None:
        mac.update(head)
        mac.update(manifest_bytes)
    files: dict[str, Path] = {}
    data: dict[str, bytes] = {}
    for name, length, expected_hash in zip(names, sizes, hashes):
        file_digest = hashlib.sha256()
        kept = 0 < keep and length <= keep
        if kept:
            # One read of the declared length (bounded by the limits check above) and one
            # hash of it: the bytes handed on are the bytes hashed.
            keep -= length
            chunk = _read_exact(handle, length, key)
            file_digest.update(chunk)
            if trailer_covers_payload:
                digest.update(chunk)
                if mac is not None:
                    mac.update(chunk)
        else:
            _extract(handle, key, length, file_digest,
                     (digest, mac) if trailer_covers_payload else (),
                     extract_to / name if extract_to is not None else None)
        if not hmac.compare_digest(file_digest.hexdigest(), expected_hash):
            raise BundleIntegrityError(
                f"{key!r} is corrupt: payload file {name!r} fails its SHA-256"
            )
        if kept:
            data[name] = chunk
        elif extract_to is not None:
            files[name] = extract_to / name
    stored_mac = _read_exact(handle, _DIGEST, key) if signed else None
    if stored_mac is not None:
        digest.update(stored_mac)
    stored_digest = _read_exact(handle, _DIGEST, key)
    if not hmac.compare_digest(stored_digest, digest.digest()):
        raise BundleIntegrityError(f"{key!r} is corrupt: the bundle's SHA-256 does not match")
    signature_valid = (
        stored_mac is not None and mac is not None and hmac.compare_digest(stored_mac, mac.digest())
    )
    if handle.read(1):
        raise BundleIntegrityError(f"{key!r} is corrupt: bytes after the end of the bundle")
    return OpenedBundle(manifest, files, signature_valid, data)


_READERS: dict[int, Callable[..., OpenedBundle]] = {1: _read_v1, 2: _read_v2}


def _size_of(handle: IO[bytes]) -> int:
    try:
        return os.fstat(handle.fileno()).st_size
    except (AttributeError, OSError, ValueError):  # an fsspec file has no descriptor
        pass
    size = getattr(handle, "size", None)
    if isinstance(size, int):
        return size
    position = handle.tell()
    end = handle.seek(0, os.SEEK_END)
    handle.seek(position)
    return end


def _extract(handle: IO[bytes], key: str, length: int, file_digest: Any,
             also: tuple[Any, ...], target: Path | None) -> None:
    """Copy ``length`` bytes to ``target`` (None: nowhere) in chunks, hashing each one."""
    sink = open(target, "wb") if target is not None else None
    try:
        remaining = length
        while remaining:
            chunk = _read_exact(handle, min(remaining, _CHUNK), key)
            remaining -= len(chunk)
            file_digest.update(chunk)
            for other in also:
                if other is not None:
                    other.update(chunk)
            if sink is not None:
                sink.write(chunk)
    finally:
        if sink is not None:
            sink.close()


def _read_exact(handle: IO[bytes], length: int, key: str) -> bytes:
    data = handle.read(length)
    if len(data) != length:
        raise BundleIntegrityError(f"{key!r} is corrupt: the object ends early (truncated)")
    return data


def _file_chunks(head: bytes, directory: Path, entries: list[dict[str, Any]],
                 contents: Mapping[str, bytes | list[Any]]) -> Iterator[Any]:
    yield head
    for entry in entries:
        data = contents.get(entry["name"])
        if isinstance(data, list):  # a PayloadBuffer's chunks, hashed as they were written
            yield from data
            continue
        if data is not None:  # read (and hashed) once, before the manifest was made
            yield data
            continue
        written = 0
        with open(directory / entry["name"], "rb") as handle:
            while chunk := handle.read(_CHUNK):
                written += len(chunk)
                yield chunk
        if written != entry["size"]:
            raise RuntimeError(f"payload file {entry['name']!r} changed while it was being saved")


def _canonical(manifest: dict[str, Any]) -> bytes:
    return json.dumps(manifest, sort_keys=True, separators=(",", ":"), allow_nan=False).encode()
