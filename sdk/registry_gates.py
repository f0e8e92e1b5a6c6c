"""Promotion gates: checks a candidate version passes before a registry alias moves to it.

A gate is a built-in's name or a callable. Built-ins:

- ``"integrity"``: the whole bundle verifies (every payload SHA-256, the closing hash);
- ``"compat"``: its recorded library versions load in this environment
  (:func:`alphazoo.compat.bundles.check_bundle_versions`; warnings pass, errors refuse);
- ``"onnx_parity"``: an ONNX bundle's export was checked against its native model on the
  recorded sample when it was saved, within the recorded tolerance (other formats pass).

A callable gets ``(candidate, current)``, two :class:`Candidate` objects (``current`` is None
when the alias points nowhere yet) and returns True (or None) to let the promotion through,
False or a string (the reason) to refuse it; ``(ok, reason)`` works too, and an exception
refuses with its message. Example, "rank IC on the last 60 days at least the current one's"::

    def ic_not_worse(candidate, current):
        if current is None:
            return True
        new, old = rank_ic(candidate.load(), last_60_days), rank_ic(current.load(), ...)
        return new >= old or f"rank IC {new:.3f} < {old:.3f} of v{current.version}"

The first gate that refuses raises :class:`~alphazoo.PromotionRefusedError` naming it; gates
run in the order given, before anything is written.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Sequence

from .errors import AlphazooError, PromotionRefusedError
from .series import version_key

if TYPE_CHECKING:
    from .store import ObjectStore

__all__ = ["Candidate", "BUILTIN_GATES", "check_gate", "run_gates", "gate_name"]


@dataclass
class Candidate:
    """A version as a gate sees it: ``name``, ``version``, ``key``, its verified
    ``manifest`` (read on first use) and :meth:`load` (through ``zoo``, the registry's)."""

    store: ObjectStore
    zoo: Any
    name: str
    version: int
    _manifest: dict[str, Any] | None = field(default=None, repr=False)

    @property
    def key(self) -> str:
        """The version's store key, ``"spy/gbdt/v000003"``."""
        return version_key(self.name, self.version)

    @property
    def manifest(self) -> dict[str, Any]:
        """The bundle's manifest, after verifying the whole bundle."""
        if self._manifest is None:
            from .bundle import read_manifest
            from .limits import LoadLimits

            zoo = self.zoo
            limits = LoadLimits.resolve(zoo.max_bytes if zoo is not None else None)
            self._manifest = read_manifest(self.store, self.key, limits)
        return self._manifest

    def load(self, **load_options: Any) -> Any:
        """The model, loaded through the registry's zoo (``zoo.load(key, ...)``)."""
        zoo = self.zoo
        if zoo is None:
            raise AlphazooError("this registry has no zoo to load models with; use "
                                "zoo.registry (or ModelRegistry(store, zoo=zoo))")
        return zoo.load(self.key, **load_options)


def _integrity(candidate: Candidate, current: Candidate | None) -> Any:
    return bool(candidate.manifest)  # reading it raises BundleIntegrityError on a bad byte


def _compat(candidate: Candidate, current: Candidate | None) -> Any:
    from alphazoo.compat.bundles import check_bundle_versions

    manifest = candidate.manifest
    zoo = candidate.zoo
    spec = (zoo.format_spec(manifest.get("adapter"), manifest.get("format"))
            if zoo is not None else None)
    findings = check_bundle_versions(
        manifest, spec.load_requires if spec else (),
        pickled=(not spec.safe) if spec else None)
    errors = [finding for finding in findings if finding.severity in ("error", "fatal")]
    if errors:
        return "; ".join(finding.message for finding in errors)
    return True


def _onnx_parity(candidate: Candidate, current: Candidate | None) -> Any:
    manifest = candidate.manifest
    if manifest.get("format") != "onnx":
        return True
    parity = (manifest.get("adapter_data") or {}).get("parity")
    if not isinstance(parity, dict) or not parity.get("rows"):
        return ("the bundle records no ONNX parity check on a sample; save it with sample= "
                "(or after zoo.train, which records one)")
    diff, tolerance = parity.get("max_abs_diff"), parity.get("tolerance")
    if isinstance(diff, (int, float)) and isinstance(tolerance, (int, float)) and diff > tolerance:
        return f"recorded parity difference {diff:.3g} is above the tolerance {tolerance:g}"
    return True


#: The built-in gates by name.
BUILTIN_GATES: dict[str, Callable[[Candidate, Candidate | None], Any]] = {
    "integrity": _integrity,
    "compat": _compat,
    "onnx_parity": _onnx_parity,
}


def check_gate(gate: Any) -> Any:
    """``gate`` itself when it is a built-in's name or a callable; raises ValueError."""
    if isinstance(gate, str):
        if gate not in BUILTIN_GATES:
            raise ValueError(f"unknown gate {gate!r}; built-ins: {', '.join(BUILTIN_GATES)}, "
                             "or pass a callable (candidate, current) -> bool | reason")
        return gate
    if not callable(gate):
        raise ValueError(f"a gate is a built-in's name or a callable, not {gate!r}")
    return gate


def gate_name(gate: Any) -> str:
    """A gate's name in messages: the built-in's, or the callable's ``__name__``."""
    if isinstance(gate, str):
        return gate
    return str(getattr(gate, "__name__", None) or type(gate).__name__)


def run_gates(store: ObjectStore, zoo: Any, gates: Sequence[Any], name: str, alias: str,
              version: int, current: int | None) -> None:
    """Run ``gates`` on ``version`` against the alias's ``current`` target; raise
    :class:`~alphazoo.PromotionRefusedError` at the first refusal."""
    candidate = Candidate(store, zoo, name, version)
    incumbent = None if current is None else Candidate(store, zoo, name, current)
    for gate in gates:
        check = BUILTIN_GATES[gate] if isinstance(gate, str) else gate
        try:
            verdict = check(candidate, incumbent)
        except Exception as exc:
            raise PromotionRefusedError(name, alias, version, gate_name(gate),
                                        f"{type(exc).__name__}: {exc}") from exc
        reason = _refusal(verdict)
        if reason is not None:
            raise PromotionRefusedError(name, alias, version, gate_name(gate), reason)


def _refusal(verdict: Any) -> str | None:
    """The reason a gate's answer refuses, or None when it lets the promotion through."""
    if isinstance(verdict, tuple) and len(verdict) == 2:
        ok, reason = verdict
        return None if ok else str(reason or "the gate returned False")
    if verdict is None or verdict is True:
        return None
    if isinstance(verdict, str):
        return verdict
    if verdict is False:
        return "the gate returned False"
    return None if bool(verdict) else "the gate returned a false value"
