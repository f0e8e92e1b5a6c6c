"""The keras adapter's ``json`` format: ``model.to_json()`` and the weights as one document.

The weights are an alphazoo weights document (:mod:`alphazoo.adapters._weights`), bit-exact;
a type numpy lacks (ml_dtypes' bfloat16...) travels as same-width integers with its name. No
optimizer state is kept. The architecture is rebuilt by Keras' deserializer with the
``safe_mode`` the caller passes; the weights must match it variable by variable.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from alphazoo.errors import BundleIntegrityError, UnsupportedFormatError

if TYPE_CHECKING:
    import numpy as np

__all__ = ["load_json", "save_json"]


def save_json(model: Any, path: Path) -> dict[str, Any]:
    """Write ``model``'s architecture and weights to ``path``; returns the weights' count and
    size for the manifest. Raises :class:`~alphazoo.UnsupportedFormatError` when Keras cannot
    give the architecture as JSON."""
    import numpy as np

    from ._weights import Tensor, write_weights

    try:
        architecture = json.loads(model.to_json())
    except (NotImplementedError, TypeError, ValueError) as exc:
        raise UnsupportedFormatError(
            f"the json format needs the model's architecture as JSON, and Keras could not "
            f"serialize this {type(model).__name__} ({exc}); give a subclassed model a "
            "get_config() and @keras.saving.register_keras_serializable, or use format='keras'"
        ) from exc
    tensors = []
    for variable, array in zip(model.weights, model.get_weights()):
        array, name = np.asarray(array), getattr(variable, "path", variable.name)
        if array.dtype.kind in "biuf":
            tensors.append(Tensor(name, array))
        else:  # a type numpy lacks (ml_dtypes' bfloat16...): stored as same-width integers
            tensors.append(Tensor(name, array.view(f"u{array.dtype.itemsize}"), array.dtype.name))
    write_weights(path, tensors, architecture=architecture)
    return {"tensors": len(tensors), "bytes": int(sum(t.array.nbytes for t in tensors))}


def load_json(keras: Any, path: Path, custom_objects: Any, *, safe_mode: bool,
              limits: Any = None) -> Any:
    """The model in the document at ``path``, rebuilt with ``safe_mode`` and given its weights.

    ``limits`` (an :class:`~alphazoo.LoadLimits`) bounds the document before it is parsed; a
    weight whose count, shape or type does not fit the architecture raises
    :class:`~alphazoo.BundleIntegrityError`.
    """
    from ._weights import read_weights

    tensors, header = read_weights(path, limits)
    if "architecture" not in header:
        raise BundleIntegrityError(f"{path.name} has no 'architecture' entry")
    # model_from_json is json.loads + this call; spelled out so safe_mode is explicit.
    model = keras.saving.deserialize_keras_object(header["architecture"],
                                                  custom_objects=custom_objects,
                                                  safe_mode=safe_mode)
    variables = list(model.weights)
    if len(variables) != len(tensors):
        raise BundleIntegrityError(
            f"{path.name} holds {len(tensors)} weights, but its architecture builds "
            f"{len(variables)}"
        )
    arrays = []
    for variable, tensor in zip(variables, tensors):
        array = tensor.array
        if tensor.type is not None:
            array = _view_as(tensor.name, array, tensor.type)
        if tuple(variable.shape) != array.shape:
            raise BundleIntegrityError(
                f"weight {tensor.name!r} has shape {list(array.shape)}, but the architecture's "
                f"{getattr(variable, 'path', variable.name)!r} needs {list(variable.shape)}"
            )
        arrays.append(array)
    model.set_weights(arrays)
    return model


def _view_as(name: str, array: np.ndarray, type_name: str) -> np.ndarray:
    """``array`` (same-width integers) seen as ml_dtypes' ``type_name`` (bfloat16...)."""
    import ml_dtypes  # Keras' own dependency: the home of bfloat16 and friends
    import numpy as np

    kind = getattr(ml_dtypes, str(type_name), None)
    try:
        dtype = np.dtype(kind) if isinstance(kind, type) else None
    except TypeError:
        dtype = None
    if dtype is None or dtype.itemsize != array.dtype.itemsize:
        raise BundleIntegrityError(
            f"weights entry {name!r} names type {type_name!r}, not an ml_dtypes number type "
            f"{array.dtype.itemsize} bytes wide"
        )
    return array.view(dtype)
