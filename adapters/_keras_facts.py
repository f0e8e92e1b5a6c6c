"""What the keras adapter reads off a live Keras model: its input shape and layout, its task,
its Lambda layers, and how the zoo runs its predictions.

Shared by the plugin (:mod:`alphazoo.adapters.keras`) and the ONNX export
(:mod:`alphazoo.adapters._keras_onnx`). Keras is never imported here: every function takes a
model, so Keras is already imported when one runs.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any

from alphazoo.contracts import SaveRequest

if TYPE_CHECKING:
    import numpy as np

__all__ = ["ONE_BATCH_ROWS", "input_shape", "lambda_layers", "layout", "native_predict",
           "signature", "task_of"]

#: Zoo.predict runs up to this many rows as one batch (predict_on_batch); more go through
#: model.predict in batches of this size, which bounds the memory activations take.
ONE_BATCH_ROWS = 65_536


def native_predict(model: Any, X: Any) -> np.ndarray:
    """``model``'s predictions for ``X`` through Keras' compiled predict step.

    ``predict_on_batch`` up to :data:`ONE_BATCH_ROWS` rows (``model.predict`` builds a data
    pipeline on every call, tens of milliseconds for one row), ``model.predict`` in batches
    above that.
    """
    import numpy as np

    rows = getattr(X, "shape", (None,))[0]
    if rows is not None and rows <= ONE_BATCH_ROWS:
        return np.asarray(model.predict_on_batch(X))
    return model.predict(X, batch_size=ONE_BATCH_ROWS, verbose=0)


def task_of(model: Any, request: SaveRequest) -> str:
    """The zoo model's task, else guessed from the output activation (probabilities or not)."""
    if request.zoo_model in ("keras_mlp", "keras_lstm"):
        return str((request.params or {}).get("task", "regression"))
    layers = getattr(model, "layers", None) or []
    activation = getattr(getattr(layers[-1], "activation", None), "__name__", "") if layers else ""
    return "classification" if activation in ("softmax", "sigmoid") else "regression"


def lambda_layers(model: Any) -> list[str]:
    """Names of the Lambda layers in ``model``, nested models included."""
    keras: Any = sys.modules["keras"]
    found, stack, seen = [], list(getattr(model, "layers", [])), set()
    while stack:
        layer = stack.pop(0)
        if id(layer) in seen:
            continue
        seen.add(id(layer))
        if isinstance(layer, keras.layers.Lambda):
            found.append(layer.name)
        stack.extend(getattr(layer, "layers", None) or [])
    return found


def signature(model: Any) -> dict[str, Any]:
    """The manifest's input signature: float32, the symbolic input's shape and its layout."""
    shape = input_shape(model)
    return {"dtype": "float32", "shape": list(shape) if shape is not None else None,
            "feature_names": None, "layout": layout(shape)}


def input_shape(model: Any) -> tuple[Any, ...] | None:
    """The shape of a single-input model's input, batch axis None; None when unknown."""
    try:
        inputs = model.inputs
    except (AttributeError, ValueError):  # subclassed models have no symbolic inputs
        return None
    if not inputs or len(inputs) != 1:
        return None
    return tuple(None if d is None else int(d) for d in inputs[0].shape)


def layout(shape: tuple[Any, ...] | None) -> str | None:
    """``"(batch, features)"``, ``"(batch, timesteps, features)"``... for an input shape."""
    if shape is None:
        return None
    return {2: "(batch, features)", 3: "(batch, timesteps, features)"}.get(
        len(shape), f"(batch, {len(shape) - 1} axes)")
