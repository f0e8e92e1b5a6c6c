"""Load-time version checks: a bundle's recorded library versions against the installed ones.

The policy depends on how much the format relies on the library's internals:

==========================  ==================================================================
format                      rule
==========================  ==================================================================
``pickle``                  the libraries that unpickle it (the format's ``load_requires``)
                            must have the same major.minor version: pickles hold private
                            class layouts that change between minor releases. Otherwise
                            :class:`~alphazoo.IncompatibleVersionError`, or only a warning
                            with ``allow_version_mismatch=True``.
JSON weights, native, skops a different major version warns (:class:`VersionMismatchWarning`):
                            documented formats are read across minors by design.
``onnx``                    onnxruntime is the only library involved: a major difference
                            warns, and a model whose opset is newer than the installed
                            onnxruntime runs is refused before a session is created.
==========================  ==================================================================

A few releases changed a documented format so that older readers misread it without an error;
those are listed in :data:`FORMAT_BREAKS` and refused like a pickle's minor difference (an
xgboost 3.1+ JSON model read by xgboost 3.0 loads, then predicts with the wrong intercept).

For ``0.x`` releases the minor number plays the major's role (semver's rule: hmmlearn 0.3 and
0.4 are different "majors"). Libraries a bundle recorded that are not installed are left to
the adapter, which names the extra to install. "pickle" above means any format its adapter
declares unsafe (``FormatSpec.safe=False``), whatever its name. A pickle that does not record
the version of the library that reads it, or records one that is not a PEP 440 version, cannot
be checked: the first warns, the second is treated as a different minor version.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Callable, Iterable

from packaging.version import InvalidVersion, Version

from .installed import installed_version
from .table import distributions_of, support_for

__all__ = ["FORMAT_BREAKS", "FormatBreak", "VersionFinding", "check_bundle_versions",
           "onnxruntime_max_opset"]


@dataclass(frozen=True)
class VersionFinding:
    """One difference between the versions a bundle was saved with and those installed."""

    library: str
    saved: str
    installed: str
    #: "error" (refused unless the caller allows mismatches), "fatal" (refused: it cannot
    #: work, an ONNX opset the runtime lacks) or "warning".
    severity: str
    message: str
    #: For an "error": the warning to show instead when the caller allowed the mismatch.
    allowed_message: str = ""
    #: The rule that found it, when not the general one: "format break" (FORMAT_BREAKS).
    rule: str = ""


@dataclass(frozen=True)
class FormatBreak:
    """A release from which ``library`` writes ``formats`` so that older releases misread them
    silently: a bundle saved at ``since`` or later must not be read by an older release."""

    library: str
    formats: frozenset[str]
    since: str
    why: str


#: Known silent breaks. xgboost 3.1 writes the intercept (``base_score``) as a vector,
#: "[4.625E-1]"; xgboost 3.0 (QuantConnect's image has 3.0.5) reads that as its default 0.5
#: and loads without an error, shifting every prediction (a probability of 0.859 read as 0.841).
FORMAT_BREAKS: tuple[FormatBreak, ...] = (
    FormatBreak("xgboost", frozenset({"json", "ubj"}), "3.1",
                "xgboost 3.1 writes the model's intercept (base_score) as a vector, which older "
                "releases read as the default 0.5 without an error, shifting every prediction"),
)


def check_bundle_versions(
    manifest: dict[str, Any],
    load_requires: Iterable[str] = (),
    *,
    pickled: bool | None = None,
    installed: dict[str, str | None] | None = None,
    max_opset: int | None = None,
) -> list[VersionFinding]:
    """The findings for loading ``manifest`` here; empty when every version is compatible.

    ``load_requires`` are the distributions that read the payload (from the loader's own
    format table). ``pickled`` says the format holds pickled objects (the loader's
    ``not FormatSpec.safe``; by default, a format named "pickle"). ``installed`` and
    ``max_opset`` replace what this machine reports (tests).
    """
    fmt = manifest.get("format")
    key = manifest.get("key", "?")
    if pickled is None:
        pickled = fmt == "pickle"
    readers = {_base(name) for name in load_requires}
    libraries = manifest.get("libraries")
    recorded = ({str(name): str(v) for name, v in libraries.items()}
                if isinstance(libraries, dict) else {})
    if fmt == "onnx":  # converters and the training library played no part in loading
        recorded = {name: v for name, v in recorded.items() if _base(name) in readers}

    def current_of(name: str) -> str | None:
        return installed.get(name) if installed is not None else _installed(name)

    findings = []
    if pickled:
        findings += _unrecorded(key, sorted(readers - {_base(name) for name in recorded}),
                                current_of)
    for name, saved in sorted(recorded.items()):
        current = current_of(name)
        if current is None or saved == current:
            continue
        reads_it = pickled and _base(name) in readers
        saved_v, current_v = _version(saved), _version(current)
        if saved_v is None or current_v is None:
            # Not PEP 440 (a source build, a vendor's tag): nothing to compare by, so a pickle
            # is treated as another minor version and anything else warns.
            same = None
        else:
            same = _minor(saved_v) == _minor(current_v) if reads_it else (
                _major(saved_v) == _major(current_v))
        if same:
            continue
        if reads_it:
            need = (f"the same {name} minor version ({_dotted(_minor(saved_v))}.x)"
                    if saved_v is not None else f"{name} {saved} exactly (not a PEP 440 version)")
            findings.append(VersionFinding(name, saved, current, "error", (
                f"{key!r} is a pickle saved with {name} {saved}, and {current} is installed; "
                f"pickles need {need}. Install it (pip install '{name}=={saved}'), or re-save "
                f"the model as a safe format with {name} {saved}; pass "
                "allow_version_mismatch=True to try anyway."
            ), allowed_message=(
                f"{key!r} is a pickle saved with {name} {saved} and was loaded with {current} "
                "because allow_version_mismatch=True: check its predictions, and re-save it "
                f"as a safe format (or install {name}=={saved}) to load it without this warning."
            )))
        else:
            findings.append(VersionFinding(name, saved, current, "warning", (
                f"{key!r} was saved with {name} {saved}; {current} is installed. The "
                f"{fmt} format is meant to survive upgrades, but check its predictions "
                f"(or install {name}=={saved})."
            )))
    findings += _break_findings(key, fmt, recorded, current_of)
    if fmt == "onnx":
        findings += _opset_findings(manifest, key, max_opset, installed)
    return findings


def _break_findings(key: str, fmt: Any, recorded: dict[str, str],
                    current_of: Callable[[str], str | None]) -> list[VersionFinding]:
    findings = []
    for known in FORMAT_BREAKS:
        saved, current = recorded.get(known.library), current_of(known.library)
        if fmt not in known.formats or saved is None or current is None:
            continue
        saved_v, current_v, since = _version(saved), _version(current), Version(known.since)
        if saved_v is None or current_v is None or not current_v < since <= saved_v:
            continue
        findings.append(VersionFinding(known.library, saved, current, "error", (
            f"{key!r} is a {fmt} bundle saved with {known.library} {saved}, and {current} is "
            f"installed: {known.why}. Install {known.library}>={known.since} (pip install "
            f"'{known.library}>={known.since}'), or save the model as ONNX; pass "
            "allow_version_mismatch=True to load it anyway."
        ), allowed_message=(
            f"{key!r} was saved with {known.library} {saved} and loaded with {current} because "
            f"allow_version_mismatch=True: {known.why}."
        ), rule="format break"))
    return findings


def _unrecorded(key: str, readers: list[str],
                current_of: Callable[[str], str | None]) -> list[VersionFinding]:
    findings = []
    for reader in readers:
        current = current_of(reader)
        if current is None:
            continue  # the adapter reports the missing library, with the extra to install
        findings.append(VersionFinding(reader, "unknown", current, "warning", (
            f"{key!r} is a pickle that does not record which {reader} version saved it, so "
            f"alphazoo cannot check it against the installed {reader} {current}: check its "
            "predictions, and re-save it here (as a safe format if the adapter has one)."
        )))
    return findings


def _opset_findings(manifest: dict[str, Any], key: str, max_opset: int | None,
                    installed: dict[str, str | None] | None) -> list[VersionFinding]:
    opsets = (manifest.get("adapter_data") or {}).get("opset") or {}
    wanted = opsets.get("ai.onnx", opsets.get("")) if isinstance(opsets, dict) else None
    try:
        wanted = int(wanted)  # type: ignore[arg-type]  # any value: non-numbers fail below
    except (TypeError, ValueError):
        return []  # no opset recorded (or not a number): onnxruntime itself will say
    runtime = (installed or {}).get("onnxruntime") if installed is not None else _installed(
        "onnxruntime")
    if runtime is None:
        return []  # the adapter reports the missing runtime, with the extra to install
    limit = max_opset if max_opset is not None else onnxruntime_max_opset()
    if limit is None or wanted <= limit:
        return []
    return [VersionFinding("onnxruntime", f"opset {wanted}", f"{runtime} (opset <= {limit})",
                           "fatal", (
        f"{key!r} is an ONNX model of opset {wanted}, and onnxruntime {runtime} runs opsets up "
        f"to {limit}: upgrade onnxruntime, or re-export the model with a lower target opset."
    ))]


@lru_cache(maxsize=1)
def onnxruntime_max_opset() -> int | None:
    """The newest default-domain opset the installed onnxruntime accepts (None: unknown).

    Found by asking onnxruntime itself to open one-node models (a binary search, a few
    milliseconds once per process) rather than from a table that would go stale with every
    release. The probe models are encoded here by hand so that only onnxruntime is needed.
    """
    try:
        import onnxruntime
    except ImportError:
        return None

    def accepts(opset: int) -> bool:
        try:
            onnxruntime.InferenceSession(_relu_model(opset), providers=["CPUExecutionProvider"])
        except Exception:
            return False
        return True

    low, high = 7, 64
    if not accepts(low):
        return None
    while low < high:  # invariant: accepts(low)
        middle = (low + high + 1) // 2
        if accepts(middle):
            low = middle
        else:
            high = middle - 1
    return low


# -- a one-node ONNX model (Relu) in protobuf wire format ------------------------------------
def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


def _field(number: int, payload: bytes | int) -> bytes:
    if isinstance(payload, int):
        return _varint(number << 3) + _varint(payload)
    return _varint(number << 3 | 2) + _varint(len(payload)) + payload


def _relu_model(opset: int) -> bytes:
    # TypeProto.tensor_type{elem_type=FLOAT, shape{dim{dim_value=1}}}
    tensor_type = _field(1, 1) + _field(2, _field(1, _field(1, 1)))
    value_type = _field(1, tensor_type)
    node = _field(1, b"x") + _field(2, b"y") + _field(4, b"Relu")
    graph = (_field(1, node) + _field(2, b"probe")
             + _field(11, _field(1, b"x") + _field(2, value_type))
             + _field(12, _field(1, b"y") + _field(2, value_type)))
    opset_id = _field(1, b"") + _field(2, opset)
    return _field(1, 8) + _field(7, graph) + _field(8, opset_id)  # ir_version 8


# -- versions ------------------------------------------------------------------------------------
def _installed(name: str) -> str | None:
    support = support_for(name)
    for distribution in distributions_of(support.library) if support else (name,):
        version = installed_version(distribution)
        if version is not None:
            return version
    return installed_version(name)


def _base(name: str) -> str:
    support = support_for(name)
    return support.library if support else name


def _version(text: str) -> Version | None:
    try:
        return Version(text)
    except InvalidVersion:
        return None


def _major(version: Version) -> tuple[int, ...]:
    release = version.release + (0, 0)
    return release[:2] if release[0] == 0 else release[:1]


def _minor(version: Version) -> tuple[int, ...]:
    return (version.release + (0, 0))[:2]


def _dotted(parts: tuple[int, ...]) -> str:
    return ".".join(str(part) for part in parts)
