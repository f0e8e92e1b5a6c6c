"""The adapter conformance kit: run :func:`check_adapter` in a plugin's own test suite.

Modelled on scikit-learn's ``check_estimator``: a list of named checks (:data:`CHECK_NAMES`),
run in order, each failing with :class:`~alphazoo.AdapterCheckError` whose message starts
with the check's name and says what was expected and what was seen::

    from alphazoo.testing import check_adapter

    def test_my_plugin_conforms():
        X = np.random.default_rng(0).normal(size=(50, 4))
        y = X.sum(axis=1)
        check_adapter("my_package.plugin", lambda: MyModel().fit(X, y), X,
                      library_modules=("mylib",))

The checks:

``formats``
    ``alphazoo_formats`` rows are :class:`~alphazoo.FormatSpec` with unique names, one
    adapter name, exactly one default, bool ``safe``/``default`` flags and ``load_requires``
    that are distribution names.
``ownership``
    Through a :class:`~alphazoo.Zoo` with the plugin registered, its model saves (and with its
    own adapter), while a plain object, a dict, a numpy array and ``foreign_models`` are
    declined (``alphazoo_save`` returns None). A plugin implementing
    ``alphazoo_model_types`` must declare a class the model is an instance of.
``round_trip``
    The model is saved in every format of its adapter (or ``formats=``) into a folder store,
    loaded in a fresh interpreter and its predictions on ``X`` compared with the in-process
    model's: exactly by default (``rtol``/``atol``), within float32 rounding for formats
    served by onnxruntime (``onnx_rtol``/``onnx_atol``), ``tolerances={format: (rtol,
    atol)}`` for any other.
``without_library``
    Formats whose ``load_requires`` need none of ``library_modules`` (ONNX) load and predict
    in a fresh interpreter where those modules cannot be imported.
``trust``
    Every ``safe=False`` format is refused without ``trusted=True``
    (:class:`~alphazoo.UntrustedModelError`) and loads with it; loading a ``safe=True``
    format unpickles nothing (Python's ``pickle.find_class`` audit event is watched).
``tamper``
    The stored bundle with one byte flipped (in the manifest, the payload, the closing hash)
    is refused with :class:`~alphazoo.BundleIntegrityError`.
``light_import``
    Importing the plugin and reading its formats and models in a fresh interpreter imports
    none of ``library_modules`` nor a big framework (:data:`DEFAULT_HEAVY_MODULES`).

To get one test item per check, parametrize over :data:`CHECK_NAMES` and pass
``checks=[name]``: each check makes what it needs (a run of all of them saves and loads each
bundle once, so it is the cheaper way).

Fresh interpreters are started with this interpreter's executable and import path (what the
test process can import, they can), without ``$ALPHAZOO_SIGNING_KEY``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any, Callable, Mapping, Sequence

from alphazoo.errors import AdapterCheckError, UnsupportedFormatError

from .checks import CHECKS, DEFAULT_HEAVY_MODULES, Session, make_folder
from .child import CHILD_TIMEOUT

__all__ = ["check_adapter", "AdapterCheckReport", "AdapterCheckError", "CHECK_NAMES",
           "DEFAULT_HEAVY_MODULES"]

#: The checks' names, in the order they run.
CHECK_NAMES: tuple[str, ...] = tuple(CHECKS)


@dataclass
class AdapterCheckReport:
    """What :func:`check_adapter` did; ``print(report)`` gives one readable line."""

    #: The plugin's import path.
    plugin: str
    #: The adapter that wrote the model's bundles (None when no check saved one).
    adapter: str | None
    #: The checks that ran and passed, in order.
    checks: list[str] = field(default_factory=list)
    #: Checks that had nothing to check, with the reason (``"no library_modules given"``).
    skipped: dict[str, str] = field(default_factory=dict)
    #: The formats saved and loaded back.
    formats: list[str] = field(default_factory=list)
    #: Seconds per check, and in all.
    timings: dict[str, float] = field(default_factory=dict)
    seconds: float = 0.0

    def __str__(self) -> str:
        passed = [name for name in self.checks if name not in self.skipped]
        text = (f"{self.plugin}: {len(passed)} checks passed in {self.seconds:.1f} s "
                f"({', '.join(passed)})")
        if self.formats:
            text += f"; adapter {self.adapter!r}, formats {', '.join(self.formats)}"
        if self.skipped:
            text += "; skipped " + "; ".join(f"{k} ({v})" for k, v in self.skipped.items())
        return text


def check_adapter(
    plugin: str | ModuleType,
    make_model: Callable[..., Any],
    X: Any,
    y: Any = None,
    *,
    other_plugins: Sequence[str] = (),
    foreign_models: Sequence[Any] = (),
    formats: Sequence[str] | None = None,
    library_modules: Sequence[str] = (),
    heavy_modules: Sequence[str] = DEFAULT_HEAVY_MODULES,
    rtol: float = 0.0,
    atol: float = 0.0,
    onnx_rtol: float = 1e-4,
    onnx_atol: float = 1e-5,
    tolerances: Mapping[str, tuple[float, float]] | None = None,
    sample: Any = None,
    save_options: Mapping[str, Mapping[str, Any]] | None = None,
    checks: Sequence[str] | None = None,
    timeout: float = CHILD_TIMEOUT,
) -> AdapterCheckReport:
    """Check that an alphazoo plugin behaves as the host and its users rely on.

    Raises :class:`~alphazoo.AdapterCheckError` (an ``AssertionError``) at the first failing
    check; returns an :class:`AdapterCheckReport` when all pass.

    :param plugin: the plugin's import path, as a fresh interpreter will find it: a module
        (``"my_package.plugin"``) or an object in one (``"my_package.plugin:adapter"``, the
        entry-point spelling, or ``"my_package.plugin.adapter"``); a module object stands for
        its name. It is registered with an
        isolated :class:`~alphazoo.Zoo` (``discover=False``), here and in each child.
    :param make_model: returns a *fitted* model of the plugin. When it takes an argument it is
        given the zoo the checks save through, so it can ``zoo.build`` a zoo model and
        ``zoo.train`` it (formats that store weights need the zoo model's name, and ONNX
        exports use the rows ``zoo.train`` saw).
    :param X: input rows (numbers) the predictions are compared on; also the ONNX export's
        sample unless ``sample=`` is given.
    :param y: unused by the checks; accepted so calls read like ``fit(X, y)``.
    :param other_plugins: import paths of plugins registered alongside (the adapter a
        delegating plugin, such as ``alphazoo.contrib.plugin``, saves through).
    :param foreign_models: more objects the plugin must not claim (another library's models).
    :param formats: the formats to save and load (default: all of the owning adapter's).
    :param library_modules: the training library's top-level modules (``("sklearn",)``):
        blocked when checking formats that should not need them, and never to be imported
        by importing the plugin.
    :param heavy_modules: modules no plugin may import at import time.
    :param rtol, atol: tolerance for formats that need the library (exact by default).
    :param onnx_rtol, onnx_atol: tolerance for formats served by onnxruntime.
    :param tolerances: per-format ``(rtol, atol)``, overriding both.
    :param sample: input rows for ONNX exports (default the first rows of ``X``).
    :param save_options: per-format keyword arguments for ``zoo.save`` (``{"onnx":
        {"exporter": "torchscript"}}``).
    :param checks: the names of the checks to run (default all, :data:`CHECK_NAMES`).
    :param timeout: seconds before a child interpreter counts as hung.
    """
    del y  # the model comes fitted from make_model
    if isinstance(plugin, ModuleType):
        plugin = plugin.__name__
    if not isinstance(plugin, str):
        raise TypeError("plugin must be an import path ('package.module' or "
                        f"'package.module:object') or a module, not {type(plugin).__name__}")
    wanted = list(CHECK_NAMES if checks is None else checks)
    unknown = [name for name in wanted if name not in CHECKS]
    if unknown:
        raise ValueError(f"unknown checks {', '.join(map(repr, unknown))}; the checks are "
                         f"{', '.join(CHECK_NAMES)}")
    started = time.perf_counter()
    with make_folder() as tmp:
        session = Session(plugin, make_model, X, other_plugins=other_plugins,
                          foreign_models=foreign_models, formats=formats,
                          library_modules=library_modules, heavy_modules=heavy_modules,
                          rtol=rtol, atol=atol, onnx_rtol=onnx_rtol, onnx_atol=onnx_atol,
                          tolerances=dict(tolerances or {}), sample=sample,
                          save_options={k: dict(v) for k, v in (save_options or {}).items()},
                          timeout=timeout,
                          folder=Path(tmp))
        report = AdapterCheckReport(plugin, None)
        for name in CHECK_NAMES:
            if name not in wanted:
                continue
            session.current = name
            began = time.perf_counter()
            try:
                CHECKS[name](session)
            except (AdapterCheckError, UnsupportedFormatError):
                raise  # a failed check, or formats= naming a format the adapter lacks
            except Exception as exc:  # the plugin (or the host through it) broke mid-check
                raise AdapterCheckError(name, f"the check raised {type(exc).__name__}: {exc}",
                                        plugin) from exc
            report.checks.append(name)
            report.timings[name] = round(time.perf_counter() - began, 3)
        report.adapter, report.formats = session.summary()
        report.skipped = dict(session.skipped)
    report.seconds = round(time.perf_counter() - started, 3)
    return report
