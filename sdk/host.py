"""The plugin host: :class:`Zoo` builds, trains, saves, loads and serves models via plugins."""

from __future__ import annotations

import io
import os
import platform
import threading
import time
import warnings
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterable, cast

import pluggy

from alphazoo.compat.installed import installed_version

from . import hookspecs, model_facts
from .bundle import (
    OpenedBundle,
    read_bundle,
    read_bundle_from,
    read_manifest,
    signing_key,
    signing_key_and_source,
    write_bundle,
)
from .contracts import FormatSpec, LoadRequest, ModelSpec, PayloadFiles, SaveRequest
from .data_facts import row_count, sample_head, time_window
from .discovery import (
    PluginInfo,
    PluginLoadWarning,
    discover_plugins,
    plugin_trouble,
    register_checked,
    settle_status,
)
from .errors import (
    SaveWarning,
    UnsupportedFormatError,
    UnsupportedModelError,
    VersionMismatchWarning,
)
from .host_plugin import HostPlugin

# strict_jsonable was first published here; it stays importable from alphazoo.host.
from .jsonable import jsonable
from .jsonable import strict_jsonable as strict_jsonable
from .keys import normalize_key
from .limits import LoadLimits
from .ownership import ModelOwners
from .registry import ModelTable
from .scratch import scratch_folder
from .store import ObjectStore
from .trust import require_signature_from_env

if TYPE_CHECKING:
    from .model_registry import ModelRegistry

__all__ = ["Zoo"]

_SAMPLE_ROWS = 256
#: The name the host's own plugin is registered under.
HOST_PLUGIN = "alphazoo.host"
#: A load verifies payload files adding up to this many bytes in memory (one read each) and
#: hands them to readers that take bytes, writing a file only for a reader that wants a path;
#: larger payloads are extracted to a scratch folder, hashed as they are copied out.
KEEP_IN_MEMORY = 64 * 1024 * 1024


class Zoo:
    """The model zoo: one plugin host over one object store.

    >>> zoo = Zoo("memory://zoo-doc")                         # doctest: +SKIP
    >>> model = zoo.train(zoo.build("random_forest"), X, y)   # doctest: +SKIP
    >>> zoo.save(model, "spy/rf", format="onnx")              # doctest: +SKIP
    >>> zoo.load("spy/rf").predict(X[-1:])                    # doctest: +SKIP

    Parameters
    ----------
    store:
        An :class:`~alphazoo.ObjectStore`, or a folder/URL to open one on; default
        ``$ALPHAZOO_STORE`` or ``./storage``.
    plugins:
        Extra plugin objects or modules to register (tests, notebooks).
    discover:
        Load the plugins of the ``alphazoo`` entry-point group (default True). With False
        only ``plugins`` and the host's built-ins are present: an isolated host.
    require_signature:
        Refuse every bundle whose HMAC does not verify for the key it is loaded from,
        whatever its format (signed-only loading; see :mod:`alphazoo.trust`).
        ``$ALPHAZOO_REQUIRE_SIGNATURE=1`` demands the same for every zoo of a process.
    max_bytes:
        The load limit of this zoo (:class:`~alphazoo.LoadLimits`); default
        ``$ALPHAZOO_MAX_BYTES`` or 256 MiB.

    Plugins are discovered on first use, not in the constructor, and discovering them imports
    no ML framework: adapters import their library when they handle a model.
    """

    def __init__(
        self,
        store: ObjectStore | str | Path | None = None,
        *,
        plugins: Iterable[Any] = (),
        discover: bool = True,
        require_signature: bool = False,
        max_bytes: int | None = None,
    ) -> None:
        if max_bytes is not None:
            LoadLimits(max_bytes=max_bytes)  # a bad value fails here, not at the first load
        self.require_signature = bool(require_signature)
        self.max_bytes = max_bytes
        self._store_arg = store
        self._store: ObjectStore | None = store if isinstance(store, ObjectStore) else None
        self._extra_plugins = list(plugins)
        self._discover = discover
        self._pm: pluggy.PluginManager | None = None
        self._setup_lock = threading.Lock()
        self._plugin_rows: list[PluginInfo] = []
        self._models: ModelTable | None = None
        self._formats: list[FormatSpec] | None = None
        self._owners: ModelOwners
        self._owned_callers: dict[str, tuple[tuple[int, ...], Any]] = {}
        self._host_plugin: HostPlugin
        self._registry: ModelRegistry | None = None

    # -- plumbing ----------------------------------------------------------------------------
    @property
    def store(self) -> ObjectStore:
        """The object store models are saved into."""
        if self._store is None:
            # Not an ObjectStore, or __init__ would have kept it: a path, URL or None.
            self._store = ObjectStore(cast("str | os.PathLike[str] | None", self._store_arg))
        return self._store

    @property
    def registry(self) -> ModelRegistry:
        """The model registry of this zoo's store: versions, aliases (``production``...),
        promotion with gates, rollback and history (:class:`~alphazoo.ModelRegistry`).
        ``zoo.load("spy/gbdt@production")`` loads what an alias points at."""
        if self._registry is None:
            from .model_registry import ModelRegistry

            self._registry = ModelRegistry(self.store, zoo=self)
        return self._registry

    @property
    def pm(self) -> pluggy.PluginManager:
        """The pluggy plugin manager (created and populated on first use)."""
        if self._pm is None:
            with self._setup_lock:  # threads sharing a Zoo must not discover plugins twice
                if self._pm is None:
                    self._setup()
        assert self._pm is not None  # _setup sets it
        return self._pm

    def _setup(self) -> None:
        pm = pluggy.PluginManager(hookspecs.PROJECT)
        pm.add_hookspecs(hookspecs)
        owners = ModelOwners(pm, lambda hook_name: self._each(hook_name, pm=pm),
                             is_builtin=self._is_builtin_plugin)
        host = HostPlugin(self, lambda hook_name, model, kwargs:
                          owners.call(hook_name, model, kwargs, skip=HOST_PLUGIN))
        pm.register(host, name=HOST_PLUGIN)
        rows = discover_plugins(pm) if self._discover else []
        for index, plugin in enumerate(self._extra_plugins):
            name = getattr(plugin, "__name__", None) or f"{type(plugin).__name__}-{index}"
            row = PluginInfo(name, "-", "-", name, "loaded")
            problem = register_checked(pm, plugin, name)
            if problem is not None:
                row.status, row.error = "failed", problem
                warnings.warn(f"alphazoo plugin {name!r} is skipped: {problem}",
                              PluginLoadWarning, stacklevel=4)
            rows.append(row)
        self._plugin_rows = rows
        self._owners = owners
        self._host_plugin = host
        self._pm = pm

    def _is_builtin_plugin(self, name: str) -> bool:
        """True for the adapters alphazoo itself ships (entry points of its distribution)."""
        return any(row.name == name and row.distribution == "alphazoo"
                   for row in self._plugin_rows)

    def _owned_hook(self, hook_name: str) -> Any:
        """The caller of ``hook_name`` the host uses for a model: hook wrappers around the
        host's router, which calls the model's owner (see :mod:`alphazoo.ownership`)."""
        pm = self.pm
        impls = getattr(pm.hook, hook_name).get_hookimpls()
        identity = tuple(id(impl) for impl in impls)
        cached = self._owned_callers.get(hook_name)
        if cached is None or cached[0] != identity:  # first use, or plugins changed since
            remove = [plugin for plugin in self._owners.bypassed(hook_name)
                      if plugin is not self._host_plugin]
            caller = (pm.subset_hook_caller(hook_name, remove) if remove
                      else getattr(pm.hook, hook_name))
            cached = self._owned_callers[hook_name] = (identity, caller)
        return cached[1]

    def owner_of(self, model: Any) -> str | None:
        """The name of the plugin that trains, predicts with and saves ``model``, from the
        classes plugins declare in ``alphazoo_model_types``; None when no declared class
        matches (the plugins that declare none are then asked in turn)."""
        _ = self.pm  # discovers the plugins on first use
        return self._owners.owner(model)

    @property
    def hook(self) -> Any:
        """The hook relay, ``zoo.hook.alphazoo_save(request=...)``. Train, predict and save
        called through it reach the model's owner first (the host's router); the zoo's own
        methods also keep other plugins from being asked again after it."""
        return self.pm.hook

    def plugins(self) -> list[PluginInfo]:
        """Every plugin with its distribution, hooks, requirements and status."""
        pm = self.pm
        host = PluginInfo("alphazoo.host", "alphazoo", _alphazoo_version(), "alphazoo.host_plugin",
                          "builtin")
        rows = [host]
        rows += self._plugin_rows
        requirements = {
            name: list(answer or []) for name, answer in self._each("alphazoo_requirements")
        }
        for row in rows:
            plugin = pm.get_plugin(row.name)
            if plugin is not None:
                row.hooks = sorted(caller.name for caller in pm.get_hookcallers(plugin) or [])
                row.requires = requirements.get(row.name, [])
                settle_status(row)
        return rows

    def plugin_trouble(self, name: str | None = None) -> str:
        """``"; plugin 'x' ... failed to load ..."`` for error messages, or "" when every
        plugin works: a missing model or format may be a broken plugin's, not a typo."""
        return plugin_trouble(self.plugins(), name)

    def models(self) -> list[ModelSpec]:
        """Every registered zoo model, sorted by name."""
        return sorted(self._model_table().all().values(), key=lambda spec: spec.name)

    def formats(self) -> list[FormatSpec]:
        """Every format the loaded adapters write and read."""
        if self._formats is None:
            answers = self._each("alphazoo_formats")
            self._formats = [spec for _, specs in answers for spec in specs or []]
        return self._formats

    def describe_formats(self, adapter: str | None = None) -> str:
        """``"adapter:format, ..."`` for error messages (one adapter's, or all), or "none"."""
        specs = [s for s in self.formats() if adapter is None or s.adapter == adapter]
        return ", ".join(f"{s.adapter}:{s.name}" for s in specs) or "none"

    def format_spec(self, adapter: str | None, name: str | None) -> FormatSpec | None:
        """The format ``name`` of ``adapter``, or None when no loaded plugin declares it."""
        for spec in self.formats():
            if spec.adapter == adapter and spec.name == name:
                return spec
        return None

    def _model_table(self) -> ModelTable:
        if self._models is None:
            table = ModelTable()
            self._each("alphazoo_register_models",
                       lambda name: {"register": table.register_callback(name)})
            self._models = table
        return self._models

    def _each(self, hook_name: str, kwargs: Any = lambda name: {},
              pm: pluggy.PluginManager | None = None) -> list[tuple[str, Any]]:
        """Call one collecting hook plugin by plugin; a plugin that raises is reported, not fatal.

        pluggy's own call would abort on the first failing plugin: a model zoo keeps working
        when one third-party plugin is broken (the failure shows in ``alphazoo plugins``).
        """
        answers = []
        # ``pm`` while it is being set up (the owner table is built then).
        for impl in getattr((pm or self.pm).hook, hook_name).get_hookimpls():
            try:
                # pluggy lets an implementation take fewer arguments than its spec.
                offered = kwargs(impl.plugin_name)
                arguments = {name: offered[name] for name in impl.argnames if name in offered}
                answers.append((impl.plugin_name, impl.function(**arguments)))
            except Exception as exc:
                error = f"{hook_name} raised {type(exc).__name__}: {exc}"
                for row in self._plugin_rows:
                    if row.name == impl.plugin_name:
                        row.status, row.error = "failed", error
                warnings.warn(f"alphazoo plugin {impl.plugin_name!r}: {error}; skipped",
                              PluginLoadWarning, stacklevel=3)
        return answers

    # -- the model life cycle ----------------------------------------------------------------
    def build(self, name: str, **params: Any) -> Any:
        """An unfitted model from the zoo model ``name`` (see ``alphazoo models``)."""
        spec = self._model_spec(name)
        model = self.hook.alphazoo_build(spec=spec, params=params)
        model_facts.record(model, zoo_model=name, params=jsonable(params))
        return model

    def train(self, model: Any, X: Any, y: Any = None, **params: Any) -> Any:
        """Fit ``model`` on ``X``/``y`` through its adapter; returns the fitted model.

        The host records rows, duration, the data window (when ``X`` has a time index) and a
        few input rows; ``save`` writes them into the manifest and uses the rows for the ONNX
        parity check.
        """
        started = time.perf_counter()
        fitted = self._owned_hook("alphazoo_train")(model=model, X=X, y=y, params=params)
        if fitted is None:
            raise UnsupportedModelError(_no_adapter(model, self))
        seconds = time.perf_counter() - started
        notes = model_facts.facts_of(model)
        notes["training"] = {
            "rows": row_count(X),
            "seconds": round(seconds, 6),
            "window": time_window(X),
            "finished": _now(),
        }
        notes["sample"] = sample_head(X, _SAMPLE_ROWS)
        model_facts.record(fitted, **notes)
        return fitted

    def predict(self, model: Any, X: Any) -> Any:
        """Predictions of ``model`` on ``X`` through its adapter."""
        result = self._owned_hook("alphazoo_predict")(model=model, X=X)
        if result is None:
            raise UnsupportedModelError(_no_adapter(model, self))
        return result

    def save(
        self,
        model: Any,
        key: str,
        format: str | None = None,
        *,
        sign_key: str | bytes | None = None,
        metadata: dict[str, Any] | None = None,
        sample: Any = None,
        parity_tolerance: float = 1e-4,
        target: str | None = None,
        **options: Any,
    ) -> dict[str, Any]:
        """Save ``model`` as one bundle under ``key``; returns the manifest.

        ``target="quantconnect"`` refuses (:class:`~alphazoo.UnsupportedFormatError`, nothing
        stored) a bundle that would not load there, naming a format that would; see
        :meth:`check_target`.

        ``format`` defaults to the owning adapter's safe default. ``sign_key`` (or
        ``$ALPHAZOO_SIGNING_KEY``) adds an HMAC-SHA256 that lets a holder of the key load
        pickle bundles without ``trusted=True``. ``metadata`` (JSON values) is stored as is.
        ``sample`` gives input rows for the ONNX export and its parity check; by default the
        rows seen by :meth:`train` are used. Other keyword arguments go to the adapter (see
        its module's documentation); one it does not take raises TypeError.
        """
        key = normalize_key(key)  # refuse a bad key before the adapter does any work
        key_bytes = signing_key(sign_key)
        notes = model_facts.facts_of(model)
        if sample is None:
            sample = notes.get("sample")
        with scratch_folder() as tmp:
            request = SaveRequest(model, format, tmp, sample, parity_tolerance,
                                  zoo_model=notes.get("zoo_model"), params=notes.get("params"),
                                  options=options, buffers={})
            try:
                try:
                    payload = self._owned_hook("alphazoo_save")(request=request)
                except UnsupportedFormatError as exc:
                    raise self._with_writers(exc, model, format) from exc
                if payload is None:
                    raise UnsupportedModelError(_no_adapter(model, self))
                if format is not None and payload.format != format:
                    raise UnsupportedFormatError(
                        f"format {format!r} was asked for, but adapter {payload.adapter!r} wrote "
                        f"{payload.format!r}; its formats: {self.describe_formats(payload.adapter)}"
                    )
                manifest = {
                    "key": key,
                    "name": notes.get("zoo_model") or type(model).__name__,
                    "params": notes.get("params"),
                    "adapter": payload.adapter,
                    "format": payload.format,
                    "model_class": payload.model_class,
                    "libraries": payload.libraries,
                    "python": platform.python_version(),
                    "alphazoo": _alphazoo_version(),
                    "input": payload.input_signature,
                    "training": notes.get("training"),
                    "metadata": jsonable(metadata or {}),
                    "adapter_data": payload.adapter_data,
                    "created": _now(),
                }
                if target is not None:
                    found = self._verdict(manifest, target)
                    if not found.loads:
                        instead = (f"save it with format={found.instead!r}, which loads there"
                                   if found.instead else
                                   f"no format of adapter {payload.adapter!r} loads there")
                        reasons = "; ".join(found.reasons)
                        raise UnsupportedFormatError(
                            f"{key!r} would not load on {found.target}: {reasons}. "
                            f"{instead[0].upper()}{instead[1:]}."
                        )
                for notice in payload.warnings:
                    warnings.warn(f"{key!r}: {notice}", SaveWarning, stacklevel=2)
                return write_bundle(self.store, key, manifest, request.directory, payload.files,
                                    key_bytes, buffers=request.buffers)
            finally:
                for buffer in (request.buffers or {}).values():
                    buffer.close()  # a failed save must not leave a hashing thread waiting

    def load(
        self,
        key: str,
        *,
        trusted: bool = False,
        sign_key: str | bytes | None = None,
        allow_version_mismatch: bool = False,
        require_signature: bool = False,
        max_bytes: int | None = None,
        **options: Any,
    ) -> Any:
        """Load the model saved under ``key``.

        The whole bundle is verified first (:class:`~alphazoo.BundleIntegrityError` on any
        changed byte). Formats that run code (pickle) load only with ``trusted=True`` or when
        the bundle's HMAC verifies with ``sign_key`` (or ``$ALPHAZOO_SIGNING_KEY``); otherwise
        :class:`~alphazoo.UntrustedModelError`. Nothing is unpickled before both checks.
        The versions the bundle was saved with are compared with those installed (see
        :mod:`alphazoo.compat.bundles`): a pickle needs the same minor version of its library
        (:class:`~alphazoo.IncompatibleVersionError`, or a warning with
        ``allow_version_mismatch=True``); other formats warn on a major difference
        (:class:`~alphazoo.VersionMismatchWarning`). Other keyword arguments go to the adapter
        (torch's ``builder=``, for one).

        ``require_signature=True`` (or the zoo's setting, or
        ``$ALPHAZOO_REQUIRE_SIGNATURE=1``) refuses any bundle, of any format, whose HMAC does
        not verify for ``key``; ``trusted=True`` does not lift it. ``max_bytes`` bounds what
        the load may decompress or allocate (:class:`~alphazoo.LoadLimits`; default the zoo's,
        ``$ALPHAZOO_MAX_BYTES`` or 256 MiB): a larger declaration raises
        :class:`~alphazoo.BundleLimitError` before anything is allocated, signed or not. A
        manifest its schema refuses raises :class:`~alphazoo.BundleFormatError`.

        ``key`` may name a registry version: ``"spy/gbdt@production"`` (an alias),
        ``"spy/gbdt@v3"``, ``"spy/gbdt@latest"`` (see :meth:`resolve`).
        """
        key = normalize_key(self.resolve(key))
        store = self.store
        return self._load(lambda *args, **kw: read_bundle(store, key, *args, **kw), key,
                          trusted, sign_key, allow_version_mismatch, require_signature,
                          max_bytes, options)

    def load_bytes(
        self,
        data: bytes | bytearray | memoryview,
        *,
        key: str | None = None,
        trusted: bool = False,
        sign_key: str | bytes | None = None,
        allow_version_mismatch: bool = False,
        require_signature: bool = False,
        max_bytes: int | None = None,
        **options: Any,
    ) -> Any:
        """Load a model from the bytes of a bundle (``store.read_bytes(key)``, a file...).

        The same checks as :meth:`load`. A signature vouches for the key a bundle was saved
        under: give ``key``, where the bytes were read from, and a signed pickle loads only
        when that is its key; by default the bundle's own recorded key is taken.
        """
        # Read in memory, as a store's object would be streamed: no copy through a file.
        where = normalize_key(key) if key is not None else None
        buffer = io.BytesIO(bytes(data))
        return self._load(lambda *args, **kw: read_bundle_from(buffer, where or "<bytes>",
                                                           *args, **kw),
                          where, trusted, sign_key, allow_version_mismatch, require_signature,
                          max_bytes, options)

    def _load(self, open_bundle: Callable[..., OpenedBundle], key: str | None, trusted: bool,
              sign_key: str | bytes | None, allow_version_mismatch: bool,
              require_signature: bool, max_bytes: int | None, options: dict[str, Any]) -> Any:
        """Verify and load what ``open_bundle(extract_to, sign_key, limits)`` reads; ``key``
        is where it came from (None: the key its verified manifest records)."""
        key_bytes, key_source = signing_key_and_source(sign_key)
        limits = LoadLimits.resolve(max_bytes, self.max_bytes)
        required = require_signature or self.require_signature or require_signature_from_env()
        with scratch_folder() as tmp:
            # Payloads up to KEEP_IN_MEMORY are verified in memory and reach a reader that
            # takes bytes without a file; the others are hashed as they are extracted. Either
            # way no adapter runs before every payload byte was checked.
            opened = open_bundle(tmp, key_bytes, limits, keep=KEEP_IN_MEMORY)
            manifest = opened.manifest
            if key is None:
                key = normalize_key(manifest["key"])
            files = PayloadFiles(tmp, opened.files, opened.data)
            request = LoadRequest(manifest, files, trusted, opened.signature_valid,
                                  key=key, sign_key_source=key_source, options=options,
                                  build=self._build_for_load,
                                  allow_version_mismatch=allow_version_mismatch,
                                  require_signature=required, limits=limits)
            model = self.hook.alphazoo_load(request=request)
        for notice in request.notices:
            # Attributed to the caller of load() or load_bytes(), two frames up.
            warnings.warn(notice, VersionMismatchWarning, stacklevel=3)
        if manifest.get("params") is not None:  # a zoo model: the name is its builder's
            model_facts.record(model, zoo_model=manifest.get("name"),
                               params=manifest.get("params"))
        return model

    def _with_writers(self, error: UnsupportedFormatError, model: Any,
                      format: str | None) -> UnsupportedFormatError:
        """``error`` (the owning adapter refused ``format``) naming the other adapters that
        write ``format``: the host knows them all, an adapter only its own."""
        owner = self.owner_of(model)
        writers = sorted({spec.adapter for spec in self.formats()
                          if spec.name == format and spec.adapter != owner})
        if not writers:
            return error
        whose = (f"the {writers[0]} adapter's format" if len(writers) == 1 else
                 f"a format of the {', '.join(writers[:-1])} and {writers[-1]} adapters")
        return UnsupportedFormatError(f"{error}; {format} is {whose}")

    def _model_spec(self, name: str) -> ModelSpec:
        from .errors import ModelNotFoundError

        try:
            return self._model_table().get(name)
        except ModelNotFoundError as exc:
            trouble = self.plugin_trouble()
            if not trouble:
                raise
            raise ModelNotFoundError(f"{exc}{trouble}") from None

    def _build_for_load(self, name: str, params: dict[str, Any]) -> Any:
        spec = self._model_spec(name)
        return self.hook.alphazoo_build(spec=spec, params=dict(params))

    def resolve(self, key: str) -> str:
        """The store key ``key`` names: ``"spy/gbdt@production"`` (what the alias points at),
        ``"spy/gbdt@v3"`` and ``"spy/gbdt@latest"`` become ``"spy/gbdt/v000003"``; a plain
        key is returned as given. See :meth:`alphazoo.ModelRegistry.resolve`."""
        if not isinstance(key, str) or "@" not in key:
            return key
        return self.registry.resolve(key)

    def inspect(self, key: str) -> dict[str, Any]:
        """The manifest of the bundle under ``key`` (the whole bundle is verified first);
        ``key`` may be a registry reference (``"spy/gbdt@production"``)."""
        return read_manifest(self.store, self.resolve(key), LoadLimits.resolve(self.max_bytes))

    def check_target(self, key: str, target: str = "quantconnect") -> Any:
        """Whether the bundle under ``key`` loads on ``target``, and why not.

        Returns a :class:`~alphazoo.compat.targets.TargetVerdict`: ``loads``, ``reasons``
        (the format's library is absent there, a version rule fails with the target's
        versions, an ONNX opset is above what its onnxruntime opens, the reader cannot read
        the format), ``warnings`` and ``instead`` (a format of the same adapter that would
        load). ``alphazoo inspect KEY --target quantconnect`` prints it.
        """
        return self._verdict(read_manifest(self.store, self.resolve(key),
                                           LoadLimits.resolve(self.max_bytes)), target)

    def _verdict(self, manifest: dict[str, Any], target: str) -> Any:
        from alphazoo.compat.targets import verdict

        adapter, fmt = manifest.get("adapter"), manifest.get("format")
        spec = self.format_spec(adapter, fmt)
        # The most portable first: safe formats, ONNX among them, then the adapter's default.
        others = sorted((s for s in self.formats() if s.adapter == adapter),
                        key=lambda s: (not s.safe, s.name != "onnx", not s.default, s.name))
        return verdict(manifest, target,
                       load_requires=spec.load_requires if spec else (),
                       safe=spec.safe if spec else False,
                       alternatives=[(s.name, s.load_requires, s.safe) for s in others])



def _no_adapter(model: Any, zoo: Zoo) -> str:
    kind = f"{type(model).__module__}.{type(model).__qualname__}"
    adapters = sorted({spec.adapter for spec in zoo.formats()})
    return (
        f"no loaded adapter handles {kind} objects (adapters: {', '.join(adapters) or 'none'}; "
        f"formats: {zoo.describe_formats()}); install the adapter for its library or register "
        f"a plugin{zoo.plugin_trouble()}"
    )


def _alphazoo_version() -> str:
    return installed_version("alphazoo") or "unknown"


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")
