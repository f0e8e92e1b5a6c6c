"""The host's own plugin: defaults and the trust guard around loading.

Cross-cutting rules are hook implementations here rather than special cases inside adapters:
the trust guard wraps ``alphazoo_load`` so no adapter can unpickle an untrusted payload (the
rules live in :mod:`alphazoo.trust`) or read an ``adapter_data`` its format's schema refuses, and
``trylast`` defaults answer only when no adapter claimed the model.
"""

from __future__ import annotations

from typing import Any, Callable, Protocol

from .contracts import FormatSpec, LoadRequest, ModelSpec, SavedPayload, SaveRequest
from .errors import (
    IncompatibleVersionError,
    UnsupportedFormatError,
    UnsupportedModelError,
)
from .hookspecs import hookimpl
from .manifest_schema import validate_adapter_data
from .trust import check_trust, may_run_code

__all__ = ["FormatTable", "HostPlugin"]


class FormatTable(Protocol):
    """What the host plugin asks of its host about formats: a :class:`~alphazoo.Zoo` is one."""

    def format_spec(self, adapter: str | None, name: str | None) -> FormatSpec | None:
        """The format ``name`` of ``adapter``, or None when no loaded plugin declares it."""

    def describe_formats(self, adapter: str | None = None) -> str:
        """``"adapter:format, ..."`` for error messages."""

    def plugin_trouble(self, name: str | None = None) -> str:
        """A sentence on plugins that are installed but not working, or ""."""


class HostPlugin:
    """Registered by every :class:`~alphazoo.Zoo` under the name ``alphazoo.host``.

    ``formats`` answers which formats are loaded (the zoo itself); the plugin knows nothing
    else of the zoo.

    Its ``alphazoo_train``, ``alphazoo_predict`` and ``alphazoo_save`` are the router: the
    host removes every other plain implementation of those hooks from the caller it uses, and
    ``route(hook_name, model, kwargs)`` calls the model's owner (or the chain of plugins that
    declare no model classes; see :mod:`alphazoo.ownership`). Hook wrappers run around it.
    """

    def __init__(self, formats: FormatTable,
                 route: Callable[[str, Any, dict[str, Any]], Any]) -> None:
        self._formats = formats
        self._route = route

    @hookimpl(trylast=True)
    def alphazoo_build(self, spec: ModelSpec, params: dict[str, Any]) -> Any:
        return spec.builder(**params)

    @hookimpl(tryfirst=True)
    def alphazoo_train(self, model: Any, X: Any, y: Any, params: dict[str, Any]) -> Any:
        answer = self._route("alphazoo_train", model,
                             {"model": model, "X": X, "y": y, "params": params})
        if answer is not None:
            return answer
        # Any object with a scikit-learn style fit() trains without an adapter.
        fit = getattr(model, "fit", None)
        if fit is None:
            return None
        result = fit(X, **params) if y is None else fit(X, y, **params)
        return model if result is None else result

    @hookimpl(tryfirst=True)
    def alphazoo_predict(self, model: Any, X: Any) -> Any:
        answer = self._route("alphazoo_predict", model, {"model": model, "X": X})
        if answer is not None:
            return answer
        predict = getattr(model, "predict", None)
        return None if predict is None else predict(X)

    @hookimpl(tryfirst=True)
    def alphazoo_save(self, request: SaveRequest) -> SavedPayload | None:
        # request.model as hook wrappers left it (contrib swaps in its estimator).
        answer: SavedPayload | None = self._route("alphazoo_save", request.model,
                                                  {"request": request})
        return answer

    @hookimpl(wrapper=True, tryfirst=True)
    def alphazoo_load(self, request: LoadRequest) -> Any:
        manifest = request.manifest
        adapter, fmt = manifest.get("adapter"), manifest.get("format")
        spec = self._formats.format_spec(adapter, fmt)
        if spec is None:
            raise UnsupportedFormatError(
                f"the bundle was written by adapter {adapter!r} in format {fmt!r}, which no "
                f"loaded plugin reads (formats available: {self._formats.describe_formats()}); "
                f"install or enable the {adapter!r} adapter"
                f"{self._formats.plugin_trouble(adapter)}"
            )
        # The format's declared adapter_data first: trust and version checks read the manifest.
        validate_adapter_data(manifest, spec.adapter_data)
        check_trust(request, spec.safe)
        request.may_run_code = may_run_code(request)
        _check_versions(request, spec.load_requires, pickled=not spec.safe)
        result = yield
        if result is None:
            raise UnsupportedModelError(
                f"adapter {adapter!r} declared format {fmt!r} but did not load the bundle"
            )
        return result


def _check_versions(request: LoadRequest, load_requires: tuple[str, ...], *,
                    pickled: bool) -> None:
    """Refuse (or note) a bundle saved with library versions that may not read back here.

    The policy by format lives in :mod:`alphazoo.compat.bundles`; ``pickled`` comes from the
    loader's format table (an unsafe format holds pickles whatever its name). Warnings go to
    ``request.notices`` so the host shows them at the caller's ``Zoo.load`` line.
    """
    from alphazoo.compat.bundles import check_bundle_versions

    for finding in check_bundle_versions(request.manifest, load_requires, pickled=pickled):
        if finding.severity == "fatal" or (
                finding.severity == "error" and not request.allow_version_mismatch):
            raise IncompatibleVersionError(finding.message, finding.library, finding.saved,
                                           finding.installed)
        request.notices.append(finding.allowed_message or finding.message)
