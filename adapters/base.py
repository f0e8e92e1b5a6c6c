"""The shape every adapter shares: a table of formats, declared once, around one dispatcher.

An adapter module declares its library's formats as :class:`Format` rows (name, payload file,
safety, what loading needs, the options each direction takes, and the library's own write and
read code) and the model classes it owns, then hands them to :class:`Adapter`. The adapter
answers the host's hooks from that table: the format list shown by ``alphazoo formats``, the
choice and checking of a format and its options on save, the one :class:`SavedPayload` built
for every format, and the dispatch of a load to the right reader. So an adapter module holds
its library's write and read code and little else, as skops' per-library modules sit around
its central dispatcher.

Formats every library has in the same shape live here too: :func:`pickle_format` and
:func:`onnx_reader` (an ONNX payload served by onnxruntime alone); :func:`onnx_sample` picks
the rows an ONNX export is checked on and :func:`onnx_facts` finishes the save (parity against
the native model on them, outputs, opsets) for the converters, which differ per library.

Nothing here imports an ML library: a module built on this base stays cheap to import, which
plugin discovery requires.
"""

from __future__ import annotations

import pickle
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from alphazoo.compat.installed import installed_versions
from alphazoo.contracts import FormatSpec, LoadRequest, SavedPayload, SaveRequest
from alphazoo.errors import BundleIntegrityError
from alphazoo.hookspecs import hookimpl
from alphazoo.limits import LoadLimits, check_bytes
from alphazoo.ownership import resolve_class

from ._common import check_options, choose_format, class_path, dump_pickle, load_pickle

__all__ = ["Adapter", "Format", "Saving", "onnx_facts", "onnx_reader", "onnx_sample",
           "payload_file", "pickle_format", "read_payload"]


@dataclass
class Saving:
    """What a format's ``write`` receives besides the model and its payload path.

    ``data`` starts as the adapter's facts common to every format (``Adapter.describe``) and
    collects the format's own (``adapter_data`` in the manifest, read back by its loader);
    ``notices`` become warnings at the caller's ``zoo.save`` line; :meth:`record` adds the
    versions of distributions this format depends on to the manifest.
    """

    request: SaveRequest
    data: dict[str, Any] = field(default_factory=dict)
    notices: list[str] = field(default_factory=list)
    libraries: dict[str, str] = field(default_factory=dict)
    #: Files the format wrote beyond its main payload file (names in the request's folder).
    extra_files: list[str] = field(default_factory=list)
    #: The manifest's input signature when this format's input differs from the model's own
    #: (a torch ONNX graph takes float32 whatever dtype the module computes in); None leaves
    #: it to the adapter's ``signature``.
    input_signature: dict[str, Any] | None = None
    #: The name of the format being written (one ``write`` may serve several rows).
    format: str = ""

    @property
    def options(self) -> dict[str, Any]:
        """The caller's adapter options for this save (already checked against the format's)."""
        return self.request.options

    def record(self, *distributions: str) -> None:
        """Record the installed versions of ``distributions`` in the manifest."""
        self.libraries.update(installed_versions(*distributions))


#: ``write(model, path, saving)``: the library's own save of ``model`` into ``path``.
Writer = Callable[[Any, Path, Saving], None]
#: ``read(path, request)``: the library's own load of the payload at ``path``.
Reader = Callable[[Path, LoadRequest], Any]
#: ``read_bytes(data, request)``: the same load from the payload's verified bytes.
BytesReader = Callable[[bytes, LoadRequest], Any]


@dataclass(frozen=True)
class Format:
    """One serialization format of an adapter, declared once.

    ``safe`` is False for a format that runs code when loaded: the host's trust guard refuses
    it unless the load is trusted or signed for its key, before ``read`` runs. The host decides
    safety from this declaration, never from a bundle's word.
    """

    name: str
    #: The payload file's name inside the bundle.
    file: str
    safe: bool
    description: str
    write: Writer
    read: Reader
    default: bool = False
    #: Optional: ``read`` from the payload's bytes, used when the host verified them in
    #: memory (:meth:`alphazoo.LoadRequest.payload_bytes`), so no file is written for it.
    read_bytes: BytesReader | None = None
    #: Distributions needed to *load* this format (an ONNX bundle needs only onnxruntime).
    load_requires: tuple[str, ...] = ()
    #: The declared schema of the manifest's ``adapter_data`` (an
    #: :class:`alphazoo.manifest_schema.Spec`), checked by the host before ``read`` runs.
    adapter_data: Any = None
    #: The keyword options of ``Zoo.save`` and ``Zoo.load`` this format takes.
    save_options: tuple[str, ...] = ()
    load_options: tuple[str, ...] = ()
    #: Distributions whose versions every save in this format records.
    records: tuple[str, ...] = ()


def pickle_format(requires: tuple[str, ...], *, file: str = "model.pkl",
                  write: Writer | None = None, read: Reader | None = None) -> Format:
    """The ``pickle`` format: the pickled object; runs code on load, so trusted only.

    ``write``/``read`` replace :mod:`pickle` for libraries with their own pickler (torch).
    """
    return Format(
        "pickle", file, False, "pickle; runs code on load, trusted only",
        write=write or _write_pickle,
        read=read or (lambda path, request: load_pickle(path)),
        read_bytes=None if read else (lambda data, request: pickle.loads(data)),
        load_requires=requires,
    )


def _write_pickle(model: Any, path: Path, saving: Saving) -> None:
    # Into the host's in-memory buffer when it offers one: pickled, hashed and written into
    # the store once, instead of into a scratch file that the bundle reads back.
    buffer = saving.request.payload_buffer(path.name)
    if buffer is None:
        dump_pickle(model, path)
    else:
        pickle.dump(model, buffer, protocol=5)


def onnx_reader(adapter: str, producers: tuple[str, ...]) -> Reader:
    """The reader of an ONNX payload: bounded and checked (:func:`check_onnx`), then served by
    onnxruntime alone as an :class:`OnnxPredictor` built from the facts the save recorded.

    A task other than ``"classification"`` (xgboost's ``"ranking"``, say) is served as values,
    as :func:`onnx_facts` checked it.
    """

    def read(path: Path, request: LoadRequest) -> Any:
        from ._onnx import OnnxPredictor
        from ._onnx_bounds import check_onnx

        check_onnx(path, request.limits, adapter=adapter, producers=producers)
        data = request.manifest.get("adapter_data", {})
        signature = request.manifest.get("input") or {}
        return OnnxPredictor(str(path), task=_served_task(data["task"]), outputs=data["outputs"],
                             classes=data.get("classes"),
                             feature_names=signature.get("feature_names"), key=request.key)

    return read


def _served_task(task: str) -> str:
    """The :class:`OnnxPredictor` task serving a model of ``task``: labels or values."""
    return "classification" if task == "classification" else "regression"


def onnx_sample(sample: Any, row_shape: Sequence[int | None], *, rows: int = 64,
                missing: str = "") -> tuple[Any, str]:
    """The float32 rows an ONNX export is checked on, and where they came from.

    ``sample`` (the rows ``zoo.train`` kept or ``zoo.save(sample=...)`` gave) when there is
    one, else ``rows`` synthetic standard-normal rows of ``row_shape`` (one row's shape, such
    as ``(n_features,)``), seeded so that a save is repeatable. Without a sample and with a
    ``row_shape`` not fully known, raises :class:`~alphazoo.UnsupportedFormatError` with
    ``missing`` as its message (say what would make the rows known).
    """
    import numpy as np

    from alphazoo.errors import UnsupportedFormatError

    if sample is not None:
        return np.asarray(sample, dtype=np.float32), "training rows"
    if any(d is None for d in row_shape):
        raise UnsupportedFormatError(missing or "ONNX export needs sample= rows for its "
                                                "parity check")
    shape = (rows, *(int(d) for d in row_shape if d is not None))
    return (np.random.default_rng(0).normal(size=shape).astype(np.float32),
            "synthetic normal rows (no training rows were recorded)")


def onnx_facts(onx: Any, path: Path, saving: Saving, *, task: str, outputs: dict[str, str],
               classes: Sequence[Any] | None, native_predict: Callable[[Any], Any],
               native_proba: Callable[[Any], Any] | None, sample: Any,
               sample_source: str, write: bool = True) -> dict[str, Any]:
    """Write the converted graph ``onx`` to ``path`` and check it against the native model.

    The graph is served exactly as a load will serve it and compared with ``native_predict``
    (and ``native_proba``) on ``sample``; :func:`check_parity` raises when they differ beyond
    the request's tolerance, so a bundle that would predict differently is never written.
    A ``task`` other than ``"classification"`` is checked (and later served) as values.
    ``write=False`` when the exporter wrote ``path`` itself (``torch.onnx.export``) and
    ``onx`` is the graph read back from it. Returns the facts a loader and a reader of the
    manifest need.
    """
    from ._onnx import OnnxPredictor, check_parity

    if write:
        path.write_bytes(onx.SerializeToString())
    listed = None if classes is None else list(classes)
    predictor = OnnxPredictor(str(path), task=_served_task(task), outputs=outputs,
                              classes=listed)
    parity = check_parity(native_predict, native_proba, predictor, sample,
                          saving.request.parity_tolerance)
    parity["sample"] = sample_source
    return {"task": task, "outputs": outputs, "classes": listed, "parity": parity,
            "opset": {d.domain or "ai.onnx": d.version for d in onx.opset_import}}


class Adapter:
    """An adapter plugin built from its format table.

    :param name: the adapter's name in manifests and the format table (``"sklearn"``).
    :param library: the library's name in messages (``"scikit-learn"``).
    :param model_types: the classes it owns, as ``"module.QualifiedName"``; the host resolves
        them without importing (see the ``alphazoo_model_types`` hook).
    :param formats: its :class:`Format` rows, exactly one ``default``.
    :param records: distributions whose versions every save records.
    :param describe: ``describe(model)``: facts for ``adapter_data`` common to every format.
    :param prepare: ``prepare(model, saving)``: runs before every format's ``write``, for what
        every format records but ``describe`` cannot see: facts that depend on the request (the
        task a zoo model was built for) or on the runtime (Keras' backend and its distribution).
    :param signature: ``signature(model, sample)``: the manifest's input signature.
    :param hints: why a format that cannot exist for this library is missing (shown when
        asked for: ``{"onnx": "no converter exists ..."}``).
    :param owns: overrides the ownership test (default: an instance of a declared class).
    """

    def __init__(
        self,
        name: str,
        *,
        library: str,
        model_types: Sequence[str],
        formats: Sequence[Format],
        records: Sequence[str] = (),
        describe: Callable[[Any], dict[str, Any]] | None = None,
        prepare: Callable[[Any, Saving], None] | None = None,
        signature: Callable[[Any, Any], dict[str, Any] | None] | None = None,
        hints: Mapping[str, str] | None = None,
        owns: Callable[[Any], bool] | None = None,
    ) -> None:
        defaults = [row.name for row in formats if row.default]
        if len(defaults) != 1:
            raise ValueError(f"adapter {name!r} needs exactly one default format, has {defaults}")
        names = [row.name for row in formats]
        if len(set(names)) != len(names):
            raise ValueError(f"adapter {name!r} declares a format twice: {names}")
        self.name = name
        self.library = library
        self.model_types = tuple(model_types)
        self.formats = {row.name: row for row in formats}
        self.default_format = defaults[0]
        self.records = tuple(records)
        self._describe = describe
        self._prepare = prepare
        self._signature = signature
        self._hints = dict(hints or {})
        self._owns = owns

    # -- ownership ---------------------------------------------------------------------------
    def owns(self, model: Any) -> bool:
        """True when ``model`` is an instance of a declared class whose module is imported.

        Never imports a library: a model of it cannot exist unless it is already imported.
        """
        if self._owns is not None:
            return self._owns(model)
        return any(isinstance(model, cls) for cls in self.declared_classes())

    def declared_classes(self) -> list[type]:
        """The declared classes whose modules are already imported."""
        return [cls for cls in map(resolve_class, self.model_types) if cls is not None]

    def _check_options(self, action: str, row: Format, options: Mapping[str, Any]) -> None:
        """Raise TypeError for options ``row`` does not take. The error says ``"save (format
        'json')"`` when another format takes one of them (``opset`` is an ONNX option), so the
        caller learns the option is the format's, not unknown; else plain ``"save"``."""
        attribute = f"{action}_options"
        accepted: tuple[str, ...] = getattr(row, attribute)
        unknown = set(options) - set(accepted)
        elsewhere = any(unknown & set(getattr(other, attribute))
                        for other in self.formats.values())
        check_options(self.library, f"{action} (format {row.name!r})" if elsewhere else action,
                      options, accepted)

    # -- hooks (module-level names in each adapter module point at these) -----------------
    @hookimpl
    def alphazoo_formats(self) -> list[FormatSpec]:
        return [FormatSpec(row.name, self.name, row.safe, row.description, row.default,
                           row.load_requires, row.adapter_data)
                for row in self.formats.values()]

    @hookimpl
    def alphazoo_model_types(self) -> list[str]:
        return list(self.model_types)

    @hookimpl
    def alphazoo_save(self, request: SaveRequest) -> SavedPayload | None:
        model = request.model
        if not self.owns(model):
            return None
        name = choose_format(self.library, request.format, self.formats, self.default_format,
                             hints=self._hints)
        row = self.formats[name]
        self._check_options("save", row, request.options)
        saving = Saving(request, data=dict(self._describe(model)) if self._describe else {},
                        format=name)
        saving.record(*self.records, *row.records)
        if self._prepare is not None:
            self._prepare(model, saving)
        path = request.directory / row.file
        row.write(model, path, saving)
        signature = saving.input_signature
        if signature is None and self._signature is not None:
            signature = self._signature(model, request.sample)
        return SavedPayload(
            adapter=self.name,
            format=name,
            files=[row.file, *saving.extra_files],
            model_class=class_path(model),
            libraries=saving.libraries,
            adapter_data=saving.data,
            input_signature=signature,
            warnings=saving.notices,
        )

    @hookimpl
    def alphazoo_load(self, request: LoadRequest) -> Any:
        manifest = request.manifest
        if manifest.get("adapter") != self.name:
            return None
        # The host's guard has checked the format against this table, the adapter_data
        # against the format's schema and the trust the format needs.
        row = self.formats[manifest["format"]]
        self._check_options("load", row, request.options)
        if row.read_bytes is not None:
            data = request.payload_bytes(row.file)
            if data is not None:  # verified in memory by the host: no file to write and read
                return row.read_bytes(data, request)
        return row.read(payload_file(request, row.file), request)


def read_payload(path: Path, limits: LoadLimits | None, what: str | None = None) -> bytes:
    """The bytes of the payload file at ``path``, its size checked against ``limits`` (the
    defaults when None) before it is read: :class:`~alphazoo.BundleLimitError` naming
    ``what`` (default: the file's name) when it is larger than ``max_bytes``."""
    check_bytes(path.stat().st_size, limits or LoadLimits(), what or path.name)
    return path.read_bytes()


def payload_file(request: LoadRequest, name: str) -> Path:
    """The extracted payload file ``name``; a manifest naming a format without its file is a
    damaged bundle."""
    path = request.files.get(name)
    if path is None:
        raise BundleIntegrityError(
            f"the bundle has no {name!r} payload for format {request.manifest.get('format')!r}"
        )
    return path
