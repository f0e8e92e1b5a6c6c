"""The hooks an alphazoo plugin can implement.

Every spec follows one docstring template: what the hook does, when the host calls it, the
parameters, what to return, and whether it is *firstresult* (the first non-None answer wins, so
the adapter that owns the object answers and every other plugin returns None) or *collecting*
(every plugin's answer is gathered).

A plugin is a module or object with functions marked ``@alphazoo.hookimpl`` named like these
specs, published under the ``alphazoo`` entry-point group. A plugin module must not import an ML
framework at import time: import it inside the hook, when a model of that library is handled,
and name the classes the adapter owns in :func:`alphazoo_model_types` (strings, no import), so
that its ``alphazoo_train``, ``alphazoo_predict`` and ``alphazoo_save`` run only for its own
models (see :mod:`alphazoo.ownership`).
"""

from __future__ import annotations

from typing import Any, Callable

import pluggy

from .contracts import FormatSpec, LoadRequest, ModelSpec, SavedPayload, SaveRequest

__all__ = ["hookspec", "hookimpl", "PROJECT"]

PROJECT = "alphazoo"
hookspec = pluggy.HookspecMarker(PROJECT)
#: Marker for plugin functions: ``@alphazoo.hookimpl``.
hookimpl = pluggy.HookimplMarker(PROJECT)


@hookspec
def alphazoo_register_models(register: Callable[..., None]) -> None:
    """Register the zoo models this plugin provides.

    Called once, when the host first needs its model list.

    :param register: ``register(name, builder, *, library=None, description="")``;
        ``builder(**params)`` returns an unfitted model.
    :returns: nothing; call ``register`` once per model.
    :firstresult: no (every plugin registers).
    """


@hookspec
def alphazoo_formats() -> list[FormatSpec]:
    """Declare the serialization formats this plugin's adapter writes and reads.

    Called when the host builds its format table (saving, loading, the CLI).

    :returns: a list of :class:`~alphazoo.contracts.FormatSpec`, one marked ``default``.
    :firstresult: no (the tables of all plugins are merged).
    """


@hookspec
def alphazoo_model_types() -> list[str]:
    """Name the model classes this plugin's adapter owns, as ``"module.QualifiedName"`` strings.

    Called when the host decides which adapter trains, predicts with or saves a model, before
    any plugin's library code runs. The host resolves a name only when its module is already
    imported (a model of a library cannot exist before the library is), never importing it,
    and the plugin whose class is the nearest base of the model's type wins: an
    ``xgboost.sklearn.XGBModel`` is xgboost's although it is also a scikit-learn
    ``BaseEstimator``. Only the owner's ``alphazoo_train``, ``alphazoo_predict`` and
    ``alphazoo_save`` are called for that model.

    :returns: a list of class paths such as ``["sklearn.base.BaseEstimator"]``; a plugin that
        declares none is asked in turn, as before, for models no declared class matches.
    :firstresult: no (every plugin's classes are gathered).
    """


@hookspec(firstresult=True)
def alphazoo_build(spec: ModelSpec, params: dict[str, Any]) -> Any:
    """Build an unfitted model from a registered zoo model.

    Called by ``Zoo.build(name, **params)``. The built-in implementation calls
    ``spec.builder(**params)``; a plugin may answer first to build differently.

    :param spec: the registered model.
    :param params: keyword parameters for the builder.
    :returns: the model, or None to let the next plugin answer.
    :firstresult: yes.
    """


@hookspec(firstresult=True)
def alphazoo_train(model: Any, X: Any, y: Any, params: dict[str, Any]) -> Any:
    """Fit ``model`` on ``X`` and ``y``.

    Called by ``Zoo.train``. The adapter that owns the model answers (only the owner is
    called when the model's class is declared in :func:`alphazoo_model_types`); when it
    returns None, or no plugin answers, the host calls the model's own ``fit``.

    :param model: the model to fit.
    :param X: features, ``y``: targets (None for unsupervised models).
    :param params: keyword parameters for the library's fit call.
    :returns: the fitted model (often ``model`` itself), or None when the model is not this
        plugin's.
    :firstresult: yes.
    """


@hookspec(firstresult=True)
def alphazoo_save(request: SaveRequest) -> SavedPayload | None:
    """Serialize a model into payload files.

    Called by ``Zoo.save``; only the owner is called when the model's class is declared in
    :func:`alphazoo_model_types` (hook wrappers run around it and may swap ``request.model``
    first: ownership is decided on the model they pass on). The adapter that owns
    ``request.model`` writes its files into
    ``request.directory`` in ``request.format`` (its default format when None); the host packs
    them into a checksummed bundle. An adapter that owns the model but not the format raises
    :class:`~alphazoo.UnsupportedFormatError` naming the formats it has.

    :param request: a :class:`~alphazoo.contracts.SaveRequest`.
    :returns: a :class:`~alphazoo.contracts.SavedPayload`, or None when the model is not this
        plugin's.
    :firstresult: yes.
    """


@hookspec(firstresult=True)
def alphazoo_load(request: LoadRequest) -> Any:
    """Rebuild a model from a bundle's payload files.

    Called by ``Zoo.load`` after the bundle's integrity was verified. A built-in wrapper checks
    trust first, so an adapter's implementation only runs for trusted or safe formats. The
    adapter named in ``request.manifest["adapter"]`` answers. ``request.files[name]`` is a
    verified payload file's path; ``request.payload_bytes(name)`` its verified bytes when the
    host holds them in memory (then no file is written unless a path is asked for).

    :param request: a :class:`~alphazoo.contracts.LoadRequest`.
    :returns: the model (or a predictor such as an ONNX session wrapper), or None when the
        bundle is not this plugin's.
    :firstresult: yes.
    """


@hookspec(firstresult=True)
def alphazoo_predict(model: Any, X: Any) -> Any:
    """Predict with ``model`` on ``X``.

    Called by ``Zoo.predict``. The owning adapter answers (only it is called when the model's
    class is declared in :func:`alphazoo_model_types`); a built-in fallback calls
    ``model.predict(X)``.

    :returns: the predictions, or None when the model is not this plugin's.
    :firstresult: yes.
    """


@hookspec
def alphazoo_requirements() -> list[str]:
    """Name the distributions this plugin needs, as requirement strings (``"xgboost>=2.1"``).

    Called by ``alphazoo plugins`` and the compat layer; must not import the libraries.

    :returns: a list of PEP 508 requirement strings.
    :firstresult: no (collected per plugin).
    """
