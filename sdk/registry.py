"""Zoo models: names that build unfitted models.

Plugins register models through the ``alphazoo_register_models(register)`` hook. Code that is not
packaged as a plugin uses the :func:`register_model` decorator; those models live in this
module's table and are seen by every :class:`~alphazoo.Zoo`, including ones made earlier.
"""

from __future__ import annotations

import inspect
import warnings
from typing import Any, Callable, TypeVar

from .contracts import ModelSpec
from .errors import ModelNotFoundError

__all__ = ["register_model", "ModelTable", "unregister_model"]

F = TypeVar("F", bound=Callable[..., Any])
_DECORATED: dict[str, ModelSpec] = {}


def register_model(
    name: str | None = None, *, library: str | None = None, description: str = ""
) -> Callable[[F], F]:
    """Register a builder function as a zoo model, for code that is not a packaged plugin.

    >>> @register_model("my_ridge", library="scikit-learn")
    ... def my_ridge(alpha: float = 1.0):
    ...     from sklearn.linear_model import Ridge
    ...     return Ridge(alpha=alpha)

    The name defaults to the function's name and the description to its docstring's first
    line. Registering a name again replaces the earlier decorated builder (re-running a
    notebook cell does that).
    """

    def decorate(builder: F) -> F:
        model_name = name or builder.__name__
        _check_name(model_name)
        _DECORATED[model_name] = ModelSpec(
            model_name, builder, library, description or _first_line(builder),
            plugin="@register_model",
        )
        return builder

    return decorate


def unregister_model(name: str) -> bool:
    """Remove a model registered with :func:`register_model`; False if there was none."""
    return _DECORATED.pop(name, None) is not None


class ModelTable:
    """The models one host knows: its plugins' registrations plus decorated builders."""

    def __init__(self) -> None:
        self._from_plugins: dict[str, ModelSpec] = {}

    def register_callback(self, plugin: str) -> Callable[..., None]:
        """The ``register`` callback handed to one plugin's ``alphazoo_register_models``."""

        def register(
            name: str, builder: Callable[..., Any], *, library: str | None = None,
            description: str = "",
        ) -> None:
            _check_name(name)
            if not callable(builder):
                raise TypeError(f"builder for model {name!r} must be callable")
            if name in self._from_plugins:
                first = self._from_plugins[name].plugin
                warnings.warn(
                    f"plugin {plugin!r} registers model {name!r}, already registered by "
                    f"{first!r}; keeping {first!r}'s", stacklevel=2,
                )
                return
            self._from_plugins[name] = ModelSpec(
                name, builder, library, description or _first_line(builder), plugin
            )

        return register

    def all(self) -> dict[str, ModelSpec]:
        """Every model by name; a decorated builder shadows a plugin's model of the same name."""
        return {**self._from_plugins, **_DECORATED}

    def get(self, name: str) -> ModelSpec:
        models = self.all()
        try:
            return models[name]
        except KeyError:
            known = ", ".join(sorted(models)) or "none"
            raise ModelNotFoundError(
                f"no zoo model named {name!r}; registered models: {known}"
            ) from None


def _check_name(name: str) -> None:
    if not isinstance(name, str) or not name.isidentifier():
        raise ValueError(f"a model name must be an identifier like 'random_forest', got {name!r}")


def _first_line(builder: Callable[..., Any]) -> str:
    doc = inspect.getdoc(builder) or ""
    return doc.strip().splitlines()[0] if doc.strip() else ""
