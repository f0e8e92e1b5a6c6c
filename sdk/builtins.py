"""The host's own plugin: defaults and the trust guard around loading.

Cross-cutting rules are hook implementations here rather than special cases inside adapters:
the trust guard wraps ``alphazoo_load`` so no adapter can unpickle an untrusted payload, and
``trylast`` defaults answer only when no adapter claimed the model.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .contracts import LoadRequest, ModelSpec
from .errors import UnsupportedFormatError, UnsupportedModelError, UntrustedModelError
from .hookspecs import hookimpl

if TYPE_CHECKING:
    from .host import Zoo

__all__ = ["HostPlugin"]


class HostPlugin:
    """Registered by every :class:`~alphazoo.Zoo` under the name ``alphazoo.host``."""

    def __init__(self, zoo: Zoo) -> None:
        self._zoo = zoo

    @hookimpl(trylast=True)
    def alphazoo_build(self, spec: ModelSpec, params: dict[str, Any]) -> Any:
        return spec.builder(**params)

    @hookimpl(trylast=True)
    def alphazoo_train(self, model: Any, X: Any, y: Any, params: dict[str, Any]) -> Any:
        # Any object with a scikit-learn style fit() trains without an adapter.
        fit = getattr(model, "fit", None)
        if fit is None:
            return None
        result = fit(X, **params) if y is None else fit(X, y, **params)
        return model if result is None else result

    @hookimpl(trylast=True)
    def alphazoo_predict(self, model: Any, X: Any) -> Any:
        predict = getattr(model, "predict", None)
        return None if predict is None else predict(X)

    @hookimpl(wrapper=True, tryfirst=True)
    def alphazoo_load(self, request: LoadRequest) -> Any:
        manifest = request.manifest
        adapter, fmt = manifest.get("adapter"), manifest.get("format")
        spec = self._zoo.format_spec(adapter, fmt)
        if spec is None:
            known = ", ".join(f"{s.adapter}:{s.name}" for s in self._zoo.formats()) or "none"
            raise UnsupportedFormatError(
                f"the bundle was written by adapter {adapter!r} in format {fmt!r}, which no "
                f"loaded plugin reads (formats available: {known}); install or enable the "
                f"{adapter!r} adapter"
            )
        # Safety comes from the loader's own format table, never from the bundle's word.
        if not spec.safe and not (request.trusted or request.signature_valid):
            raise UntrustedModelError(
                f"format {fmt!r} runs code when it is loaded, and this bundle is not trusted. "
                "Either pass trusted=True if you know where it came from, or load with the "
                "sign_key (or $ALPHAZOO_SIGNING_KEY) it was signed with when saved "
                "(zoo.save(..., sign_key=KEY)). Safe formats need neither."
            )
        result = yield
        if result is None:
            raise UnsupportedModelError(
                f"adapter {adapter!r} declared format {fmt!r} but did not load the bundle"
            )
        return result
