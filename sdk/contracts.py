"""The values the host and the adapter plugins hand each other.

Plugins receive and return these instead of long argument lists, so a field added later does
not break a plugin written against an older alphazoo.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from .backends import write_in_slices
from .payload_buffer import PayloadBuffer

__all__ = ["FormatSpec", "ModelSpec", "SaveRequest", "SavedPayload", "LoadRequest",
           "PayloadFiles"]


@dataclass(frozen=True)
class FormatSpec:
    """A serialization format an adapter can write and read.

    ``safe`` is False for formats that run code when loaded (pickle): the host refuses to load
    those unless the caller trusts the bundle or it carries a valid signature. The host decides
    safety from this declaration, never from what a bundle says about itself.
    """

    name: str
    adapter: str
    safe: bool
    description: str
    default: bool = False
    #: Distributions needed to *load* this format (an ONNX bundle needs only onnxruntime).
    load_requires: tuple[str, ...] = ()
    #: The declared schema of the manifest's ``adapter_data`` for this format (a
    #: :class:`alphazoo.manifest_schema.Spec`; None: any object). The host checks it before
    #: the adapter's ``alphazoo_load`` runs, so a loader reads only fields of the right type.
    adapter_data: Any = None


@dataclass(frozen=True)
class ModelSpec:
    """A zoo model: a name and a builder that returns an unfitted model."""

    name: str
    builder: Callable[..., Any]
    library: str | None = None
    description: str = ""
    plugin: str = ""


@dataclass
class SaveRequest:
    """What an adapter's ``alphazoo_save`` receives.

    The adapter writes its payload files into ``directory`` and returns a
    :class:`SavedPayload` naming them. ``format`` is None when the caller wants the adapter's
    default. ``sample`` holds a few input rows (from the caller, from ``Zoo.train`` or made up
    from the model's input width) for ONNX conversion and the parity check.
    """

    model: Any
    format: str | None
    directory: Path
    sample: Any = None
    parity_tolerance: float = 1e-4
    #: The zoo model this object was built from (``Zoo.build(name, **params)``), when known:
    #: adapters whose weights need an architecture to load into (torch) record it.
    zoo_model: str | None = None
    params: dict[str, Any] | None = None
    #: Adapter-specific keyword arguments of ``Zoo.save`` (``opset=``, ``dynamic_axes=``...).
    #: An adapter raises TypeError for one it does not know, naming the ones it takes.
    options: dict[str, Any] = field(default_factory=dict)
    #: The payloads written into memory through :meth:`payload_buffer`, by file name; None
    #: when the caller takes files only (an adapter's hook called directly). Set by the host.
    buffers: dict[str, PayloadBuffer] | None = None

    def payload_buffer(self, name: str) -> PayloadBuffer | None:
        """A file object to write payload file ``name`` into, kept in memory and hashed as it
        is written (:class:`~alphazoo.payload_buffer.PayloadBuffer`), when the host takes
        payloads that way; else None, and the adapter writes ``directory / name``.

        A library that writes into a file object (``pickle.dump``) saves its payload once
        this way: no file written into ``directory``, read back and hashed apart.
        """
        if self.buffers is None:
            return None
        earlier = self.buffers.get(name)
        if earlier is not None:  # asked again: the new one replaces it, its thread stopped
            earlier.close()
        buffer = self.buffers[name] = PayloadBuffer(name)
        return buffer


@dataclass
class SavedPayload:
    """What an adapter wrote: files in the request's directory and facts for the manifest."""

    adapter: str
    format: str
    files: list[str]
    model_class: str
    libraries: dict[str, str] = field(default_factory=dict)
    #: Adapter-specific facts the loader needs back (task, classes, parity figures...).
    adapter_data: dict[str, Any] = field(default_factory=dict)
    input_signature: dict[str, Any] | None = None
    #: Things the user should know about this save; the host shows each as a
    #: :class:`~alphazoo.SaveWarning` at the caller's ``zoo.save`` line (a plugin's own warning
    #: would point into pluggy).
    warnings: list[str] = field(default_factory=list)


@dataclass
class LoadRequest:
    """What an adapter's ``alphazoo_load`` receives, after integrity and trust checks."""

    manifest: dict[str, Any]
    #: The verified payload files by name (a :class:`PayloadFiles` from the host).
    files: Mapping[str, Path]
    trusted: bool = False
    #: True when the bundle carries an HMAC that the loader's key verified.
    signature_valid: bool = False
    #: The store key the bundle was loaded from (a signature vouches for the key it was
    #: saved under, ``manifest["key"]``).
    key: str = ""
    #: Where the loader's signing key came from: "argument", "environment" or None.
    sign_key_source: str | None = None
    #: Adapter-specific keyword arguments of ``Zoo.load`` (torch's ``builder=``...). An
    #: adapter raises TypeError for one it does not know, naming the ones it takes.
    options: dict[str, Any] = field(default_factory=dict)
    #: ``build(name, params)``: an unfitted zoo model, as ``Zoo.build`` makes it, for formats
    #: that load weights into an architecture rebuilt from its recorded zoo model.
    build: Callable[[str, dict[str, Any]], Any] | None = None
    #: Load a pickle saved with another minor version of its library (a warning, not an error).
    allow_version_mismatch: bool = False
    #: Messages for the caller (version mismatches), shown as
    #: :class:`~alphazoo.VersionMismatchWarning` at the ``Zoo.load`` line.
    notices: list[str] = field(default_factory=list)
    #: Refuse the bundle unless its HMAC verifies for this key (``require_signature=True``,
    #: the zoo's setting or ``$ALPHAZOO_REQUIRE_SIGNATURE``); the host enforces it.
    require_signature: bool = False
    #: The load's one trust decision, made by the host before any adapter runs (see
    #: :mod:`alphazoo.trust`): True when content that runs code may run (``trusted=True``, or a
    #: signature valid for this key). Adapters read this fact; they never decide trust.
    may_run_code: bool = False
    #: Bounds on what loading may read or allocate (an :class:`alphazoo.LoadLimits`); None
    #: means the defaults. Adapters check what a payload declares against them first.
    limits: Any = None

    def payload_bytes(self, name: str) -> bytes | None:
        """The verified bytes of payload file ``name`` when the host holds them in memory,
        else None (then read ``files[name]``). A reader that takes bytes (``pickle.loads``)
        skips writing and reading a file, and reads exactly the bytes that were checked."""
        files = self.files
        return files.bytes_of(name) if isinstance(files, PayloadFiles) else None


class PayloadFiles(Mapping[str, Path]):
    """A load's verified payload files by name, as paths.

    Files the host extracted are there already; those it verified in memory are written into
    ``folder`` (private to the load) the first time an adapter asks for their path, so a
    reader that takes bytes (:meth:`LoadRequest.payload_bytes`) never costs a file.
    """

    def __init__(self, folder: Path | None, extracted: Mapping[str, Path],
                 in_memory: Mapping[str, bytes]) -> None:
        self._folder = folder
        self._paths = dict(extracted)
        self._data = dict(in_memory)

    def bytes_of(self, name: str) -> bytes | None:
        """The verified bytes of ``name`` held in memory, else None."""
        return self._data.get(name)

    def __getitem__(self, name: str) -> Path:
        path = self._paths.get(name)
        if path is not None:
            return path
        content = self._data[name]  # KeyError: no such payload file
        if self._folder is None:
            raise KeyError(name)
        path = self._folder / name
        # "x": never through a file or link already there; the folder is the load's own.
        with open(path, "xb") as handle:
            write_in_slices(handle, content)
        self._paths[name] = path
        return path

    def __iter__(self) -> Iterator[str]:
        yield from self._paths
        yield from (name for name in self._data if name not in self._paths)

    def __len__(self) -> int:
        return len(self._paths.keys() | self._data.keys())

    def __repr__(self) -> str:
        return f"PayloadFiles({sorted(self)!r})"
