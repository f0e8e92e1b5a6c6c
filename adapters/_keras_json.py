"""The keras adapter's weights formats: ``model.to_json()`` and ``get_weights()``, as one JSON
document (``json``) or as a safetensors file (``safetensors``).

``json``: the weights are an alphazoo weights document (:mod:`alphazoo.adapters._weights`),
bit-exact; a type numpy lacks (ml_dtypes' bfloat16...) travels as same-width integers with its
name. ``safetensors``: the same architecture, as JSON in the file's ``__metadata__``, and the
weights as raw safetensors tensors named by their variables' paths (bfloat16 and float8 keep
their own safetensors dtypes); safetensors orders tensors by dtype and name, so the
``get_weights()`` order is kept in ``__metadata__`` too. Neither keeps optimizer state. The
architecture is rebuilt by Keras' deserializer with the ``safe_mode`` the caller passes; the
weights must match it variable by variable.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from alphazoo.errors import BundleIntegrityError, UnsupportedFormatError

if TYPE_CHECKING:
    import numpy as np

__all__ = ["load_json", "load_safetensors", "save_json", "save_safetensors"]


def save_json(model: Any, path: Path) -> dict[str, Any]:
    """Write ``model``'s architecture and weights to ``path``; returns the weights' count and
    size for the manifest. Raises :class:`~alphazoo.UnsupportedFormatError` when Keras cannot
    give the architecture as JSON."""
    import numpy as np

    from ._weights import Tensor, write_weights

    architecture = _architecture(model, "json")
    tensors = []
    for variable, array in zip(model.weights, model.get_weights()):
        array, name = np.asarray(array), getattr(variable, "path", variable.name)
        if array.dtype.kind in "biuf":
            tensors.append(Tensor(name, array))
        else:  # a type numpy lacks (ml_dtypes' bfloat16...): stored as same-width integers
            tensors.append(Tensor(name, array.view(f"u{array.dtype.itemsize}"), array.dtype.name))
    write_weights(path, tensors, architecture=architecture)
    return {"tensors": len(tensors), "bytes": int(sum(t.array.nbytes for t in tensors))}


def save_safetensors(model: Any, path: Path) -> dict[str, Any]:
    """Write ``model``'s architecture and weights to ``path`` as a safetensors file; returns
    the weights' count and size for the manifest, as :func:`save_json` does."""
    import numpy as np

    from ._safetensors import metadata, require_safetensors, save_tensors

    require_safetensors()
    architecture = _architecture(model, "safetensors")
    arrays: dict[str, np.ndarray] = {}
    for variable, array in zip(model.weights, model.get_weights()):
        array = np.asarray(array)
        name = base = str(getattr(variable, "path", variable.name))
        copy = 1
        while name in arrays:  # names must be unique in a safetensors file
            copy += 1
            name = f"{base}#{copy}"
        # safetensors' numpy writer reads the array's buffer as it lies in memory.
        arrays[name] = array if array.flags.c_contiguous else array.copy(order="C")
    save_tensors(path, arrays, "numpy", metadata("keras", architecture=architecture,
                                                 order=list(arrays)))
    return {"tensors": len(arrays), "bytes": int(sum(a.nbytes for a in arrays.values()))}


def load_safetensors(keras: Any, path: Path, custom_objects: Any, *, safe_mode: bool,
                     limits: Any = None) -> Any:
    """The model in the safetensors file at ``path``, rebuilt with ``safe_mode`` and given its
    weights in their saved order. The header is bounded before safetensors reads it
    (:func:`alphazoo.adapters._safetensors.check_payload`); a weight that does not fit the
    architecture raises :class:`~alphazoo.BundleIntegrityError`."""
    from ._safetensors import load_tensors

    arrays, payload = load_tensors(path, limits, "numpy")
    architecture, order = payload.metadata.get("architecture"), payload.metadata.get("order")
    if not isinstance(architecture, dict):
        raise BundleIntegrityError(f"{path.name} has no 'architecture' in its __metadata__")
    if not isinstance(order, list) or sorted(map(str, order)) != sorted(arrays):
        raise BundleIntegrityError(f"{path.name}'s __metadata__ 'order' does not list its "
                                   "tensors")
    return _rebuild(keras, path, architecture, [(name, arrays[name]) for name in order],
                    custom_objects, safe_mode)


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
    arrays = [(tensor.name, tensor.array if tensor.type is None
               else _view_as(tensor.name, tensor.array, tensor.type)) for tensor in tensors]
    return _rebuild(keras, path, header["architecture"], arrays, custom_objects, safe_mode)


def _architecture(model: Any, fmt: str) -> Any:
    """``model.to_json()`` parsed, or :class:`~alphazoo.UnsupportedFormatError`."""
    try:
        return json.loads(model.to_json())
    except (NotImplementedError, TypeError, ValueError) as exc:
        raise UnsupportedFormatError(
            f"the {fmt} format needs the model's architecture as JSON, and Keras could not "
            f"serialize this {type(model).__name__} ({exc}); give a subclassed model a "
            "get_config() and @keras.saving.register_keras_serializable, or use format='keras'"
        ) from exc


def _rebuild(keras: Any, path: Path, architecture: Any, weights: list[tuple[str, np.ndarray]],
             custom_objects: Any, safe_mode: bool) -> Any:
    """The model of ``architecture`` with ``weights`` (name, array) set in order, each checked
    against its variable's shape first."""
    # model_from_json is json.loads + this call; spelled out so safe_mode is explicit.
    model = keras.saving.deserialize_keras_object(architecture, custom_objects=custom_objects,
                                                  safe_mode=safe_mode)
    variables = list(model.weights)
    if len(variables) != len(weights):
        raise BundleIntegrityError(
            f"{path.name} holds {len(weights)} weights, but its architecture builds "
            f"{len(variables)}"
        )
    for variable, (name, array) in zip(variables, weights):
        if tuple(variable.shape) != array.shape:
            raise BundleIntegrityError(
                f"weight {name!r} has shape {list(array.shape)}, but the architecture's "
                f"{getattr(variable, 'path', variable.name)!r} needs {list(variable.shape)}"
            )
    model.set_weights([array for _, array in weights])
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
