"""The zoo's plugin: registers the contrib models and stores them through the adapters.

Published under the ``alphazoo`` entry-point group as ``contrib``. Importing it imports no ML
framework (nor pandas): each builder imports its model module when a model is built.

Saving a :class:`~alphazoo.contrib.model.Model` hands its library object to that library's
adapter (a hook wrapper swaps it into the request), so the bundle is an ordinary LightGBM,
xgboost, torch, keras, scikit-learn or hmmlearn bundle: the same formats, the same trust rules
and version checks. The wrapper's name, parameters and JSON state go into the bundle's
``adapter_data`` under ``"contrib"``; loading rebuilds the wrapper from them around the loaded
estimator (a name a model had in an older alphazoo is read through :data:`RENAMED`).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from alphazoo.contracts import LoadRequest, SavedPayload, SaveRequest
from alphazoo.errors import UnsupportedModelError
from alphazoo.hookspecs import hookimpl

if TYPE_CHECKING:
    from .model import Model

__all__ = ["MODELS", "RENAMED", "model_class"]

#: Zoo name -> (module, class, library, description). Built only through these names, so a
#: bundle's record can never make the loader import an arbitrary class.
MODELS: dict[str, tuple[str, str, str, str]] = {
    "gbdt": ("gbdt", "LightGBMGBDT", "lightgbm",
             "qlib's LightGBM GBDT (LGBModel, its defaults), early stopping on the valid segment"),
    "xgboost_gbdt": ("xgboost_gbdt", "XGBoostGBDT", "xgboost",
                     "Gradient-boosted trees (xgboost) with early stopping; gbdt up to 0.1"),
    "alstm": ("alstm", "ALSTM", "torch",
              "qlib's ALSTM: LSTM (or qlib's GRU, preset='qlib') with temporal attention (torch)"),
    "lstm": ("keras_models", "KerasLSTM", "keras", "LSTM regressor, the LEAN docs' Keras model"),
    "cnn": ("keras_models", "KerasCNN", "keras", "1-D CNN over windows (LEAN docs' Keras model)"),
    "mlp": ("keras_models", "KerasMLP", "keras", "Dense network, the LEAN docs' Keras model"),
    "hmm_regime": ("hmm_regime", "HMMRegime", "hmmlearn",
                   "Market regimes from returns and volatility (Gaussian HMM)"),
    "policy_gradient": ("policy_gradient", "PolicyGradient", "torch",
                        "REINFORCE position policy on a price series (torch)"),
    # Not a zoo name of its own: random_forest, svm and gradient_boosting stay the scikit-learn
    # adapter's models; SklearnModel gives any of them the dataset interface.
    "sklearn": ("sklearn_models", "SklearnModel", "scikit-learn", ""),
}
_NOT_REGISTERED = {"sklearn"}

#: (name in an older bundle's record, the bundle's adapter) -> the zoo name of that model
#: today. Up to alphazoo 0.1 ``gbdt`` was the xgboost model.
RENAMED: dict[tuple[str, str], str] = {("gbdt", "xgboost"): "xgboost_gbdt"}


def model_class(name: str) -> type[Model]:
    """The :class:`~alphazoo.contrib.model.Model` subclass behind zoo name ``name``."""
    try:
        module, cls, _, _ = MODELS[name]
    except KeyError:
        raise KeyError(f"no contrib model {name!r}; known: {', '.join(sorted(MODELS))}") from None
    return getattr(importlib.import_module(f"alphazoo.contrib.{module}"), cls)


def _builder(name: str) -> Any:
    def build(preset: str | None = None, **params: Any) -> Any:
        cls = model_class(name)
        return cls(**params) if preset is None else cls.from_preset(preset, **params)

    build.__name__ = name
    build.__doc__ = MODELS[name][3]
    return build


@hookimpl
def alphazoo_register_models(register: Any) -> None:
    for name, (_, _, library, description) in MODELS.items():
        if name not in _NOT_REGISTERED:
            register(name, _builder(name), library=library, description=description)


@hookimpl
def alphazoo_requirements() -> list[str]:
    return ["pandas>=2.0", "scipy>=1.11"]


def _is_model(obj: Any) -> bool:
    # Only a contrib Model can be one, and contrib.model is loaded once one exists.
    import sys

    module = sys.modules.get("alphazoo.contrib.model")
    return module is not None and isinstance(obj, module.Model)


@hookimpl(wrapper=True)
def alphazoo_save(request: SaveRequest) -> Any:
    model = request.model
    if not _is_model(model):
        return (yield)
    if not model.fitted:
        from .model import NotFittedError

        raise NotFittedError(f"cannot save an unfitted {model.name} model: fit it first")
    from .model import is_onnx_predictor

    if is_onnx_predictor(model.estimator):
        # No adapter writes an onnxruntime session back; without this the user would read
        # "no loaded adapter handles ... GBDT objects", which the model plainly is.
        raise UnsupportedModelError(
            f"this {model.name} model was loaded from an ONNX bundle and only predicts: it "
            "cannot be saved again. Save the model as trained (or load a native bundle of it "
            "and save that), or fit it again first"
        )
    original = (request.model, request.sample, request.zoo_model, request.params,
                request.options)
    request.model, request.sample = model.estimator, model.sample
    request.options = {**model.adapter_save_options(request.format or ""), **request.options}
    # The estimator is not itself a zoo model: adapters must not record the wrapper's name as
    # the estimator's builder (torch's json format would rebuild the wrapper, not the module).
    request.zoo_model, request.params = None, None
    try:
        payload: SavedPayload | None = yield
    finally:
        (request.model, request.sample, request.zoo_model, request.params,
         request.options) = original
    if payload is None:
        # The host would name the wrapper's class, which no adapter is meant to take.
        kind = type(model.estimator)
        raise UnsupportedModelError(
            f"no loaded adapter saves this {model.name or type(model).__name__} model's "
            f"estimator, a {kind.__module__}.{kind.__qualname__} (library "
            f"{model.library or 'unknown'!r}); install or enable that library's adapter "
            "(see `alphazoo plugins`)"
        )
    from alphazoo.jsonable import strict_jsonable

    payload.adapter_data = {**payload.adapter_data, "contrib": strict_jsonable(model.record())}
    return payload


@hookimpl(wrapper=True)
def alphazoo_load(request: LoadRequest) -> Any:
    record = (request.manifest.get("adapter_data") or {}).get("contrib")
    if not isinstance(record, dict):
        return (yield)
    name, params = record.get("model"), record.get("params") or {}
    if isinstance(name, str):
        name = RENAMED.get((name, str(request.manifest.get("adapter"))), name)
    if name not in MODELS or not isinstance(params, dict):
        raise UnsupportedModelError(
            f"the bundle holds a contrib model {name!r}, which this alphazoo does not have "
            f"(known: {', '.join(sorted(MODELS))}); upgrade alphazoo"
        )
    try:
        cls = model_class(name)
        model = cls(**cls.upgrade_params(params))
    except (TypeError, ValueError) as exc:  # a parameter (or value) added by a newer alphazoo
        raise UnsupportedModelError(
            f"the bundle's {name} model has parameters this alphazoo does not take ({exc}); "
            "upgrade alphazoo"
        ) from exc
    preferred = model.adapter_load_options(request.manifest.get("format") or "")
    request.options = {**preferred, **request.options}
    estimator = yield
    if estimator is None:  # no adapter loaded it: let the host say so, not return an empty model
        return None
    return model.restore(estimator, record)
