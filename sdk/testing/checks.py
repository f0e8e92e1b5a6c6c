"""The checks of :func:`alphazoo.testing.check_adapter`, one function each, in running order.

Each check takes the :class:`Session` (the plugin, its zoo, the model and what earlier checks
already produced: the saved bundles, the children's reports) and raises
:class:`~alphazoo.errors.AdapterCheckError` through :meth:`Session.fail`. The session makes
what a check needs on first use, so any check can run alone (``checks=["trust"]``) and a
full run saves and loads each bundle once.

Only public surfaces are used: the hooks a plugin implements, :class:`~alphazoo.Zoo`'s
methods and the object store's, so the kit judges a plugin as the host really drives it.
"""

from __future__ import annotations

import inspect
import re
import tempfile
import warnings
from importlib import metadata
from pathlib import Path
from typing import Any, Callable, NoReturn, Sequence

import numpy as np

from alphazoo.contracts import FormatSpec
from alphazoo.discovery import PluginLoadWarning
from alphazoo.errors import (
    AdapterCheckError,
    BundleIntegrityError,
    UnsupportedFormatError,
    UnsupportedModelError,
    VersionMismatchWarning,
)
from alphazoo.host import Zoo
from alphazoo.ownership import resolve_class
from alphazoo.store import ObjectStore

from .child import ChildFailed, resolve_plugin, run_child

__all__ = ["CHECKS", "DEFAULT_HEAVY_MODULES", "Session", "make_folder", "resolve_plugin"]

#: Top-level modules no plugin may import when it is imported (discovery must stay light).
DEFAULT_HEAVY_MODULES = ("torch", "tensorflow", "keras", "jax", "sklearn", "xgboost",
                         "lightgbm", "catboost", "hmmlearn", "onnx", "onnxruntime", "skops",
                         "skl2onnx", "tf2onnx", "onnxmltools")

# A distribution name as PEP 508 spells it ("scikit-learn", "onnxruntime"), nothing more.
_NAME = re.compile(r"^([A-Z0-9]|[A-Z0-9][A-Z0-9._-]*[A-Z0-9])$", re.IGNORECASE)
_SAMPLE_ROWS = 32


def _canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


class Session:
    """One plugin under test and what the checks found so far."""

    def __init__(self, plugin: str, make_model: Callable[..., Any], X: Any, *,
                 other_plugins: Sequence[str], foreign_models: Sequence[Any],
                 formats: Sequence[str] | None, library_modules: Sequence[str],
                 heavy_modules: Sequence[str], rtol: float, atol: float, onnx_rtol: float,
                 onnx_atol: float, tolerances: dict[str, tuple[float, float]],
                 sample: Any, save_options: dict[str, dict[str, Any]], timeout: float,
                 folder: Path) -> None:
        self.plugin_path = plugin
        self.plugin_paths = [plugin, *other_plugins]
        self.make_model = make_model
        self.X = np.asarray(X)
        if self.X.dtype.kind not in "biuf":
            raise TypeError(f"X must be numbers (the children read it as a .npy file), not "
                            f"{self.X.dtype}")
        self.foreign_models = list(foreign_models)
        self.requested_formats = None if formats is None else list(formats)
        self.library_modules = tuple(library_modules)
        self.heavy_modules = tuple(dict.fromkeys([*library_modules, *heavy_modules]))
        self.rtol, self.atol = rtol, atol
        self.onnx_rtol, self.onnx_atol = onnx_rtol, onnx_atol
        self.tolerances = dict(tolerances)
        self.sample = self.X[:_SAMPLE_ROWS] if sample is None else sample
        self.save_options = save_options
        self.timeout = timeout
        self.folder = folder
        self.current = ""
        self.skipped: dict[str, str] = {}
        self.plugin = resolve_plugin(plugin)
        self.store = ObjectStore(folder / "store")
        # Only the plugin under test: its own formats and the objects it claims on its own.
        self.own_zoo = Zoo(self.store, plugins=[self.plugin], discover=False)
        self.zoo = Zoo(self.store, plugins=[self.plugin, *map(resolve_plugin, other_plugins)],
                       discover=False)
        self._model: Any = None
        self._made = False
        self._default: dict[str, Any] | None = None
        self._saved: dict[str, str] | None = None
        self._expected: np.ndarray | None = None
        self._children: dict[str, dict[str, Any]] = {}
        self._library_dists: set[str] | None = None

    # -- helpers -------------------------------------------------------------------------
    def summary(self) -> tuple[str | None, list[str]]:
        """The adapter that wrote the bundles and the formats saved (None, [] before any)."""
        adapter = None if self._default is None else str(self._default["adapter"])
        return adapter, list(self._saved or {})

    def fail(self, problem: str) -> NoReturn:
        """Raise the running check's failure: :class:`AdapterCheckError` naming the check."""
        raise AdapterCheckError(self.current, problem, self.plugin_path)

    def own_formats(self) -> list[FormatSpec]:
        """The formats the plugin under test declares (checked for warnings: a plugin whose
        ``alphazoo_formats`` raises is skipped by the host with a PluginLoadWarning)."""
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", PluginLoadWarning)
            specs = list(self.own_zoo.formats())
        for warning in caught:
            if issubclass(warning.category, PluginLoadWarning):
                self.fail(f"the host skipped the plugin: {warning.message}")
        return specs

    @property
    def model(self) -> Any:
        """The model from ``make_model`` (called with the zoo when it takes an argument)."""
        if not self._made:
            try:
                takes_zoo = bool(inspect.signature(self.make_model).parameters)
            except (TypeError, ValueError):
                takes_zoo = False
            try:
                self._model = self.make_model(self.zoo) if takes_zoo else self.make_model()
            except Exception as exc:
                self.fail(f"make_model raised {type(exc).__name__}: {exc}")
            self._made = True
        return self._model

    @property
    def default_manifest(self) -> dict[str, Any]:
        """The manifest of the model saved in its adapter's default format."""
        if self._default is None:
            model = self.model
            try:
                manifest = self.zoo.save(model, "conformance/default", sample=self.sample)
            except UnsupportedModelError as exc:
                self.fail(f"expected the plugin to save its own model, a "
                          f"{_kind(model)}; no adapter claimed it: {exc}")
            except Exception as exc:
                self.fail(f"saving the plugin's own model raised {type(exc).__name__}: {exc}")
            self._default = manifest
        return self._default

    @property
    def adapter(self) -> str:
        """The adapter that wrote the model's bundles."""
        return str(self.default_manifest["adapter"])

    def formats(self) -> list[FormatSpec]:
        """The formats under test: the owning adapter's, or the ``formats=`` among them."""
        specs = [spec for spec in self.zoo.formats() if spec.adapter == self.adapter]
        if self.requested_formats is None:
            return specs
        known = {spec.name for spec in specs}
        unknown = [name for name in self.requested_formats if name not in known]
        if unknown:
            raise UnsupportedFormatError(
                f"formats= names {', '.join(map(repr, unknown))}, which adapter "
                f"{self.adapter!r} does not declare; its formats: {', '.join(sorted(known))}")
        return [spec for spec in specs if spec.name in self.requested_formats]

    def library_free(self, spec: FormatSpec) -> bool:
        """Whether ``spec`` loads without the training library (an ONNX format)."""
        if not self.library_modules:
            return False
        needs = {_canonical(name) for name in spec.load_requires}
        return not needs & self._library_distributions()

    def _library_distributions(self) -> set[str]:
        if self._library_dists is None:  # reading every installed distribution: once
            owners = metadata.packages_distributions()
            names = set()
            for module in self.library_modules:
                names.add(_canonical(module))
                names.update(_canonical(dist) for dist in owners.get(module, ()))
            self._library_dists = names
        return self._library_dists

    def tolerance(self, spec: FormatSpec) -> tuple[float, float]:
        """``(rtol, atol)`` for comparing ``spec``'s predictions with the model's."""
        if spec.name in self.tolerances:
            return self.tolerances[spec.name]
        if "onnxruntime" in {_canonical(name) for name in spec.load_requires}:
            return self.onnx_rtol, self.onnx_atol
        return self.rtol, self.atol

    def saved(self) -> dict[str, str]:
        """Format name -> the key of the model saved in it."""
        if self._saved is None:
            saved, model = {}, self.model
            for spec in self.formats():
                key = f"conformance/{spec.name}"
                try:
                    self.zoo.save(model, key, format=spec.name, sample=self.sample,
                                  **self.save_options.get(spec.name, {}))
                except Exception as exc:
                    self.fail(f"saving in format {spec.name!r} raised {type(exc).__name__}: "
                              f"{exc} (pass formats= to test fewer formats)")
                saved[spec.name] = key
            self._saved = saved
        return self._saved

    def expected(self) -> np.ndarray:
        """The in-process model's predictions on ``X``."""
        if self._expected is None:
            model = self.model
            try:
                expected = np.asarray(self.zoo.predict(model, self.X))
            except Exception as exc:
                self.fail(f"predicting with the in-process model raised "
                          f"{type(exc).__name__}: {exc}")
            self._expected = expected
        return self._expected

    def child(self, kind: str) -> dict[str, Any]:
        """The report of the child that loads every format (``"native"``, which also probes
        the plugin's imports first) or the library-free ones with the library blocked
        (``"bare"``)."""
        if kind not in self._children:
            specs = self.formats()
            if kind == "bare":
                specs = [spec for spec in specs if self.library_free(spec)]
            saved = self.saved()
            np.save(self.folder / "X.npy", self.X, allow_pickle=False)
            loads = [{"key": saved[spec.name], "format": spec.name, "trusted": not spec.safe,
                      "probe_untrusted": not spec.safe,
                      "predictions": str(self.folder / f"{kind}-{spec.name}.npy")}
                     for spec in specs]
            job = {"plugins": self.plugin_paths, "store": str(self.folder / "store"),
                   "X": str(self.folder / "X.npy"), "loads": loads,
                   "blocked": list(self.library_modules) if kind == "bare" else [],
                   "probe_imports": kind == "native", "heavy": list(self.heavy_modules)}
            try:
                report = run_child(job, self.folder, self.timeout)
            except ChildFailed as exc:
                self.fail(f"a fresh interpreter failed: {exc}")
            if "crash" in report:
                self.fail(f"the fresh interpreter failed before loading: {report['crash']}")
            self._children[kind] = report
        return self._children[kind]

    def compare(self, spec: FormatSpec, kind: str, where: str) -> None:
        """Fail unless the ``kind`` child predicted as the in-process model did."""
        seen = self.child(kind)["loads"][spec.name]
        if "error" in seen:
            self.fail(f"format {spec.name!r} {where}: expected it to load and predict; "
                      f"{seen['error']}")
        got = np.load(self.folder / f"{kind}-{spec.name}.npy", allow_pickle=False)
        expected = self.expected()
        rtol, atol = self.tolerance(spec)
        problem = _difference(expected, got, rtol, atol)
        if problem:
            self.fail(f"format {spec.name!r} {where}: expected the in-process model's "
                      f"predictions (rtol={rtol:g}, atol={atol:g}); {problem}")


# -- the checks --------------------------------------------------------------------------------
def check_formats(s: Session) -> None:
    """``alphazoo_formats``: well-formed rows, one adapter, unique names, one default."""
    specs = s.own_formats()
    if not specs:
        if len(s.plugin_paths) > 1:
            s.skipped["formats"] = "the plugin declares no formats (it saves through others)"
            return
        s.fail("expected alphazoo_formats to declare at least one FormatSpec; it declared none")
    for spec in specs:
        if not isinstance(spec, FormatSpec):
            s.fail(f"expected FormatSpec rows; saw a {type(spec).__name__}: {spec!r}")
        for field in ("name", "adapter", "description"):
            if not isinstance(getattr(spec, field), str) or not getattr(spec, field):
                s.fail(f"expected format {spec.name!r}'s {field} to be a non-empty string; "
                       f"saw {getattr(spec, field)!r}")
        for field in ("safe", "default"):
            if type(getattr(spec, field)) is not bool:
                s.fail(f"expected format {spec.name!r}'s {field} to be True or False; saw "
                       f"{getattr(spec, field)!r}")
        requires = spec.load_requires
        if not isinstance(requires, (tuple, list)) or not all(
                isinstance(name, str) and _NAME.match(name) for name in requires):
            s.fail(f"expected format {spec.name!r}'s load_requires to be distribution names "
                   f"such as ('scikit-learn', 'onnxruntime'), without versions; saw "
                   f"{requires!r}")
    adapters = sorted({spec.adapter for spec in specs})
    if len(adapters) != 1:
        s.fail(f"expected every format of the plugin to name one adapter; they name "
               f"{', '.join(map(repr, adapters))}")
    names = [spec.name for spec in specs]
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        s.fail(f"expected unique format names; {', '.join(map(repr, repeated))} declared twice")
    defaults = [spec.name for spec in specs if spec.default]
    if len(defaults) != 1:
        s.fail(f"expected exactly one default format; saw {len(defaults)}"
               f"{': ' + ', '.join(defaults) if defaults else ''}")


def check_ownership(s: Session) -> None:
    """The plugin saves its own model and declines foreign objects."""
    manifest = s.default_manifest
    own = {spec.adapter for spec in s.own_formats()}
    if own and manifest["adapter"] not in own:
        s.fail(f"expected adapter {sorted(own)[0]!r} to save the plugin's model; adapter "
               f"{manifest['adapter']!r} did")
    foreign = [object(), {"weights": [1.0, 2.0]}, np.zeros((3, 2)), *s.foreign_models]
    for index, thing in enumerate(foreign):
        try:
            claimed = s.own_zoo.save(thing, f"conformance/foreign-{index}")
        except UnsupportedModelError:
            continue
        except Exception as exc:
            s.fail(f"expected alphazoo_save to return None for a foreign {_kind(thing)}; it "
                   f"raised {type(exc).__name__}: {exc}")
        s.fail(f"expected the plugin to decline a foreign {_kind(thing)}; adapter "
               f"{claimed['adapter']!r} saved it in format {claimed['format']!r} (alphazoo_save "
               "must return None for models that are not its own)")
    _check_model_types(s)


def _check_model_types(s: Session) -> None:
    caller = getattr(s.own_zoo.hook, "alphazoo_model_types", None)
    impls = [impl for impl in (caller.get_hookimpls() if caller else [])
             if impl.plugin is s.plugin]
    if not impls:
        return
    declared: list[str] = []
    for impl in impls:
        answer = impl.function()
        if not isinstance(answer, (list, tuple)) or not all(
                isinstance(path, str) and "." in path for path in answer):
            s.fail(f"expected alphazoo_model_types to return 'module.QualName' strings; saw "
                   f"{answer!r}")
        declared += answer
    if not declared:  # declaring none is allowed: the host asks such plugins in turn
        return
    model = s.model
    classes = [cls for cls in map(resolve_class, declared) if cls is not None]
    if not any(isinstance(model, cls) for cls in classes):
        s.fail(f"expected the model, a {_kind(model)}, to be an instance of a class the plugin "
               f"declares in alphazoo_model_types; it declares {', '.join(declared)}")


def check_round_trip(s: Session) -> None:
    """Every format saved here loads in a fresh interpreter and predicts the same."""
    for spec in s.formats():
        s.compare(spec, "native", "loaded in a fresh interpreter")


def check_without_library(s: Session) -> None:
    """Formats that need no training library load and predict where it cannot be imported."""
    if not s.library_modules:
        s.skipped["without_library"] = "no library_modules given"
        return
    free = [spec for spec in s.formats() if s.library_free(spec)]
    if not free:
        s.skipped["without_library"] = "no format loads without the library"
        return
    blocked = ", ".join(s.library_modules)
    for spec in free:
        s.compare(spec, "bare", f"(load_requires {list(spec.load_requires)}) loaded where "
                                f"{blocked} cannot be imported")


def check_trust(s: Session) -> None:
    """Unsafe formats are refused unless trusted; safe formats unpickle nothing."""
    report = s.child("native")["loads"]
    for spec in s.formats():
        seen = report[spec.name]
        if spec.safe:
            if seen.get("unpickled"):
                s.fail(f"format {spec.name!r} is declared safe=True, but loading it unpickled "
                       f"{', '.join(sorted(set(seen['unpickled']))[:5])}: expected no "
                       "unpickling; declare the format safe=False (trusted loads only)")
            continue
        if seen.get("untrusted") != "refused":
            s.fail(f"expected format {spec.name!r} (safe=False) to be refused without "
                   f"trusted=True (UntrustedModelError); saw {seen.get('untrusted')!r}")
        if "error" in seen:
            s.fail(f"expected format {spec.name!r} to load with trusted=True; {seen['error']}")


def check_tamper(s: Session) -> None:
    """A flipped byte anywhere in a stored bundle is refused as corrupt, before trust."""
    _ = s.default_manifest  # saves "conformance/default"
    keys = ["conformance/default", *(s._saved or {}).values()]
    for key in keys:
        data = s.store.read_bytes(key)
        manifest = s.zoo.inspect(key)
        spec = s.zoo.format_spec(manifest.get("adapter"), manifest.get("format"))
        trusted = spec is None or not spec.safe
        try:  # the bytes as stored load: what fails below fails for the flipped byte
            with warnings.catch_warnings():  # version notes belong to round_trip's loads
                warnings.simplefilter("ignore", VersionMismatchWarning)
                s.zoo.load_bytes(data, key=key, trusted=trusted)
        except Exception as exc:
            s.fail(f"expected the untouched bundle {key!r} to load from its bytes; saw "
                   f"{type(exc).__name__}: {exc}")
        # Inside the manifest, inside the payload, and the closing hash. Untrusted: integrity
        # must be judged before trust, so even a pickle bundle says it is corrupt.
        for position in sorted({60, len(data) // 2, len(data) * 3 // 4, len(data) - 1}):
            changed = bytearray(data)
            changed[position] ^= 0xFF
            try:
                s.zoo.load_bytes(bytes(changed), key=key)
            except BundleIntegrityError:
                continue
            except Exception as exc:
                s.fail(f"expected BundleIntegrityError for bundle {key!r} with byte {position} "
                       f"of {len(data)} flipped; saw {type(exc).__name__}: {exc}")
            s.fail(f"expected BundleIntegrityError for bundle {key!r} with byte {position} of "
                   f"{len(data)} flipped; it loaded")


def check_light_import(s: Session) -> None:
    """Importing the plugin (and reading its formats and models) imports no ML framework."""
    if "native" in s._children:
        report = s._children["native"]
    else:  # run alone: a child that only imports
        try:
            report = run_child({"plugins": s.plugin_paths, "store": str(s.folder / "store"),
                                "X": "", "loads": [], "blocked": [], "probe_imports": True,
                                "heavy": list(s.heavy_modules)}, s.folder, s.timeout)
        except ChildFailed as exc:
            s.fail(f"a fresh interpreter failed: {exc}")
        if "crash" in report and "imported" not in report:
            s.fail(f"importing the plugin in a fresh interpreter failed: {report['crash']}")
    imported = report.get("imported")
    if imported:
        s.fail(f"expected importing {s.plugin_path} and reading its formats and models to "
               f"import no ML framework; it imported {', '.join(imported)}: import the "
               "library inside the hooks that handle its models")


#: The checks in running order: name -> function.
CHECKS: dict[str, Callable[[Session], None]] = {
    "formats": check_formats,
    "ownership": check_ownership,
    "round_trip": check_round_trip,
    "without_library": check_without_library,
    "trust": check_trust,
    "tamper": check_tamper,
    "light_import": check_light_import,
}


def _kind(obj: Any) -> str:
    return f"{type(obj).__module__}.{type(obj).__qualname__}"


def _difference(expected: np.ndarray, got: np.ndarray, rtol: float, atol: float) -> str:
    """"" when ``got`` matches ``expected``, else what differs."""
    if expected.shape != got.shape:
        return f"saw shape {got.shape}, expected {expected.shape}"
    if expected.dtype.kind in "fc" or got.dtype.kind in "fc":
        close = np.isclose(got.astype(float), expected.astype(float), rtol=rtol, atol=atol,
                           equal_nan=True)
        if close.all():
            return ""
        worst = np.abs(got.astype(float) - expected.astype(float))
        index = np.unravel_index(int(np.nanargmax(np.where(close, 0, worst))), worst.shape)
        return (f"{int((~close).sum())} of {close.size} values differ, the largest by "
                f"{float(worst[index]):.3g} at {tuple(map(int, index))} "
                f"(saw {got[index]!r}, expected {expected[index]!r})")
    if np.array_equal(got, expected):
        return ""
    differ = got != expected
    first = tuple(int(i) for i in np.argwhere(differ)[0])
    return (f"{int(differ.sum())} of {differ.size} values differ, first at {first} "
            f"(saw {got[first]!r}, expected {expected[first]!r})")


def make_folder() -> tempfile.TemporaryDirectory[str]:
    """A scratch folder for one run (the store, the children's files)."""
    return tempfile.TemporaryDirectory(prefix="alphazoo-testing-")
