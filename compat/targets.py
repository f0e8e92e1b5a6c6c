"""Targets: environments other than this one that bundles are meant to load in.

A target is a named, dated set of library versions with the place they were read from. The one
alphazoo knows is ``quantconnect``: the Python environment of LEAN's image, where QuantConnect
algorithms run. alphazoo itself cannot be installed there (QuantConnect's cloud installs only
its whitelisted libraries), so a bundle loads there only through the one-file reader
(``alphazoo export-reader``), with the libraries the image carries.

:func:`verdict` says for one bundle manifest whether it loads on a target and why not:

- the format is not one the reader reads (a torch state dict needs the model's code; a zoo
  model's own class needs alphazoo) -- a *format* reason;
- a library the format needs is absent from the target (skops, the default scikit-learn
  format, is not in LEAN's image) -- a *library* reason;
- the version rule of :mod:`alphazoo.compat.bundles` fails with the target's versions (a pickle
  needs the same minor version of its library);
- an ONNX model's opset is above what the target's onnxruntime opens.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from .bundles import FORMAT_BREAKS, check_bundle_versions

__all__ = ["Target", "TargetVerdict", "TARGETS", "QUANTCONNECT", "READER_FORMATS", "target_for",
           "verdict"]


@dataclass(frozen=True)
class Target:
    """A named environment: its library versions, when and where they were read."""

    name: str
    #: The date the versions were read from ``source``.
    as_of: str
    source: str
    python: str
    #: Distribution name -> exact version installed there.
    pins: Mapping[str, str]
    #: The newest default-domain ONNX opset the target's onnxruntime opens.
    max_opset: int
    notes: str = ""

    def version_of(self, library: str) -> str | None:
        """The target's version of ``library`` (None when the target does not carry it)."""
        return self.pins.get(library.lower().replace("_", "-"))


#: LEAN's image, DockerfileLeanFoundation in QuantConnect/Lean (the file last changed in commit
#: 2e67b9ad, 2025-12-29; read at LEAN master 24863901, 2026-08-21). Only the libraries
#: alphazoo's formats read are listed; the image has no skops and no onnxscript.
QUANTCONNECT = Target(
    name="quantconnect",
    as_of="2026-08-21",
    source="https://github.com/QuantConnect/Lean/blob/master/DockerfileLeanFoundation "
           "(commit 2e67b9ad4f81708bbf278d4e2f5faa5043255398)",
    python="3.11",
    pins={
        "python": "3.11",
        "numpy": "1.26.4",
        "pandas": "2.3.3",
        "scikit-learn": "1.6.1",
        "xgboost": "3.0.5",
        "torch": "2.8.0",
        "keras": "3.13.0",
        "tensorflow": "2.19.1",
        "hmmlearn": "0.3.3",
        "lightgbm": "4.6.0",
        "catboost": "1.2.8",
        "stable-baselines3": "2.7.1",
        "onnx": "1.20.0",
        "onnxruntime": "1.23.2",
        "skl2onnx": "1.19.1",
        "onnxmltools": "1.14.0",
        "tf2onnx": "1.16.1",
        "dill": "0.3.8",
    },
    # onnxruntime 1.23.2's own answer to alphazoo.compat.bundles.onnxruntime_max_opset(), run
    # in a virtual environment with that version (tests/test_reader.py checks it there).
    max_opset=23,
    notes="alphazoo is not installable there: bundles load through `alphazoo export-reader`.",
)

TARGETS: dict[str, Target] = {QUANTCONNECT.name: QUANTCONNECT}

#: (adapter, format) pairs the one-file reader loads; "*" is any adapter.
READER_FORMATS = frozenset({
    ("*", "onnx"), ("xgboost", "json"), ("xgboost", "ubj"), ("hmmlearn", "json"),
    ("keras", "keras"), ("keras", "json"),
    ("sklearn", "pickle"), ("xgboost", "pickle"), ("hmmlearn", "pickle"),
})


@dataclass(frozen=True)
class TargetVerdict:
    """Whether one bundle loads on a target; ``reasons`` say why not, ``warnings`` what to
    check even when it does, ``instead`` a format of the same adapter that would load."""

    key: str
    target: str
    loads: bool
    reasons: tuple[str, ...] = ()
    warnings: tuple[str, ...] = ()
    instead: str | None = None
    details: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {"key": self.key, "target": self.target, "loads": self.loads,
                "reasons": list(self.reasons), "warnings": list(self.warnings),
                "instead": self.instead, **self.details}


def target_for(name: str | Target) -> Target:
    """The target named ``name`` (``"quantconnect"``); ValueError naming the known ones."""
    if isinstance(name, Target):
        return name
    try:
        return TARGETS[name]
    except KeyError:
        raise ValueError(f"unknown target {name!r}; known: {', '.join(TARGETS)}") from None


def verdict(
    manifest: Mapping[str, Any],
    target: str | Target,
    *,
    load_requires: Iterable[str] = (),
    safe: bool = True,
    alternatives: Iterable[tuple[str, tuple[str, ...], bool]] = (),
) -> TargetVerdict:
    """Whether the bundle described by ``manifest`` loads on ``target``, and why not.

    ``load_requires`` and ``safe`` come from this environment's format table (the adapter's
    :class:`~alphazoo.FormatSpec`). ``alternatives`` are the adapter's other formats as
    ``(name, load_requires, safe)``: the first that would load is named in ``instead``.
    """
    target = target_for(target)
    reasons = _reasons(manifest, target, tuple(load_requires), safe)
    findings = _findings(manifest, target, load_requires, safe)
    notes = [f"saved with {f.library} {f.saved}; {target.name} has {f.installed}, another "
             "major version: check its predictions there"
             for f in findings if f.severity == "warning"]
    # A known silent format break (compat.bundles.FORMAT_BREAKS) is the reader's to repair
    # there, so it is a note, not a reason.
    notes += [f"saved with {f.library} {f.saved}; {target.name} has {f.installed}: "
              f"{_break_of(f.library)}. Load it there through the exported reader (which "
              "restores it), not the library's own load"
              for f in findings if f.rule == "format break"]
    instead = None
    if reasons:
        for name, requires, alt_safe in alternatives:
            if name == manifest.get("format"):
                continue
            trial = {**manifest, "format": name, "adapter_data": {}}
            if not _reasons(trial, target, tuple(requires), alt_safe):
                instead = name
                break
    return TargetVerdict(str(manifest.get("key", "?")), target.name, not reasons,
                         tuple(reasons), tuple(notes), instead,
                         {"format": manifest.get("format"), "adapter": manifest.get("adapter")})


def _reasons(manifest: Mapping[str, Any], target: Target, load_requires: tuple[str, ...],
             safe: bool) -> list[str]:
    fmt, adapter = manifest.get("format"), manifest.get("adapter")
    where = f"on {target.name}"
    reasons = []
    if ("*", fmt) not in READER_FORMATS and (adapter, fmt) not in READER_FORMATS:
        reasons.append(f"format {fmt!r} of adapter {adapter!r} needs alphazoo to load, which "
                       f"is not installable {where}, and the one-file reader does not read it")
    model_class = str(manifest.get("model_class") or "")
    if fmt != "onnx" and model_class.startswith("alphazoo."):
        reasons.append(f"the model is alphazoo's own class {model_class}, whose code is not "
                       f"available {where}")
    for library in load_requires:
        if target.version_of(library) is None:
            reasons.append(f"{library} is absent {where} (it is needed to read {fmt!r})")
    for finding in _findings(manifest, target, load_requires, safe):
        if finding.severity == "fatal":  # the only fatal finding: an ONNX opset too new
            reasons.append(f"its ONNX {finding.saved} is above what onnxruntime "
                           f"{target.version_of('onnxruntime')} opens {where} (opsets up to "
                           f"{target.max_opset}): export it with a lower target opset")
        elif finding.rule == "format break":
            # The library there misreads it, but alphazoo is not installable there: bundles
            # load through the one-file reader, which restores what the break changed (the
            # warning notes say so).
            continue
        elif finding.severity == "error":  # a pickle across minor versions
            reasons.append(f"it is a pickle saved with {finding.library} {finding.saved}, and "
                           f"{where} has {finding.installed}: a pickle needs the same minor "
                           "version")
    return reasons


def _break_of(library: str) -> str:
    return next(known.why for known in FORMAT_BREAKS if known.library == library)


def _findings(manifest: Mapping[str, Any], target: Target, load_requires: Iterable[str],
              safe: bool) -> list[Any]:
    return check_bundle_versions(dict(manifest), load_requires, pickled=not safe,
                                 installed=dict(target.pins), max_opset=target.max_opset)

