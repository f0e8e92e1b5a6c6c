"""Checks on an ONNX payload before an onnxruntime session is created from it.

Creating a session is not a passive read: onnxruntime loads every initializer and folds
constant subgraphs, so a graph of a few hundred bytes holding ``ConstantOfShape`` of a constant
``[100000, 100000]`` allocates 40 GB before the first prediction. :func:`check_onnx` therefore
reads the graph with the ``onnx`` package (a protobuf parse, bounded by the file's size, which
the bundle's limits already bound) and refuses it with :class:`~alphazoo.BundleLimitError`
when any of these exceeds ``limits.max_bytes``:

- an initializer, sparse initializer or ``Constant`` value, and all of them together;
- any tensor whose shape ONNX shape inference (with constant propagation) finds statically,
  in the main graph and in every subgraph: the output of the ``ConstantOfShape`` above, of a
  ``Tile`` or ``Expand`` of constants, and so on;
- the output of every ``ConstantOfShape`` whose shape input is a constant, computed here
  directly, in case shape inference gives up on the graph.

Tensors stored outside the file (``external_data``) are refused: a bundle's payload is one
file, and a reference would make onnxruntime open other paths. The ``producer_name`` must be
one of the adapter's exporters, so a manifest naming another adapter for a graph (the
sklearn adapter for an xgboost export, say) does not load: :class:`~alphazoo.BundleFormatError`.

These checks run on every load, signed or ``trusted=True`` alike: O(graph size), a few
milliseconds for a 100-tree forest.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from alphazoo.errors import BundleFormatError, require
from alphazoo.limits import LoadLimits, array_bytes, check_bytes

__all__ = ["check_onnx"]

#: Bytes per element when a tensor's type has no fixed width (strings) or is unknown.
_UNKNOWN_ITEMSIZE = 8


def check_onnx(path: Path, limits: LoadLimits | None, *, adapter: str,
               producers: Iterable[str]) -> None:
    """Refuse the ONNX file at ``path`` if it breaks ``limits`` or was not written by one of
    ``producers`` (the ``producer_name`` values of ``adapter``'s exporters)."""
    onnx: Any = require("onnx", "onnx", "checking an ONNX model before serving it")
    limits = limits or LoadLimits()
    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception as exc:  # protobuf's DecodeError and friends: not an ONNX model
        raise BundleFormatError(path.name, f"not a readable ONNX model ({exc})") from None
    allowed = tuple(producers)
    if model.producer_name not in allowed:
        raise BundleFormatError(
            "adapter", f"the manifest names adapter {adapter!r}, but {path.name} was written "
            f"by {model.producer_name!r}, not by its exporters ({', '.join(allowed)}): the "
            "bundle's adapter and payload do not belong together"
        )
    graphs = list(_graphs(model.graph))
    constants = _check_constants(onnx, graphs, limits, path.name)
    _check_constant_of_shape(onnx, graphs, constants, limits, path.name)
    _check_inferred(onnx, model, limits, path.name)


def _graphs(graph: Any) -> Iterator[Any]:
    """``graph`` and every subgraph in its nodes' attributes (If, Loop, Scan bodies)."""
    stack = [graph]
    while stack:
        current = stack.pop()
        yield current
        for node in current.node:
            for attribute in node.attribute:
                if attribute.HasField("g"):
                    stack.append(attribute.g)
                stack.extend(attribute.graphs)


def _itemsize(onnx: Any, data_type: int) -> int:
    try:
        return int(onnx.helper.tensor_dtype_to_np_dtype(data_type).itemsize) or 1
    except (KeyError, TypeError, ValueError):
        return _UNKNOWN_ITEMSIZE


def _tensor_bytes(onnx: Any, tensor: Any, what: str) -> int:
    if tensor.data_location == onnx.TensorProto.EXTERNAL or len(tensor.external_data):
        raise BundleFormatError(what, "refers to data outside the model file (external_data); "
                                      "a bundle's ONNX payload must hold all its tensors")
    return array_bytes(tensor.dims, _itemsize(onnx, tensor.data_type))


def _check_constants(onnx: Any, graphs: list[Any], limits: LoadLimits,
                     name: str) -> dict[str, Any]:
    """Check every stored constant; return the constant tensors by name (for ConstantOfShape).

    Only small integer tensors are kept (shape inputs), so this never copies a large one.
    """
    total = 0
    constants: dict[str, Any] = {}

    def count(size: int, what: str) -> None:
        nonlocal total
        check_bytes(size, limits, what)
        total += size
        check_bytes(total, limits, f"{name}: initializers and constants together")

    for graph in graphs:
        for tensor in graph.initializer:
            what = f"{name}: initializer {tensor.name!r}"
            count(_tensor_bytes(onnx, tensor, what), what)
            constants[tensor.name] = tensor
        for sparse in graph.sparse_initializer:
            what = f"{name}: sparse initializer {sparse.values.name!r}"
            count(array_bytes(sparse.dims, _itemsize(onnx, sparse.values.data_type)), what)
            _tensor_bytes(onnx, sparse.values, what)
            _tensor_bytes(onnx, sparse.indices, what)
        for node in graph.node:
            if node.op_type != "Constant" or node.domain not in ("", "ai.onnx"):
                continue
            what = f"{name}: Constant node {node.name or node.output[0]!r}"
            for attribute in node.attribute:
                if attribute.HasField("t"):
                    count(_tensor_bytes(onnx, attribute.t, what), what)
                    if node.output:
                        constants[node.output[0]] = attribute.t
                elif attribute.HasField("sparse_tensor"):
                    sparse = attribute.sparse_tensor
                    count(array_bytes(sparse.dims, _itemsize(onnx, sparse.values.data_type)),
                          what)
                else:
                    count(8 * (len(attribute.floats) + len(attribute.ints))
                          + sum(len(s) for s in attribute.strings), what)
    return constants


def _check_constant_of_shape(onnx: Any, graphs: list[Any], constants: dict[str, Any],
                             limits: LoadLimits, name: str) -> None:
    """The output size of each ``ConstantOfShape`` fed a constant shape, from that shape."""
    numpy_helper = onnx.numpy_helper
    for graph in graphs:
        for node in graph.node:
            if node.op_type != "ConstantOfShape" or not node.input:
                continue
            shape_tensor = constants.get(node.input[0])
            if shape_tensor is None:
                continue
            shape_bytes = array_bytes(shape_tensor.dims, 8)
            check_bytes(shape_bytes, limits, f"{name}: shape of ConstantOfShape {node.name!r}")
            shape = numpy_helper.to_array(shape_tensor).reshape(-1).tolist()
            itemsize = 4  # float32 unless the node's value attribute says otherwise
            for attribute in node.attribute:
                if attribute.name == "value" and attribute.HasField("t"):
                    itemsize = _itemsize(onnx, attribute.t.data_type)
            check_bytes(array_bytes(shape, itemsize), limits,
                        f"{name}: ConstantOfShape {node.name or node.output[0]!r} of shape "
                        f"{shape}")


def _check_inferred(onnx: Any, model: Any, limits: LoadLimits, name: str) -> None:
    """Every tensor whose full shape shape inference finds, against ``max_bytes``."""
    try:
        inferred = onnx.shape_inference.infer_shapes(model, check_type=False, strict_mode=False,
                                                     data_prop=True)
    except Exception:  # a graph inference cannot follow; the checks above still hold
        return
    for graph in _graphs(inferred.graph):
        for info in (*graph.value_info, *graph.output):
            tensor_type = info.type.tensor_type
            if not tensor_type.HasField("shape"):
                continue
            dims = tensor_type.shape.dim
            if not all(d.HasField("dim_value") for d in dims):
                continue
            size = array_bytes([d.dim_value for d in dims], _itemsize(onnx, tensor_type.elem_type))
            check_bytes(size, limits, f"{name}: tensor {info.name!r} of shape "
                        f"{[d.dim_value for d in dims]}")
